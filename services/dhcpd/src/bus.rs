//! `org.oxwrt.Dhcp1` at [`DHCP_PATH`]: the leases, their count, and one
//! `LeasesChanged` signal per batch of durable lease changes. Read-only.

use std::sync::{Arc, Mutex};

use bus_schema::bus::{DHCP_PATH, DhcpLease, LeaseChange};
use tokio::sync::mpsc;
use zbus::object_server::SignalEmitter;

use crate::core::{Core, bus_lease};
use crate::server::Change;

/// The served object.
#[derive(Debug)]
pub struct Dhcp1 {
    core: Arc<Mutex<Core>>,
}

impl Dhcp1 {
    /// The object for `core`.
    pub fn new(core: Arc<Mutex<Core>>) -> Self {
        Self { core }
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
