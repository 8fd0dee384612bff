//! Spawning one service process: environment, uid, process group,
//! piped output and the ready descriptor (fd 3). The reaper, not this
//! module, waits for the process.
//!
//! The one module with `unsafe`: `pre_exec` runs between fork and exec
//! and may only make async-signal-safe calls (raw syscalls, no
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
    paths::Paths,
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
    env
}

/// Spawns `spec`'s process in its own process group. `as_root`: oxinit
/// may switch uid and make mount namespaces.
pub fn spawn(spec: &ServiceSpec, paths: &Paths, as_root: bool) -> Result<Spawned, SpawnError> {
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
    if as_root && spec.user != nix::unistd::geteuid().as_raw() {
        cmd.uid(spec.user).gid(spec.user);
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
        let s = spawn(&spec, &paths, false).expect("spawns");
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
}
