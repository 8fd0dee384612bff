//! dhcpd: the DHCPv4 server of the LAN networks. Start-up order: early
//! log, read the lease journal, open the packet socket, join the bus
//! (serving `org.oxwrt.Dhcp1`), converge to the running generation (pools
//! and device sockets), signal readiness; then decide on datagrams in
//! batches and follow configd until SIGTERM. Every grant is durable
//! before its ACK leaves, so a restart keeps every lease.

#![forbid(unsafe_code)]

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

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let env = Env::from_process();
    let dir = env.state.join("dhcpd");
    let (journal, leases) = match Journal::open(&dir) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    tracing::info!(leases = leases.len(), "lease journal read");
    let raw = match RawSender::open() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("open the packet socket: {e}");
            return ExitCode::from(exit::NO_PERM);
        }
    };
    let (queue_tx, queue_rx) = mpsc::channel(QUEUE);
    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let core = Arc::new(Mutex::new(Core::new(
        journal,
        leases,
        Sockets::new(queue_tx),
    )));
    let decider = tokio::spawn(serve::decide(
        core.clone(),
        raw,
        queue_rx,
        changes_tx.clone(),
    ));
    let ticker = tokio::spawn(serve::tick(core.clone(), changes_tx));
    let iface = Dhcp1::new(core.clone());
    let serve = Box::new(|b: zbus::connection::Builder<'static>| b.serve_at(DHCP_PATH, iface));
    let domain = Dhcp {
        core,
        changes: Some(changes_rx),
    };
    let result = oxwrt_daemon::run_serving("dhcpd", domain, serve).await;
    decider.abort();
    ticker.abort();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
