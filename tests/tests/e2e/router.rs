//! The routed data path, with the real stack in the router (oxinit,
//! configd, netd, fwd, dhcpd, dnsd) and the lab's own config (tests/lab/): traffic
//! between the LAN clients and the ISP namespace, through netd's bridge,
//! addresses, DHCP lease and routes and fwd's firewall and NAT. Every
//! peer is a TCP server or client in a lab namespace.
//!
//! They need root; without it each test prints `SKIP: <reason>`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bus_schema::bus::{Config1Proxy, Firewall1Proxy, Init1Proxy, Net1Proxy, WanStatus};
use futures_util::StreamExt;
use oxwrt_lab::peer::{Conn, Server};
use oxwrt_lab::plan::{ISP_ADDR, ROUTER_LAN_ADDR};
use oxwrt_lab::testing::{self, Scope, TestResult};
use oxwrt_lab::{Boot, LAB_CONFIG_DIR, Lab, LabConfig, wait_for};

use crate::spine::{BoxError, built};

const LIMIT: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(60);

/// A lab whose router runs the stack.
pub(crate) struct Router {
    pub(crate) lab: Lab,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) conn: zbus::Connection,
    /// The router's WAN address (leased by netd).
    pub(crate) wan: Ipv4Addr,
}

impl Router {
    /// The pid of service `name` while oxinit reports it running.
    pub(crate) fn running_pid(&self, name: &str) -> Option<u32> {
        let init = self.rt.block_on(Init1Proxy::new(&self.conn)).ok()?;
        self.rt
            .block_on(init.list_services())
            .ok()?
            .into_iter()
            .find(|s| s.name == name && s.state == "running")
            .map(|s| s.pid)
    }

    /// Runs `restart` on running service `name` and waits until oxinit
    /// reports it running again, as a new process; `restart`'s result.
    pub(crate) fn restarted<T>(
        &self,
        name: &str,
        restart: impl FnOnce() -> Result<T, BoxError>,
    ) -> Result<T, BoxError> {
        let old = self
            .running_pid(name)
            .ok_or_else(|| format!("{name} is not running"))?;
        let result = restart()?;
        wait_for(
            &format!("{name} running again"),
            Instant::now() + WAIT,
            || self.running_pid(name).filter(|p| *p != old),
        )?;
        Ok(result)
    }

    pub(crate) fn boot(scope: &Scope, lan_clients: usize) -> Result<Router, BoxError> {
        let oxinit = built("oxinit")?;
        for daemon in ["configd", "netd", "fwd", "dhcpd", "dnsd", "ctld"] {
            built(daemon)?;
        }
        let mut lab = scope.up(LabConfig {
            lan_clients,
            config: Some(PathBuf::from(LAB_CONFIG_DIR)),
            manual_router: false,
            ..LabConfig::default()
        })?;
        let bin_dir = oxinit.parent().ok_or("no bin dir")?.to_path_buf();
        let guard = lab.boot(&Boot::new(bin_dir))?;
        lab.adopt(guard);
        let wan = lab.wait_router_wan(WAIT)?.parse()?;
        lab.wait_control(WAIT)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let address = bus_schema::bus::address_for(&lab.router_run());
        let conn = rt.block_on(zbus::connection::Builder::address(address.as_str()).build())?;
        let router = Router { lab, rt, conn, wan };
        // fwd has rendered reflection for the leased address, and every
        // client reaches the router's LAN address through netd's bridge.
        let wan_text = router.wan.to_string();
        wait_for(
            "fwd to render the WAN address",
            Instant::now() + WAIT,
            || router.ruleset().ok().filter(|r| r.contains(&wan_text)),
        )?;
        for ns in &router.lab.namespaces().lan {
            router.lab.wait_ping(ns, &ROUTER_LAN_ADDR.to_string())?;
        }
        Ok(router)
    }

    pub(crate) fn ns(&self) -> &oxwrt_lab::Namespaces {
        self.lab.namespaces()
    }

    fn wan_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.wan, port))
    }

    fn ruleset(&self) -> Result<String, BoxError> {
        let fw = self.rt.block_on(
            Firewall1Proxy::builder(&self.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build(),
        )?;
        Ok(self.rt.block_on(fw.ruleset())?)
    }

    fn wan_status(&self) -> Result<Vec<WanStatus>, BoxError> {
        let net = self.rt.block_on(
            Net1Proxy::builder(&self.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build(),
        )?;
        Ok(self.rt.block_on(net.wan())?)
    }

    /// Replaces `from` by `to` in the router's `oxwrt.toml` (or appends
    /// `to` when `from` is empty) and reloads through configd.
    pub(crate) fn reload_with(&self, from: &str, to: &str) -> TestResult {
        let path = self.lab.root().join("etc/oxwrt/oxwrt.toml");
        let text = fs::read_to_string(&path)?;
        let text = if from.is_empty() {
            format!("{text}\n{to}\n")
        } else {
            assert!(text.contains(from), "{from:?} not in the config");
            text.replacen(from, to, 1)
        };
        fs::write(&path, text)?;
        let config = self.rt.block_on(Config1Proxy::new(&self.conn))?;
        let report = self.rt.block_on(config.reload(false, 0, "test"))?;
        assert!(!report.changed.is_empty(), "the edit changed nothing");
        Ok(())
    }

    /// `ip -n <router> ARGS`.
    pub(crate) fn ip(&self, args: &[&str]) -> Result<String, BoxError> {
        let out = Command::new("ip")
            .args(["-n", &self.ns().router])
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

/// Lets the ISP namespace route to the LAN through the router, as a
/// hostile neighbour on the WAN segment could.
pub(crate) fn route_isp_to_lan(router: &Router) -> TestResult {
    let out = Command::new("ip")
        .args([
            "-n",
            &router.ns().isp,
            "route",
            "add",
            "192.168.1.0/24",
            "via",
        ])
        .arg(router.wan.to_string())
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn lan_client(index: usize, port: u16) -> SocketAddr {
    SocketAddr::from((oxwrt_lab::plan::Plan::lan_addr(index), port))
}

#[test]
fn lan_reaches_the_wan_masqueraded_and_the_wan_gets_in_only_where_allowed() {
    testing::run(LIMIT, |scope| {
        let router = Router::boot(scope, 1)?;
        let ns = router.ns().clone();

        // netd's view on the bus: the WAN is up with the leased address.
        let wan = router.wan_status()?;
        assert_eq!(wan.len(), 1, "{wan:?}");
        assert_eq!((wan[0].state.as_str(), wan[0].active), ("up", true));
        assert!(
            wan[0].address.starts_with(&router.wan.to_string()),
            "{wan:?}"
        );
        assert_eq!(wan[0].gateway, ISP_ADDR.to_string());

        // The LAN client fetches the ISP's web page; the ISP's HTTP server
        // logs the router's WAN address as the client.
        let page = Command::new("ip")
            .args(["netns", "exec", &ns.lan[0], "curl", "-s", "-m", "5"])
            .arg(oxwrt_lab::isp::page_url())
            .output()?;
        let page = String::from_utf8_lossy(&page.stdout);
        assert!(page.contains("oxwrt-lab upstream OK"), "{page}");
        let http_log = fs::read_to_string(router.lab.dir().join("logs/http.log"))?;
        assert!(
            http_log.contains(&format!("{} ", router.wan)),
            "the ISP saw another address:\n{http_log}"
        );

        // LAN -> WAN, masqueraded behind the router's WAN address.
        let _internet = Server::start(&ns.isp, SocketAddr::from((ISP_ADDR, 9000)))?;
        let mut long_lived = Conn::open(&ns.lan[0], SocketAddr::from((ISP_ADDR, 9000)))?;
        assert_eq!(long_lived.seen_as, router.wan.to_string());
        assert_eq!(long_lived.echo("hello")?, "hello");

        // WAN -> LAN and WAN -> router: dropped.
        route_isp_to_lan(&router)?;
        let _lan_server = Server::start(&ns.lan[0], lan_client(0, 9001))?;
        assert!(
            Conn::open(&ns.isp, lan_client(0, 9001)).is_err(),
            "the WAN side opened a connection to a LAN host"
        );
        let any = Ipv4Addr::UNSPECIFIED;
        let _ssh = Server::start(&ns.router, SocketAddr::from((any, 2222)))?;
        let _other = Server::start(&ns.router, SocketAddr::from((any, 2223)))?;
        assert!(Conn::open(&ns.isp, router.wan_addr(2222)).is_err());
        // The LAN zone accepts input.
        assert!(Conn::open(&ns.lan[0], SocketAddr::from((ROUTER_LAN_ADDR, 2222))).is_ok());

        // An input rule applied through configd opens exactly its port,
        // and the established LAN -> WAN connection survives the apply.
        router.reload_with(
            "",
            "[[firewall.rules]]\nname = \"wan-2222\"\nsrc = \"wan\"\nproto = [\"tcp\"]\n\
             dest_port = [2222]\naction = \"accept\"\ncounter = true",
        )?;
        let opened = wait_for("the new rule to apply", Instant::now() + WAIT, || {
            Conn::open(&ns.isp, router.wan_addr(2222)).ok()
        })?;
        assert_eq!(opened.seen_as, ISP_ADDR.to_string());
        assert!(Conn::open(&ns.isp, router.wan_addr(2223)).is_err());
        assert!(Conn::open(&ns.isp, lan_client(0, 9001)).is_err());
        assert_eq!(long_lived.echo("still there")?, "still there");
        Ok(())
    });
}

#[test]
fn port_forward_reflection_and_a_changed_forward_leave_other_connections_alone() {
    testing::run(LIMIT, |scope| {
        let router = Router::boot(scope, 2)?;
        let ns = router.ns().clone();
        // tests/lab/oxwrt.toml forwards WAN tcp/8080 to 192.168.1.10:8000.
        let _web = Server::start(&ns.lan[0], lan_client(0, 8000))?;
        let from_wan = Conn::open(&ns.isp, router.wan_addr(8080))
            .map_err(|e| format!("port forward from the WAN: {e}"))?;
        assert_eq!(
            from_wan.seen_as,
            ISP_ADDR.to_string(),
            "DNAT keeps the source"
        );
        // Reflection: another LAN client uses the public address.
        let mut hairpin = Conn::open(&ns.lan[1], router.wan_addr(8080))
            .map_err(|e| format!("reflection from the LAN: {e}"))?;
        assert_eq!(hairpin.echo("via the WAN address")?, "via the WAN address");

        let _internet = Server::start(&ns.isp, SocketAddr::from((ISP_ADDR, 9000)))?;
        let mut long_lived = Conn::open(&ns.lan[1], SocketAddr::from((ISP_ADDR, 9000)))?;

        router.reload_with("external_port = 8080", "external_port = 8081")?;
        wait_for("the moved forward to apply", Instant::now() + WAIT, || {
            Conn::open(&ns.isp, router.wan_addr(8081)).ok()
        })?;
        assert!(
            Conn::open(&ns.isp, router.wan_addr(8080)).is_err(),
            "the old forward still works"
        );
        assert_eq!(long_lived.echo("unaffected")?, "unaffected");
        Ok(())
    });
}

#[test]
fn restarting_netd_and_fwd_changes_nothing_in_the_kernel_and_netd_repairs_its_own() {
    testing::run(LIMIT, |scope| {
        let mut router = Router::boot(scope, 1)?;
        let ns = router.ns().clone();
        let routes_before = router.ip(&["route", "show"])?;
        // Every change the kernel announces while both daemons restart.
        let monitor = router
            .lab
            .spawn(&ns.router, &["ip", "monitor", "link", "address", "route"])?;
        // The monitor listens once it reports a change made for it: add
        // marker addresses to lo (never removed, so the log of deletions
        // stays empty) until one shows up.
        let log = monitor.log_path().to_owned();
        let marker = std::cell::Cell::new(1u8);
        wait_for("ip monitor to listen", Instant::now() + WAIT, || {
            marker.set(marker.get().checked_add(1)?);
            let addr = format!("127.0.9.{}/8", marker.get());
            router.ip(&["addr", "add", &addr, "dev", "lo"]).ok()?;
            fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("127.0.9."))
        })?;
        let links_before = router.ip(&["-o", "link", "show"])?;
        let addrs_before = router.ip(&["-o", "-4", "addr", "show"])?;
        let init = router.rt.block_on(Init1Proxy::new(&router.conn))?;
        for daemon in ["netd", "fwd"] {
            let before = router
                .rt
                .block_on(init.list_services())?
                .into_iter()
                .find(|s| s.name == daemon)
                .ok_or("no such service")?;
            router.rt.block_on(init.restart(daemon))?;
            wait_for(
                &format!("{daemon} running again"),
                Instant::now() + WAIT,
                || {
                    router
                        .rt
                        .block_on(init.list_services())
                        .ok()?
                        .into_iter()
                        .find(|s| s.name == daemon && s.state == "running" && s.pid != before.pid)
                },
            )?;
        }
        // Converged again: netd republished the WAN.
        wait_for("netd's WAN state", Instant::now() + WAIT, || {
            router
                .wan_status()
                .ok()
                .filter(|w| w.first().is_some_and(|w| w.state == "up"))
        })?;
        drop(monitor);
        let events = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !events.lines().any(|l| l.starts_with("Deleted")),
            "the restart removed something:\n{events}"
        );
        assert_eq!(router.ip(&["-o", "link", "show"])?, links_before);
        assert_eq!(router.ip(&["-o", "-4", "addr", "show"])?, addrs_before);
        assert_eq!(router.ip(&["route", "show"])?, routes_before);
        // netd signals what it sees change: an address someone else adds
        // (and netd leaves alone) reaches a Net1 client as PropertiesChanged.
        let net = router.rt.block_on(Net1Proxy::new(&router.conn))?;
        let mut changes = router.rt.block_on(net.receive_links_changed());
        router.ip(&["addr", "add", "192.168.1.200/24", "dev", "br-lan"])?;
        router.rt.block_on(async {
            tokio::time::timeout(WAIT, async {
                while let Some(change) = changes.next().await {
                    let links = change.get().await?;
                    if links
                        .iter()
                        .any(|l| l.addresses.iter().any(|a| a == "192.168.1.200/24"))
                    {
                        return Ok::<(), zbus::Error>(());
                    }
                }
                Err(zbus::Error::Failure("Links stream ended".into()))
            })
            .await
            .map_err(|_| "no Links change signalled")?
            .map_err(BoxError::from)
        })?;

        // What netd made comes back when someone removes it.
        router.ip(&["addr", "del", "192.168.1.1/24", "dev", "br-lan"])?;
        wait_for(
            "netd to restore br-lan's address",
            Instant::now() + WAIT,
            || {
                router
                    .ip(&["-o", "-4", "addr", "show", "dev", "br-lan"])
                    .ok()
                    .filter(|a| a.contains("192.168.1.1/24"))
            },
        )?;
        Ok(())
    });
}

/// From `/proc/PID/mountinfo`: `name` has a mount namespace of its own,
/// where `/` is read-only, `/tmp` a private tmpfs, and only its own
/// state directories writable.
fn sandboxed_mounts(name: &str, pid: u32) -> Result<(), BoxError> {
    let ns = |pid: &str| fs::read_link(format!("/proc/{pid}/ns/mnt"));
    if ns(&pid.to_string())? == ns("self")? {
        return Err(format!("{name} shares the test's mount namespace").into());
    }
    let info = fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    // Fields: id parent major:minor root mountpoint options ... - fstype.
    let mounts: Vec<(&str, &str, &str)> = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((*f.get(4)?, *f.get(5)?, *f.get(dash + 1)?))
        })
        .collect();
    let root = mounts.iter().find(|m| m.0 == "/").ok_or("no / mount")?;
    assert!(
        root.1.split(',').any(|o| o == "ro"),
        "{name}: / is {}",
        root.1
    );
    let tmp = mounts
        .iter()
        .rev()
        .find(|m| m.0 == "/tmp")
        .ok_or("no /tmp mount")?;
    assert_eq!(tmp.2, "tmpfs", "{name}: a private /tmp");
    let has = |options: &str, o: &str| options.split(',').any(|x| x == o);
    for (w, options, _) in mounts.iter().filter(|m| has(m.1, "rw") && m.0 != "/tmp") {
        assert!(
            w.ends_with(&format!("/var/lib/oxwrt/{name}"))
                || (name == "configd"
                    && (w.ends_with("/etc/oxwrt") || w.ends_with("/var/lib/oxwrt/config"))),
            "{name}: {w} is writable"
        );
        assert!(
            has(options, "noexec"),
            "{name}: {w} is writable and executable ({options})"
        );
    }
    Ok(())
}

#[test]
fn each_daemon_runs_as_its_uid_with_only_its_capabilities() {
    testing::run(LIMIT, |scope| {
        let router = Router::boot(scope, 1)?;
        let init = router.rt.block_on(Init1Proxy::new(&router.conn))?;
        let services = router.rt.block_on(init.list_services())?;
        let cgroups = crate::limits::no_cgroups();
        if let Some(reason) = &cgroups {
            testing::skip(&format!("the daemons' cgroup limits: {reason}"));
        }
        // uid, the CapPrm/CapEff/CapBnd/CapAmb mask (CAP_NET_BIND_SERVICE
        // is bit 10, CAP_NET_ADMIN 12, CAP_NET_RAW 13) and MiB of memory.
        for (name, uid, caps, mib) in [
            ("configd", 0, 0u64, 64u64),
            ("netd", 7101, 1 << 10 | 1 << 12 | 1 << 13, 64),
            ("fwd", 7102, 1 << 12, 64),
            ("dhcpd", 7103, 1 << 10 | 1 << 13, 64),
            ("dnsd", 7104, 1 << 10, 128),
        ] {
            let pid = services
                .iter()
                .find(|s| s.name == name && s.state == "running")
                .map(|s| s.pid)
                .ok_or_else(|| format!("{name} is not running"))?;
            let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
            let field = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.split_whitespace().collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            assert_eq!(field("Uid:"), vec![uid.to_string(); 4], "{name}");
            assert_eq!(field("NoNewPrivs:"), ["1"], "{name}");
            assert_eq!(field("Seccomp:"), ["2"], "{name}: a seccomp filter");
            // One filter more than this test runs under (oxinit inherits
            // the test's, when the runner itself is filtered).
            let own = fs::read_to_string("/proc/self/status")?
                .lines()
                .find_map(|l| l.strip_prefix("Seccomp_filters:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
                .unwrap_or(0);
            assert_eq!(field("Seccomp_filters:"), [(own + 1).to_string()], "{name}");
            sandboxed_mounts(name, pid)?;
            if cgroups.is_none() {
                assert_eq!(
                    crate::limits::limits(pid)?,
                    ((mib << 20).to_string(), "64".to_string()),
                    "{name}: memory and pids limits"
                );
            }
            for set in ["CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
                let have = field(set)
                    .first()
                    .and_then(|v| u64::from_str_radix(v, 16).ok())
                    .ok_or_else(|| format!("{name}: no {set}"))?;
                let expect = if uid == 0 && set == "CapAmb:" {
                    0
                } else {
                    caps
                };
                assert_eq!(have, expect, "{name} {set} {have:#x}");
            }
        }
        Ok(())
    });
}
