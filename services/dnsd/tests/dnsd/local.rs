//! Local names answered by dnsd itself: the router, static hosts, static
//! leases, DHCP leases (as dhcpd reports them), PTR; and a query from
//! outside the LAN that gets no answer at all.

use std::net::Ipv4Addr;
use std::time::Duration;

use bus_schema::bus::LeaseChange;

use crate::support::{Dnsd, Net, ROUTER, UPSTREAM, config, dig, lease, timed};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn local_names_static_hosts_leases_and_ptr() {
    timed(LIMIT, || {
        let net = Net::new();
        let dnsd = Dnsd::start(&net.router, &config(""));
        let ask = |args: &[&str]| dig(&net.client, ROUTER, args);

        for name in ["gw", "gw.lan", "GW.Lan"] {
            let d = ask(&[name, "A"]);
            assert_eq!(d.status, "NOERROR", "{name}: {}", d.text);
            assert_eq!(d.answers, [ROUTER], "{name}");
            assert!(d.flags.contains(&"aa".to_string()));
        }
        assert_eq!(ask(&["printer.lan"]).answers, ["192.168.53.5"]);
        assert_eq!(ask(&["nas.lan"]).answers, ["192.168.53.6"]);
        let d = ask(&["nobody.lan"]);
        assert_eq!(d.status, "NXDOMAIN");
        assert_eq!(d.authority, ["SOA"]);
        assert_eq!(ask(&["-x", ROUTER]).answers, ["gw.lan."]);
        assert_eq!(ask(&["-x", "192.168.53.5"]).answers, ["printer.lan."]);
        assert_eq!(ask(&["-x", "192.168.53.77"]).status, "NXDOMAIN");

        // A lease's host name appears and goes with the lease.
        let laptop = lease(
            "02:00:00:00:53:21",
            Ipv4Addr::new(192, 168, 53, 121),
            "Laptop",
        );
        dnsd.core.blocking_lock().set_leases(vec![laptop.clone()]);
        assert_eq!(ask(&["laptop.lan"]).answers, ["192.168.53.121"]);
        assert_eq!(ask(&["-x", "192.168.53.121"]).answers, ["laptop.lan."]);
        let phone = lease(
            "02:00:00:00:53:22",
            Ipv4Addr::new(192, 168, 53, 122),
            "phone",
        );
        dnsd.core.blocking_lock().lease_changes(vec![
            LeaseChange {
                event: "granted".into(),
                lease: phone,
            },
            LeaseChange {
                event: "released".into(),
                lease: laptop,
            },
        ]);
        assert_eq!(ask(&["phone.lan"]).answers, ["192.168.53.122"]);
        assert_eq!(ask(&["laptop.lan"]).status, "NXDOMAIN");
        // The static lease is answered whether or not it is leased.
        assert_eq!(ask(&["printer.lan"]).answers, ["192.168.53.5"]);
        // Over TCP too.
        assert_eq!(ask(&["+tcp", "gw.lan"]).answers, [ROUTER]);
    });
}

#[test]
fn queries_from_outside_the_lan_get_no_answer() {
    timed(LIMIT, || {
        let net = Net::new();
        let _dnsd = Dnsd::start(&net.router, &config(""));
        // The same question from the LAN is answered...
        assert_eq!(dig(&net.client, ROUTER, &["gw.lan"]).answers, [ROUTER]);
        // ...from the WAN side nothing comes back, over UDP or TCP.
        let d = dig(&net.upstream, ROUTER, &["gw.lan"]);
        assert_eq!(d.status, "", "answered from {UPSTREAM}: {}", d.text);
        let d = dig(&net.upstream, ROUTER, &["+tcp", "gw.lan"]);
        assert_eq!(d.status, "", "answered over TCP: {}", d.text);
    });
}
