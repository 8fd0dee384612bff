//! netd's reconcile against a real kernel, in a network namespace of its
//! own: builds a LAN bridge with ports, an address and a marked route;
//! a second pass changes nothing; dropping the config removes only what
//! netd made. Needs root; otherwise prints `SKIP:`.

use ipnet::IpNet;
use netd::desired::{Desired, Link, Origin, RouteSpec};
use netd::kernel::{Kernel, ROUTE_PROTOCOL};
use netd::reconcile::{Owned, reconcile};

use crate::support::{Netns, netns};

fn net(s: &str) -> IpNet {
    s.parse().expect("net")
}

fn lan() -> Desired {
    let mut d = Desired::default();
    d.links.insert(
        "br-t".into(),
        Link {
            origin: Origin::Bridge,
            master: None,
            mtu: Some(1400),
            mac: Some(bus_schema::config::value::MacAddr([0x02, 0, 0, 0, 0x77, 1])),
        },
    );
    for port in ["pa", "pb"] {
        d.links.insert(
            port.into(),
            Link {
                origin: Origin::Existing,
                master: Some("br-t".into()),
                mtu: None,
                mac: None,
            },
        );
    }
    d.addresses.insert(("br-t".into(), net("192.168.77.1/24")));
    d.addresses.insert(("br-t".into(), net("fd00:77::1/64")));
    d.routes.insert(RouteSpec {
        destination: net("10.77.0.0/16"),
        gateway: Some("192.168.77.254".parse().expect("ip")),
        device: Some("br-t".into()),
        metric: 50,
    });
    d
}

/// One reconcile pass in the namespace: (actions done, owned after).
fn pass(ns: &Netns, desired: Desired, owned: Owned) -> (usize, Owned) {
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let kernel = Kernel::open().expect("rtnetlink");
            let observed = kernel.observe().await.expect("observe");
            let plan = reconcile(&desired, &observed, &owned);
            assert!(plan.problems.is_empty(), "{:?}", plan.problems);
            kernel.apply(&plan.actions).await.expect("apply");
            (plan.actions.len(), plan.owned)
        })
    })
}

#[test]
fn reconcile_builds_keeps_and_removes_only_its_own() {
    if !crate::support::root_or_skip() {
        return;
    }
    let ns = netns();
    ns.ip(&[
        "link", "add", "pa", "type", "veth", "peer", "name", "pa-peer",
    ]);
    ns.ip(&[
        "link", "add", "pb", "type", "veth", "peer", "name", "pb-peer",
    ]);
    // Someone else's address and route: never touched.
    ns.ip(&["link", "set", "pb-peer", "up"]);
    ns.ip(&["addr", "add", "10.9.9.9/8", "dev", "pb-peer"]);

    let (done, owned) = pass(&ns, lan(), Owned::default());
    assert!(done > 0);
    let links = ns.ip(&["-d", "link", "show", "br-t"]);
    assert!(
        links.contains("mtu 1400") && links.contains("bridge"),
        "{links}"
    );
    for port in ["pa", "pb"] {
        let l = ns.ip(&["link", "show", port]);
        assert!(l.contains("master br-t"), "{l}");
    }
    assert!(links.contains("link/ether 02:00:00:00:77:01"), "{links}");
    let addr = ns.ip(&["addr", "show", "dev", "br-t"]);
    assert!(addr.contains("192.168.77.1/24"), "{addr}");
    assert!(addr.contains("fd00:77::1/64"), "{addr}");
    let routes = ns.ip(&["route", "show", "proto", &ROUTE_PROTOCOL.to_string()]);
    assert!(
        routes.contains("10.77.0.0/16 via 192.168.77.254 dev br-t") && routes.contains("metric 50"),
        "{routes}"
    );

    // A restart (fresh observation, persisted ownership) changes nothing.
    let (done, owned) = pass(&ns, lan(), owned);
    assert_eq!(done, 0, "a second pass changed the kernel");

    // Dropping the config removes what netd made, and only that.
    let (_, owned) = pass(&ns, Desired::default(), owned);
    assert_eq!(owned, Owned::default());
    let all = ns.ip(&["link", "show"]);
    assert!(!all.contains("br-t"), "{all}");
    assert!(all.contains("pa") && all.contains("pb"), "{all}");
    let theirs = ns.ip(&["addr", "show", "dev", "pb-peer"]);
    assert!(theirs.contains("10.9.9.9/8"), "{theirs}");
    let routes = ns.ip(&["route", "show", "proto", &ROUTE_PROTOCOL.to_string()]);
    assert!(routes.trim().is_empty(), "{routes}");
}

#[test]
fn a_vlan_sub_interface_is_made_on_its_parent_and_joins_the_bridge() {
    if !crate::support::root_or_skip() {
        return;
    }
    let ns = netns();
    ns.ip(&[
        "link",
        "add",
        "trunk",
        "type",
        "veth",
        "peer",
        "name",
        "trunk-peer",
    ]);
    // Probe 802.1q with ip itself, so a kernel without it skips with the
    // reason rather than failing netd.
    let probe = std::process::Command::new("ip")
        .args([
            "-n",
            ns.name(),
            "link",
            "add",
            "link",
            "trunk",
            "name",
            "probe.9",
        ])
        .args(["type", "vlan", "id", "9"])
        .output()
        .expect("run ip");
    if !probe.status.success() {
        println!(
            "SKIP: this kernel cannot make 802.1q VLANs: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return;
    }
    ns.ip(&["link", "del", "probe.9"]);
    let mut d = Desired::default();
    let link = |origin, master: Option<&str>| Link {
        origin,
        master: master.map(str::to_string),
        mtu: None,
        mac: None,
    };
    d.links.insert("br-v".into(), link(Origin::Bridge, None));
    d.links.insert("trunk".into(), link(Origin::Existing, None));
    let vlan = netd::desired::VlanOf {
        parent: "trunk".into(),
        id: 10,
    };
    d.links
        .insert("trunk.10".into(), link(Origin::Vlan(vlan), Some("br-v")));
    let (done, owned) = pass(&ns, d.clone(), Owned::default());
    assert!(done > 0);
    let l = ns.ip(&["-d", "link", "show", "trunk.10"]);
    assert!(
        l.contains("vlan protocol 802.1Q id 10") && l.contains("master br-v"),
        "{l}"
    );
    let (done, _) = pass(&ns, d, owned);
    assert_eq!(done, 0, "a second pass changed the kernel");
}
