use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::Path,
    process::Command,
};

use super::*;
use crate::spawn;

fn paths(root: &Path) -> Paths {
    Paths::new(root, "/usr/bin".into())
}

#[test]
fn policy_grants_own_and_mutations_per_uid() {
    let conf = render(&paths(Path::new("/r")));
    assert!(conf.contains("<listen>unix:path=/r/run/oxwrt/bus.sock</listen>"));
    assert!(conf.contains("<auth>EXTERNAL</auth>"));
    for uid in [0, 7101, 7106] {
        assert!(conf.contains(&format!("<allow user=\"{uid}\"/>")), "{uid}");
    }
    assert!(conf.contains("<deny own=\"*\"/>"));
    let block = |uid: u32| {
        let start = conf
            .find(&format!("<policy user=\"{uid}\">"))
            .expect("a block per uid");
        let len = conf[start..].find("</policy>").expect("closed");
        conf[start..start + len].to_owned()
    };
    let root = block(0);
    assert!(root.contains("<allow own=\"org.oxwrt.Init\"/>"));
    assert!(root.contains("<allow own=\"org.oxwrt.Config\"/>"));
    assert!(!root.contains("org.oxwrt.Net\""));
    assert!(root.contains("send_interface=\"org.oxwrt.Daemon1\" send_member=\"Apply\""));
    let netd = block(7101);
    assert!(netd.contains("<allow own=\"org.oxwrt.Net\"/>"));
    assert!(!netd.contains("send_member"));
    let ctld = block(7106);
    assert!(ctld.contains("<allow own=\"org.oxwrt.Control\"/>"));
    assert!(ctld.contains("send_interface=\"org.oxwrt.Init1\" send_member=\"Restart\""));
    assert!(!ctld.contains("org.oxwrt.Daemon1"));
    assert!(conf.contains(
        "<deny send_type=\"method_call\" send_interface=\"org.oxwrt.Config1\" send_member=\"Reload\"/>"
    ));
}

#[test]
fn passwd_gets_the_missing_uids() {
    let sys = "root:x:0:0:root:/root:/bin/bash\nnetd:x:7101:7101::/:/bin/false";
    let out = render_passwd(sys);
    assert!(out.starts_with(sys));
    assert!(!out.contains("oxwrt-netd"));
    assert!(out.contains("oxwrt-ctld:x:7106:7106:oxwrt ctld:/nonexistent:/bin/false\n"));
    assert_eq!(out.matches(":x:0:").count(), 1);
    assert!(render_passwd("").starts_with("root:x:0:0:"));
}

fn skip(reason: &str) -> bool {
    println!("SKIP: {reason}");
    true
}

fn no_dbus_daemon() -> bool {
    !Path::new(DBUS_DAEMON).exists() && skip("no /usr/bin/dbus-daemon")
}

/// Starts the broker the way oxinit does; returns it once it is ready.
fn start_broker(p: &Paths) -> spawn::Spawned {
    p.create_dirs().expect("dirs");
    write_files(p).expect("writes policy");
    let as_root = nix::unistd::geteuid().is_root();
    let mut s = spawn::spawn(&spec(p), p, as_root, spawn::Placement::default())
        .expect("spawns dbus-daemon");
    let ready = std::fs::File::from(s.ready.take().expect("ready fd"));
    let mut line = String::new();
    BufReader::new(ready)
        .read_line(&mut line)
        .expect("reads address");
    assert!(line.starts_with(&p.bus_address()), "address line: {line}");
    s
}

fn stop(s: &spawn::Spawned) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(s.pid).expect("pid"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

#[test]
fn dbus_daemon_accepts_the_policy() {
    if no_dbus_daemon() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_broker(&paths(dir.path()));
    stop(&s);
}

fn request_name(p: &Paths, uid: u32, name: &str) -> (bool, String) {
    let out = Command::new("dbus-send")
        .arg(format!("--bus={}", p.bus_address()))
        .args(["--print-reply", "--dest=org.freedesktop.DBus", "/"])
        .arg("org.freedesktop.DBus.RequestName")
        .arg(format!("string:{name}"))
        .arg("uint32:4")
        .uid(uid)
        .gid(uid)
        .output()
        .expect("runs dbus-send");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("uint32 1"), text)
}

#[test]
fn broker_lets_each_uid_own_only_its_names() {
    if no_dbus_daemon() {
        return;
    }
    if !nix::unistd::geteuid().is_root() && skip("needs root (switches uids)") {
        return;
    }
    if !Path::new("/usr/bin/dbus-send").exists() && skip("no dbus-send") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // dbus-send as uid 7101 must reach the socket.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let p = paths(dir.path());
    let s = start_broker(&p);
    let cases = [
        (7101, "org.oxwrt.Net", true),
        (7101, "org.oxwrt.Config", false),
        (0, "org.oxwrt.Net", false),
        (0, "org.oxwrt.Config", true),
        (0, "org.oxwrt.Init", true),
        (7106, "org.oxwrt.Control", true),
        (7106, "org.oxwrt.Init", false),
    ];
    let mut wrong = Vec::new();
    for (uid, name, allowed) in cases {
        let (owned, text) = request_name(&p, uid, name);
        if owned != allowed {
            wrong.push(format!("uid {uid} own {name}: expected {allowed}: {text}"));
        }
    }
    // A uid that is not oxwrt's may not even connect.
    let (owned, _) = request_name(&p, 65534, "org.oxwrt.Net");
    if owned {
        wrong.push("uid 65534 owned a name".into());
    }
    stop(&s);
    assert!(wrong.is_empty(), "{wrong:#?}");
}
