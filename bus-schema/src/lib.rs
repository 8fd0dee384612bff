//! Every type that crosses an oxwrt process boundary, so that a daemon and
//! its clients can never disagree: the config model and its validation
//! the bus interfaces and the control plane's protocol.

#![forbid(unsafe_code)]

pub mod bus;
pub mod config;
pub mod control;

/// Exit statuses of oxwrt processes (sysexits), which oxinit reads to
/// decide whether to respawn.
pub mod exit {
    /// A command line that makes no sense.
    pub const USAGE: u8 = 64;
    /// Try again later (oxctl: over the rate limit).
    pub const TEMPFAIL: u8 = 75;
    /// Internal error: respawned with backoff.
    pub const SOFTWARE: u8 = 70;
    /// Missing permission.
    pub const NO_PERM: u8 = 77;
    /// Bad config: marked failed at once, never respawned in a loop.
    pub const CONFIG: u8 = 78;
    /// A service it needs is unavailable (oxinit: the broker never came up).
    pub const UNAVAILABLE: u8 = 69;
}
