//! The kernel's link and address events, coalesced: a burst (a bridge
//! coming up touches several links and addresses at once) becomes one
//! notification after 100 ms of quiet, or after 1 s of continuous events.

use std::time::Duration;

use futures_util::StreamExt;
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Quiet time that ends a burst.
const QUIET: Duration = Duration::from_millis(100);
/// Longest a burst is held back.
const MAX_HOLD: Duration = Duration::from_secs(1);

/// Subscribes to link and address changes; the receiver gets `()` once
/// per burst.
pub fn start() -> std::io::Result<mpsc::Receiver<()>> {
    let (connection, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    tokio::spawn(connection);
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while messages.next().await.is_some() {
            let start = Instant::now();
            loop {
                let deadline = (Instant::now() + QUIET).min(start + MAX_HOLD);
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(Some(_)) if Instant::now() < start + MAX_HOLD => continue,
                    Ok(None) => return,
                    _ => break,
                }
            }
            // Full channel: a notification is already pending.
            if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                return;
            }
        }
    });
    Ok(rx)
}
