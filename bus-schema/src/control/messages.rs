//! The control plane's messages, as protobuf (`prost`). Written as Rust
//! with prost's derives rather than generated from a `.proto` file: the
//! build then needs no `protoc`, and these types are the one definition.
//! Tags are the wire contract: never reuse or renumber one; add new
//! fields and calls with new tags (old peers skip unknown fields).

use prost::{Enumeration, Message, Oneof};

/// Nothing: the argument of calls that take none.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Empty {}

/// First frame of a connection, from the client.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Hello {
    /// [`super::PROTOCOL_VERSION`] of the client.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// Client software, for the log (`oxctl 0.1.0`).
    #[prost(string, tag = "2")]
    pub software: String,
}

/// The server's answer to [`Hello`] (as [`Reply::Welcome`]; a refusal is
/// a [`Reply::Error`]).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Welcome {
    /// [`super::PROTOCOL_VERSION`] of the server.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The router's hostname.
    #[prost(string, tag = "2")]
    pub hostname: String,
    /// The client's name in `[[control.clients]]`.
    #[prost(string, tag = "3")]
    pub client: String,
    /// Its role: `admin` or `read-only`.
    #[prost(string, tag = "4")]
    pub role: String,
}

/// One call: the first and only frame the client sends on a stream.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Request {
    /// What is asked.
    #[prost(
        oneof = "Call",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15"
    )]
    pub call: Option<Call>,
}

/// Every call.
#[derive(Clone, PartialEq, Eq, Oneof)]
pub enum Call {
    /// Hostname, uptime, generation, services, WAN, LAN clients.
    #[prost(message, tag = "1")]
    Status(Empty),
    /// Every service.
    #[prost(message, tag = "2")]
    Services(Empty),
    /// Restart one service.
    #[prost(message, tag = "3")]
    Restart(ServiceName),
    /// A service's last lines, and with `follow` every new one.
    #[prost(message, tag = "4")]
    Logs(LogsRequest),
    /// The running config, defaults filled in, secrets redacted.
    #[prost(message, tag = "5")]
    DumpConfig(Empty),
    /// Validate a pair and keep it as the candidate of the next reload.
    #[prost(message, tag = "6")]
    ConfigPush(ConfigPair),
    /// Apply the candidate (or the files on the router).
    #[prost(message, tag = "7")]
    Reload(ReloadRequest),
    /// Make a provisional generation permanent.
    #[prost(message, tag = "8")]
    Confirm(Empty),
    /// Apply an earlier generation.
    #[prost(message, tag = "9")]
    Rollback(RollbackRequest),
    /// The snapshot ring.
    #[prost(message, tag = "10")]
    RollbackList(Empty),
    /// The running pair and the state needed to restore it.
    #[prost(message, tag = "11")]
    Backup(BackupRequest),
    /// Push, then apply, a backed-up pair.
    #[prost(message, tag = "12")]
    Restore(RestoreRequest),
    /// The kernel's and the daemons' view of one thing.
    #[prost(message, tag = "13")]
    Diag(DiagRequest),
    /// The audit log.
    #[prost(message, tag = "14")]
    Audit(AuditRequest),
    /// Repeat a reading call and stream its answers.
    #[prost(message, tag = "15")]
    Watch(Box<WatchRequest>),
}

/// A service's name.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ServiceName {
    /// As `services` lists it.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `logs`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LogsRequest {
    /// Service.
    #[prost(string, tag = "1")]
    pub service: String,
    /// How many of the last lines (0: all that are kept).
    #[prost(uint32, tag = "2")]
    pub lines: u32,
    /// Then stream every new line until the client closes the stream.
    #[prost(bool, tag = "3")]
    pub follow: bool,
}

/// A config pair as text.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ConfigPair {
    /// `oxwrt.toml`.
    #[prost(string, tag = "1")]
    pub public: String,
    /// `oxwrt.secrets.toml` (may be empty).
    #[prost(string, tag = "2")]
    pub secrets: String,
}

/// `reload`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ReloadRequest {
    /// Validate and check with every daemon; change nothing.
    #[prost(bool, tag = "1")]
    pub dry_run: bool,
    /// Revert unless confirmed within this many seconds (0: permanent).
    #[prost(uint32, tag = "2")]
    pub confirm_secs: u32,
    /// Why, for the snapshot ring.
    #[prost(string, tag = "3")]
    pub comment: String,
}

/// `rollback`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RollbackRequest {
    /// Snapshot index (`rollback-list`); 0: the previous generation.
    #[prost(uint32, tag = "1")]
    pub to: u32,
    /// The operator confirmed; the server refuses without it.
    #[prost(bool, tag = "2")]
    pub confirm: bool,
}

/// `backup`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct BackupRequest {
    /// Include ctld's private key (the router keeps its identity).
    #[prost(bool, tag = "1")]
    pub server_key: bool,
}

/// `restore`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct RestoreRequest {
    /// The backed-up pair.
    #[prost(message, optional, tag = "1")]
    pub pair: Option<ConfigPair>,
    /// The operator confirmed; the server refuses without it.
    #[prost(bool, tag = "2")]
    pub confirm: bool,
    /// The backup's DHCP leases (`leases.json`: dhcpd's `Leases()` as
    /// JSON), taken back once the pair is applied; empty: none.
    #[prost(string, tag = "3")]
    pub leases_json: String,
}

/// `diag`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct DiagRequest {
    /// `links`, `routes`, `firewall`, `leases`, `dns` or `conntrack`.
    #[prost(string, tag = "1")]
    pub what: String,
}

/// `audit`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuditRequest {
    /// The newest this many entries (0: every kept one).
    #[prost(uint32, tag = "1")]
    pub limit: u32,
}

/// `watch`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct WatchRequest {
    /// Between answers, in milliseconds (the server keeps at least 200).
    #[prost(uint32, tag = "1")]
    pub interval_ms: u32,
    /// A reading call other than `logs` and `watch`.
    #[prost(message, optional, boxed, tag = "2")]
    pub call: Option<Box<Request>>,
}

/// One answer frame; a streaming call sends many.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Response {
    /// What came back.
    #[prost(oneof = "Reply", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13")]
    pub reply: Option<Reply>,
}

/// Every answer.
#[derive(Clone, PartialEq, Eq, Oneof)]
pub enum Reply {
    /// The call failed.
    #[prost(message, tag = "1")]
    Error(Error),
    /// `status`.
    #[prost(message, tag = "2")]
    Status(Status),
    /// `services`.
    #[prost(message, tag = "3")]
    Services(ServiceList),
    /// A call that returns nothing but success (`restart`, `confirm`).
    #[prost(message, tag = "4")]
    Done(Done),
    /// `logs`: lines, oldest first.
    #[prost(message, tag = "5")]
    Logs(LogLines),
    /// `dump-config`.
    #[prost(message, tag = "6")]
    Config(ConfigText),
    /// `config-push`: the warnings.
    #[prost(message, tag = "7")]
    Pushed(Pushed),
    /// `reload`, `rollback`, `restore`.
    #[prost(message, tag = "8")]
    Applied(Applied),
    /// `rollback-list`.
    #[prost(message, tag = "9")]
    Snapshots(SnapshotList),
    /// `backup`.
    #[prost(message, tag = "10")]
    Backup(BackupArchive),
    /// `diag`: a JSON array of flat objects.
    #[prost(message, tag = "11")]
    Diag(DiagTable),
    /// `audit`.
    #[prost(message, tag = "12")]
    Audit(AuditLog),
    /// The answer to a [`Hello`].
    #[prost(message, tag = "13")]
    Welcome(Welcome),
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Enumeration)]
#[repr(i32)]
pub enum ErrorCode {
    /// Not set (an old or broken peer).
    Unspecified = 0,
    /// The request is malformed, too large or not understood.
    BadRequest = 1,
    /// The client's role may not make this call.
    Forbidden = 2,
    /// Over the client's rate limit; see `retry_after_ms`.
    RateLimited = 3,
    /// The config is invalid: one diagnostic per line.
    Invalid = 4,
    /// The router could not do it (a daemon refused, a revert happened).
    Failed = 5,
    /// Another transaction is running.
    Busy = 6,
    /// No such service, snapshot or thing.
    NotFound = 7,
    /// The peers speak different protocol versions.
    Version = 8,
    /// A destructive call without `confirm`.
    NotConfirmed = 9,
}

/// A failed call.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Error {
    /// Kind.
    #[prost(enumeration = "ErrorCode", tag = "1")]
    pub code: i32,
    /// What happened, for the operator.
    #[prost(string, tag = "2")]
    pub message: String,
    /// With `RateLimited`: when a retry can succeed.
    #[prost(uint64, tag = "3")]
    pub retry_after_ms: u64,
}

/// `status`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Status {
    /// Hostname.
    #[prost(string, tag = "1")]
    pub hostname: String,
    /// Seconds since boot.
    #[prost(uint64, tag = "2")]
    pub uptime_secs: u64,
    /// Running generation.
    #[prost(uint64, tag = "3")]
    pub generation: u64,
    /// Its hash.
    #[prost(string, tag = "4")]
    pub hash: String,
    /// Unix time it reverts unless confirmed; 0 when confirmed.
    #[prost(uint64, tag = "5")]
    pub confirm_deadline: u64,
    /// Every service.
    #[prost(message, repeated, tag = "6")]
    pub services: Vec<Service>,
    /// Every WAN network.
    #[prost(message, repeated, tag = "7")]
    pub wan: Vec<Wan>,
    /// DHCP leases held: LAN clients.
    #[prost(uint32, tag = "8")]
    pub lan_clients: u32,
}

/// One supervised service.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Service {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `running`, `starting`, `stopped`, `backoff`, `failed`...
    #[prost(string, tag = "2")]
    pub state: String,
    /// Main process, 0 when none.
    #[prost(uint32, tag = "3")]
    pub pid: u32,
    /// Restarts so far.
    #[prost(uint32, tag = "4")]
    pub restarts: u32,
    /// How the last run ended.
    #[prost(string, tag = "5")]
    pub last_exit: String,
}

/// One WAN network.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Wan {
    /// Network name.
    #[prost(string, tag = "1")]
    pub network: String,
    /// Device.
    #[prost(string, tag = "2")]
    pub device: String,
    /// `up`, `down`, `requesting`...
    #[prost(string, tag = "3")]
    pub state: String,
    /// Address with prefix, empty when none.
    #[prost(string, tag = "4")]
    pub address: String,
    /// Carries the default route.
    #[prost(bool, tag = "5")]
    pub active: bool,
}

/// `services`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ServiceList {
    /// In start order.
    #[prost(message, repeated, tag = "1")]
    pub services: Vec<Service>,
}

/// Success without data.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Done {
    /// What was done.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// Log lines.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct LogLines {
    /// Oldest first.
    #[prost(string, repeated, tag = "1")]
    pub lines: Vec<String>,
}

/// The running config.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ConfigText {
    /// Its generation.
    #[prost(uint64, tag = "1")]
    pub generation: u64,
    /// As TOML, defaults filled in, every secret redacted.
    #[prost(string, tag = "2")]
    pub toml: String,
}

/// A stored candidate.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Pushed {
    /// Warnings, one per line.
    #[prost(string, tag = "1")]
    pub warnings: String,
}

/// What an apply did (or, dry, would do).
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Applied {
    /// Generation running now (a dry run: the one that would be).
    #[prost(uint64, tag = "1")]
    pub generation: u64,
    /// Its hash.
    #[prost(string, tag = "2")]
    pub hash: String,
    /// Sections that changed.
    #[prost(string, repeated, tag = "3")]
    pub changed: Vec<String>,
    /// Per changed section, a unified diff (secrets redacted).
    #[prost(message, repeated, tag = "4")]
    pub diff: Vec<SectionDiff>,
    /// Unix time of the automatic revert; 0 when permanent.
    #[prost(uint64, tag = "5")]
    pub confirm_deadline: u64,
    /// Warnings, one per line.
    #[prost(string, tag = "6")]
    pub warnings: String,
    /// Running generation before the call.
    #[prost(uint64, tag = "7")]
    pub generation_before: u64,
    /// `restore`: the backup's leases dhcpd took back.
    #[prost(uint32, tag = "8")]
    pub leases_restored: u32,
    /// `restore`: the backup's leases left out, each with why.
    #[prost(string, repeated, tag = "9")]
    pub leases_skipped: Vec<String>,
}

/// One section's diff.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SectionDiff {
    /// Section.
    #[prost(string, tag = "1")]
    pub section: String,
    /// Unified diff.
    #[prost(string, tag = "2")]
    pub diff: String,
}

/// The snapshot ring.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SnapshotList {
    /// Newest first.
    #[prost(message, repeated, tag = "1")]
    pub snapshots: Vec<Snapshot>,
    /// Running generation.
    #[prost(uint64, tag = "2")]
    pub running: u64,
}

/// One snapshot.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Snapshot {
    /// Index for `rollback --to`.
    #[prost(uint32, tag = "1")]
    pub index: u32,
    /// Generation.
    #[prost(uint64, tag = "2")]
    pub generation: u64,
    /// Unix time it was applied.
    #[prost(uint64, tag = "3")]
    pub time: u64,
    /// Who applied it.
    #[prost(string, tag = "4")]
    pub who: String,
    /// Comment.
    #[prost(string, tag = "5")]
    pub comment: String,
    /// Hash.
    #[prost(string, tag = "6")]
    pub hash: String,
}

/// A backup's contents; the client packs them.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct BackupArchive {
    /// Generation of the pair.
    #[prost(uint64, tag = "1")]
    pub generation: u64,
    /// The running pair, secrets included.
    #[prost(message, optional, tag = "2")]
    pub pair: Option<ConfigPair>,
    /// dhcpd's leases as JSON.
    #[prost(string, tag = "3")]
    pub leases_json: String,
    /// ctld's private key (hex), when asked for.
    #[prost(string, tag = "4")]
    pub server_key: String,
    /// The router's hostname.
    #[prost(string, tag = "5")]
    pub hostname: String,
}

/// `diag`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct DiagTable {
    /// A JSON array of flat objects (one row each), or a JSON string for
    /// text such as the ruleset.
    #[prost(string, tag = "1")]
    pub json: String,
}

/// The audit log.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuditLog {
    /// Oldest first.
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<AuditEntry>,
}

/// One mutating call.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct AuditEntry {
    /// Unix time.
    #[prost(uint64, tag = "1")]
    pub time: u64,
    /// Client name.
    #[prost(string, tag = "2")]
    pub client: String,
    /// Its key's fingerprint.
    #[prost(string, tag = "3")]
    pub fingerprint: String,
    /// The call and its argument (`restart dnsd`).
    #[prost(string, tag = "4")]
    pub rpc: String,
    /// `ok`, or the error.
    #[prost(string, tag = "5")]
    pub result: String,
    /// Running generation before.
    #[prost(uint64, tag = "6")]
    pub generation_before: u64,
    /// Running generation after.
    #[prost(uint64, tag = "7")]
    pub generation_after: u64,
}
