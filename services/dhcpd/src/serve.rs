//! The daemon's two loops: deciding on received datagrams in batches
//! (group commit), and the periodic tick that expires leases and opens
//! the sockets of devices that appeared or were replaced; [`Running`]
//! starts both on a core.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::core::{Core, now};
use crate::io::{self, Incoming, Outgoing, Sockets};
use crate::journal::{Compaction, Flush, Journal, JournalError};
use crate::raw::RawSender;
use crate::server::Change;

/// Datagrams waiting to be decided; more are dropped (clients retry).
const QUEUE: usize = 8192;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The lease journal cannot be read or rewritten.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The packet socket cannot be opened (CAP_NET_RAW missing).
    #[error("open the packet socket: {0}")]
    PacketSocket(#[source] std::io::Error),
}

/// The running server, serving no pool until its core is applied a
/// config: the core, its two loops (stopped on drop), and the lease
/// changes for whoever publishes them (dropping the receiver is fine).
#[derive(Debug)]
pub struct Running {
    /// The shared state.
    pub core: Arc<Mutex<Core>>,
    /// Lease changes, one batch per message.
    pub changes: Option<mpsc::UnboundedReceiver<Vec<Change>>>,
    /// Where other durable lease changes (a restore's) join the loops'
    /// batches, in order.
    pub announce: mpsc::UnboundedSender<Vec<Change>>,
    tasks: [JoinHandle<()>; 2],
}

impl Running {
    /// Reads the journal in `dir`, opens the packet socket and starts the
    /// loops (on the current tokio runtime).
    pub fn start(dir: &Path) -> Result<Running, StartError> {
        let (journal, leases) = Journal::open(dir)?;
        tracing::info!(leases = leases.len(), "lease journal read");
        let raw = RawSender::open().map_err(StartError::PacketSocket)?;
        let (queue_tx, queue_rx) = mpsc::channel(QUEUE);
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let core = Arc::new(Mutex::new(Core::new(
            journal,
            leases,
            Sockets::new(queue_tx),
        )));
        let tasks = [
            tokio::spawn(decide(core.clone(), raw, queue_rx, changes_tx.clone())),
            tokio::spawn(tick(core.clone(), changes_tx.clone())),
        ];
        Ok(Running {
            core,
            changes: Some(changes),
            announce: changes_tx,
            tasks,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Most datagrams decided (and committed) together.
const MAX_BATCH: usize = 512;
/// Under load, the least time between two flushes (see [`decide`]): at
/// most this much is added to an ACK's latency.
pub const COMMIT_DELAY: Duration = Duration::from_millis(2);
/// How often leases are expired and missing devices tried again.
pub const TICK: Duration = Duration::from_secs(2);

/// Locks the core; a panic while holding it cannot leave the lease table
/// half-changed in a way later batches could not handle, so a poisoned
/// lock is taken over.
pub fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decides on every datagram from `queue`: whatever has queued up is one
/// batch, made durable with one write and one fdatasync
/// ([`make_durable`]) before its ACKs are sent (its OFFERs and NAKs,
/// which promise nothing, go before the fdatasync). Lease changes go to
/// `changes` for the bus.
///
/// Group commit under load: a batch that comes within [`COMMIT_DELAY`]
/// of the last flush waits for the rest of that delay and takes in what
/// arrives meanwhile, so a busy server syncs at most once per delay
/// however fast the disk, and answers in small regular bursts. An idle
/// server answers at once.
pub async fn decide(
    core: Arc<Mutex<Core>>,
    raw: RawSender,
    mut queue: mpsc::Receiver<Incoming>,
    changes: mpsc::UnboundedSender<Vec<Change>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_flush: Option<tokio::time::Instant> = None;
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Some(at) = last_flush
            && at.elapsed() < COMMIT_DELAY
        {
            tokio::time::sleep_until(at + COMMIT_DELAY).await;
            while batch.len() < MAX_BATCH
                && let Ok(incoming) = queue.try_recv()
            {
                batch.push(incoming);
            }
        }
        let mut decided = lock(&core).decide(std::mem::take(&mut batch), now());
        send(&raw, &decided.early).await;
        if let Some(flush) = decided.flush.take() {
            last_flush = Some(tokio::time::Instant::now());
            if !make_durable(flush).await {
                tracing::error!("withholding this batch's ACKs");
                decided.not_durable();
            }
        }
        send(&raw, &decided.acks).await;
        if !decided.changes.is_empty() {
            let _ = changes.send(decided.changes);
        }
    }
}

/// Sends `replies` in order; a failure is logged at debug level (the
/// client retries).
async fn send(raw: &RawSender, replies: &[Outgoing]) {
    for out in replies {
        if let Err(e) = io::send(raw, out).await {
            tracing::debug!("send reply: {e}");
        }
    }
}

/// Runs `flush` on a blocking thread without the core's lock (datagrams
/// keep being received and the bus keeps answering meanwhile); `false`
/// means the flushed changes are not durable.
pub async fn make_durable(flush: Flush) -> bool {
    blocking(move || flush.run()).await.is_some()
}

/// Rewrites the journal with the live leases while the server goes on:
/// only the snapshot is taken under the lock, the writing and syncing run
/// on a blocking thread.
async fn compact(core: &Mutex<Core>, compaction: Compaction) {
    let written = blocking(move || compaction.run()).await;
    let install = lock(core).compacted(written);
    if let Some(flush) = install {
        make_durable(flush).await;
    }
}

/// Runs `job` on a blocking thread; its failure is logged.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Option<T> {
    match tokio::task::spawn_blocking(job).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::error!("{e}");
            None
        }
        Err(e) => {
            tracing::error!("lease journal: {e}");
            None
        }
    }
}

/// Every [`TICK`]: expires leases, serves devices that came back and
/// compacts the journal when it is due.
pub async fn tick(core: Arc<Mutex<Core>>, changes: mpsc::UnboundedSender<Vec<Change>>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let (expired, flush) = {
            let mut core = lock(&core);
            core.serve_devices();
            core.expire(now())
        };
        if let Some(flush) = flush {
            make_durable(flush).await;
        }
        if !expired.is_empty() {
            let _ = changes.send(expired);
        }
        let compaction = lock(&core).compaction();
        if let Some(compaction) = compaction {
            compact(&core, compaction).await;
        }
    }
}
