//! The resolver's decisions, without sockets.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::query::tests::query_bytes;
use crate::settings::tests::settings;

const LAN: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 7, 1));

fn resolver() -> Resolver {
    let mut r = Resolver::new(100);
    r.set_zone(Zone::build(&settings(), &[]));
    let mut b = Blocklist::default();
    b.add_text("ads.example\n");
    r.set_blocklist(Arc::new(b));
    r.set_policy(
        Policy {
            rebind_protection: true,
            rebind_allow: vec!["rebind.example".into()],
            block_response: BlockResponse::Nxdomain,
        },
        100,
    );
    r
}

fn reply(step: Step) -> Message {
    match step {
        Step::Reply(bytes) => Message::from_vec(&bytes).expect("decodable reply"),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn ask(r: &mut Resolver, name: &str, qtype: u16, now: Instant) -> Step {
    r.decide(&query_bytes(0x1234, name, qtype, None), LAN, false, now)
}

/// An upstream's response to `name`: `addrs` with `ttl`, or (no
/// addresses) `code` with an SOA whose TTL is 300 and minimum `ttl`.
fn upstream(name: &str, addrs: &[Ipv4Addr], ttl: u32, code: ResponseCode, soa: bool) -> Vec<u8> {
    let mut m = Message::new(99, MessageType::Response, OpCode::Query);
    let owner = Name::from_ascii(format!("{name}.")).expect("name");
    m.add_query(hickory_proto::op::Query::query(
        owner.clone(),
        RecordType::A,
    ));
    m.metadata.response_code = code;
    for a in addrs {
        m.add_answer(Record::from_rdata(owner.clone(), ttl, RData::A(A(*a))));
    }
    if soa {
        let zone = Name::from_ascii("example.").expect("zone");
        let data = SOA::new(zone.clone(), zone.clone(), 1, 1, 1, 1, ttl);
        m.add_authority(Record::from_rdata(zone, 300, RData::SOA(data)));
    }
    m.to_vec().expect("encode")
}

fn forward(step: Step) -> Query {
    match step {
        Step::Forward(q) => q,
        other => panic!("expected forwarding, got {other:?}"),
    }
}

/// Asks `name` (type A) at `now`, which must be forwarded, and completes
/// it with the upstream's `response`: the forwarded query and the outcome.
fn miss(
    r: &mut Resolver,
    name: &str,
    response: &[u8],
    now: Instant,
) -> (Query, Result<Answer, ResolveError>) {
    let q = forward(ask(r, name, 1, now));
    let outcome = r.complete(&q.key(), &q.name, response, now);
    (q, outcome)
}

#[test]
fn local_names_are_answered_authoritatively() {
    let mut r = resolver();
    let now = Instant::now();
    let m = reply(ask(&mut r, "gw.home", 1, now));
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data, RData::A(A::new(192, 168, 7, 1)));
    let m = reply(ask(&mut r, "printer.home", 1, now));
    assert_eq!(m.answers[0].data, RData::A(A::new(192, 168, 7, 5)));
    let m = reply(ask(&mut r, "1.7.168.192.in-addr.arpa", 12, now));
    assert_eq!(m.answers[0].data.to_string(), "gw.home.");
    let m = reply(ask(&mut r, "ghost.home", 1, now));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    let m = reply(ask(&mut r, "nas.home", 15, now));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn blocked_names_and_their_subdomains() {
    let mut r = resolver();
    let now = Instant::now();
    for name in ["ads.example", "x.y.ads.example"] {
        let m = reply(ask(&mut r, name, 1, now));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
    }
    let mut policy = r.policy.clone();
    policy.block_response = BlockResponse::Zero;
    r.set_policy(policy, 100);
    let m = reply(ask(&mut r, "ads.example", 1, now));
    assert_eq!(m.answers[0].data, RData::A(A::new(0, 0, 0, 0)));
    let m = reply(ask(&mut r, "ads.example", 28, now));
    assert_eq!(m.answers[0].data.to_string(), "::");
}

#[test]
fn forwarded_answers_are_cached_with_ttls_counted_down() {
    let mut r = resolver();
    let t0 = Instant::now();
    let resp = upstream(
        "www.example",
        &[Ipv4Addr::new(93, 184, 216, 34)],
        100,
        ResponseCode::NoError,
        false,
    );
    let (q, outcome) = miss(&mut r, "www.example", &resp, t0);
    let answer = outcome.expect("answer");
    let first = Message::from_vec(&wire::render(&answer, &q, 0, 512)).expect("decode");
    assert_eq!(first.metadata.id, 0x1234);
    assert_eq!(first.answers[0].ttl, 100);
    let m = reply(ask(&mut r, "WWW.example", 1, t0 + Duration::from_secs(30)));
    assert_eq!(m.answers[0].ttl, 70);
    assert_eq!(m.queries[0].name().to_ascii(), "WWW.example.");
    assert!(matches!(
        ask(&mut r, "www.example", 1, t0 + Duration::from_secs(100)),
        Step::Forward(_)
    ));
    let s = r.stats();
    assert_eq!((s.hits, s.misses), (1, 2));
}

#[test]
fn negative_answers_are_cached_for_the_soa_minimum() {
    let mut r = resolver();
    let t0 = Instant::now();
    let resp = upstream("nope.example", &[], 60, ResponseCode::NXDomain, true);
    miss(&mut r, "nope.example", &resp, t0).1.expect("answer");
    let m = reply(ask(&mut r, "nope.example", 1, t0 + Duration::from_secs(59)));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // min(SOA TTL 300, minimum 60), counted down.
    assert_eq!(m.authorities[0].ttl, 1);
    assert!(matches!(
        ask(&mut r, "nope.example", 1, t0 + Duration::from_secs(60)),
        Step::Forward(_)
    ));
    // Without an SOA nothing is cached.
    let resp = upstream("bare.example", &[], 60, ResponseCode::NXDomain, false);
    miss(&mut r, "bare.example", &resp, t0).1.expect("answer");
    assert!(matches!(
        ask(&mut r, "bare.example", 1, t0),
        Step::Forward(_)
    ));
}

#[test]
fn nodata_is_cached_like_nxdomain_and_ttls_are_capped() {
    let mut r = resolver();
    let t0 = Instant::now();
    // NODATA: NOERROR, no answer, an SOA (RFC 2308 section 2.2).
    let resp = upstream("v4only.example", &[], 60, ResponseCode::NoError, true);
    miss(&mut r, "v4only.example", &resp, t0).1.expect("answer");
    let m = reply(ask(
        &mut r,
        "v4only.example",
        1,
        t0 + Duration::from_secs(10),
    ));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].ttl, 50);
    // An upstream's week-long TTLs are held at most a day, and a
    // negative answer at most an hour, whatever the SOA says.
    let week = 7 * 86_400;
    let a = [Ipv4Addr::new(93, 184, 216, 34)];
    let resp = upstream("long.example", &a, week, ResponseCode::NoError, false);
    let (q, outcome) = miss(&mut r, "long.example", &resp, t0);
    let answer = outcome.expect("answer");
    let first = Message::from_vec(&wire::render(&answer, &q, 0, 512)).expect("decode");
    assert_eq!(first.answers[0].ttl, MAX_TTL);
    let day = Duration::from_secs(u64::from(MAX_TTL));
    let second = Duration::from_secs(1);
    assert!(matches!(
        ask(&mut r, "long.example", 1, t0 + day - second),
        Step::Reply(_)
    ));
    assert!(matches!(
        ask(&mut r, "long.example", 1, t0 + day),
        Step::Forward(_)
    ));
    let mut resp = Message::from_vec(&upstream(
        "gone.example",
        &[],
        week,
        ResponseCode::NXDomain,
        true,
    ))
    .expect("decode");
    resp.authorities[0].ttl = week;
    let resp = resp.to_vec().expect("encode");
    miss(&mut r, "gone.example", &resp, t0).1.expect("answer");
    let hour = Duration::from_secs(u64::from(MAX_NEGATIVE_TTL));
    assert!(matches!(
        ask(&mut r, "gone.example", 1, t0 + hour - second),
        Step::Reply(_)
    ));
    assert!(matches!(
        ask(&mut r, "gone.example", 1, t0 + hour),
        Step::Forward(_)
    ));
}

#[test]
fn rebind_protection_refuses_private_answers_for_public_names() {
    let mut r = resolver();
    let t0 = Instant::now();
    let private = [Ipv4Addr::new(192, 168, 0, 10)];
    let resp = upstream("evil.example", &private, 60, ResponseCode::NoError, false);
    let e = miss(&mut r, "evil.example", &resp, t0)
        .1
        .expect_err("refused");
    assert_eq!(e.rcode(), rcode::REFUSED);
    let resp = upstream(
        "x.rebind.example",
        &private,
        60,
        ResponseCode::NoError,
        false,
    );
    assert!(miss(&mut r, "x.rebind.example", &resp, t0).1.is_ok());
    // Carrier-grade NAT space is public.
    let resp = upstream(
        "isp.example",
        &[Ipv4Addr::new(100, 64, 0, 1)],
        60,
        ResponseCode::NoError,
        false,
    );
    assert!(miss(&mut r, "isp.example", &resp, t0).1.is_ok());
    assert!(is_private("::1".parse().expect("ip")));
    assert!(is_private("fe80::1".parse().expect("ip")));
    assert!(is_private("::ffff:10.0.0.1".parse().expect("ip")));
    assert!(is_private("0.0.0.0".parse().expect("ip")));
    assert!(!is_private("2001:db8::1".parse().expect("ip")));
}

#[test]
fn upstream_failures_are_not_cached() {
    let mut r = resolver();
    let t0 = Instant::now();
    let resp = upstream("fail.example", &[], 60, ResponseCode::ServFail, true);
    let (q, outcome) = miss(&mut r, "fail.example", &resp, t0);
    let e = outcome.expect_err("servfail");
    assert_eq!(e.rcode(), rcode::SERVFAIL);
    assert!(r.complete(&q.key(), &q.name, b"junk", t0).is_err());
    assert!(matches!(
        ask(&mut r, "fail.example", 1, t0),
        Step::Forward(_)
    ));
}

#[test]
fn odd_queries() {
    let mut r = resolver();
    let now = Instant::now();
    let mut notify = query_bytes(1, "a.example", 1, None);
    notify[2] |= 4 << 3;
    assert_eq!(
        reply(r.decide(&notify, LAN, false, now))
            .metadata
            .response_code,
        ResponseCode::NotImp
    );
    let mut chaos = query_bytes(1, "version.bind", 16, None);
    let n = chaos.len();
    chaos[n - 1] = 3;
    assert_eq!(
        reply(r.decide(&chaos, LAN, false, now))
            .metadata
            .response_code,
        ResponseCode::Refused
    );
    let axfr = query_bytes(1, "home", 252, None);
    assert_eq!(
        reply(r.decide(&axfr, LAN, true, now))
            .metadata
            .response_code,
        ResponseCode::Refused
    );
    assert!(matches!(
        r.decide(b"\x00\x01garbage", LAN, false, now),
        Step::Drop(_)
    ));
}

/// A number below `n` (0 when `n` is 0) from the seeded generator, so
/// every run mutates the same way.
fn below(rng: &mut StdRng, n: usize) -> usize {
    rng.random_range(0..n.max(1))
}

/// What the fuzz target does, on many mutated queries and plain noise:
/// parse, then decide and render; nothing may panic.
#[test]
fn never_panics_on_mutated_input() {
    let seeds = [
        query_bytes(1, "gw.home", 1, Some(4096)),
        query_bytes(2, "1.7.168.192.in-addr.arpa", 12, None),
        query_bytes(3, "www.example.org", 28, Some(512)),
        query_bytes(4, "ads.example", 255, None),
        query_bytes(5, "", 2, None),
    ];
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut r = resolver();
    let now = Instant::now();
    for i in 0..20_000 {
        let mut bytes = seeds[below(&mut rng, seeds.len())].clone();
        if i % 10 == 0 {
            bytes = (0..below(&mut rng, 64))
                .map(|_| rng.random::<u8>())
                .collect();
        }
        for _ in 0..1 + below(&mut rng, 4) {
            let at = below(&mut rng, bytes.len());
            match below(&mut rng, 4) {
                0 if !bytes.is_empty() => bytes[at] = rng.random::<u8>(),
                1 if !bytes.is_empty() => bytes[at] ^= 1 << below(&mut rng, 8),
                2 => bytes.truncate(at),
                _ => bytes.insert(at.min(bytes.len()), rng.random::<u8>()),
            }
        }
        let _ = parse_query(&bytes);
        let tcp = i % 2 == 0;
        if let Step::Forward(q) = r.decide(&bytes, LAN, tcp, now) {
            // An upstream answering with the mutated bytes themselves.
            let _ = r.complete(&q.key(), &q.name, &bytes, now);
        }
    }
}
