//! Readiness: one line written to the descriptor oxinit passed in
//! `OXWRT_READY_FD`.

use std::io::Write;

/// Tells oxinit this process is ready. Does nothing when not started by
/// oxinit (no `OXWRT_READY_FD`). The descriptor is opened again through
/// `/proc/self/fd`, which needs no `unsafe` to turn a number into a file.
pub fn notify_ready() -> std::io::Result<()> {
    let Ok(fd) = std::env::var(bus_schema::bus::READY_FD_ENV) else {
        return Ok(());
    };
    let fd: u32 = fd.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is not a descriptor number: {fd:?}",
                bus_schema::bus::READY_FD_ENV
            ),
        )
    })?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{fd}"))?;
    file.write_all(b"READY=1\n")
}
