//! Bringing a lab's topology and upstream services up, step by step.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Lab, LabConfig, LabError};
use crate::exec::ChildGuard;
use crate::isp::{self, IspFiles};
use crate::netns;
use crate::plan::{
    CLIENT_IF, HTTP_PORT, ISP_ADDR, ISP_IF, LAN_PREFIX, Plan, ROUTER_LAN_ADDR, ROUTER_LAN_IF,
    ROUTER_WAN_IF, SWITCH_BRIDGE, SWITCH_UPLINK, WAN_PREFIX,
};
use crate::state::StateError;
use crate::wait::wait_for;
use crate::wan::{self, WanFiles};

/// How long the ISP's servers get to start listening.
const SERVER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the router's WAN gets to obtain a lease.
const LEASE_TIMEOUT: Duration = Duration::from_secs(30);

impl Lab {
    fn write(&self, path: &Path, contents: &str, mode: u32) -> Result<(), LabError> {
        let err = |source| LabError::WriteFile {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        fs::write(path, contents).map_err(err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)
    }

    fn mkdir(&self, path: &Path) -> Result<(), LabError> {
        fs::create_dir_all(path).map_err(|source| {
            LabError::State(StateError::CreateDir {
                path: path.to_owned(),
                source,
            })
        })
    }

    /// Starts `argv` in network namespace `ns` (`ip netns exec`), or as
    /// it is.
    pub(super) fn start_child<S: AsRef<OsStr>>(
        &self,
        label: &str,
        ns: Option<&str>,
        argv: &[S],
    ) -> Result<ChildGuard, LabError> {
        let logs = self.dir.join("logs");
        self.mkdir(&logs)?;
        ChildGuard::spawn(label, ns, argv, &logs.join(format!("{label}.log"))).map_err(|source| {
            LabError::Spawn {
                what: label.to_owned(),
                source,
            }
        })
    }

    /// Starts a process the lab owns.
    fn start<S: AsRef<OsStr>>(
        &mut self,
        label: &str,
        ns: &str,
        argv: &[S],
    ) -> Result<&mut ChildGuard, LabError> {
        let child = self.start_child(label, Some(ns), argv)?;
        self.state.processes.push(child.record().clone());
        self.save()?;
        self.children.push(child);
        let newest = self.children.len() - 1;
        Ok(&mut self.children[newest])
    }

    /// Adds a LAN host: a namespace whose `eth0` (MAC `mac`, no address)
    /// is a port of the switch, for a DHCP client to configure. Torn down
    /// with the lab; returns the namespace.
    pub fn add_host(&mut self, mac: &str) -> Result<String, LabError> {
        let index = 1 + self
            .state
            .namespaces
            .iter()
            .filter(|n| n.contains("-host"))
            .count();
        let plan = self.plan.clone();
        let ns = plan.host(index);
        self.state.namespaces.push(ns.clone());
        self.save()?;
        netns::add(&ns)?;
        let port = Plan::host_port(index);
        netns::veth(&plan.switch, &port, &ns, CLIENT_IF)?;
        netns::enslave(&plan.switch, &port, SWITCH_BRIDGE)?;
        let quick = Duration::from_secs(10);
        self.ns_exec_ok(&ns, &["ip", "link", "set", CLIENT_IF, "down"], quick)?;
        self.ns_exec_ok(
            &ns,
            &["ip", "link", "set", CLIENT_IF, "address", mac],
            quick,
        )?;
        netns::link_up(&ns, CLIENT_IF)?;
        Ok(ns)
    }

    pub(super) fn build(&mut self, cfg: &LabConfig) -> Result<(), LabError> {
        self.make_root(cfg.config.as_deref())?;
        let plan = self.plan.clone();
        for ns in plan.namespaces() {
            // Recorded first, so a crash right after creating it still
            // leaves a trace for `Lab::down`.
            self.state.namespaces.push(ns.to_owned());
            self.save()?;
            netns::add(ns)?;
        }

        // isp:eth0 <-> router:wan0
        netns::veth(&plan.isp, ISP_IF, &plan.router, ROUTER_WAN_IF)?;
        netns::add_addr(&plan.isp, ISP_IF, &ISP_ADDR.to_string(), WAN_PREFIX)?;

        // router:lan0 <-> sw:rtr0 in br0 <-> sw:lanN <-> lanN:eth0
        netns::bridge(&plan.switch, SWITCH_BRIDGE)?;
        netns::veth(&plan.router, ROUTER_LAN_IF, &plan.switch, SWITCH_UPLINK)?;
        netns::enslave(&plan.switch, SWITCH_UPLINK, SWITCH_BRIDGE)?;
        for (index, (ns, addr)) in plan.lan.iter().zip(plan.lan_addrs()).enumerate() {
            let port = Plan::switch_port(index);
            netns::veth(&plan.switch, &port, ns, CLIENT_IF)?;
            netns::enslave(&plan.switch, &port, SWITCH_BRIDGE)?;
            // Static until dhcpd exists.
            netns::add_addr(ns, CLIENT_IF, &addr.to_string(), LAN_PREFIX)?;
            netns::default_route(ns, &ROUTER_LAN_ADDR.to_string())?;
        }
        netns::sysctl(&plan.router, "net.ipv4.ip_forward", "1")?;
        // Where the host has br_netfilter loaded, bridged IP would pass the
        // router's nftables hooks at the bridge layer, and a port forward
        // to a host behind the same bridge port would be bridged back out
        // that port (and dropped) instead of routed. oxinit turns this off
        // the same way on a real router.
        for family in ["iptables", "ip6tables", "arptables"] {
            let key = format!("net.bridge.bridge-nf-call-{family}");
            if netns::sysctl_exists(&plan.router, &key) {
                netns::sysctl(&plan.router, &key, "0")?;
            }
        }
        self.start_isp()?;
        if self.manual_router {
            netns::add_addr(
                &plan.router,
                ROUTER_LAN_IF,
                &ROUTER_LAN_ADDR.to_string(),
                LAN_PREFIX,
            )?;
            let router_wan = self.start_wan()?;
            self.info.addresses.router_wan = router_wan;
        }
        self.state.info = Some(self.info.clone());
        self.save()
    }

    fn make_root(&self, config: Option<&Path>) -> Result<(), LabError> {
        let etc = self.info.root.join("etc/oxwrt");
        for dir in [
            &etc,
            &self.info.root.join("run/oxwrt"),
            &self.info.root.join("var/lib/oxwrt"),
        ] {
            self.mkdir(dir)?;
        }
        let Some(config) = config else {
            return Ok(());
        };
        let copy = |from: &Path| -> Result<(), LabError> {
            let to = etc.join(from.file_name().unwrap_or(from.as_os_str()));
            fs::copy(from, &to)
                .map(drop)
                .map_err(|source| LabError::CopyConfig {
                    from: from.to_owned(),
                    to,
                    source,
                })
        };
        if config.is_dir() {
            let entries = fs::read_dir(config).map_err(|source| LabError::CopyConfig {
                from: config.to_owned(),
                to: etc.clone(),
                source,
            })?;
            for entry in entries.filter_map(Result::ok) {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    copy(&entry.path())?;
                }
            }
            Ok(())
        } else {
            copy(config)
        }
    }

    fn start_isp(&mut self) -> Result<(), LabError> {
        let isp_ns = self.plan.isp.clone();
        let files = IspFiles::under(&self.dir.join("isp"));
        self.write(
            &files.www.join("index.html"),
            &isp::page(&self.plan.name),
            0o644,
        )?;
        let isp_addr = ISP_ADDR.to_string();

        let argv = isp::dnsmasq_argv(&self.tools.dnsmasq, &files);
        let dnsmasq = self.start("dnsmasq", &isp_ns, &argv)?;
        wait_child(
            dnsmasq,
            "dnsmasq to serve DNS and DHCP",
            SERVER_TIMEOUT,
            || {
                (netns::listening(&isp_ns, "udp", &isp_addr, 53)
                    && netns::listening(&isp_ns, "udp", &isp_addr, 67))
                .then_some(())
            },
        )?;

        let argv = isp::http_argv(
            self.tools.python3.as_deref(),
            &self.tools.busybox,
            &files.www,
        );
        let http = self.start("http", &isp_ns, &argv)?;
        wait_child(http, "the HTTP server to listen", SERVER_TIMEOUT, || {
            netns::listening(&isp_ns, "tcp", &isp_addr, HTTP_PORT).then_some(())
        })
    }

    fn start_wan(&mut self) -> Result<String, LabError> {
        let router = self.plan.router.clone();
        let files = WanFiles::under(&self.dir.join("wan"));
        self.write(&files.conf, wan::DHCLIENT_CONF, 0o644)?;
        self.write(&files.script, &wan::dhclient_script(&self.tools.ip), 0o755)?;
        let argv = wan::dhclient_argv(&self.tools.dhclient, &files);
        let dhclient = self.start("dhclient", &router, &argv)?;
        wait_child(
            dhclient,
            "the router's WAN to get a lease",
            LEASE_TIMEOUT,
            || {
                netns::ipv4_addrs(&router, ROUTER_WAN_IF)
                    .ok()
                    .and_then(|addrs| addrs.into_iter().next())
            },
        )
    }
}

/// Waits for `ready` to give a value while `child` keeps running.
fn wait_child<T>(
    child: &mut ChildGuard,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, LabError> {
    // `Some(None)` ends the wait early: the child died.
    let result = wait_for(what, Instant::now() + timeout, || {
        if let Some(value) = ready() {
            return Some(Some(value));
        }
        (!child.is_running()).then_some(None)
    });
    let log = child.log_path().to_owned();
    match result {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(LabError::Died {
            process: child.label().to_owned(),
            what: what.to_owned(),
            log,
        }),
        Err(source) => Err(LabError::Ready { source, log }),
    }
}
