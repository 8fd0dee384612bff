//! Reaping: one task waits for SIGCHLD and collects every ended child
//! with `waitpid(-1, WNOHANG)`, handing each (pid, exit) to the manager,
//! which knows which pid belongs to which service; orphans reparented
//! to us are reaped the same way and ignored there.

use std::time::{Duration, Instant};

use nix::{
    errno::Errno,
    sys::{
        signal::{Signal, kill},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::Pid,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::supervisor::Exit;

/// A child that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// Its pid.
    pub pid: u32,
    /// How it ended.
    pub exit: Exit,
}

/// Becomes the reaper of orphans of our descendants (when not PID 1).
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Listens for SIGCHLD; call before spawning anything. Every reaped child
/// goes to `send`; the task ends when it returns false.
pub fn start(
    send: impl Fn(Reaped) -> bool + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut sigchld = signal(SignalKind::child())?;
    Ok(tokio::spawn(async move {
        loop {
            for r in reap_now() {
                if !send(r) {
                    return;
                }
            }
            if sigchld.recv().await.is_none() {
                return;
            }
        }
    }))
}

/// Collects every child that has ended, without blocking.
pub fn reap_now() -> Vec<Reaped> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push(reaped(pid, Exit::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                out.push(reaped(pid, Exit::Signal(sig.as_str().to_owned())));
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return out,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!("waitpid: {e}");
                return out;
            }
        }
    }
}

fn reaped(pid: Pid, exit: Exit) -> Reaped {
    Reaped {
        pid: pid.as_raw().unsigned_abs(),
        exit,
    }
}

/// Our direct children, from `/proc` (orphans reparented to us included).
pub fn children() -> Vec<Pid> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parent_of(&stat).map(|p| p == me))
                .unwrap_or(false)
        })
        .map(Pid::from_raw)
        .collect()
}

/// The ppid field of a `/proc/<pid>/stat` line (after the `(comm)`).
fn parent_of(stat: &str) -> Option<String> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1).map(str::to_owned)
}

/// At the very end: SIGKILL every remaining child and reap until none is
/// left (or `limit` has passed). Returns how many were killed.
pub fn kill_and_reap_all(limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut killed = 0;
    loop {
        reap_now();
        let left = children();
        if left.is_empty() || Instant::now() >= deadline {
            return killed;
        }
        for pid in left {
            if kill(pid, Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_after_the_command_name() {
        let stat = "42 (a) b (c)) S 7 42 42 0 -1";
        assert_eq!(parent_of(stat).as_deref(), Some("7"));
        assert_eq!(parent_of("garbage"), None);
    }
}
