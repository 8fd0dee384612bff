//! cgroup limits from outside: a service that allocates past its
//! `memory_max` is OOM-killed, reported as such and restarted per its
//! policy, while a neighbour runs on untouched; each service's limits are
//! in its cgroup's files, and the cgroups are gone after shutdown. The
//! built-in daemons' limits are checked in
//! `router::each_daemon_runs_as_its_uid_with_only_its_capabilities`.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use oxwrt_lab::testing;

use crate::spine::Stack;

const LIMIT: Duration = Duration::from_secs(120);

/// `hog` fills 128 MiB (`oxwrt-testd --hog-mib`) on its first run only (it
/// leaves a mark in `$RUN`), then sleeps; `hog-once` does so every run,
/// but is never restarted. Without a limit each would just hold its
/// 128 MiB.
fn services() -> String {
    let testd = env!("CARGO_BIN_EXE_oxwrt-testd");
    format!(
        r#"
[[service]]
name = "hog"
exec = "/bin/sh"
args = ["-c", 'echo ready >&3; if [ -e "$OXWRT_RUN/hogged" ]; then exec sleep 1000; fi; : > "$OXWRT_RUN/hogged"; exec {testd} --hog-mib 128']
depends_on = ["configd"]
memory_max = "32M"
pids_max = 8
[service.respawn]
backoff_min_ms = 50

[[service]]
name = "hog-once"
exec = "{testd}"
args = ["--hog-mib", "128"]
ready = "spawned"
depends_on = ["configd"]
memory_max = "16M"
restart = "never"

[[service]]
name = "neighbour"
exec = "/bin/sh"
args = ["-c", "echo ready >&3; exec sleep 1000"]
depends_on = ["configd"]
"#
    )
}

/// Why this host cannot give a process of this test a memory and a pids
/// cgroup, if it cannot: oxinit uses v1's memory and pids hierarchies, or
/// v2 from the root cgroup only.
pub(crate) fn no_cgroups() -> Option<String> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let v1 = |c: &str| {
        own.lines().any(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|l| l.split(',').any(|x| x == c))
        })
    };
    let v2 = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    let v2_root = own.lines().any(|l| l == "0::/")
        && ["memory", "pids"]
            .iter()
            .all(|c| v2.split_whitespace().any(|x| x == *c));
    let usable = v2_root || (v1("memory") && v1("pids"));
    (!usable).then(|| {
        format!(
            "neither cgroup v1 memory and pids hierarchies nor a v2 root cgroup with \
             those controllers here (/proc/self/cgroup: {own:?})"
        )
    })
}

/// The directory of `pid`'s cgroup holding `controller` and the file
/// there that limits it (v1 or v2).
fn limit_file(pid: u32, controller: &str) -> Result<PathBuf, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|e| e.to_string())?;
    let v1 = text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, list, path) = (f.next()?, f.next()?, f.next()?);
        list.split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    });
    let (dir, file) = match (v1, controller) {
        (Some(p), "memory") => (format!("/sys/fs/cgroup/memory{p}"), "memory.limit_in_bytes"),
        (Some(p), _) => (format!("/sys/fs/cgroup/{controller}{p}"), "pids.max"),
        (None, _) => {
            let p = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or("no cgroup line")?;
            let file = if controller == "memory" {
                "memory.max"
            } else {
                "pids.max"
            };
            (format!("/sys/fs/cgroup{p}"), file)
        }
    };
    Ok(PathBuf::from(dir).join(file))
}

/// `pid`'s memory and pids limits, as its cgroup files say.
pub(crate) fn limits(pid: u32) -> Result<(String, String), String> {
    let read = |c| {
        let f = limit_file(pid, c)?;
        fs::read_to_string(&f)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("{}: {e}", f.display()))
    };
    Ok((read("memory")?, read("pids")?))
}

#[test]
fn a_service_past_its_memory_limit_is_oom_killed_reported_and_restarted_alone() {
    testing::run(LIMIT, |scope| {
        if let Some(reason) = no_cgroups() {
            testing::skip(&reason);
            return Ok(());
        }
        let mut stack = Stack::start_services(scope, &services())?;
        let neighbour = stack.wait_service("neighbour", "the neighbour to run", |s| {
            s.state == "running"
        })?;

        // Killed at its limit, said so, and started again per its
        // policy (always): the second run leaves memory alone.
        let hog = stack.wait_service("hog", "hog's OOM kill and restart", |s| {
            s.state == "running" && s.restarts >= 1
        })?;
        assert_eq!(
            hog.last_exit, "killed by the OOM killer at its memory limit (32M)",
            "{hog:?}"
        );
        assert_eq!(hog.restarts, 1, "{hog:?}");
        assert_eq!(
            limits(hog.pid)?,
            ((32u64 << 20).to_string(), "8".to_string()),
            "hog's cgroup"
        );

        // Restart "never": stopped after the kill, not respawned.
        let once = stack.wait_service("hog-once", "hog-once's OOM kill", |s| {
            s.state == "stopped" && !s.last_exit.is_empty()
        })?;
        assert_eq!(
            once.last_exit, "killed by the OOM killer at its memory limit (16M)",
            "{once:?}"
        );
        assert_eq!(once.restarts, 0, "{once:?}");

        // The neighbour never noticed: same process, no limit but its own.
        let now = stack.service("neighbour")?;
        assert_eq!(
            (now.state.as_str(), now.pid, now.restarts),
            ("running", neighbour.pid, 0),
            "{now:?}"
        );
        let (memory, pids) = limits(neighbour.pid)?;
        assert_eq!(pids, "max");
        assert!(
            memory
                .parse::<u64>()
                .map_or(memory == "max", |m| m > 1 << 40),
            "{memory}"
        );

        // Shutdown removes oxinit's cgroups.
        let cgroup = limit_file(neighbour.pid, "memory")?;
        let own = cgroup
            .parent()
            .and_then(|service| service.parent())
            .ok_or("no parent cgroup")?
            .to_path_buf();
        assert!(
            own.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("oxwrt-")),
            "{}",
            own.display()
        );
        stack.shutdown()?;
        assert!(!own.exists(), "{} left after shutdown", own.display());
        Ok(())
    });
}
