//! Readiness: one line written to the descriptor oxinit passed in
//! `OXWRT_READY_FD`.
//!
//! The one place of the daemon framework with `unsafe`: turning the
//! inherited descriptor number into a file. Opening `/proc/self/fd/N`
//! instead would need no `unsafe`, but the kernel checks the pipe's owner
//! (root, who made it) on that open, so a daemon with its own uid is
//! refused.
#![allow(unsafe_code)]

use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the descriptor has been taken, so it is never owned twice.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Tells oxinit this process is ready, once; later calls do nothing, as
/// does a process not started by oxinit (no `OXWRT_READY_FD`).
pub fn notify_ready() -> std::io::Result<()> {
    let Ok(value) = std::env::var(bus_schema::bus::READY_FD_ENV) else {
        return Ok(());
    };
    let fd: RawFd = value.parse().ok().filter(|fd| *fd > 2).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is not a descriptor above 2: {value:?}",
                bus_schema::bus::READY_FD_ENV
            ),
        )
    })?;
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    // Refuse a number that is not an open descriptor of this process:
    // from_raw_fd must get an open one.
    std::fs::metadata(format!("/proc/self/fdinfo/{fd}"))?;
    // SAFETY: oxinit opened `fd` for this process and hands it over through
    // the environment; nothing else in the process uses it, the check
    // above shows it is open, and TAKEN makes this the only owner. Dropping
    // the file closes it, which also tells oxinit nothing more will come.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(b"READY=1\n")
}
