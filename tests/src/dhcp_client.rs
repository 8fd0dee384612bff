//! The real DHCP clients, run in a client namespace with files of the
//! test's own: ISC dhclient, busybox udhcpc and dhcpcd (dhcpd's tests
//! and the lab's end-to-end tests use them). One hook script
//! serves all three: it records the client's variables per event in
//! `<dir>/<event>.env` and puts the leased address on `eth0`, so nothing
//! outside the namespace is configured (Debian's own scripts would
//! rewrite the host's /etc/resolv.conf).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every client run and every wait gives up after this.
pub const WAIT: Duration = Duration::from_secs(30);

/// The hook; `@DIR@` becomes the client's directory (dhclient and dhcpcd
/// run it with only their own variables).
const SCRIPT: &str = r#"#!/bin/sh
# $reason for dhclient and dhcpcd, $1 for udhcpc.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
DIR=@DIR@
event="${reason:-$1}"
env > "$DIR/$event.env.tmp" && mv "$DIR/$event.env.tmp" "$DIR/$event.env"
addr="${new_ip_address:-$ip}"
mask="${new_subnet_mask:-$subnet}"
case "$event" in
BOUND|RENEW|REBIND|REBOOT|bound|renew)
    ip -4 addr replace "$addr/$mask" dev eth0
    ;;
deconfig|RELEASE|EXPIRE|STOP)
    ip -4 addr flush dev eth0
    ;;
esac
exit 0
"#;

/// A client's variables for one event.
pub type Vars = HashMap<String, String>;

/// The DHCP clients of one namespace's `eth0`, with their files and the
/// hook's records in `dir`.
#[derive(Debug, Clone)]
pub struct DhcpClient {
    ns: String,
    dir: PathBuf,
}

impl DhcpClient {
    /// Clients in namespace `ns`, their files in `dir` (created).
    pub fn new(ns: &str, dir: &Path) -> DhcpClient {
        std::fs::create_dir_all(dir).expect("create the client's directory");
        DhcpClient {
            ns: ns.to_string(),
            dir: dir.to_path_buf(),
        }
    }

    /// The hook script, written on first use; its events land in `dir`.
    fn script(&self) -> PathBuf {
        let path = self.dir.join("hook.sh");
        if !path.exists() {
            let text = SCRIPT.replace("@DIR@", &self.dir.display().to_string());
            std::fs::write(&path, text).expect("write hook");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod hook");
        }
        path
    }

    fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns])
            .args(argv)
            .stdin(Stdio::null());
        c
    }

    /// Runs `argv` to its end (killed after [`WAIT`]), its output in
    /// `<dir>/<label>.log`, which a failure prints.
    fn run(&self, label: &str, argv: &[&str]) {
        let log = self.dir.join(format!("{label}.log"));
        let file = std::fs::File::create(&log).expect("create log");
        let secs = WAIT.as_secs().to_string();
        let mut timed = vec!["timeout", "-s", "KILL", &secs];
        timed.extend_from_slice(argv);
        let status = self
            .command(&timed)
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .status()
            .expect("run client");
        assert!(
            status.success(),
            "{argv:?}: {status}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Waits for the script to have seen `event` and returns its
    /// variables; the record is consumed, so the next wait sees a new one.
    pub fn wait_event(&self, events: &[&str]) -> Vars {
        let deadline = Instant::now() + WAIT;
        loop {
            for event in events {
                let path = self.dir.join(format!("{event}.env"));
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let _ = std::fs::remove_file(&path);
                    return parse(&text);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {events:?} event in {:?}",
                self.dir
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs ISC dhclient once with `mode` (`-1`: lease, `-r`: release),
    /// on the client's own configuration, lease and pid files.
    fn run_dhclient(&self, label: &str, mode: &str) {
        let [conf, leases, pid] =
            ["dhclient.conf", "dhclient.leases", "dhclient.pid"].map(|f| self.dir.join(f));
        let script = self.script();
        self.run(
            label,
            &[
                "dhclient",
                "-4",
                mode,
                "-v",
                "-cf",
                s(&conf),
                "-sf",
                s(&script),
                "-lf",
                s(&leases),
                "-pf",
                s(&pid),
                "eth0",
            ],
        );
    }

    /// ISC dhclient: leases once (it stays in the background to renew) and
    /// returns the BOUND variables.
    pub fn dhclient(&self, hostname: &str) -> Vars {
        std::fs::write(
            self.dir.join("dhclient.conf"),
            format!(
                "send host-name \"{hostname}\";\n\
                 request subnet-mask, routers, domain-name-servers, domain-name, ntp-servers, interface-mtu;\n\
                 initial-interval 1;\ntimeout 20;\n"
            ),
        )
        .expect("write dhclient.conf");
        self.run_dhclient("dhclient", "-1");
        self.wait_event(&["BOUND", "REBOOT"])
    }

    /// `dhclient -r`: releases the lease and stops the background client.
    pub fn dhclient_release(&self) {
        self.run_dhclient("dhclient-release", "-r");
    }

    /// busybox udhcpc in the foreground with `extra` arguments; the caller
    /// waits for its events.
    pub fn udhcpc(&self, hostname: &str, extra: &[&str]) -> ClientProcess {
        let script = self.script();
        let hostname = format!("hostname:{hostname}");
        let mut argv = vec![
            "udhcpc",
            "-i",
            "eth0",
            "-f",
            "-t",
            "20",
            "-T",
            "1",
            "-s",
            s(&script),
            "-x",
            &hostname,
            "-O",
            "ntpsrv",
            "-O",
            "mtu",
        ];
        argv.extend_from_slice(extra);
        let log = std::fs::File::create(self.dir.join("udhcpc.log")).expect("create log");
        let child = self
            .command(&argv)
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn udhcpc");
        ClientProcess(child)
    }

    /// dhcpcd, once (`-1`: it exits once bound), in a mount namespace
    /// with empty /run and /var/lib so that it writes nothing of the
    /// host's; returns the BOUND variables.
    pub fn dhcpcd(&self, hostname: &str) -> Vars {
        let script = self.script();
        let inner = format!(
            "mount -t tmpfs oxh /run && mount -t tmpfs oxh /var/lib && \
             exec dhcpcd -d -4 -1 -B -A -L -t 20 -h {hostname} -o domain_name_servers -o ntp_servers \
             -o interface_mtu -c {} eth0",
            script.display()
        );
        self.run(
            "dhcpcd",
            &[
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &inner,
            ],
        );
        self.wait_event(&["BOUND"])
    }
}

/// A client running in the foreground; killed on drop.
#[derive(Debug)]
pub struct ClientProcess(Child);

impl ClientProcess {
    /// Sends `signal` (`USR1`: renew, `USR2`: release).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for it to exit by itself.
    pub fn wait(mut self) {
        let deadline = Instant::now() + WAIT;
        while self.0.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "client did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn parse(text: &str) -> Vars {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}
