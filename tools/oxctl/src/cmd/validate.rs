//! `oxctl validate [CONFIG] [--secrets FILE]`.

use std::process::ExitCode;

use bus_schema::config::load_files;

use bus_schema::exit::CONFIG as EX_CONFIG;

use crate::ConfigArgs;

/// Prints every finding; exits 0 when valid, 78 when not.
pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    match load_files(&args.config, &args.secrets_path(), args.missing_secrets()) {
        Ok(loaded) => {
            eprint!("{}", loaded.warnings);
            println!("{}: valid", args.config.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            eprint!("{diags}");
            let n = diags.errors().count();
            eprintln!(
                "{}: {n} error{}",
                args.config.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(ExitCode::from(EX_CONFIG))
        }
    }
}
