//! The LAN services of the real stack in the lab (tests/lab/): dhcpd
//! leasing to real clients on hosts of the lab's switch, and dnsd
//! answering `dig` on the LAN with local names and the ISP's dnsmasq
//! upstream, through oxinit, configd and the bus.
//!
//! They need root; without it each test prints `SKIP: <reason>`.

use std::time::{Duration, Instant};

use bus_schema::bus::{Dhcp1Proxy, DhcpLease, Init1Proxy};
use futures_util::StreamExt;
use oxwrt_lab::dhcp_client::DhcpClient;
use oxwrt_lab::testing;
use oxwrt_lab::wait_for;

use crate::router::{Router, route_isp_to_lan};
use crate::spine::BoxError;

const LIMIT: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(60);
const STATIC_MAC: &str = "02:00:00:00:01:50";

impl Router {
    pub(crate) fn leases(&self) -> Result<Vec<DhcpLease>, BoxError> {
        let dhcp = self.rt.block_on(Dhcp1Proxy::new(&self.conn))?;
        Ok(self.rt.block_on(dhcp.leases())?)
    }

    pub(crate) fn wait_lease(
        &self,
        what: &str,
        pred: impl Fn(&DhcpLease) -> bool,
    ) -> Result<DhcpLease, BoxError> {
        Ok(wait_for(what, Instant::now() + WAIT, || {
            self.leases().ok()?.into_iter().find(|l| pred(l))
        })?)
    }

    /// A new host on the LAN switch with its DHCP clients.
    pub(crate) fn host(&mut self, mac: &str) -> Result<DhcpClient, BoxError> {
        let ns = self.lab.add_host(mac)?;
        let dir = self.lab.dir().join(format!("dhcp-{ns}"));
        Ok(DhcpClient::new(&ns, &dir))
    }
}

#[test]
fn dhcpd_leases_to_lan_hosts_keeps_leases_across_a_restart_and_a_config_change() {
    testing::run(LIMIT, |scope| {
        let mut router = Router::boot(scope, 1)?;
        let dhcp = router.rt.block_on(Dhcp1Proxy::new(&router.conn))?;
        let mut changes = router.rt.block_on(dhcp.receive_leases_changed())?;

        // A dynamic client: the pool, the router as gateway and DNS, the
        // system's domain, and its hostname on the bus with a signal.
        let host = router.host("02:00:00:00:01:01")?;
        let udhcpc = host.udhcpc("laptop", &[]);
        let bound = host.wait_event(&["bound"]);
        let ip: std::net::Ipv4Addr = bound["ip"].parse()?;
        assert!((100..=199).contains(&ip.octets()[3]), "{bound:?}");
        assert_eq!(bound["router"].trim(), "192.168.1.1");
        assert_eq!(bound["dns"].trim(), "192.168.1.1");
        assert_eq!(bound["domain"], "lan");
        let lease = router.wait_lease("the laptop's lease", |l| l.hostname == "laptop")?;
        assert_eq!(lease.ip, ip.to_string());
        let signal = router
            .rt
            .block_on(async { tokio::time::timeout(WAIT, changes.next()).await })?;
        let args = signal.ok_or("no LeasesChanged")?.args()?.changes;
        assert!(
            args.iter()
                .any(|c| c.event == "granted" && c.lease.hostname == "laptop"),
            "{args:?}"
        );

        // A static lease: its fixed address and name, whatever it asks.
        let printer = router.host(STATIC_MAC)?;
        printer.udhcpc("whatever", &["-q"]).wait();
        assert_eq!(printer.wait_event(&["bound"])["ip"], "192.168.1.50");
        let fixed = router.wait_lease("the printer's", |l| l.mac == STATIC_MAC)?;
        assert_eq!(fixed.hostname, "printer");

        // Restart dhcpd: the leases are back before anyone asks, and a
        // renewal keeps the address.
        let init = router.rt.block_on(Init1Proxy::new(&router.conn))?;
        let before = router.leases()?;
        router.restarted("dhcpd", || Ok(router.rt.block_on(init.restart("dhcpd"))?))?;
        assert_eq!(router.leases()?, before);
        std::thread::sleep(Duration::from_millis(1100));
        udhcpc.signal("USR1");
        let renewed = host.wait_event(&["renew", "bound"]);
        assert_eq!(renewed["ip"], ip.to_string());
        router.wait_lease("the renewal", |l| {
            l.hostname == "laptop" && l.expires > lease.expires
        })?;

        // A DHCP config change through configd keeps every lease; the next
        // renewal carries the new lease time.
        router.reload_with("lease_time = \"1h\"", "lease_time = \"2h\"")?;
        let kept = router.leases()?;
        assert_eq!(kept.len(), 2, "{kept:?}");
        udhcpc.signal("USR1");
        let renewed = host.wait_event(&["renew", "bound"]);
        assert_eq!(renewed["ip"], ip.to_string());
        assert_eq!(renewed["lease"], "7200");
        Ok(())
    });
}

impl Router {
    /// `dig` in namespace `ns` with `args`; its standard output.
    fn dig(&self, ns: &str, args: &[&str]) -> Result<String, BoxError> {
        let out = self.lab.ns_exec(
            ns,
            &[&["dig", "+time=2", "+tries=1"][..], args].concat(),
            Duration::from_secs(20),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `dig +short @192.168.1.1 ARGS` from the first LAN client.
    fn ask(&self, args: &[&str]) -> Result<String, BoxError> {
        let lan = self.ns().lan[0].clone();
        let at = format!("@{}", oxwrt_lab::plan::ROUTER_LAN_ADDR);
        Ok(self
            .dig(&lan, &[&[at.as_str(), "+short"][..], args].concat())?
            .trim()
            .to_string())
    }

    /// How many queries for `name` the ISP's dnsmasq has seen.
    fn upstream_queries(&self, name: &str) -> Result<usize, BoxError> {
        let files = oxwrt_lab::isp::IspFiles::under(&self.lab.dir().join("isp"));
        let log = std::fs::read_to_string(&files.dnsmasq_log)?;
        Ok(log
            .lines()
            .filter(|l| l.contains("query[") && l.contains(&format!(" {name} from")))
            .count())
    }
}

#[test]
fn dnsd_answers_local_names_forwards_caches_blocks_truncates_and_ignores_the_wan() {
    testing::run(LIMIT, |scope| {
        let mut router = Router::boot(scope, 1)?;
        // The router's own name, a [[dns.hosts]] name, a static lease's
        // name before anyone took it, and the PTR of a LAN address.
        wait_for("dnsd to answer", Instant::now() + WAIT, || {
            router
                .ask(&["oxwrt-lab.lan"])
                .ok()
                .filter(|a| a == "192.168.1.1")
        })?;
        assert_eq!(router.ask(&["nas.lan"])?, "192.168.1.10");
        assert_eq!(router.ask(&["printer.lan"])?, "192.168.1.50");
        assert_eq!(router.ask(&["-x", "192.168.1.10"])?, "nas.lan.");

        // A DHCP client's hostname, from dhcpd's leases.
        let host = router.host("02:00:00:00:01:02")?;
        host.udhcpc("tablet", &["-q"]).wait();
        let ip = host.wait_event(&["bound"])["ip"].clone();
        wait_for("tablet.lan", Instant::now() + WAIT, || {
            router.ask(&["tablet.lan"]).ok().filter(|a| *a == ip)
        })?;
        assert_eq!(router.ask(&["-x", &ip])?, "tablet.lan.");

        // A name only the upstream knows; the second answer comes from the
        // cache (the upstream saw one query).
        let name = "cached.example.test";
        assert_eq!(router.ask(&[name])?, "100.64.0.1");
        assert_eq!(router.ask(&[name])?, "100.64.0.1");
        assert_eq!(router.upstream_queries(name)?, 1);

        // Larger than 512 bytes: truncated over UDP without EDNS, whole
        // over TCP.
        let lan = router.ns().lan[0].clone();
        let at = format!("@{}", oxwrt_lab::plan::ROUTER_LAN_ADDR);
        let big = oxwrt_lab::isp::BIG_TXT_NAME;
        let udp = router.dig(&lan, &[&at, "+noedns", "+ignore", big, "TXT"])?;
        assert!(udp.contains(" tc"), "no TC flag over UDP:\n{udp}");
        let tcp = router.dig(&lan, &[&at, "+tcp", "+short", big, "TXT"])?;
        assert_eq!(tcp.matches(&"d".repeat(200)).count(), 1, "{tcp}");

        // A blocklist through configd: the name and its subdomains.
        let list = router.lab.root().join("etc/oxwrt/blocked.txt");
        std::fs::write(&list, "# test\nads.example.test\n")?;
        router.reload_with(
            "listen = [\"lan\"]",
            &format!(
                "listen = [\"lan\"]\nblocklists = [{:?}]",
                list.display().to_string()
            ),
        )?;
        for blocked in ["ads.example.test", "x.ads.example.test"] {
            let answer = router.dig(&lan, &[&at, blocked])?;
            assert!(answer.contains("status: NXDOMAIN"), "{blocked}:\n{answer}");
        }
        // The DNS change kept the names dnsd had learned from dhcpd.
        assert_eq!(router.ask(&["tablet.lan"])?, ip);

        // The WAN side gets no answer, neither at the WAN address nor,
        // routed, at the LAN address.
        route_isp_to_lan(&router)?;
        let isp = router.ns().isp.clone();
        for target in [router.wan.to_string(), "192.168.1.1".to_string()] {
            let answer = router.dig(&isp, &[&format!("@{target}"), "+short", "nas.lan"])?;
            assert!(
                !answer.contains("192.168.1.10"),
                "{target} answered the WAN: {answer}"
            );
            assert!(
                answer.contains("timed out") || answer.is_empty(),
                "{answer}"
            );
        }
        Ok(())
    });
}
