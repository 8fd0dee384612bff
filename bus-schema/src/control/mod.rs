//! The control plane's protocol between `oxctl` and ctld: messages, their
//! framing and the rules both ends share (which calls read, which
//! mutate, which need `--confirm`).
//!
//! A connection is QUIC with TLS 1.3, both ends authenticated by pinned
//! ed25519 keys (ALPN [`ALPN`]). Its first bidirectional stream carries
//! [`Hello`] and [`Welcome`]: the protocol version is exchanged there.
//! Then every call is a stream of its own: one [`Request`] frame from the
//! client, one or more [`Response`] frames back (`watch` and `logs
//! --follow` stream until the client closes). A frame is a 4-byte
//! big-endian length and that many bytes of protobuf; a frame longer than
//! the limit for its direction is refused before it is read.

mod messages;

pub use messages::*;

use sha2::{Digest, Sha256};

/// Version of this protocol; a peer with another one is refused with
/// [`ErrorCode::Version`].
pub const PROTOCOL_VERSION: u32 = 1;
/// TLS application protocol of the control plane.
pub const ALPN: &[u8] = b"oxwrt-ctl/1";

/// ctld's private key, below the state directory (`$STATE`, on a router
/// `/var/lib/oxwrt`): 64 hex digits, mode 0600.
pub const SERVER_KEY_FILE: &str = "ctld/server.key";
/// Largest frame a client may send: a config pair with room to spare.
pub const MAX_REQUEST: usize = 1 << 20;
/// Largest frame the server sends: a backup.
pub const MAX_RESPONSE: usize = 8 << 20;

/// QUIC application close codes of a control connection.
pub mod close {
    /// Normal end.
    pub const DONE: u32 = 0;
    /// The client's key is not (or no longer) authorized.
    pub const UNAUTHORIZED: u32 = 1;
    /// Protocol version mismatch.
    pub const VERSION: u32 = 2;
    /// Too many connections on this listener.
    pub const BUSY: u32 = 3;
}

/// Errors of frame decoding.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is larger than allowed.
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Fewer bytes than the length prefix announced.
    #[error("frame cut short: {got} of {want} bytes")]
    Truncated {
        /// Bytes present.
        got: usize,
        /// Bytes announced (prefix included).
        want: usize,
    },
    /// The body is not a valid message.
    #[error("malformed frame: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// A message as one frame.
pub fn encode_frame<M: prost::Message>(m: &M) -> Vec<u8> {
    let len = m.encoded_len();
    let mut out = Vec::with_capacity(4 + len);
    // A message is never 4 GiB: the limits are far below.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    m.encode(&mut out).unwrap_or_default();
    out
}

/// The body length a frame's 4-byte prefix announces, refused when over
/// `max` (before anything is read or allocated for it).
pub fn frame_len(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes one frame at the start of `buf`: the message and the bytes it
/// took. What the server runs on every request a client sends, and what
/// the fuzz target feeds with arbitrary bytes.
pub fn decode_frame<M: prost::Message + Default>(
    buf: &[u8],
    max: usize,
) -> Result<(M, usize), FrameError> {
    let prefix: [u8; 4] =
        buf.get(..4)
            .and_then(|p| p.try_into().ok())
            .ok_or(FrameError::Truncated {
                got: buf.len(),
                want: 4,
            })?;
    let len = frame_len(prefix, max)?;
    let body = buf.get(4..4 + len).ok_or(FrameError::Truncated {
        got: buf.len(),
        want: 4 + len,
    })?;
    Ok((M::decode(body)?, 4 + len))
}

/// What a call is, for roles, `--confirm` and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reads; any role.
    Read,
    /// Changes the router; `admin` only, audited.
    Mutate,
    /// Mutates and cannot be undone by a reload alone: `admin`, audited,
    /// and refused without `confirm`.
    Destructive,
}

impl Call {
    /// Its name, as `oxctl` spells the verb.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Status(_) => "status",
            Call::Services(_) => "services",
            Call::Restart(_) => "restart",
            Call::Logs(_) => "logs",
            Call::DumpConfig(_) => "dump-config",
            Call::ConfigPush(_) => "config-push",
            Call::Reload(_) => "reload",
            Call::Confirm(_) => "confirm",
            Call::Rollback(_) => "rollback",
            Call::RollbackList(_) => "rollback-list",
            Call::Backup(_) => "backup",
            Call::Restore(_) => "restore",
            Call::Diag(_) => "diag",
            Call::Audit(_) => "audit",
            Call::Watch(_) => "watch",
        }
    }

    /// Read, mutate or destroy. `backup` counts as a mutation: it hands
    /// out every secret, so only `admin` may call it, and it is audited.
    /// A dry-run `reload` changes nothing but takes the transaction lock
    /// and calls every daemon, so it is `admin`'s too.
    pub fn kind(&self) -> Kind {
        match self {
            Call::Status(_)
            | Call::Services(_)
            | Call::Logs(_)
            | Call::DumpConfig(_)
            | Call::RollbackList(_)
            | Call::Diag(_)
            | Call::Audit(_)
            | Call::Watch(_) => Kind::Read,
            Call::Restart(_)
            | Call::ConfigPush(_)
            | Call::Reload(_)
            | Call::Confirm(_)
            | Call::Backup(_) => Kind::Mutate,
            Call::Rollback(_) | Call::Restore(_) => Kind::Destructive,
        }
    }

    /// The operator's `--confirm`, for destructive calls.
    pub fn confirmed(&self) -> bool {
        match self {
            Call::Rollback(r) => r.confirm,
            Call::Restore(r) => r.confirm,
            _ => true,
        }
    }
}

impl Response {
    /// An error answer.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            reply: Some(Reply::Error(Error {
                code: code as i32,
                message: message.into(),
                retry_after_ms: 0,
            })),
        }
    }

    /// An answer.
    pub fn ok(reply: Reply) -> Self {
        Self { reply: Some(reply) }
    }
}

/// A public key as 64 hex digits.
pub fn key_hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// A public key's fingerprint as ssh prints one: `SHA256:` and the
/// unpadded base64 of its SHA-256.
pub fn fingerprint(key: &[u8; 32]) -> String {
    use base64::Engine as _;
    let digest = Sha256::digest(key);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_says_how_long_it_was() {
        let req = Request {
            call: Some(Call::Logs(LogsRequest {
                service: "dnsd".into(),
                lines: 20,
                follow: true,
            })),
        };
        let mut buf = encode_frame(&req);
        buf.extend_from_slice(b"next");
        let (back, used): (Request, usize) = decode_frame(&buf, MAX_REQUEST).expect("decodes");
        assert_eq!(back, req);
        assert_eq!(&buf[used..], b"next");
    }

    #[test]
    fn oversized_short_and_malformed_frames_are_errors() {
        let big = (MAX_REQUEST as u32 + 1).to_be_bytes();
        assert!(matches!(
            decode_frame::<Request>(&big, MAX_REQUEST),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_frame::<Request>(&[0, 0, 0, 9, 1], MAX_REQUEST),
            Err(FrameError::Truncated { got: 5, want: 13 })
        ));
        assert!(matches!(
            decode_frame::<Request>(&[0, 0], MAX_REQUEST),
            Err(FrameError::Truncated { .. })
        ));
        // Field 1 as a length-delimited message whose length runs past
        // the body.
        assert!(matches!(
            decode_frame::<Request>(&[0, 0, 0, 2, 0x0a, 0x05], MAX_REQUEST),
            Err(FrameError::Decode(_))
        ));
    }

    #[test]
    fn decoding_never_panics_on_mutated_frames() {
        let calls = [
            Call::Watch(Box::new(WatchRequest {
                interval_ms: 500,
                call: Some(Box::new(Request {
                    call: Some(Call::Status(Empty {})),
                })),
            })),
            Call::ConfigPush(ConfigPair {
                public: "[system]\nhostname = \"r\"\n".into(),
                secrets: String::new(),
            }),
            Call::Rollback(RollbackRequest {
                to: 3,
                confirm: true,
            }),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for call in calls {
            let frame = encode_frame(&Request { call: Some(call) });
            for _ in 0..20_000 {
                let mut f = frame.clone();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() as usize) % f.len();
                    f[i] = next() as u8;
                }
                f.truncate((next() as usize) % (f.len() + 1));
                let _ = decode_frame::<Request>(&f, MAX_REQUEST);
            }
        }
    }

    #[test]
    fn only_reading_calls_are_read_and_destructive_ones_need_confirm() {
        let rollback = Call::Rollback(RollbackRequest {
            to: 0,
            confirm: false,
        });
        assert_eq!(rollback.kind(), Kind::Destructive);
        assert!(!rollback.confirmed());
        assert_eq!(Call::Status(Empty {}).kind(), Kind::Read);
        assert_eq!(
            Call::Reload(ReloadRequest {
                dry_run: true,
                confirm_secs: 0,
                comment: String::new()
            })
            .kind(),
            Kind::Mutate
        );
        assert_eq!(
            Call::Backup(BackupRequest { server_key: false }).kind(),
            Kind::Mutate
        );
    }

    #[test]
    fn a_fingerprint_is_sha256_in_unpadded_base64() {
        let fp = fingerprint(&[0u8; 32]);
        assert_eq!(fp, "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU");
        assert_eq!(key_hex(&[0xab; 32]).len(), 64);
    }
}
