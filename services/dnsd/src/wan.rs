//! Following netd: the DNS servers of the WANs that are up (the active
//! one first) become the upstreams when `dns.upstreams` is empty. Read
//! at start, on every change of `org.oxwrt.Net1.Wan`, and whenever netd
//! (re)appears on the bus.

use std::net::IpAddr;
use std::sync::Arc;

use bus_schema::bus::{Net1Proxy, WanStatus};
use futures_util::StreamExt;
use tokio::sync::Mutex;

use crate::core::Core;

/// The DNS servers of the WANs that are up, the active WAN's first,
/// without repeats.
pub fn wan_dns(status: &[WanStatus]) -> Vec<IpAddr> {
    let mut up: Vec<&WanStatus> = status.iter().filter(|w| w.state == "up").collect();
    up.sort_by_key(|w| !w.active);
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in up
        .iter()
        .flat_map(|w| &w.dns)
        .filter_map(|d| d.parse().ok())
    {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Follows netd until the connection ends.
pub async fn follow(conn: zbus::Connection, core: Arc<Mutex<Core>>) {
    if let Err(e) = try_follow(&conn, &core).await {
        tracing::warn!("cannot follow netd: {e}");
    }
}

async fn try_follow(conn: &zbus::Connection, core: &Arc<Mutex<Core>>) -> zbus::Result<()> {
    let watch = Net1Proxy::new(conn).await?;
    let mut changes = watch.receive_wan_changed().await;
    let mut owners = watch.inner().receive_owner_changed().await?;
    // Fetched uncached, so a restarted netd is never answered from a cache.
    let fetch = Net1Proxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    loop {
        match fetch.wan().await {
            Ok(wan) => core.lock().await.set_wan_dns(wan_dns(&wan)),
            // netd is not on the bus (yet): keep what we have.
            Err(e) => tracing::debug!("netd's WAN state: {e}"),
        }
        tokio::select! {
            Some(_) = changes.next() => {}
            Some(_) = owners.next() => {}
            else => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wan(state: &str, active: bool, dns: &[&str]) -> WanStatus {
        WanStatus {
            state: state.into(),
            active,
            dns: dns.iter().map(|d| d.to_string()).collect(),
            ..WanStatus::default()
        }
    }

    #[test]
    fn active_wan_first_down_ones_left_out() {
        let status = [
            wan("up", false, &["10.0.0.1", "1.1.1.1"]),
            wan("down", false, &["10.9.9.9"]),
            wan("up", true, &["100.64.0.1", "1.1.1.1", "junk"]),
        ];
        let dns: Vec<String> = wan_dns(&status).iter().map(|i| i.to_string()).collect();
        assert_eq!(dns, ["100.64.0.1", "1.1.1.1", "10.0.0.1"]);
    }
}
