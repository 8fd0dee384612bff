//! What each service may touch in the file system, as data with a reason
//! per entry. One profile drives two layers: the landlock ruleset (what
//! the process may open at all) and its mount namespace (what stays
//! writable in a read-only view of the system).

use std::path::PathBuf;

use crate::{paths::Paths, spec::ServiceSpec};

/// Where a grant points, resolved against the router's paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// `$ETC`.
    Etc,
    /// `$STATE/<the service's own name>`.
    OwnState,
    /// `$STATE/<dir>`.
    State(&'static str),
}

/// One grant: everything beneath `anchor`, read-only or read-write.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    /// Where.
    pub anchor: Anchor,
    /// Read-write (create, rename, remove beneath it), or read-only.
    pub write: bool,
    /// Why the service needs it.
    pub why: &'static str,
}

const fn read(anchor: Anchor, why: &'static str) -> Grant {
    Grant {
        anchor,
        write: false,
        why,
    }
}

const fn write(anchor: Anchor, why: &'static str) -> Grant {
    Grant {
        anchor,
        write: true,
        why,
    }
}

/// The profiles by name. Every profile also gets [`LIBRARIES`],
/// [`SYSTEM`], [`DEVICES`], `$RUN` and its own binary (read and execute).
pub static PROFILES: &[(&str, &[Grant])] = &[
    (
        "configd",
        &[
            write(
                Anchor::Etc,
                "the operator's config pair; a committed generation is copied back to it",
            ),
            write(
                Anchor::State("config"),
                "generations, the snapshot ring, the hash key",
            ),
        ],
    ),
    (
        "netd",
        &[write(
            Anchor::OwnState,
            "the objects it owns and the WAN's DHCP lease",
        )],
    ),
    ("fwd", &[]),
    ("dhcpd", &[write(Anchor::OwnState, "the lease journal")]),
    (
        "ctld",
        &[write(Anchor::OwnState, "its server key and the audit log")],
    ),
    (
        "dnsd",
        &[read(
            Anchor::Etc,
            "blocklist files named by the config (the secrets file stays 0600 root)",
        )],
    ),
];

/// Read-and-execute paths of every profile (a path that does not exist
/// is skipped), and why.
pub static LIBRARIES: &[(&str, &str)] = &[
    ("/lib", "the dynamic loader, libc, libnftnl"),
    ("/lib64", "the dynamic loader"),
    ("/usr/lib", "shared libraries"),
    ("/usr/lib64", "shared libraries"),
];

/// Read-only system paths of every profile (a path that does not exist is
/// skipped), and why.
pub static SYSTEM: &[(&str, &str)] = &[
    ("/etc/ld.so.cache", "the dynamic loader's index"),
    ("/etc/localtime", "the time zone of log timestamps"),
    ("/usr/share/zoneinfo", "the time-zone database"),
    ("/proc", "its own /proc/self (fd checks, stack bounds)"),
    (
        "/sys",
        "device attributes, cgroup limits sizing thread pools",
    ),
    ("/dev/urandom", "random seeds where getrandom is not used"),
];

/// Read-write device nodes of every profile.
pub static DEVICES: &[(&str, &str)] = &[("/dev/null", "std's null stdio")];

/// The grants of profile `name`, if it exists.
pub fn profile(name: &str) -> Option<&'static [Grant]> {
    PROFILES.iter().find(|(n, _)| *n == name).map(|(_, g)| *g)
}

impl Anchor {
    /// The directory it means for `service`.
    pub fn resolve(self, paths: &Paths, service: &str) -> PathBuf {
        match self {
            Anchor::Etc => paths.etc.clone(),
            Anchor::OwnState => paths.service_state(service),
            Anchor::State(dir) => paths.state.join(dir),
        }
    }
}

/// The directories `grants` give `service`: (read-only, read-write).
pub fn resolve(grants: &[Grant], paths: &Paths, service: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (write, read): (Vec<&Grant>, Vec<&Grant>) = grants.iter().partition(|g| g.write);
    let dirs = |gs: Vec<&Grant>| {
        gs.iter()
            .map(|g| g.anchor.resolve(paths, service))
            .collect()
    };
    (dirs(read), dirs(write))
}

/// The state directories oxinit makes for `spec` before starting it,
/// owned by its uid: `$STATE/<name>`, and each directory under `$STATE`
/// its profile may write (they must exist to be mounted writable).
pub fn state_dirs(spec: &ServiceSpec, paths: &Paths) -> Vec<PathBuf> {
    let mut dirs = vec![paths.service_state(&spec.name)];
    let grants = spec
        .landlock
        .as_deref()
        .and_then(profile)
        .unwrap_or_default();
    for g in grants {
        let dir = g.anchor.resolve(paths, &spec.name);
        if g.write && !matches!(g.anchor, Anchor::Etc) && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_says_why() {
        for (name, grants) in PROFILES {
            for g in *grants {
                assert!(!g.why.is_empty(), "{name}: {:?}", g.anchor);
            }
        }
        for (path, why) in LIBRARIES.iter().chain(SYSTEM).chain(DEVICES) {
            assert!(path.starts_with('/') && !why.is_empty(), "{path}");
        }
    }
}
