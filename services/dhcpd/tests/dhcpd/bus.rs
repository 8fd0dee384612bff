//! `org.oxwrt.Dhcp1` on a private bus (dbus-daemon): the leases, and a
//! `LeasesChanged` signal for each kind of change, from a real client.

use std::time::Duration;

use bus_schema::bus::{DHCP_PATH, Dhcp1Proxy, DhcpLease, LeaseChange};
use dhcpd::journal::Journal;
use dhcpd::{Change, Event, Lease};
use futures_util::StreamExt;
use oxwrt_lab::testing::PrivateBus;

use crate::support::{CONFIG, Dhcpd, Lan, WAIT, root_or_skip};

/// A lease that ran out while dhcpd was down.
fn stale() -> Lease {
    Lease {
        mac: [2, 0, 0, 0x78, 0, 0x41],
        ip: "10.78.0.141".parse().expect("address"),
        hostname: Some("gone".into()),
        expires: 1,
        network: "lan".into(),
    }
}

#[test]
fn dhcp1_signals_grants_renewals_releases_and_expiries() {
    if !root_or_skip() {
        return;
    }
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let lan = Lan::new();
    let (mut journal, _) = Journal::open(&lan.state()).expect("journal");
    journal.append(&Change {
        event: Event::Granted,
        lease: stale(),
    });
    journal.take().expect("flush").run().expect("flush");
    drop(journal);

    let mut dhcpd = Dhcpd::start(&lan.router, &lan.state(), CONFIG);
    let changes = dhcpd.changes.take().expect("lease changes");
    // The bus side runs whenever the test waits on it (dhcpd runs on its
    // own thread).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (proxy, mut signals) = rt.block_on(async {
        let iface = dhcpd::bus::Dhcp1::new(dhcpd.core.clone(), dhcpd.announce.clone());
        let server = bus.serve(DHCP_PATH, "org.oxwrt.Dhcp", iface).await;
        let proxy = Dhcp1Proxy::new(&bus.client().await).await.expect("proxy");
        let signals = proxy.receive_leases_changed().await.expect("subscribe");
        // Changes queue up until they are published: the expiry at
        // dhcpd's first tick is not missed.
        tokio::spawn(dhcpd::bus::publish(server, changes));
        (proxy, signals)
    });
    let mut next = |event: &str, hostname: &str| -> DhcpLease {
        rt.block_on(async {
            tokio::time::timeout(WAIT, async {
                while let Some(signal) = signals.next().await {
                    let args = signal.args().expect("arguments");
                    let found = args
                        .changes
                        .iter()
                        .find(|c: &&LeaseChange| c.event == event && c.lease.hostname == hostname);
                    if let Some(c) = found {
                        return c.lease.clone();
                    }
                }
                panic!("the signal stream ended");
            })
            .await
            .unwrap_or_else(|_| panic!("no {event:?} signal for {hostname:?}"))
        })
    };

    let expired = next("expired", "gone");
    assert_eq!(expired.ip, "10.78.0.141");
    assert_eq!(expired.mac, "02:00:00:78:00:41");

    let client = lan.client("02:00:00:78:00:42");
    let udhcpc = client.dhcp.udhcpc("signalled", &[]);
    let bound = client.dhcp.wait_event(&["bound"]);
    let granted = next("granted", "signalled");
    assert_eq!(granted.ip, bound["ip"]);
    assert_eq!(granted.network, "lan");
    let on_bus = rt.block_on(proxy.leases()).expect("Leases");
    assert_eq!(on_bus, vec![granted.clone()]);
    assert_eq!(rt.block_on(proxy.lease_count()).expect("LeaseCount"), 1);

    // A later expiry needs a later second.
    std::thread::sleep(Duration::from_millis(1100));
    udhcpc.signal("USR1");
    client.dhcp.wait_event(&["renew", "bound"]);
    let renewed = next("renewed", "signalled");
    assert_eq!(renewed.ip, granted.ip);
    assert!(renewed.expires > granted.expires);

    udhcpc.signal("USR2");
    assert_eq!(next("released", "signalled").ip, granted.ip);
    assert_eq!(rt.block_on(proxy.leases()).expect("Leases"), vec![]);
}
