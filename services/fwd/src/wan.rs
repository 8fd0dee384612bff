//! Following netd: every change of `org.oxwrt.Net1.Wan` (and netd
//! appearing on the bus) re-renders the firewall. Bursts are coalesced:
//! fwd waits for [`QUIET`] without events, at most [`MAX_DELAY`] after the
//! first, so a flapping link costs at most one reload per second.

use std::sync::Arc;
use std::time::Duration;

use bus_schema::bus::Net1Proxy;
use futures_util::StreamExt;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::core::{Core, Outcome};

/// Quiet time that ends a burst of events.
pub const QUIET: Duration = Duration::from_millis(200);
/// Longest wait after the first event of a burst.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// After a first event: waits until no event came for `quiet`, or `max`
/// passed since the first, consuming the events on the way. Returns false
/// when the sender is gone.
pub async fn settle(rx: &mut mpsc::Receiver<()>, quiet: Duration, max: Duration) -> bool {
    let deadline = Instant::now() + max;
    loop {
        let wait = quiet.min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            return true;
        }
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(())) => {}
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

/// Sends an event for each WAN change and each change of netd's owner.
async fn watch(conn: zbus::Connection, events: mpsc::Sender<()>) -> zbus::Result<()> {
    let proxy = Net1Proxy::new(&conn).await?;
    let mut changes = proxy.receive_wan_changed().await;
    let mut owners = proxy.inner().receive_owner_changed().await?;
    // The state at start, whether or not netd is there yet.
    let _ = events.try_send(());
    loop {
        tokio::select! {
            Some(_) = changes.next() => {}
            Some(_) = owners.next() => {}
            else => return Ok(()),
        }
        // A full channel already holds an event: nothing is lost.
        let _ = events.try_send(());
    }
}

/// Follows netd until the connection ends; each settled burst fetches the
/// WAN state and applies it, publishing what was committed.
pub async fn follow(conn: zbus::Connection, core: Arc<Mutex<Core>>) {
    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(watch(conn.clone(), tx));
    // Fetched uncached, so a restarted netd is never answered from a cache.
    let fetch = match Net1Proxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot follow netd: {e}");
            return;
        }
    };
    while rx.recv().await.is_some() {
        let open = settle(&mut rx, QUIET, MAX_DELAY).await;
        match fetch.wan().await {
            Ok(wan) => {
                let committed = {
                    let mut core = core.lock().await;
                    match core.set_wan(&wan) {
                        Ok(Outcome::Committed { micros }) => {
                            tracing::info!(micros, "WAN changed: firewall re-applied");
                            Some(core.stats().clone())
                        }
                        Ok(_) => None,
                        Err(e) => {
                            tracing::warn!("WAN changed, re-applying failed: {e}");
                            None
                        }
                    }
                };
                if let Some(stats) = committed {
                    crate::bus::publish(&conn, &stats).await;
                }
            }
            // netd is not on the bus (yet): keep what is applied.
            Err(e) => tracing::debug!("netd's WAN state: {e}"),
        }
        if !open {
            break;
        }
    }
    watcher.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_settles_after_the_quiet_time() {
        let (tx, mut rx) = mpsc::channel(16);
        let start = Instant::now();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(()).await;
            }
            // Keep the sender alive past the quiet time.
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        assert!(settle(&mut rx, QUIET, MAX_DELAY).await);
        // Last event at 150 ms, then 200 ms of quiet.
        assert_eq!(start.elapsed(), Duration::from_millis(350));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_link_is_bounded_by_the_longest_wait() {
        let (tx, mut rx) = mpsc::channel(16);
        let start = Instant::now();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        assert!(settle(&mut rx, QUIET, MAX_DELAY).await);
        assert_eq!(start.elapsed(), MAX_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_channel_ends_the_wait() {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        drop(tx);
        assert!(!settle(&mut rx, QUIET, MAX_DELAY).await);
    }
}
