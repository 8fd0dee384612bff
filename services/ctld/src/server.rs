//! The QUIC side: listeners, connections, one task per call. Who may
//! call what is decided here (role, `--confirm`, rate limit) before
//! [`rpc::answer`] touches the bus; mutating calls are audited.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bus_schema::config::model::Role;
use bus_schema::control::{
    AuditEntry, Call, ErrorCode, Hello, Kind, LogLines, MAX_REQUEST, PROTOCOL_VERSION, Reply,
    Request, Response, Welcome, close, fingerprint,
};
use oxwrt_quic::{AuthorizedKeys, Identity, frame, peer_key, server_config};
use tokio::sync::Semaphore;

use crate::audit::Audit;
use crate::ratelimit::RateLimit;
use crate::rpc::{self, Context, Failure};
use crate::settings::{Client, Settings};

/// Connections one listener serves at once; more are closed with a reason.
pub const MAX_CONNECTIONS: usize = 16;
/// Calls one connection may have open at once (QUIC stream credit).
const MAX_STREAMS: u32 = 8;
/// How often `logs --follow` asks oxinit for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// Shortest `watch` interval.
const MIN_WATCH: Duration = Duration::from_millis(200);

/// What every connection shares.
#[derive(Debug)]
pub struct Server {
    identity: Identity,
    settings: RwLock<Settings>,
    keys: AuthorizedKeys,
    rate: Mutex<RateLimit>,
    audit: Audit,
    bus: OnceLock<zbus::Connection>,
}

impl Server {
    /// A server with `identity`, auditing to `audit`; it accepts no
    /// client until [`Server::update`].
    pub fn new(identity: Identity, audit: Audit) -> Self {
        Self {
            identity,
            settings: RwLock::default(),
            keys: AuthorizedKeys::default(),
            rate: Mutex::new(RateLimit::new(1, 1)),
            audit,
            bus: OnceLock::new(),
        }
    }

    /// The bus connection the calls go through.
    pub fn set_bus(&self, conn: zbus::Connection) {
        let _ = self.bus.set(conn);
    }

    /// New settings: clients (new handshakes and the next call of every
    /// open connection see them) and the rate limit.
    pub fn update(&self, s: &Settings) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) =
            s.clients.keys().copied().collect();
        self.rate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set(s.rate, s.burst);
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = s.clone();
    }

    fn client(&self, key: &[u8; 32]) -> Option<Client> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clients
            .get(key)
            .cloned()
    }

    fn hostname(&self) -> String {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .hostname
            .clone()
    }

    /// Binds a listener on `addr`.
    fn bind(self: &Arc<Self>, addr: SocketAddr) -> Result<Listener, String> {
        let config = server_config(&self.identity, self.keys.clone(), MAX_STREAMS)
            .map_err(|e| e.to_string())?;
        let endpoint = quinn::Endpoint::server(config, addr)
            .map_err(|e| format!("listen on udp {addr}: {e}"))?;
        let task = tokio::spawn(self.clone().accept(endpoint.clone(), addr));
        Ok(Listener { endpoint, task })
    }

    async fn accept(self: Arc<Self>, endpoint: quinn::Endpoint, addr: SocketAddr) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        while let Some(incoming) = endpoint.accept().await {
            let (this, slots) = (self.clone(), slots.clone());
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                let conn = match incoming.await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!("{remote}: handshake failed: {e}");
                        return;
                    }
                };
                let Ok(_slot) = slots.try_acquire_owned() else {
                    tracing::warn!("{remote}: refused, {MAX_CONNECTIONS} connections on {addr}");
                    conn.close(
                        close::BUSY.into(),
                        format!(
                            "too many connections (this listener serves {MAX_CONNECTIONS} at once)"
                        )
                        .as_bytes(),
                    );
                    return;
                };
                this.connection(conn).await;
            });
        }
    }

    /// One connection: the hello, then a task per call.
    async fn connection(self: Arc<Self>, conn: quinn::Connection) {
        let remote = conn.remote_address();
        let Some(key) = peer_key(&conn) else {
            conn.close(close::UNAUTHORIZED.into(), b"no client key");
            return;
        };
        let Some(client) = self.client(&key) else {
            conn.close(close::UNAUTHORIZED.into(), b"key not authorized");
            return;
        };
        if let Err(e) = self.hello(&conn, &client).await {
            tracing::info!("{remote} ({}): hello: {e}", client.name);
            return;
        }
        tracing::info!(
            "{remote}: {} ({}) connected",
            client.name,
            fingerprint(&key)
        );
        loop {
            let (send, recv) = match conn.accept_bi().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!("{remote}: {} disconnected: {e}", client.name);
                    return;
                }
            };
            tokio::spawn(self.clone().call(conn.clone(), key, send, recv));
        }
    }

    async fn hello(&self, conn: &quinn::Connection, client: &Client) -> Result<(), String> {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let hello: Hello = frame::read(&mut recv, 4096)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("stream ended before the hello")?;
        if hello.version != PROTOCOL_VERSION {
            let why = format!(
                "protocol version {} is not this router's {PROTOCOL_VERSION}; use a matching oxctl",
                hello.version
            );
            let _ = frame::write(&mut send, &Response::error(ErrorCode::Version, &why)).await;
            let _ = send.finish();
            let _ = send.stopped().await;
            conn.close(close::VERSION.into(), why.as_bytes());
            return Err(why);
        }
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            hostname: self.hostname(),
            client: client.name.clone(),
            role: role_name(client.role).into(),
        };
        frame::write(&mut send, &Response::ok(Reply::Welcome(welcome)))
            .await
            .map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())
    }

    /// One call on its own stream. A malformed request closes that
    /// stream with an error; the connection goes on.
    async fn call(
        self: Arc<Self>,
        conn: quinn::Connection,
        key: [u8; 32],
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        let reply = match frame::read::<Request>(&mut recv, MAX_REQUEST).await {
            Ok(Some(Request { call: Some(call) })) => {
                self.checked(&conn, key, call, &mut send).await
            }
            Ok(Some(Request { call: None })) => Err(Failure::new(
                ErrorCode::BadRequest,
                "a call this router does not know (is oxctl newer?)",
            )),
            Ok(None) => return,
            Err(e) => Err(Failure::new(ErrorCode::BadRequest, e.to_string())),
        };
        let response = match reply {
            Ok(Some(r)) => Response::ok(r),
            Ok(None) => {
                // A stream that ended (the client went away).
                let _ = send.finish();
                return;
            }
            Err(f) => failure(f),
        };
        let _ = frame::write(&mut send, &response).await;
        let _ = send.finish();
    }

    /// Authorizes, rate-limits and runs a call; `Ok(None)` when it
    /// streamed its answers itself.
    async fn checked(
        &self,
        conn: &quinn::Connection,
        key: [u8; 32],
        call: Call,
        send: &mut quinn::SendStream,
    ) -> Result<Option<Reply>, Failure> {
        let Some(client) = self.client(&key) else {
            conn.close(close::UNAUTHORIZED.into(), b"key no longer authorized");
            return Err(Failure::new(
                ErrorCode::Forbidden,
                "key no longer authorized",
            ));
        };
        let limited = self
            .rate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(&key, Instant::now());
        if let Err(wait) = limited {
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            return Err(Failure {
                code: ErrorCode::RateLimited,
                message: format!("rate limited, retry in {ms} ms"),
            });
        }
        let kind = call.kind();
        if kind != Kind::Read && client.role != Role::Admin {
            return Err(Failure::new(
                ErrorCode::Forbidden,
                format!(
                    "client {:?} is read-only; {} needs an admin key",
                    client.name,
                    call.name()
                ),
            ));
        }
        if !call.confirmed() {
            return Err(Failure::new(
                ErrorCode::NotConfirmed,
                format!("{} is destructive and needs --confirm", call.name()),
            ));
        }
        let bus = self
            .bus
            .get()
            .ok_or_else(|| Failure::new(ErrorCode::Failed, "ctld is not on the bus yet"))?;
        let hostname = self.hostname();
        let cx = Context {
            conn: bus,
            hostname: &hostname,
            client: &client.name,
            identity: &self.identity,
            audit: &self.audit,
        };
        match (&call, kind) {
            (Call::Watch(w), _) => self.watch(&cx, w, send).await.map(|()| None),
            (Call::Logs(l), _) if l.follow => self.follow(&cx, l, send).await.map(|()| None),
            (_, Kind::Read) => rpc::answer(&cx, &call).await.map(Some),
            _ => self.audited(&cx, &key, &call).await.map(Some),
        }
    }

    /// A mutating call, with its audit entry written before the answer.
    async fn audited(
        &self,
        cx: &Context<'_>,
        key: &[u8; 32],
        call: &Call,
    ) -> Result<Reply, Failure> {
        let before = rpc::generation(cx.conn).await.unwrap_or(0);
        let mut result = rpc::answer(cx, call).await;
        // An apply reports the generation it left running; anything else
        // is asked.
        let after = match &mut result {
            Ok(Reply::Applied(a)) => {
                a.generation_before = before;
                a.generation
            }
            _ => rpc::generation(cx.conn).await.unwrap_or(0),
        };
        let entry = AuditEntry {
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            client: cx.client.to_string(),
            fingerprint: fingerprint(key),
            rpc: describe(call),
            result: match &result {
                Ok(_) => "ok".into(),
                Err(f) => format!("error: {}", first_line(&f.message)),
            },
            generation_before: before,
            generation_after: after,
        };
        tracing::info!(
            "{} ({}): {} -> {} (generation {before} -> {after})",
            entry.client,
            entry.fingerprint,
            entry.rpc,
            entry.result
        );
        if let Err(e) = self.audit.append(&entry) {
            tracing::error!("audit log: {e}");
        }
        result
    }

    /// `watch`: the inner reading call's answer every interval until the
    /// client stops reading.
    async fn watch(
        &self,
        cx: &Context<'_>,
        w: &bus_schema::control::WatchRequest,
        send: &mut quinn::SendStream,
    ) -> Result<(), Failure> {
        let inner = w
            .call
            .as_ref()
            .and_then(|r| r.call.as_ref())
            .ok_or_else(|| Failure::new(ErrorCode::BadRequest, "watch of nothing"))?;
        if inner.kind() != Kind::Read || matches!(inner, Call::Watch(_) | Call::Logs(_)) {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                format!("watch repeats reading calls only, not {}", inner.name()),
            ));
        }
        let every = Duration::from_millis(w.interval_ms.into()).max(MIN_WATCH);
        loop {
            let response = match rpc::answer(cx, inner).await {
                Ok(r) => Response::ok(r),
                Err(f) => failure(f),
            };
            if frame::write(send, &response).await.is_err() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = send.stopped() => break,
            }
        }
        tracing::info!("{}: watch {} stream ended", cx.client, inner.name());
        Ok(())
    }

    /// `logs --follow`: the last lines, then each new one as it comes.
    async fn follow(
        &self,
        cx: &Context<'_>,
        l: &bus_schema::control::LogsRequest,
        send: &mut quinn::SendStream,
    ) -> Result<(), Failure> {
        let (mut seq, mut lines) = rpc::logs_since(cx.conn, &l.service, 0).await?;
        rpc::keep_last(&mut lines, l.lines);
        if frame::write(send, &Response::ok(Reply::Logs(LogLines { lines })))
            .await
            .is_ok()
        {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = send.stopped() => break,
                }
                let (next, lines) = rpc::logs_since(cx.conn, &l.service, seq).await?;
                seq = next;
                if !lines.is_empty()
                    && frame::write(send, &Response::ok(Reply::Logs(LogLines { lines })))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        }
        tracing::info!("{}: logs --follow {} stream ended", cx.client, l.service);
        Ok(())
    }
}

fn failure(f: Failure) -> Response {
    Response::error(f.code, f.message)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::ReadOnly => "read-only",
    }
}

/// A call and its argument, for the audit log.
fn describe(call: &Call) -> String {
    match call {
        Call::Restart(s) => format!("restart {}", s.name),
        Call::Reload(r) if r.dry_run => "reload --dry-run".into(),
        Call::Reload(r) if r.confirm_secs > 0 => {
            format!("reload --confirm-within {}s", r.confirm_secs)
        }
        Call::Rollback(r) => format!("rollback --to {}", r.to),
        Call::Backup(b) if b.server_key => "backup --with-server-key".into(),
        other => other.name().into(),
    }
}

/// One bound listener.
#[derive(Debug)]
pub struct Listener {
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    fn close(self) {
        self.endpoint.close(close::DONE.into(), b"listener removed");
        self.task.abort();
    }
}

/// The listeners, one per address.
#[derive(Debug, Default)]
pub struct Listeners {
    bound: BTreeMap<SocketAddr, Listener>,
}

impl Listeners {
    /// Listens on exactly `addrs`: binds the new ones first (any failure
    /// closes those again and changes nothing), then closes the ones no
    /// longer wanted. Open connections on a kept listener go on.
    pub fn set(&mut self, server: &Arc<Server>, addrs: &[SocketAddr]) -> Result<(), String> {
        let mut new = BTreeMap::new();
        for addr in addrs.iter().filter(|a| !self.bound.contains_key(a)) {
            match server.bind(*addr) {
                Ok(l) => {
                    new.insert(*addr, l);
                }
                Err(e) => {
                    new.into_values().for_each(Listener::close);
                    return Err(e);
                }
            }
        }
        let gone: Vec<SocketAddr> = self
            .bound
            .keys()
            .filter(|a| !addrs.contains(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(l) = self.bound.remove(&addr) {
                tracing::info!("no longer listening on udp {addr}");
                l.close();
            }
        }
        for (addr, l) in new {
            tracing::info!("listening on udp {addr}");
            self.bound.insert(addr, l);
        }
        Ok(())
    }
}
