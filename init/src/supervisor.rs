//! One service's state machine and respawn policy: plain logic that is
//! told what happened (with the time) and answers what to do. No
//! processes, no clocks of its own.

use std::{collections::VecDeque, time::Duration, time::Instant};

use crate::spec::{Respawn, Restart};

/// Exit status that means "bad config": never respawned.
pub const EX_CONFIG: i32 = bus_schema::exit::CONFIG as i32;

/// A service's state as the bus shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No process, none wanted yet (or stopped by request).
    Stopped,
    /// Spawned, not ready yet.
    Starting,
    /// Ready.
    Running,
    /// Crashed; respawns after a delay.
    Backoff,
    /// Asked to end; SIGKILL follows after the term timeout.
    Stopping,
    /// Crash loop or bad config; stays down until Start or Restart.
    Failed,
}

impl State {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running => "running",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Failed => "failed",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with a status.
    Code(i32),
    /// Killed by a signal (its name, `SIGKILL`).
    Signal(String),
    /// Killed by the kernel's OOM killer at its cgroup's memory limit
    /// (bytes, when it has one).
    OutOfMemory(Option<u64>),
    /// Could not be spawned at all.
    SpawnFailed(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited {c}"),
            Exit::Signal(s) if s == "SIGSYS" => {
                write!(f, "killed by SIGSYS (a syscall outside its seccomp policy)")
            }
            Exit::Signal(s) => write!(f, "killed by {s}"),
            Exit::OutOfMemory(None) => write!(f, "killed by the OOM killer"),
            Exit::OutOfMemory(Some(b)) if b % (1 << 20) == 0 => {
                write!(
                    f,
                    "killed by the OOM killer at its memory limit ({}M)",
                    b >> 20
                )
            }
            Exit::OutOfMemory(Some(b)) => {
                write!(
                    f,
                    "killed by the OOM killer at its memory limit ({b} bytes)"
                )
            }
            Exit::SpawnFailed(e) => write!(f, "spawn failed: {e}"),
        }
    }
}

/// What the caller must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Spawn the process now.
    Spawn,
    /// Spawn it after this delay (then call [`Supervisor::backoff_elapsed`]).
    SpawnAfter(Duration),
    /// SIGTERM the process group; SIGKILL after the term timeout.
    Term,
    /// SIGKILL the process group now.
    Kill,
}

/// One service's supervision state.
#[derive(Debug, Clone)]
pub struct Supervisor {
    policy: Respawn,
    state: State,
    /// Should it run (false after Stop)?
    wanted: bool,
    /// Spawn again once the current process has ended (Restart).
    restart_pending: bool,
    /// The running process was killed for not becoming ready in time.
    timed_out: bool,
    crashes: VecDeque<Instant>,
    backoff: Duration,
    started_at: Option<Instant>,
    restarts: u32,
    last_exit: String,
    reason: String,
}

impl Supervisor {
    /// A stopped service that wants to run.
    pub fn new(policy: Respawn) -> Self {
        Self {
            policy,
            state: State::Stopped,
            wanted: true,
            restart_pending: false,
            timed_out: false,
            crashes: VecDeque::new(),
            backoff: policy.backoff_min,
            started_at: None,
            restarts: 0,
            last_exit: String::new(),
            reason: String::new(),
        }
    }

    /// A new respawn policy (a container service's changed spec); the
    /// state and the crash count stay.
    pub fn set_policy(&mut self, policy: Respawn) {
        self.policy = policy;
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// Does it want to run?
    pub fn wanted(&self) -> bool {
        self.wanted
    }
    /// Respawns since start.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
    /// How the last process ended, or empty.
    pub fn last_exit(&self) -> &str {
        &self.last_exit
    }
    /// Why it failed, or empty.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn reset_crashes(&mut self) {
        self.crashes.clear();
        self.backoff = self.policy.backoff_min;
        self.reason.clear();
    }

    /// Start requested (boot, or the bus's Start): restarts from zero.
    pub fn start(&mut self) -> Action {
        self.wanted = true;
        match self.state {
            State::Stopped | State::Failed | State::Backoff => {
                self.reset_crashes();
                self.restarts = 0;
                Action::Spawn
            }
            State::Stopping => {
                self.restart_pending = true;
                Action::None
            }
            State::Starting | State::Running => Action::None,
        }
    }

    /// Restart requested: clears `failed` and the crash count.
    pub fn restart(&mut self) -> Action {
        self.wanted = true;
        self.reset_crashes();
        match self.state {
            State::Starting | State::Running => {
                self.state = State::Stopping;
                self.restart_pending = true;
                Action::Term
            }
            State::Stopping => {
                self.restart_pending = true;
                Action::None
            }
            State::Stopped | State::Failed | State::Backoff => {
                self.restarts += 1;
                Action::Spawn
            }
        }
    }

    /// Stop requested: it stays stopped until Start or Restart.
    pub fn stop(&mut self) -> Action {
        self.wanted = false;
        self.restart_pending = false;
        match self.state {
            State::Starting | State::Running => {
                self.state = State::Stopping;
                Action::Term
            }
            State::Backoff | State::Failed => {
                self.state = State::Stopped;
                Action::None
            }
            State::Stopped | State::Stopping => Action::None,
        }
    }

    /// The process was spawned; with `ready_now` (ready = spawned) it
    /// is running at once.
    pub fn spawned(&mut self, now: Instant, ready_now: bool) {
        self.started_at = Some(now);
        self.timed_out = false;
        self.state = if ready_now {
            State::Running
        } else {
            State::Starting
        };
    }

    /// It wrote its ready line.
    pub fn ready(&mut self) {
        if self.state == State::Starting {
            self.state = State::Running;
        }
    }

    /// It is not ready after the start timeout: kill it; the exit counts
    /// as a crash.
    pub fn start_timed_out(&mut self) -> Action {
        if self.state == State::Starting {
            self.timed_out = true;
            Action::Kill
        } else {
            Action::None
        }
    }

    /// The backoff delay has passed.
    pub fn backoff_elapsed(&mut self) -> Action {
        if self.state == State::Backoff && self.wanted {
            self.restarts += 1;
            Action::Spawn
        } else {
            Action::None
        }
    }

    /// The process ended (or could not be spawned).
    pub fn exited(&mut self, exit: Exit, now: Instant) -> Action {
        self.last_exit = exit.to_string();
        if self.timed_out {
            self.last_exit.push_str(" (not ready in time)");
        }
        self.timed_out = false;
        let ran = self
            .started_at
            .take()
            .map(|t| now.saturating_duration_since(t));
        if self.state == State::Stopping {
            self.state = State::Stopped;
            if self.restart_pending {
                self.restart_pending = false;
                self.restarts += 1;
                return Action::Spawn;
            }
            return Action::None;
        }
        if exit == Exit::Code(EX_CONFIG) {
            self.state = State::Failed;
            self.reason = format!("bad config (exit {EX_CONFIG})");
            return Action::None;
        }
        let done = match self.policy.restart {
            Restart::Always => false,
            Restart::OnFailure => exit == Exit::Code(0),
            Restart::Never => true,
        };
        if done {
            // Down until Start or Restart, like a stop request.
            self.wanted = false;
            self.state = State::Stopped;
            return Action::None;
        }
        if ran.is_some_and(|d| d >= self.policy.window) {
            self.reset_crashes();
        }
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.policy.window)
        {
            self.crashes.pop_front();
        }
        if self.crashes.len() >= self.policy.max_crashes as usize {
            self.state = State::Failed;
            self.reason = format!(
                "crashed {} times within {}s",
                self.crashes.len(),
                self.policy.window.as_secs()
            );
            return Action::None;
        }
        if !self.wanted {
            self.state = State::Stopped;
            return Action::None;
        }
        self.state = State::Backoff;
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(self.policy.backoff_max);
        Action::SpawnAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(s: &mut Supervisor, now: Instant) -> Action {
        s.spawned(now, false);
        s.ready();
        s.exited(Exit::Code(1), now)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_fails() {
        let policy = Respawn {
            max_crashes: 20,
            window: Duration::from_secs(3600),
            ..Respawn::default()
        };
        let mut s = Supervisor::new(policy);
        let t0 = Instant::now();
        assert_eq!(s.start(), Action::Spawn);
        let mut delays = Vec::new();
        for i in 0..12 {
            match crash(&mut s, t0 + Duration::from_secs(i)) {
                Action::SpawnAfter(d) => delays.push(d.as_millis()),
                other => panic!("crash {i}: {other:?}"),
            }
            assert_eq!(s.state(), State::Backoff);
            assert_eq!(s.backoff_elapsed(), Action::Spawn);
        }
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
        assert_eq!(s.restarts(), 12);
        assert_eq!(s.last_exit(), "exited 1");
    }

    #[test]
    fn crashes_within_the_window_mark_failed() {
        let mut s = Supervisor::new(Respawn::default());
        let t0 = Instant::now();
        s.start();
        for i in 0..4 {
            assert!(matches!(
                crash(&mut s, t0 + Duration::from_secs(i)),
                Action::SpawnAfter(_)
            ));
            s.backoff_elapsed();
        }
        assert_eq!(crash(&mut s, t0 + Duration::from_secs(5)), Action::None);
        assert_eq!(s.state(), State::Failed);
        assert_eq!(s.reason(), "crashed 5 times within 60s");
        assert_eq!(s.backoff_elapsed(), Action::None);
        // Restart clears failed and the count.
        assert_eq!(s.restart(), Action::Spawn);
        assert_eq!(s.reason(), "");
        assert!(matches!(
            crash(&mut s, t0 + Duration::from_secs(6)),
            Action::SpawnAfter(d) if d == Duration::from_millis(100)
        ));
    }

    #[test]
    fn exit_78_fails_at_once() {
        let mut s = Supervisor::new(Respawn::default());
        s.start();
        s.spawned(Instant::now(), true);
        assert_eq!(
            s.exited(Exit::Code(EX_CONFIG), Instant::now()),
            Action::None
        );
        assert_eq!(s.state(), State::Failed);
        assert_eq!(s.reason(), "bad config (exit 78)");
        assert_eq!(s.restarts(), 0);
    }

    #[test]
    fn a_stable_run_resets_the_crash_count() {
        let mut s = Supervisor::new(Respawn::default());
        let t0 = Instant::now();
        s.start();
        for i in 0..4 {
            crash(&mut s, t0 + Duration::from_secs(i));
            s.backoff_elapsed();
        }
        // Runs for longer than the window, then crashes: a fresh count.
        s.spawned(t0 + Duration::from_secs(10), true);
        let a = s.exited(
            Exit::Signal("SIGSEGV".into()),
            t0 + Duration::from_secs(100),
        );
        assert_eq!(a, Action::SpawnAfter(Duration::from_millis(100)));
        assert_eq!(s.last_exit(), "killed by SIGSEGV");
    }

    #[test]
    fn a_seccomp_kill_says_so() {
        assert_eq!(
            Exit::Signal("SIGSYS".into()).to_string(),
            "killed by SIGSYS (a syscall outside its seccomp policy)"
        );
    }

    #[test]
    fn the_restart_policy_decides_which_ends_respawn() {
        let t = Instant::now();
        let end = |restart, exit| {
            let mut s = Supervisor::new(Respawn {
                restart,
                ..Respawn::default()
            });
            s.start();
            s.spawned(t, true);
            (s.exited(exit, t), s.state(), s.wanted())
        };
        let respawn = (
            Action::SpawnAfter(Duration::from_millis(100)),
            State::Backoff,
            true,
        );
        let down = (Action::None, State::Stopped, false);
        let oom = || Exit::OutOfMemory(Some(32 << 20));
        assert_eq!(end(Restart::Always, Exit::Code(0)), respawn);
        assert_eq!(end(Restart::OnFailure, Exit::Code(0)), down);
        assert_eq!(end(Restart::OnFailure, Exit::Code(1)), respawn);
        assert_eq!(end(Restart::OnFailure, oom()), respawn);
        assert_eq!(end(Restart::Never, oom()), down);
        // Start brings a service that ended back.
        let mut s = Supervisor::new(Respawn {
            restart: Restart::Never,
            ..Respawn::default()
        });
        s.start();
        s.spawned(t, true);
        s.exited(Exit::Code(0), t);
        assert_eq!(s.start(), Action::Spawn);
    }

    #[test]
    fn an_oom_kill_says_so_with_the_limit() {
        assert_eq!(
            Exit::OutOfMemory(Some(32 << 20)).to_string(),
            "killed by the OOM killer at its memory limit (32M)"
        );
        assert_eq!(
            Exit::OutOfMemory(Some(1000)).to_string(),
            "killed by the OOM killer at its memory limit (1000 bytes)"
        );
    }

    #[test]
    fn stop_start_and_restart() {
        let mut s = Supervisor::new(Respawn::default());
        let t = Instant::now();
        s.start();
        s.spawned(t, false);
        assert_eq!(s.state(), State::Starting);
        assert_eq!(s.start_timed_out(), Action::Kill);
        assert!(matches!(
            s.exited(Exit::Signal("SIGKILL".into()), t),
            Action::SpawnAfter(_)
        ));
        assert_eq!(s.last_exit(), "killed by SIGKILL (not ready in time)");
        s.backoff_elapsed();
        s.spawned(t, true);
        assert_eq!(s.restart(), Action::Term);
        assert_eq!(s.state(), State::Stopping);
        assert_eq!(s.exited(Exit::Signal("SIGTERM".into()), t), Action::Spawn);
        assert_eq!(s.restarts(), 2);
        s.spawned(t, true);
        assert_eq!(s.stop(), Action::Term);
        assert_eq!(s.exited(Exit::Code(0), t), Action::None);
        assert_eq!(s.state(), State::Stopped);
        assert!(!s.wanted());
        assert_eq!(s.start(), Action::Spawn);
        assert_eq!(s.restarts(), 0);
    }
}
