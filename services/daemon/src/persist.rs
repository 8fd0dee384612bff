//! A daemon's files under `$STATE/<daemon>/`: written whole or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `value` as JSON to `dir/name` with [`write_atomic`].
pub fn save_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    text.push(b'\n');
    write_atomic(dir, name, &text)
}

/// Replaces `dir/name` with `bytes`: a temporary file beside it, fsync,
/// rename over the old one, fsync the directory. A crash leaves the old
/// file or the new one, never a mix. Creates `dir` when it is missing.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = format!(".{name}.tmp");
    drop(write_synced(dir, &tmp, bytes)?);
    replace(dir, &tmp, name)
}

/// The first half of [`write_atomic`]: `dir/tmp` holding `bytes`, synced,
/// and still open for writing at its end.
pub fn write_synced(dir: &Path, tmp: &str, bytes: &[u8]) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(tmp))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(file)
}

/// The second half of [`write_atomic`]: renames `dir/tmp` (synced) over
/// `dir/name` and syncs the directory.
pub fn replace(dir: &Path, tmp: &str, name: &str) -> io::Result<()> {
    fs::rename(dir.join(tmp), dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Reads `dir/name` as JSON. A missing file is `None`; an unreadable or
/// corrupt one is `None` too, and is logged.
pub fn load_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    let path = dir.join(name);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("read {}: {e}; ignoring it", path.display());
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("parse {}: {e}; ignoring it", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("d");
        assert_eq!(load_json::<Vec<u32>>(&sub, "x.json"), None);
        save_json(&sub, "x.json", &vec![1u32, 2]).expect("save");
        assert_eq!(load_json::<Vec<u32>>(&sub, "x.json"), Some(vec![1, 2]));
        fs::write(sub.join("x.json"), "{").expect("write");
        assert_eq!(load_json::<Vec<u32>>(&sub, "x.json"), None);
        let leftovers: Vec<_> = fs::read_dir(&sub)
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
