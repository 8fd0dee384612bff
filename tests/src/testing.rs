//! Running lab tests: a time limit on every test, the test's labs torn down
//! when the limit hits, and `SKIP: <reason>` when the machine cannot run
//! labs at all (not root, no veth or bridge in the kernel).
//!
//! ```no_run
//! use std::time::Duration;
//! use oxwrt_lab::{LabConfig, testing};
//!
//! testing::run(Duration::from_secs(60), |scope| {
//!     let lab = scope.up(LabConfig::default())?;
//!     lab.check()?;
//!     Ok(())
//! });
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::lab::{Lab, LabConfig};
use crate::state::default_state_dir;

/// What a lab test body returns.
pub type TestResult = Result<(), Box<dyn Error + Send + Sync>>;

/// Environment variable that turns a skip into a failure (set it to `1`
/// where labs must run, so that a broken machine cannot pass quietly).
pub const REQUIRE_ENV: &str = "OXWRT_LAB_REQUIRE";

/// The machine cannot run labs: the test is skipped, with this reason.
#[derive(Debug, thiserror::Error)]
#[error("SKIP: {reason}")]
pub struct Skip {
    /// Why the test cannot run here.
    pub reason: String,
}

/// Labs brought up by one test body, so that they can be torn down from
/// outside the body when it runs out of time.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    labs: Arc<Mutex<Vec<(PathBuf, String)>>>,
}

impl Scope {
    /// [`Lab::up`], remembering the lab; an unsupported machine becomes a
    /// [`Skip`].
    pub fn up(&self, cfg: LabConfig) -> Result<Lab, Box<dyn Error + Send + Sync>> {
        let state_dir = cfg.state_dir.clone().unwrap_or_else(default_state_dir);
        match Lab::up(cfg) {
            Ok(lab) => {
                self.labs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((state_dir, lab.name().to_owned()));
                Ok(lab)
            }
            Err(e) => match e.skip_reason() {
                Some(reason) => Err(Box::new(Skip {
                    reason: reason.to_owned(),
                })),
                None => Err(Box::new(e)),
            },
        }
    }

    /// Tears down every lab this scope brought up that is still there;
    /// returns their names.
    fn down_all(&self) -> Vec<String> {
        let labs = self.labs.lock().unwrap_or_else(PoisonError::into_inner);
        labs.iter()
            .filter(|(dir, name)| Lab::down_in(dir, name).is_ok())
            .map(|(_, name)| name.clone())
            .collect()
    }
}

/// Runs `body` on a thread of its own. Past `limit`, tears down the labs the
/// body brought up through its [`Scope`] and fails the test. An error from
/// the body fails the test, a panic in it is passed on, and a [`Skip`]
/// prints `SKIP: <reason>` and passes, unless `OXWRT_LAB_REQUIRE=1`.
pub fn run<F>(limit: Duration, body: F)
where
    F: FnOnce(&Scope) -> TestResult + Send + 'static,
{
    let scope = Scope::default();
    let inner = scope.clone();
    let (done, finished) = mpsc::channel::<()>();
    let handle = thread::Builder::new()
        .name("lab-test".into())
        .spawn(move || {
            let result = body(&inner);
            drop(done);
            result
        })
        .unwrap_or_else(|e| panic!("cannot start the test thread: {e}"));
    // The sender is dropped when the body returns or unwinds.
    if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
        let torn = scope.down_all();
        panic!("test timed out after {limit:?}; tore down labs {torn:?}");
    }
    match handle.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => match e.downcast_ref::<Skip>() {
            Some(skip) => self::skip(&skip.reason),
            None => panic!("{e}"),
        },
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Reports a test (or part of one) skipped because the machine cannot run
/// it: prints `SKIP: <reason>`, or fails when `OXWRT_LAB_REQUIRE=1`.
pub fn skip(reason: &str) {
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("SKIP: {reason}, but {REQUIRE_ENV}=1");
    }
    println!("SKIP: {reason}");
    eprintln!("SKIP: {reason}");
}

/// Whether the tests can make network namespaces (root); [`skip`]s when
/// not.
pub fn root_or_skip() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        skip("needs root (network namespaces)");
    }
    root
}

/// A private message bus (`dbus-daemon --session`) for testing a daemon's
/// bus interface outside the stack; stopped on drop.
#[derive(Debug)]
pub struct PrivateBus {
    child: std::process::Child,
    /// Its address, for `zbus::connection::Builder::address`.
    pub address: String,
}

impl PrivateBus {
    /// Starts one; `None` (after a [`skip`]) when dbus-daemon is missing.
    pub fn start() -> Option<PrivateBus> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let Ok(mut child) = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .spawn()
        else {
            skip("dbus-daemon is not installed");
            return None;
        };
        let mut address = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| std::io::BufReader::new(out).read_line(&mut address));
        let bus = PrivateBus {
            child,
            address: address.trim().to_string(),
        };
        assert!(
            matches!(read, Some(Ok(n)) if n > 0),
            "dbus-daemon printed no address"
        );
        Some(bus)
    }

    /// A connection to it that serves `iface` at `path` and owns `name`.
    pub async fn serve<I: zbus::object_server::Interface>(
        &self,
        path: &'static str,
        name: &'static str,
        iface: I,
    ) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .serve_at(path, iface)
            .name(name)
            .build()
            .await
            .unwrap_or_else(|e| panic!("serve {name} on the private bus: {e}"))
    }

    /// A client connection to it.
    pub async fn client(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .unwrap_or_else(|e| panic!("connect to the private bus: {e}"))
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passing_body_passes() {
        run(Duration::from_secs(5), |_| Ok(()));
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn an_error_fails() {
        run(Duration::from_secs(5), |_| Err("boom".into()));
    }

    #[test]
    #[should_panic(expected = "timed out")]
    fn a_slow_body_times_out() {
        run(Duration::from_millis(50), |_| {
            thread::sleep(Duration::from_secs(2));
            Ok(())
        });
    }
}
