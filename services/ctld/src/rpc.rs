//! Each call, mapped onto the bus: configd, oxinit and the daemons hold
//! every piece of state; ctld holds none of its own but the audit log.

use bus_schema::bus::{
    ApplyReport, Config1Proxy, Dhcp1Proxy, DhcpLease, Dns1Proxy, Firewall1Proxy, Init1Proxy,
    Net1Proxy, ServiceStatus,
};
use bus_schema::control::{
    Applied, AuditLog, BackupArchive, Call, ConfigPair, ConfigText, DiagTable, Done, ErrorCode,
    LogLines, Pushed, Reply, SectionDiff, Service, ServiceList, Snapshot, SnapshotList, Status,
    Wan,
};
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::diag;

/// A failed call, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Kind.
    pub code: ErrorCode,
    /// Message.
    pub message: String,
}

impl Failure {
    /// A failure of `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, text, _) => {
                let code = match name.as_str().rsplit('.').next().unwrap_or("") {
                    "Invalid" => ErrorCode::Invalid,
                    "Busy" => ErrorCode::Busy,
                    "NotFound" => ErrorCode::NotFound,
                    "AccessDenied" => ErrorCode::Forbidden,
                    _ => ErrorCode::Failed,
                };
                let message = match (text, name.as_str()) {
                    (_, "org.freedesktop.DBus.Error.ServiceUnknown") => {
                        "the daemon that answers this is not running".to_string()
                    }
                    (Some(t), _) => t,
                    (None, n) => n.to_string(),
                };
                Self::new(code, message)
            }
            e => Self::new(ErrorCode::Failed, format!("bus: {e}")),
        }
    }
}

impl From<zbus::fdo::Error> for Failure {
    fn from(e: zbus::fdo::Error) -> Self {
        zbus::Error::from(e).into()
    }
}

type Result<T> = std::result::Result<T, Failure>;

macro_rules! proxy {
    ($ty:ident, $conn:expr) => {
        $ty::builder($conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(Failure::from)
    };
}

/// The running generation.
pub async fn generation(conn: &Connection) -> Result<u64> {
    Ok(proxy!(Config1Proxy, conn)?.generation().await?)
}

fn service(s: ServiceStatus) -> Service {
    Service {
        name: s.name,
        state: s.state,
        pid: s.pid,
        restarts: s.restarts,
        last_exit: s.last_exit,
    }
}

async fn services(conn: &Connection) -> Result<Vec<Service>> {
    let list = proxy!(Init1Proxy, conn)?.list_services().await?;
    Ok(list.into_iter().map(service).collect())
}

/// `status`. WAN and leases are left empty when netd or dhcpd is not
/// running: the status of a half-broken router is what is wanted most.
async fn status(conn: &Connection, hostname: &str) -> Result<Status> {
    let config = proxy!(Config1Proxy, conn)?;
    let wan = match proxy!(Net1Proxy, conn)?.wan().await {
        Ok(w) => w
            .into_iter()
            .map(|w| Wan {
                network: w.network,
                device: w.device,
                state: w.state,
                address: w.address,
                active: w.active,
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let lan_clients = proxy!(Dhcp1Proxy, conn)?.lease_count().await.unwrap_or(0);
    Ok(Status {
        hostname: hostname.to_string(),
        uptime_secs: diag::uptime_secs(),
        generation: config.generation().await?,
        hash: config.hash().await?,
        confirm_deadline: config.confirm_deadline().await?,
        services: services(conn).await?,
        wan,
        lan_clients,
    })
}

/// An apply's report; `generation_before` is filled in by the audit,
/// which reads the running generation around every mutating call anyway.
fn applied(r: ApplyReport) -> Reply {
    Reply::Applied(Applied {
        generation: r.generation,
        hash: r.hash,
        changed: r.changed,
        diff: r
            .diff
            .into_iter()
            .map(|(section, diff)| SectionDiff { section, diff })
            .collect(),
        confirm_deadline: r.confirm_deadline,
        warnings: r.warnings,
        generation_before: 0,
        leases_restored: 0,
        leases_skipped: Vec::new(),
    })
}

fn json<T: serde::Serialize>(v: &T) -> Result<Reply> {
    serde_json::to_string(v)
        .map(|json| Reply::Diag(DiagTable { json }))
        .map_err(|e| Failure::new(ErrorCode::Failed, e.to_string()))
}

/// `diag WHAT`.
async fn diag(conn: &Connection, what: &str) -> Result<Reply> {
    match what {
        "links" => json(&proxy!(Net1Proxy, conn)?.links().await?),
        "routes" => json(&diag::routes()),
        "firewall" => json(&proxy!(Firewall1Proxy, conn)?.ruleset().await?),
        "leases" => json(&proxy!(Dhcp1Proxy, conn)?.leases().await?),
        "dns" => {
            let dns = proxy!(Dns1Proxy, conn)?;
            json(&dns.upstreams().await?)
        }
        "conntrack" => json(&diag::conntrack()),
        other => Err(Failure::new(
            ErrorCode::BadRequest,
            format!("no diag {other:?} (links, routes, firewall, leases, dns, conntrack)"),
        )),
    }
}

/// What one call needs besides the bus.
#[derive(Debug)]
pub struct Context<'a> {
    /// The bus.
    pub conn: &'a Connection,
    /// Router hostname.
    pub hostname: &'a str,
    /// The calling client's name, for comments.
    pub client: &'a str,
    /// ctld's own key, for `backup --with-server-key`.
    pub identity: &'a oxwrt_quic::Identity,
    /// The audit log, for `audit`.
    pub audit: &'a crate::audit::Audit,
}

/// Answers every call but the streaming ones (`watch`, `logs
/// --follow`, which the server loops over) in one reply. Role and
/// `--confirm` were checked by the caller.
pub async fn answer(cx: &Context<'_>, call: &Call) -> Result<Reply> {
    let conn = cx.conn;
    let comment = |what: &str| format!("{what} by {} over the control plane", cx.client);
    Ok(match call {
        Call::Status(_) => Reply::Status(status(conn, cx.hostname).await?),
        Call::Services(_) => Reply::Services(ServiceList {
            services: services(conn).await?,
        }),
        Call::Restart(s) => {
            proxy!(Init1Proxy, conn)?.restart(&s.name).await?;
            Reply::Done(Done {
                message: format!("restarted {}", s.name),
            })
        }
        Call::Logs(l) => {
            let (_, mut lines) = logs_since(conn, &l.service, 0).await?;
            keep_last(&mut lines, l.lines);
            Reply::Logs(LogLines { lines })
        }
        Call::DumpConfig(_) => {
            let (generation, toml) = proxy!(Config1Proxy, conn)?.dump().await?;
            Reply::Config(ConfigText { generation, toml })
        }
        Call::ConfigPush(p) => {
            let warnings = proxy!(Config1Proxy, conn)?
                .push(&p.public, &p.secrets)
                .await?;
            Reply::Pushed(Pushed { warnings })
        }
        Call::Reload(r) => {
            let text = if r.comment.is_empty() {
                comment("reload")
            } else {
                format!("{} ({})", r.comment, cx.client)
            };
            let config = proxy!(Config1Proxy, conn)?;
            applied(config.reload(r.dry_run, r.confirm_secs, &text).await?)
        }
        Call::Confirm(_) => {
            proxy!(Config1Proxy, conn)?.confirm().await?;
            Reply::Done(Done {
                message: "confirmed".into(),
            })
        }
        Call::Rollback(r) => {
            let config = proxy!(Config1Proxy, conn)?;
            applied(config.rollback(r.to, &comment("rollback")).await?)
        }
        Call::RollbackList(_) => {
            let config = proxy!(Config1Proxy, conn)?;
            let snapshots = config
                .list_snapshots()
                .await?
                .into_iter()
                .map(|s| Snapshot {
                    index: s.index,
                    generation: s.generation,
                    time: s.time,
                    who: s.who,
                    comment: s.comment,
                    hash: s.hash,
                })
                .collect();
            Reply::Snapshots(SnapshotList {
                snapshots,
                running: config.generation().await?,
            })
        }
        Call::Backup(b) => {
            let (generation, public, secrets) = proxy!(Config1Proxy, conn)?.export().await?;
            let leases = proxy!(Dhcp1Proxy, conn)?.leases().await.unwrap_or_default();
            Reply::Backup(BackupArchive {
                generation,
                pair: Some(ConfigPair { public, secrets }),
                leases_json: serde_json::to_string_pretty(&leases).unwrap_or_default(),
                server_key: if b.server_key {
                    cx.identity.private_hex()
                } else {
                    String::new()
                },
                hostname: cx.hostname.to_string(),
            })
        }
        Call::Restore(r) => {
            let pair = r
                .pair
                .as_ref()
                .ok_or_else(|| Failure::new(ErrorCode::BadRequest, "restore without a pair"))?;
            let config = proxy!(Config1Proxy, conn)?;
            config.push(&pair.public, &pair.secrets).await?;
            let mut reply = applied(config.reload(false, 0, &comment("restore")).await?);
            // The leases after the pair: they are checked against its pools.
            if let Reply::Applied(a) = &mut reply
                && !r.leases_json.is_empty()
            {
                match restore_leases(conn, &r.leases_json).await {
                    Ok((n, skipped)) => (a.leases_restored, a.leases_skipped) = (n, skipped),
                    Err(e) => a
                        .warnings
                        .push_str(&format!("\nleases not restored: {}", e.message)),
                }
            }
            reply
        }
        Call::Diag(d) => diag(conn, &d.what).await?,
        Call::Audit(a) => {
            let limit = usize::try_from(a.limit).unwrap_or(usize::MAX);
            let entries = cx
                .audit
                .read(limit)
                .map_err(|e| Failure::new(ErrorCode::Failed, format!("read the audit log: {e}")))?;
            Reply::Audit(AuditLog { entries })
        }
        Call::Watch(_) => {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "watch streams; it is not answered once",
            ));
        }
    })
}

/// Hands a backup's leases to dhcpd; how many it took back, and the rest
/// with why.
async fn restore_leases(conn: &Connection, json: &str) -> Result<(u32, Vec<String>)> {
    let leases: Vec<DhcpLease> = serde_json::from_str(json).map_err(|e| {
        Failure::new(
            ErrorCode::BadRequest,
            format!("the backup's leases.json: {e}"),
        )
    })?;
    Ok(proxy!(Dhcp1Proxy, conn)?.restore_leases(&leases).await?)
}

/// The next lines of a service's log from line `seq` on, and the number
/// to ask for next.
pub async fn logs_since(conn: &Connection, service: &str, seq: u64) -> Result<(u64, Vec<String>)> {
    Ok(proxy!(Init1Proxy, conn)?.logs_since(service, seq).await?)
}

/// Keeps the last `n` lines (0: all).
pub fn keep_last(lines: &mut Vec<String>, n: u32) {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > 0 && lines.len() > n {
        lines.drain(..lines.len() - n);
    }
}
