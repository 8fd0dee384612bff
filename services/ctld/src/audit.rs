//! The audit log: one JSON line per mutating call in
//! `$STATE/ctld/audit.log`, synced before the call's answer is sent.
//! When the file passes [`MAX_BYTES`] it becomes `audit.log.1` (replacing
//! the one before), so the log keeps at least the last 256 KiB of calls.

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use bus_schema::control::AuditEntry;
use serde::{Deserialize, Serialize};

/// Size at which the log is rotated.
pub const MAX_BYTES: u64 = 256 << 10;

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Line {
    time: u64,
    client: String,
    fingerprint: String,
    rpc: String,
    result: String,
    generation_before: u64,
    generation_after: u64,
}

/// The log file.
#[derive(Debug, Clone)]
pub struct Audit {
    path: PathBuf,
}

impl Audit {
    /// The log at `path` (made on the first entry).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn rotated(&self) -> PathBuf {
        self.path.with_extension("log.1")
    }

    /// Appends one entry, durably.
    pub fn append(&self, e: &AuditEntry) -> std::io::Result<()> {
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= MAX_BYTES) {
            std::fs::rename(&self.path, self.rotated())?;
        }
        let line = Line {
            time: e.time,
            client: e.client.clone(),
            fingerprint: e.fingerprint.clone(),
            rpc: e.rpc.clone(),
            result: e.result.clone(),
            generation_before: e.generation_before,
            generation_after: e.generation_after,
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()
    }

    /// The newest `limit` entries (0: all kept), oldest first. A line
    /// that does not parse (a torn write at a crash) is skipped.
    pub fn read(&self, limit: usize) -> std::io::Result<Vec<AuditEntry>> {
        let mut all = Vec::new();
        for path in [self.rotated(), self.path.clone()] {
            all.extend(read_lines(&path)?);
        }
        if limit > 0 && all.len() > limit {
            all.drain(..all.len() - limit);
        }
        Ok(all)
    }
}

fn read_lines(path: &Path) -> std::io::Result<Vec<AuditEntry>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let Ok(l) = serde_json::from_str::<Line>(&line?) else {
            continue;
        };
        out.push(AuditEntry {
            time: l.time,
            client: l.client,
            fingerprint: l.fingerprint,
            rpc: l.rpc,
            result: l.result,
            generation_before: l.generation_before,
            generation_after: l.generation_after,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> AuditEntry {
        AuditEntry {
            time: i,
            client: "laptop".into(),
            fingerprint: "SHA256:x".into(),
            rpc: format!("restart svc{i}"),
            result: "ok".into(),
            generation_before: i,
            generation_after: i + 1,
        }
    }

    #[test]
    fn entries_are_read_back_newest_last_across_a_rotation_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = Audit::new(dir.path().join("audit.log"));
        assert!(audit.read(0).expect("empty").is_empty());
        // Enough entries to rotate once.
        let n = MAX_BYTES / 100 + 10;
        for i in 0..n {
            audit.append(&entry(i)).expect("append");
        }
        assert!(dir.path().join("audit.log.1").exists());
        OpenOptions::new()
            .append(true)
            .open(dir.path().join("audit.log"))
            .and_then(|mut f| f.write_all(b"{\"time\":"))
            .expect("torn line");
        let last = audit.read(2).expect("read");
        assert_eq!(last, [entry(n - 2), entry(n - 1)]);
        assert_eq!(audit.read(0).expect("all").len() as u64, n);
    }
}
