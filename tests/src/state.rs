//! A lab's state file: what it created (namespaces, processes), written as it
//! goes, so the lab can be torn down by whoever finds it: its own `Drop`,
//! `cargo xtask lab down` after a detached `lab up`, or the next lab brought
//! up after its owner died without unwinding (SIGKILL, Ctrl-C on a test run).
//!
//! Layout of the lab directory `<state dir>/<name>/`:
//!
//! ```text
//! state.json          this file
//! root/               the router's root: etc/oxwrt, run/oxwrt, var/lib/oxwrt
//! isp/                www/, dnsmasq pid file, leases and log
//! wan/                dhclient config, script, leases, pid file
//! logs/               stdout and stderr of every process the lab started
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::{ProcId, ProcessRecord, STOP_GRACE};
use crate::info::LabInfo;
use crate::netns;
use crate::plan::{Plan, check_name};

/// Name of the state file in a lab directory.
pub const STATE_FILE: &str = "state.json";
/// Environment variable that overrides [`DEFAULT_STATE_DIR`].
pub const STATE_DIR_ENV: &str = "OXWRT_LAB_DIR";
/// Where lab directories live by default.
pub const DEFAULT_STATE_DIR: &str = "/tmp/oxwrt-lab";

/// Errors of reading and writing lab state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A directory could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    /// The state directory is not safe to use.
    #[error("refusing to use {path}: {reason}")]
    CheckDir { path: PathBuf, reason: String },
    /// The state file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    /// The state file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// The state file is not valid.
    #[error("cannot parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The directory holding lab directories: `$OXWRT_LAB_DIR`, else
/// `/tmp/oxwrt-lab`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os(STATE_DIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from)
}

/// Creates `state_dir` if needed and checks that it is a real directory (not
/// a symlink) owned by this user, since it usually lives in /tmp.
pub fn prepare_state_dir(state_dir: &Path) -> Result<(), StateError> {
    fs::create_dir_all(state_dir).map_err(|source| StateError::CreateDir {
        path: state_dir.to_owned(),
        source,
    })?;
    let meta = fs::symlink_metadata(state_dir).map_err(|source| StateError::Read {
        path: state_dir.to_owned(),
        source,
    })?;
    let check = |reason: &str| StateError::CheckDir {
        path: state_dir.to_owned(),
        reason: reason.to_owned(),
    };
    if !meta.is_dir() {
        return Err(check("not a directory"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(check("owned by another user"));
    }
    Ok(())
}

/// What a lab has created, mirrored to its state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The lab's name.
    pub name: String,
    /// Whether the lab outlives its creator (`cargo xtask lab up`).
    pub detached: bool,
    /// The process whose `Drop` tears the lab down (attached labs).
    pub owner: Option<ProcId>,
    /// Namespaces, in creation order (recorded before creating each).
    pub namespaces: Vec<String>,
    /// Long-running processes, in start order.
    pub processes: Vec<ProcessRecord>,
    /// The lab as published once it is up.
    pub info: Option<LabInfo>,
}

impl State {
    /// The state file in lab directory `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Reads the state file of lab directory `dir`.
    pub fn load(dir: &Path) -> Result<State, StateError> {
        let path = State::path(dir);
        let text = fs::read_to_string(&path).map_err(|source| StateError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| StateError::Parse { path, source })
    }

    /// Writes the state file of lab directory `dir` atomically (temporary
    /// file, then rename).
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = State::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let write_err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| write_err(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        fs::write(&tmp, json).map_err(write_err)?;
        fs::rename(&tmp, &path).map_err(write_err)
    }

    /// Removes everything recorded here, plus any namespace of this lab's
    /// name that was not recorded, then lab directory `dir`. Keeps going past
    /// failures and returns them all. Safe to repeat.
    pub fn teardown(&self, dir: &Path) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for process in self.processes.iter().rev() {
            process.terminate(STOP_GRACE);
        }
        let mut namespaces: Vec<String> = self.namespaces.clone();
        match netns::list() {
            Ok(all) => namespaces.extend(
                all.into_iter()
                    .filter(|ns| Plan::is_lab_namespace(&self.name, ns))
                    .filter(|ns| !self.namespaces.contains(ns)),
            ),
            Err(e) => errors.push(e.to_string()),
        }
        for ns in namespaces.iter().rev() {
            if let Err(e) = netns::delete(ns) {
                errors.push(e.to_string());
            }
        }
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                errors.push(format!("cannot remove {}: {e}", dir.display()));
            }
            _ => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether this lab was left behind: attached, and its owner is gone.
    pub fn is_orphan(&self) -> bool {
        !self.detached && self.owner.is_none_or(|owner| !owner.is_alive())
    }
}

/// Names of the labs with a directory in `state_dir`.
pub fn lab_names(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| check_name(name).is_ok())
        .collect();
    names.sort();
    names
}

/// Tears down every attached lab in `state_dir` whose owner died without
/// tearing it down; returns their names. Labs without a state file yet
/// (being brought up right now) and detached labs are left alone.
pub fn reap_orphans(state_dir: &Path) -> Vec<String> {
    let mut reaped = Vec::new();
    for name in lab_names(state_dir) {
        let dir = state_dir.join(&name);
        let Ok(state) = State::load(&dir) else {
            continue;
        };
        if state.name == name && state.is_orphan() {
            // Another process may be reaping the same lab; what it removed
            // first is not an error worth reporting here.
            let _ = state.teardown(&dir);
            reaped.push(name);
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("oxwrt-lab-state-{tag}-{}", std::process::id()))
    }

    #[test]
    fn save_then_load_round_trips() -> Result<(), Box<dyn std::error::Error>> {
        let dir = scratch("roundtrip");
        fs::create_dir_all(&dir)?;
        let state = State {
            name: "t1".into(),
            owner: ProcId::this(),
            namespaces: vec!["oxl-t1-isp".into()],
            ..State::default()
        };
        state.save(&dir)?;
        assert_eq!(State::load(&dir)?, state);
        assert!(!state.is_orphan());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn a_dead_owner_makes_an_orphan() {
        let state = State {
            owner: Some(ProcId {
                pid: std::process::id(),
                start_time: u64::MAX,
            }),
            ..State::default()
        };
        assert!(state.is_orphan());
        let detached = State {
            detached: true,
            ..state
        };
        assert!(!detached.is_orphan());
    }

    #[test]
    fn teardown_removes_the_directory_and_is_repeatable() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = scratch("teardown");
        fs::create_dir_all(dir.join("root/etc/oxwrt"))?;
        // A name no namespace can have, so the test needs no root.
        let state = State {
            name: "no-such-lab-oxwrt-test".into(),
            ..State::default()
        };
        let first = state.teardown(&dir);
        assert!(!dir.exists());
        let second = state.teardown(&dir);
        // Listing namespaces may fail without iproute2; removal must not.
        for result in [first, second] {
            if let Err(errors) = result {
                assert!(
                    errors.iter().all(|e| !e.contains("cannot remove")),
                    "{errors:?}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn state_dir_must_be_a_real_directory() -> Result<(), Box<dyn std::error::Error>> {
        let base = scratch("checkdir");
        fs::create_dir_all(&base)?;
        let file = base.join("file");
        fs::write(&file, "")?;
        assert!(prepare_state_dir(&file).is_err());
        let link = base.join("link");
        std::os::unix::fs::symlink(&base, &link)?;
        assert!(matches!(
            prepare_state_dir(&link),
            Err(StateError::CheckDir { .. })
        ));
        assert!(prepare_state_dir(&base.join("new")).is_ok());
        fs::remove_dir_all(&base)?;
        Ok(())
    }
}
