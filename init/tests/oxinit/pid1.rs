//! oxinit as PID 1: run in fresh pid, mount, UTS and network namespaces
//! (`unshare`), it mounts the early file systems, sets the hostname from
//! the config, boots the broker and configd, and on SIGTERM stops them in
//! reverse order and reboots, which in a child pid namespace means the
//! kernel ends it with SIGHUP. Nothing outside those namespaces changes.
//! Needs root, unshare and dbus-daemon; otherwise it prints `SKIP:`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

fn skip() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root");
    }
    if !Path::new("/usr/bin/dbus-daemon").exists() {
        return Some("no /usr/bin/dbus-daemon");
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        return Some("no unshare (util-linux)");
    }
    None
}

/// Polls `f` until it returns `Some` or the limit passes.
fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn as_pid1_it_mounts_names_the_host_boots_and_reboots_on_sigterm() {
    if let Some(reason) = skip() {
        println!("SKIP: {reason}");
        return;
    }
    // Not under /tmp: as PID 1 oxinit mounts a fresh tmpfs there.
    let dir = tempfile::Builder::new()
        .prefix("oxinit-pid1-")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let root = dir.path();
    let etc = root.join("etc/oxwrt");
    std::fs::create_dir_all(&etc).expect("etc");
    let config = include_str!("../../../config/oxwrt.toml").replacen(
        "hostname = \"oxwrt\"",
        "hostname = \"pid1-box\"",
        1,
    );
    assert!(config.contains("pid1-box"));
    std::fs::write(etc.join("oxwrt.toml"), config).expect("config");
    let secrets = etc.join("oxwrt.secrets.toml");
    std::fs::write(
        &secrets,
        include_str!("../../../config/oxwrt.secrets.toml.example"),
    )
    .expect("secrets");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // The binaries must not be hidden by the new mounts either (the
    // checkout may live under /tmp): run copies from the root.
    let built = Path::new(env!("CARGO_BIN_EXE_oxinit"));
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    for name in ["oxinit", "configd"] {
        let from = built.with_file_name(name);
        assert!(
            from.exists(),
            "{} is not built: run `cargo build --workspace`",
            from.display()
        );
        std::fs::copy(&from, bin.join(name)).expect("copy binary");
    }
    let oxinit = bin.join("oxinit");

    let mut unshare = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount",
            "--uts",
            "--net",
            "--propagation",
            "private",
            "--",
        ])
        .arg(&oxinit)
        .arg("--root")
        .arg(root)
        // The network daemons have their own tests; this one is about
        // PID 1's duties.
        .args([
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
        .stdin(Stdio::null())
        .spawn()
        .expect("start unshare");
    // oxinit is unshare's only child.
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let pid: u32 = wait("oxinit to start", || {
        std::fs::read_to_string(&children)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    });
    let socket = root.join("run/oxwrt/bus.sock");
    wait("the bus", || socket.exists().then_some(()));
    let hostname = || {
        let out = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-u", "hostname"])
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    wait("the hostname", || (hostname()? == "pid1-box").then_some(()));
    // Forwarding is on in its (fresh) network namespace.
    for sysctl in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
        let out = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "cat"])
            .arg(format!("/proc/sys/{sysctl}"))
            .output()
            .expect("nsenter");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{sysctl}");
    }
    // br_netfilter's switches are off where the module exists.
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "sh", "-c"])
        .arg("cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo absent")
        .output()
        .expect("nsenter");
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        value == "0" || value == "absent",
        "bridge-nf-call-iptables {value}"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).expect("mounts");
    for (fstype, target) in [
        ("proc", "/proc"),
        ("sysfs", "/sys"),
        ("devtmpfs", "/dev"),
        ("tmpfs", "/run"),
        ("tmpfs", "/tmp"),
        ("cgroup2", "/sys/fs/cgroup"),
    ] {
        let found = mounts.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&target) && f.get(2) == Some(&fstype)
        });
        // devtmpfs and cgroup2 may be refused in a container; the rest not.
        if !found && matches!(fstype, "devtmpfs" | "cgroup2") {
            println!("note: {fstype} on {target} not mounted here");
            continue;
        }
        assert!(found, "{fstype} on {target} missing:\n{mounts}");
    }
    // configd came up as one of its children: the boot reached `running`.
    wait("configd", || {
        let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        kids.split_whitespace()
            .filter_map(|k| std::fs::read_to_string(format!("/proc/{k}/comm")).ok())
            .any(|c| c.trim() == "configd")
            .then_some(())
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = wait("oxinit to reboot", || unshare.try_wait().ok().flatten());
    // unshare passes on the signal that ended its child: SIGHUP is what
    // reboot(RB_AUTOBOOT) does to the init of a child pid namespace.
    assert_eq!(
        status.signal().or(status.code().map(|c| c - 128)),
        Some(nix::libc::SIGHUP),
        "{status}"
    );
}
