//! The test topology and its tools: namespaces (`oxwrt_lab::scratch`,
//! named `oxn-…`), dnsmasq as upstream, dnsd's server in the router
//! namespace, `dig`, and a time limit per test that also cleans up.
//!
//! ```text
//!  client (192.168.53.10) --- router: dnsd on 192.168.53.1 --- upstream (10.99.0.53)
//!                                      wan0 10.99.0.1
//! ```

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dnsd::core::Core;
use dnsd::server::{DNS_PORT, Shared};
use tokio::sync::oneshot;

pub use oxwrt_lab::scratch::Netns;

pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";
pub const ROUTER: &str = "192.168.53.1";
pub const CLIENT: &str = "192.168.53.10";
pub const ROUTER_WAN: &str = "10.99.0.1";
pub const UPSTREAM: &str = "10.99.0.53";

/// Namespaces and processes a test made, so a timeout can remove them.
static MADE: Mutex<(Vec<String>, Vec<u32>)> = Mutex::new((Vec::new(), Vec::new()));

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces, port 53)".into());
    }
    if Command::new("dig").arg("-v").output().is_err() {
        return Some("dig is not installed (Debian package bind9-dnsutils)".into());
    }
    if !Path::new(DNSMASQ).exists() {
        return Some(format!(
            "{DNSMASQ} is not installed (Debian package dnsmasq-base)"
        ));
    }
    None
}

/// Runs `body` with a time limit; past it, kills the processes and
/// deletes the namespaces the test made, then fails. Prints `SKIP:` and
/// returns when the machine cannot run it.
pub fn timed(limit: Duration, body: impl FnOnce() + Send + 'static) {
    if let Some(reason) = skip_reason() {
        oxwrt_lab::testing::skip(&reason);
        return;
    }
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        body();
        drop(done);
    });
    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
        let made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
        for pid in &made.1 {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        for ns in &made.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        panic!("test timed out after {limit:?}");
    }
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// A fresh namespace, remembered for cleanup on timeout.
pub fn netns() -> Netns {
    let ns = Netns::new("oxn");
    MADE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .0
        .push(ns.name().to_string());
    ns
}

/// Polls `ready` until it holds or 10 s passed.
pub fn wait_until(what: &str, ready: impl FnMut() -> bool) {
    oxwrt_lab::wait_until(what, Instant::now() + Duration::from_secs(10), ready)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The three namespaces, addressed and joined.
pub struct Net {
    pub router: Netns,
    pub client: Netns,
    pub upstream: Netns,
}

impl Net {
    pub fn new() -> Self {
        let (router, client, upstream) = (netns(), netns(), netns());
        router.veth("lan0", &client, "eth0");
        router.ip(&["addr", "add", &format!("{ROUTER}/24"), "dev", "lan0"]);
        client.ip(&["addr", "add", &format!("{CLIENT}/24"), "dev", "eth0"]);
        router.veth("wan0", &upstream, "eth0");
        router.ip(&["addr", "add", &format!("{ROUTER_WAN}/24"), "dev", "wan0"]);
        upstream.ip(&["addr", "add", &format!("{UPSTREAM}/24"), "dev", "eth0"]);
        // The upstream side can send to the LAN address (the outside
        // client of the tests).
        upstream.ip(&["route", "add", "192.168.53.0/24", "via", ROUTER_WAN]);
        Net {
            router,
            client,
            upstream,
        }
    }
}

/// The router's config: `gw.lan` on 192.168.53.1/24, a static lease
/// `printer` (192.168.53.5), a host `nas` (192.168.53.6), `extra`
/// appended (more `[dns]` keys, upstreams).
pub fn config(dns: &str) -> String {
    format!(
        r#"
version = 1
[system]
hostname = "gw"
domain = "lan"

[[networks]]
name = "lan"
kind = "lan"
bridge = "br-lan"
ports = ["lan0"]
address = "{ROUTER}/24"

[[networks]]
name = "wan"
kind = "wan"
device = "wan0"
mode = "static"
address = "{ROUTER_WAN}/24"
gateway = "{UPSTREAM}"

[[dhcp.pools]]
network = "lan"
start = "192.168.53.100"
end = "192.168.53.199"

[[dhcp.static_leases]]
mac = "02:00:00:00:53:05"
ip = "192.168.53.5"
hostname = "printer"

[dns]
{dns}

[[dns.hosts]]
name = "nas"
addresses = ["192.168.53.6"]
"#
    )
}

/// dnsd's server running in the router namespace until dropped.
pub struct Dnsd {
    pub core: Arc<tokio::sync::Mutex<Core>>,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Dnsd {
    /// Starts it with the config `text`; returns once it listens.
    pub fn start(router: &Netns, text: &str) -> Self {
        let loaded = bus_schema::config::check_public_text(text)
            .unwrap_or_else(|e| panic!("invalid test config:\n{e}"));
        let sections = bus_schema::config::sections(&loaded.config, false);
        let shared = Shared::new(0);
        let core = Arc::new(tokio::sync::Mutex::new(Core::new(shared.clone(), DNS_PORT)));
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let run_core = core.clone();
        let thread = router.spawn(move || async move {
            let applied = run_core
                .lock()
                .await
                .apply(&sections)
                .map_err(|e| e.to_string());
            let _ = ready.send(applied);
            let _ = stopped.await;
        });
        is_ready
            .recv_timeout(Duration::from_secs(10))
            .expect("dnsd started")
            .expect("dnsd applied its config");
        Dnsd {
            core,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Dnsd {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A child process, killed on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dnsmasq as the upstream: authoritative for `up.test` (so negative
/// answers carry an SOA), TTL 600, logging every query to `log`.
pub struct Upstream {
    _dnsmasq: Guard,
    pub log: tempfile::NamedTempFile,
    /// Holds dnsmasq's pid file (never the host's /run/dnsmasq.pid).
    _dir: tempfile::TempDir,
}

impl Upstream {
    pub fn start(net: &Net, records: &[&str]) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = vec![
            "--keep-in-foreground".into(),
            format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()),
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--user=root".into(),
            "--group=root".into(),
            format!("--listen-address={UPSTREAM}"),
            "--bind-interfaces".into(),
            "--log-queries".into(),
            format!("--log-facility={}", log.path().display()),
            "--auth-zone=up.test".into(),
            "--auth-server=ns.up.test,eth0".into(),
            "--auth-soa=1,hostmaster.up.test,1200,120,1000,600".into(),
        ];
        args.extend(records.iter().map(|r| format!("--host-record={r}")));
        let child = Command::new("ip")
            .args(["netns", "exec", net.upstream.name(), DNSMASQ])
            .args(&args)
            .stdin(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        MADE.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .push(child.id());
        let up = Upstream {
            _dnsmasq: Guard(child),
            log,
            _dir: dir,
        };
        wait_until("dnsmasq answering", || {
            dig(&net.router, UPSTREAM, &["up.test", "SOA"]).status == "NOERROR"
        });
        up
    }

    /// How many queries for `name` reached dnsmasq.
    pub fn queries(&self, name: &str) -> usize {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let needle = format!(" {name} from {ROUTER_WAN}");
        log.lines()
            .filter(|l| (l.contains("query[") || l.contains("auth[")) && l.contains(&needle))
            .count()
    }

    /// Waits until dnsmasq logged a query for `name` (log lines are
    /// written in order: everything before it is in the log too).
    pub fn wait_logged(&self, name: &str) {
        wait_until(&format!("dnsmasq logged {name}"), || self.queries(name) > 0);
    }
}

/// What `dig` printed, parsed.
#[derive(Debug, Default)]
pub struct Dig {
    /// `NOERROR`, `NXDOMAIN`, ...; empty when no answer came.
    pub status: String,
    /// Header flags (`qr`, `aa`, `tc`, ...).
    pub flags: Vec<String>,
    /// Answer records' data (last field), in order.
    pub answers: Vec<String>,
    /// Answer records' TTLs.
    pub ttls: Vec<u32>,
    /// Authority records' types.
    pub authority: Vec<String>,
    /// All of it.
    pub text: String,
}

/// `dig @server ARGS` in `ns`: one try, 2 s.
pub fn dig(ns: &Netns, server: &str, args: &[&str]) -> Dig {
    let mut all = vec![format!("@{server}"), "+time=2".into(), "+tries=1".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(["+noall", "+comments", "+answer", "+authority"].map(String::from));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = ns.exec("dig", &refs);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut d = Dig {
        text: text.clone(),
        ..Dig::default()
    };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").to_string();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            let flags = rest.split(';').next().unwrap_or("");
            d.flags = flags.split_whitespace().map(String::from).collect();
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(';') || line.trim().is_empty() {
            continue;
        } else {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match section {
                "answer" => {
                    d.answers.push(fields.last().unwrap_or(&"").to_string());
                    d.ttls
                        .push(fields.get(1).and_then(|t| t.parse().ok()).unwrap_or(0));
                }
                "authority" => d.authority.push(fields.get(3).unwrap_or(&"").to_string()),
                _ => {}
            }
        }
    }
    d
}

/// A lease as dhcpd reports it.
pub fn lease(mac: &str, ip: Ipv4Addr, hostname: &str) -> bus_schema::bus::DhcpLease {
    bus_schema::bus::DhcpLease {
        network: "lan".into(),
        mac: mac.into(),
        ip: ip.to_string(),
        hostname: hostname.into(),
        expires: 0,
    }
}
