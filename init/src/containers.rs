//! Container services, the config's `[[services]]`: oxinit's own config
//! domain. configd's transactions reach it through `org.oxwrt.Daemon1` on
//! oxinit's bus name like any daemon's; an apply hands the manager the
//! new list, which starts what is new, restarts what changed and stops
//! what went. An apply does not wait for them to be running (configd's
//! own start-up apply comes before the services phase); a service that
//! cannot start shows so in its status.
//!
//! A container service runs like a built-in daemon, with these
//! differences: its binary is the operator's (no seccomp policy or
//! landlock profile fits it), it gets a mount namespace with a read-only
//! view of the system (or of its `rootfs`) and a private `/tmp`, its own
//! uid by default, and in `isolated` mode a network namespace of its own
//! on a LAN (`netns.rs`). Its cgroup limits, capabilities, restart policy
//! and dependencies come from the config.

use std::path::PathBuf;

use bus_schema::config::{
    CONTAINER_LINK_PREFIX, Sections,
    model::{self, NetworkKind, ServiceNetwork},
    section,
    value::IFNAME_MAX,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    cgroup::Limits,
    manager::Event,
    netns::Isolated,
    spec::{Container, Phase, Ready, ServiceSpec},
};

/// First uid of the range a container service without `user` gets one
/// from (by a hash of its name); oxwrt's daemons use 7100-7199.
const UID_BASE: u32 = 7200;
/// Size of that range.
const UID_RANGE: u32 = 800;
/// The domain: the last sections applied, and the way to the manager.
#[derive(Debug)]
pub struct Containers {
    applied: Sections,
    manager: mpsc::UnboundedSender<Event>,
}

impl Containers {
    /// A domain that hands each apply to the manager behind `manager`.
    pub fn new(manager: mpsc::UnboundedSender<Event>) -> Self {
        Self {
            applied: Sections::new(),
            manager,
        }
    }

    /// The applied sections updated by `sections` (configd sends only
    /// those that changed).
    fn merged(&self, sections: &Sections) -> Sections {
        let mut all = self.applied.clone();
        all.extend(sections.clone());
        all
    }
}

impl oxwrt_daemon::Domain for Containers {
    async fn check(&mut self, sections: &Sections) -> Result<(), String> {
        specs(&self.merged(sections)).map(drop)
    }

    async fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        let all = self.merged(sections);
        let specs = specs(&all)?;
        let (reply, done) = oneshot::channel();
        let gone = || "the supervisor is gone".to_string();
        self.manager
            .send(Event::Containers { specs, reply })
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())??;
        self.applied = all;
        Ok(())
    }
}

/// The specs of every `[[services]]` entry.
pub fn specs(sections: &Sections) -> Result<Vec<ServiceSpec>, String> {
    let services: Vec<model::Service> = section(sections, "services")?.unwrap_or_default();
    let networks: Vec<model::Network> = section(sections, "networks")?.unwrap_or_default();
    let specs: Vec<ServiceSpec> = services
        .iter()
        .map(|s| spec(s, &networks))
        .collect::<Result<_, _>>()?;
    for (i, a) in specs.iter().enumerate() {
        for b in &specs[..i] {
            let link = |s: &ServiceSpec| {
                s.container
                    .as_ref()
                    .and_then(|c| c.network.as_ref())
                    .map(|n| n.link.clone())
            };
            if link(a).is_some() && link(a) == link(b) {
                return Err(format!(
                    "services {} and {} would share the link name {:?}: \
                     names must differ in their first {} characters",
                    b.name,
                    a.name,
                    link(a).unwrap_or_default(),
                    IFNAME_MAX - CONTAINER_LINK_PREFIX.len()
                ));
            }
            if a.user == b.user && a.user >= UID_BASE {
                return Err(format!(
                    "services {} and {} would share uid {}: give one a `user`",
                    b.name, a.name, a.user
                ));
            }
        }
    }
    Ok(specs)
}

fn spec(s: &model::Service, networks: &[model::Network]) -> Result<ServiceSpec, String> {
    let (program, args) = s
        .command
        .split_first()
        .ok_or_else(|| format!("service {}: empty command", s.name))?;
    let mut spec = ServiceSpec::new(&s.name, program, Phase::Services);
    spec.args = args.to_vec();
    let (uid, gid) = s.user.unwrap_or_else(|| {
        let uid = own_uid(&s.name);
        (uid, uid)
    });
    spec.user = uid;
    spec.capabilities = s.capabilities.clone();
    spec.limits = Limits {
        memory_max: s.memory_max,
        pids_max: s.pids_max,
    };
    spec.depends_on = s.depends_on.clone();
    spec.ready = Ready::Spawned;
    spec.respawn.restart = s.restart;
    let network = match &s.network {
        ServiceNetwork::Host => None,
        ServiceNetwork::Isolated { network, address } => {
            let lan = networks
                .iter()
                .find(|n| &n.name == network)
                .and_then(|n| match &n.kind {
                    NetworkKind::Lan(lan) => Some(lan),
                    _ => None,
                })
                .ok_or_else(|| format!("service {}: no LAN network {network}", s.name))?;
            let name: String = s
                .name
                .chars()
                .take(IFNAME_MAX - CONTAINER_LINK_PREFIX.len())
                .collect();
            Some(Isolated {
                bridge: lan.bridge.clone(),
                link: format!("{CONTAINER_LINK_PREFIX}{name}"),
                address: (address.addr(), address.prefix_len()),
                gateway: lan.address.addr(),
            })
        }
    };
    spec.container = Some(Container {
        group: gid,
        env: s
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        rootfs: s.rootfs.as_ref().map(PathBuf::from),
        network,
    });
    Ok(spec)
}

/// A uid of `name`'s own in `UID_BASE..UID_BASE + UID_RANGE`: FNV-1a of
/// the name, so it stays the same across reloads and reboots (files the
/// service leaves keep their owner).
fn own_uid(name: &str) -> u32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    UID_BASE + hash % UID_RANGE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Restart;

    fn sections(services: &str) -> Sections {
        let text = format!(
            "version = 1\n[[networks]]\nname = \"lan\"\nkind = \"lan\"\nbridge = \"br-lan\"\n\
             ports = []\naddress = \"192.168.1.1/24\"\n{services}"
        );
        let loaded = bus_schema::config::check_public_text(&text).expect("valid");
        bus_schema::config::sections(&loaded.config, false)
    }

    #[test]
    fn a_service_becomes_a_spec_with_its_own_uid_limits_and_network() {
        let specs = specs(&sections(
            r#"
[[services]]
name = "adguard-home-dns"
command = ["/opt/adguard/AdGuardHome", "--no-check-update"]
network_mode = "isolated"
network = "lan"
address = "192.168.1.53/24"
capabilities = ["CAP_NET_BIND_SERVICE"]
memory_max = "128M"
pids_max = 64
restart = "on-failure"
environment = { TZ = "UTC" }

[[services]]
name = "exporter"
command = ["/usr/bin/exporter"]
user = "2001:2002"
depends_on = ["adguard-home-dns"]
"#,
        ))
        .expect("specs");
        let (a, e) = (&specs[0], &specs[1]);
        assert_eq!(a.exec, PathBuf::from("/opt/adguard/AdGuardHome"));
        assert_eq!(a.args, ["--no-check-update"]);
        assert!((UID_BASE..UID_BASE + UID_RANGE).contains(&a.user));
        assert_eq!(a.user, own_uid("adguard-home-dns"), "stable");
        assert_eq!(a.capabilities, ["CAP_NET_BIND_SERVICE"]);
        assert_eq!(a.limits.memory_max, Some(128 << 20));
        assert_eq!(a.limits.pids_max, Some(64));
        assert_eq!(a.respawn.restart, Restart::OnFailure);
        assert_eq!(a.ready, Ready::Spawned);
        let c = a.container.as_ref().expect("container");
        assert_eq!(c.env, [("TZ".to_string(), "UTC".to_string())]);
        assert_eq!(
            c.network,
            Some(Isolated {
                bridge: "br-lan".into(),
                link: "oxc-adguard-hom".into(),
                address: ("192.168.1.53".parse().expect("ip"), 24),
                gateway: "192.168.1.1".parse().expect("ip"),
            })
        );
        assert_eq!(
            (e.user, e.container.as_ref().map(|c| c.group)),
            (2001, Some(2002))
        );
        assert_eq!(e.container.as_ref().and_then(|c| c.network.clone()), None);
        assert_eq!(e.respawn.restart, Restart::OnFailure, "the default");
        assert_eq!(e.depends_on, ["adguard-home-dns"]);
    }

    #[test]
    fn services_that_would_share_a_link_name_are_refused() {
        let two = |n: &str| {
            format!(
                "[[services]]\nname = \"{n}\"\ncommand = [\"/bin/true\"]\nnetwork_mode = \"isolated\"\n\
                 network = \"lan\"\naddress = \"192.168.1.{}/24\"\n",
                n.len() + 40
            )
        };
        let text = two("monitoring-one") + &two("monitoring-two-x");
        let err = specs(&sections(&text)).expect_err("same link name");
        assert!(
            err.contains("share the link name \"oxc-monitoring-\""),
            "{err}"
        );
    }
}
