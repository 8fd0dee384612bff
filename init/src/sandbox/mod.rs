//! A service's sandbox beyond its uid and capabilities (those are
//! `spawn.rs`): a mount namespace with a read-only view of the system and
//! a private `/tmp`, a landlock ruleset, and a seccomp allow-list, each
//! from the service's spec. Everything is prepared before fork; between
//! fork and exec the child only makes syscalls, in this order:
//!
//! 1. [`Sandbox::enter_namespace`], as root (mounting needs it);
//! 2. the uid switch, capabilities and `no_new_privs` (`spawn.rs`);
//! 3. [`Sandbox::confine`]: landlock, then seccomp last, so the filter
//!    need not allow the set-up calls, only the exec and what follows.
#![allow(unsafe_code)]

pub mod files;
mod landlock;
mod mounts;
pub mod seccomp;

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use nix::libc;
use seccompiler::sock_filter;

use crate::{paths::Paths, spec::ServiceSpec};

/// Errors of preparing a sandbox (before fork).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec names a files profile `files.rs` does not have.
    #[error("unknown files profile {0:?}")]
    UnknownFiles(String),
    /// The landlock ruleset could not be built.
    #[error("landlock ruleset: {0}")]
    Landlock(#[from] ::landlock::RulesetError),
    /// The mount namespace could not be planned.
    #[error("mount namespace: {0}")]
    Mounts(#[from] mounts::MountError),
    /// A root directory with a NUL byte.
    #[error("rootfs: {0}")]
    Root(#[from] std::ffi::NulError),
}

/// Says once, at start-up, which layers this kernel and architecture
/// lack; services then start without them rather than not at all.
pub fn report() {
    if !seccomp::compiled() {
        tracing::warn!("no seccomp filters for this architecture; services run without one");
    }
    match landlock::ruleset(&[], &[], &[]) {
        Ok(Some(_)) => {}
        Ok(None) => tracing::warn!("this kernel has no landlock; services run without a ruleset"),
        Err(e) => tracing::warn!("landlock: {e}"),
    }
}

/// A prepared sandbox; [`Sandbox::enter_namespace`] and
/// [`Sandbox::confine`] apply it in the child.
#[derive(Debug, Default)]
pub struct Sandbox {
    mounts: Option<mounts::Plan>,
    /// A container's `rootfs`, its root after the mounts.
    root: Option<CString>,
    landlock: Option<OwnedFd>,
    seccomp: Option<&'static [sock_filter]>,
}

impl Sandbox {
    /// Prepares `spec`'s sandbox, `exec` being its resolved binary: its
    /// files profile (`landlock`) gives the mount namespace and the
    /// landlock ruleset, its `seccomp` policy the filter. A spec with
    /// neither gets an empty sandbox. Unknown names were refused with the
    /// specs (`spec::merge`); here they are an error all the same.
    pub fn prepare(spec: &ServiceSpec, paths: &Paths, exec: &Path) -> Result<Self, SandboxError> {
        let mut sandbox = Sandbox::default();
        if let Some(container) = &spec.container {
            // The operator's binary: no policy or profile of ours fits
            // it; the read-only view of the system (or of its own root)
            // and a private /tmp do.
            let seen = match &container.rootfs {
                Some(root) => {
                    sandbox.root = Some(CString::new(root.as_os_str().as_bytes())?);
                    root.clone()
                }
                None => exec.parent().map_or_else(|| "/".into(), Path::to_path_buf),
            };
            sandbox.mounts = Some(mounts::Plan::new(&[], &[seen])?);
            return Ok(sandbox);
        }
        if let Some(name) = &spec.seccomp {
            // None only where seccompiler cannot compile (said at start-up).
            sandbox.seccomp = seccomp::program(name);
        }
        let Some(name) = &spec.landlock else {
            return Ok(sandbox);
        };
        let grants =
            files::profile(name).ok_or_else(|| SandboxError::UnknownFiles(name.clone()))?;
        for g in grants {
            tracing::debug!(service = spec.name, anchor = ?g.anchor, write = g.write, why = g.why, "files grant");
        }
        let (mut read, writable) = files::resolve(grants, paths, &spec.name);
        read.push(paths.run.clone());
        // The mounts also carry the binary's directory; landlock opens
        // only the binary itself.
        let mut carried = read.clone();
        carried.extend(exec.parent().map(Path::to_path_buf));
        sandbox.mounts = Some(mounts::Plan::new(&writable, &carried)?);

        let system = files::SYSTEM.iter().map(|(p, _)| Path::new(*p));
        let read: Vec<&Path> = system.chain(read.iter().map(PathBuf::as_path)).collect();
        let devices = files::DEVICES.iter().map(|(p, _)| Path::new(*p));
        let write: Vec<&Path> = devices
            .chain(writable.iter().map(PathBuf::as_path))
            .collect();
        let libraries = files::LIBRARIES.iter().map(|(p, _)| Path::new(*p));
        let execute: Vec<&Path> = libraries.chain(std::iter::once(exec)).collect();
        sandbox.landlock = landlock::ruleset(&read, &execute, &write)?;
        Ok(sandbox)
    }

    /// In the child, as root: the mount namespace, if any, and the
    /// container's root.
    pub fn enter_namespace(&self) -> io::Result<()> {
        if let Some(plan) = &self.mounts {
            plan.enter()?;
        }
        if let Some(root) = &self.root {
            // SAFETY: plain syscalls on a string made before fork.
            if unsafe { libc::chroot(root.as_ptr()) } < 0
                || unsafe { libc::chdir(c"/".as_ptr()) } < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// In the child, after `no_new_privs`: the landlock ruleset, then the
    /// seccomp filter.
    pub fn confine(&self) -> io::Result<()> {
        if let Some(fd) = &self.landlock {
            // SAFETY: a plain syscall on a descriptor owned by `self`.
            let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0) };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(program) = self.seccomp {
            seccompiler::apply_filter(program).map_err(|e| match e {
                seccompiler::Error::Seccomp(e) | seccompiler::Error::Prctl(e) => e,
                _ => io::Error::from_raw_os_error(libc::EINVAL),
            })?;
        }
        Ok(())
    }
}
