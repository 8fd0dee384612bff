//! The boot phase, exposed as the `Phase` property of `org.oxwrt.Init1`.

/// Where boot is: each phase starts when the previous one is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BootPhase {
    /// PID 1 mounts, directories, the broker policy.
    Early,
    /// The broker is starting; then oxinit joins the bus.
    Bus,
    /// configd is starting.
    Config,
    /// Every other service is starting.
    Services,
    /// Everything is started (or failed).
    Running,
    /// Services are being stopped.
    Shutdown,
}

impl BootPhase {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BootPhase::Early => "early",
            BootPhase::Bus => "bus",
            BootPhase::Config => "config",
            BootPhase::Services => "services",
            BootPhase::Running => "running",
            BootPhase::Shutdown => "shutdown",
        }
    }
}
