//! `org.oxwrt.Dhcp1` at [`DHCP_PATH`]: the leases, their count, one
//! `LeasesChanged` signal per batch of durable lease changes, and
//! `RestoreLeases` (root and ctld only) for a backup's leases.

use std::sync::{Arc, Mutex};

use bus_schema::bus::{BusError, DHCP_PATH, DhcpLease, LeaseChange, authorize};
use tokio::sync::mpsc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::core::{Core, bus_lease, now};
use crate::serve::make_durable;
use crate::server::Change;

const IFACE: &str = "org.oxwrt.Dhcp1";

/// The served object.
#[derive(Debug)]
pub struct Dhcp1 {
    core: Arc<Mutex<Core>>,
    /// The lease changes [`publish`] announces.
    announce: mpsc::UnboundedSender<Vec<Change>>,
}

impl Dhcp1 {
    /// The object for `core`; its own lease changes go to `announce`.
    pub fn new(core: Arc<Mutex<Core>>, announce: mpsc::UnboundedSender<Vec<Change>>) -> Self {
        Self { core, announce }
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[zbus::interface(name = "org.oxwrt.Dhcp1")]
impl Dhcp1 {
    /// Every lease, by network and address.
    fn leases(&self) -> Vec<DhcpLease> {
        self.core().leases()
    }

    /// Number of leases.
    #[zbus(property)]
    fn lease_count(&self) -> u32 {
        u32::try_from(self.core().lease_count()).unwrap_or(u32::MAX)
    }

    /// Takes back a backup's leases: each one its pool would still give
    /// that client now, unless the client holds a lease there already.
    /// They are durable before the answer, and announced with the other
    /// lease changes, in order: how many were taken back, and each one
    /// left out with why.
    async fn restore_leases(
        &self,
        leases: Vec<DhcpLease>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(u32, Vec<String>), BusError> {
        authorize(conn, &header, IFACE, "RestoreLeases").await?;
        let restored = self.core().restore(&leases, now());
        if let Some(flush) = restored.flush
            && !make_durable(flush).await
        {
            return Err(BusError::Failed(
                "the restored leases are not durable: they hold until dhcpd restarts".into(),
            ));
        }
        tracing::info!(
            restored = restored.changes.len(),
            skipped = restored.skipped.len(),
            "leases restored from a backup"
        );
        let n = u32::try_from(restored.changes.len()).unwrap_or(u32::MAX);
        if !restored.changes.is_empty() {
            let _ = self.announce.send(restored.changes);
        }
        Ok((n, restored.skipped))
    }

    /// Lease changes, one signal per batch, in order.
    #[zbus(signal)]
    async fn leases_changed(
        emitter: &SignalEmitter<'_>,
        changes: Vec<LeaseChange>,
    ) -> zbus::Result<()>;
}

/// Emits the changes that arrive on `changes` until the channel closes;
/// whatever queued up meanwhile goes out as one signal. A failure is
/// logged: the leases are durable either way.
pub async fn publish(conn: zbus::Connection, mut changes: mpsc::UnboundedReceiver<Vec<Change>>) {
    while let Some(first) = changes.recv().await {
        let mut batch = first;
        while let Ok(more) = changes.try_recv() {
            batch.extend(more);
        }
        let wire: Vec<LeaseChange> = batch
            .iter()
            .map(|c| LeaseChange {
                event: c.event.as_str().to_string(),
                lease: bus_lease(&c.lease),
            })
            .collect();
        if let Err(e) = emit(&conn, wire).await {
            tracing::warn!("publish lease changes on the bus: {e}");
        }
    }
}

async fn emit(conn: &zbus::Connection, changes: Vec<LeaseChange>) -> zbus::Result<()> {
    let iface = conn
        .object_server()
        .interface::<_, Dhcp1>(DHCP_PATH)
        .await?;
    let emitter = iface.signal_emitter();
    Dhcp1::leases_changed(emitter, changes).await?;
    iface.get().await.lease_count_changed(emitter).await
}
