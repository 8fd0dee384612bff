//! From what the kernel has to what netd wants: the actions, in an order
//! the kernel accepts, touching only what differs.
//!
//! Ownership: netd never removes a link, address or route it did not
//! create. What it created is [`Owned`] (persisted by the daemon, and for
//! routes also marked in the kernel with netd's own route protocol), so a
//! restart recognises its own objects and changes nothing that is right.

use std::collections::{BTreeMap, BTreeSet};

use bus_schema::config::value::MacAddr;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::desired::{Desired, Origin, RouteSpec, VlanOf};

/// What kind of link the kernel reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A bridge.
    Bridge,
    /// An 802.1Q sub-interface.
    Vlan(VlanOf),
    /// Anything else (a NIC, a veth, ...).
    Other,
}

/// One link as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Its kind.
    pub kind: Kind,
    /// The bridge it is a port of.
    pub master: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// Administratively up.
    pub up: bool,
    /// Interface index.
    pub index: u32,
    /// Operational state, lower-case (`up`, `down`, `lowerlayerdown`, ...).
    pub oper: String,
}

/// The kernel's state, as far as netd looks at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Links by name.
    pub links: BTreeMap<String, LinkState>,
    /// Addresses as (device, address/prefix).
    pub addresses: BTreeSet<(String, IpNet)>,
    /// Routes carrying netd's protocol mark.
    pub routes: BTreeSet<RouteSpec>,
}

/// What netd created, so that it removes only its own objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    /// Links it created.
    pub links: BTreeSet<String>,
    /// Addresses it added.
    pub addresses: BTreeSet<(String, IpNet)>,
}

/// One change to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create a bridge.
    CreateBridge(String),
    /// Create an 802.1Q sub-interface.
    CreateVlan {
        /// Its name.
        name: String,
        /// Its parent and id.
        vlan: VlanOf,
    },
    /// Make `device` a port of `master` (or of nothing).
    SetMaster {
        /// The port.
        device: String,
        /// The bridge, or `None` to release it.
        master: Option<String>,
    },
    /// Set the MTU.
    SetMtu(String, u16),
    /// Set the MAC address.
    SetMac(String, MacAddr),
    /// Bring a link up.
    SetUp(String),
    /// Remove a route netd added.
    DelRoute(RouteSpec),
    /// Remove an address netd added.
    DelAddress(String, IpNet),
    /// Add an address.
    AddAddress(String, IpNet),
    /// Add a route (with netd's protocol mark).
    AddRoute(RouteSpec),
    /// Delete a link netd created.
    DeleteLink(String),
}

/// The result of a reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// What netd owns once the actions are done.
    pub owned: Owned,
    /// Why parts of the config cannot be applied here (a device that does
    /// not exist, a name taken by another kind of link). Their actions are
    /// left out; a check reports them as errors.
    pub problems: Vec<String>,
}

/// The actions that take `observed` to `desired`.
pub fn reconcile(desired: &Desired, observed: &Observed, owned: &Owned) -> Plan {
    let mut plan = Plan {
        owned: Owned {
            // Still-present links it created stay its own.
            links: owned
                .links
                .iter()
                .filter(|l| observed.links.contains_key(*l))
                .cloned()
                .collect(),
            addresses: BTreeSet::new(),
        },
        ..Plan::default()
    };
    let mut usable: BTreeSet<&str> = BTreeSet::new();
    let (mut creates, mut masters, mut settings, mut ups) = (vec![], vec![], vec![], vec![]);
    for (name, want) in &desired.links {
        let have = observed.links.get(name);
        match (&want.origin, have) {
            (Origin::Existing, None) => {
                plan.problems.push(format!("device {name} does not exist"));
                continue;
            }
            (Origin::Bridge, None) => {
                creates.push(Action::CreateBridge(name.clone()));
                plan.owned.links.insert(name.clone());
            }
            (Origin::Vlan(vlan), None) => {
                if !observed.links.contains_key(&vlan.parent) {
                    plan.problems.push(format!(
                        "VLAN {name}: parent device {} does not exist",
                        vlan.parent
                    ));
                    continue;
                }
                creates.push(Action::CreateVlan {
                    name: name.clone(),
                    vlan: vlan.clone(),
                });
                plan.owned.links.insert(name.clone());
            }
            (Origin::Bridge, Some(h)) if h.kind != Kind::Bridge => {
                plan.problems
                    .push(format!("{name} exists and is not a bridge"));
                continue;
            }
            (Origin::Vlan(vlan), Some(h)) if h.kind != Kind::Vlan(vlan.clone()) => {
                plan.problems.push(format!(
                    "{name} exists and is not VLAN {} on {}",
                    vlan.id, vlan.parent
                ));
                continue;
            }
            _ => {}
        }
        usable.insert(name);
        if want.master.as_ref() != have.and_then(|h| h.master.as_ref()) {
            masters.push(Action::SetMaster {
                device: name.clone(),
                master: want.master.clone(),
            });
        }
        if let Some(mtu) = want.mtu {
            if have.is_none_or(|h| h.mtu != u32::from(mtu)) {
                settings.push(Action::SetMtu(name.clone(), mtu));
            }
        }
        if let Some(mac) = want.mac {
            if have.is_none_or(|h| h.mac != Some(mac)) {
                settings.push(Action::SetMac(name.clone(), mac));
            }
        }
        if have.is_none_or(|h| !h.up) {
            ups.push(Action::SetUp(name.clone()));
        }
    }
    // Ports of a bridge netd owns that the config no longer names go free,
    // but for isolated container services' links (oxinit's).
    for (name, have) in &observed.links {
        let master_owned = have
            .master
            .as_ref()
            .is_some_and(|m| owned.links.contains(m));
        let container = name.starts_with(bus_schema::config::CONTAINER_LINK_PREFIX);
        if master_owned && !desired.links.contains_key(name) && !container {
            masters.push(Action::SetMaster {
                device: name.clone(),
                master: None,
            });
        }
    }
    plan.actions.extend(creates);
    plan.actions.extend(masters);
    plan.actions.extend(settings);
    plan.actions.extend(ups);

    // Routes first out, last in: an address removal takes its routes along.
    let wanted_routes: BTreeSet<&RouteSpec> = desired
        .routes
        .iter()
        .filter(|r| r.device.as_deref().is_none_or(|d| usable.contains(d)))
        .collect();
    for r in &observed.routes {
        if !wanted_routes.contains(r) {
            plan.actions.push(Action::DelRoute(r.clone()));
        }
    }
    for a in &observed.addresses {
        if owned.addresses.contains(a) && !desired.addresses.contains(a) {
            plan.actions.push(Action::DelAddress(a.0.clone(), a.1));
        }
    }
    for a in &desired.addresses {
        if !usable.contains(a.0.as_str()) {
            continue;
        }
        if !observed.addresses.contains(a) {
            plan.actions.push(Action::AddAddress(a.0.clone(), a.1));
            plan.owned.addresses.insert(a.clone());
        } else if owned.addresses.contains(a) {
            plan.owned.addresses.insert(a.clone());
        }
    }
    for r in wanted_routes {
        if !observed.routes.contains(r) {
            plan.actions.push(Action::AddRoute(r.clone()));
        }
    }
    for name in &owned.links {
        if observed.links.contains_key(name) && !desired.links.contains_key(name) {
            plan.actions.push(Action::DeleteLink(name.clone()));
            plan.owned.links.remove(name);
        }
    }
    plan
}

#[cfg(test)]
pub(crate) mod tests;
