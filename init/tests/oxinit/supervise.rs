//! oxinit from outside: the built binary in a temporary root with the
//! real broker, driven over the bus. Needs root (the broker runs as
//! uid 0 in a private mount namespace); otherwise each test prints
//! `SKIP: needs root`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use bus_schema::bus::{Init1Proxy, ServiceStatus};
use futures_util::StreamExt;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::time::{Instant, sleep, timeout};

const LIMIT: Duration = Duration::from_secs(60);

fn skip() -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: needs root");
        return true;
    }
    if !Path::new("/usr/bin/dbus-daemon").exists() {
        println!("SKIP: no /usr/bin/dbus-daemon");
        return true;
    }
    false
}

/// One oxinit in its own root; killed (SIGKILL) if a test panics.
struct Router {
    _dir: tempfile::TempDir,
    root: PathBuf,
    child: Option<Child>,
}

impl Router {
    fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let file = root.join("extra.toml");
        std::fs::write(&file, extra).expect("write extra services");
        let child = Command::new(env!("CARGO_BIN_EXE_oxinit"))
            .arg("--root")
            .arg(&root)
            .args([
                "--without",
                "configd",
                "--without",
                "netd",
                "--without",
                "fwd",
                "--without",
                "dhcpd",
                "--without",
                "dnsd",
                "--without",
                "ctld",
            ])
            .arg("--extra-services")
            .arg(&file)
            .stdin(Stdio::null())
            .spawn()
            .expect("start oxinit");
        Self {
            _dir: dir,
            root,
            child: Some(child),
        }
    }

    fn address(&self) -> String {
        bus_schema::bus::address_for(&self.root.join("run/oxwrt"))
    }

    /// Connects as soon as oxinit serves Init1 (boot may go on).
    async fn connect(&self) -> (zbus::Connection, Init1Proxy<'static>) {
        let sock = self.root.join("run/oxwrt/bus.sock");
        loop {
            if sock.exists() {
                if let Ok(conn) = zbus::connection::Builder::address(self.address().as_str())
                    .build()
                    .await
                {
                    let proxy = Init1Proxy::new(&conn).await.expect("proxy");
                    if proxy.phase().await.is_ok() {
                        return (conn, proxy);
                    }
                }
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then the exit code.
    async fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM oxinit");
        tokio::task::spawn_blocking(move || child.wait().expect("wait").code())
            .await
            .expect("join")
    }
}

impl Drop for Router {
    /// After a panic: SIGTERM, so oxinit takes its services along;
    /// SIGKILL if it does not exit within 10 s.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            for _ in 0..1000 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn find<'a>(list: &'a [ServiceStatus], name: &str) -> &'a ServiceStatus {
    list.iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

/// Polls ListServices until `pred` holds for `name`'s status.
async fn wait_status(
    proxy: &Init1Proxy<'_>,
    name: &str,
    pred: impl Fn(&ServiceStatus) -> bool,
) -> ServiceStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = proxy.list_services().await.expect("ListServices");
        let s = find(&list, name);
        if pred(s) {
            return s.clone();
        }
        assert!(Instant::now() < deadline, "{name} never got there: {s:?}");
        sleep(Duration::from_millis(20)).await;
    }
}

const SERVICES: &str = r#"
[[service]]
name = "sleeper"
exec = "/bin/sh"
args = ["-c", "echo hello from sleeper; echo ready >&3; exec sleep 1000"]
ready = "fd"
depends_on = ["bus"]

[[service]]
name = "crasher"
exec = "/bin/sh"
args = ["-c", "exit 3"]
depends_on = ["bus"]

[[service]]
name = "badconfig"
exec = "/bin/sh"
args = ["-c", "echo ready >&3; exit 78"]
depends_on = ["bus"]
"#;

#[tokio::test]
async fn supervises_respawns_and_stops_cleanly() {
    if skip() {
        return;
    }
    timeout(LIMIT, async {
        let mut router = Router::start(SERVICES);
        let (_conn, proxy) = router.connect().await;
        let mut changes = proxy.receive_service_changed().await.expect("subscribe");

        wait_status(&proxy, "sleeper", |s| s.state == "running").await;
        let list = proxy.list_services().await.expect("ListServices");
        let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bus", "sleeper", "crasher", "badconfig"]);
        let bus = find(&list, "bus").clone();
        let sleeper = find(&list, "sleeper").clone();
        assert_eq!(bus.state, "running");
        assert_eq!(sleeper.state, "running");
        assert!(bus.pid > 0 && sleeper.pid > 0);
        let mut pids = vec![bus.pid, sleeper.pid];

        // A service that exits 78 fails after one run, without respawns.
        let bad = wait_status(&proxy, "badconfig", |s| s.state == "failed").await;
        assert_eq!(bad.restarts, 0);
        assert_eq!(bad.reason, "bad config (exit 78)");
        assert_eq!(bad.last_exit, "exited 78");

        // kill -9: it comes back with a new pid and restarts = 1.
        kill(Pid::from_raw(sleeper.pid as i32), Signal::SIGKILL).expect("kill sleeper");
        let back = loop {
            let signal = changes.next().await.expect("signal stream");
            let s = signal.args().expect("args").status;
            if s.name == "sleeper" && s.state == "running" {
                break s;
            }
        };
        assert_eq!(back.restarts, 1);
        assert_ne!(back.pid, sleeper.pid);
        assert_eq!(back.last_exit, "killed by SIGKILL");
        pids.push(back.pid);

        // A crash loop ends failed, and a signal says so.
        let failed = loop {
            let signal = changes.next().await.expect("signal stream");
            let s = signal.args().expect("args").status;
            if s.name == "crasher" && s.state == "failed" {
                break s;
            }
        };
        assert_eq!(failed.reason, "crashed 5 times within 60s");
        assert_eq!(failed.last_exit, "exited 3");
        assert_eq!(failed.restarts, 4);

        // Restart changes only sleeper's pid.
        let before = proxy.list_services().await.expect("ListServices");
        proxy.restart("sleeper").await.expect("Restart");
        let after = wait_status(&proxy, "sleeper", |s| {
            s.state == "running" && s.pid != back.pid && s.pid != 0
        })
        .await;
        assert_eq!(after.restarts, 2);
        pids.push(after.pid);
        let now = proxy.list_services().await.expect("ListServices");
        assert_eq!(find(&now, "bus").pid, find(&before, "bus").pid);

        // Errors: unknown names, and the bus cannot be stopped.
        let e = proxy.stop("nope").await.expect_err("unknown");
        assert!(e.to_string().contains("NotFound"), "{e}");
        let e = proxy.stop("bus").await.expect_err("bus");
        assert!(e.to_string().contains("the bus cannot be stopped"), "{e}");

        // Stop keeps it down; Start brings it back.
        proxy.stop("sleeper").await.expect("Stop");
        wait_status(&proxy, "sleeper", |s| s.state == "stopped" && s.pid == 0).await;
        proxy.start("sleeper").await.expect("Start");
        let started = wait_status(&proxy, "sleeper", |s| s.state == "running").await;
        assert_eq!(started.restarts, 0);
        pids.push(started.pid);

        // Logs: what sleeper wrote, once per run.
        let logs = proxy.logs("sleeper", 100).await.expect("Logs");
        assert_eq!(
            logs.iter().filter(|l| *l == "hello from sleeper").count(),
            4,
            "{logs:?}"
        );
        assert_eq!(proxy.logs("sleeper", 1).await.expect("Logs").len(), 1);

        // SIGTERM: exit 0, nothing left behind.
        assert_eq!(router.terminate().await, Some(0));
        for pid in pids {
            assert_eq!(
                kill(Pid::from_raw(pid as i32), None),
                Err(nix::errno::Errno::ESRCH),
                "pid {pid} survived"
            );
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_never_ready_dependency_holds_back_its_dependants() {
    if skip() {
        return;
    }
    timeout(LIMIT, async {
        // `mute` closes fd 3 without a line: never ready, so `after`
        // never starts; after its start timeout it counts as a crash.
        let mut router = Router::start(
            r#"
[[service]]
name = "mute"
exec = "/bin/sh"
args = ["-c", "exec 3>&-; exec sleep 1000"]
start_timeout_ms = 500
depends_on = ["bus"]
[service.respawn]
max_crashes = 1

[[service]]
name = "after"
exec = "/bin/sh"
args = ["-c", "echo ready >&3; exec sleep 1000"]
depends_on = ["mute"]
"#,
        );
        let (_conn, proxy) = router.connect().await;
        let mute = wait_status(&proxy, "mute", |s| s.state == "failed").await;
        assert_eq!(mute.last_exit, "killed by SIGKILL (not ready in time)");
        let list = proxy.list_services().await.expect("ListServices");
        let after = find(&list, "after");
        assert_eq!((after.state.as_str(), after.pid), ("stopped", 0));
        assert_eq!(router.terminate().await, Some(0));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn stop_escalates_to_sigkill_and_shutdown_leaves_no_escaped_child() {
    if skip() {
        return;
    }
    timeout(LIMIT, async {
        // `stubborn` ignores SIGTERM; `spawner` leaves a grandchild in a
        // session of its own (out of its process group) and records its pid.
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("grandchild.pid");
        let mut router = Router::start(&format!(
            r#"
[[service]]
name = "stubborn"
exec = "/bin/sh"
args = ["-c", "trap '' TERM; echo ready >&3; while :; do sleep 1; done"]
term_timeout_ms = 300
depends_on = ["bus"]

[[service]]
name = "spawner"
exec = "/bin/sh"
args = ["-c", "setsid sleep 1000 & echo $! > {}; echo ready >&3; exec sleep 1000"]
depends_on = ["bus"]
"#,
            pidfile.display()
        ));
        let (_conn, proxy) = router.connect().await;
        wait_status(&proxy, "stubborn", |s| s.state == "running").await;
        wait_status(&proxy, "spawner", |s| s.state == "running").await;
        proxy.stop("stubborn").await.expect("Stop");
        let stopped = wait_status(&proxy, "stubborn", |s| s.state == "stopped").await;
        assert_eq!(stopped.last_exit, "killed by SIGKILL", "{stopped:?}");

        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        assert!(
            kill(Pid::from_raw(grandchild), None).is_ok(),
            "grandchild not running"
        );
        assert_eq!(router.terminate().await, Some(0));
        // Reaped by oxinit (its subreaper), so the pid is gone entirely.
        assert!(
            kill(Pid::from_raw(grandchild), None).is_err(),
            "the escaped grandchild {grandchild} outlived oxinit"
        );
    })
    .await
    .expect("test timed out");
}
