//! Paths and the bus address, as oxinit hands them to every service.

use std::path::PathBuf;

/// Where a daemon's files and bus are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// Bus address (`unix:path=$RUN/bus.sock`).
    pub bus: String,
    /// `$ETC`: the config pair.
    pub etc: PathBuf,
    /// `$RUN`: runtime files.
    pub run: PathBuf,
    /// `$STATE`: persistent state.
    pub state: PathBuf,
}

impl Env {
    /// From `OXWRT_BUS_ADDRESS`, `OXWRT_ETC`, `OXWRT_RUN` and
    /// `OXWRT_STATE`, defaulting to the firmware's paths under `/`.
    pub fn from_process() -> Self {
        let path = |var: &str, default: &str| {
            std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        let run = path("OXWRT_RUN", "/run/oxwrt");
        let bus = std::env::var(bus_schema::bus::BUS_ADDRESS_ENV)
            .unwrap_or_else(|_| bus_schema::bus::address_for(&run));
        Self {
            bus,
            etc: path("OXWRT_ETC", "/etc/oxwrt"),
            run,
            state: path("OXWRT_STATE", "/var/lib/oxwrt"),
        }
    }
}
