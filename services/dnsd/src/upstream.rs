//! Forwarding to upstream servers: which to ask first (their health),
//! and the exchange itself. UDP queries go out from sockets on random
//! ports, connected to the upstream (the kernel then drops datagrams from
//! any other address or port), each query with a random id; a datagram
//! that is not the answer to that id and question is ignored, so a
//! spoofer has to guess both port and id while the real answer is on its
//! way. A socket carries one query at a time and at most [`SOCKET_USES`]
//! in its life (a socket whose query timed out is closed at once), then
//! a new random port takes over: creating a socket per query cost a
//! quarter of the time of a cache miss. A truncated answer is asked again
//! over TCP.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bus_schema::bus::DnsUpstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::query::Key;
use crate::wire::{self, rcode};

/// How long one UDP attempt waits for its answer.
pub const UDP_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long one TCP exchange may take.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(3);
/// An upstream that timed out this recently is asked after the others.
const DOWN_FOR: Duration = Duration::from_secs(30);
/// Queries one UDP socket carries (one at a time) before it is closed.
pub const SOCKET_USES: u32 = 16;
/// Idle sockets kept per upstream.
const IDLE_SOCKETS: usize = 256;
/// Receive buffer of an upstream socket: one byte more than the size we
/// advertise, so a datagram that fills it is larger than allowed, was cut
/// by the kernel, and is asked again over TCP.
const UDP_BUFFER: usize = crate::query::OUR_UDP_SIZE as usize + 1;

/// Errors of an exchange.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// There is no upstream to ask.
    #[error("no upstream servers")]
    NoUpstream,
    /// No answer in time.
    #[error("{0}: timed out")]
    Timeout(SocketAddr),
    /// A socket operation failed.
    #[error("{0}: {1}")]
    Io(SocketAddr, #[source] std::io::Error),
    /// The TCP answer was not the answer to the question.
    #[error("{0}: answer does not match the question")]
    Mismatch(SocketAddr),
}

/// Where an upstream came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `dns.upstreams`.
    Config,
    /// The DNS servers netd learned on the WAN.
    Wan,
}

/// An upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream {
    /// Address and port.
    pub address: SocketAddr,
    /// Always over TCP.
    pub tcp: bool,
    /// Where it came from.
    pub source: Source,
}

#[derive(Debug, Clone, Copy, Default)]
struct Health {
    queries: u64,
    timeouts: u64,
    srtt_micros: u64,
    last_ok: Option<Instant>,
    last_timeout: Option<Instant>,
}

impl Health {
    fn down(&self, now: Instant) -> bool {
        match (self.last_timeout, self.last_ok) {
            (Some(t), ok) => ok.is_none_or(|ok| ok < t) && now.duration_since(t) < DOWN_FOR,
            (None, _) => false,
        }
    }
}

/// The upstreams in use and their health.
#[derive(Debug, Default)]
pub struct Upstreams {
    list: Vec<(Upstream, Health)>,
}

impl Upstreams {
    /// Replaces the list; servers that stay keep their health.
    pub fn set(&mut self, list: Vec<Upstream>) {
        let old = std::mem::take(&mut self.list);
        self.list = list
            .into_iter()
            .map(|u| {
                let h = old
                    .iter()
                    .find(|(o, _)| *o == u)
                    .map(|(_, h)| *h)
                    .unwrap_or_default();
                (u, h)
            })
            .collect();
    }

    /// The servers in the order to ask them: those not down first, the
    /// fastest first; the list order breaks ties.
    pub fn order(&self, now: Instant) -> Vec<Upstream> {
        let mut ranked: Vec<(bool, u64, usize, Upstream)> = self
            .list
            .iter()
            .enumerate()
            .map(|(i, (u, h))| (h.down(now), h.srtt_micros, i, *u))
            .collect();
        ranked.sort_by_key(|(down, srtt, i, _)| (*down, *srtt, *i));
        ranked.into_iter().map(|(.., u)| u).collect()
    }

    /// Records a query to `address` that was answered after `rtt`, or
    /// timed out (`None`).
    pub fn record(&mut self, address: SocketAddr, rtt: Option<Duration>, now: Instant) {
        let Some((_, h)) = self.list.iter_mut().find(|(u, _)| u.address == address) else {
            return;
        };
        h.queries += 1;
        match rtt {
            Some(rtt) => {
                let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
                h.srtt_micros = if h.srtt_micros == 0 {
                    micros
                } else {
                    (h.srtt_micros * 7 + micros) / 8
                };
                h.last_ok = Some(now);
            }
            None => {
                h.timeouts += 1;
                h.last_timeout = Some(now);
            }
        }
    }

    /// What `org.oxwrt.Dns1.Upstreams` shows.
    pub fn status(&self, now: Instant) -> Vec<DnsUpstream> {
        self.list
            .iter()
            .map(|(u, h)| DnsUpstream {
                address: u.address.to_string(),
                source: match u.source {
                    Source::Config => "config",
                    Source::Wan => "wan",
                }
                .into(),
                health: if h.down(now) {
                    "down"
                } else if h.last_ok.is_some() {
                    "up"
                } else {
                    "unknown"
                }
                .into(),
                queries: h.queries,
                timeouts: h.timeouts,
                rtt_micros: h.srtt_micros,
            })
            .collect()
    }
}

/// A UDP socket connected to an upstream. It has no buffer of its own:
/// a datagram is read into the stack once the socket is readable, and
/// only the answer is kept, so hundreds of queries in flight cost no
/// buffer each.
#[derive(Debug)]
struct Pooled {
    sock: UdpSocket,
    uses: u32,
}

/// Idle upstream sockets, by upstream.
#[derive(Debug, Default)]
pub struct SocketPool {
    idle: Mutex<HashMap<SocketAddr, Vec<Pooled>>>,
}

impl SocketPool {
    fn take(&self, to: SocketAddr) -> Option<Pooled> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let p = idle.get_mut(&to)?.pop()?;
        // Anything that arrived since its last answer is stale.
        let mut stale = [0u8; 64];
        while p.sock.try_recv(&mut stale).is_ok() {}
        Some(p)
    }

    fn put(&self, to: SocketAddr, p: Pooled) {
        if p.uses >= SOCKET_USES {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(to).or_default();
        if list.len() < IDLE_SOCKETS {
            list.push(p);
        }
    }

    /// Closes the idle sockets of upstreams not in `keep`.
    pub fn retain(&self, keep: &[SocketAddr]) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|addr, _| keep.contains(addr));
    }
}

/// A UDP socket on a random port (1024-65535) of the unspecified address
/// of `to`'s family, connected to `to`.
async fn random_port_socket(to: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: IpAddr = match to {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let mut sock = None;
    for _ in 0..8 {
        let port = rand::random_range(1024..=u16::MAX);
        if let Ok(s) = UdpSocket::bind(SocketAddr::new(any, port)).await {
            sock = Some(s);
            break;
        }
    }
    // Eight taken ports in a row: let the kernel pick (also random).
    let sock = match sock {
        Some(s) => s,
        None => UdpSocket::bind(SocketAddr::new(any, 0)).await?,
    };
    sock.connect(to).await?;
    Ok(sock)
}

/// One query over UDP; the answer's bytes (a datagram cut by the kernel
/// comes back with the truncation bit set, so it is asked over TCP).
pub async fn exchange_udp(
    pool: &SocketPool,
    to: SocketAddr,
    key: &Key,
) -> Result<Vec<u8>, UpstreamError> {
    let io = |e| UpstreamError::Io(to, e);
    let mut p = match pool.take(to) {
        Some(p) => p,
        None => Pooled {
            sock: random_port_socket(to).await.map_err(io)?,
            uses: 0,
        },
    };
    p.uses += 1;
    let id: u16 = rand::random();
    p.sock
        .send(&wire::upstream_query(id, key))
        .await
        .map_err(io)?;
    let deadline = tokio::time::Instant::now() + UDP_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, p.sock.readable()).await {
            // The socket is dropped: a late answer finds it closed.
            Err(_) => return Err(UpstreamError::Timeout(to)),
            Ok(Err(e)) => return Err(io(e)),
            Ok(Ok(())) => {}
        }
        let mut buf = [0u8; UDP_BUFFER];
        let n = match p.sock.try_recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            // ICMP port unreachable: nothing listens there.
            Err(e) => return Err(io(e)),
        };
        let resp = &buf[..n];
        if wire::matches(resp, id, key) {
            let mut answer = resp.to_vec();
            if n == UDP_BUFFER {
                answer[2] |= 0x02;
            }
            pool.put(to, p);
            return Ok(answer);
        }
        tracing::debug!(upstream = %to, "ignored a datagram that is not the answer");
    }
}

/// One query over TCP; the answer's bytes.
pub async fn exchange_tcp(to: SocketAddr, key: &Key) -> Result<Vec<u8>, UpstreamError> {
    let io = |e| UpstreamError::Io(to, e);
    let exchange = async {
        let mut stream = TcpStream::connect(to).await.map_err(io)?;
        let id: u16 = rand::random();
        let query = wire::upstream_query(id, key);
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&u16::try_from(query.len()).unwrap_or(0).to_be_bytes());
        framed.extend_from_slice(&query);
        stream.write_all(&framed).await.map_err(io)?;
        let len = stream.read_u16().await.map_err(io)?;
        let mut resp = vec![0u8; usize::from(len)];
        stream.read_exact(&mut resp).await.map_err(io)?;
        if wire::matches(&resp, id, key) {
            Ok(resp)
        } else {
            Err(UpstreamError::Mismatch(to))
        }
    };
    tokio::time::timeout(TCP_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(UpstreamError::Timeout(to)))
}

/// Asks `upstreams` in order until one answers; a SERVFAIL or REFUSED
/// moves on to the next (the last one's is returned). `report` hears of
/// every answer (with its round trip) and every timeout.
pub async fn resolve(
    pool: &SocketPool,
    upstreams: &[Upstream],
    key: &Key,
    mut report: impl FnMut(SocketAddr, Option<Duration>),
) -> Result<Vec<u8>, UpstreamError> {
    let mut last = Err(UpstreamError::NoUpstream);
    for u in upstreams {
        let started = Instant::now();
        let mut result = if u.tcp {
            exchange_tcp(u.address, key).await
        } else {
            exchange_udp(pool, u.address, key).await
        };
        if result.as_ref().is_ok_and(|r| wire::truncated(r)) {
            result = exchange_tcp(u.address, key).await;
        }
        match &result {
            Ok(resp) => {
                report(u.address, Some(started.elapsed()));
                let code = wire::response_rcode(resp);
                if code != rcode::SERVFAIL && code != rcode::REFUSED {
                    return result;
                }
            }
            Err(e) => {
                tracing::debug!("{e}");
                report(u.address, None);
            }
        }
        last = result;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(port: u16) -> Upstream {
        Upstream {
            address: SocketAddr::from(([192, 0, 2, 1], port)),
            tcp: false,
            source: Source::Config,
        }
    }

    #[test]
    fn timed_out_servers_go_last_and_fast_ones_first() {
        let now = Instant::now();
        let mut u = Upstreams::default();
        u.set(vec![up(1), up(2), up(3)]);
        assert_eq!(u.order(now), vec![up(1), up(2), up(3)]);
        u.record(up(1).address, None, now);
        u.record(up(2).address, Some(Duration::from_millis(30)), now);
        u.record(up(3).address, Some(Duration::from_millis(5)), now);
        assert_eq!(u.order(now), vec![up(3), up(2), up(1)]);
        let status = u.status(now);
        assert_eq!(status[0].health, "down");
        assert_eq!((status[0].queries, status[0].timeouts), (1, 1));
        assert_eq!(status[2].health, "up");
        assert_eq!(status[2].rtt_micros, 5000);
        // Down only for a while.
        assert_eq!(u.order(now + DOWN_FOR).last(), Some(&up(2)));
        // Health survives a new list that keeps the server.
        u.set(vec![up(3), up(4)]);
        assert_eq!(u.status(now)[0].queries, 1);
        assert_eq!(u.status(now)[1].health, "unknown");
    }
}
