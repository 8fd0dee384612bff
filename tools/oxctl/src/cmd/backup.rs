//! `oxctl backup -o FILE [--with-server-key]` and `restore FILE --confirm`.
//!
//! A backup is a tar.gz (mode 0600: it holds every secret) of
//! `oxwrt.toml`, `oxwrt.secrets.toml`, `leases.json` (dhcpd's leases at
//! the time), `backup.json` (hostname, generation) and, with
//! `--with-server-key`, `server.key` (ctld's identity, for a replacement
//! router to keep the key operators pinned; installed by hand, not by
//! `restore`). `restore` sends the pair and the leases.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use bus_schema::control::{BackupRequest, Call, ConfigPair, Reply, RestoreRequest};

use crate::remote::{Failure, Session, render};

use super::{Out, unexpected};

fn io(path: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::Usage(format!("{}: {e}", path.display()))
}

/// `backup`.
pub async fn backup(s: &Session, out_path: &Path, server_key: bool) -> Result<(), Failure> {
    let b = match s.call(Call::Backup(BackupRequest { server_key })).await? {
        Reply::Backup(b) => b,
        r => return Err(unexpected(&r)),
    };
    let pair = b.pair.unwrap_or_default();
    let meta = serde_json::json!({"hostname": b.hostname, "generation": b.generation});
    let mut files = vec![
        ("oxwrt.toml", pair.public),
        ("oxwrt.secrets.toml", pair.secrets),
        ("leases.json", b.leases_json),
        ("backup.json", meta.to_string()),
    ];
    if !b.server_key.is_empty() {
        files.push(("server.key", format!("{}\n", b.server_key)));
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out_path)
        .map_err(io(out_path))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, text) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, name, text.as_bytes())
            .map_err(io(out_path))?;
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|f| f.sync_all())
        .map_err(io(out_path))?;
    println!(
        "backed up generation {} of {} to {}",
        b.generation,
        b.hostname,
        out_path.display()
    );
    Ok(())
}

/// What `restore` takes from a backup.
struct Backup {
    pair: ConfigPair,
    /// `leases.json`, or empty.
    leases_json: String,
}

/// The config pair and the leases in a backup.
fn read_backup(path: &Path) -> Result<Backup, Failure> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let (mut public, mut secrets, mut leases) = (None, None, None);
    for entry in archive.entries().map_err(io(path))? {
        let mut entry = entry.map_err(io(path))?;
        let name = entry
            .path()
            .map_err(io(path))?
            .to_string_lossy()
            .into_owned();
        let slot = match name.as_str() {
            "oxwrt.toml" => &mut public,
            "oxwrt.secrets.toml" => &mut secrets,
            "leases.json" => &mut leases,
            _ => continue,
        };
        let mut text = String::new();
        entry.read_to_string(&mut text).map_err(io(path))?;
        *slot = Some(text);
    }
    let public = public.ok_or_else(|| {
        Failure::Usage(format!(
            "{}: not an oxctl backup (no oxwrt.toml in it)",
            path.display()
        ))
    })?;
    Ok(Backup {
        pair: ConfigPair {
            public,
            secrets: secrets.unwrap_or_default(),
        },
        leases_json: leases.unwrap_or_default(),
    })
}

/// `restore FILE --confirm`: the backed-up pair is validated and applied
/// like a push and a reload.
pub async fn restore(s: &Session, path: &Path, confirm: bool, out: Out) -> Result<(), Failure> {
    let backup = read_backup(path)?;
    let call = Call::Restore(RestoreRequest {
        pair: Some(backup.pair),
        confirm,
        leases_json: backup.leases_json,
    });
    match s.call(call).await? {
        Reply::Applied(a) => out.print(render::applied(&a, false), render::applied_json(&a)),
        r => Err(unexpected(&r)),
    }
}
