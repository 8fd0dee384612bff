//! Every path oxinit uses, derived from one root (default `/`).

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// `$ETC`, `$RUN`, `$STATE` and where service binaries live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The root everything derives from.
    pub root: PathBuf,
    /// `$ROOT/etc/oxwrt`: the operator's config pair.
    pub etc: PathBuf,
    /// `$ROOT/run/oxwrt`: sockets, the broker policy, runtime files.
    pub run: PathBuf,
    /// `$ROOT/var/lib/oxwrt`: persistent state, one directory per service.
    pub state: PathBuf,
    /// Where a relative `exec` is looked up.
    pub bin_dir: PathBuf,
}

impl Paths {
    /// Paths under `root`, binaries from `bin_dir`.
    pub fn new(root: &Path, bin_dir: PathBuf) -> Self {
        Self {
            root: root.to_path_buf(),
            etc: root.join("etc/oxwrt"),
            run: root.join("run/oxwrt"),
            state: root.join("var/lib/oxwrt"),
            bin_dir,
        }
    }

    /// Is this the real system (root `/`), not a lab or test root?
    pub fn is_system(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The bus address (`unix:path=$RUN/bus.sock`).
    pub fn bus_address(&self) -> String {
        bus_schema::bus::address_for(&self.run)
    }

    /// The broker's policy file.
    pub fn bus_conf(&self) -> PathBuf {
        self.run.join("bus.conf")
    }

    /// The passwd file the broker sees (see `broker.rs`).
    pub fn bus_passwd(&self) -> PathBuf {
        self.run.join("passwd")
    }

    /// The journald socket, only consulted on the real system.
    pub fn journal_socket(&self) -> Option<PathBuf> {
        let p = self.root.join("run/systemd/journal/socket");
        (self.is_system() && p.exists()).then_some(p)
    }

    /// An absolute `exec` as is, a relative one under `bin_dir`.
    pub fn resolve_exec(&self, exec: &Path) -> PathBuf {
        if exec.is_absolute() {
            exec.to_path_buf()
        } else {
            self.bin_dir.join(exec)
        }
    }

    /// A service's own state directory.
    pub fn service_state(&self, service: &str) -> PathBuf {
        self.state.join(service)
    }

    /// Creates `$RUN` and `$STATE` (0755).
    pub fn create_dirs(&self) -> io::Result<()> {
        for dir in [&self.run, &self.state] {
            mkdir_0755(dir)?;
        }
        Ok(())
    }

    /// Creates a service's state directory `dir` owned by `uid` (when we
    /// may chown).
    pub fn create_state_dir(dir: &Path, uid: u32, as_root: bool) -> io::Result<()> {
        mkdir_0755(dir)?;
        if as_root {
            std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
        }
        Ok(())
    }
}

fn mkdir_0755(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_derive_from_root() {
        let p = Paths::new(Path::new("/tmp/r"), PathBuf::from("/opt/bin"));
        assert_eq!(p.etc, Path::new("/tmp/r/etc/oxwrt"));
        assert_eq!(p.run, Path::new("/tmp/r/run/oxwrt"));
        assert_eq!(p.state, Path::new("/tmp/r/var/lib/oxwrt"));
        assert_eq!(p.bus_address(), "unix:path=/tmp/r/run/oxwrt/bus.sock");
        assert_eq!(
            p.resolve_exec(Path::new("configd")),
            Path::new("/opt/bin/configd")
        );
        assert_eq!(p.resolve_exec(Path::new("/bin/sh")), Path::new("/bin/sh"));
        assert!(!p.is_system());
        assert_eq!(p.journal_socket(), None);
    }
}
