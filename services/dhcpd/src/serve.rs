//! The daemon's two loops: deciding on received datagrams in batches
//! (group commit), and the periodic tick that expires leases and opens
//! the sockets of devices that appeared or were replaced.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::core::{Core, now};
use crate::io::{self, Incoming};
use crate::raw::RawSender;
use crate::server::Change;

/// Most datagrams decided (and committed) together.
const MAX_BATCH: usize = 512;
/// How often leases are expired and missing devices tried again.
pub const TICK: Duration = Duration::from_secs(2);

/// Locks the core; a panic while holding it cannot leave the lease table
/// half-changed in a way later batches could not handle, so a poisoned
/// lock is taken over.
pub fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decides on every datagram from `queue`: whatever has queued up is one
/// batch, made durable with one write and one fdatasync before its
/// replies are sent. The flush runs on a blocking thread without the
/// core's lock, so datagrams keep being received (into the queue) and
/// the bus keeps answering meanwhile. Lease changes go to `changes` for
/// the bus.
pub async fn decide(
    core: Arc<Mutex<Core>>,
    raw: RawSender,
    mut queue: mpsc::Receiver<Incoming>,
    changes: mpsc::UnboundedSender<Vec<Change>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut decided = lock(&core).decide(std::mem::take(&mut batch), now());
        if let Some(flush) = decided.flush.take() {
            let flushed = tokio::task::spawn_blocking(move || flush.run()).await;
            match flushed {
                Ok(Ok(())) => lock(&core).flushed(),
                Ok(Err(e)) => {
                    tracing::error!("{e}; withholding this batch's ACKs");
                    decided.not_durable();
                }
                Err(e) => {
                    tracing::error!("lease journal flush: {e}; withholding this batch's ACKs");
                    decided.not_durable();
                }
            }
        }
        for out in &decided.replies {
            if let Err(e) = io::send(&raw, out).await {
                tracing::debug!("send reply: {e}");
            }
        }
        if !decided.changes.is_empty() {
            let _ = changes.send(decided.changes);
        }
    }
}

/// Every [`TICK`]: expires leases and serves devices that came back.
pub async fn tick(core: Arc<Mutex<Core>>, changes: mpsc::UnboundedSender<Vec<Change>>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let expired = {
            let mut core = lock(&core);
            core.serve_devices();
            core.expire(now())
        };
        if !expired.is_empty() {
            let _ = changes.send(expired);
        }
    }
}
