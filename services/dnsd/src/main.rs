//! dnsd: the LAN's DNS server. Start-up order: early log, join the bus
//! (serving `org.oxwrt.Dns1`), converge to the running generation (the
//! framework: bind the listeners, load names and blocklists), follow
//! dhcpd's leases and netd's WAN DNS servers, signal readiness; then
//! serve until SIGTERM. Needs `CAP_NET_BIND_SERVICE` only (port 53).
//!
//! `dnsd --config FILE` serves the config file's `[dns]` alone, without
//! bus, configd, dhcpd or netd (so the WAN upstreams are unknown:
//! `dns.upstreams` must be set): for benchmarks and debugging.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use bus_schema::bus::DNS_PATH;
use bus_schema::exit;
use dnsd::bus::Dns1;
use dnsd::core::Core;
use dnsd::server::{DNS_PORT, Shared};
use oxwrt_daemon::{Domain, Sections, init_logging};
use tokio::sync::Mutex;

/// The domain the daemon framework drives: the shared core.
struct Dnsd {
    core: Arc<Mutex<Core>>,
}

impl Domain for Dnsd {
    async fn check(&mut self, sections: &Sections) -> Result<(), String> {
        self.core
            .lock()
            .await
            .check(sections)
            .map_err(|e| e.to_string())
    }

    async fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        self.core
            .lock()
            .await
            .apply(sections)
            .map_err(|e| e.to_string())
    }

    fn connected(&mut self, conn: &zbus::Connection) {
        tokio::spawn(dnsd::leases::follow(conn.clone(), self.core.clone()));
        tokio::spawn(dnsd::wan::follow(conn.clone(), self.core.clone()));
    }
}

/// Serves a config file alone until SIGTERM or SIGINT.
async fn standalone(path: &str) -> ExitCode {
    oxwrt_daemon::run_standalone(path, |sections| {
        let mut core = Core::new(Shared::new(0), DNS_PORT);
        core.apply(sections).map_err(|e| {
            tracing::error!("{e}");
            ExitCode::from(exit::CONFIG)
        })?;
        Ok(core)
    })
    .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [flag, path] if flag == "--config" => return standalone(path).await,
        _ => {
            eprintln!("usage: dnsd [--config FILE]");
            // EX_USAGE (sysexits).
            return ExitCode::from(exit::USAGE);
        }
    }
    let shared = Shared::new(0);
    let core = Arc::new(Mutex::new(Core::new(shared.clone(), DNS_PORT)));
    let iface = Dns1::new(shared);
    let domain = Dnsd { core };
    let serve = Box::new(|b: zbus::connection::Builder<'static>| b.serve_at(DNS_PATH, iface));
    match oxwrt_daemon::run_serving("dnsd", domain, serve).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
