//! The manager: one task that owns every service's supervisor, turns
//! what happened (exits, ready lines, timers, bus commands) into what
//! the supervisors decide, and carries the decisions out.

use std::{
    collections::HashMap,
    os::fd::OwnedFd,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime},
};

use bus_schema::bus::{BusError, ServiceStatus};
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    sync::{mpsc, oneshot, watch},
};
use tracing::{debug, error, info, warn};

use crate::{
    cgroup::{Cgroup, Cgroups},
    graph,
    logs::{self, LogRing},
    netns,
    paths::Paths,
    reaper::Reaped,
    spawn::{self, Placement},
    spec::{Phase, Ready, ServiceSpec},
    supervisor::{Action, Exit, State, Supervisor},
};

/// A bus command on one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `Start`.
    Start,
    /// `Stop`.
    Stop,
    /// `Restart`.
    Restart,
}

/// Everything the manager reacts to.
#[derive(Debug)]
pub enum Event {
    /// A child ended.
    Reaped(Reaped),
    /// Service `idx`'s process number `generation` wrote its ready line.
    Ready { idx: usize, generation: u64 },
    /// It was not ready in time.
    StartTimeout { idx: usize, generation: u64 },
    /// Its backoff delay passed.
    BackoffElapsed { idx: usize, generation: u64 },
    /// Its term timeout passed.
    TermTimeout { idx: usize, generation: u64 },
    /// A bus command.
    Command {
        command: Command,
        name: String,
        reply: oneshot::Sender<Result<(), BusError>>,
    },
    /// The config's container services are now these: start the new,
    /// restart the changed, stop the gone.
    Containers {
        specs: Vec<ServiceSpec>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Services of this phase (and earlier) may start.
    EnterPhase(Phase),
    /// Stop everything in reverse start order; reply when done.
    Shutdown(oneshot::Sender<()>),
}

/// What the manager publishes after every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every service, in start order.
    pub statuses: Vec<ServiceStatus>,
    /// The latest phase all of whose services are settled (running,
    /// failed, stopped by request, or blocked by such a dependency).
    pub settled: Option<Phase>,
}

#[derive(Debug)]
struct Service {
    spec: ServiceSpec,
    deps: Vec<usize>,
    sup: Supervisor,
    generation: u64,
    pid: Option<u32>,
    since: u64,
    seen: State,
    /// Made at its first spawn, kept across respawns.
    cgroup: Option<Cgroup>,
    /// Its cgroup's OOM kill count when the current process started.
    oom_kills: u64,
    /// An isolated container's network namespace, made at its first
    /// spawn, kept across respawns.
    netns: Option<OwnedFd>,
    /// A container service the config no longer has: stopped, hidden,
    /// its slot kept (events carry indices) until the name comes back.
    retired: bool,
}

impl Service {
    fn new(spec: ServiceSpec, since: u64) -> Self {
        Self {
            deps: Vec::new(),
            sup: Supervisor::new(spec.respawn),
            spec,
            generation: 0,
            pid: None,
            since,
            seen: State::Stopped,
            cgroup: None,
            oom_kills: 0,
            netns: None,
            retired: false,
        }
    }
}

/// Every service's output, by name; container services come and go.
pub type Rings = Arc<RwLock<HashMap<String, Arc<LogRing>>>>;

/// What the manager starts services with.
#[derive(Debug)]
pub struct Host {
    /// Every path.
    pub paths: Paths,
    /// oxinit may switch uid and make namespaces.
    pub as_root: bool,
    /// oxinit's cgroups, when the kernel offers them.
    pub cgroups: Option<Arc<Cgroups>>,
}

/// Resolves every service's `depends_on` to indices.
fn link_deps(services: &mut [Service]) {
    let index: HashMap<String, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.spec.name.clone(), i))
        .collect();
    for s in services.iter_mut() {
        s.deps = s
            .spec
            .depends_on
            .iter()
            .filter_map(|d| index.get(d).copied())
            .collect();
    }
}

/// The manager task's state.
#[derive(Debug)]
pub struct Manager {
    services: Vec<Service>,
    order: Vec<usize>,
    host: Host,
    log_lines: usize,
    phase: Option<Phase>,
    rings: Rings,
    tx: mpsc::UnboundedSender<Event>,
    snapshot: watch::Sender<Snapshot>,
    changes: mpsc::UnboundedSender<ServiceStatus>,
    last: Vec<ServiceStatus>,
    shutting_down: bool,
    shutdown: Option<(Vec<usize>, oneshot::Sender<()>)>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn pgid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

impl Manager {
    /// A manager for `specs` started in `order` (from `graph`).
    pub fn new(
        specs: Vec<ServiceSpec>,
        order: Vec<usize>,
        host: Host,
        log_lines: usize,
        tx: mpsc::UnboundedSender<Event>,
        changes: mpsc::UnboundedSender<ServiceStatus>,
    ) -> (Self, watch::Receiver<Snapshot>) {
        let rings = specs
            .iter()
            .map(|s| (s.name.clone(), Arc::new(LogRing::new(log_lines))))
            .collect();
        let now = unix_now();
        let mut services: Vec<Service> = specs
            .into_iter()
            .map(|spec| Service::new(spec, now))
            .collect();
        link_deps(&mut services);
        let (snapshot, rx) = watch::channel(Snapshot::default());
        let m = Self {
            services,
            order,
            host,
            log_lines,
            phase: None,
            rings: Arc::new(RwLock::new(rings)),
            tx,
            snapshot,
            changes,
            last: Vec::new(),
            shutting_down: false,
            shutdown: None,
        };
        (m, rx)
    }

    /// Every service's log ring, by name.
    pub fn rings(&self) -> Rings {
        self.rings.clone()
    }

    /// Handles events until every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        self.publish();
        while let Some(event) = rx.recv().await {
            self.handle(event);
            self.kick();
            self.advance_shutdown();
            self.publish();
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Reaped(r) => self.reaped(r),
            Event::Ready { idx, generation } => {
                let s = &mut self.services[idx];
                if s.generation == generation && s.sup.state() == State::Starting {
                    s.sup.ready();
                    info!(service = %s.spec.name, "ready");
                }
            }
            Event::StartTimeout { idx, generation } => {
                if self.services[idx].generation == generation {
                    let a = self.services[idx].sup.start_timed_out();
                    if a != Action::None {
                        warn!(service = %self.services[idx].spec.name, "not ready in time");
                    }
                    self.act(idx, a);
                }
            }
            Event::BackoffElapsed { idx, generation } => {
                if self.services[idx].generation == generation && !self.shutting_down {
                    let a = self.services[idx].sup.backoff_elapsed();
                    self.act(idx, a);
                }
            }
            Event::TermTimeout { idx, generation } => {
                let s = &self.services[idx];
                if let (true, State::Stopping, Some(pid)) =
                    (s.generation == generation, s.sup.state(), s.pid)
                {
                    warn!(service = %s.spec.name, "still running after {:?}; SIGKILL", s.spec.term_timeout);
                    let _ = killpg(pgid(pid), Signal::SIGKILL);
                }
            }
            Event::Command {
                command,
                name,
                reply,
            } => {
                let _ = reply.send(self.command(command, &name));
            }
            Event::Containers { specs, reply } => {
                let _ = reply.send(self.containers(specs));
            }
            Event::EnterPhase(p) => {
                info!("starting phase {p:?}");
                self.phase = Some(p);
            }
            Event::Shutdown(done) => {
                self.shutting_down = true;
                let mut queue: Vec<usize> = self.order.iter().rev().copied().collect();
                queue.sort_by_key(|&i| self.services[i].spec.phase == Phase::Bus);
                self.shutdown = Some((queue, done));
            }
        }
    }

    fn command(&mut self, command: Command, name: &str) -> Result<(), BusError> {
        let idx = self
            .services
            .iter()
            .position(|s| s.spec.name == name && !s.retired)
            .ok_or_else(|| BusError::NotFound(format!("no service {name}")))?;
        if self.shutting_down {
            return Err(BusError::Failed("shutting down".into()));
        }
        if self.services[idx].spec.phase == Phase::Bus && command != Command::Start {
            return Err(BusError::Failed(format!(
                "the bus cannot be {}",
                if command == Command::Stop {
                    "stopped"
                } else {
                    "restarted"
                }
            )));
        }
        info!(service = %name, "{command:?} requested");
        let sup = &mut self.services[idx].sup;
        let a = match command {
            Command::Start => sup.start(),
            Command::Stop => sup.stop(),
            Command::Restart => sup.restart(),
        };
        self.act(idx, a);
        Ok(())
    }

    /// The config's container services become `specs`. Checked whole
    /// first (names, dependencies, start order), so a refused list
    /// changes nothing.
    fn containers(&mut self, specs: Vec<ServiceSpec>) -> Result<(), String> {
        for spec in &specs {
            if self
                .services
                .iter()
                .any(|s| s.spec.name == spec.name && s.spec.container.is_none())
            {
                return Err(format!(
                    "service {}: oxinit already runs a service of that name",
                    spec.name
                ));
            }
        }
        let mut next: Vec<ServiceSpec> = self
            .services
            .iter()
            .filter(|s| s.spec.container.is_none())
            .map(|s| s.spec.clone())
            .collect();
        next.extend(specs.iter().cloned());
        graph::start_order(&next).map_err(|e| e.to_string())?;

        for idx in 0..self.services.len() {
            let s = &mut self.services[idx];
            if s.spec.container.is_some()
                && !s.retired
                && !specs.iter().any(|n| n.name == s.spec.name)
            {
                info!(service = %s.spec.name, "removed from the config");
                s.retired = true;
                s.spec.depends_on.clear();
                s.netns = None;
                let a = s.sup.stop();
                self.act(idx, a);
            }
        }
        let now = unix_now();
        for spec in specs {
            let Some(idx) = self.services.iter().position(|s| s.spec.name == spec.name) else {
                info!(service = %spec.name, "added by the config");
                self.rings
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(spec.name.clone(), Arc::new(LogRing::new(self.log_lines)));
                self.services.push(Service::new(spec, now));
                continue;
            };
            let s = &mut self.services[idx];
            if s.spec == spec && !s.retired {
                continue;
            }
            let network_changed = s.spec.container.as_ref().map(|c| &c.network)
                != spec.container.as_ref().map(|c| &c.network);
            if network_changed {
                s.netns = None;
            }
            s.sup.set_policy(spec.respawn);
            let a = if s.retired {
                info!(service = %spec.name, "added by the config again");
                s.retired = false;
                s.spec = spec;
                s.sup.start()
            } else {
                info!(service = %spec.name, "changed by the config: restarting");
                s.spec = spec;
                s.sup.restart()
            };
            self.act(idx, a);
        }
        link_deps(&mut self.services);
        let specs: Vec<ServiceSpec> = self.services.iter().map(|s| s.spec.clone()).collect();
        self.order = graph::start_order(&specs).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn reaped(&mut self, r: Reaped) {
        let Some(idx) = self.services.iter().position(|s| s.pid == Some(r.pid)) else {
            debug!(pid = r.pid, "reaped orphan: {}", r.exit);
            return;
        };
        let s = &mut self.services[idx];
        s.pid = None;
        // Whatever is left of its process group, and of its cgroup (a
        // process may leave the group, not the cgroup), goes with it.
        let _ = killpg(pgid(r.pid), Signal::SIGKILL);
        let mut exit = r.exit;
        if let Some(cgroup) = &s.cgroup {
            cgroup.kill_all();
            let kills = cgroup.oom_kills();
            if kills > s.oom_kills && exit == Exit::Signal("SIGKILL".into()) {
                exit = Exit::OutOfMemory(s.spec.limits.memory_max);
            }
            s.oom_kills = kills;
        }
        let msg = format!("pid {} {exit}", r.pid);
        let a = s.sup.exited(exit, Instant::now());
        match s.sup.state() {
            State::Failed => error!(service = %s.spec.name, "{msg}: failed: {}", s.sup.reason()),
            State::Stopped => info!(service = %s.spec.name, "{msg}"),
            _ => warn!(service = %s.spec.name, "{msg}"),
        }
        self.act(idx, a);
    }

    fn timer(&self, after: Duration, event: Event) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(event);
        });
    }

    fn act(&mut self, idx: usize, action: Action) {
        let s = &self.services[idx];
        let generation = s.generation;
        match action {
            Action::None => {}
            Action::Spawn if self.shutting_down => {}
            Action::Spawn => self.spawn(idx),
            Action::SpawnAfter(d) => {
                info!(service = %s.spec.name, "respawn in {d:?}");
                self.timer(d, Event::BackoffElapsed { idx, generation });
            }
            Action::Term => {
                if let Some(pid) = s.pid {
                    let _ = killpg(pgid(pid), Signal::SIGTERM);
                    self.timer(s.spec.term_timeout, Event::TermTimeout { idx, generation });
                }
            }
            Action::Kill => {
                if let Some(pid) = s.pid {
                    let _ = killpg(pgid(pid), Signal::SIGKILL);
                }
            }
        }
    }

    fn spawn(&mut self, idx: usize) {
        let s = &mut self.services[idx];
        s.generation += 1;
        let generation = s.generation;
        let name = s.spec.name.clone();
        let network = s.spec.container.as_ref().and_then(|c| c.network.as_ref());
        if let (Some(net), None) = (network, &s.netns) {
            match netns::create(net) {
                Ok(fd) => s.netns = Some(fd),
                Err(e) => {
                    error!(service = %name, "network namespace: {e}");
                    let a = s.sup.exited(
                        Exit::SpawnFailed(format!("network namespace: {e}")),
                        Instant::now(),
                    );
                    return self.act(idx, a);
                }
            }
        }
        if let Some(cgroups) = &self.host.cgroups {
            match cgroups.service(&name, s.spec.limits) {
                Ok(cgroup) => {
                    s.oom_kills = cgroup.oom_kills();
                    s.cgroup = Some(cgroup);
                }
                Err(e) => {
                    s.cgroup = None;
                    error!(service = %name, "cgroup: {e}");
                    let a = s
                        .sup
                        .exited(Exit::SpawnFailed(format!("cgroup: {e}")), Instant::now());
                    return self.act(idx, a);
                }
            }
        }
        let place = Placement {
            cgroup: s.cgroup.as_ref(),
            netns: s.netns.as_ref(),
        };
        match spawn::spawn(&s.spec, &self.host.paths, self.host.as_root, place) {
            Ok(child) => {
                info!(service = %name, pid = child.pid, "started");
                s.pid = Some(child.pid);
                s.sup
                    .spawned(Instant::now(), s.spec.ready == Ready::Spawned);
                let ring = self
                    .rings
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(LogRing::new(0)));
                logs::follow(name.clone(), "stdout", child.stdout, ring.clone());
                logs::follow(name, "stderr", child.stderr, ring);
                if let Some(fd) = child.ready {
                    self.watch_ready(idx, generation, fd);
                    let timeout = self.services[idx].spec.start_timeout;
                    self.timer(timeout, Event::StartTimeout { idx, generation });
                }
            }
            Err(e) => {
                error!(service = %name, "{e}");
                let a = s
                    .sup
                    .exited(Exit::SpawnFailed(e.to_string()), Instant::now());
                self.act(idx, a);
            }
        }
    }

    /// The first complete line on the ready pipe means ready; EOF before
    /// one means never (the start timeout then counts it as a crash).
    /// The pipe is drained to EOF so later writes never hit EPIPE.
    fn watch_ready(&self, idx: usize, generation: u64, fd: OwnedFd) {
        let tx = self.tx.clone();
        let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => rx,
            Err(e) => return warn!("ready pipe: {e}"),
        };
        tokio::spawn(async move {
            let mut reader = BufReader::new(rx);
            let mut line = String::new();
            if matches!(reader.read_line(&mut line).await, Ok(n) if n > 0 && line.ends_with('\n')) {
                let _ = tx.send(Event::Ready { idx, generation });
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink).await;
            }
        });
    }

    /// Is the service up, or will it stay down without someone asking?
    fn settled(&self) -> Vec<bool> {
        let mut dead = vec![false; self.services.len()];
        let mut settled = vec![false; self.services.len()];
        for &i in &self.order {
            let s = &self.services[i];
            let blocked = s.deps.iter().any(|&d| dead[d]);
            let st = s.sup.state();
            dead[i] = st == State::Failed || (st == State::Stopped && (!s.sup.wanted() || blocked));
            settled[i] = st == State::Running || dead[i];
        }
        settled
    }

    /// Starts every wanted service of an entered phase whose
    /// dependencies are all running.
    fn kick(&mut self) {
        let Some(phase) = self.phase else { return };
        if self.shutting_down {
            return;
        }
        for k in 0..self.order.len() {
            let i = self.order[k];
            let s = &self.services[i];
            let deps_up = s
                .deps
                .iter()
                .all(|&d| self.services[d].sup.state() == State::Running);
            if s.spec.phase <= phase && s.sup.state() == State::Stopped && s.sup.wanted() && deps_up
            {
                let a = self.services[i].sup.start();
                self.act(i, a);
            }
        }
    }

    fn advance_shutdown(&mut self) {
        let Some((queue, _)) = &mut self.shutdown else {
            return;
        };
        while let Some(&idx) = queue.first() {
            let s = &mut self.services[idx];
            if s.pid.is_some() {
                if s.sup.state() != State::Stopping {
                    info!(service = %s.spec.name, "stopping");
                    let a = s.sup.stop();
                    self.act(idx, a);
                }
                return;
            }
            s.sup.stop();
            queue.remove(0);
        }
        if let Some((_, done)) = self.shutdown.take() {
            let _ = done.send(());
        }
    }

    fn publish(&mut self) {
        let now = unix_now();
        for s in &mut self.services {
            if s.sup.state() != s.seen {
                s.seen = s.sup.state();
                s.since = now;
            }
        }
        let statuses: Vec<ServiceStatus> = self
            .order
            .iter()
            .filter(|&&i| !self.services[i].retired)
            .map(|&i| {
                let s = &self.services[i];
                ServiceStatus {
                    name: s.spec.name.clone(),
                    state: s.sup.state().as_str().into(),
                    pid: s.pid.unwrap_or(0),
                    restarts: s.sup.restarts(),
                    since: s.since,
                    last_exit: s.sup.last_exit().into(),
                    reason: s.sup.reason().into(),
                }
            })
            .collect();
        for (k, st) in statuses.iter().enumerate() {
            if self.last.get(k) != Some(st) {
                let _ = self.changes.send(st.clone());
            }
        }
        self.last.clone_from(&statuses);
        let flags = self.settled();
        let settled = [Phase::Bus, Phase::Config, Phase::Services]
            .into_iter()
            .take_while(|&p| {
                self.phase.is_some_and(|cur| p <= cur)
                    && self
                        .services
                        .iter()
                        .zip(&flags)
                        .all(|(s, &ok)| s.spec.phase > p || ok)
            })
            .last();
        self.snapshot.send_replace(Snapshot { statuses, settled });
    }
}
