//! `oxctl dump-config [CONFIG]`: the merged, validated config, secrets redacted.

use std::process::ExitCode;

use anyhow::Context as _;
use bus_schema::config::{dump_redacted, load_files};

use bus_schema::exit::CONFIG as EX_CONFIG;

use crate::ConfigArgs;

/// Prints the config as TOML with defaults filled in and every secret `<redacted>`.
pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    match load_files(&args.config, &args.secrets_path(), args.missing_secrets()) {
        Ok(loaded) => {
            eprint!("{}", loaded.warnings);
            print!(
                "{}",
                dump_redacted(&loaded.config).context("rendering the config")?
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            eprint!("{diags}");
            Ok(ExitCode::from(EX_CONFIG))
        }
    }
}
