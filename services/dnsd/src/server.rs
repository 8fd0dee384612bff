//! The listeners: UDP and TCP on port 53 of each served address. Each
//! datagram or TCP message goes to the resolver's decision; a query from
//! a source outside the served subnets gets no answer at all, and a
//! malformed one is dropped with a debug log. Misses are forwarded once
//! per question however many clients ask ([`crate::coalesce`]).
//!
//! Sockets are bound with `IP_FREEBIND`, so dnsd can listen on a LAN
//! address before netd has put it on the bridge.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::AbortHandle;

use crate::coalesce::Inflight;
use crate::query::{Key, Query};
use crate::resolver::{Resolver, Step};
use crate::upstream::{self, SocketPool, Upstreams};
use crate::wire::{self, rcode};

/// The DNS port.
pub const DNS_PORT: u16 = 53;
/// A TCP client silent this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Most TCP connections served at once per address.
const TCP_CONNECTIONS: usize = 64;
/// Most distinct questions forwarded at once; beyond it a new question
/// gets SERVFAIL at once, so a flood of unique names cannot grow dnsd's
/// memory without bound (dnsmasq's `dns-forward-max` does the same).
pub const MAX_INFLIGHT: usize = 1024;

/// Errors of the listeners.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A socket could not be made or bound.
    #[error("listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

/// Where an answer goes.
#[derive(Debug)]
pub enum ReplyTo {
    /// A UDP client: the socket it asked on and its address.
    Udp(Arc<UdpSocket>, SocketAddr),
    /// A TCP connection's handler.
    Tcp(oneshot::Sender<Vec<u8>>),
}

/// A client waiting for an upstream answer.
#[derive(Debug)]
pub struct Waiter {
    query: Query,
    reply: ReplyTo,
}

/// What the listeners, the forwarding tasks, the daemon and the bus
/// share.
#[derive(Debug)]
pub struct State {
    /// The deciding half.
    pub resolver: Resolver,
    /// Upstreams and their health.
    pub upstreams: Upstreams,
    /// Questions in flight.
    pub inflight: Inflight<Waiter>,
    /// Clients from these subnets are answered.
    pub subnets: Vec<IpNet>,
}

/// [`State`] behind a lock that is never held across an `await`, and
/// the idle upstream sockets.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    /// Idle upstream sockets.
    pub pool: SocketPool,
}

impl Shared {
    /// Shared state with an empty resolver.
    pub fn new(cache_size: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                resolver: Resolver::new(cache_size),
                upstreams: Upstreams::default(),
                inflight: Inflight::default(),
                subnets: Vec::new(),
            }),
            pool: SocketPool::default(),
        })
    }

    /// The state (a panic elsewhere does not make it unusable).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn allowed(subnets: &[IpNet], ip: IpAddr) -> bool {
    subnets.iter().any(|n| n.contains(&ip))
}

/// The listening sockets, by address.
#[derive(Debug)]
pub struct Listeners {
    port: u16,
    running: HashMap<IpAddr, [AbortHandle; 2]>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for handles in self.running.values() {
            handles.iter().for_each(AbortHandle::abort);
        }
    }
}

fn bind(addr: SocketAddr, ty: Type) -> Result<Socket, ServerError> {
    let err = |e| ServerError::Bind(addr, e);
    let proto = if ty == Type::DGRAM {
        Protocol::UDP
    } else {
        Protocol::TCP
    };
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto)).map_err(err)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(err)?;
        s.set_freebind_v6(true).map_err(err)?;
    } else {
        s.set_freebind_v4(true).map_err(err)?;
    }
    s.set_reuse_address(true).map_err(err)?;
    s.set_nonblocking(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    Ok(s)
}

impl Listeners {
    /// No listeners yet; they will use `port`.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            running: HashMap::new(),
        }
    }

    /// Listens on exactly `addrs`: binds the new ones (all or none) and
    /// stops the ones no longer wanted. Needs a tokio runtime.
    pub fn set(&mut self, addrs: &[IpAddr], shared: &Arc<Shared>) -> Result<(), ServerError> {
        let mut started = Vec::new();
        for &ip in addrs {
            if self.running.contains_key(&ip) || started.iter().any(|(a, _)| *a == ip) {
                continue;
            }
            let addr = SocketAddr::new(ip, self.port);
            let sockets = bind(addr, Type::DGRAM).and_then(|udp| {
                let tcp = bind(addr, Type::STREAM)?;
                tcp.listen(128).map_err(|e| ServerError::Bind(addr, e))?;
                let udp =
                    UdpSocket::from_std(udp.into()).map_err(|e| ServerError::Bind(addr, e))?;
                let tcp =
                    TcpListener::from_std(tcp.into()).map_err(|e| ServerError::Bind(addr, e))?;
                Ok((udp, tcp))
            });
            match sockets {
                Ok(s) => started.push((ip, s)),
                // Nothing was spawned yet: dropping the sockets closes them.
                Err(e) => return Err(e),
            }
        }
        for (ip, (udp, tcp)) in started {
            let u = tokio::spawn(serve_udp(Arc::new(udp), ip, shared.clone()));
            let t = tokio::spawn(serve_tcp(tcp, ip, shared.clone()));
            tracing::info!(address = %ip, port = self.port, "listening");
            self.running
                .insert(ip, [u.abort_handle(), t.abort_handle()]);
        }
        self.running.retain(|ip, handles| {
            let keep = addrs.contains(ip);
            if !keep {
                handles.iter().for_each(AbortHandle::abort);
                tracing::info!(address = %ip, "no longer listening");
            }
            keep
        });
        Ok(())
    }
}

/// Sends an answer; a failure is the client's problem, logged at debug.
async fn deliver(reply: ReplyTo, bytes: Vec<u8>) {
    match reply {
        ReplyTo::Udp(sock, to) => {
            // `poll_send_to` rather than `send_to`, whose future carries
            // address resolution: hundreds of these are alive at once.
            let sent = std::future::poll_fn(|cx| sock.poll_send_to(cx, &bytes, to)).await;
            if let Err(e) = sent {
                tracing::debug!(%to, "send: {e}");
            }
        }
        ReplyTo::Tcp(tx) => {
            let _ = tx.send(bytes);
        }
    }
}

/// Forwards `query` (a cache miss): joins a query in flight for the same
/// question, or starts one.
pub fn forward(shared: &Arc<Shared>, query: Query, reply: ReplyTo) {
    let key = query.key();
    let name = query.name.clone();
    let first = {
        let mut st = shared.lock();
        if st.inflight.len() >= MAX_INFLIGHT && !st.inflight.contains(&key) {
            drop(st);
            tracing::debug!(name, "too many questions in flight: SERVFAIL");
            let bytes = wire::error_reply(&query, rcode::SERVFAIL);
            tokio::spawn(deliver(reply, bytes));
            return;
        }
        st.inflight.join(key.clone(), Waiter { query, reply })
    };
    if first {
        tokio::spawn(resolve(shared.clone(), key, name));
    }
}

async fn resolve(shared: Arc<Shared>, key: Key, name: String) {
    let order = shared.lock().upstreams.order(Instant::now());
    let result = upstream::resolve(&shared.pool, &order, &key, |addr, rtt| {
        shared.lock().upstreams.record(addr, rtt, Instant::now());
    })
    .await;
    let (answer, waiters) = {
        let mut st = shared.lock();
        let answer = match result {
            Ok(resp) => st
                .resolver
                .complete(&key, &name, &resp, Instant::now())
                .map_err(|e| {
                    tracing::debug!(name, "{e}");
                    e.rcode()
                }),
            Err(e) => {
                tracing::debug!(name, "{e}");
                Err(rcode::SERVFAIL)
            }
        };
        (answer, st.inflight.finish(&key))
    };
    for w in waiters {
        let limit = match w.reply {
            ReplyTo::Udp(..) => w.query.udp_limit(),
            ReplyTo::Tcp(_) => usize::from(u16::MAX),
        };
        let bytes = match &answer {
            Ok(a) => wire::render(a, &w.query, 0, limit),
            Err(code) => wire::error_reply(&w.query, *code),
        };
        deliver(w.reply, bytes).await;
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, local: IpAddr, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(address = %local, "receive: {e}");
                continue;
            }
        };
        let step = {
            let mut st = shared.lock();
            if !allowed(&st.subnets, src.ip()) {
                tracing::debug!(%src, "query from outside the served networks dropped");
                continue;
            }
            st.resolver.decide(&buf[..n], local, false, Instant::now())
        };
        match step {
            Step::Reply(bytes) => deliver(ReplyTo::Udp(sock.clone(), src), bytes).await,
            Step::Forward(q) => forward(&shared, q, ReplyTo::Udp(sock.clone(), src)),
            Step::Drop(e) => tracing::debug!(%src, "dropped: {e}"),
        }
    }
}

async fn serve_tcp(listener: TcpListener, local: IpAddr, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(TCP_CONNECTIONS));
    loop {
        let (stream, src) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(address = %local, "accept: {e}");
                continue;
            }
        };
        if !allowed(&shared.lock().subnets, src.ip()) {
            tracing::debug!(%src, "TCP client from outside the served networks dropped");
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%src, "too many TCP clients: connection dropped");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            serve_connection(stream, local, &shared).await;
            drop(slot);
        });
    }
}

/// Answers the queries of one TCP connection in turn until it closes,
/// idles, or sends something that is no query.
async fn serve_connection(mut stream: TcpStream, local: IpAddr, shared: &Arc<Shared>) {
    let mut msg = Vec::new();
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        msg.resize(usize::from(len), 0);
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let step = shared
            .lock()
            .resolver
            .decide(&msg, local, true, Instant::now());
        let answer = match step {
            Step::Reply(bytes) => bytes,
            Step::Forward(q) => {
                let (tx, rx) = oneshot::channel();
                forward(shared, q, ReplyTo::Tcp(tx));
                match rx.await {
                    Ok(bytes) => bytes,
                    Err(_) => return,
                }
            }
            Step::Drop(e) => {
                tracing::debug!("dropped a TCP query: {e}");
                return;
            }
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&u16::try_from(answer.len()).unwrap_or(0).to_be_bytes());
        framed.extend_from_slice(&answer);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
