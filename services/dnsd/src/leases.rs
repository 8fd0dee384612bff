//! Following dhcpd: its whole lease table (`org.oxwrt.Dhcp1.Leases()`) at
//! start and whenever dhcpd's name gets a new owner, and each
//! `LeasesChanged` signal in between. Without dhcpd on the bus there are
//! simply no dynamic names.

use std::sync::Arc;

use bus_schema::bus::Dhcp1Proxy;
use futures_util::StreamExt;
use tokio::sync::Mutex;

use crate::core::Core;

/// Follows dhcpd until the connection ends.
pub async fn follow(conn: zbus::Connection, core: Arc<Mutex<Core>>) {
    if let Err(e) = try_follow(&conn, &core).await {
        tracing::warn!("cannot follow dhcpd: {e}");
    }
}

async fn fetch(proxy: &Dhcp1Proxy<'_>, core: &Mutex<Core>) {
    match proxy.leases().await {
        Ok(leases) => {
            tracing::info!(leases = leases.len(), "leases from dhcpd");
            core.lock().await.set_leases(leases);
        }
        Err(e) => tracing::debug!("dhcpd's leases: {e}"),
    }
}

async fn try_follow(conn: &zbus::Connection, core: &Arc<Mutex<Core>>) -> zbus::Result<()> {
    let proxy = Dhcp1Proxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    // Subscribed before the first fetch, so no change falls in between.
    let mut changes = proxy.receive_leases_changed().await?;
    let mut owners = proxy.inner().receive_owner_changed().await?;
    fetch(&proxy, core).await;
    loop {
        tokio::select! {
            Some(signal) = changes.next() => match signal.args() {
                Ok(args) => core.lock().await.lease_changes(args.changes),
                Err(e) => tracing::debug!("LeasesChanged: {e}"),
            },
            Some(owner) = owners.next() => {
                if owner.is_some() {
                    fetch(&proxy, core).await;
                }
            }
            else => return Ok(()),
        }
    }
}
