//! A service's mount namespace: the whole system read-only, the
//! directories its profile may write read-write, and a private, empty
//! `/tmp`. Directories it needs that live under `/tmp` (a lab or test
//! root, a CI checkout) are carried into the private `/tmp` whole.
//!
//! The plan is built before fork; [`Plan::enter`] runs between fork and
//! exec and may only make async-signal-safe calls: raw syscalls on
//! strings allocated before fork, no allocation, no locks.
#![allow(unsafe_code)]

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use nix::libc;

/// At most this many trees are carried into a private `/tmp`.
const MAX_KEEP: usize = 8;
/// The private `/tmp`: small, no devices, no setuid.
const TMP: &std::ffi::CStr = c"/tmp";
const TMP_OPTIONS: &std::ffi::CStr = c"mode=1777,size=16m";
const NO_SETATTR: &std::ffi::CStr =
    c"oxinit: this kernel has no mount_setattr (Linux < 5.12); the system stays writable in this service's mount namespace\n";

/// `struct mount_attr` of `<linux/mount.h>` (libc has no binding yet).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// A tree carried into the private `/tmp`, and the directories to make
/// there first (parents before children).
#[derive(Debug)]
struct Keep {
    path: CString,
    parents: Vec<CString>,
}

/// What [`Plan::enter`] does, computed before fork.
#[derive(Debug)]
pub struct Plan {
    writable: Vec<CString>,
    keep: Vec<Keep>,
}

/// Errors of planning a mount namespace.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A path contained a NUL byte.
    #[error("path with a NUL byte: {0}")]
    Nul(#[from] std::ffi::NulError),
    /// A directory to mount writable does not exist (oxinit makes those
    /// under `$STATE`; `$ETC` must exist).
    #[error("{0} does not exist")]
    Missing(PathBuf),
    /// More trees under /tmp than [`MAX_KEEP`].
    #[error("more than {MAX_KEEP} directories under /tmp to carry into a private /tmp")]
    TooMany,
}

fn cstring(p: &Path) -> Result<CString, std::ffi::NulError> {
    CString::new(p.as_os_str().as_bytes())
}

impl Plan {
    /// `writable`: directories that stay read-write; `needed`: every other
    /// path the service uses (its binary's directory, `$RUN`, read grants),
    /// which matter only when they live under `/tmp`.
    pub fn new(writable: &[PathBuf], needed: &[PathBuf]) -> Result<Self, MountError> {
        if let Some(missing) = writable.iter().find(|w| !w.is_dir()) {
            return Err(MountError::Missing(missing.clone()));
        }
        let tmp = Path::new("/tmp");
        let mut under: Vec<&Path> = writable
            .iter()
            .chain(needed)
            .map(PathBuf::as_path)
            .filter(|p| p.starts_with(tmp) && *p != tmp)
            .collect();
        // Outermost first, so a tree beneath one already kept is dropped.
        under.sort_by_key(|p| p.components().count());
        let mut tops: Vec<&Path> = Vec::new();
        for p in under {
            if !tops.iter().any(|t| p.starts_with(t)) {
                tops.push(p);
            }
        }
        if tops.len() > MAX_KEEP {
            return Err(MountError::TooMany);
        }
        let keep = tops
            .into_iter()
            .map(|p| {
                let parents = p
                    .ancestors()
                    .skip(1)
                    .take_while(|a| *a != tmp)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .map(cstring)
                    .collect::<Result<_, _>>()?;
                Ok(Keep {
                    path: cstring(p)?,
                    parents,
                })
            })
            .collect::<Result<_, MountError>>()?;
        Ok(Self {
            writable: writable
                .iter()
                .map(|p| cstring(p))
                .collect::<Result<_, _>>()?,
            keep,
        })
    }

    /// Runs in the child, as root, before the uid switch: a new mount
    /// namespace, everything read-only and nosuid but the writable
    /// directories, and a fresh `/tmp` with the kept trees moved into it.
    pub fn enter(&self) -> io::Result<()> {
        let check = |rc: libc::c_long| {
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let none = std::ptr::null::<libc::c_char>();
        // SAFETY (for the whole body): plain syscalls on integers, on
        // strings allocated before fork and on stack values that outlive
        // each call.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS).into())?;
            check(
                libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
                .into(),
            )?;
            // Each writable directory becomes a mount of its own, so it can
            // stay writable under a read-only parent.
            for w in &self.writable {
                check(
                    libc::mount(
                        w.as_ptr(),
                        w.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    )
                    .into(),
                )?;
            }
            let attr = |set: u64, clr: u64| MountAttr {
                attr_set: set,
                attr_clr: clr,
                propagation: 0,
                userns_fd: 0,
            };
            let setattr = |path: &std::ffi::CStr, flags: libc::c_uint, a: &MountAttr| {
                libc::syscall(
                    libc::SYS_mount_setattr,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    flags,
                    a as *const MountAttr,
                    size_of::<MountAttr>(),
                )
            };
            let ro = attr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0);
            if setattr(c"/", AT_RECURSIVE, &ro) < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ENOSYS) {
                    return Err(e);
                }
                // Linux before 5.12: no read-only view, landlock alone
                // guards writes. Said on stderr, which oxinit logs (a
                // static message: nothing may be allocated here).
                let msg = NO_SETATTR.to_bytes();
                libc::write(2, msg.as_ptr().cast(), msg.len());
            } else {
                // Writable, so nothing in it may be run or be a device.
                let rw = attr(MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY);
                for w in &self.writable {
                    check(setattr(w, 0, &rw))?;
                }
            }
            // Detached copies of the trees under /tmp, taken before the
            // fresh /tmp hides them.
            let mut trees = [-1 as libc::c_int; MAX_KEEP];
            for (slot, k) in trees.iter_mut().zip(&self.keep) {
                let fd = libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    k.path.as_ptr(),
                    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
                );
                check(fd)?;
                *slot = fd as libc::c_int;
            }
            check(
                libc::mount(
                    c"tmpfs".as_ptr(),
                    TMP.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    TMP_OPTIONS.as_ptr().cast(),
                )
                .into(),
            )?;
            for (fd, k) in trees.iter().zip(&self.keep) {
                for dir in k.parents.iter().chain(std::iter::once(&k.path)) {
                    if libc::mkdir(dir.as_ptr(), 0o755) < 0 {
                        let e = io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::EEXIST) {
                            return Err(e);
                        }
                    }
                }
                check(libc::syscall(
                    libc::SYS_move_mount,
                    *fd,
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    k.path.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                ))?;
                libc::close(*fd);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_outermost_trees_under_tmp_are_carried() {
        let lab = tempfile::tempdir_in("/tmp").expect("tempdir");
        let root = lab.path().join("root");
        let state = root.join("var/lib/oxwrt/dhcpd");
        std::fs::create_dir_all(&state).expect("mkdir");
        let plan = Plan::new(
            std::slice::from_ref(&state),
            &[
                root.join("run/oxwrt"),
                root.clone(),
                "/work/bin".into(),
                "/tmp".into(),
            ],
        )
        .expect("plan");
        let keep: Vec<_> = plan.keep.iter().map(|k| k.path.clone()).collect();
        assert_eq!(keep, [cstring(&root).expect("cstring")]);
        assert_eq!(
            plan.keep[0].parents,
            [cstring(lab.path()).expect("cstring")],
            "parents, outermost first, without /tmp itself"
        );
        assert_eq!(plan.writable, [cstring(&state).expect("cstring")]);
    }

    #[test]
    fn a_missing_writable_directory_is_an_error_before_fork() {
        let err = Plan::new(&["/nonexistent/oxwrt".into()], &[]).expect_err("missing");
        assert!(matches!(err, MountError::Missing(p) if p == Path::new("/nonexistent/oxwrt")));
    }
}
