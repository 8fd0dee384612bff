//! `oxctl`: the operator CLI. Offline verbs need only the config files
//! (validate, dump-config FILE, schema, wizard, keygen); the others talk
//! to a router's ctld over QUIC with pinned ed25519 keys (`remote`).
//!
//! Exit codes (sysexits): 0 success, 64 usage, 69 router unreachable,
//! 75 rate limited, 77 a key refused or a role not allowed, 78 invalid
//! config, 130 interrupted, 1 anything else the router reported.

#![forbid(unsafe_code)]

mod cmd;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cmd::Out;
use crate::remote::target::Wanted;
use crate::remote::{Failure, Session, Target};

#[derive(Debug, Parser)]
#[command(name = "oxctl", version, about = "Operate an oxwrt router")]
pub struct Cli {
    /// The router: ADDR[:PORT] or a name from the client config's [hosts].
    #[arg(short = 'H', long, env = "OXCTL_HOST", global = true)]
    host: Option<String>,
    /// The client's private key file (oxctl keygen).
    #[arg(long, env = "OXCTL_KEY", global = true)]
    key: Option<PathBuf>,
    /// The router's public key, 64 hex digits (pinned; see --print-server-key).
    #[arg(long, env = "OXCTL_SERVER_KEY", global = true)]
    server_key: Option<String>,
    /// Print JSON instead of tables (reading verbs).
    #[arg(long, global = true)]
    json: bool,
    /// On the router: print ctld's public key, to pin on a client.
    #[arg(long)]
    print_server_key: bool,
    /// The router's state directory (with --print-server-key).
    #[arg(long, env = "OXWRT_STATE", default_value = "/var/lib/oxwrt")]
    state: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a config pair; print every error and warning.
    Validate(ConfigArgs),
    /// Print the config with defaults filled in and every secret redacted:
    /// of FILE, or with -H and no FILE, the router's running config.
    DumpConfig(DumpArgs),
    /// Print the JSON Schema of oxwrt.toml (or the Markdown reference).
    Schema {
        /// Print the Markdown config reference instead (docs/config.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Write a new, valid config pair from a few answers.
    Wizard(Box<cmd::wizard::Args>),
    /// Make a client key: PATH (private, 0600) and PATH.pub (hex).
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Hostname, uptime, generation, WAN, LAN clients and every service.
    Status,
    /// Round trips of `status` over one connection, as ping(8) times echoes.
    Ping {
        /// How many calls.
        #[arg(short = 'c', long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        /// Seconds between calls (0: back to back).
        #[arg(short = 'i', long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Every service with its state and restarts.
    Services,
    /// Restart one service.
    Restart {
        /// Service name (see `services`).
        service: String,
    },
    /// A service's last lines, and with -f every new one.
    Logs {
        /// Service name.
        service: String,
        /// Keep printing new lines until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines (0: all kept).
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
    },
    /// One value of the running config by TOML path (control.port, networks.0.name).
    Get {
        /// Dotted path; array items by index.
        path: String,
    },
    /// Unified diff of the running config against a local file.
    Diff {
        /// The local oxwrt.toml.
        file: PathBuf,
    },
    /// Validate a config pair on the router and keep it as the candidate.
    ConfigPush {
        /// The oxwrt.toml to push.
        file: PathBuf,
        /// Its secrets file [default: oxwrt.secrets.toml beside FILE, if any].
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
    /// Apply the pushed candidate (or the router's own files).
    Reload {
        /// Check with every daemon and show the diff; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Revert unless `oxctl confirm` comes within this long (90s, 5m).
        #[arg(long, value_parser = cmd::apply::parse_duration)]
        confirm_within: Option<Duration>,
        /// Why, for the snapshot ring.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Keep a generation applied with --confirm-within.
    Confirm,
    /// Apply an earlier generation (destructive: needs --confirm).
    Rollback {
        /// Yes, really.
        #[arg(long)]
        confirm: bool,
        /// Snapshot index from rollback-list [default: the previous generation].
        #[arg(long, default_value_t = 0)]
        to: u32,
    },
    /// The snapshot ring, newest first (* marks the running generation).
    RollbackList,
    /// Save the running config pair, leases and optionally the server key.
    Backup {
        /// The tar.gz to write (mode 0600: it holds every secret).
        #[arg(short, long)]
        out: PathBuf,
        /// Include ctld's private key (the restored router keeps its identity).
        #[arg(long)]
        with_server_key: bool,
    },
    /// Apply a backup's config pair (destructive: needs --confirm).
    Restore {
        /// A tar.gz from `oxctl backup`.
        file: PathBuf,
        /// Yes, really.
        #[arg(long)]
        confirm: bool,
    },
    /// The router's view of one thing.
    Diag {
        /// What to show.
        #[arg(value_parser = ["links", "routes", "firewall", "leases", "dns", "conntrack"])]
        what: String,
    },
    /// Repeat a reading verb (status, services, rollback-list, diag WHAT).
    Watch {
        /// Seconds between updates.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Stop after this many updates.
        #[arg(long)]
        count: Option<u32>,
        /// The verb [default: status].
        verb: Vec<String>,
    },
    /// Who changed what, newest last.
    Audit {
        /// How many entries (0: all kept).
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
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

/// `dump-config`'s arguments: a file, or the router's running config.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The public config file [default: the router's running config with
    /// -H, else /etc/oxwrt/oxwrt.toml].
    pub config: Option<PathBuf>,
    /// The secrets file (offline).
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

/// Runs a remote verb: connect, call, print.
fn remote(cli: &Cli, command: &Command) -> ExitCode {
    let wanted = Wanted {
        host: cli.host.clone(),
        key: cli.key.clone(),
        server_key: cli.server_key.clone(),
    };
    let out = Out { json: cli.json };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oxctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let target = Target::resolve(&wanted)?;
        let s = Session::connect(&target).await?;
        let result = tokio::select! {
            r = run_remote(&s, command, out) => r,
            _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
        };
        s.close().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run_remote(s: &Session, command: &Command, out: Out) -> Result<(), Failure> {
    use cmd::*;
    match command {
        Command::Status => status::status(s, out).await,
        Command::Ping { count, interval } => {
            ping::run(s, *count, seconds("--interval", *interval)?, out).await
        }
        Command::Services => status::services(s, out).await,
        Command::Restart { service } => status::restart(s, service).await,
        Command::Logs {
            service,
            follow,
            lines,
        } => logs::run(s, service, *lines, *follow).await,
        Command::Get { path } => config::get(s, path, out).await,
        Command::DumpConfig(_) => config::dump(s).await,
        Command::Diff { file } => config::diff(s, file).await,
        Command::ConfigPush { file, secrets } => config::push(s, file, secrets.as_deref()).await,
        Command::Reload {
            dry_run,
            confirm_within,
            comment,
        } => apply::reload(s, *dry_run, *confirm_within, comment, out).await,
        Command::Confirm => apply::confirm(s).await,
        Command::Rollback { confirm, to } => apply::rollback(s, *to, *confirm, out).await,
        Command::RollbackList => apply::list(s, out).await,
        Command::Backup {
            out: path,
            with_server_key,
        } => backup::backup(s, path, *with_server_key).await,
        Command::Restore { file, confirm } => backup::restore(s, file, *confirm, out).await,
        Command::Diag { what } => diag::diag(s, what, out).await,
        Command::Audit { lines } => diag::audit(s, *lines, out).await,
        Command::Watch {
            interval,
            count,
            verb,
        } => watch::run(s, seconds("--interval", *interval)?, *count, verb, out).await,
        _ => Err(Failure::Usage("not a remote verb".into())),
    }
}

/// A flag's seconds as a duration.
fn seconds(flag: &str, value: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Failure::Usage(format!("{flag} {value}: not a duration")))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(remote::exit::USAGE)
            } else {
                // --help, --version.
                ExitCode::SUCCESS
            };
        }
    };
    if cli.print_server_key {
        return offline(cmd::keys::print_server_key(&cli.state));
    }
    let Some(command) = &cli.command else {
        eprintln!("oxctl: no verb given; see oxctl --help");
        return ExitCode::from(remote::exit::USAGE);
    };
    match command {
        Command::Validate(args) => offline(cmd::validate::run(args)),
        Command::DumpConfig(args)
            if args.config.is_some()
                || !remote::target::host_named(&Wanted {
                    host: cli.host.clone(),
                    ..Wanted::default()
                }) =>
        {
            let args = ConfigArgs {
                config: args
                    .config
                    .clone()
                    .unwrap_or_else(|| bus_schema::config::DEFAULT_CONFIG_PATH.into()),
                secrets: args.secrets.clone(),
            };
            offline(cmd::dump_config::run(&args))
        }
        Command::Schema { markdown } => offline(cmd::schema::run(*markdown)),
        Command::Wizard(args) => offline(cmd::wizard::run(args)),
        Command::Keygen { out } => offline(cmd::keys::keygen(out)),
        Command::Completions { shell } => offline(cmd::docs::completions(*shell)),
        Command::Man => offline(cmd::docs::man()),
        Command::Rollback { confirm: false, .. } | Command::Restore { confirm: false, .. } => {
            eprintln!("oxctl: this replaces the running config; pass --confirm if that is meant");
            ExitCode::from(remote::exit::USAGE)
        }
        remote_verb => remote(&cli, remote_verb),
    }
}

fn offline(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oxctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn completions_and_the_man_page_come_from_the_definition() {
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut super::Cli::command(),
            "oxctl",
            &mut bash,
        );
        let bash = String::from_utf8_lossy(&bash);
        assert!(bash.contains("config-push") && bash.contains("--confirm-within"));
        let mut man = Vec::new();
        clap_mangen::Man::new(super::Cli::command())
            .render(&mut man)
            .expect("renders");
        let man = String::from_utf8_lossy(&man);
        assert!(
            man.contains(".TH oxctl") && man.contains("rollback\\-list"),
            "{man}"
        );
    }
}
