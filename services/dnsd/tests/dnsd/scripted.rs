//! A scripted upstream (a UDP socket in the upstream namespace, written
//! here) for what dnsmasq cannot show: identical questions in flight
//! share one upstream query, forged answers are ignored, and upstream
//! queries come from random ports with random ids. It is also the WAN's
//! DNS server as netd would report it (no `dns.upstreams`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};

use dnsd::upstream::SOCKET_USES;

use crate::support::{Dnsd, Net, ROUTER, UPSTREAM, config, dig, timed};

const LIMIT: Duration = Duration::from_secs(60);

/// What the scripted upstream saw: per name, the (source port, id) of
/// each query.
type Seen = Arc<Mutex<HashMap<String, Vec<(u16, u16)>>>>;

fn answer(id: u16, name: &str, ip: [u8; 4]) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    let owner = Name::from_str(name).expect("name");
    m.add_query(Query::query(owner.clone(), RecordType::A));
    m.add_answer(Record::from_rdata(
        owner,
        300,
        RData::A(A::from(std::net::Ipv4Addr::from(ip))),
    ));
    m.to_vec().expect("encode")
}

/// Serves until `stop`: `slow.test.` is answered after 400 ms; for
/// `spoof.test.` three forgeries come first (wrong id, wrong question,
/// right id and question from another port), then the real answer.
fn serve(sock: UdpSocket, other: UdpSocket, seen: Seen, stop: Arc<AtomicBool>) {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(q) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let Some(question) = q.queries.first() else {
            continue;
        };
        let name = question.name().to_ascii().to_ascii_lowercase();
        let id = q.metadata.id;
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.clone())
            .or_default()
            .push((from.port(), id));
        match name.as_str() {
            "slow.test." => {
                std::thread::sleep(Duration::from_millis(400));
                let _ = sock.send_to(&answer(id, &name, [192, 0, 2, 40]), from);
            }
            "spoof.test." => {
                let _ = sock.send_to(&answer(id.wrapping_add(1), &name, [6, 6, 6, 6]), from);
                let _ = sock.send_to(&answer(id, "other.test.", [6, 6, 6, 7]), from);
                let _ = other.send_to(&answer(id, &name, [6, 6, 6, 8]), from);
                let _ = sock.send_to(&answer(id, &name, [192, 0, 2, 50]), from);
            }
            _ => {
                let _ = sock.send_to(&answer(id, &name, [192, 0, 2, 1]), from);
            }
        }
    }
}

/// The scripted upstream running in the upstream namespace until dropped.
struct Scripted {
    seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scripted {
    fn start(net: &Net) -> Self {
        let (sock, other) = net.upstream.run(|| {
            (
                UdpSocket::bind((UPSTREAM, 53)).expect("bind 53"),
                UdpSocket::bind((UPSTREAM, 5353)).expect("bind 5353"),
            )
        });
        let seen = Seen::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve(sock, other, s, st));
        Scripted {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self, name: &str) -> Vec<(u16, u16)> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A plain query for `name` (dotted, no final dot).
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let name = Name::from_str(&format!("{name}.")).expect("name");
    m.add_query(Query::query(name, RecordType::A));
    m.to_vec().expect("encode")
}

/// dnsd with the scripted upstream as the WAN's DNS server.
fn start(net: &Net) -> (Scripted, Dnsd) {
    let scripted = Scripted::start(net);
    let dnsd = Dnsd::start(&net.router, &config(""));
    let wan: IpAddr = UPSTREAM.parse().expect("address");
    dnsd.core.blocking_lock().set_wan_dns(vec![wan]);
    (scripted, dnsd)
}

#[test]
fn identical_questions_in_flight_share_one_upstream_query() {
    timed(LIMIT, || {
        let net = Net::new();
        let (scripted, dnsd) = start(&net);
        let router: SocketAddr = (ROUTER.parse::<IpAddr>().expect("ip"), 53).into();
        let replies = net.client.run(move || {
            let socks: Vec<UdpSocket> = (0..10)
                .map(|_| UdpSocket::bind("0.0.0.0:0").expect("bind"))
                .collect();
            for (i, s) in socks.iter().enumerate() {
                s.send_to(&query(100 + i as u16, "slow.test"), router)
                    .expect("send");
            }
            socks
                .iter()
                .map(|s| {
                    s.set_read_timeout(Some(Duration::from_secs(3)))
                        .expect("timeout");
                    let mut buf = [0u8; 512];
                    let n = s.recv(&mut buf).expect("an answer within 3 s");
                    Message::from_vec(&buf[..n]).expect("decode")
                })
                .collect::<Vec<_>>()
        });
        for (i, m) in replies.iter().enumerate() {
            assert_eq!(m.metadata.id, 100 + i as u16);
            assert_eq!(m.answers[0].data, RData::A(A::new(192, 0, 2, 40)));
        }
        assert_eq!(
            scripted.seen("slow.test.").len(),
            1,
            "one upstream query for ten clients"
        );
        let upstreams = dnsd
            .shared
            .lock()
            .upstreams
            .status(std::time::Instant::now());
        assert_eq!(upstreams.len(), 1);
        assert_eq!(
            (upstreams[0].source.as_str(), upstreams[0].health.as_str()),
            ("wan", "up")
        );
    });
}

#[test]
fn forged_answers_are_ignored_and_ports_and_ids_are_random() {
    timed(LIMIT, || {
        let net = Net::new();
        let (scripted, _dnsd) = start(&net);
        let d = dig(&net.client, ROUTER, &["spoof.test"]);
        assert_eq!(d.answers, ["192.0.2.50"], "{}", d.text);
        // Forty different names: forty upstream queries, from sockets on
        // random ports that each carry at most SOCKET_USES queries.
        for i in 0..40 {
            let name = format!("n{i}.test");
            assert_eq!(dig(&net.client, ROUTER, &[&name]).answers, ["192.0.2.1"]);
        }
        let mut uses: HashMap<u16, u32> = HashMap::new();
        let mut ids = Vec::new();
        for i in 0..40 {
            let seen = scripted.seen(&format!("n{i}.test."));
            assert_eq!(seen.len(), 1);
            *uses.entry(seen[0].0).or_default() += 1;
            ids.push(seen[0].1);
        }
        ids.sort_unstable();
        ids.dedup();
        assert!(ids.len() >= 38, "ids repeat: {ids:?}");
        assert!(uses.len() >= 3, "too few source ports: {uses:?}");
        assert!(uses.values().all(|n| *n <= SOCKET_USES), "{uses:?}");
        assert!(uses.keys().all(|p| *p >= 1024), "{uses:?}");
    });
}
