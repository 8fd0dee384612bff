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
use dhcpd::io::Sockets;
use dhcpd::journal::Journal;
use dhcpd::raw::RawSender;
use dhcpd::serve::{self, lock};
use dhcpd::server::Change;
use oxwrt_daemon::{Domain, Env, Sections, exit, init_logging};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Datagrams waiting to be decided; more are dropped (clients retry).
const QUEUE: usize = 8192;

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

/// The running server without its config: the core, its loops, and the
/// lease changes for the bus.
struct Running {
    core: Arc<Mutex<Core>>,
    changes: Option<mpsc::UnboundedReceiver<Vec<Change>>>,
    tasks: [JoinHandle<()>; 2],
}

impl Running {
    /// Reads the journal in `dir`, opens the packet socket and starts the
    /// loops; an error is the exit code.
    fn start(dir: &Path) -> Result<Running, ExitCode> {
        let (journal, leases) = Journal::open(dir).map_err(|e| {
            tracing::error!("{e}");
            ExitCode::from(exit::SOFTWARE)
        })?;
        tracing::info!(leases = leases.len(), "lease journal read");
        let raw = RawSender::open().map_err(|e| {
            tracing::error!("open the packet socket: {e}");
            ExitCode::from(exit::NO_PERM)
        })?;
        let (queue_tx, queue_rx) = mpsc::channel(QUEUE);
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let core = Arc::new(Mutex::new(Core::new(
            journal,
            leases,
            Sockets::new(queue_tx),
        )));
        let tasks = [
            tokio::spawn(serve::decide(
                core.clone(),
                raw,
                queue_rx,
                changes_tx.clone(),
            )),
            tokio::spawn(serve::tick(core.clone(), changes_tx)),
        ];
        Ok(Running {
            core,
            changes: Some(changes),
            tasks,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Serves a config file alone until SIGTERM or SIGINT.
async fn standalone(path: &str, dir: &Path) -> ExitCode {
    let sections = match oxwrt_daemon::load_sections(path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let mut running = match Running::start(dir) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Err(e) = lock(&running.core).apply(&sections) {
        tracing::error!("{e}");
        return ExitCode::from(exit::CONFIG);
    }
    tracing::info!("serving {path} without a bus");
    let mut changes = running.changes.take();
    let drain = async {
        while let Some(c) = changes.as_mut() {
            if c.recv().await.is_none() {
                break;
            }
        }
    };
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return ExitCode::from(exit::SOFTWARE);
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        () = drain => {}
    }
    ExitCode::SUCCESS
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
            return ExitCode::from(64);
        }
    }
    let mut running = match Running::start(&state) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let iface = Dhcp1::new(running.core.clone());
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
