//! A throwaway network namespace for a crate's own kernel tests (netd's,
//! fwd's): a unique name, loopback up, deleted on drop (also on panic);
//! `ip` and commands inside it, and closures on a thread that entered it.
//! Labs are [`crate::Lab`]; this is the bare namespace.

use std::future::Future;
use std::io;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace named `<prefix>-<pid>-<n>`, deleted on drop.
#[derive(Debug)]
pub struct Netns(String);

impl Netns {
    /// Makes the namespace and brings its loopback up.
    pub fn new(prefix: &str) -> Netns {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `ip -n NS ARGS`, which must succeed; its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        run_ok("ip", &all)
    }

    /// A command inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run ip netns exec {program}: {e}"))
    }

    /// A command inside the namespace, which must succeed; its stdout.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.exec(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} in {}: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Joins this namespace to `other` with a veth pair `a` (here) -- `b`
    /// (there), both up.
    pub fn veth(&self, a: &str, other: &Netns, b: &str) {
        self.ip(&[
            "link", "add", a, "type", "veth", "peer", "name", b, "netns", &other.0,
        ]);
        self.ip(&["link", "set", a, "up"]);
        other.ip(&["link", "set", b, "up"]);
    }

    /// Runs `f` on a thread inside the namespace; a panic in it is passed
    /// on.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in(&self.0, f)
    }

    /// Runs the future `f` makes on a thread inside the namespace, with a
    /// tokio runtime of its own.
    pub fn block_on<T: Send, F: Future<Output = T>>(&self, f: impl FnOnce() -> F + Send) -> T {
        self.run(move || current_thread_runtime().block_on(f()))
    }

    /// Like [`Netns::block_on`], in the background: the thread ends when
    /// the future does (a daemon under test waits for its stop signal).
    pub fn spawn<T, F>(&self, f: impl FnOnce() -> F + Send + 'static) -> std::thread::JoinHandle<T>
    where
        T: Send + 'static,
        F: Future<Output = T>,
    {
        let ns = self.0.clone();
        std::thread::spawn(move || {
            enter(&ns).unwrap_or_else(|e| panic!("enter {ns}: {e}"));
            current_thread_runtime().block_on(f())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `f` on a thread inside network namespace `ns` (a name under
/// `/run/netns`, this scratch namespace or another); the processes it
/// starts live there too. A panic in it is passed on.
pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns).unwrap_or_else(|e| panic!("enter {ns}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Moves the calling thread into network namespace `ns` (a name under
/// `/run/netns`). Sockets it opens afterwards live there.
pub fn enter(ns: &str) -> io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
