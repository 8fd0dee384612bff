//! A DHCPv4 lease and its persistence: one JSON file per device under a
//! directory the caller names (netd passes `$STATE/netd/`), written
//! atomically, so that a restarted client can try INIT-REBOOT with the
//! address it had.

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::packet::{self, Reply};

/// A lease as the server granted it. Times are whole seconds; `obtained`
/// is wall-clock (seconds since the Unix epoch) so that a persisted lease
/// can be judged after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Our address and the subnet's prefix length (option 1; the classful
    /// prefix when the server sends no mask).
    pub address: Ipv4Net,
    /// The first router (option 3).
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6), in the server's order.
    pub dns: Vec<Ipv4Addr>,
    /// The server identifier (option 54): where renewals and releases go.
    pub server: Ipv4Addr,
    /// Lease time (option 51); [`INFINITE`] means it never expires.
    pub lease_secs: u32,
    /// Renewal time T1 (option 58, or half the lease).
    pub t1_secs: u32,
    /// Rebinding time T2 (option 59, or 7/8 of the lease).
    pub t2_secs: u32,
    /// When the ACK arrived, in seconds since the Unix epoch.
    pub obtained: u64,
}

/// The lease time that means "forever" (RFC 2131, 3.3).
pub const INFINITE: u32 = u32::MAX;
/// A shorter lease is taken as this long, so that a broken or hostile
/// server cannot make the client renew in a tight loop (udhcpc does the
/// same).
const MIN_LEASE: u32 = 60;
/// A T1 or T2 shorter than this is replaced by the default.
const MIN_TIMER: u32 = 10;

impl Lease {
    /// Whether the lease never expires.
    pub fn is_infinite(&self) -> bool {
        self.lease_secs == INFINITE
    }

    /// When the lease ends, in seconds since the Unix epoch (`None`: never).
    pub fn expires(&self) -> Option<u64> {
        (!self.is_infinite()).then(|| self.obtained.saturating_add(u64::from(self.lease_secs)))
    }

    /// Whether the lease is still valid at wall-clock time `unix`. A clock
    /// that reads earlier than `obtained` (a router without a battery-backed
    /// clock, before NTP) counts as valid: the server has the last word.
    pub fn valid_at(&self, unix: u64) -> bool {
        self.expires().is_none_or(|end| unix < end)
    }

    /// The lease an ACK obtained at `obtained` grants, with T1 and T2
    /// defaulted (1/2 and 7/8 of the lease) when the server sends none or
    /// nonsense; `None` without a usable address, server or lease time.
    pub(crate) fn from_ack(ack: &Reply, obtained: u64) -> Option<Lease> {
        let server = ack.server.filter(|s| packet::usable(*s))?;
        if !packet::usable(ack.yiaddr) {
            return None;
        }
        let prefix = ack
            .prefix
            .filter(|p| (1..=32).contains(p))
            .unwrap_or_else(|| packet::classful_prefix(ack.yiaddr));
        let address = Ipv4Net::new(ack.yiaddr, prefix).ok()?;
        let lease_secs = ack.lease_secs?;
        let (lease_secs, t1_secs, t2_secs) = if lease_secs == INFINITE {
            (INFINITE, INFINITE, INFINITE)
        } else {
            let lease = lease_secs.max(MIN_LEASE);
            let sane = |t: &u32| (MIN_TIMER..lease).contains(t);
            let t2 = ack
                .t2_secs
                .filter(sane)
                .unwrap_or((u64::from(lease) * 7 / 8) as u32);
            let t1 = ack
                .t1_secs
                .filter(|t| sane(t) && *t <= t2)
                .unwrap_or((lease / 2).min(t2));
            (lease, t1, t2)
        };
        Some(Lease {
            address,
            router: ack.router.filter(|r| packet::usable(*r)),
            dns: ack
                .dns
                .iter()
                .copied()
                .filter(|d| packet::usable(*d))
                .collect(),
            server,
            lease_secs,
            t1_secs,
            t2_secs,
            obtained,
        })
    }
}

/// Errors of lease persistence.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The device name cannot be part of a file name.
    #[error("device name {0:?} cannot name a lease file")]
    BadDevice(String),
    /// Writing the lease file failed.
    #[error("write lease {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Removing the lease file failed.
    #[error("remove lease {path}: {source}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The lease file of `device` under `dir`: `dir/dhcp4-DEVICE.json`.
pub fn lease_path(dir: &Path, device: &str) -> Result<PathBuf, LeaseError> {
    Ok(dir.join(file_name(device)?))
}

/// `dhcp4-DEVICE.json`, for a device name that can be part of one.
fn file_name(device: &str) -> Result<String, LeaseError> {
    let ok = !device.is_empty()
        && device != "."
        && device != ".."
        && !device.contains(['/', '\0'])
        && device.len() <= 64;
    if !ok {
        return Err(LeaseError::BadDevice(device.to_string()));
    }
    Ok(format!("dhcp4-{device}.json"))
}

/// Writes `lease` as `device`'s lease file, whole or not at all
/// ([`oxwrt_daemon::persist::save_json`]).
pub fn save(dir: &Path, device: &str, lease: &Lease) -> Result<(), LeaseError> {
    let name = file_name(device)?;
    oxwrt_daemon::persist::save_json(dir, &name, lease).map_err(|source| LeaseError::Write {
        path: dir.join(&name),
        source,
    })
}

/// Reads `device`'s lease file. A missing file is no lease; an unreadable
/// or corrupt one is no lease too, and is logged.
pub fn load(dir: &Path, device: &str) -> Option<Lease> {
    match file_name(device) {
        Ok(name) => oxwrt_daemon::persist::load_json(dir, &name),
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

/// Removes `device`'s lease file; a missing one is fine.
pub fn remove(dir: &Path, device: &str) -> Result<(), LeaseError> {
    let path = lease_path(dir, device)?;
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(LeaseError::Remove { path, source }),
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| LeaseError::Remove { path, source })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Lease {
        Lease {
            address: "192.0.2.10/24".parse().expect("net"),
            router: Some(Ipv4Addr::new(192, 0, 2, 1)),
            dns: vec![Ipv4Addr::new(192, 0, 2, 53)],
            server: Ipv4Addr::new(192, 0, 2, 1),
            lease_secs: 3600,
            t1_secs: 1800,
            t2_secs: 3150,
            obtained: 1_700_000_000,
        }
    }

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("netd");
        assert_eq!(load(&sub, "wan0"), None, "missing directory is no lease");
        save(&sub, "wan0", &sample()).expect("save");
        assert_eq!(load(&sub, "wan0"), Some(sample()));
        assert_eq!(load(&sub, "wan1"), None, "per device");
        let mut newer = sample();
        newer.obtained += 10;
        save(&sub, "wan0", &newer).expect("replace");
        assert_eq!(load(&sub, "wan0"), Some(newer));
        let names: Vec<_> = fs::read_dir(&sub)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec!["dhcp4-wan0.json"], "no temporary file left");
        remove(&sub, "wan0").expect("remove");
        assert_eq!(load(&sub, "wan0"), None);
        remove(&sub, "wan0").expect("removing nothing is fine");
    }

    #[test]
    fn corrupt_file_is_no_lease() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = lease_path(dir.path(), "wan0").expect("path");
        for junk in [&b""[..], b"{", b"{\"address\": 5}", b"\xff\xfe", b"[]"] {
            fs::write(&path, junk).expect("write");
            assert_eq!(load(dir.path(), "wan0"), None, "{junk:?}");
        }
    }

    #[test]
    fn device_names_that_escape_are_refused() {
        let dir = Path::new("/nonexistent");
        for bad in ["", ".", "..", "a/b", "../x", "a\0b"] {
            assert!(lease_path(dir, bad).is_err(), "{bad:?}");
            assert!(save(dir, bad, &sample()).is_err(), "{bad:?}");
        }
        assert_eq!(
            lease_path(dir, "eth0.7").expect("ok"),
            dir.join("dhcp4-eth0.7.json")
        );
    }

    #[test]
    fn validity_by_wall_clock() {
        let l = sample();
        assert_eq!(l.expires(), Some(1_700_003_600));
        assert!(l.valid_at(1_700_003_599));
        assert!(!l.valid_at(1_700_003_600));
        assert!(l.valid_at(0), "a clock behind the lease trusts the server");
        let forever = Lease {
            lease_secs: INFINITE,
            ..sample()
        };
        assert_eq!(forever.expires(), None);
        assert!(forever.valid_at(u64::MAX));
    }
}
