//! `oxctl`: the operator CLI. This build has the offline verbs, which need
//! nothing but the config files: validate, dump-config, schema, wizard.

#![forbid(unsafe_code)]

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sysexits(3) EX_CONFIG: the config is invalid.
pub const EX_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(name = "oxctl", version, about = "Operate an oxwrt router")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a config pair; print every error and warning.
    Validate(ConfigArgs),
    /// Print the merged config with every secret redacted.
    DumpConfig(ConfigArgs),
    /// Print the JSON Schema of oxwrt.toml (or the Markdown reference).
    Schema {
        /// Print the Markdown config reference instead (docs/config.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Write a new, valid config pair from a few answers.
    Wizard(Box<cmd::wizard::Args>),
}

/// Where the config pair is.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The public config file.
    #[arg(default_value = bus_schema::config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// The secrets file [default: oxwrt.secrets.toml beside CONFIG; when
    /// that does not exist, the public file is checked alone].
    #[arg(long)]
    pub secrets: Option<PathBuf>,
}

impl ConfigArgs {
    /// The secrets file to use.
    pub fn secrets_path(&self) -> PathBuf {
        self.secrets
            .clone()
            .unwrap_or_else(|| bus_schema::config::secrets_path_for(&self.config))
    }

    /// A secrets file named with `--secrets` must exist; the default one
    /// may be absent (a config kept apart from its secrets).
    pub fn missing_secrets(&self) -> bus_schema::config::MissingSecrets {
        if self.secrets.is_some() {
            bus_schema::config::MissingSecrets::Refuse
        } else {
            bus_schema::config::MissingSecrets::CheckPublicOnly
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::DumpConfig(args) => cmd::dump_config::run(&args),
        Command::Schema { markdown } => cmd::schema::run(markdown),
        Command::Wizard(args) => cmd::wizard::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oxctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
