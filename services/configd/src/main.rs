//! configd: the config broker. Start-up order: early log, open the store
//! (finishing an interrupted write, dropping an unconfirmed generation),
//! load the running generation, connect to the bus, serve
//! `org.oxwrt.Config1` and own `org.oxwrt.Config`, signal readiness,
//! converge the daemons already running (in a task), then serve until
//! SIGTERM or the loss of the bus.

#![forbid(unsafe_code)]

mod bus;
mod core;
mod diff;
mod generation;
mod store;
mod transaction;

use std::process::ExitCode;

use bus_schema::bus::CONFIG_PATH;
use oxwrt_daemon::{Env, Termination, exit, init_logging, notify_ready};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let env = Env::from_process();
    let store = match store::Store::open(&env.etc, &env.state) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let core = match core::Core::start(store, transaction::Timeouts::default()) {
        Ok(c) => c,
        Err(core::StartError::Invalid(e)) => {
            tracing::error!("no valid config to start from:\n{e}");
            return ExitCode::from(exit::CONFIG);
        }
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let generation = core.running().number;
    let config = bus::Config1::new(core);
    match serve(&env, config, generation).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(exit::SOFTWARE)
        }
    }
}

async fn serve(env: &Env, config: bus::Config1, generation: u64) -> anyhow::Result<()> {
    use anyhow::Context;
    use futures_util::StreamExt;
    let mut termination = Termination::install().context("signal handlers")?;
    let conn = zbus::connection::Builder::address(env.bus.as_str())
        .serve_at(CONFIG_PATH, config.clone())
        .name("org.oxwrt.Config")
        .build()
        .await
        .with_context(|| format!("connect to the bus at {}", env.bus))?;
    notify_ready().context("signal readiness")?;
    tracing::info!(generation, "ready");
    // After readiness, so that a daemon slow to apply cannot keep configd
    // from starting; transactions wait for the lock this holds.
    let (c, connection) = (config.clone(), conn.clone());
    tokio::spawn(async move { c.converge(&connection).await });
    // Every message ends when the connection does: the broker is gone.
    let mut messages = zbus::MessageStream::from(&conn);
    tokio::select! {
        () = termination.wait() => {}
        () = async { while messages.next().await.is_some() {} } => {
            anyhow::bail!("lost the bus connection");
        }
    }
    Ok(())
}
