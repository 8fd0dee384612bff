//! netd: links, addresses, routes and the WAN uplinks. Start-up order:
//! early log, open rtnetlink and read what netd owned, join the bus
//! (serving `org.oxwrt.Net1`), converge to the running generation, start
//! the DHCP clients, signal readiness; then follow configd, the clients
//! and the kernel's link events until SIGTERM, when the clients stop
//! (releasing their leases where configured).

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use bus_schema::bus::NET_PATH;
use netd::bus::Net1;
use netd::core::Core;
use oxwrt_daemon::{Domain, Env, Sections, exit, init_logging};
use tokio::sync::{Mutex, mpsc};

/// The domain the daemon framework drives: the shared core.
struct Net {
    core: Arc<Mutex<Core>>,
    conn: Arc<OnceLock<zbus::Connection>>,
}

impl Domain for Net {
    async fn check(&mut self, sections: &Sections) -> Result<(), String> {
        self.core.lock().await.check(sections).await
    }

    async fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        self.core.lock().await.apply(sections).await
    }

    fn connected(&mut self, conn: &zbus::Connection) {
        let _ = self.conn.set(conn.clone());
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let env = Env::from_process();
    let conn = Arc::new(OnceLock::new());
    let (events, mut client_events) = mpsc::channel(16);
    let core = match Core::open(env.state.join("netd"), events, conn.clone()) {
        Ok(c) => Arc::new(Mutex::new(c)),
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let mut kernel_events = match netd::monitor::start() {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let follower = {
        let core = core.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(event) = client_events.recv() => core.lock().await.on_client(event).await,
                    Some(()) = kernel_events.recv() => core.lock().await.on_kernel_change().await,
                    else => break,
                }
            }
        })
    };
    let domain = Net {
        core: core.clone(),
        conn,
    };
    let serve =
        Box::new(|b: zbus::connection::Builder<'static>| b.serve_at(NET_PATH, Net1::default()));
    let result = oxwrt_daemon::run_serving("netd", domain, serve).await;
    follower.abort();
    core.lock().await.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
