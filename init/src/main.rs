//! oxinit: oxwrt's init and supervisor.
//!
//! Start-up order (each step is a [`phase::BootPhase`], logged and
//! exposed as the `Phase` property of `org.oxwrt.Init1`):
//!
//! 1. `early`: parse args, start logging; as PID 1 mount proc, sysfs,
//!    devtmpfs, /run, /tmp and cgroup2 and set the hostname; otherwise
//!    become child subreaper. Create `$RUN`, `$STATE` and one
//!    `$STATE/<service>` per service, load the specs (built-ins,
//!    `--extra-services`, `--without`), order them (a bad spec or graph
//!    exits 78), write the broker's `$RUN/bus.conf` and `$RUN/passwd`.
//! 2. `bus`: start the broker (dbus-daemon) and wait for its ready line;
//!    if it fails, stop everything and exit 1. Then connect to the bus,
//!    serve `org.oxwrt.Init1` at `/org/oxwrt/Init` and own
//!    `org.oxwrt.Init`.
//! 3. `config`: start configd; wait until it is ready or failed.
//! 4. `services`: start every other service, each as soon as all its
//!    dependencies are ready.
//! 5. `running`: supervise (respawn with backoff, crash loops fail).
//! 6. `shutdown` (on a signal): stop services in reverse start order,
//!    the broker last; SIGKILL and reap whatever is left; exit 0, or as
//!    PID 1 sync and reboot/halt/power off (see [`pid1::Final`]).

mod broker;
mod bus;
mod cgroup;
mod containers;
mod graph;
mod logs;
mod manager;
mod netns;
mod paths;
mod phase;
mod pid1;
mod reaper;
mod sandbox;
mod spawn;
mod spec;
mod supervisor;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
};
use tracing::{error, info, warn};

use crate::{
    manager::{Event, Host, Manager, Snapshot},
    paths::Paths,
    phase::BootPhase,
    spec::Phase,
};

use bus_schema::exit::{
    CONFIG as EX_CONFIG, SOFTWARE as EX_SOFTWARE, UNAVAILABLE as EX_UNAVAILABLE,
};

/// oxwrt's init and supervisor.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Root every path derives from ($ROOT/etc/oxwrt, $ROOT/run/oxwrt,
    /// $ROOT/var/lib/oxwrt).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Where service binaries are (default: oxinit's own directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// TOML file of extra `[[service]]` entries (same name replaces a
    /// built-in).
    #[arg(long)]
    extra_services: Option<PathBuf>,
    /// Do not run this service (repeatable).
    #[arg(long = "without", value_name = "SERVICE")]
    without: Vec<String>,
    /// Lines of output kept per service.
    #[arg(long, default_value_t = 500)]
    log_lines: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oxinit: tokio runtime: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let code = match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            EX_SOFTWARE
        }
    };
    if std::process::id() == 1 {
        // Returning from PID 1 panics the kernel: whatever went wrong,
        // reboot; if even that fails, stay.
        let e = pid1::finish(pid1::Final::from_signal(Signal::SIGTERM));
        error!("reboot: {e}");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    ExitCode::from(code)
}

fn init_logging(paths: &Paths) {
    use tracing_subscriber::prelude::*;
    let filter = oxwrt_daemon::log_filter();
    let journald = paths
        .journal_socket()
        .and_then(|_| tracing_journald::layer().ok());
    let fmt = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(fmt)
        .init();
}

/// Waits for SIGTERM, SIGINT, SIGUSR1 or SIGUSR2.
async fn termination() -> anyhow::Result<impl Future<Output = Signal>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => Signal::SIGTERM,
            _ = int.recv() => Signal::SIGINT,
            _ = usr1.recv() => Signal::SIGUSR1,
            _ = usr2.recv() => Signal::SIGUSR2,
        }
    })
}

async fn run(args: Args) -> anyhow::Result<u8> {
    let pid1 = std::process::id() == 1;
    let as_root = nix::unistd::geteuid().is_root();
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()
            .context("where is oxinit")?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin")),
    };
    let paths = Paths::new(&args.root, bin_dir);
    let mut early_errors = Vec::new();
    if pid1 {
        early_errors = pid1::mount_early();
    }
    init_logging(&paths);
    let (phase_tx, phase_rx) = watch::channel(BootPhase::Early);
    info!(root = %paths.root.display(), pid1, "phase early");
    for e in early_errors {
        warn!("{e}");
    }
    if pid1 {
        if let Err(e) = pid1::set_hostname(&paths) {
            warn!("set hostname: {e}");
        }
        for e in pid1::enable_forwarding() {
            warn!("{e}");
        }
    } else if let Err(e) = reaper::become_subreaper() {
        warn!("cannot become child subreaper: {e}");
    }
    paths.create_dirs().context("create $RUN and $STATE")?;

    let specs = match load_specs(&args.extra_services, &args.without, &paths) {
        Ok(s) => s,
        Err(e) => {
            error!("{e:#}");
            return Ok(EX_CONFIG);
        }
    };
    let order = match graph::start_order(&specs) {
        Ok(o) => o,
        Err(e) => {
            error!("{e}");
            return Ok(EX_CONFIG);
        }
    };
    if as_root {
        sandbox::report();
    }
    for s in &specs {
        for dir in sandbox::files::state_dirs(s, &paths) {
            Paths::create_state_dir(&dir, s.user, as_root)
                .with_context(|| format!("create state dir {} of {}", dir.display(), s.name))?;
        }
    }
    broker::write_files(&paths).context("write the broker policy")?;

    let stop_signal = termination().await?;
    tokio::pin!(stop_signal);
    let (tx, rx) = mpsc::unbounded_channel();
    let reaped_tx = tx.clone();
    let reaper = reaper::start(move |r| reaped_tx.send(Event::Reaped(r)).is_ok())?;
    // Made last before the services, so no early return leaves it behind.
    let cgroups = as_root.then(cgroup::Cgroups::setup).and_then(|r| {
        r.map(std::sync::Arc::new)
            .inspect_err(|e| {
                warn!(
                    "no cgroups ({e}): services run without memory and task limits, \
                     and an OOM kill is reported as a plain SIGKILL"
                )
            })
            .ok()
    });
    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let (manager, snapshot) = Manager::new(
        specs,
        order,
        Host {
            paths: paths.clone(),
            as_root,
            cgroups: cgroups.clone(),
        },
        args.log_lines,
        tx.clone(),
        changes_tx,
    );
    let rings = manager.rings();
    tokio::spawn(manager.run(rx));

    let boot = boot(
        &tx,
        snapshot.clone(),
        &phase_tx,
        &paths,
        bus::InitServer {
            tx: tx.clone(),
            snapshot: snapshot.clone(),
            rings,
            phase: phase_rx.clone(),
        },
        changes_rx,
    );
    let mut code = 0;
    let mut how = Signal::SIGTERM;
    let mut _conn = None;
    tokio::select! {
        r = boot => match r {
            Ok(conn) => {
                // Every message ends when the connection does: the broker
                // is gone, and with it every way to manage the system.
                let mut messages = zbus::MessageStream::from(&conn);
                _conn = Some(conn);
                tokio::select! {
                    sig = &mut stop_signal => how = sig,
                    () = async { while messages.next().await.is_some() {} } => {
                        error!("lost the bus: shutting down");
                        code = EX_SOFTWARE;
                    }
                }
            }
            Err(e) => {
                error!("{e:#}");
                code = EX_UNAVAILABLE;
            }
        },
        sig = &mut stop_signal => how = sig,
    }
    info!("{how:?}: phase shutdown");
    phase_tx.send_replace(BootPhase::Shutdown);
    let (done_tx, done_rx) = oneshot::channel();
    if tx.send(Event::Shutdown(done_tx)).is_ok() {
        let _ = done_rx.await;
    }
    drop(_conn);
    reaper.abort();
    let killed = reaper::kill_and_reap_all(Duration::from_secs(5));
    if killed > 0 {
        warn!("killed {killed} leftover processes");
    }
    if let Some(c) = cgroups {
        c.remove();
    }
    info!("all services stopped");
    if pid1 {
        let e = pid1::finish(pid1::Final::from_signal(how));
        bail!("reboot: {e}");
    }
    Ok(code)
}

fn load_specs(
    extra: &Option<PathBuf>,
    without: &[String],
    paths: &Paths,
) -> anyhow::Result<Vec<spec::ServiceSpec>> {
    let extras = match extra {
        Some(f) => spec::load_extra(f)?,
        None => Vec::new(),
    };
    Ok(spec::merge(spec::builtins(paths), extras, without)?)
}

/// Waits until every service of `phase` (and before) is settled.
async fn settle(snapshot: &mut watch::Receiver<Snapshot>, phase: Phase) -> anyhow::Result<()> {
    snapshot
        .wait_for(|s| s.settled >= Some(phase))
        .await
        .context("supervisor is gone")?;
    Ok(())
}

async fn boot(
    tx: &mpsc::UnboundedSender<Event>,
    mut snapshot: watch::Receiver<Snapshot>,
    phase: &watch::Sender<BootPhase>,
    paths: &Paths,
    server: bus::InitServer,
    changes: mpsc::UnboundedReceiver<bus_schema::bus::ServiceStatus>,
) -> anyhow::Result<zbus::Connection> {
    let enter = |p: BootPhase, s: Option<Phase>| -> anyhow::Result<()> {
        info!("phase {}", p.as_str());
        phase.send_replace(p);
        if let Some(s) = s {
            tx.send(Event::EnterPhase(s))
                .context("supervisor is gone")?;
        }
        Ok(())
    };
    enter(BootPhase::Bus, Some(Phase::Bus))?;
    settle(&mut snapshot, Phase::Bus).await?;
    let bus_up = snapshot
        .borrow()
        .statuses
        .iter()
        .any(|s| s.name == "bus" && s.state == "running");
    if !bus_up {
        bail!("the bus broker did not start; giving up");
    }
    let address = paths.bus_address();
    let conn = bus::connect(&address, server, containers::Containers::new(tx.clone()))
        .await
        .with_context(|| format!("join the bus at {address}"))?;
    info!("serving org.oxwrt.Init1 on {address}");
    tokio::spawn(bus::announce(conn.clone(), changes, phase.subscribe()));
    enter(BootPhase::Config, Some(Phase::Config))?;
    settle(&mut snapshot, Phase::Config).await?;
    enter(BootPhase::Services, Some(Phase::Services))?;
    settle(&mut snapshot, Phase::Services).await?;
    enter(BootPhase::Running, None)?;
    for s in snapshot
        .borrow()
        .statuses
        .iter()
        .filter(|s| s.state != "running")
    {
        warn!(service = %s.name, state = %s.state, "not running: {}", s.reason);
    }
    Ok(conn)
}
