//! configd's files, and the order they are written in so that a crash at
//! any point leaves either the old or the new config, never a mix.
//!
//! ```text
//! $ETC/oxwrt.toml, oxwrt.secrets.toml   the operator's pair (what Reload reads)
//! $STATE/config/snapshots/<gen>/        one directory per generation: the pair + meta.json
//! $STATE/config/committed               the last confirmed generation (the running one)
//! $STATE/config/provisional             {generation, deadline, fallback} while unconfirmed
//! $STATE/config/etc-sync                generation whose pair is being copied to $ETC
//! $STATE/config/last-generation         highest generation number ever handed out
//! $STATE/config/candidate/              a pushed pair awaiting Reload
//! $STATE/config/hash.key                key of the generation hash
//! ```
//!
//! A snapshot directory is written under a temporary name and renamed into
//! place; every small file is replaced by write-temp, fsync, rename, fsync
//! directory. `committed` is the switch: until it names the new generation,
//! a restart comes up in the old one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bus_schema::config::SECRETS_FILE_NAME;
use serde::{Deserialize, Serialize};

/// File name of the public file.
pub const CONFIG_FILE_NAME: &str = "oxwrt.toml";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A state file holds something configd did not write.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A config pair as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// `oxwrt.toml`.
    pub public: String,
    /// `oxwrt.secrets.toml`.
    pub secrets: String,
}

/// Who made a generation, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Generation number.
    pub generation: u64,
    /// Unix time it became running.
    pub time: u64,
    /// Who applied it.
    pub who: String,
    /// The caller's comment.
    pub comment: String,
    /// Hash of the pair.
    pub hash: String,
}

/// A generation that is live but not yet confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisional {
    /// The unconfirmed generation.
    pub generation: u64,
    /// Unix time after which it is reverted.
    pub deadline: u64,
    /// The confirmed generation to revert to.
    pub fallback: u64,
}

/// configd's directories.
#[derive(Debug, Clone)]
pub struct Store {
    etc: PathBuf,
    dir: PathBuf,
}

impl Store {
    /// The store for `$ETC` and `$STATE`; creates `$STATE/config`.
    pub fn open(etc: &Path, state: &Path) -> Result<Self, StoreError> {
        let dir = state.join("config");
        for d in [dir.clone(), dir.join("snapshots")] {
            fs::create_dir_all(&d).map_err(io("create", &d))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).map_err(io("chmod", &d))?;
        }
        Ok(Self {
            etc: etc.to_path_buf(),
            dir,
        })
    }

    /// The operator's pair in `$ETC`.
    pub fn etc_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.etc.join(CONFIG_FILE_NAME),
            self.etc.join(SECRETS_FILE_NAME),
        )
    }

    fn snapshot_dir(&self, generation: u64) -> PathBuf {
        self.dir.join("snapshots").join(format!("{generation:020}"))
    }

    /// Reads one generation's pair and meta.
    pub fn snapshot(&self, generation: u64) -> Result<(Pair, Meta), StoreError> {
        let dir = self.snapshot_dir(generation);
        let meta_path = dir.join("meta.json");
        let text = fs::read_to_string(&meta_path).map_err(io("read", &meta_path))?;
        let meta = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: meta_path,
            reason: e.to_string(),
        })?;
        Ok((read_pair(&dir)?, meta))
    }

    /// Every snapshot's generation number, newest first.
    pub fn generations(&self) -> Result<Vec<u64>, StoreError> {
        let dir = self.dir.join("snapshots");
        let mut out: Vec<u64> = fs::read_dir(&dir)
            .map_err(io("list", &dir))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        Ok(out)
    }

    /// Writes a generation's snapshot: whole, or not at all.
    pub fn write_snapshot(&self, pair: &Pair, meta: &Meta) -> Result<(), StoreError> {
        let dir = self.snapshot_dir(meta.generation);
        let tmp = self
            .dir
            .join("snapshots")
            .join(format!(".tmp-{}", meta.generation));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).map_err(io("create", &tmp))?;
        let meta_json = serde_json::to_string_pretty(meta).unwrap_or_default();
        write_file(&tmp.join(CONFIG_FILE_NAME), pair.public.as_bytes(), 0o600)?;
        write_file(&tmp.join(SECRETS_FILE_NAME), pair.secrets.as_bytes(), 0o600)?;
        write_file(&tmp.join("meta.json"), meta_json.as_bytes(), 0o600)?;
        sync_dir(&tmp)?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir).map_err(io("rename", &tmp))?;
        sync_dir(&self.dir.join("snapshots"))
    }

    /// Removes a snapshot.
    pub fn remove_snapshot(&self, generation: u64) -> Result<(), StoreError> {
        let dir = self.snapshot_dir(generation);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &dir)(e)),
            _ => sync_dir(&self.dir.join("snapshots")),
        }
    }

    /// Keeps the `keep` newest snapshots, plus the ones in `pinned`.
    pub fn prune(&self, keep: usize, pinned: &[u64]) -> Result<(), StoreError> {
        for generation in self.generations()?.into_iter().skip(keep) {
            if !pinned.contains(&generation) {
                self.remove_snapshot(generation)?;
            }
        }
        Ok(())
    }

    /// The last confirmed generation, if any was ever committed.
    pub fn committed(&self) -> Result<Option<u64>, StoreError> {
        self.read_number("committed")
    }

    /// Makes `generation` the confirmed running generation.
    pub fn set_committed(&self, generation: u64) -> Result<(), StoreError> {
        self.write_state("committed", generation.to_string().as_bytes())
    }

    /// Hands out the next generation number; never the same twice, even
    /// across crashes.
    pub fn next_generation(&self) -> Result<u64, StoreError> {
        let newest = self.generations()?.first().copied().unwrap_or(0);
        let last = self.read_number("last-generation")?.unwrap_or(0);
        let next = last.max(newest) + 1;
        self.write_state("last-generation", next.to_string().as_bytes())?;
        Ok(next)
    }

    /// The generation awaiting confirmation.
    pub fn provisional(&self) -> Result<Option<Provisional>, StoreError> {
        self.read_json("provisional")
    }

    /// Records (or with `None`, clears) the generation awaiting
    /// confirmation.
    pub fn set_provisional(&self, p: Option<&Provisional>) -> Result<(), StoreError> {
        match p {
            Some(p) => self.write_state(
                "provisional",
                serde_json::to_string(p).unwrap_or_default().as_bytes(),
            ),
            None => self.remove_state("provisional"),
        }
    }

    /// Records that `$ETC` must hold generation `generation`; written
    /// before that generation is committed, completed by
    /// [`Store::finish_etc_sync`].
    pub fn mark_etc_sync(&self, generation: u64) -> Result<(), StoreError> {
        self.write_state("etc-sync", generation.to_string().as_bytes())
    }

    /// Copies the marked generation's pair to `$ETC`, if it is the
    /// committed one; a mark for a generation that never got committed (a
    /// crash in between) is dropped.
    pub fn finish_etc_sync(&self) -> Result<(), StoreError> {
        let Some(generation) = self.read_number("etc-sync")? else {
            return Ok(());
        };
        if self.committed()? == Some(generation) {
            let (pair, _) = self.snapshot(generation)?;
            let (public, secrets) = self.etc_paths();
            fs::create_dir_all(&self.etc).map_err(io("create", &self.etc))?;
            write_file(&secrets, pair.secrets.as_bytes(), 0o600)?;
            write_file(&public, pair.public.as_bytes(), 0o644)?;
            sync_dir(&self.etc)?;
        }
        self.remove_state("etc-sync")
    }

    /// Puts the committed generation `generation` back into `$ETC` after
    /// an unconfirmed one was rejected; what `$ETC` held is kept beside it
    /// as `oxwrt.toml.rejected` and `oxwrt.secrets.toml.rejected` (0600).
    pub fn restore_etc(&self, generation: u64) -> Result<(), StoreError> {
        self.reject_etc()?;
        self.mark_etc_sync(generation)?;
        self.finish_etc_sync()
    }

    fn reject_etc(&self) -> Result<(), StoreError> {
        let (public, secrets) = self.etc_paths();
        for (path, mode) in [(public, 0o644), (secrets, 0o600)] {
            let Ok(bytes) = fs::read(&path) else { continue };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
            write_file(
                &path.with_file_name(format!("{name}.rejected")),
                &bytes,
                mode,
            )?;
        }
        sync_dir(&self.etc)
    }

    /// The pushed candidate, if any.
    pub fn candidate(&self) -> Result<Option<Pair>, StoreError> {
        let dir = self.dir.join("candidate");
        if !dir.exists() {
            return Ok(None);
        }
        read_pair(&dir).map(Some)
    }

    /// Stores (or with `None`, drops) the pushed candidate.
    pub fn set_candidate(&self, pair: Option<&Pair>) -> Result<(), StoreError> {
        let dir = self.dir.join("candidate");
        match pair {
            Some(pair) => write_pair_dir(&dir, pair, None),
            None if dir.exists() => {
                fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
                sync_dir(&self.dir)
            }
            None => Ok(()),
        }
    }

    /// The key of the generation hash, made at first use.
    pub fn hash_key(&self) -> Result<Vec<u8>, StoreError> {
        let path = self.dir.join("hash.key");
        match fs::read(&path) {
            Ok(key) if key.len() == 32 => return Ok(key),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("read", &path)(e)),
        }
        let mut key = vec![0u8; 32];
        let urandom = Path::new("/dev/urandom");
        let mut f = fs::File::open(urandom).map_err(io("open", urandom))?;
        std::io::Read::read_exact(&mut f, &mut key).map_err(io("read", urandom))?;
        write_file(&path, &key, 0o600)?;
        sync_dir(&self.dir)?;
        Ok(key)
    }

    fn read_number(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let path = self.dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| StoreError::Corrupt {
                    path,
                    reason: format!("not a generation number: {:?}", text.trim()),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    path,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    fn write_state(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_file(&self.dir.join(name), bytes, 0o600)?;
        sync_dir(&self.dir)
    }

    fn remove_state(&self, name: &str) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &path)(e)),
            _ => sync_dir(&self.dir),
        }
    }
}

/// Reads the pair in `dir`.
fn read_pair(dir: &Path) -> Result<Pair, StoreError> {
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).map_err(io("read", &path))
    };
    Ok(Pair {
        public: read(CONFIG_FILE_NAME)?,
        secrets: read(SECRETS_FILE_NAME)?,
    })
}

/// Replaces directory `dir` with one holding `pair` (and `meta.json`),
/// whole or not at all: written under a temporary name, fsynced, renamed.
fn write_pair_dir(dir: &Path, pair: &Pair, meta: Option<&[u8]>) -> Result<(), StoreError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("dir");
    let tmp = parent.join(format!(".tmp-{name}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).map_err(io("create", &tmp))?;
    write_file(&tmp.join(CONFIG_FILE_NAME), pair.public.as_bytes(), 0o600)?;
    write_file(&tmp.join(SECRETS_FILE_NAME), pair.secrets.as_bytes(), 0o600)?;
    if let Some(meta) = meta {
        write_file(&tmp.join("meta.json"), meta, 0o600)?;
    }
    sync_dir(&tmp)?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(&tmp, dir).map_err(io("rename", &tmp))?;
    sync_dir(parent)
}

/// Replaces `path` atomically: write a temporary file beside it, fsync,
/// rename over. The caller fsyncs the directory.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io("chmod", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    fs::rename(&tmp, path).map_err(io("rename", &tmp))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: u32) -> Pair {
        Pair {
            public: format!("version = 1 # {n}\n"),
            secrets: format!("s = \"{n}\"\n"),
        }
    }

    fn meta(generation: u64) -> Meta {
        Meta {
            generation,
            time: 1,
            who: "test".into(),
            comment: String::new(),
            hash: "h".into(),
        }
    }

    #[test]
    fn snapshots_round_trip_and_prune_keeps_pinned() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&tmp.path().join("etc"), &tmp.path().join("state")).expect("open");
        for g in 1..=5 {
            store
                .write_snapshot(&pair(g as u32), &meta(g))
                .expect("write");
        }
        assert_eq!(store.snapshot(3).expect("read"), (pair(3), meta(3)));
        store.prune(2, &[1]).expect("prune");
        assert_eq!(store.generations().expect("list"), vec![5, 4, 1]);
        let mode = fs::metadata(store.snapshot_dir(5).join(SECRETS_FILE_NAME))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn generation_numbers_never_repeat() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&tmp.path().join("etc"), &tmp.path().join("state")).expect("open");
        assert_eq!(store.next_generation().expect("next"), 1);
        store.write_snapshot(&pair(7), &meta(7)).expect("write");
        assert_eq!(store.next_generation().expect("next"), 8);
        store.remove_snapshot(7).expect("remove");
        assert_eq!(store.next_generation().expect("next"), 9);
    }

    #[test]
    fn interrupted_etc_sync_is_completed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&tmp.path().join("etc"), &tmp.path().join("state")).expect("open");
        store.write_snapshot(&pair(2), &meta(2)).expect("write");
        store.write_snapshot(&pair(3), &meta(3)).expect("write");
        // A crash after the mark, before the commit: dropped.
        store.mark_etc_sync(3).expect("mark");
        store.set_committed(2).expect("commit");
        store.finish_etc_sync().expect("finish");
        assert!(!store.etc_paths().0.exists(), "3 was never committed");
        // A crash after the commit, before the copy: completed.
        store.mark_etc_sync(2).expect("mark");
        store.finish_etc_sync().expect("finish");
        let (public, secrets) = store.etc_paths();
        assert_eq!(fs::read_to_string(public).expect("read"), pair(2).public);
        assert_eq!(fs::read_to_string(secrets).expect("read"), pair(2).secrets);
        assert!(!store.dir.join("etc-sync").exists());
    }
}
