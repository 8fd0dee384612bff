//! What goes into the [`Client`](super::Client) and what comes out: the
//! time it is told, its inputs, the actions it returns, and its states.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::lease::Lease;

/// The time now, as the caller's clocks read it: monotonic for timers,
/// wall-clock (seconds since the Unix epoch) for stamping and judging
/// leases that outlive the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub at: Instant,
    /// Wall-clock time, seconds since the Unix epoch.
    pub unix: u64,
}

/// Something for the client to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Begin, with the lease remembered from an earlier run (INIT-REBOOT
    /// when it is still valid). Ignored unless the client is idle.
    Start(Option<Lease>),
    /// A datagram arrived on port 68.
    Packet(&'a [u8]),
    /// The time from [`Client::deadline`] has come.
    Timer,
    /// An operator's or netd's command.
    Command(Command),
}

/// Commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Renew now (BOUND), retransmit now (RENEWING, REBINDING), or start
    /// discovering now (idle, INIT, SELECTING).
    Renew,
    /// Release the lease to the server and go idle.
    Release,
    /// Go idle; release first when `release`, otherwise keep the persisted
    /// lease for INIT-REBOOT.
    Stop {
        /// Release the lease first.
        release: bool,
    },
}

/// Where a datagram goes (always to the server port, 67).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255.
    Broadcast,
    /// One server.
    Unicast(Ipv4Addr),
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a datagram.
    Send {
        /// Where to.
        to: Destination,
        /// The DHCP message.
        packet: Vec<u8>,
    },
    /// A new lease: configure it, replacing whatever this client had.
    Bound(Lease),
    /// The same address again, with new times (and options, which may
    /// have changed).
    Renewed(Lease),
    /// The lease (a bound one, or the remembered one a restart tried to
    /// reuse) is gone: the server refused it, it expired (the remembered
    /// one too, when no server confirmed it), or it was released. Remove
    /// it.
    Lost,
    /// Write this lease to disk (for INIT-REBOOT after a restart).
    Persist(Lease),
    /// Remove the lease from disk.
    Forget,
}

/// The RFC 2131 state, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// Not started, released or stopped.
    Idle,
    /// Waiting to send DISCOVER.
    Init,
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST sent for an OFFER, waiting for the ACK.
    Requesting,
    /// Holding a lease until T1.
    Bound,
    /// Asking the server that granted the lease to extend it.
    Renewing,
    /// Asking any server to extend it.
    Rebinding,
    /// REQUEST for the remembered address sent, waiting for the ACK.
    Rebooting,
}
