//! The client side of the control plane: which router, with which keys
//! ([`target`]), a connection and its calls ([`Session`]), and the errors
//! that decide `oxctl`'s exit code ([`Failure`]).

pub mod render;
pub mod target;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bus_schema::control::{
    Call, ErrorCode, Hello, MAX_RESPONSE, PROTOCOL_VERSION, Reply, Request, Response, Welcome,
    close, fingerprint, key_hex,
};
use oxwrt_quic::{ServerKeySeen, client_config, frame};

pub use target::Target;

/// Beyond three round trips, how long a closing oxctl waits for the
/// router to acknowledge.
const CLOSE_GRACE: Duration = Duration::from_millis(10);

/// How long a first contact may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Exit codes: the sysexits(3) ones the daemons use too (64 usage, 69
/// router unreachable, 75 rate limited, 77 key refused or role not
/// allowed, 78 invalid config), and oxctl's own; scripts can tell them
/// apart.
pub mod exit {
    pub use bus_schema::exit::{CONFIG, NO_PERM, TEMPFAIL, UNAVAILABLE, USAGE};
    /// The router could not do what was asked.
    pub const REMOTE: u8 = 1;
    /// Interrupted (SIGINT), as shells report it.
    pub const INTERRUPTED: u8 = 130;
}

/// Why a remote command failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad arguments, or a key or file that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// No connection.
    #[error("{0}")]
    Connect(String),
    /// A key was refused (either side's) or the role may not do this.
    #[error("{0}")]
    Auth(String),
    /// The pushed config is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Over the rate limit.
    #[error("{0}")]
    RateLimited(String),
    /// Anything else the router reported.
    #[error("{0}")]
    Remote(String),
    /// Ctrl-C: the connection was closed first, so the router ends any
    /// stream at once rather than at its idle timeout.
    #[error("interrupted")]
    Interrupted,
}

impl Failure {
    /// The exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::Connect(_) => exit::UNAVAILABLE,
            Failure::Auth(_) => exit::NO_PERM,
            Failure::Invalid(_) => exit::CONFIG,
            Failure::RateLimited(_) => exit::TEMPFAIL,
            Failure::Remote(_) => exit::REMOTE,
            Failure::Interrupted => exit::INTERRUPTED,
        }
    }

    /// An error answer from the router.
    fn of(e: bus_schema::control::Error) -> Self {
        let m = e.message;
        match ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified) {
            ErrorCode::Invalid => Failure::Invalid(m),
            ErrorCode::Forbidden => Failure::Auth(m),
            ErrorCode::RateLimited => Failure::RateLimited(m),
            ErrorCode::BadRequest | ErrorCode::NotConfirmed | ErrorCode::Version => {
                Failure::Usage(m)
            }
            _ => Failure::Remote(m),
        }
    }
}

/// A connection to ctld, past the hello.
#[derive(Debug)]
pub struct Session {
    conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    /// What the router said about itself and us.
    pub welcome: Welcome,
    /// How long the handshake and the hello took.
    pub connected_in: Duration,
}

/// Whether a connection error is a TLS alert: a refused key, ours or
/// theirs.
fn is_crypto(e: &quinn::ConnectionError) -> bool {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => t.code,
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code,
        _ => return false,
    };
    (0x100..0x200).contains(&u64::from(code))
}

/// Why a connection to `t` failed, for the operator: a server key that
/// is not pinned or not the pinned one (`presented`), our key refused, a
/// refusal with ctld's reason, or no answer.
fn refusal(t: &Target, presented: Option<[u8; 32]>, e: quinn::ConnectionError) -> Failure {
    let addr = t.address;
    match (presented, t.server_key, e) {
        (Some(k), None, _) => Failure::Auth(format!(
            "no server key is pinned for {addr}; it presented {} ({}).\n\
             Compare with `oxctl --print-server-key` on the router, then pin it: \
             --server-key {}, OXCTL_SERVER_KEY, or server_key in {}",
            fingerprint(&k),
            key_hex(&k),
            key_hex(&k),
            target::config_path_hint()
        )),
        (Some(k), Some(p), _) if k != p => Failure::Auth(format!(
            "{addr} presented server key {}, not the pinned {}: refusing to talk to it. \
             If the router's key was changed on purpose, pin the new one ({}); \
             otherwise something is between you and the router",
            fingerprint(&k),
            fingerprint(&p),
            key_hex(&k)
        )),
        (_, _, e) if is_crypto(&e) => Failure::Auth(format!(
            "{addr} refused this client's key {} ({e}); is it in [[control.clients]]?",
            t.key.fingerprint()
        )),
        (_, _, quinn::ConnectionError::ApplicationClosed(c)) => {
            let reason = String::from_utf8_lossy(&c.reason).into_owned();
            if u64::from(c.error_code) == u64::from(close::UNAUTHORIZED) {
                Failure::Auth(format!("{addr}: {reason}"))
            } else {
                Failure::Connect(format!("{addr}: {reason}"))
            }
        }
        (_, _, quinn::ConnectionError::TimedOut) => {
            Failure::Connect(format!("{addr}: no answer (is ctld listening there?)"))
        }
        (_, _, e) => Failure::Connect(format!("{addr}: {e}")),
    }
}

impl Session {
    /// Connects, checks both keys and exchanges the protocol version.
    pub async fn connect(t: &Target) -> Result<Self, Failure> {
        let start = Instant::now();
        let seen = ServerKeySeen::default();
        let config = client_config(&t.key, t.server_key, seen.clone())
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let local: SocketAddr = if t.address.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = quinn::Endpoint::client(local)
            .map_err(|e| Failure::Connect(format!("open a udp socket: {e}")))?;
        endpoint.set_default_client_config(config);
        let addr = t.address;
        let connecting = endpoint
            .connect(addr, "oxwrt")
            .map_err(|e| Failure::Connect(format!("{addr}: {e}")))?;
        let refused = |e: quinn::ConnectionError| {
            let presented = *seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            refusal(t, presented, e)
        };
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => {
                return Err(Failure::Connect(format!(
                    "{addr}: no answer within {}s (is ctld listening there?)",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(refused(e)),
            Ok(Ok(c)) => c,
        };
        let hello = async {
            let (mut send, mut recv) = conn.open_bi().await?;
            let hello = Hello {
                version: PROTOCOL_VERSION,
                software: format!("oxctl {}", env!("CARGO_PKG_VERSION")),
            };
            frame::write(&mut send, &hello).await?;
            let _ = send.finish();
            frame::read::<Response>(&mut recv, MAX_RESPONSE).await
        };
        // The server may have refused our key only after our side of the
        // handshake finished: that shows here, as a closed connection.
        let first = match hello.await {
            Ok(r) => r,
            Err(e) => {
                return Err(match conn.close_reason() {
                    Some(reason) => refused(reason),
                    None => Failure::Connect(format!("{addr}: {e}")),
                });
            }
        };
        let welcome = match first.and_then(|r| r.reply) {
            Some(Reply::Welcome(w)) => w,
            Some(Reply::Error(e)) => return Err(Failure::of(e)),
            _ => return Err(Failure::Remote(format!("{addr}: no welcome after hello"))),
        };
        Ok(Self {
            conn,
            endpoint,
            welcome,
            connected_in: start.elapsed(),
        })
    }
}

impl Session {
    /// The router's control-plane socket.
    pub fn address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// One call, one answer.
    pub async fn call(&self, call: Call) -> Result<Reply, Failure> {
        let mut answer = None;
        self.stream(call, |r| {
            answer = Some(r);
            false
        })
        .await?;
        answer.ok_or_else(|| Failure::Remote("the router closed the call without an answer".into()))
    }

    /// A call whose answers stream: `each` gets every one until it
    /// returns false or the router ends the stream. An error answer ends
    /// it with that error.
    pub async fn stream(
        &self,
        call: Call,
        mut each: impl FnMut(Reply) -> bool,
    ) -> Result<(), Failure> {
        let lost = |e: &dyn std::fmt::Display| Failure::Connect(format!("connection: {e}"));
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| lost(&e))?;
        frame::write(&mut send, &Request { call: Some(call) })
            .await
            .map_err(|e| lost(&e))?;
        let _ = send.finish();
        loop {
            let response = frame::read::<Response>(&mut recv, MAX_RESPONSE)
                .await
                .map_err(|e| lost(&e))?;
            match response.and_then(|r| r.reply) {
                None => return Ok(()),
                Some(Reply::Error(e)) => return Err(Failure::of(e)),
                Some(r) => {
                    if !each(r) {
                        // Tell the router to stop sending.
                        let _ = recv.stop(0u8.into());
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Closes the connection: the router learns it from the next packet.
    /// quinn then drains the connection for three probe timeouts, to
    /// repeat the close should that packet be lost; with the router's
    /// 25 ms acknowledgement delay in each, that is about 80 ms even on a
    /// LAN, which every oxctl run would wait. A few round trips give a
    /// lost close the same second chance.
    pub async fn close(self) {
        let grace = self.conn.rtt() * 3 + CLOSE_GRACE;
        self.conn.close(close::DONE.into(), b"done");
        let _ = tokio::time::timeout(grace, self.endpoint.wait_idle()).await;
    }
}
