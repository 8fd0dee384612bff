//! ctld: the operator control plane. Start-up order: early log, the
//! server key (made at first start in `$STATE/ctld/server.key`, 0600),
//! join the bus, converge to the running generation (the framework: bind
//! the listeners of `[control]`), signal readiness; then serve until
//! SIGTERM. Needs no capability (the default port, 7443, is not
//! privileged; a port below 1024 would need `CAP_NET_BIND_SERVICE`).

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use bus_schema::control::SERVER_KEY_FILE;
use bus_schema::exit;
use ctld::audit::Audit;
use ctld::server::{Listeners, Server};
use ctld::settings::{Kept, settings};
use oxwrt_daemon::{Domain, Env, Sections, init_logging};
use oxwrt_quic::Identity;

/// The domain the daemon framework drives.
struct Ctld {
    server: Arc<Server>,
    listeners: Listeners,
    kept: Kept,
}

impl Domain for Ctld {
    async fn check(&mut self, sections: &Sections) -> Result<(), String> {
        settings(&self.kept.merged(sections)).map(|_| ())
    }

    async fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        let all = self.kept.merged(sections);
        let s = settings(&all)?;
        // Keys first, so a new listener never serves the old clients.
        self.server.update(&s);
        self.listeners.set(&self.server, &s.listen)?;
        self.kept.keep(all);
        Ok(())
    }

    fn connected(&mut self, conn: &zbus::Connection) {
        self.server.set_bus(conn.clone());
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    if std::env::args().len() > 1 {
        eprintln!("usage: ctld (configured by [control] through configd)");
        // EX_USAGE (sysexits).
        return ExitCode::from(exit::USAGE);
    }
    let env = Env::from_process();
    let dir = env.state.join("ctld");
    let identity = match Identity::load_or_create(&env.state.join(SERVER_KEY_FILE)) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!("server key: {e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    tracing::info!(
        "server key {} ({})",
        identity.public_hex(),
        identity.fingerprint()
    );
    let server = Arc::new(Server::new(identity, Audit::new(dir.join("audit.log"))));
    let domain = Ctld {
        server,
        listeners: Listeners::default(),
        kept: Kept::default(),
    };
    match oxwrt_daemon::run("ctld", domain).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
