//! fwd: the firewall daemon. Start-up order: early log, join the bus
//! (serving `org.oxwrt.Firewall1`), converge to the running generation
//! (the framework), follow netd's WAN state, signal readiness; then follow
//! configd and netd until SIGTERM. The table stays in the kernel when fwd
//! exits: a restart changes nothing.

#![deny(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use bus_schema::bus::FIREWALL_PATH;
use fwd::bus::{Firewall1, publish};
use fwd::core::{Core, Outcome};
use oxwrt_daemon::{Domain, Sections, init_logging};
use tokio::sync::Mutex;

/// The domain the daemon framework drives: the shared core.
struct Fwd {
    core: Arc<Mutex<Core>>,
    conn: Option<zbus::Connection>,
}

impl Domain for Fwd {
    async fn check(&mut self, sections: &Sections) -> Result<(), String> {
        self.core
            .lock()
            .await
            .check(sections)
            .map_err(|e| e.to_string())
    }

    async fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        let (outcome, stats) = {
            let mut core = self.core.lock().await;
            let outcome = core.apply(sections).map_err(|e| e.to_string())?;
            (outcome, core.stats().clone())
        };
        match outcome {
            Outcome::Committed { micros } => {
                tracing::info!(micros, "firewall committed");
                if let Some(conn) = &self.conn {
                    publish(conn, &stats).await;
                }
            }
            Outcome::Unchanged => tracing::info!("firewall unchanged: nothing committed"),
            Outcome::Incomplete => {}
        }
        Ok(())
    }

    fn connected(&mut self, conn: &zbus::Connection) {
        self.conn = Some(conn.clone());
        tokio::spawn(fwd::wan::follow(conn.clone(), self.core.clone()));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let core = Arc::new(Mutex::new(Core::new()));
    let iface = Firewall1::new(core.clone());
    let domain = Fwd { core, conn: None };
    let serve = Box::new(|b: zbus::connection::Builder<'static>| b.serve_at(FIREWALL_PATH, iface));
    match oxwrt_daemon::run_serving("fwd", domain, serve).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
