use dhcproto::Decodable;
use dhcproto::v4::Flags;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::packet::tests::{MAC, bytes, client};
use crate::pool::tests::pool;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn server() -> Server {
    Server::new(vec![pool()], Leases::new())
}

fn sends(actions: &[Action]) -> Vec<&Reply> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn only_reply(actions: &[Action]) -> &Reply {
    let replies = sends(actions);
    assert_eq!(replies.len(), 1, "{actions:?}");
    replies[0]
}

fn decode(r: &Reply) -> Message {
    Message::from_bytes(&r.bytes).expect("decode own reply")
}

fn discover(mac: &Mac) -> Vec<u8> {
    bytes(&client(MessageType::Discover, mac))
}

fn select(mac: &Mac, ip: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let mut m = client(MessageType::Request, mac);
    m.set_flags(Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    m.opts_mut().insert(DhcpOption::Hostname("laptop".into()));
    bytes(&m)
}

fn init_reboot(mac: &Mac, ip: Ipv4Addr) -> Vec<u8> {
    let mut m = client(MessageType::Request, mac);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    bytes(&m)
}

fn renew(mac: &Mac, ip: Ipv4Addr) -> Vec<u8> {
    let mut m = client(MessageType::Request, mac);
    m.set_ciaddr(ip);
    bytes(&m)
}

/// DISCOVER then REQUEST: the address granted to `mac`.
fn lease_for(s: &mut Server, mac: &Mac, now: u64) -> Ipv4Addr {
    let offer = s.handle("lan", &discover(mac), now).expect("offer");
    let ip = decode(only_reply(&offer)).yiaddr();
    s.handle("lan", &select(mac, ip, SERVER), now).expect("ack");
    ip
}

#[test]
fn discover_gets_an_offer_with_the_pool_options() {
    let mut s = server();
    let actions = s.handle("lan", &discover(&MAC), 0).expect("offer");
    let r = only_reply(&actions);
    assert_eq!(r.kind, ReplyKind::Offer);
    assert_eq!(r.device, "br-lan");
    let m = decode(r);
    assert_eq!(m.opcode(), Opcode::BootReply);
    assert_eq!(m.xid(), 0x1234);
    assert_eq!(m.yiaddr(), Ipv4Addr::new(10, 0, 0, 10));
    // No broadcast flag, no address yet: to the hardware address.
    assert_eq!(
        r.to,
        Destination::Hardware {
            mac: MAC,
            ip: m.yiaddr()
        }
    );
    let o = m.opts();
    assert_eq!(o.msg_type(), Some(MessageType::Offer));
    let get = |c: OptionCode| o.get(c).cloned();
    assert_eq!(
        get(OptionCode::ServerIdentifier),
        Some(DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        get(OptionCode::SubnetMask),
        Some(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        get(OptionCode::Router),
        Some(DhcpOption::Router(vec![SERVER]))
    );
    assert_eq!(
        get(OptionCode::DomainName),
        Some(DhcpOption::DomainName("lan".into()))
    );
    assert_eq!(
        get(OptionCode::NtpServers),
        Some(DhcpOption::NtpServers(vec![SERVER]))
    );
    assert_eq!(
        get(OptionCode::InterfaceMtu),
        Some(DhcpOption::InterfaceMtu(1500))
    );
    assert!(matches!(
        get(OptionCode::ClasslessStaticRoute),
        Some(DhcpOption::ClasslessStaticRoute(r)) if r.len() == 1
    ));
    assert_eq!(
        get(OptionCode::AddressLeaseTime),
        Some(DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(get(OptionCode::Renewal), Some(DhcpOption::Renewal(1800)));
    assert_eq!(
        get(OptionCode::Rebinding),
        Some(DhcpOption::Rebinding(3150))
    );
    // Raw option 66 as configured, byte for byte.
    assert!(
        r.bytes
            .windows(6)
            .any(|w| w == [66, 4, b't', b'f', b't', b'p'])
    );
    // No lease before the REQUEST, but the offer is reserved.
    assert!(s.leases().is_empty());
    let other = s
        .handle("lan", &discover(&[2, 0, 0, 0, 0, 2]), 1)
        .expect("offer");
    assert_eq!(
        decode(only_reply(&other)).yiaddr(),
        Ipv4Addr::new(10, 0, 0, 11)
    );
}

#[test]
fn dns_option_comes_from_the_pool() {
    let mut p = pool();
    p.config.dns = vec![SERVER];
    let mut s = Server::new(vec![p], Leases::new());
    let actions = s.handle("lan", &discover(&MAC), 0).expect("offer");
    let m = decode(only_reply(&actions));
    assert_eq!(
        m.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![SERVER]))
    );
}

#[test]
fn grant_is_persisted_before_the_ack_is_sent() {
    let mut s = server();
    let ip = Ipv4Addr::new(10, 0, 0, 10);
    s.handle("lan", &discover(&MAC), 0).expect("offer");
    let actions = s.handle("lan", &select(&MAC, ip, SERVER), 5).expect("ack");
    assert_eq!(actions.len(), 2, "{actions:?}");
    let Action::Record(Change {
        event: Event::Granted,
        lease,
    }) = &actions[0]
    else {
        panic!("first action must persist: {actions:?}");
    };
    assert_eq!(lease.ip, ip);
    assert_eq!(lease.mac, MAC);
    assert_eq!(lease.expires, 3605);
    assert_eq!(lease.hostname.as_deref(), Some("laptop"));
    assert_eq!(lease.network, "lan");
    let Action::Send(ack) = &actions[1] else {
        panic!("second action must send: {actions:?}");
    };
    assert_eq!(ack.kind, ReplyKind::Ack);
    assert_eq!(ack.to, Destination::Broadcast);
    assert_eq!(s.leases().by_ip(ip), Some(lease));
    // A renewal persists the new expiry before its ACK, too, and keeps
    // the hostname it does not repeat (no option 12).
    let actions = s.handle("lan", &renew(&MAC, ip), 100).expect("renew");
    assert!(
        matches!(&actions[..], [Action::Record(Change { event: Event::Renewed, lease: l }), Action::Send(_)]
            if l.expires == 3700 && l.hostname.as_deref() == Some("laptop")),
        "{actions:?}"
    );
}

#[test]
fn request_for_another_server_is_dropped_and_frees_the_offer() {
    let mut s = server();
    s.handle("lan", &discover(&MAC), 0).expect("offer");
    let ip = Ipv4Addr::new(10, 0, 0, 10);
    let err = s.handle("lan", &select(&MAC, ip, Ipv4Addr::new(10, 0, 0, 254)), 1);
    assert!(matches!(err, Err(ServerError::Server { .. })));
    assert!(s.pools()[0].available(ip, &[2, 0, 0, 0, 0, 2], s.leases(), 2));
}

#[test]
fn init_reboot_acks_its_own_address_and_naks_the_rest() {
    let mut s = server();
    let ip = lease_for(&mut s, &MAC, 0);
    let ok = s.handle("lan", &init_reboot(&MAC, ip), 10).expect("ack");
    assert!(
        matches!(&ok[..], [Action::Record(Change { event: Event::Renewed, .. }), Action::Send(r)] if r.kind == ReplyKind::Ack)
    );
    // Wrong subnet (the client moved networks): NAK, broadcast.
    let moved = s
        .handle(
            "lan",
            &init_reboot(&MAC, Ipv4Addr::new(192, 168, 1, 50)),
            10,
        )
        .expect("nak");
    let r = only_reply(&moved);
    assert_eq!(r.kind, ReplyKind::Nak);
    assert_eq!(r.to, Destination::Broadcast);
    assert_eq!(decode(r).opts().msg_type(), Some(MessageType::Nak));
    assert_eq!(decode(r).yiaddr(), Ipv4Addr::UNSPECIFIED);
    // Another client's address: NAK.
    let thief = s
        .handle("lan", &init_reboot(&[2, 0, 0, 0, 0, 9], ip), 10)
        .expect("nak");
    assert_eq!(only_reply(&thief).kind, ReplyKind::Nak);
    // Someone's static address: NAK.
    let stat = s
        .handle(
            "lan",
            &init_reboot(&[2, 0, 0, 0, 0, 9], Ipv4Addr::new(10, 0, 0, 12)),
            10,
        )
        .expect("nak");
    assert_eq!(only_reply(&stat).kind, ReplyKind::Nak);
}

#[test]
fn unknown_client_keeps_a_free_address_after_losing_the_database() {
    let mut s = server();
    let ip = Ipv4Addr::new(10, 0, 0, 11);
    let actions = s.handle("lan", &renew(&MAC, ip), 0).expect("ack");
    let r = only_reply(&actions);
    assert_eq!(r.kind, ReplyKind::Ack);
    // RENEWING: unicast to ciaddr, with ciaddr echoed.
    assert_eq!(r.to, Destination::Unicast(ip));
    assert_eq!(decode(r).ciaddr(), ip);
    assert_eq!(s.leases().by_mac("lan", &MAC).map(|l| l.ip), Some(ip));
}

#[test]
fn relayed_messages_use_the_relays_pool_and_address() {
    let mut s = server();
    let relay = Ipv4Addr::new(10, 0, 0, 200);
    let mut m = client(MessageType::Discover, &MAC);
    m.set_giaddr(relay);
    // Arrives on another network: the relay's subnet decides the pool.
    let actions = s.handle("guest", &bytes(&m), 0).expect("offer");
    let r = only_reply(&actions);
    assert_eq!(r.to, Destination::Relay(relay));
    assert_eq!(decode(r).giaddr(), relay);
    let mut nak = client(MessageType::Request, &MAC);
    nak.set_giaddr(relay);
    nak.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(172, 16, 0, 5)));
    let actions = s.handle("guest", &bytes(&nak), 0).expect("nak");
    let r = only_reply(&actions);
    assert_eq!(r.kind, ReplyKind::Nak);
    assert_eq!(r.to, Destination::Relay(relay));
    assert!(decode(r).flags().broadcast());
    m.set_giaddr(Ipv4Addr::new(172, 16, 0, 1));
    assert!(matches!(
        s.handle("lan", &bytes(&m), 0),
        Err(ServerError::Relay { .. })
    ));
}

#[test]
fn message_on_a_network_without_pool_is_dropped() {
    let mut s = server();
    assert!(matches!(
        s.handle("guest", &discover(&MAC), 0),
        Err(ServerError::Network { .. })
    ));
}

#[test]
fn static_lease_gets_its_address_and_name() {
    let mut s = server();
    let printer = [2, 0, 0, 0, 0, 0x55];
    let ip = lease_for(&mut s, &printer, 0);
    assert_eq!(ip, Ipv4Addr::new(10, 0, 0, 12));
    let lease = s.leases().by_ip(ip).expect("lease");
    assert_eq!(lease.hostname.as_deref(), Some("printer"));
}

#[test]
fn release_frees_the_address() {
    let mut s = server();
    let ip = lease_for(&mut s, &MAC, 0);
    let mut m = client(MessageType::Release, &MAC);
    m.set_ciaddr(ip);
    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    let actions = s.handle("lan", &bytes(&m), 10).expect("release");
    assert!(
        matches!(&actions[..], [Action::Record(Change { event: Event::Released, lease: l })] if l.ip == ip)
    );
    assert!(s.leases().is_empty());
    // Again: nothing to release.
    assert!(matches!(
        s.handle("lan", &bytes(&m), 11),
        Err(ServerError::NoLease { .. })
    ));
}

#[test]
fn decline_quarantines_the_address() {
    let mut s = server();
    let ip = lease_for(&mut s, &MAC, 0);
    let mut m = client(MessageType::Decline, &MAC);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
    let actions = s.handle("lan", &bytes(&m), 10).expect("decline");
    assert!(
        matches!(&actions[..], [Action::Record(Change { event: Event::Declined, lease: l })] if l.ip == ip)
    );
    let next = s.handle("lan", &discover(&MAC), 11).expect("offer");
    assert_ne!(decode(only_reply(&next)).yiaddr(), ip);
    let other = [2, 0, 0, 0, 0, 7];
    assert!(!s.pools()[0].available(ip, &other, s.leases(), 12));
    // After the quarantine the address is back.
    let later = 11 + QUARANTINE_SECS + OFFER_SECS;
    s.expire(later);
    assert!(s.pools()[0].available(ip, &other, s.leases(), later));
}

#[test]
fn decline_of_someone_elses_address_changes_nothing() {
    let mut s = server();
    let ip = lease_for(&mut s, &MAC, 0);
    let mut m = client(MessageType::Decline, &[2, 0, 0, 0, 0, 9]);
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    assert!(matches!(
        s.handle("lan", &bytes(&m), 1),
        Err(ServerError::NoLease { .. })
    ));
    assert_eq!(s.leases().by_ip(ip).map(|l| l.mac), Some(MAC));
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut s = server();
    let ip = Ipv4Addr::new(10, 0, 0, 77);
    let mut m = client(MessageType::Inform, &MAC);
    m.set_ciaddr(ip);
    let actions = s.handle("lan", &bytes(&m), 0).expect("ack");
    let r = only_reply(&actions);
    assert_eq!(r.kind, ReplyKind::Ack);
    assert_eq!(r.to, Destination::Unicast(ip));
    let d = decode(r);
    assert_eq!(d.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(d.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert!(d.opts().get(OptionCode::Router).is_some());
    assert!(s.leases().is_empty());
}

#[test]
fn a_lease_that_runs_out_is_reported_expired_once() {
    let mut s = server();
    let ip = lease_for(&mut s, &MAC, 0);
    // The pool's lease time is 3600 s.
    assert!(s.expire(3599).is_empty());
    let gone = s.expire(3600);
    assert!(
        matches!(&gone[..], [Change { event: Event::Expired, lease }] if lease.ip == ip),
        "{gone:?}"
    );
    assert!(s.leases().is_empty());
    assert!(s.expire(3601).is_empty());
}

#[test]
fn request_without_an_address_is_dropped() {
    let mut s = server();
    let m = client(MessageType::Request, &MAC);
    assert_eq!(s.handle("lan", &bytes(&m), 0), Err(ServerError::Address));
}

/// A number below `n` (0 when `n` is 0) from the seeded generator, so
/// every run mutates the same way.
fn below(rng: &mut StdRng, n: usize) -> usize {
    rng.random_range(0..n.max(1))
}

#[test]
fn never_panics_on_mutated_input() {
    let ip = Ipv4Addr::new(10, 0, 0, 10);
    let mut seeds = vec![
        discover(&MAC),
        select(&MAC, ip, SERVER),
        init_reboot(&MAC, ip),
        renew(&MAC, ip),
    ];
    for kind in [
        MessageType::Release,
        MessageType::Decline,
        MessageType::Inform,
    ] {
        let mut m = client(kind, &MAC);
        m.set_ciaddr(ip).set_giaddr(Ipv4Addr::new(10, 0, 0, 200));
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        seeds.push(bytes(&m));
    }
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut s = server();
    let (mut answered, mut dropped) = (0, 0);
    for round in 0..20_000u64 {
        let mut b = seeds[below(&mut rng, seeds.len())].clone();
        for _ in 0..1 + below(&mut rng, 4) {
            if b.is_empty() {
                b.push(rng.random::<u8>());
            }
            let i = below(&mut rng, b.len());
            match below(&mut rng, 7) {
                0 => b[i] = rng.random::<u8>(),
                1 => b.truncate(i),
                2 => b.insert(i, rng.random::<u8>()),
                3 => {
                    b.remove(i);
                }
                // A huge or zero length in the options area.
                4 => {
                    if b.len() > 241 {
                        let j = 240 + below(&mut rng, b.len() - 240);
                        b[j] = if below(&mut rng, 2) == 0 { 255 } else { 0 };
                    }
                }
                // Lengths of the fixed fields.
                5 => {
                    if b.len() > 3 {
                        b[1 + below(&mut rng, 3)] = rng.random::<u8>();
                    }
                }
                // Append a random option.
                _ => {
                    let len = rng.random::<u8>();
                    b.extend([rng.random::<u8>(), len]);
                    b.extend(
                        (0..below(&mut rng, usize::from(len) + 2)).map(|_| rng.random::<u8>()),
                    );
                }
            }
        }
        match s.handle("lan", &b, round) {
            Ok(_) => answered += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                dropped += 1;
            }
        }
        if round % 1000 == 0 {
            s.expire(round);
        }
    }
    // The mutations exercise both paths.
    assert!(answered > 100 && dropped > 100, "{answered} {dropped}");
}

#[test]
fn a_backups_leases_come_back_where_the_pools_and_live_leases_allow() {
    use crate::leases::tests::lease;
    let mut s = server();
    let now = 1000;
    // A live lease: its client and its address are taken.
    let live_mac = [2, 0, 0, 0, 0, 9];
    let live = lease_for(&mut s, &live_mac, now);
    let backup = vec![
        lease(1, [10, 0, 0, 11], now + 600),    // free in the range: back
        lease(0x55, [10, 0, 0, 12], now + 600), // the printer's static address: back
        lease(2, [10, 0, 0, 13], now),          // ran out
        lease(9, [10, 0, 0, 13], now + 600),    // its client holds another now
        lease(3, live.octets(), now + 600),     // another client holds it
        lease(4, [10, 0, 0, 12], now + 600),    // someone's static address
        lease(5, [10, 0, 0, 200], now + 600),   // outside the range
        Lease {
            network: "guest".into(),
            ..lease(6, [10, 0, 0, 11], now + 600)
        }, // no pool
    ];
    let (changes, skipped) = s.restore(backup, now);
    let back: Vec<(u8, Ipv4Addr)> = changes
        .iter()
        .map(|c| (c.lease.mac[5], c.lease.ip))
        .collect();
    assert_eq!(
        back,
        [
            (1, Ipv4Addr::new(10, 0, 0, 11)),
            (0x55, Ipv4Addr::new(10, 0, 0, 12))
        ]
    );
    assert!(changes.iter().all(|c| c.event == Event::Granted));
    assert_eq!(skipped.len(), 6, "{skipped:?}");
    assert!(skipped[0].ends_with(": expired"), "{skipped:?}");
    assert!(
        skipped[1].contains("holds a lease there now"),
        "{skipped:?}"
    );
    assert_eq!(
        s.leases()
            .by_ip(Ipv4Addr::new(10, 0, 0, 11))
            .map(|l| l.mac[5]),
        Some(1)
    );
    assert_eq!(s.leases().by_ip(live).map(|l| l.mac), Some(live_mac));
    // A restored lease is its client's: a renewal is acked.
    let acked = s.handle(
        "lan",
        &renew(&[2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 11)),
        now + 1,
    );
    assert_eq!(only_reply(&acked.expect("ack")).kind, ReplyKind::Ack);
}
