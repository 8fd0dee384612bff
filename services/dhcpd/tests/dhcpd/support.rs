//! The test LAN: a router namespace with bridge `br0` (10.78.0.1/24)
//! where dhcpd runs (its real core, journal, sockets and loops; a test
//! that wants the bus serves it), and client namespaces, each a veth port
//! of the bridge.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bus_schema::bus::DhcpLease;
use bus_schema::config::Sections;
use dhcpd::Change;
use dhcpd::core::Core;
use dhcpd::serve::{Running, lock};
use oxwrt_lab::dhcp_client::DhcpClient;
pub use oxwrt_lab::dhcp_client::WAIT;
pub use oxwrt_lab::scratch::Netns;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

/// The LAN's config: pool .100-.150, options, one static lease.
pub const CONFIG: &str = r#"
version = 1
[system]
hostname = "rtr"
domain = "lan"
[[networks]]
name = "lan"
kind = "lan"
bridge = "br0"
address = "10.78.0.1/24"
[[dhcp.pools]]
network = "lan"
start = "10.78.0.100"
end = "10.78.0.150"
lease_time = "1h"
dns = ["10.78.0.53"]
domain = "test.lan"
ntp = ["10.78.0.123"]
mtu = 1400
[[dhcp.static_leases]]
mac = "02:00:00:78:00:99"
ip = "10.78.0.20"
hostname = "printer"
"#;

pub use oxwrt_lab::testing::root_or_skip;

/// The sections of `text` (a public config).
pub fn sections(text: &str) -> Sections {
    let loaded = bus_schema::config::check_public_text(text).expect("valid config");
    bus_schema::config::sections(&loaded.config, false)
}

/// A running dhcpd.
pub struct Dhcpd {
    pub core: Arc<Mutex<Core>>,
    /// Its lease changes, for a test that publishes them.
    pub changes: Option<UnboundedReceiver<Vec<Change>>>,
    /// Where its bus object sends lease changes of its own.
    pub announce: UnboundedSender<Vec<Change>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Dhcpd {
    /// Starts dhcpd in `ns` with its journal in `dir`, applying `config`.
    pub fn start(ns: &Netns, dir: &Path, config: &str) -> Dhcpd {
        oxwrt_daemon::init_logging();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let dir = dir.to_path_buf();
        let sections = sections(config);
        let thread = ns.spawn(move || async move {
            let mut running = Running::start(&dir).expect("start dhcpd");
            lock(&running.core).apply(&sections).expect("apply");
            let ready = (
                running.core.clone(),
                running.changes.take(),
                running.announce.clone(),
            );
            ready_tx.send(ready).expect("report ready");
            let _ = stop_rx.await;
        });
        let (core, changes, announce) = ready_rx.recv_timeout(WAIT).expect("dhcpd started");
        Dhcpd {
            core,
            changes,
            announce,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The leases now.
    pub fn leases(&self) -> Vec<DhcpLease> {
        lock(&self.core).leases()
    }

    /// Applies another config.
    pub fn apply(&self, config: &str) -> Result<(), String> {
        lock(&self.core).apply(&sections(config))
    }

    /// Waits until a lease satisfies `pred`.
    pub fn wait_lease(&self, what: &str, pred: impl Fn(&DhcpLease) -> bool) -> DhcpLease {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.leases().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no such lease in {:?}",
                self.leases()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until no lease satisfies `pred`.
    pub fn wait_gone(&self, what: &str, pred: impl Fn(&DhcpLease) -> bool) {
        let deadline = Instant::now() + WAIT;
        while self.leases().iter().any(&pred) {
            assert!(
                Instant::now() < deadline,
                "{what}: still leased in {:?}",
                self.leases()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it (as a crash would: nothing is flushed at exit).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Dhcpd {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The router namespace with its bridge, and a scratch directory.
pub struct Lan {
    pub router: Netns,
    pub dir: tempfile::TempDir,
    ports: AtomicUsize,
}

/// A client namespace on the LAN and its DHCP clients.
pub struct Client {
    pub ns: Netns,
    pub dhcp: DhcpClient,
}

impl Lan {
    pub fn new() -> Lan {
        let router = Netns::new("oxh");
        router.ip(&["link", "add", "br0", "type", "bridge", "stp_state", "0"]);
        router.ip(&["link", "set", "br0", "type", "bridge", "forward_delay", "0"]);
        router.ip(&["addr", "add", "10.78.0.1/24", "dev", "br0"]);
        router.ip(&["link", "set", "br0", "up"]);
        Lan {
            router,
            dir: tempfile::tempdir().expect("tempdir"),
            ports: AtomicUsize::new(0),
        }
    }

    /// dhcpd's state directory.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A new client namespace whose `eth0` has `mac` and is a port of
    /// `br0`.
    pub fn client(&self, mac: &str) -> Client {
        let n = self.ports.fetch_add(1, Ordering::Relaxed);
        let ns = Netns::new("oxh");
        let port = format!("p{n}");
        self.router.veth(&port, &ns, "eth0");
        self.router.ip(&["link", "set", &port, "master", "br0"]);
        ns.ip(&["link", "set", "eth0", "down"]);
        ns.ip(&["link", "set", "eth0", "address", mac]);
        ns.ip(&["link", "set", "eth0", "up"]);
        let dhcp = DhcpClient::new(ns.name(), &self.dir.path().join(format!("client{n}")));
        Client { ns, dhcp }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Background clients (dhclient renews on its own) end with their
        // namespace.
        let _ = oxwrt_lab::netns::kill_all(self.ns.name());
    }
}
