//! The WAN DHCP client against dnsmasq: a server namespace running
//! dnsmasq and a client namespace running the client, joined by a veth
//! pair. The test plays netd's core: it puts a bound address on the
//! device, since the client never configures the kernel.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netd::dhcp::{self, ClientConfig, DhcpEvent, DhcpHandle, Lease};
use tokio::sync::mpsc;

use crate::support::{Netns, netns, root_or_skip};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 53);
const POOL: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 77, 0, 50), Ipv4Addr::new(10, 77, 0, 150));
const WAN: &str = "wan0";
const MAC: &str = "02:00:00:00:77:01";
const HOSTNAME: &str = "oxwrt-itest";
const VENDOR: &str = "oxwrt-vendor-test";
/// Every wait gives up after this.
const WAIT: Duration = Duration::from_secs(30);

/// dnsmasq in a namespace of its own, a client namespace, and a veth pair
/// between them; dnsmasq is killed and the namespaces deleted on drop.
struct Isp {
    dnsmasq: Child,
    /// Held for its drop.
    _server: Netns,
    client: Netns,
    dir: tempfile::TempDir,
}

impl Isp {
    /// `None` (after printing why) when the test cannot run here.
    fn start() -> Option<Self> {
        if !root_or_skip() {
            return None;
        }
        if !Path::new(DNSMASQ).exists() {
            oxwrt_lab::testing::skip(&format!(
                "{DNSMASQ} not installed (Debian package dnsmasq-base)"
            ));
            return None;
        }
        let server = netns();
        let client = netns();
        server.ip(&[
            "link",
            "add",
            "isp0",
            "type",
            "veth",
            "peer",
            "name",
            WAN,
            "netns",
            client.name(),
        ]);
        server.ip(&["addr", "add", &format!("{SERVER}/24"), "dev", "isp0"]);
        server.ip(&["link", "set", "isp0", "up"]);
        client.ip(&["link", "set", WAN, "address", MAC]);
        client.ip(&["link", "set", WAN, "up"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str| dir.path().join(name).display().to_string();
        let dnsmasq = Command::new("ip")
            .args(["netns", "exec", server.name(), DNSMASQ])
            .args([
                "--keep-in-foreground".to_string(),
                "--conf-file=/dev/null".into(),
                "--no-resolv".into(),
                "--no-hosts".into(),
                "--user=root".into(),
                "--group=root".into(),
                "--interface=isp0".into(),
                "--bind-interfaces".into(),
                "--port=0".into(),
                format!("--pid-file={}", file("dnsmasq.pid")),
                format!("--dhcp-leasefile={}", file("dnsmasq.leases")),
                format!("--log-facility={}", file("dnsmasq.log")),
                "--log-dhcp".into(),
                format!("--dhcp-range={},{},255.255.255.0,2m", POOL.0, POOL.1),
                format!("--dhcp-option=option:router,{SERVER}"),
                format!("--dhcp-option=option:dns-server,{DNS}"),
                "--dhcp-authoritative".into(),
                "--no-ping".into(),
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let isp = Self {
            dnsmasq,
            _server: server,
            client,
            dir,
        };
        isp.wait_sync("dnsmasq serving DHCP", || {
            isp.log().contains("DHCP, IP range")
        });
        Some(isp)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }

    fn leases(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.leases")).unwrap_or_default()
    }

    fn lease_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config(&self, release_on_stop: bool) -> ClientConfig {
        ClientConfig {
            device: WAN.into(),
            hostname: Some(HOSTNAME.into()),
            vendor_class: Some(VENDOR.into()),
            release_on_stop,
            lease_dir: self.lease_dir(),
        }
    }

    /// What netd's core does with a lease: the address on the device.
    fn apply(&self, lease: &Lease) {
        self.client
            .ip(&["addr", "replace", &lease.address.to_string(), "dev", WAN]);
    }

    fn wait_sync(&self, what: &str, mut done: impl FnMut() -> bool) {
        let end = Instant::now() + WAIT;
        while !done() {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn wait(&self, what: &str, mut done: impl FnMut() -> bool) {
        let end = Instant::now() + WAIT;
        while !done() {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a client (inside the client namespace's runtime).
    fn spawn(&self, release_on_stop: bool) -> (DhcpHandle, mpsc::Receiver<DhcpEvent>) {
        let (tx, rx) = mpsc::channel(8);
        (dhcp::spawn(self.config(release_on_stop), tx), rx)
    }
}

impl Drop for Isp {
    fn drop(&mut self) {
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
    }
}

async fn event(isp: &Isp, rx: &mut mpsc::Receiver<DhcpEvent>) -> DhcpEvent {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the client ended\n{}", isp.log()),
        Err(_) => panic!("no event in {WAIT:?}\n{}", isp.log()),
    }
}

async fn bound(isp: &Isp, rx: &mut mpsc::Receiver<DhcpEvent>) -> Lease {
    match event(isp, rx).await {
        DhcpEvent::Bound(l) => l,
        other => panic!("expected Bound, got {other:?}\n{}", isp.log()),
    }
}

fn in_pool(lease: &Lease) -> bool {
    let a = lease.address.addr();
    POOL.0 <= a && a <= POOL.1 && lease.address.prefix_len() == 24
}

/// Drops DHCP broadcasts in and out of the client namespace and counts
/// DHCP unicast between `ours` and the server, so that only unicast can
/// carry a renewal. `false` when nft is missing.
fn isolate_unicast(ns: &Netns, ours: Ipv4Addr) -> bool {
    if Command::new("nft").arg("--version").output().is_err() {
        oxwrt_lab::testing::skip(
            "nft not installed; unicast renewal not isolated (part of the test)",
        );
        return false;
    }
    let rules = format!(
        "table ip oxtest {{
            chain in {{ type filter hook input priority 0; policy accept;
                ip daddr 255.255.255.255 udp dport 68 drop;
                ip saddr {SERVER} ip daddr {ours} udp sport 67 udp dport 68 counter; }}
            chain out {{ type filter hook output priority 0; policy accept;
                ip daddr 255.255.255.255 udp dport 67 drop;
                ip saddr {ours} ip daddr {SERVER} udp sport 68 udp dport 67 counter; }}
        }}"
    );
    nft(ns, &[&rules]);
    true
}

fn nft(ns: &Netns, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft"])
        .args(args)
        .output()
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The packet counts of the unicast rules: (in, out).
fn unicast_counts(ns: &Netns) -> (u64, u64) {
    let table = nft(ns, &["list", "table", "ip", "oxtest"]);
    let counts: Vec<u64> = table
        .lines()
        .filter_map(|l| {
            let rest = l.split("counter packets ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect();
    match counts.as_slice() {
        [inbound, outbound] => (*inbound, *outbound),
        _ => panic!("unexpected table:\n{table}"),
    }
}

#[test]
fn acquires_a_lease_with_options_and_identity_and_renews_by_unicast() {
    let Some(isp) = Isp::start() else { return };
    isp.client.block_on(|| async {
        let (handle, mut rx) = isp.spawn(false);
        let lease = bound(&isp, &mut rx).await;
        assert!(in_pool(&lease), "{lease:?}");
        assert_eq!(lease.router, Some(SERVER));
        assert_eq!(lease.dns, vec![DNS]);
        assert_eq!(lease.server, SERVER);
        assert_eq!(lease.lease_secs, 120);
        assert_eq!((lease.t1_secs, lease.t2_secs), (60, 105));
        assert_eq!(
            dhcp::lease::load(&isp.lease_dir(), WAN),
            Some(lease.clone()),
            "persisted"
        );
        // dnsmasq recorded our hostname (option 12) and logged our vendor
        // class (option 60).
        isp.wait("the lease in dnsmasq's file", || {
            isp.leases()
                .contains(&format!("{MAC} {} {HOSTNAME}", lease.address.addr()))
        })
        .await;
        assert!(
            isp.log().contains(&format!("vendor class: {VENDOR}")),
            "{}",
            isp.log()
        );

        isp.apply(&lease);
        let isolated = isolate_unicast(&isp.client, lease.address.addr());
        handle.renew();
        match event(&isp, &mut rx).await {
            DhcpEvent::Renewed(renewed) => {
                assert_eq!(renewed.address, lease.address);
                assert!(renewed.obtained >= lease.obtained);
            }
            other => panic!("expected Renewed, got {other:?}"),
        }
        if isolated {
            let (inbound, outbound) = unicast_counts(&isp.client);
            assert!(
                inbound >= 1 && outbound >= 1,
                "in {inbound}, out {outbound}"
            );
        }
        handle.stop().await;
        assert!(
            dhcp::lease::load(&isp.lease_dir(), WAN).is_some(),
            "kept for INIT-REBOOT"
        );
    });
}

#[test]
fn restart_reuses_the_persisted_lease_by_init_reboot() {
    let Some(isp) = Isp::start() else { return };
    isp.client.block_on(|| async {
        let (handle, mut rx) = isp.spawn(false);
        let first = bound(&isp, &mut rx).await;
        isp.apply(&first);
        handle.stop().await;

        let mark = isp.log().len();
        let (handle, mut rx) = isp.spawn(false);
        let again = bound(&isp, &mut rx).await;
        assert_eq!(again.address, first.address);
        let log = isp.log();
        let since = log.get(mark..).unwrap_or_default();
        assert!(
            since.contains("DHCPREQUEST") && since.contains("DHCPACK"),
            "{since}"
        );
        assert!(
            !since.contains("DHCPDISCOVER"),
            "INIT-REBOOT, not DISCOVER:\n{since}"
        );
        handle.stop().await;
    });
}

#[test]
fn a_lease_from_another_subnet_is_refused_and_replaced() {
    let Some(isp) = Isp::start() else { return };
    let stale = Lease {
        address: "10.99.0.5/24".parse().expect("net"),
        router: Some(Ipv4Addr::new(10, 99, 0, 1)),
        dns: vec![],
        server: Ipv4Addr::new(10, 99, 0, 1),
        lease_secs: 3600,
        t1_secs: 1800,
        t2_secs: 3150,
        obtained: dhcp::unix_now(),
    };
    dhcp::lease::save(&isp.lease_dir(), WAN, &stale).expect("save");
    isp.client.block_on(|| async {
        let (handle, mut rx) = isp.spawn(false);
        match event(&isp, &mut rx).await {
            DhcpEvent::Lost => {}
            other => panic!("expected Lost for the refused lease, got {other:?}"),
        }
        let fresh = bound(&isp, &mut rx).await;
        assert!(in_pool(&fresh), "{fresh:?}");
        let log = isp.log();
        let nak = log.find("DHCPNAK").expect("dnsmasq sent a NAK");
        assert!(log[nak..].contains("DHCPDISCOVER"), "{log}");
        assert_eq!(dhcp::lease::load(&isp.lease_dir(), WAN), Some(fresh));
        handle.stop().await;
    });
}

#[test]
fn stop_releases_when_configured() {
    let Some(isp) = Isp::start() else { return };
    isp.client.block_on(|| async {
        let (handle, mut rx) = isp.spawn(true);
        let lease = bound(&isp, &mut rx).await;
        isp.apply(&lease);
        isp.wait("the lease in dnsmasq's file", || isp.leases().contains(MAC))
            .await;
        handle.stop().await;
        isp.wait("the lease gone from dnsmasq's file", || {
            !isp.leases().contains(MAC)
        })
        .await;
        assert!(isp.log().contains("DHCPRELEASE"), "{}", isp.log());
        assert_eq!(dhcp::lease::load(&isp.lease_dir(), WAN), None);
    });
}
