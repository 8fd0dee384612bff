//! configd on the bus: `org.oxwrt.Config1`, and the daemons reached
//! through their `org.oxwrt.Daemon1`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bus_schema::bus::policy::{PRINCIPALS, Principal};
use bus_schema::bus::{
    ApplyReport, BusError, CONFIG_PATH, Daemon1Proxy, SnapshotInfo, authorize, caller_uid,
};
use bus_schema::config::{SECTIONS, Sections};
use tokio::sync::Mutex;
use zbus::Connection;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::core::{Announce, Core, Request};
use crate::store::{Pair, Store};
use crate::transaction::Participants;

const IFACE: &str = "org.oxwrt.Config1";

/// What readers see without waiting for a running transaction.
#[derive(Debug, Clone)]
struct Published {
    generation: u64,
    hash: String,
    confirm_deadline: u64,
    redacted: Sections,
    exposed: Sections,
    pair: Pair,
    dump: String,
}

impl Published {
    fn of(core: &Core) -> Self {
        let g = core.running();
        Self {
            generation: g.number,
            hash: g.hash.clone(),
            confirm_deadline: core.confirm_deadline(),
            redacted: g.redacted.clone(),
            exposed: g.exposed.clone(),
            pair: g.pair.clone(),
            dump: bus_schema::config::dump_redacted(&g.config).unwrap_or_default(),
        }
    }
}

/// The daemons, through the bus.
#[derive(Debug, Clone)]
pub struct BusParticipants {
    conn: Connection,
}

impl BusParticipants {
    async fn proxy(&self, name: &'static str) -> Result<Daemon1Proxy<'static>, String> {
        Daemon1Proxy::builder(&self.conn)
            .destination(name)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| e.to_string())
    }
}

fn daemon_error(e: zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(_, Some(text), _) => text,
        e => e.to_string(),
    }
}

impl Participants for BusParticipants {
    async fn online(&self, name: &'static str) -> bool {
        let Ok(dbus) = zbus::fdo::DBusProxy::new(&self.conn).await else {
            return false;
        };
        match name.try_into() {
            Ok(n) => dbus.name_has_owner(n).await.unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn check(&self, name: &'static str, generation: u64, s: Sections) -> Result<(), String> {
        let s: HashMap<String, String> = s.into_iter().collect();
        self.proxy(name)
            .await?
            .check(generation, s)
            .await
            .map_err(daemon_error)
    }

    async fn apply(&self, name: &'static str, generation: u64, s: Sections) -> Result<(), String> {
        let s: HashMap<String, String> = s.into_iter().collect();
        self.proxy(name)
            .await?
            .apply(generation, s)
            .await
            .map_err(daemon_error)
    }
}

/// `org.oxwrt.Config1`, served at [`CONFIG_PATH`].
#[derive(Debug, Clone)]
pub struct Config1 {
    core: Arc<Mutex<Core>>,
    published: Arc<RwLock<Published>>,
    store: Store,
}

impl Config1 {
    /// Wraps the core.
    pub fn new(core: Core) -> Self {
        let published = Arc::new(RwLock::new(Published::of(&core)));
        Self {
            store: core.store().clone(),
            core: Arc::new(Mutex::new(core)),
            published,
        }
    }

    /// Converges every daemon to the running generation (after start-up).
    pub async fn converge(&self, conn: &Connection) {
        let core = self.core.lock().await;
        let errors = core.converge(&BusParticipants { conn: conn.clone() }).await;
        for e in errors {
            tracing::warn!("converge {e}");
        }
    }

    /// Publishes the core's state and announces a new generation.
    async fn publish(&self, conn: &Connection, core: &Core, announce: Option<Announce>) {
        let p = Published::of(core);
        if let Ok(mut w) = self.published.write() {
            *w = p;
        }
        if let Ok(emitter) = SignalEmitter::new(conn, CONFIG_PATH) {
            let _ = self.generation_changed(&emitter).await;
            let _ = self.hash_changed(&emitter).await;
            let _ = self.confirm_deadline_changed(&emitter).await;
            if let Some(a) = announce {
                let _ = Self::new_generation(&emitter, a.generation, &a.hash, a.changed).await;
            }
        }
    }

    /// The transaction lock, or `Busy`.
    fn lock(&self) -> Result<tokio::sync::MutexGuard<'_, Core>, BusError> {
        self.core
            .try_lock()
            .map_err(|_| BusError::Busy("another transaction is running".into()))
    }

    /// Arms the revert of a provisional generation.
    fn arm_confirm_timer(&self, conn: &Connection, core: &Core) {
        let Some((generation, after)) = core.time_to_deadline() else {
            return;
        };
        let (this, conn) = (self.clone(), conn.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut core = this.core.lock().await;
            let participants = BusParticipants { conn: conn.clone() };
            match core.expire(&participants, generation).await {
                Ok(Some(announce)) => this.publish(&conn, &core, Some(announce)).await,
                Ok(None) => {}
                Err(e) => tracing::error!("revert of generation {generation}: {e}"),
            }
        });
    }

    async fn finish(
        &self,
        conn: &Connection,
        core: &Core,
        result: Result<(ApplyReport, Option<Announce>), BusError>,
    ) -> Result<ApplyReport, BusError> {
        match result {
            Ok((report, announce)) => {
                if announce.is_some() {
                    self.publish(conn, core, announce).await;
                    self.arm_confirm_timer(conn, core);
                }
                Ok(report)
            }
            Err(e @ BusError::ApplyFailed(_)) => {
                // The daemons were reverted: republish the last-known-good
                // generation so that any daemon not at it converges.
                let g = core.running();
                let all = SECTIONS.iter().map(|s| s.to_string()).collect();
                self.publish(
                    conn,
                    core,
                    Some(Announce {
                        generation: g.number,
                        hash: g.hash.clone(),
                        changed: all,
                    }),
                )
                .await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether the sender owns a name entitled to `section`'s secrets.
async fn entitled(conn: &Connection, header: &Header<'_>, section: &str) -> bool {
    let Some(sender) = header.sender() else {
        return false;
    };
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return false;
    };
    let candidates = PRINCIPALS
        .iter()
        .filter(|p: &&Principal| p.secret_sections.contains(&section));
    for p in candidates {
        let Ok(name) = p.name.try_into() else {
            continue;
        };
        if let Ok(owner) = dbus.get_name_owner(name).await {
            if owner.as_str() == sender.as_str() {
                return true;
            }
        }
    }
    false
}

async fn who(conn: &Connection, header: &Header<'_>) -> String {
    match caller_uid(conn, header).await {
        Ok(uid) => format!("uid {uid}"),
        Err(_) => "unknown".into(),
    }
}

#[zbus::interface(name = "org.oxwrt.Config1")]
impl Config1 {
    #[zbus(property)]
    fn generation(&self) -> u64 {
        self.published.read().map_or(0, |p| p.generation)
    }

    #[zbus(property)]
    fn hash(&self) -> String {
        self.published
            .read()
            .map_or_else(|_| String::new(), |p| p.hash.clone())
    }

    #[zbus(property)]
    fn confirm_deadline(&self) -> u64 {
        self.published.read().map_or(0, |p| p.confirm_deadline)
    }

    async fn get_section(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
        name: &str,
    ) -> Result<(u64, String), BusError> {
        let expose = entitled(conn, &header, name).await;
        let p = self
            .published
            .read()
            .map_err(|_| BusError::Failed("state lock poisoned".into()))?;
        let from = if expose { &p.exposed } else { &p.redacted };
        let json = from.get(name).ok_or_else(|| {
            BusError::NotFound(format!(
                "no section {name:?} (sections: {})",
                SECTIONS.join(", ")
            ))
        })?;
        Ok((p.generation, json.clone()))
    }

    /// The running config as TOML with defaults filled in and every
    /// secret redacted (what `oxctl dump-config` prints offline).
    async fn dump(&self) -> Result<(u64, String), BusError> {
        let p = self
            .published
            .read()
            .map_err(|_| BusError::Failed("state lock poisoned".into()))?;
        Ok((p.generation, p.dump.clone()))
    }

    /// The running generation's pair, secrets included: for backups.
    async fn export(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(u64, String, String), BusError> {
        authorize(conn, &header, IFACE, "Export").await?;
        let p = self
            .published
            .read()
            .map_err(|_| BusError::Failed("state lock poisoned".into()))?;
        Ok((p.generation, p.pair.public.clone(), p.pair.secrets.clone()))
    }

    async fn reload(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
        dry_run: bool,
        confirm_secs: u32,
        comment: &str,
    ) -> Result<ApplyReport, BusError> {
        authorize(conn, &header, IFACE, "Reload").await?;
        let request = Request {
            dry_run,
            confirm_secs,
            who: who(conn, &header).await,
            comment: comment.to_string(),
        };
        let mut core = self.lock()?;
        let participants = BusParticipants { conn: conn.clone() };
        let result = core.reload(&participants, &request).await;
        self.finish(conn, &core, result).await
    }

    async fn push(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
        public: String,
        secrets: String,
    ) -> Result<String, BusError> {
        authorize(conn, &header, IFACE, "Push").await?;
        self.lock()?.push(Pair { public, secrets })
    }

    async fn confirm(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        authorize(conn, &header, IFACE, "Confirm").await?;
        let mut core = self.lock()?;
        core.confirm()?;
        self.publish(conn, &core, None).await;
        Ok(())
    }

    async fn rollback(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
        to: u32,
        comment: &str,
    ) -> Result<ApplyReport, BusError> {
        authorize(conn, &header, IFACE, "Rollback").await?;
        let request = Request {
            dry_run: false,
            confirm_secs: 0,
            who: who(conn, &header).await,
            comment: comment.to_string(),
        };
        let mut core = self.lock()?;
        let participants = BusParticipants { conn: conn.clone() };
        let result = core.rollback(&participants, to, &request).await;
        self.finish(conn, &core, result).await
    }

    async fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>, BusError> {
        let running = self.published.read().map_or(0, |p| p.generation);
        crate::core::list_snapshots(&self.store, running)
            .map_err(|e| BusError::Failed(e.to_string()))
    }

    #[zbus(signal)]
    async fn new_generation(
        emitter: &SignalEmitter<'_>,
        generation: u64,
        hash: &str,
        changed: Vec<String>,
    ) -> zbus::Result<()>;
}
