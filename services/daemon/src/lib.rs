//! The daemon framework: everything a config-consuming oxwrt daemon needs
//! to join the system, so that each daemon is only its domain logic.
//!
//! A daemon implements [`Domain`] (check and apply its sections) and calls
//! [`run`], which does the fixed start-up order of STYLE.md: early log,
//! connect to the bus, serve `org.oxwrt.Daemon1`, own the well-known name,
//! fetch its sections of the running generation, converge to them, signal
//! readiness to oxinit, then follow new generations until SIGTERM.

mod bus;
mod env;
pub mod net;
pub mod persist;
mod ready;

use std::future::Future;
use std::process::ExitCode;

pub use bus::serve_domain;
pub use bus_schema::config::{Sections, section};
pub use env::Env;
pub use ready::notify_ready;

pub use bus_schema::exit;

/// A daemon's own domain logic: what it does with its config sections.
///
/// Both methods receive only the sections that changed (all of the
/// daemon's sections at start-up), as JSON keyed by section name.
/// `apply` must touch only what differs from the current state, so a
/// daemon that restarts into the config it already applied changes
/// nothing.
pub trait Domain: Send + 'static {
    /// Could these sections be applied here? Changes nothing.
    fn check(&mut self, sections: &Sections) -> impl Future<Output = Result<(), String>> + Send;
    /// Applies these sections.
    fn apply(&mut self, sections: &Sections) -> impl Future<Output = Result<(), String>> + Send;
    /// Called once with the daemon's bus connection, after its objects
    /// are served and its name is owned and before the first apply: the
    /// place to keep the connection for emitting signals and to start
    /// tasks that follow other daemons.
    fn connected(&mut self, conn: &zbus::Connection) {
        let _ = conn;
    }
}

/// Adds a daemon's own objects (its `org.oxwrt.*1` interface) to the
/// connection before the name is owned, so no client sees the name
/// without them.
pub type Serve = Box<
    dyn FnOnce(zbus::connection::Builder<'static>) -> zbus::connection::Builder<'static> + Send,
>;

/// Errors of [`run`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The service name is not in the bus policy table.
    #[error("unknown service {0:?}: not in bus_schema::bus::policy::PRINCIPALS")]
    UnknownService(String),
    /// Connecting to the bus or owning the name failed.
    #[error("connect to the bus: {0}")]
    Connect(#[source] zbus::Error),
    /// Fetching a section from configd failed.
    #[error("fetch the running config from configd: {0}")]
    Fetch(#[source] zbus::Error),
    /// The first apply failed.
    #[error("apply the running config: {0}")]
    Converge(String),
    /// The bus connection ended (the broker went away).
    #[error("lost the bus connection")]
    Lost,
    /// Telling oxinit that the daemon is ready failed.
    #[error("signal readiness: {0}")]
    Ready(#[source] std::io::Error),
    /// Setting up the signal handler failed.
    #[error("install the SIGTERM handler: {0}")]
    Signal(#[source] std::io::Error),
}

impl RunError {
    /// The exit code for this error: 70, so that oxinit respawns with
    /// backoff. A domain that knows its config can never work exits 78
    /// itself.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(exit::SOFTWARE)
    }
}

/// The sections of the public config file at `path`, validated alone
/// (secrets unchecked and empty): a daemon's standalone mode (`--config
/// FILE`, for benchmarks and debugging), never the router's own path.
fn load_sections(path: &str) -> Result<Sections, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    let loaded =
        bus_schema::config::check_public_text(&text).map_err(|e| format!("{path}:\n{e}"))?;
    Ok(bus_schema::config::sections(&loaded.config, false))
}

/// A daemon's standalone mode (`--config FILE`): serves the sections of
/// the config file at `path` without bus or configd until SIGTERM or
/// SIGINT. `start` applies them and returns what must live while
/// serving, or the exit code (having logged why). An invalid file exits
/// 78 (`exit::CONFIG`).
pub async fn run_standalone<T>(
    path: &str,
    start: impl FnOnce(&Sections) -> Result<T, ExitCode>,
) -> ExitCode {
    let sections = match load_sections(path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let mut termination = match Termination::install() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("signal handler: {e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let _serving = match start(&sections) {
        Ok(serving) => serving,
        Err(code) => return code,
    };
    tracing::info!("serving {path} without a bus");
    termination.wait().await;
    ExitCode::SUCCESS
}

/// The log filter: `RUST_LOG` (`LEVEL` and `TARGET=LEVEL`, separated by
/// commas), else `info`. A `Targets` filter rather than `EnvFilter`,
/// whose span and field matching (and the regex engine behind it) no
/// daemon uses, and which costs every daemon's binary and memory.
pub fn log_filter() -> tracing_subscriber::filter::Targets {
    filter_of(std::env::var("RUST_LOG").ok().as_deref())
}

/// The filter `RUST_LOG=value` asks for; `info` when unset or unreadable.
fn filter_of(value: Option<&str>) -> tracing_subscriber::filter::Targets {
    value.and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
    })
}

/// Sets up tracing to stderr (oxinit forwards it to the journal or its
/// ring buffer), filtered by [`log_filter`].
pub fn init_logging() {
    use tracing_subscriber::prelude::*;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .finish()
        .with(log_filter())
        .try_init();
}

/// Runs `domain` as the daemon `service` (its entry in the bus policy
/// table) until SIGTERM or SIGINT.
pub async fn run<D: Domain>(service: &str, domain: D) -> Result<(), RunError> {
    run_serving(service, domain, Box::new(|b| b)).await
}

/// [`run`], with the daemon's own objects added by `serve`.
pub async fn run_serving<D: Domain>(
    service: &str,
    domain: D,
    serve: Serve,
) -> Result<(), RunError> {
    let principal = bus_schema::bus::policy::by_service(service)
        .ok_or_else(|| RunError::UnknownService(service.to_string()))?;
    let env = Env::from_process();
    let mut termination = Termination::install().map_err(RunError::Signal)?;
    let daemon = bus::Joined::join(&env, principal, domain, serve).await?;
    notify_ready().map_err(RunError::Ready)?;
    tracing::info!(name = principal.name, "ready");
    tokio::select! {
        () = daemon.follow() => return Err(RunError::Lost),
        () = termination.wait() => {}
    }
    Ok(())
}

/// SIGTERM and SIGINT, caught from the moment of [`Termination::install`]
/// (so one that arrives during start-up is not lost, nor kills the
/// process by its default action).
#[derive(Debug)]
pub struct Termination {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Termination {
    /// Installs the handlers of both signals.
    pub fn install() -> std::io::Result<Termination> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Termination {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Returns at SIGTERM or SIGINT, logging which.
    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM: exiting"),
            _ = self.int.recv() => tracing::info!("SIGINT: exiting"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter_of;

    #[test]
    fn the_log_filter_takes_levels_per_target_and_falls_back_to_info() {
        let f = filter_of(Some("warn,dnsd=debug"));
        assert!(f.would_enable("dnsd::cache", &Level::DEBUG));
        assert!(!f.would_enable("dhcpd", &Level::INFO));
        assert!(f.would_enable("dhcpd", &Level::WARN));
        for fallback in [None, Some("dnsd=loud")] {
            let f = filter_of(fallback);
            assert!(f.would_enable("dnsd", &Level::INFO), "{fallback:?}");
            assert!(!f.would_enable("dnsd", &Level::DEBUG), "{fallback:?}");
        }
    }
}
