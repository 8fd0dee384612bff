//! `org.oxwrt.Firewall1` at [`FIREWALL_PATH`]: the committed ruleset, how
//! many batches were committed and how long the last took, and the
//! counters of the rules with `counter = true`. Read-only; the properties
//! signal their changes.

use std::sync::Arc;

use bus_schema::bus::{BusError, FIREWALL_PATH, RuleCounter};
use tokio::sync::Mutex;

use crate::core::{Core, Stats};

/// The served object.
#[derive(Debug)]
pub struct Firewall1 {
    core: Arc<Mutex<Core>>,
    stats: Stats,
}

impl Firewall1 {
    /// The object for `core`, with nothing published yet.
    pub fn new(core: Arc<Mutex<Core>>) -> Self {
        Self {
            core,
            stats: Stats::default(),
        }
    }
}

#[zbus::interface(name = "org.oxwrt.Firewall1")]
impl Firewall1 {
    /// fwd's table in nft syntax.
    #[zbus(property)]
    fn ruleset(&self) -> String {
        self.stats.ruleset.clone()
    }

    /// Batches committed since fwd started.
    #[zbus(property)]
    fn apply_count(&self) -> u64 {
        self.stats.apply_count
    }

    /// Duration of the last commit, in microseconds.
    #[zbus(property)]
    fn last_apply_micros(&self) -> u64 {
        self.stats.last_apply_micros
    }

    /// Counters of the rules with `counter = true`, from the kernel.
    async fn counters(&self) -> Result<Vec<RuleCounter>, BusError> {
        self.core
            .lock()
            .await
            .counters()
            .map_err(|e| BusError::Failed(e.to_string()))
    }
}

/// Publishes `stats`, signalling each property that changed. A failure
/// is logged: the firewall is applied either way. Call it without holding
/// the core's lock (`Counters()` holds this object while it waits for the
/// core); stats older than the published ones are ignored, so two
/// publishers racing cannot go back in time.
pub async fn publish(conn: &zbus::Connection, stats: &Stats) {
    if let Err(e) = try_publish(conn, stats).await {
        tracing::warn!("publish on the bus: {e}");
    }
}

async fn try_publish(conn: &zbus::Connection, stats: &Stats) -> zbus::Result<()> {
    let iface = conn
        .object_server()
        .interface::<_, Firewall1>(FIREWALL_PATH)
        .await?;
    let mut fw = iface.get_mut().await;
    if stats.apply_count < fw.stats.apply_count {
        return Ok(());
    }
    let emitter = iface.signal_emitter();
    let old = std::mem::replace(&mut fw.stats, stats.clone());
    if old.ruleset != stats.ruleset {
        fw.ruleset_changed(emitter).await?;
    }
    if old.apply_count != stats.apply_count {
        fw.apply_count_changed(emitter).await?;
    }
    if old.last_apply_micros != stats.last_apply_micros {
        fw.last_apply_micros_changed(emitter).await?;
    }
    Ok(())
}
