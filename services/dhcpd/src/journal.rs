//! The lease database on disk: an append-only journal of lease changes,
//! one JSON line each, made durable in groups.
//!
//! The daemon appends every change of a batch of decisions, then makes
//! them durable once ([`Journal::take`], then [`Flush::run`] away from the
//! lock and the event loop): one write and one `fdatasync` for the whole
//! batch, after which the batch's ACKs may
//! go out (group commit). A crash loses at most changes whose ACK was
//! never sent; a torn last line is ignored when the journal is read back.
//!
//! When the journal has grown to several times the live leases, it is
//! rewritten whole, so its size stays bounded: only the live leases,
//! atomically (temporary file, fsync, rename, fsync of the directory),
//! and without stopping the server. A snapshot of the table is taken
//! under the lock ([`Journal::compaction`]); it is written and synced
//! away from the lock ([`Compaction::run`]) while changes keep being
//! appended to the old file and copied aside; then the copies are added
//! to the new file, which takes the appends from then on
//! ([`Journal::install`]). Until the new file has been synced and renamed
//! over the old one, which every [`Flush`] of the new file does before it
//! reports success, the old file still holds every change that was ever
//! acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::leases::{Lease, Leases, Mac};
use crate::server::Change;

/// The journal's file name in dhcpd's state directory.
pub const FILE: &str = "leases.journal";
/// A compacted journal's name until it replaces [`FILE`].
const NEXT: &str = ".leases.journal.next";
/// Compaction waits for at least this many records, whatever the table.
const MIN_RECORDS_TO_COMPACT: usize = 4096;

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading the journal failed.
    #[error("read lease journal {path}: {source}")]
    Read {
        /// The journal.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Appending or syncing failed: the batch is not durable.
    #[error("write lease journal {path}: {source}")]
    Write {
        /// The journal.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Rewriting the journal failed (the old one is still whole).
    #[error("compact lease journal {path}: {source}")]
    Compact {
        /// The journal.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Record {
    /// The lease holds (granted or renewed).
    Hold(Stored),
    /// The lease ended.
    End(Stored),
}

/// A lease as the journal stores it.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    network: String,
    mac: Mac,
    ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    expires: u64,
}

impl From<&Lease> for Stored {
    fn from(l: &Lease) -> Self {
        Self {
            network: l.network.clone(),
            mac: l.mac,
            ip: l.ip,
            hostname: l.hostname.clone(),
            expires: l.expires,
        }
    }
}

impl From<Stored> for Lease {
    fn from(s: Stored) -> Self {
        Self {
            mac: s.mac,
            ip: s.ip,
            hostname: s.hostname,
            expires: s.expires,
            network: s.network,
        }
    }
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: Arc<Generation>,
    /// Lines appended since the last commit.
    pending: Vec<u8>,
    /// Records in the file (compaction counts from here).
    records: usize,
    /// While a compaction is written: the lines written since its
    /// snapshot, for the new file.
    copied: Option<Copied>,
}

/// Lines for a compacted file that its snapshot does not hold.
#[derive(Debug, Default)]
struct Copied {
    lines: Vec<u8>,
    /// `Journal::records` when the snapshot was taken.
    since: usize,
}

/// The file appends go to.
#[derive(Debug)]
struct Generation {
    file: File,
    /// The journal's directory.
    dir: PathBuf,
    /// Whether the file is a compaction's that has not replaced the
    /// journal yet (it is still at [`NEXT`]).
    pending: Mutex<bool>,
}

impl Generation {
    fn new(file: File, dir: PathBuf, pending: bool) -> Arc<Self> {
        Arc::new(Self {
            file,
            dir,
            pending: Mutex::new(pending),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, bool> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Renames the file over the journal (and syncs the directory)
    /// unless that is done; its lines must be synced first. One flush
    /// does it, others of the same file wait for it.
    fn install(&self) -> io::Result<()> {
        let mut pending = self.pending();
        if *pending {
            oxwrt_daemon::persist::replace(&self.dir, NEXT, FILE)?;
            *pending = false;
        }
        Ok(())
    }
}

impl Journal {
    /// Opens (creating) the journal in `dir` and returns it with the
    /// leases it holds. Lines that do not parse (a torn last write, or
    /// damage) are skipped with a warning. The journal is compacted at
    /// once, so it starts with only the live leases and no torn tail.
    pub fn open(dir: &Path) -> Result<(Self, Leases), JournalError> {
        let path = dir.join(FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(JournalError::Read { path, source }),
        };
        let leases = replay(&text, &path);
        let file = compact(dir, &leases)?;
        let journal = Self {
            dir: dir.to_path_buf(),
            file: Generation::new(file, dir.to_path_buf(), false),
            pending: Vec::new(),
            records: leases.len(),
            copied: None,
        };
        Ok((journal, leases))
    }

    /// Queues `change` for the next commit.
    pub fn append(&mut self, change: &Change) {
        let stored = Stored::from(&change.lease);
        let record = if change.event.holds() {
            Record::Hold(stored)
        } else {
            Record::End(stored)
        };
        // Serializing plain data into a Vec cannot fail.
        if serde_json::to_writer(&mut self.pending, &record).is_ok() {
            self.pending.push(b'\n');
            self.records += 1;
        }
    }

    /// Whether changes wait for a flush.
    #[cfg(test)]
    fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the queued changes to the file (into the page cache) and
    /// returns the [`Flush`] that makes them durable, which may run on
    /// another thread; `None` when nothing is queued. Writing here, in
    /// the order the changes were made, keeps two flushes that run at
    /// once (a batch's and the tick's expiries) from landing in the
    /// wrong order: an expiry written after the new grant of the same
    /// address would drop that lease on replay.
    pub fn take(&mut self) -> Option<Flush> {
        if self.pending.is_empty() {
            return None;
        }
        let written = (&self.file.file).write_all(&self.pending);
        if let Some(copied) = &mut self.copied {
            copied.lines.extend_from_slice(&self.pending);
        }
        self.pending.clear();
        Some(self.flush(written))
    }

    fn flush(&self, written: io::Result<()>) -> Flush {
        Flush {
            file: self.file.clone(),
            written,
        }
    }

    /// When the file has grown well past `live` (the table now) and no
    /// compaction is under way: a snapshot of `live` to write as the new
    /// file ([`Compaction::run`], then [`Journal::install`]). Lines
    /// written from now on are kept for the new file too.
    pub fn compaction(&mut self, live: &Leases) -> Option<Compaction> {
        let busy = self.copied.is_some() || *self.file.pending();
        if busy || self.records < MIN_RECORDS_TO_COMPACT.max(live.len().saturating_mul(4)) {
            return None;
        }
        self.copied = Some(Copied {
            lines: Vec::new(),
            since: self.records,
        });
        Some(Compaction {
            dir: self.dir.clone(),
            leases: live.iter().map(Stored::from).collect(),
        })
    }

    /// Takes the file `written` by a [`Compaction`]: the lines written
    /// since its snapshot are added to it and appends go to it from now
    /// on. The returned flush syncs it and renames it over the journal;
    /// every later flush does that too until one has. A failed compaction
    /// (`None`) leaves the old file in use, to be compacted later.
    pub fn install(&mut self, written: Option<Compacted>) -> Option<Flush> {
        let copied = self.copied.take().unwrap_or_default();
        let compacted = written?;
        let added = self.records.saturating_sub(copied.since);
        // Without its copies the new file must never replace the old one.
        if let Err(source) = (&compacted.file).write_all(&copied.lines) {
            let path = self.dir.join(NEXT);
            tracing::error!("{}", JournalError::Compact { path, source });
            return None;
        }
        self.file = Generation::new(compacted.file, self.dir.clone(), true);
        self.records = compacted.records + added;
        Some(self.flush(Ok(())))
    }
}

/// A snapshot of the live leases to write as a new journal.
#[derive(Debug)]
pub struct Compaction {
    dir: PathBuf,
    leases: Vec<Stored>,
}

/// A new journal, synced, not yet in place.
#[derive(Debug)]
pub struct Compacted {
    file: File,
    records: usize,
}

impl Compaction {
    /// Writes the snapshot to a new file beside the journal and syncs it
    /// (the slow part, run away from the lock).
    pub fn run(self) -> Result<Compacted, JournalError> {
        let records = self.leases.len();
        let text = lines(self.leases.into_iter());
        oxwrt_daemon::persist::write_synced(&self.dir, NEXT, &text)
            .map(|file| Compacted { file, records })
            .map_err(|source| JournalError::Compact {
                path: self.dir.join(NEXT),
                source,
            })
    }
}

/// Changes written to the journal, not yet durable.
#[derive(Debug)]
pub struct Flush {
    file: Arc<Generation>,
    /// How writing them went.
    written: io::Result<()>,
}

impl Flush {
    /// One fdatasync (it also covers whatever was written before), and
    /// the file put in place if it is a compaction's.
    pub fn run(self) -> Result<(), JournalError> {
        self.written
            .and_then(|()| self.file.file.sync_data())
            .and_then(|()| self.file.install())
            .map_err(|source| JournalError::Write {
                path: self.file.dir.join(FILE),
                source,
            })
    }
}

/// The leases a journal's text describes, in order.
fn replay(text: &[u8], path: &Path) -> Leases {
    let mut leases = Leases::new();
    let mut skipped = 0usize;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Record>(line) {
            Ok(Record::Hold(s)) => leases.insert(s.into()),
            Ok(Record::End(s)) => {
                let _ = leases.release(&s.network, &s.mac, s.ip);
            }
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "{}: skipped lines that do not parse (a torn last write or damage)",
            path.display()
        );
    }
    leases
}

/// Rewrites the journal with `leases` only and returns it open for
/// appending.
fn compact(dir: &Path, leases: &Leases) -> Result<File, JournalError> {
    let path = dir.join(FILE);
    let err = |source| JournalError::Compact {
        path: path.clone(),
        source,
    };
    let text = lines(leases.iter().map(Stored::from));
    oxwrt_daemon::persist::write_atomic(dir, FILE, &text).map_err(err)?;
    OpenOptions::new().append(true).open(&path).map_err(err)
}

/// The journal lines that hold `leases`.
fn lines(leases: impl Iterator<Item = Stored>) -> Vec<u8> {
    let mut text = Vec::with_capacity(leases.size_hint().0 * 128);
    for lease in leases {
        // Serializing plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut text, &Record::Hold(lease));
        text.push(b'\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leases::tests::lease;
    use crate::server::Event;

    fn change(event: Event, lease: Lease) -> Change {
        Change { event, lease }
    }

    /// What the daemon does after a batch and on its tick: flush, then
    /// compact when due.
    fn commit(j: &mut Journal, live: &Leases) {
        if let Some(flush) = j.take() {
            flush.run().expect("flush");
        }
        if let Some(compaction) = j.compaction(live) {
            let written = compaction.run().expect("compact");
            j.install(Some(written))
                .expect("install")
                .run()
                .expect("put in place");
        }
    }

    fn grant(j: &mut Journal, live: &mut Leases, l: &Lease) {
        live.insert(l.clone());
        j.append(&change(Event::Granted, l.clone()));
    }

    fn lines(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join(FILE))
            .expect("read")
            .lines()
            .count()
    }

    #[test]
    fn committed_changes_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut j, mut live) = Journal::open(dir.path()).expect("open");
        assert!(live.is_empty());
        let mut a = lease(1, [10, 0, 0, 10], 100);
        a.hostname = Some("laptop".into());
        let b = lease(2, [10, 0, 0, 11], 100);
        for l in [&a, &b] {
            live.insert(l.clone());
            j.append(&change(Event::Granted, l.clone()));
        }
        live.release("lan", &b.mac, b.ip);
        j.append(&change(Event::Released, b.clone()));
        assert!(j.is_dirty());
        commit(&mut j, &live);
        assert!(!j.is_dirty());
        drop(j);
        let (_, back) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(back.len(), 1);
        assert_eq!(back.by_ip(a.ip), Some(&a));
        // Reopening compacted it to the live lease.
        assert_eq!(lines(dir.path()), 1);
    }

    #[test]
    fn flushes_that_run_out_of_order_keep_the_changes_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut j, _) = Journal::open(dir.path()).expect("open");
        let old = lease(1, [10, 0, 0, 10], 100);
        let new = lease(1, [10, 0, 0, 10], 200);
        // The tick expires the client's lease; a batch grants it the
        // address again; the batch's flush finishes first.
        j.append(&change(Event::Expired, old));
        let expiry = j.take().expect("flush");
        j.append(&change(Event::Granted, new.clone()));
        let grant = j.take().expect("flush");
        grant.run().expect("grant");
        expiry.run().expect("expiry");
        drop(j);
        let (_, back) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(back.by_ip(new.ip), Some(&new));
    }

    #[test]
    fn uncommitted_changes_are_not_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut j, _) = Journal::open(dir.path()).expect("open");
        j.append(&change(Event::Granted, lease(1, [10, 0, 0, 10], 100)));
        drop(j);
        let (_, back) = Journal::open(dir.path()).expect("reopen");
        assert!(back.is_empty());
    }

    #[test]
    fn a_torn_last_line_and_damage_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut j, mut live) = Journal::open(dir.path()).expect("open");
        let a = lease(1, [10, 0, 0, 10], 100);
        live.insert(a.clone());
        j.append(&change(Event::Granted, a.clone()));
        commit(&mut j, &live);
        drop(j);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .expect("open");
        f.write_all(b"not json\n{\"hold\":{\"network\":\"lan\",\"ma")
            .expect("write");
        drop(f);
        let (_, back) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(back.len(), 1);
        assert_eq!(back.by_ip(a.ip), Some(&a));
        assert_eq!(lines(dir.path()), 1);
    }

    #[test]
    fn the_journal_is_compacted_once_it_outgrows_the_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut j, mut live) = Journal::open(dir.path()).expect("open");
        let a = lease(1, [10, 0, 0, 10], 100);
        live.insert(a.clone());
        for i in 0..MIN_RECORDS_TO_COMPACT - 1 {
            let mut renewed = a.clone();
            renewed.expires = 100 + i as u64;
            j.append(&change(Event::Renewed, renewed));
        }
        commit(&mut j, &live);
        assert_eq!(lines(dir.path()), MIN_RECORDS_TO_COMPACT - 1);
        j.append(&change(Event::Renewed, a.clone()));
        commit(&mut j, &live);
        assert_eq!(lines(dir.path()), 1);
        // Appends after a compaction go to the new file.
        let b = lease(2, [10, 0, 0, 11], 100);
        grant(&mut j, &mut live, &b);
        commit(&mut j, &live);
        drop(j);
        let (_, back) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(back.len(), 2);
        assert_eq!(back.by_ip(b.ip), Some(&b));
    }

    /// A journal due for compaction, with one lease `a`.
    fn due(dir: &Path) -> (Journal, Leases, Lease) {
        let (mut j, mut live) = Journal::open(dir).expect("open");
        let a = lease(1, [10, 0, 0, 10], 100);
        for _ in 0..MIN_RECORDS_TO_COMPACT {
            grant(&mut j, &mut live, &a);
        }
        j.take().expect("flush").run().expect("flush");
        (j, live, a)
    }

    #[test]
    fn changes_made_while_a_compaction_is_written_reach_the_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut j, mut live, a) = due(dir.path());
        let compaction = j.compaction(&live).expect("due");
        assert!(j.compaction(&live).is_none(), "one at a time");
        // While the snapshot is written (away from the lock), the server
        // grants b, made durable in the old file.
        let b = lease(2, [10, 0, 0, 11], 100);
        grant(&mut j, &mut live, &b);
        j.take().expect("flush").run().expect("flush");
        let install = j.install(Some(compaction.run().expect("compact")));
        // Until the new file is put in place, the old one holds both.
        assert_eq!(lines(dir.path()), MIN_RECORDS_TO_COMPACT + 1);
        // The next batch's flush (c) puts it in place before it succeeds,
        // whichever of the two flushes runs first.
        let c = lease(3, [10, 0, 0, 12], 100);
        grant(&mut j, &mut live, &c);
        j.take().expect("flush").run().expect("flush");
        assert_eq!(lines(dir.path()), 3);
        install.expect("install").run().expect("already in place");
        drop(j);
        let (_, back) = Journal::open(dir.path()).expect("reopen");
        for l in [&a, &b, &c] {
            assert_eq!(back.by_ip(l.ip), Some(l));
        }
    }

    #[test]
    fn a_crash_before_the_new_file_is_in_place_keeps_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut j, live, a) = due(dir.path());
        let compaction = j.compaction(&live).expect("due");
        let _install = j.install(Some(compaction.run().expect("compact")));
        drop(j);
        assert!(dir.path().join(NEXT).exists());
        let (_, back) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(back.len(), 1);
        assert_eq!(back.by_ip(a.ip), Some(&a));
    }

    #[test]
    fn a_failed_compaction_keeps_the_old_file_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut j, mut live, a) = due(dir.path());
        assert!(j.compaction(&live).is_some());
        assert!(j.install(None).is_none());
        let b = lease(2, [10, 0, 0, 11], 100);
        grant(&mut j, &mut live, &b);
        j.take().expect("flush").run().expect("flush");
        drop(j);
        let (_, back) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(back.by_ip(a.ip), Some(&a));
        assert_eq!(back.by_ip(b.ip), Some(&b));
    }
}
