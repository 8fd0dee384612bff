//! dhcpd: the DHCPv4 server of the LAN networks. Start-up order: early
//! log, read the lease journal, open the packet socket, join the bus
//! (serving `org.oxwrt.Dhcp1`), converge to the running generation (pools
//! and device sockets), signal readiness; then decide on datagrams in
//! batches and follow configd until SIGTERM. Every grant is durable
//! before its ACK leaves, so a restart keeps every lease.
//!
//! `dhcpd --config FILE [--state DIR]` serves the config file's pools
//! alone, without bus or configd (the devices must exist with their
//! addresses already), its journal in DIR (default `$STATE/dhcpd`): for
//! benchmarks and debugging.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use bus_schema::bus::DHCP_PATH;
use dhcpd::bus::Dhcp1;
use dhcpd::core::Core;
use dhcpd::serve::{Running, StartError, lock};
use dhcpd::server::Change;
use oxwrt_daemon::{Domain, Env, Sections, exit, init_logging};
use tokio::sync::mpsc;

/// The domain the daemon framework drives: the shared core.
struct Dhcp {
    core: Arc<Mutex<Core>>,
    changes: Option<mpsc::UnboundedReceiver<Vec<Change>>>,
}

impl Domain for Dhcp {
    async fn check(&mut self, sections: &Sections) -> Result<(), String> {
        lock(&self.core).check(sections)
    }

    async fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        let mut core = lock(&self.core);
        core.apply(sections)?;
        tracing::info!(devices = ?core.served(), "applied");
        Ok(())
    }

    fn connected(&mut self, conn: &zbus::Connection) {
        if let Some(changes) = self.changes.take() {
            tokio::spawn(dhcpd::bus::publish(conn.clone(), changes));
        }
    }
}

/// Starts the server's loops on the journal in `dir`; an error is logged
/// and becomes the exit code.
fn start(dir: &Path) -> Result<Running, ExitCode> {
    Running::start(dir).map_err(|e| {
        tracing::error!("{e}");
        ExitCode::from(match e {
            StartError::Journal(_) => exit::SOFTWARE,
            StartError::PacketSocket(_) => exit::NO_PERM,
        })
    })
}

/// Serves a config file alone until SIGTERM or SIGINT.
async fn standalone(path: &str, dir: &Path) -> ExitCode {
    oxwrt_daemon::run_standalone(path, |sections| {
        let mut running = start(dir)?;
        if let Err(e) = lock(&running.core).apply(sections) {
            tracing::error!("{e}");
            return Err(ExitCode::from(exit::CONFIG));
        }
        // Nobody publishes the lease changes: the decisions do not wait
        // for it.
        drop(running.changes.take());
        Ok(running)
    })
    .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let env = Env::from_process();
    let state = env.state.join("dhcpd");
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [flag, path] if flag == "--config" => return standalone(path, &state).await,
        [flag, path, s, dir] if flag == "--config" && s == "--state" => {
            return standalone(path, &PathBuf::from(dir)).await;
        }
        _ => {
            eprintln!("usage: dhcpd [--config FILE [--state DIR]]");
            // EX_USAGE (sysexits).
            return ExitCode::from(exit::USAGE);
        }
    }
    let mut running = match start(&state) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let iface = Dhcp1::new(running.core.clone(), running.announce.clone());
    let serve = Box::new(|b: zbus::connection::Builder<'static>| b.serve_at(DHCP_PATH, iface));
    let domain = Dhcp {
        core: running.core.clone(),
        changes: running.changes.take(),
    };
    let result = oxwrt_daemon::run_serving("dhcpd", domain, serve).await;
    drop(running);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
