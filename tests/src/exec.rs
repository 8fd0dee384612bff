//! Running commands, in a network namespace or not: argv vectors, never shell
//! strings, and always with a deadline.
//!
//! Every child is started in a process group of its own, so that killing it
//! on a timeout or at teardown also kills whatever it started, and so that a
//! Ctrl-C at the terminal reaches only the lab's owner, which then tears the
//! lab down in order.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How long a stopped process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How often [`run`] looks whether its child has finished.
const POLL: Duration = Duration::from_millis(5);

/// Errors of running commands.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The argv vector was empty.
    #[error("empty command line")]
    EmptyArgv,
    /// The command could not be started.
    #[error("cannot start `{argv}`: {source}")]
    Spawn { argv: String, source: io::Error },
    /// Waiting for the command failed.
    #[error("cannot wait for `{argv}`: {source}")]
    Wait { argv: String, source: io::Error },
    /// The command ran past its deadline and was killed.
    #[error("`{argv}` did not finish within {timeout:?} and was killed; stderr: {stderr}")]
    Timeout {
        argv: String,
        timeout: Duration,
        stdout: String,
        stderr: String,
    },
    /// The command exited unsuccessfully.
    #[error("`{argv}` failed ({status}): {}", stderr.trim())]
    Failed {
        argv: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    /// The log file for a long-running process could not be opened.
    #[error("cannot open log file {path}: {source}")]
    OpenLog { path: PathBuf, source: io::Error },
}

/// `ip netns exec NS argv...`: the argv vector that runs `argv` inside the
/// named network namespace.
pub fn ns_argv<S: AsRef<OsStr>>(ns: &str, argv: &[S]) -> Vec<OsString> {
    let mut out: Vec<OsString> = ["ip", "netns", "exec", ns].map(OsString::from).into();
    out.extend(argv.iter().map(|a| a.as_ref().to_owned()));
    out
}

/// Renders an argv vector for messages (not for a shell).
pub fn display_argv<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` to completion, killing its process group if it is still
/// running after `timeout`. A non-zero exit status is not an error here: the
/// caller reads it from the returned [`Output`] (see [`run_ok`]).
pub fn run<S: AsRef<OsStr>>(argv: &[S], timeout: Duration) -> Result<Output, ExecError> {
    let shown = display_argv(argv);
    let (program, args) = argv.split_first().ok_or(ExecError::EmptyArgv)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| ExecError::Spawn {
            argv: shown.clone(),
            source,
        })?;
    let pid = child.id();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(source) => {
                kill_group(pid, Signal::SIGKILL);
                let _ = child.wait();
                return Err(ExecError::Wait {
                    argv: shown,
                    source,
                });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break None;
        }
        thread::sleep(POLL.min(deadline - now));
    };

    let Some(status) = status else {
        kill_group(pid, Signal::SIGKILL);
        let _ = child.wait();
        let grace = Instant::now() + Duration::from_secs(1);
        return Err(ExecError::Timeout {
            argv: shown,
            timeout,
            stdout: lossy(collect(&stdout, grace).unwrap_or_default()),
            stderr: lossy(collect(&stderr, grace).unwrap_or_default()),
        });
    };

    // Something the command started may still hold its pipes open; give it
    // until the deadline (at least a second) and then give up on it.
    let grace = deadline.max(Instant::now() + Duration::from_secs(1));
    match (collect(&stdout, grace), collect(&stderr, grace)) {
        (Some(stdout), Some(stderr)) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        _ => {
            kill_group(pid, Signal::SIGKILL);
            Err(ExecError::Timeout {
                argv: shown,
                timeout,
                stdout: String::new(),
                stderr: "output still held open by a leftover process".into(),
            })
        }
    }
}

/// Like [`run`], but a non-zero exit status is an [`ExecError::Failed`].
pub fn run_ok<S: AsRef<OsStr>>(argv: &[S], timeout: Duration) -> Result<Output, ExecError> {
    let output = run(argv, timeout)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ExecError::Failed {
            argv: display_argv(argv),
            status: output.status,
            stdout: lossy(output.stdout),
            stderr: lossy(output.stderr),
        })
    }
}

/// Runs `argv` inside network namespace `ns`; see [`run`].
pub fn ns_exec<S: AsRef<OsStr>>(
    ns: &str,
    argv: &[S],
    timeout: Duration,
) -> Result<Output, ExecError> {
    run(&ns_argv(ns, argv), timeout)
}

/// Runs `argv` inside network namespace `ns`; see [`run_ok`].
pub fn ns_exec_ok<S: AsRef<OsStr>>(
    ns: &str,
    argv: &[S],
    timeout: Duration,
) -> Result<Output, ExecError> {
    run_ok(&ns_argv(ns, argv), timeout)
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    } else {
        let _ = tx.send(Vec::new());
    }
    rx
}

fn collect(rx: &mpsc::Receiver<Vec<u8>>, until: Instant) -> Option<Vec<u8>> {
    rx.recv_timeout(until.saturating_duration_since(Instant::now()))
        .ok()
}

pub(crate) fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Sends `signal` to process group `pgid`; a group that is already gone is
/// not an error.
pub(crate) fn kill_group(pgid: u32, signal: Signal) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if raw <= 1 {
        // Never signal "every process" (0) or init's group (1).
        return false;
    }
    !matches!(killpg(Pid::from_raw(raw), signal), Err(Errno::ESRCH))
}

/// A process's identity that survives pid reuse: its pid and its start time
/// in clock ticks since boot (field 22 of `/proc/PID/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    /// The process id.
    pub pid: u32,
    /// Start time since boot, in clock ticks.
    pub start_time: u64,
}

impl ProcId {
    /// The identity of process `pid`, if it exists.
    pub fn of(pid: u32) -> Option<ProcId> {
        proc_stat(pid).map(|(_, start_time)| ProcId { pid, start_time })
    }

    /// The identity of this process.
    pub fn this() -> Option<ProcId> {
        ProcId::of(std::process::id())
    }

    /// Whether this very process is still running (zombies count as gone).
    pub fn is_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }
}

/// State letter and start time of a process, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let fields = stat_fields(pid)?;
    // Field 3 is the state; field 22 is the start time.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((state, start))
}

/// The fields of `/proc/PID/stat` from field 3 (the state) on: the
/// command name (field 2) is in parentheses and may hold anything, so
/// they start after the last ')'. `None` when the process is gone.
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// A long-running process recorded in a lab's state file, so that a lab can
/// be torn down by a process other than the one that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// A short name for messages and the log file.
    pub label: String,
    /// The network namespace it runs in.
    pub ns: Option<String>,
    /// Its identity; it leads its own process group.
    pub id: ProcId,
    /// What was run.
    pub argv: Vec<String>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl ProcessRecord {
    /// Stops the process group this record leads, if the process is still
    /// the one that was recorded: SIGTERM, up to `grace`, then SIGKILL.
    /// Returns whether it had to be killed.
    pub fn terminate(&self, grace: Duration) -> bool {
        if !self.id.is_alive() {
            return false;
        }
        kill_group(self.id.pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.id.is_alive() {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        if self.id.is_alive() {
            kill_group(self.id.pid, Signal::SIGKILL);
            return true;
        }
        false
    }
}

/// A long-running child process (in its own process group, output to a log
/// file) that is stopped and reaped when the guard is dropped, unless it was
/// [detached](ChildGuard::detach).
#[derive(Debug)]
pub struct ChildGuard {
    record: ProcessRecord,
    child: Option<Child>,
}

impl ChildGuard {
    /// Starts `argv` (inside `ns` if given) with stdin from /dev/null and
    /// stdout and stderr appended to `log`.
    pub fn spawn<S: AsRef<OsStr>>(
        label: &str,
        ns: Option<&str>,
        argv: &[S],
        log: &Path,
    ) -> Result<ChildGuard, ExecError> {
        let full = match ns {
            Some(ns) => ns_argv(ns, argv),
            None => argv.iter().map(|a| a.as_ref().to_owned()).collect(),
        };
        let shown = display_argv(&full);
        let (program, args) = full.split_first().ok_or(ExecError::EmptyArgv)?;
        let open_log = |path: &Path| -> Result<File, ExecError> {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| ExecError::OpenLog {
                    path: path.to_owned(),
                    source,
                })
        };
        let out = open_log(log)?;
        let err = open_log(log)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                argv: shown,
                source,
            })?;
        let pid = child.id();
        // The start time is fixed at fork, so it is there even if the child
        // has not exec'd yet; a child that already died is recorded as such.
        let start_time = proc_stat(pid).map_or(0, |(_, start)| start);
        Ok(ChildGuard {
            record: ProcessRecord {
                label: label.to_owned(),
                ns: ns.map(str::to_owned),
                id: ProcId { pid, start_time },
                argv: argv
                    .iter()
                    .map(|a| a.as_ref().to_string_lossy().into_owned())
                    .collect(),
                log: log.to_owned(),
            },
            child: Some(child),
        })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.record.id.pid
    }

    /// The short name given at spawn.
    pub fn label(&self) -> &str {
        &self.record.label
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.record.log
    }

    /// What a state file records about it.
    pub fn record(&self) -> &ProcessRecord {
        &self.record
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ExecError> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().map_err(|source| ExecError::Wait {
                argv: display_argv(&self.record.argv),
                source,
            }),
            None => Ok(None),
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Stops its process group (SIGTERM, then SIGKILL after
    /// [`STOP_GRACE`]) and reaps it; returns its exit status.
    pub fn stop(mut self) -> Result<ExitStatus, ExecError> {
        let argv = display_argv(&self.record.argv);
        match self.child.take() {
            Some(child) => {
                stop_child(child, STOP_GRACE).map_err(|source| ExecError::Wait { argv, source })
            }
            None => Err(ExecError::Wait {
                argv,
                source: io::Error::other("process was detached"),
            }),
        }
    }

    /// Lets the process outlive this guard (and this process); returns the
    /// record with which [`ProcessRecord::terminate`] can stop it later.
    pub fn detach(mut self) -> ProcessRecord {
        self.child = None;
        self.record.clone()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = stop_child(child, STOP_GRACE);
        }
    }
}

fn stop_child(mut child: Child, grace: Duration) -> io::Result<ExitStatus> {
    let pid = child.id();
    if let Some(status) = child.try_wait()? {
        // The leader is gone; anything left in its group goes too.
        kill_group(pid, Signal::SIGKILL);
        return Ok(status);
    }
    kill_group(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            kill_group(pid, Signal::SIGKILL);
            return Ok(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    kill_group(pid, Signal::SIGKILL);
    child.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_argv_prefixes_ip_netns_exec() {
        let argv = ns_argv("oxl-x-isp", &["ping", "-c", "1"]);
        assert_eq!(
            display_argv(&argv),
            "ip netns exec oxl-x-isp ping -c 1".to_owned()
        );
    }

    #[test]
    fn run_returns_output_and_status() -> Result<(), ExecError> {
        let out = run(
            &["sh", "-c", "echo hi; echo err >&2; exit 3"],
            Duration::from_secs(5),
        )?;
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"err\n");
        Ok(())
    }

    #[test]
    fn run_ok_reports_failure() {
        let err = run_ok(&["false"], Duration::from_secs(5));
        assert!(matches!(err, Err(ExecError::Failed { .. })), "{err:?}");
    }

    #[test]
    fn run_kills_on_timeout() {
        let start = Instant::now();
        let err = run(&["sleep", "30"], Duration::from_millis(200));
        assert!(matches!(err, Err(ExecError::Timeout { .. })), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn timeout_kills_the_whole_group() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("oxwrt-lab-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let pidfile = dir.join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let err = run(&["sh", "-c", &script], Duration::from_millis(300));
        assert!(matches!(err, Err(ExecError::Timeout { .. })), "{err:?}");
        let pid: u32 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
        let gone = crate::wait::wait_until(
            "grandchild to die",
            Instant::now() + Duration::from_secs(5),
            || ProcId::of(pid).is_none_or(|id| !id.is_alive()),
        );
        std::fs::remove_dir_all(&dir)?;
        gone?;
        Ok(())
    }

    #[test]
    fn empty_argv_is_an_error() {
        let empty: [&str; 0] = [];
        assert!(matches!(
            run(&empty, Duration::from_secs(1)),
            Err(ExecError::EmptyArgv)
        ));
    }

    #[test]
    fn child_guard_stops_on_drop() -> Result<(), Box<dyn std::error::Error>> {
        let log = std::env::temp_dir().join(format!("oxwrt-lab-guard-{}.log", std::process::id()));
        let guard = ChildGuard::spawn("sleep", None, &["sleep", "30"], &log)?;
        let id = guard.record().id;
        assert!(id.is_alive());
        drop(guard);
        assert!(!id.is_alive());
        std::fs::remove_file(&log)?;
        Ok(())
    }

    #[test]
    fn this_process_is_alive() {
        assert!(ProcId::this().is_some_and(|id| id.is_alive()));
    }
}
