//! dhcpd against real clients (ISC dhclient, busybox udhcpc, dhcpcd), each
//! in a network namespace of its own on the test LAN's bridge, with the
//! daemon's real core, journal and sockets (and `org.oxwrt.Dhcp1` on a
//! private bus). They need root; otherwise
//! they print `SKIP:` and return.

mod bus;
mod support;

use support::{CONFIG, Dhcpd, Lan, root_or_skip};

const STATIC_MAC: &str = "02:00:00:78:00:99";

fn in_pool(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| (100..=150).contains(&a.octets()[3]) && a.octets()[..3] == [10, 78, 0])
}

#[test]
fn dhclient_udhcpc_and_dhcpcd_lease_with_the_configured_options() {
    if !root_or_skip() {
        return;
    }
    let lan = Lan::new();
    let dhcpd = Dhcpd::start(&lan.router, &lan.state(), CONFIG);

    let a = lan.client("02:00:00:78:00:01");
    let v = a.dhcp.dhclient("isc-host");
    assert!(in_pool(&v["new_ip_address"]), "{v:?}");
    assert_eq!(v["new_subnet_mask"], "255.255.255.0");
    assert_eq!(v["new_routers"], "10.78.0.1");
    assert_eq!(v["new_domain_name_servers"], "10.78.0.53");
    assert_eq!(v["new_domain_name"], "test.lan");
    assert_eq!(v["new_ntp_servers"], "10.78.0.123");
    assert_eq!(v["new_interface_mtu"], "1400");
    assert_eq!(v["new_dhcp_lease_time"], "3600");
    let isc_ip = v["new_ip_address"].clone();

    let b = lan.client("02:00:00:78:00:02");
    b.dhcp.udhcpc("busybox-host", &["-q"]).wait();
    let v = b.dhcp.wait_event(&["bound"]);
    assert!(in_pool(&v["ip"]), "{v:?}");
    assert_eq!(v["subnet"], "255.255.255.0");
    assert_eq!(v["router"].trim(), "10.78.0.1");
    assert_eq!(v["dns"].trim(), "10.78.0.53");
    assert_eq!(v["domain"], "test.lan");
    assert_eq!(v["ntpsrv"].trim(), "10.78.0.123");
    assert_eq!(v["mtu"], "1400");
    assert_eq!(v["serverid"], "10.78.0.1");
    assert_eq!(v["lease"], "3600");

    let c = lan.client("02:00:00:78:00:03");
    let v = c.dhcp.dhcpcd("dhcpcd-host");
    assert!(in_pool(&v["new_ip_address"]), "{v:?}");
    assert_eq!(v["new_routers"], "10.78.0.1");
    assert_eq!(v["new_domain_name_servers"], "10.78.0.53");
    assert_eq!(v["new_domain_name"], "test.lan");

    // Each got its own address, and dhcpd kept each hostname (option 12).
    for (mac, host) in [
        ("02:00:00:78:00:01", "isc-host"),
        ("02:00:00:78:00:02", "busybox-host"),
        ("02:00:00:78:00:03", "dhcpcd-host"),
    ] {
        let l = dhcpd.wait_lease(host, |l| l.mac == mac);
        assert_eq!(l.hostname, host);
        assert_eq!(l.network, "lan");
    }
    let mut ips: Vec<String> = dhcpd.leases().into_iter().map(|l| l.ip).collect();
    ips.dedup();
    assert_eq!(ips.len(), 3, "{ips:?}");
    assert!(ips.contains(&isc_ip));
}

#[test]
fn a_static_lease_gets_its_fixed_address_and_name() {
    if !root_or_skip() {
        return;
    }
    let lan = Lan::new();
    let dhcpd = Dhcpd::start(&lan.router, &lan.state(), CONFIG);
    let client = lan.client(STATIC_MAC);
    client.dhcp.udhcpc("whatever", &["-q"]).wait();
    let v = client.dhcp.wait_event(&["bound"]);
    assert_eq!(v["ip"], "10.78.0.20", "{v:?}");
    let l = dhcpd.wait_lease("static", |l| l.mac == STATIC_MAC);
    assert_eq!(l.ip, "10.78.0.20");
    assert_eq!(l.hostname, "printer", "the static lease's name wins");
}

#[test]
fn release_frees_the_address() {
    if !root_or_skip() {
        return;
    }
    let lan = Lan::new();
    let dhcpd = Dhcpd::start(&lan.router, &lan.state(), CONFIG);
    let a = lan.client("02:00:00:78:00:11");
    a.dhcp.dhclient("one");
    dhcpd.wait_lease("dhclient's", |l| l.hostname == "one");
    a.dhcp.dhclient_release();
    dhcpd.wait_gone("dhclient's after dhclient -r", |l| l.hostname == "one");
    let b = lan.client("02:00:00:78:00:12");
    let udhcpc = b.dhcp.udhcpc("two", &[]);
    b.dhcp.wait_event(&["bound"]);
    dhcpd.wait_lease("udhcpc's", |l| l.hostname == "two");
    // SIGUSR2: udhcpc releases its lease.
    udhcpc.signal("USR2");
    dhcpd.wait_gone("udhcpc's after SIGUSR2", |l| l.hostname == "two");
}

#[test]
fn a_renewal_after_a_restart_keeps_the_address() {
    if !root_or_skip() {
        return;
    }
    let lan = Lan::new();
    let dhcpd = Dhcpd::start(&lan.router, &lan.state(), CONFIG);
    let client = lan.client("02:00:00:78:00:21");
    let udhcpc = client.dhcp.udhcpc("stays", &[]);
    let bound = client.dhcp.wait_event(&["bound"]);
    let before = dhcpd.wait_lease("bound", |l| l.hostname == "stays");
    dhcpd.stop();

    // The journal brought the lease back before any client spoke.
    let dhcpd = Dhcpd::start(&lan.router, &lan.state(), CONFIG);
    assert_eq!(dhcpd.leases(), vec![before.clone()]);
    // A RENEW (unicast, from the bound address) is ACKed with the same
    // address and a later expiry.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    udhcpc.signal("USR1");
    let renewed = client.dhcp.wait_event(&["renew", "bound"]);
    assert_eq!(renewed["ip"], bound["ip"]);
    dhcpd.wait_lease("renewed", |l| {
        l.ip == before.ip && l.expires > before.expires
    });
    // Another client cannot take it meanwhile.
    let other = lan.client("02:00:00:78:00:22");
    other.dhcp.udhcpc("other", &["-q"]).wait();
    assert_ne!(other.dhcp.wait_event(&["bound"])["ip"], bound["ip"]);
}

#[test]
fn a_config_change_keeps_the_leases_and_renewals_get_the_new_options() {
    if !root_or_skip() {
        return;
    }
    let lan = Lan::new();
    let dhcpd = Dhcpd::start(&lan.router, &lan.state(), CONFIG);
    let client = lan.client("02:00:00:78:00:31");
    let udhcpc = client.dhcp.udhcpc("keeper", &[]);
    let bound = client.dhcp.wait_event(&["bound"]);
    let before = dhcpd.wait_lease("bound", |l| l.hostname == "keeper");
    dhcpd
        .apply(&CONFIG.replace("10.78.0.53", "10.78.0.54"))
        .expect("apply");
    assert_eq!(dhcpd.leases(), vec![before]);
    udhcpc.signal("USR1");
    let renewed = client.dhcp.wait_event(&["renew", "bound"]);
    assert_eq!(renewed["ip"], bound["ip"]);
    assert_eq!(renewed["dns"].trim(), "10.78.0.54");
}
