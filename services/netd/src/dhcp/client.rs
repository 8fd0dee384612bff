//! The DHCPv4 client as a pure state machine (RFC 2131, 4.4): packets,
//! timer expiries and commands go in, actions come out. It never reads a
//! clock, draws randomness only from the seed it was given, and never
//! touches a socket or the kernel.
//!
//! ```text
//!  start, no lease ──> INIT ──DISCOVER──> SELECTING ──OFFER/REQUEST──> REQUESTING ──ACK──> BOUND
//!  start, lease ──> INIT-REBOOT ──REQUEST──> REBOOTING ──ACK──> BOUND
//!  BOUND ──T1: unicast REQUEST──> RENEWING ──T2: broadcast REQUEST──> REBINDING
//!  RENEWING/REBINDING ──ACK──> BOUND
//!  NAK (REQUESTING, REBOOTING, RENEWING, REBINDING), lease expiry ──> INIT
//! ```
//!
//! INIT and INIT-REBOOT are passed through at once, except that INIT waits
//! out a backoff after repeated NAKs. `Idle` is before start and after a
//! release or stop.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use super::action::{Action, Command, Destination, Input, Now, StateKind};
use super::lease::{INFINITE, Lease};
use super::packet::{self, Identity, Reply, ReplyKind, RequestFields};

/// Retransmission starts at 4 s and doubles up to 64 s (RFC 2131, 4.1).
const FIRST_RETRY: Duration = Duration::from_secs(4);
const MAX_RETRY: Duration = Duration::from_secs(64);
/// Retransmissions are moved by up to this much either way.
const JITTER_MS: u64 = 1000;
/// REQUESTs sent while REQUESTING before starting over with DISCOVER.
const MAX_REQUESTS: u32 = 4;
/// REQUESTs sent while REBOOTING before giving up on the remembered lease.
const MAX_REBOOT_REQUESTS: u32 = 3;
/// While RENEWING or REBINDING, wait half the time left, at least this.
const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);

/// One request/reply transaction.
#[derive(Debug, Clone, Copy)]
struct Exchange {
    xid: u32,
    started: Instant,
    sent: u32,
    retry: Instant,
}

/// A lease held, with its deadlines (`None`: never).
#[derive(Debug, Clone)]
struct Held {
    lease: Lease,
    t1: Option<Instant>,
    t2: Option<Instant>,
    end: Option<Instant>,
}

#[derive(Debug, Clone)]
enum State {
    Idle,
    Init {
        at: Instant,
    },
    Selecting(Exchange),
    Requesting {
        ex: Exchange,
        offered: Ipv4Addr,
        server: Ipv4Addr,
    },
    Bound(Held),
    Renewing {
        held: Held,
        ex: Exchange,
    },
    Rebinding {
        held: Held,
        ex: Exchange,
    },
    Rebooting {
        ex: Exchange,
        remembered: Lease,
    },
}

/// SplitMix64: enough for transaction ids and jitter, reproducible from a
/// seed in tests.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The client of one device.
#[derive(Debug, Clone)]
pub struct Client {
    id: Identity,
    state: State,
    rng: Rng,
    /// NAKs since the last ACK: the second and later wait before DISCOVER.
    naks: u32,
    /// When the remembered lease ends, after INIT-REBOOT got no answer:
    /// netd keeps using it meanwhile (RFC 2131, 3.2), so its end is a loss.
    unconfirmed: Option<Instant>,
}

fn after(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

impl Client {
    /// A client for `id`, idle until [`Input::Start`]. `seed` drives
    /// transaction ids and jitter.
    pub fn new(id: Identity, seed: u64) -> Self {
        Self {
            id,
            state: State::Idle,
            rng: Rng(seed),
            naks: 0,
            unconfirmed: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> StateKind {
        match &self.state {
            State::Idle => StateKind::Idle,
            State::Init { .. } => StateKind::Init,
            State::Selecting(_) => StateKind::Selecting,
            State::Requesting { .. } => StateKind::Requesting,
            State::Bound(_) => StateKind::Bound,
            State::Renewing { .. } => StateKind::Renewing,
            State::Rebinding { .. } => StateKind::Rebinding,
            State::Rebooting { .. } => StateKind::Rebooting,
        }
    }

    /// The lease held (BOUND, RENEWING, REBINDING).
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(held) | State::Renewing { held, .. } | State::Rebinding { held, .. } => {
                Some(&held.lease)
            }
            _ => None,
        }
    }

    /// When to feed [`Input::Timer`] next; `None`: only packets and
    /// commands matter now. Read it after every [`Client::handle`].
    pub fn deadline(&self) -> Option<Instant> {
        let earliest = |a: Option<Instant>, b: Instant| Some(a.map_or(b, |a| a.min(b)));
        let state = match &self.state {
            State::Idle => None,
            State::Init { at } => Some(*at),
            State::Selecting(ex) | State::Requesting { ex, .. } | State::Rebooting { ex, .. } => {
                Some(ex.retry)
            }
            State::Bound(held) => held.t1.or(held.t2).or(held.end),
            State::Renewing { held, ex } => earliest(held.t2.or(held.end), ex.retry),
            State::Rebinding { held, ex } => earliest(held.end, ex.retry),
        };
        match self.unconfirmed {
            Some(end) => earliest(state, end),
            None => state,
        }
    }

    /// Reacts to `input` at `now`.
    pub fn handle(&mut self, now: Now, input: Input<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start(remembered) => self.start(now, remembered, &mut out),
            Input::Packet(bytes) => match packet::parse(bytes, &self.id.mac) {
                Some(reply) => self.reply(now, reply, &mut out),
                None => tracing::trace!("ignored a datagram that is no reply to us"),
            },
            Input::Timer => self.timer(now, &mut out),
            Input::Command(c) => self.command(now, c, &mut out),
        }
        out
    }

    fn start(&mut self, now: Now, remembered: Option<Lease>, out: &mut Vec<Action>) {
        if !matches!(self.state, State::Idle) {
            return;
        }
        match remembered {
            Some(lease) if lease.valid_at(now.unix) && packet::usable(lease.address.addr()) => {
                self.reboot(now, lease, out)
            }
            Some(_) => {
                out.push(Action::Forget);
                self.discover(now, out)
            }
            None => self.discover(now, out),
        }
    }

    /// The retransmission delay after the `sent`th transmission: 4, 8, 16,
    /// 32, 64, 64 ... seconds, each moved by up to a second either way.
    fn backoff(&mut self, sent: u32) -> Duration {
        let shift = sent.saturating_sub(1).min(4);
        let base = FIRST_RETRY.saturating_mul(1 << shift).min(MAX_RETRY);
        let jitter = self.rng.next() % (2 * JITTER_MS + 1);
        (base + Duration::from_millis(jitter)).saturating_sub(Duration::from_millis(JITTER_MS))
    }

    fn exchange(&mut self, now: Now) -> Exchange {
        Exchange {
            xid: self.rng.next() as u32,
            started: now.at,
            sent: 0,
            retry: now.at,
        }
    }

    /// Marks one more transmission of `ex` and schedules the next.
    fn sent(&mut self, now: Now, mut ex: Exchange) -> Exchange {
        ex.sent = ex.sent.saturating_add(1);
        ex.retry = now.at + self.backoff(ex.sent);
        ex
    }

    fn elapsed(now: Now, ex: &Exchange) -> u16 {
        u16::try_from(now.at.saturating_duration_since(ex.started).as_secs()).unwrap_or(u16::MAX)
    }

    fn send(&self, out: &mut Vec<Action>, to: Destination, packet: Vec<u8>) {
        out.push(Action::Send { to, packet });
    }

    /// INIT: a fresh DISCOVER, now.
    fn discover(&mut self, now: Now, out: &mut Vec<Action>) {
        let ex = self.exchange(now);
        self.send_discover(now, ex, out);
    }

    fn send_discover(&mut self, now: Now, ex: Exchange, out: &mut Vec<Action>) {
        let bytes = packet::discover(&self.id, ex.xid, Self::elapsed(now, &ex));
        self.send(out, Destination::Broadcast, bytes);
        let ex = self.sent(now, ex);
        self.state = State::Selecting(ex);
    }

    /// INIT after a NAK: at once the first time, then after a backoff, so
    /// that a server that offers and then refuses cannot make us loop.
    fn restart(&mut self, now: Now, out: &mut Vec<Action>) {
        self.naks = self.naks.saturating_add(1);
        if self.naks <= 1 {
            self.discover(now, out);
        } else {
            let delay = self.backoff(self.naks - 1);
            self.state = State::Init { at: now.at + delay };
        }
    }

    /// INIT-REBOOT: ask for the remembered address, no server named.
    fn reboot(&mut self, now: Now, remembered: Lease, out: &mut Vec<Action>) {
        let ex = self.exchange(now);
        self.send_reboot(now, ex, remembered, out);
    }

    fn send_reboot(&mut self, now: Now, ex: Exchange, remembered: Lease, out: &mut Vec<Action>) {
        let fields = RequestFields {
            requested: Some(remembered.address.addr()),
            ..Default::default()
        };
        let bytes = packet::request(&self.id, ex.xid, Self::elapsed(now, &ex), fields);
        self.send(out, Destination::Broadcast, bytes);
        let ex = self.sent(now, ex);
        self.state = State::Rebooting { ex, remembered };
    }

    fn send_select(
        &mut self,
        now: Now,
        ex: Exchange,
        offered: Ipv4Addr,
        server: Ipv4Addr,
        out: &mut Vec<Action>,
    ) {
        let fields = RequestFields {
            requested: Some(offered),
            server: Some(server),
            ciaddr: None,
        };
        let bytes = packet::request(&self.id, ex.xid, Self::elapsed(now, &ex), fields);
        self.send(out, Destination::Broadcast, bytes);
        let ex = self.sent(now, ex);
        self.state = State::Requesting {
            ex,
            offered,
            server,
        };
    }

    /// A REQUEST extending `held`: unicast to its server while RENEWING,
    /// broadcast while REBINDING; the retry comes after half the time left
    /// (to T2, or to the end), at least a minute (RFC 2131, 4.4.5).
    fn send_extend(
        &mut self,
        now: Now,
        held: Held,
        ex: Exchange,
        rebind: bool,
        out: &mut Vec<Action>,
    ) {
        let fields = RequestFields {
            ciaddr: Some(held.lease.address.addr()),
            ..Default::default()
        };
        let to = if rebind {
            Destination::Broadcast
        } else {
            Destination::Unicast(held.lease.server)
        };
        let bytes = packet::request(&self.id, ex.xid, Self::elapsed(now, &ex), fields);
        self.send(out, to, bytes);
        let limit = if rebind { held.end } else { held.t2 };
        let wait = limit.map_or(MIN_RENEW_RETRY, |l| {
            (l.saturating_duration_since(now.at) / 2).max(MIN_RENEW_RETRY)
        });
        let ex = Exchange {
            sent: ex.sent.saturating_add(1),
            retry: now.at + wait,
            ..ex
        };
        self.state = if rebind {
            State::Rebinding { held, ex }
        } else {
            State::Renewing { held, ex }
        };
    }

    /// The lease is gone: say so, forget it, and start over.
    fn lost(&mut self, now: Now, out: &mut Vec<Action>) {
        out.push(Action::Lost);
        out.push(Action::Forget);
        self.discover(now, out);
    }

    fn timer(&mut self, now: Now, out: &mut Vec<Action>) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now.at);
        if due(self.unconfirmed) {
            tracing::warn!("the remembered lease ended unconfirmed");
            self.unconfirmed = None;
            out.push(Action::Lost);
            out.push(Action::Forget);
        }
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Init { at } if at <= now.at => self.discover(now, out),
            State::Selecting(ex) if ex.retry <= now.at => self.send_discover(now, ex, out),
            State::Requesting { ex, .. } if ex.retry <= now.at && ex.sent >= MAX_REQUESTS => {
                tracing::info!("no ACK to our REQUEST; discovering again");
                self.discover(now, out)
            }
            State::Requesting {
                ex,
                offered,
                server,
            } if ex.retry <= now.at => self.send_select(now, ex, offered, server, out),
            State::Rebooting { ex, remembered }
                if ex.retry <= now.at && ex.sent >= MAX_REBOOT_REQUESTS =>
            {
                tracing::info!("no answer for the remembered lease; discovering");
                self.unconfirmed = remembered.expires().and_then(|end| {
                    let left = end
                        .saturating_sub(now.unix)
                        .min(u64::from(remembered.lease_secs));
                    after(now.at, Duration::from_secs(left))
                });
                self.discover(now, out)
            }
            State::Rebooting { ex, remembered } if ex.retry <= now.at => {
                self.send_reboot(now, ex, remembered, out)
            }
            State::Bound(held) | State::Renewing { held, .. } | State::Rebinding { held, .. }
                if due(held.end) =>
            {
                tracing::warn!(address = %held.lease.address, "lease expired");
                self.lost(now, out)
            }
            State::Bound(held) | State::Renewing { held, .. } if due(held.t2) => {
                let ex = self.exchange(now);
                self.send_extend(now, held, ex, true, out)
            }
            State::Bound(held) if due(held.t1) => {
                let ex = self.exchange(now);
                self.send_extend(now, held, ex, false, out)
            }
            State::Renewing { held, ex } if ex.retry <= now.at => {
                self.send_extend(now, held, ex, false, out)
            }
            State::Rebinding { held, ex } if ex.retry <= now.at => {
                self.send_extend(now, held, ex, true, out)
            }
            // Early or spurious: nothing is due.
            other => self.state = other,
        }
    }

    fn reply(&mut self, now: Now, reply: Reply, out: &mut Vec<Action>) {
        let xid = match &self.state {
            State::Selecting(ex)
            | State::Requesting { ex, .. }
            | State::Rebooting { ex, .. }
            | State::Renewing { ex, .. }
            | State::Rebinding { ex, .. } => ex.xid,
            State::Idle | State::Init { .. } | State::Bound(_) => return,
        };
        if reply.xid != xid {
            return;
        }
        match (std::mem::replace(&mut self.state, State::Idle), reply.kind) {
            (State::Selecting(ex), ReplyKind::Offer) => match reply.server {
                Some(server) if packet::usable(reply.yiaddr) => {
                    tracing::info!(offered = %reply.yiaddr, %server, "offer");
                    let ex = Exchange { sent: 0, ..ex };
                    self.send_select(now, ex, reply.yiaddr, server, out)
                }
                _ => self.state = State::Selecting(ex),
            },
            (State::Requesting { server, .. }, ReplyKind::Nak)
                if reply.server.is_none_or(|s| s == server) =>
            {
                tracing::warn!(%server, "NAK to our REQUEST");
                self.restart(now, out)
            }
            (state @ State::Requesting { server, .. }, ReplyKind::Ack)
                if reply.server == Some(server) =>
            {
                if !self.bind(now, &reply, None, out) {
                    self.state = state;
                }
            }
            (State::Rebooting { remembered, .. }, ReplyKind::Nak) => {
                tracing::warn!(address = %remembered.address, "remembered lease refused");
                out.push(Action::Lost);
                out.push(Action::Forget);
                self.discover(now, out)
            }
            (State::Renewing { held, .. } | State::Rebinding { held, .. }, ReplyKind::Nak) => {
                tracing::warn!(address = %held.lease.address, "lease refused");
                self.lost(now, out)
            }
            (state @ State::Rebooting { .. }, ReplyKind::Ack) => {
                if !self.bind(now, &reply, None, out) {
                    self.state = state;
                }
            }
            (state @ (State::Renewing { .. } | State::Rebinding { .. }), ReplyKind::Ack) => {
                let before = match &state {
                    State::Renewing { held, .. } | State::Rebinding { held, .. } => {
                        held.lease.address
                    }
                    _ => return,
                };
                if !self.bind(now, &reply, Some(before), out) {
                    self.state = state;
                }
            }
            (other, _) => self.state = other,
        }
    }

    /// BOUND from an ACK, when it is usable: asks for it to be persisted
    /// and reports it (`Renewed` when the address is still `before`).
    fn bind(
        &mut self,
        now: Now,
        ack: &Reply,
        before: Option<Ipv4Net>,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(lease) = Lease::from_ack(ack, now.unix) else {
            tracing::warn!("ignored an ACK without a usable address, server or lease time");
            return false;
        };
        let held = Held {
            t1: (lease.t1_secs != INFINITE)
                .then(|| after(now.at, secs(lease.t1_secs)))
                .flatten(),
            t2: (lease.t2_secs != INFINITE)
                .then(|| after(now.at, secs(lease.t2_secs)))
                .flatten(),
            end: (!lease.is_infinite())
                .then(|| after(now.at, secs(lease.lease_secs)))
                .flatten(),
            lease: lease.clone(),
        };
        // On disk before anyone is told, so that a crash right after
        // cannot lose a lease already in use.
        out.push(Action::Persist(lease.clone()));
        if before == Some(lease.address) {
            tracing::info!(address = %lease.address, "lease renewed");
            out.push(Action::Renewed(lease));
        } else {
            tracing::info!(address = %lease.address, router = ?lease.router, "lease bound");
            out.push(Action::Bound(lease));
        }
        self.naks = 0;
        self.unconfirmed = None;
        self.state = State::Bound(held);
        true
    }

    fn command(&mut self, now: Now, command: Command, out: &mut Vec<Action>) {
        match command {
            Command::Renew => match std::mem::replace(&mut self.state, State::Idle) {
                State::Bound(held) => {
                    let ex = self.exchange(now);
                    self.send_extend(now, held, ex, false, out)
                }
                State::Renewing { held, ex } => self.send_extend(now, held, ex, false, out),
                State::Rebinding { held, ex } => self.send_extend(now, held, ex, true, out),
                State::Idle | State::Init { .. } | State::Selecting(_) => {
                    self.naks = 0;
                    self.discover(now, out)
                }
                other => self.state = other,
            },
            Command::Release | Command::Stop { release: true } => {
                match std::mem::replace(&mut self.state, State::Idle) {
                    State::Bound(held)
                    | State::Renewing { held, .. }
                    | State::Rebinding { held, .. } => {
                        let xid = self.rng.next() as u32;
                        let l = &held.lease;
                        tracing::info!(address = %l.address, server = %l.server, "releasing");
                        let bytes = packet::release(&self.id, xid, l.address.addr(), l.server);
                        self.send(out, Destination::Unicast(l.server), bytes);
                        out.push(Action::Lost);
                        out.push(Action::Forget);
                    }
                    State::Rebooting { .. } => {
                        out.push(Action::Lost);
                        out.push(Action::Forget);
                    }
                    _ if self.unconfirmed.is_some() => {
                        out.push(Action::Lost);
                        out.push(Action::Forget);
                    }
                    _ => {}
                }
                self.unconfirmed = None;
            }
            Command::Stop { release: false } => {
                self.state = State::Idle;
                self.unconfirmed = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use dhcproto::Encodable;
    use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};

    use super::*;
    use crate::dhcp::lease::tests::sample;
    use crate::dhcp::packet::tests::{MAC, decode, identity, reply};

    const UNIX: u64 = 1_700_000_000;
    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    /// A client and a clock that tests move by hand.
    struct Rig {
        client: Client,
        t0: Instant,
        secs: f64,
    }

    impl Rig {
        fn new() -> Self {
            Self::seeded(42)
        }

        fn seeded(seed: u64) -> Self {
            Self {
                client: Client::new(identity(), seed),
                t0: Instant::now(),
                secs: 0.0,
            }
        }

        fn now(&self) -> Now {
            Now {
                at: self.t0 + Duration::from_secs_f64(self.secs),
                unix: UNIX + self.secs as u64,
            }
        }

        fn handle(&mut self, input: Input<'_>) -> Vec<Action> {
            let now = self.now();
            self.client.handle(now, input)
        }

        fn start(&mut self, remembered: Option<Lease>) -> Vec<Action> {
            self.handle(Input::Start(remembered))
        }

        fn packet(&mut self, m: &Message) -> Vec<Action> {
            let bytes = m.to_vec().expect("encode");
            self.handle(Input::Packet(&bytes))
        }

        fn command(&mut self, c: Command) -> Vec<Action> {
            self.handle(Input::Command(c))
        }

        /// Seconds from t0 to the deadline.
        fn deadline(&self) -> Option<f64> {
            self.client
                .deadline()
                .map(|d| d.duration_since(self.t0).as_secs_f64())
        }

        /// Moves the clock to the deadline and fires the timer.
        fn fire(&mut self) -> Vec<Action> {
            self.secs = self.deadline().expect("a deadline");
            self.handle(Input::Timer)
        }

        /// DISCOVER, OFFER, REQUEST, ACK: bound with `ack`'s extra options.
        fn bind(&mut self, extra: &[DhcpOption]) -> Lease {
            let (_, discover) = sent(&self.start(None));
            let offer = offer(discover.xid());
            let (_, request) = sent(&self.packet(&offer));
            let actions = self.packet(&ack(request.xid(), OFFERED, extra));
            match actions.as_slice() {
                [Action::Persist(p), Action::Bound(l)] if l == p => l.clone(),
                other => panic!("not bound: {other:?}"),
            }
        }
    }

    /// The only datagram among `actions`.
    fn sent(actions: &[Action]) -> (Destination, Message) {
        let sends: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { to, packet } => Some((*to, decode(packet))),
                _ => None,
            })
            .collect();
        assert_eq!(sends.len(), 1, "{actions:?}");
        sends.into_iter().next().expect("one")
    }

    fn not_sends(actions: &[Action]) -> Vec<Action> {
        actions
            .iter()
            .filter(|a| !matches!(a, Action::Send { .. }))
            .cloned()
            .collect()
    }

    fn offer(xid: u32) -> Message {
        let mut m = reply(MessageType::Offer, xid, OFFERED, &MAC);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        m
    }

    fn ack(xid: u32, ip: Ipv4Addr, extra: &[DhcpOption]) -> Message {
        let mut m = reply(MessageType::Ack, xid, ip, &MAC);
        let opts = m.opts_mut();
        opts.insert(DhcpOption::ServerIdentifier(SERVER));
        opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        opts.insert(DhcpOption::Router(vec![SERVER]));
        opts.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            192, 0, 2, 53,
        )]));
        opts.insert(DhcpOption::AddressLeaseTime(1000));
        for o in extra {
            opts.insert(o.clone());
        }
        m
    }

    fn nak(xid: u32) -> Message {
        let mut m = reply(MessageType::Nak, xid, Ipv4Addr::UNSPECIFIED, &MAC);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
        m
    }

    fn opt(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
        m.opts().get(code)
    }

    fn kind(m: &Message) -> MessageType {
        m.opts().msg_type().expect("message type")
    }

    #[test]
    fn start_without_lease_discovers() {
        let mut rig = Rig::new();
        assert_eq!(rig.client.state(), StateKind::Idle);
        assert_eq!(rig.client.deadline(), None);
        let (to, m) = sent(&rig.start(None));
        assert_eq!(to, Destination::Broadcast);
        assert_eq!(kind(&m), MessageType::Discover);
        assert!(m.flags().broadcast());
        assert_eq!(rig.client.state(), StateKind::Selecting);
        let d = rig.deadline().expect("retransmission");
        assert!((3.0..=5.0).contains(&d), "{d}");
        // A second start changes nothing.
        assert!(rig.start(None).is_empty());
    }

    #[test]
    fn discover_backs_off_exponentially_with_jitter_and_keeps_its_xid() {
        let mut rig = Rig::new();
        let (_, first) = sent(&rig.start(None));
        let mut previous = 0.0;
        for base in [4.0, 8.0, 16.0, 32.0, 64.0, 64.0, 64.0] {
            let d = rig.deadline().expect("deadline") - previous;
            assert!(base - 1.0 <= d && d <= base + 1.0, "{d} for {base}");
            previous = rig.deadline().expect("deadline");
            let (_, again) = sent(&rig.fire());
            assert_eq!(kind(&again), MessageType::Discover);
            assert_eq!(again.xid(), first.xid());
            assert_eq!(u64::from(again.secs()), previous as u64, "secs counts up");
        }
        // The jitter comes from the seed.
        let mut a = Rig::seeded(1);
        let mut b = Rig::seeded(2);
        a.start(None);
        b.start(None);
        assert_ne!(a.deadline(), b.deadline());
        let mut a2 = Rig::seeded(1);
        a2.start(None);
        assert_eq!(a.deadline(), a2.deadline());
    }

    #[test]
    fn early_or_spurious_timers_do_nothing() {
        let mut rig = Rig::new();
        assert!(rig.handle(Input::Timer).is_empty(), "idle");
        rig.start(None);
        rig.secs = 1.0;
        assert!(rig.handle(Input::Timer).is_empty());
        assert_eq!(rig.client.state(), StateKind::Selecting);
    }

    #[test]
    fn offer_leads_to_a_broadcast_request_for_it() {
        let mut rig = Rig::new();
        let (_, discover) = sent(&rig.start(None));
        // Replies for someone else's transaction or hardware address, and
        // offers without a server or with an unusable address: ignored.
        let mut wrong_mac = offer(discover.xid());
        wrong_mac.set_chaddr(&[2, 0, 0, 0, 0, 2]);
        let mut no_server = offer(discover.xid());
        no_server.opts_mut().remove(OptionCode::ServerIdentifier);
        let mut zero = offer(discover.xid());
        zero.set_yiaddr(Ipv4Addr::UNSPECIFIED);
        for m in [offer(discover.xid() ^ 1), wrong_mac, no_server, zero] {
            assert!(rig.packet(&m).is_empty());
            assert_eq!(rig.client.state(), StateKind::Selecting);
        }
        let (to, request) = sent(&rig.packet(&offer(discover.xid())));
        assert_eq!(to, Destination::Broadcast);
        assert_eq!(kind(&request), MessageType::Request);
        assert_eq!(request.xid(), discover.xid());
        assert_eq!(request.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            opt(&request, OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(OFFERED))
        );
        assert_eq!(
            opt(&request, OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert!(opt(&request, OptionCode::Hostname).is_some());
        assert!(opt(&request, OptionCode::ClassIdentifier).is_some());
        assert_eq!(rig.client.state(), StateKind::Requesting);
        // A second offer is ignored while requesting.
        assert!(rig.packet(&offer(discover.xid())).is_empty());
    }

    #[test]
    fn ack_binds_with_the_servers_options_and_default_timers() {
        let mut rig = Rig::new();
        let lease = rig.bind(&[]);
        assert_eq!(rig.client.state(), StateKind::Bound);
        assert_eq!(lease.address, "192.0.2.10/24".parse().expect("net"));
        assert_eq!(lease.router, Some(SERVER));
        assert_eq!(lease.dns, vec![Ipv4Addr::new(192, 0, 2, 53)]);
        assert_eq!(lease.server, SERVER);
        assert_eq!(lease.obtained, UNIX);
        assert_eq!(
            (lease.lease_secs, lease.t1_secs, lease.t2_secs),
            (1000, 500, 875)
        );
        assert_eq!(rig.client.lease(), Some(&lease));
        assert_eq!(rig.deadline(), Some(500.0), "T1");
    }

    #[test]
    fn servers_timers_are_used_and_nonsense_replaced() {
        let mut rig = Rig::new();
        let l = rig.bind(&[DhcpOption::Renewal(100), DhcpOption::Rebinding(200)]);
        assert_eq!((l.t1_secs, l.t2_secs), (100, 200));
        // T1 after T2, T2 after the lease, zero timers, a zero lease.
        let mut rig = Rig::new();
        let l = rig.bind(&[DhcpOption::Renewal(900), DhcpOption::Rebinding(5000)]);
        assert_eq!((l.t1_secs, l.t2_secs), (500, 875));
        let mut rig = Rig::new();
        let l = rig.bind(&[
            DhcpOption::AddressLeaseTime(0),
            DhcpOption::Renewal(0),
            DhcpOption::Rebinding(0),
        ]);
        assert_eq!((l.lease_secs, l.t1_secs, l.t2_secs), (60, 30, 52));
        // Infinite: no timer at all.
        let mut rig = Rig::new();
        let l = rig.bind(&[DhcpOption::AddressLeaseTime(INFINITE)]);
        assert!(l.is_infinite());
        assert_eq!(rig.client.deadline(), None);
    }

    #[test]
    fn ack_without_server_or_lease_time_is_ignored() {
        let mut rig = Rig::new();
        let (_, d) = sent(&rig.start(None));
        let (_, r) = sent(&rig.packet(&offer(d.xid())));
        let mut no_time = ack(r.xid(), OFFERED, &[]);
        no_time.opts_mut().remove(OptionCode::AddressLeaseTime);
        let mut other_server = ack(r.xid(), OFFERED, &[]);
        other_server
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(192, 0, 2, 99)));
        for m in [no_time, other_server] {
            assert!(rig.packet(&m).is_empty());
            assert_eq!(rig.client.state(), StateKind::Requesting);
        }
    }

    #[test]
    fn mask_missing_means_classful() {
        let mut rig = Rig::new();
        let (_, d) = sent(&rig.start(None));
        let (_, r) = sent(&rig.packet(&offer(d.xid())));
        let mut m = ack(r.xid(), Ipv4Addr::new(10, 1, 2, 3), &[]);
        m.opts_mut().remove(OptionCode::SubnetMask);
        let actions = rig.packet(&m);
        let Some(Action::Bound(l)) = actions.last() else {
            panic!("{actions:?}")
        };
        assert_eq!(l.address, "10.1.2.3/8".parse().expect("net"));
    }

    #[test]
    fn requesting_without_ack_starts_over() {
        let mut rig = Rig::new();
        let (_, d) = sent(&rig.start(None));
        let (_, r) = sent(&rig.packet(&offer(d.xid())));
        for _ in 1..MAX_REQUESTS {
            let (_, again) = sent(&rig.fire());
            assert_eq!(kind(&again), MessageType::Request);
            assert_eq!(again.xid(), r.xid());
        }
        let (_, fresh) = sent(&rig.fire());
        assert_eq!(kind(&fresh), MessageType::Discover);
        assert_ne!(fresh.xid(), r.xid());
        assert_eq!(rig.client.state(), StateKind::Selecting);
    }

    #[test]
    fn nak_while_requesting_starts_over_and_backs_off_when_repeated() {
        let mut rig = Rig::new();
        let (_, d) = sent(&rig.start(None));
        let (_, r) = sent(&rig.packet(&offer(d.xid())));
        let actions = rig.packet(&nak(r.xid()));
        // Nothing was bound, so nothing is lost: a fresh DISCOVER at once.
        assert_eq!(not_sends(&actions), vec![]);
        let (_, d2) = sent(&actions);
        assert_eq!(kind(&d2), MessageType::Discover);
        // The same server refuses again: wait before discovering.
        let (_, r2) = sent(&rig.packet(&offer(d2.xid())));
        assert!(rig.packet(&nak(r2.xid())).is_empty());
        assert_eq!(rig.client.state(), StateKind::Init);
        let wait = rig.deadline().expect("deadline") - rig.secs;
        assert!((3.0..=5.0).contains(&wait), "{wait}");
        let (_, d3) = sent(&rig.fire());
        assert_eq!(kind(&d3), MessageType::Discover);
        // An ACK resets the count.
        let (_, r3) = sent(&rig.packet(&offer(d3.xid())));
        rig.packet(&ack(r3.xid(), OFFERED, &[]));
        assert_eq!(rig.client.naks, 0);
    }

    #[test]
    fn t1_renews_by_unicast_and_ack_renews() {
        let mut rig = Rig::new();
        let lease = rig.bind(&[]);
        let (to, m) = sent(&rig.fire());
        assert_eq!(rig.secs, 500.0);
        assert_eq!(rig.client.state(), StateKind::Renewing);
        assert_eq!(to, Destination::Unicast(SERVER));
        assert_eq!(kind(&m), MessageType::Request);
        assert_eq!(m.ciaddr(), OFFERED);
        assert!(!m.flags().broadcast());
        assert!(opt(&m, OptionCode::RequestedIpAddress).is_none());
        assert!(opt(&m, OptionCode::ServerIdentifier).is_none());
        let actions = rig.packet(&ack(m.xid(), OFFERED, &[]));
        let renewed = Lease {
            obtained: UNIX + 500,
            ..lease
        };
        assert_eq!(
            actions,
            vec![Action::Persist(renewed.clone()), Action::Renewed(renewed)]
        );
        assert_eq!(rig.client.state(), StateKind::Bound);
        assert_eq!(rig.deadline(), Some(1000.0), "the new T1");
    }

    #[test]
    fn renewing_retransmits_after_half_the_time_to_t2_at_least_a_minute() {
        let mut rig = Rig::new();
        rig.bind(&[DhcpOption::AddressLeaseTime(4000)]);
        // T1 2000, T2 3500: each retry after half the time left, at least
        // a minute, never past T2.
        let (_, first) = sent(&rig.fire());
        for expect in [2750.0, 3125.0, 3312.5, 3406.25, 3466.25] {
            assert_eq!(rig.deadline(), Some(expect));
            let (to, m) = sent(&rig.fire());
            assert_eq!(to, Destination::Unicast(SERVER));
            assert_eq!(m.xid(), first.xid());
        }
        assert_eq!(
            rig.deadline(),
            Some(3500.0),
            "T2 comes before the next retry"
        );
        sent(&rig.fire());
        assert_eq!(rig.client.state(), StateKind::Rebinding);
    }

    #[test]
    fn t2_rebinds_by_broadcast_and_ack_renews() {
        let mut rig = Rig::new();
        rig.bind(&[]);
        sent(&rig.fire()); // T1
        let mut m = None;
        while rig.client.state() == StateKind::Renewing {
            m = Some(sent(&rig.fire()));
        }
        let (to, m) = m.expect("rebinding request");
        assert_eq!(rig.secs, 875.0);
        assert_eq!(rig.client.state(), StateKind::Rebinding);
        assert_eq!(to, Destination::Broadcast);
        assert_eq!(m.ciaddr(), OFFERED);
        assert!(opt(&m, OptionCode::ServerIdentifier).is_none());
        let actions = rig.packet(&ack(m.xid(), OFFERED, &[]));
        assert!(matches!(
            actions.as_slice(),
            [Action::Persist(_), Action::Renewed(_)]
        ));
        assert_eq!(rig.client.state(), StateKind::Bound);
    }

    #[test]
    fn expiry_without_ack_loses_the_lease_and_discovers() {
        let mut rig = Rig::new();
        rig.bind(&[]);
        let mut last = Vec::new();
        while matches!(
            rig.client.state(),
            StateKind::Bound | StateKind::Renewing | StateKind::Rebinding
        ) {
            last = rig.fire();
        }
        assert_eq!(rig.secs, 1000.0);
        assert_eq!(not_sends(&last), vec![Action::Lost, Action::Forget]);
        assert_eq!(kind(&sent(&last).1), MessageType::Discover);
        assert_eq!(rig.client.state(), StateKind::Selecting);
    }

    #[test]
    fn a_late_timer_goes_straight_to_what_is_due() {
        // Asleep past T2 while bound: rebinding, not renewing.
        let mut rig = Rig::new();
        rig.bind(&[]);
        rig.secs = 900.0;
        let (to, _) = sent(&rig.handle(Input::Timer));
        assert_eq!(to, Destination::Broadcast);
        assert_eq!(rig.client.state(), StateKind::Rebinding);
        // Asleep past the end: lost.
        let mut rig = Rig::new();
        rig.bind(&[]);
        rig.secs = 5000.0;
        let actions = rig.handle(Input::Timer);
        assert_eq!(not_sends(&actions), vec![Action::Lost, Action::Forget]);
    }

    #[test]
    fn nak_while_renewing_or_rebinding_loses_the_lease() {
        for rebind in [false, true] {
            let mut rig = Rig::new();
            rig.bind(&[]);
            let (_, mut m) = sent(&rig.fire());
            if rebind {
                rig.secs = 900.0;
                m = sent(&rig.handle(Input::Timer)).1;
                assert_eq!(rig.client.state(), StateKind::Rebinding);
            }
            let actions = rig.packet(&nak(m.xid()));
            assert_eq!(not_sends(&actions), vec![Action::Lost, Action::Forget]);
            assert_eq!(kind(&sent(&actions).1), MessageType::Discover);
            assert_eq!(rig.client.state(), StateKind::Selecting);
        }
    }

    #[test]
    fn renew_ack_with_another_address_is_a_new_lease() {
        let mut rig = Rig::new();
        rig.bind(&[]);
        let (_, m) = sent(&rig.fire());
        let actions = rig.packet(&ack(m.xid(), Ipv4Addr::new(192, 0, 2, 77), &[]));
        let [Action::Persist(_), Action::Bound(l)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(l.address.addr(), Ipv4Addr::new(192, 0, 2, 77));
    }

    #[test]
    fn replies_while_bound_are_ignored() {
        let mut rig = Rig::new();
        rig.bind(&[]);
        let xid = rig.client.rng.clone().next() as u32;
        for m in [ack(xid, OFFERED, &[]), nak(xid), offer(xid)] {
            assert!(rig.packet(&m).is_empty());
        }
        assert_eq!(rig.client.state(), StateKind::Bound);
    }

    #[test]
    fn start_with_a_remembered_lease_reboots() {
        let mut rig = Rig::new();
        let remembered = Lease {
            obtained: UNIX - 100,
            ..sample()
        };
        let actions = rig.start(Some(remembered.clone()));
        let (to, m) = sent(&actions);
        assert_eq!(rig.client.state(), StateKind::Rebooting);
        assert_eq!(to, Destination::Broadcast);
        assert_eq!(kind(&m), MessageType::Request);
        assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(m.flags().broadcast());
        assert_eq!(
            opt(&m, OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(remembered.address.addr()))
        );
        assert!(opt(&m, OptionCode::ServerIdentifier).is_none());
        // Any server may answer.
        let actions = rig.packet(&ack(m.xid(), remembered.address.addr(), &[]));
        assert!(matches!(
            actions.as_slice(),
            [Action::Persist(_), Action::Bound(_)]
        ));
        assert_eq!(rig.client.state(), StateKind::Bound);
    }

    #[test]
    fn rebooting_nak_forgets_and_discovers() {
        let mut rig = Rig::new();
        let (_, m) = sent(&rig.start(Some(Lease {
            obtained: UNIX,
            ..sample()
        })));
        let actions = rig.packet(&nak(m.xid()));
        assert_eq!(not_sends(&actions), vec![Action::Lost, Action::Forget]);
        assert_eq!(kind(&sent(&actions).1), MessageType::Discover);
        assert_eq!(rig.client.state(), StateKind::Selecting);
    }

    #[test]
    fn rebooting_without_answer_discovers() {
        let mut rig = Rig::new();
        let (_, m) = sent(&rig.start(Some(Lease {
            obtained: UNIX,
            ..sample()
        })));
        for _ in 1..MAX_REBOOT_REQUESTS {
            let (_, again) = sent(&rig.fire());
            assert_eq!(again.xid(), m.xid());
            assert_eq!(rig.client.state(), StateKind::Rebooting);
        }
        let actions = rig.fire();
        assert_eq!(not_sends(&actions), vec![], "no answer is no refusal");
        assert_eq!(kind(&sent(&actions).1), MessageType::Discover);
    }

    #[test]
    fn an_unconfirmed_remembered_lease_is_lost_when_it_ends() {
        let remembered = Lease {
            obtained: UNIX - 100,
            ..sample()
        };
        // Obtained 100 s ago, 3600 s long: it ends at 3500 s, while the
        // client is still discovering.
        let mut rig = Rig::new();
        rig.start(Some(remembered.clone()));
        let mut fired = Vec::new();
        while !fired.contains(&Action::Lost) {
            assert!(rig.secs < 4000.0, "never lost");
            fired = rig.fire();
            if rig.secs < 3499.0 {
                assert_eq!(not_sends(&fired), vec![], "at {}", rig.secs);
            }
        }
        // Wall-clock seconds are whole: within a second of the end.
        assert!((3500.0..3501.0).contains(&rig.secs), "{}", rig.secs);
        assert_eq!(not_sends(&fired), vec![Action::Lost, Action::Forget]);
        assert_eq!(
            rig.client.state(),
            StateKind::Selecting,
            "still discovering"
        );
        // A lease bound meanwhile ends the watch.
        let mut rig = Rig::new();
        rig.start(Some(remembered.clone()));
        let mut discover = Vec::new();
        while rig.client.state() == StateKind::Rebooting {
            discover = rig.fire();
        }
        assert!(rig.client.unconfirmed.is_some());
        let (_, d) = sent(&discover);
        let (_, r) = sent(&rig.packet(&offer(d.xid())));
        rig.packet(&ack(r.xid(), OFFERED, &[]));
        assert_eq!(rig.client.unconfirmed, None);
        assert_eq!(rig.deadline(), Some(rig.secs + 500.0), "T1 only");
        // Releasing while unconfirmed gives it up.
        let mut rig = Rig::new();
        rig.start(Some(remembered));
        while rig.client.state() == StateKind::Rebooting {
            rig.fire();
        }
        let actions = rig.command(Command::Release);
        assert_eq!(not_sends(&actions), vec![Action::Lost, Action::Forget]);
        assert_eq!(rig.client.deadline(), None);
    }

    #[test]
    fn an_expired_remembered_lease_is_forgotten() {
        let mut rig = Rig::new();
        let expired = Lease {
            obtained: UNIX - 4000,
            ..sample()
        };
        let actions = rig.start(Some(expired));
        assert_eq!(not_sends(&actions), vec![Action::Forget]);
        assert_eq!(kind(&sent(&actions).1), MessageType::Discover);
    }

    #[test]
    fn renew_command_by_state() {
        let mut rig = Rig::new();
        // Idle: discover.
        let (_, m) = sent(&rig.command(Command::Renew));
        assert_eq!(kind(&m), MessageType::Discover);
        let mut rig = Rig::new();
        rig.bind(&[]);
        rig.secs = 10.0;
        let (to, m) = sent(&rig.command(Command::Renew));
        assert_eq!(to, Destination::Unicast(SERVER));
        assert_eq!(m.ciaddr(), OFFERED);
        assert_eq!(rig.client.state(), StateKind::Renewing);
        // Renewing: retransmit now.
        let (_, again) = sent(&rig.command(Command::Renew));
        assert_eq!(again.xid(), m.xid());
    }

    #[test]
    fn release_sends_release_and_goes_idle() {
        let mut rig = Rig::new();
        rig.bind(&[]);
        let actions = rig.command(Command::Release);
        let (to, m) = sent(&actions);
        assert_eq!(to, Destination::Unicast(SERVER));
        assert_eq!(kind(&m), MessageType::Release);
        assert_eq!(m.ciaddr(), OFFERED);
        assert_eq!(
            opt(&m, OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(SERVER))
        );
        assert_eq!(not_sends(&actions), vec![Action::Lost, Action::Forget]);
        assert_eq!(rig.client.state(), StateKind::Idle);
        assert_eq!(rig.client.deadline(), None);
        // Renew starts over.
        let (_, m) = sent(&rig.command(Command::Renew));
        assert_eq!(kind(&m), MessageType::Discover);
    }

    #[test]
    fn stop_releases_only_when_asked() {
        let mut rig = Rig::new();
        rig.bind(&[]);
        assert!(rig.command(Command::Stop { release: false }).is_empty());
        assert_eq!(rig.client.state(), StateKind::Idle);
        let mut rig = Rig::new();
        rig.bind(&[]);
        let actions = rig.command(Command::Stop { release: true });
        assert_eq!(kind(&sent(&actions).1), MessageType::Release);
        assert_eq!(not_sends(&actions), vec![Action::Lost, Action::Forget]);
        // Nothing to release while searching.
        let mut rig = Rig::new();
        rig.start(None);
        assert!(rig.command(Command::Stop { release: true }).is_empty());
        assert_eq!(rig.client.state(), StateKind::Idle);
    }

    #[test]
    fn garbage_changes_nothing_in_any_state() {
        let junk: Vec<Vec<u8>> = {
            let good = ack(0, OFFERED, &[]).to_vec().expect("enc");
            let mut v: Vec<Vec<u8>> = (0..good.len())
                .step_by(7)
                .map(|n| good[..n].to_vec())
                .collect();
            v.push(vec![0xff; 1500]);
            v.push(vec![2; 300]);
            v
        };
        let mut rigs: Vec<Rig> = Vec::new();
        rigs.push(Rig::new());
        let mut r = Rig::new();
        r.start(None);
        rigs.push(r);
        let mut r = Rig::new();
        let (_, d) = sent(&r.start(None));
        r.packet(&offer(d.xid()));
        rigs.push(r);
        let mut r = Rig::new();
        r.bind(&[]);
        rigs.push(r);
        let mut r = Rig::new();
        r.bind(&[]);
        r.fire();
        rigs.push(r);
        let mut r = Rig::new();
        r.start(Some(Lease {
            obtained: UNIX,
            ..sample()
        }));
        rigs.push(r);
        for rig in &mut rigs {
            let before = (rig.client.state(), rig.client.deadline());
            for j in &junk {
                assert!(rig.handle(Input::Packet(j)).is_empty());
            }
            assert_eq!((rig.client.state(), rig.client.deadline()), before);
        }
    }
}
