use super::*;
use crate::desired::Link;

fn net(s: &str) -> IpNet {
    s.parse().expect("net")
}

/// A plain NIC (also for the status and uplink tests).
pub(crate) fn nic(master: Option<&str>, up: bool) -> LinkState {
    LinkState {
        kind: Kind::Other,
        master: master.map(str::to_string),
        mtu: 1500,
        mac: None,
        up,
        index: 0,
        oper: if up { "up" } else { "down" }.to_string(),
    }
}

/// A LAN bridge `br-lan` over `eth1` and `eth2` with 192.168.1.1/24, and a
/// route to 10.20.0.0/16 via 192.168.1.254.
fn lan() -> Desired {
    let mut d = Desired::default();
    d.links.insert(
        "br-lan".into(),
        Link {
            origin: Origin::Bridge,
            master: None,
            mtu: None,
            mac: None,
        },
    );
    for port in ["eth1", "eth2"] {
        d.links.insert(
            port.into(),
            Link {
                origin: Origin::Existing,
                master: Some("br-lan".into()),
                mtu: None,
                mac: None,
            },
        );
    }
    d.addresses.insert(("br-lan".into(), net("192.168.1.1/24")));
    d.routes.insert(RouteSpec {
        destination: net("10.20.0.0/16"),
        gateway: Some("192.168.1.254".parse().expect("ip")),
        device: Some("br-lan".into()),
        metric: 100,
    });
    d
}

fn bare() -> Observed {
    let mut o = Observed::default();
    o.links.insert("eth1".into(), nic(None, false));
    o.links.insert("eth2".into(), nic(None, false));
    o
}

/// What the kernel looks like after `plan` ran on `observed` (enough of a
/// kernel for these tests).
fn run(observed: &Observed, plan: &Plan) -> Observed {
    let mut o = observed.clone();
    for a in &plan.actions {
        match a {
            Action::CreateBridge(n) => {
                o.links.insert(
                    n.clone(),
                    LinkState {
                        kind: Kind::Bridge,
                        ..nic(None, false)
                    },
                );
            }
            Action::CreateVlan { name, vlan } => {
                o.links.insert(
                    name.clone(),
                    LinkState {
                        kind: Kind::Vlan(vlan.clone()),
                        ..nic(None, false)
                    },
                );
            }
            Action::SetMaster { device, master } => {
                if let Some(l) = o.links.get_mut(device) {
                    l.master = master.clone();
                }
            }
            Action::SetMtu(d, m) => {
                if let Some(l) = o.links.get_mut(d) {
                    l.mtu = u32::from(*m);
                }
            }
            Action::SetMac(d, m) => {
                if let Some(l) = o.links.get_mut(d) {
                    l.mac = Some(*m);
                }
            }
            Action::SetUp(d) => {
                if let Some(l) = o.links.get_mut(d) {
                    l.up = true;
                }
            }
            Action::DelRoute(r) => {
                o.routes.remove(r);
            }
            Action::DelAddress(d, n) => {
                o.addresses.remove(&(d.clone(), *n));
            }
            Action::AddAddress(d, n) => {
                o.addresses.insert((d.clone(), *n));
            }
            Action::AddRoute(r) => {
                o.routes.insert(r.clone());
            }
            Action::DeleteLink(n) => {
                o.links.remove(n);
                for l in o.links.values_mut() {
                    if l.master.as_ref() == Some(n) {
                        l.master = None;
                    }
                }
                o.addresses.retain(|(d, _)| d != n);
            }
        }
    }
    o
}

#[test]
fn from_nothing_it_builds_the_lan_in_a_kernel_acceptable_order() {
    let plan = reconcile(&lan(), &bare(), &Owned::default());
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    assert_eq!(plan.actions[0], Action::CreateBridge("br-lan".into()));
    let pos = |a: &Action| plan.actions.iter().position(|x| x == a).expect("present");
    let address = Action::AddAddress("br-lan".into(), net("192.168.1.1/24"));
    let route = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::AddRoute(_)))
        .expect("route");
    assert!(pos(&Action::SetUp("br-lan".into())) < pos(&address));
    assert!(pos(&address) < route);
    assert!(plan.owned.links.contains("br-lan"));
    assert!(
        plan.owned
            .addresses
            .contains(&("br-lan".into(), net("192.168.1.1/24")))
    );
}

#[test]
fn a_second_run_changes_nothing() {
    let first = reconcile(&lan(), &bare(), &Owned::default());
    let kernel = run(&bare(), &first);
    let second = reconcile(&lan(), &kernel, &first.owned);
    assert_eq!(second.actions, vec![]);
    assert_eq!(second.owned, first.owned);
}

#[test]
fn only_what_changed_is_touched() {
    let first = reconcile(&lan(), &bare(), &Owned::default());
    let kernel = run(&bare(), &first);
    let mut d = lan();
    d.addresses.clear();
    d.addresses.insert(("br-lan".into(), net("192.168.2.1/24")));
    let plan = reconcile(&d, &kernel, &first.owned);
    assert_eq!(
        plan.actions,
        vec![
            Action::DelAddress("br-lan".into(), net("192.168.1.1/24")),
            Action::AddAddress("br-lan".into(), net("192.168.2.1/24")),
        ]
    );
}

#[test]
fn what_netd_did_not_create_is_never_removed() {
    let mut kernel = bare();
    // Someone else's bridge, address and (unmarked, so unseen) route.
    kernel.links.insert(
        "br-other".into(),
        LinkState {
            kind: Kind::Bridge,
            ..nic(None, true)
        },
    );
    kernel.addresses.insert(("eth1".into(), net("10.9.9.9/8")));
    let plan = reconcile(&Desired::default(), &kernel, &Owned::default());
    assert_eq!(plan.actions, vec![]);
}

#[test]
fn what_netd_created_goes_when_the_config_drops_it() {
    let first = reconcile(&lan(), &bare(), &Owned::default());
    let kernel = run(&bare(), &first);
    let plan = reconcile(&Desired::default(), &kernel, &first.owned);
    let after = run(&kernel, &plan);
    assert!(!after.links.contains_key("br-lan"));
    assert!(after.routes.is_empty() && after.addresses.is_empty());
    assert!(after.links.values().all(|l| l.master.is_none()));
    assert_eq!(plan.owned, Owned::default());
    // The ports themselves were never netd's: still there.
    assert!(after.links.contains_key("eth1") && after.links.contains_key("eth2"));
}

#[test]
fn missing_devices_and_name_clashes_are_problems_not_actions() {
    let mut kernel = bare();
    kernel.links.remove("eth2");
    kernel.links.insert("br-lan".into(), nic(None, true));
    let plan = reconcile(&lan(), &kernel, &Owned::default());
    assert_eq!(
        plan.problems,
        vec![
            "br-lan exists and is not a bridge",
            "device eth2 does not exist"
        ]
    );
    // Nothing is done on or for the clashing bridge.
    assert!(
        plan.actions
            .iter()
            .all(|a| !matches!(a, Action::AddAddress(..) | Action::AddRoute(_)))
    );
    assert!(!plan.actions.contains(&Action::SetUp("br-lan".into())));
}

#[test]
fn the_cookbook_reconciles_from_its_ports_to_a_fixed_point() {
    let (networks, routes) = crate::desired::tests::cookbook();
    let desired = Desired::from_config(&networks, &routes);
    let mut kernel = Observed::default();
    for (name, link) in &desired.links {
        if link.origin == Origin::Existing {
            kernel.links.insert(name.clone(), nic(None, false));
        }
    }
    let first = reconcile(&desired, &kernel, &Owned::default());
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    let kernel = run(&kernel, &first);
    let second = reconcile(&desired, &kernel, &first.owned);
    assert_eq!(second.actions, vec![]);
}

#[test]
fn a_container_link_on_an_owned_bridge_stays_and_any_other_stray_port_goes_free() {
    let first = reconcile(&lan(), &bare(), &Owned::default());
    let mut observed = run(&bare(), &first);
    // oxinit put an isolated service's link on the bridge; someone else
    // put eth9 there.
    observed
        .links
        .insert("oxc-adguard".into(), nic(Some("br-lan"), true));
    observed
        .links
        .insert("eth9".into(), nic(Some("br-lan"), true));
    let plan = reconcile(&lan(), &observed, &first.owned);
    let freed: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SetMaster {
                device,
                master: None,
            } => Some(device.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(freed, ["eth9"]);
}
