//! What netd publishes on `org.oxwrt.Net1`: every link, and every WAN's
//! state, computed from the config, the leases and the kernel as plain
//! data.

use std::collections::BTreeMap;

use bus_schema::bus::{LinkStatus, WanStatus};
use bus_schema::config::model::{Network, NetworkKind, WanMode};

use crate::dhcp::Lease;
use crate::reconcile::Observed;

/// Every link, by name.
pub fn links(observed: &Observed) -> Vec<LinkStatus> {
    observed
        .links
        .iter()
        .map(|(name, l)| LinkStatus {
            name: name.clone(),
            index: l.index,
            oper_state: l.oper.clone(),
            mac: l.mac.map(|m| m.to_string()).unwrap_or_default(),
            mtu: l.mtu,
            addresses: observed
                .addresses
                .iter()
                .filter(|(d, _)| d == name)
                .map(|(_, a)| a.to_string())
                .collect(),
            master: l.master.clone().unwrap_or_default(),
        })
        .collect()
}

/// Every WAN network in config order, `leases` keyed by device. A WAN is
/// `up` when its device is up (or reports no carrier state) and holds its
/// address; the `up` one with the lowest priority is `active`.
pub fn wans(
    networks: &[Network],
    leases: &BTreeMap<String, Lease>,
    observed: &Observed,
) -> Vec<WanStatus> {
    let mut out: Vec<(u32, WanStatus)> = Vec::new();
    for n in networks {
        let NetworkKind::Wan(wan) = &n.kind else {
            continue;
        };
        let link_up = observed
            .links
            .get(&wan.device)
            .is_some_and(|l| l.up && matches!(l.oper.as_str(), "up" | "unknown"));
        let mut s = WanStatus {
            network: n.name.clone(),
            device: wan.device.clone(),
            ..WanStatus::default()
        };
        let address = match &wan.mode {
            WanMode::Static {
                address,
                gateway,
                dns,
            } => {
                s.mode = "static".into();
                s.gateway = gateway.to_string();
                s.dns = dns.iter().map(ToString::to_string).collect();
                Some(*address)
            }
            WanMode::Dhcp { .. } => {
                s.mode = "dhcp".into();
                leases.get(&wan.device).map(|l| {
                    let at = |secs: u32| l.obtained.saturating_add(u64::from(secs));
                    s.gateway = l.router.map(|g| g.to_string()).unwrap_or_default();
                    s.dns = l.dns.iter().map(ToString::to_string).collect();
                    s.server = l.server.to_string();
                    // An infinite lease shows expiry 0.
                    [
                        s.lease_obtained,
                        s.lease_renew,
                        s.lease_rebind,
                        s.lease_expires,
                    ] = [
                        l.obtained,
                        at(l.t1_secs),
                        at(l.t2_secs),
                        l.expires().unwrap_or(0),
                    ];
                    l.address
                })
            }
            WanMode::Pppoe { .. } => {
                s.mode = "pppoe".into();
                None
            }
        };
        let held = address.is_some_and(|a| {
            observed
                .addresses
                .contains(&(wan.device.clone(), ipnet::IpNet::V4(a)))
        });
        s.address = address.map(|a| a.to_string()).unwrap_or_default();
        s.state = match (link_up, held) {
            (false, _) => "down",
            (true, true) => "up",
            (true, false) => "acquiring",
        }
        .into();
        out.push((wan.priority, s));
    }
    let active = out
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| s.state == "up")
        .min_by_key(|(i, (p, _))| (*p, *i))
        .map(|(i, _)| i);
    if let Some(i) = active {
        out[i].1.active = true;
    }
    out.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    use crate::reconcile::LinkState;
    use crate::reconcile::tests::nic;
    use ipnet::IpNet;

    fn up(observed: &mut Observed, name: &str) {
        let link = LinkState {
            index: 7,
            ..nic(None, true)
        };
        observed.links.insert(name.into(), link);
    }

    #[test]
    fn wan_states_and_the_active_one() {
        let (networks, _) = crate::desired::tests::cookbook();
        // The cookbook: wan (dhcp on eth0, priority 10), wan2 (static on
        // eth4, priority 20).
        let mut observed = Observed::default();
        let none = BTreeMap::new();
        let s = wans(&networks, &none, &observed);
        assert_eq!(
            s.iter()
                .map(|w| (w.network.as_str(), w.state.as_str(), w.active))
                .collect::<Vec<_>>(),
            vec![("wan", "down", false), ("wan2", "down", false)]
        );
        up(&mut observed, "eth0");
        up(&mut observed, "eth4");
        observed.addresses.insert((
            "eth4".into(),
            "203.0.113.2/29".parse::<IpNet>().expect("net"),
        ));
        let s = wans(&networks, &none, &observed);
        assert_eq!(s[0].state, "acquiring");
        assert_eq!((s[1].state.as_str(), s[1].active), ("up", true));
        assert_eq!(s[1].gateway, "203.0.113.1");
        assert_eq!(s[1].dns, vec!["203.0.113.53", "2001:db8::53"]);

        let isp = Ipv4Addr::new(100, 64, 0, 1);
        let lease = Lease {
            address: "100.64.0.100/24".parse().expect("net"),
            router: Some(isp),
            dns: vec![isp],
            server: isp,
            lease_secs: 3,
            t1_secs: 1,
            t2_secs: 2,
            obtained: 1,
        };
        let leases = BTreeMap::from([("eth0".to_string(), lease)]);
        // A lease not yet on the device is still `acquiring`.
        assert_eq!(wans(&networks, &leases, &observed)[0].state, "acquiring");
        observed
            .addresses
            .insert(("eth0".into(), "100.64.0.100/24".parse().expect("net")));
        let s = wans(&networks, &leases, &observed);
        assert_eq!((s[0].state.as_str(), s[0].active), ("up", true));
        assert!(!s[1].active, "the lower priority number wins");
        assert_eq!(s[0].address, "100.64.0.100/24");
        assert_eq!(s[0].server, "100.64.0.1");
        assert_eq!(
            [
                s[0].lease_obtained,
                s[0].lease_renew,
                s[0].lease_rebind,
                s[0].lease_expires
            ],
            [1, 2, 3, 4]
        );
    }

    #[test]
    fn links_carry_their_addresses() {
        let mut observed = Observed::default();
        up(&mut observed, "br-lan");
        observed
            .addresses
            .insert(("br-lan".into(), "192.168.1.1/24".parse().expect("net")));
        let l = links(&observed);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].addresses, vec!["192.168.1.1/24"]);
        assert_eq!((l[0].index, l[0].oper_state.as_str()), (7, "up"));
    }
}
