//! Spawning one service process: environment, uid and capabilities,
//! process group, piped output, the ready descriptor (fd 3) and the
//! sandbox (`sandbox/`). The reaper, not this
//! module, waits for the process.
//!
//! `unsafe` here (and in `sandbox/`): `pre_exec` runs between fork and
//! exec and may only make async-signal-safe calls (raw syscalls, no
//! allocation, no locks).
#![allow(unsafe_code)]

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::{ffi::OsStrExt, process::CommandExt},
    },
    process::{Command, Stdio},
};

use nix::{fcntl::OFlag, libc, unistd::pipe2};

use crate::{
    cgroup::{self, Cgroup},
    paths::Paths,
    sandbox::{Sandbox, SandboxError},
    spec::{Ready, ServiceSpec},
};

/// The descriptor a service writes its ready line to.
pub const READY_FD: i32 = 3;

/// A spawned process and the read ends of its pipes.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// Read end of the ready pipe (ready = fd only).
    pub ready: Option<OwnedFd>,
    /// Its stdout.
    pub stdout: OwnedFd,
    /// Its stderr.
    pub stderr: OwnedFd,
}

/// Errors of spawning a service.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The ready pipe could not be made.
    #[error("create ready pipe: {0}")]
    Pipe(nix::Error),
    /// A path contained a NUL byte.
    #[error("path with a NUL byte: {0}")]
    Nul(#[from] std::ffi::NulError),
    /// A capability name is not one Linux has.
    #[error("unknown capability {0:?}")]
    Capability(String),
    /// The sandbox could not be prepared.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// Its cgroup could not be made or opened.
    #[error("cgroup: {0}")]
    Cgroup(io::Error),
    /// fork/exec failed.
    #[error("exec {exec}: {source}")]
    Exec { exec: String, source: io::Error },
}

/// The environment every service gets (besides `PATH` and `RUST_LOG`
/// passed through).
pub fn service_env(spec: &ServiceSpec, paths: &Paths) -> Vec<(String, String)> {
    let mut env = vec![
        (
            bus_schema::bus::BUS_ADDRESS_ENV.to_owned(),
            paths.bus_address(),
        ),
        ("OXWRT_ETC".to_owned(), paths.etc.display().to_string()),
        ("OXWRT_RUN".to_owned(), paths.run.display().to_string()),
        ("OXWRT_STATE".to_owned(), paths.state.display().to_string()),
    ];
    if spec.ready == Ready::Fd {
        env.push((
            bus_schema::bus::READY_FD_ENV.to_owned(),
            READY_FD.to_string(),
        ));
    }
    if let Some(c) = &spec.container {
        env.extend(c.env.iter().cloned());
    }
    env
}

/// Where a service's process is placed besides its sandbox: made by the
/// manager, kept across respawns.
#[derive(Debug, Default, Clone, Copy)]
pub struct Placement<'a> {
    /// Its cgroup.
    pub cgroup: Option<&'a Cgroup>,
    /// An isolated container's network namespace.
    pub netns: Option<&'a OwnedFd>,
}

/// What a service keeps when oxinit starts it: its uid and gid, and the
/// capabilities of its spec as a bit mask. Everything else goes: every
/// other capability leaves the bounding set, and `no_new_privs` is set, so
/// neither setuid binaries nor file capabilities can give any back. A
/// root service without capabilities is root by uid only: it owns
/// root's files but holds no capability.
#[derive(Debug, Clone, Copy)]
struct Privileges {
    uid: u32,
    gid: u32,
    keep: u64,
}

/// `struct __user_cap_header_struct` of `<linux/capability.h>`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two of them (low and
/// high 32 bits of each set).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`.
const CAP_VERSION_3: u32 = 0x2008_0522;
/// Highest capability number the bounding-set loop tries; numbers the
/// kernel does not know fail with EINVAL and are skipped.
const CAP_MAX: u64 = 63;

impl Privileges {
    fn for_spec(spec: &ServiceSpec) -> Result<Self, SpawnError> {
        let mut keep = 0u64;
        for name in &spec.capabilities {
            let cap: caps::Capability = name
                .parse()
                .map_err(|_| SpawnError::Capability(name.clone()))?;
            keep |= cap.bitmask();
        }
        Ok(Self {
            uid: spec.user,
            gid: spec.container.as_ref().map_or(spec.user, |c| c.group),
            keep,
        })
    }

    /// Runs in the child between fork and exec, as root: shrink the
    /// bounding set, switch uid/gid keeping the permitted set, set
    /// permitted = effective = inheritable = ambient = `keep`, and set
    /// `no_new_privs`. Ambient capabilities survive the exec of an
    /// ordinary binary by a non-root uid; nothing else does.
    fn drop_to(&self) -> io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY (for the whole body): plain syscalls on integers and on
        // stack values that outlive each call.
        unsafe {
            for cap in 0..=CAP_MAX {
                if self.keep & (1 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0
                {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EINVAL) {
                        return Err(e);
                    }
                }
            }
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(self.gid, self.gid, self.gid))?;
            check(libc::setresuid(self.uid, self.uid, self.uid))?;
            let header = CapHeader {
                version: CAP_VERSION_3,
                pid: 0,
            };
            let half = |bits: u32| CapData {
                effective: bits,
                permitted: bits,
                inheritable: bits,
            };
            let data = [half(self.keep as u32), half((self.keep >> 32) as u32)];
            let rc = libc::syscall(libc::SYS_capset, &header, data.as_ptr());
            check(if rc < 0 { -1 } else { 0 })?;
            for cap in 0..=CAP_MAX {
                if self.keep & (1 << cap) != 0 {
                    check(libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE,
                        cap,
                        0,
                        0,
                    ))?;
                }
            }
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        }
    }
}

/// Spawns `spec`'s process in its own process group, placed per
/// `place`. `as_root`: oxinit may switch uid and make namespaces.
pub fn spawn(
    spec: &ServiceSpec,
    paths: &Paths,
    as_root: bool,
    place: Placement<'_>,
) -> Result<Spawned, SpawnError> {
    let exec = paths.resolve_exec(&spec.exec);
    let mut cmd = Command::new(&exec);
    cmd.args(&spec.args).env_clear();
    for key in ["PATH", "RUST_LOG"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(service_env(spec, paths))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cgroup) = place.cgroup {
        let procs = cgroup.procs().map_err(SpawnError::Cgroup)?;
        // SAFETY: `cgroup::join` only writes to descriptors opened before
        // fork (async-signal-safe). Registered first: every later hook,
        // and everything the service allocates, is charged to its cgroup.
        unsafe {
            cmd.pre_exec(move || cgroup::join(&procs));
        }
    }
    if let Some(netns) = place.netns {
        let fd = netns.as_raw_fd();
        // SAFETY: setns(2) on a descriptor that outlives the spawn;
        // async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut ready = None;
    if spec.ready == Ready::Fd {
        let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
        let fd = write.as_raw_fd();
        // SAFETY: the closure only makes the fcntl/dup2 syscalls, which
        // are async-signal-safe, and touches no memory of the parent
        // besides the copied integer.
        unsafe {
            cmd.pre_exec(move || {
                let rc = if fd == READY_FD {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, READY_FD)
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        ready = Some((read, write));
    }
    if spec.passwd_overlay && as_root {
        let source = CString::new(paths.bus_passwd().as_os_str().as_bytes())?;
        // SAFETY: unshare and mount are plain syscalls (async-signal-safe);
        // every string was allocated before fork and is only read here.
        unsafe {
            cmd.pre_exec(move || {
                let none = std::ptr::null();
                if libc::unshare(libc::CLONE_NEWNS) < 0
                    || libc::mount(
                        none,
                        c"/".as_ptr(),
                        none,
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) < 0
                    || libc::mount(
                        source.as_ptr(),
                        c"/etc/passwd".as_ptr(),
                        none,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) < 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    if as_root && !spec.privileged {
        let drop = Privileges::for_spec(spec)?;
        let sandbox = Sandbox::prepare(spec, paths, &exec)?;
        // SAFETY: `Sandbox::enter_namespace`, `Privileges::drop_to` and
        // `Sandbox::confine` make only raw syscalls (async-signal-safe) on
        // values prepared before fork. Registered last, so the seccomp
        // filter comes after every other hook's syscalls.
        unsafe {
            cmd.pre_exec(move || {
                sandbox.enter_namespace()?;
                drop.drop_to()?;
                sandbox.confine()
            });
        }
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Exec {
        exec: exec.display().to_string(),
        source,
    })?;
    let ready = ready.map(|(read, write)| {
        drop(write);
        read
    });
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("stdout and stderr are piped");
    };
    // The child is dropped, not waited for: the reaper owns reaping.
    Ok(Spawned {
        pid: child.id(),
        ready,
        stdout: OwnedFd::from(stdout),
        stderr: OwnedFd::from(stderr),
    })
}

#[cfg(test)]
mod tests {
    use std::{io::Read, path::Path};

    use super::*;
    use crate::spec::Phase;

    #[test]
    fn env_group_and_ready_fd_reach_the_child() {
        let paths = Paths::new(Path::new("/tmp/oxinit-spawn-test"), "/bin".into());
        let mut spec = ServiceSpec::new("t", "/bin/sh", Phase::Services);
        spec.args = vec![
            "-c".into(),
            "echo \"$OXWRT_BUS_ADDRESS $OXWRT_READY_FD $HOME\" >&3; \
             echo $$ $(cut -d' ' -f5 /proc/$$/stat); echo err >&2"
                .into(),
        ];
        let s = spawn(&spec, &paths, false, Placement::default()).expect("spawns");
        let mut ready = String::new();
        std::fs::File::from(s.ready.expect("ready pipe"))
            .read_to_string(&mut ready)
            .expect("reads");
        assert_eq!(
            ready,
            "unix:path=/tmp/oxinit-spawn-test/run/oxwrt/bus.sock 3 \n"
        );
        let mut out = String::new();
        std::fs::File::from(s.stdout)
            .read_to_string(&mut out)
            .expect("reads");
        assert_eq!(out, format!("{0} {0}\n", s.pid), "own process group");
        let mut err = String::new();
        std::fs::File::from(s.stderr)
            .read_to_string(&mut err)
            .expect("reads");
        assert_eq!(err, "err\n");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(s.pid).expect("pid"));
        let _ = nix::sys::wait::waitpid(pid, None);
    }

    /// Runs `spec` (as root) with a shell that prints its own credentials;
    /// the `/proc/self/status` fields by name, whitespace squashed.
    fn credentials(mut spec: ServiceSpec) -> std::collections::BTreeMap<String, String> {
        let paths = Paths::new(Path::new("/tmp/oxinit-spawn-test"), "/bin".into());
        spec.exec = "/bin/sh".into();
        spec.ready = Ready::Spawned;
        spec.args = vec!["-c".into(), "cat /proc/self/status".into()];
        let s = spawn(&spec, &paths, true, Placement::default()).expect("spawns");
        let mut out = String::new();
        std::fs::File::from(s.stdout)
            .read_to_string(&mut out)
            .expect("reads");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(s.pid).expect("pid"));
        let _ = nix::sys::wait::waitpid(pid, None);
        out.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.split_whitespace().collect::<Vec<_>>().join(" "),
                )
            })
            .collect()
    }

    const CAP_SETS: [&str; 5] = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"];

    #[test]
    fn a_service_of_another_uid_keeps_only_its_capabilities() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIP: switching uid needs root");
            return;
        }
        let mut spec = ServiceSpec::new("t", "/bin/sh", Phase::Services);
        spec.user = 7199;
        spec.capabilities = vec!["CAP_NET_ADMIN".into(), "CAP_NET_RAW".into()];
        let c = credentials(spec);
        assert_eq!(c["Uid"], "7199 7199 7199 7199", "{c:?}");
        assert_eq!(c["Gid"], "7199 7199 7199 7199", "{c:?}");
        assert_eq!(c["Groups"], "", "{c:?}");
        // CAP_NET_ADMIN is 12, CAP_NET_RAW 13.
        for set in CAP_SETS {
            assert_eq!(c[set], "0000000000003000", "{set} in {c:?}");
        }
        assert_eq!(c["NoNewPrivs"], "1", "{c:?}");
    }

    #[test]
    fn a_root_service_without_capabilities_holds_none() {
        if !nix::unistd::geteuid().is_root() {
            println!("SKIP: needs root");
            return;
        }
        let c = credentials(ServiceSpec::new("t", "/bin/sh", Phase::Services));
        assert_eq!(c["Uid"], "0 0 0 0", "{c:?}");
        for set in CAP_SETS {
            assert_eq!(c[set], "0000000000000000", "{set} in {c:?}");
        }
        assert_eq!(c["NoNewPrivs"], "1", "{c:?}");
    }

    #[test]
    fn an_unknown_capability_is_an_error_before_fork() {
        let paths = Paths::new(Path::new("/tmp/oxinit-spawn-test"), "/bin".into());
        let mut spec = ServiceSpec::new("t", "/bin/true", Phase::Services);
        spec.user = 7199;
        spec.capabilities = vec!["CAP_FLY".into()];
        let err = spawn(&spec, &paths, true, Placement::default())
            .map(|s| s.pid)
            .expect_err("refused");
        assert!(
            matches!(err, SpawnError::Capability(ref c) if c == "CAP_FLY"),
            "{err}"
        );
    }
}
