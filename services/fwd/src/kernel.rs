//! fwd's own nfnetlink socket: commit a batch, check one without
//! committing it, read the rules' counters back, probe for flowtables.
//!
//! The kernel processes a batch inside `sendmsg`, so every ACK and error
//! is queued by the time the call returns; fwd then drains the socket
//! without waiting (what `nft` does too).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use crate::batch::Batch;
use crate::ir::TABLE;
use crate::netlink::{self, DumpedRule, NLMSG_DONE, NLMSG_ERROR};

/// Errors of the kernel layer.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Opening or setting up the socket failed.
    #[error("open the nfnetlink socket: {0}")]
    Open(#[source] Errno),
    /// Sending failed.
    #[error("send to nf_tables: {0}")]
    Send(#[source] Errno),
    /// Receiving failed.
    #[error("read from nf_tables: {0}")]
    Recv(#[source] Errno),
    /// The kernel refused messages of the batch; one line per message.
    #[error("nf_tables refused the batch:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
    /// The kernel refused a dump.
    #[error("nf_tables refused to list table inet {TABLE}: {0}")]
    Dump(Errno),
}

/// An open nfnetlink socket.
#[derive(Debug)]
pub struct Kernel {
    fd: OwnedFd,
    seq: u32,
}

/// Receive buffer: large enough for one ACK per message of a big batch.
const RCVBUF: usize = 8 << 20;

impl Kernel {
    /// Opens a socket in the calling thread's network namespace (needs
    /// CAP_NET_ADMIN for anything but reading).
    pub fn open() -> Result<Self, KernelError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(KernelError::Open)?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(KernelError::Open)?;
        // Forcing the size needs CAP_NET_ADMIN; without it the plain
        // option is capped by rmem_max, which is enough for small batches.
        if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
            setsockopt(&fd, sockopt::RcvBuf, &RCVBUF).map_err(KernelError::Open)?;
        }
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(5, 0)).map_err(KernelError::Open)?;
        Ok(Self { fd, seq: 1 << 20 })
    }

    fn send(&self, bytes: &[u8]) -> Result<(), KernelError> {
        // The kernel takes a batch of at most the send buffer's size.
        let want = bytes.len() + 4096;
        if setsockopt(&self.fd, sockopt::SndBufForce, &want).is_err() {
            let _ = setsockopt(&self.fd, sockopt::SndBuf, &want);
        }
        let sent =
            send(self.fd.as_raw_fd(), bytes, MsgFlags::empty()).map_err(KernelError::Send)?;
        if sent != bytes.len() {
            return Err(KernelError::Send(Errno::EMSGSIZE));
        }
        Ok(())
    }

    /// Every queued message: `(seq, error code)` of each ACK or error.
    fn drain(&self) -> Result<Vec<(u32, i32)>, KernelError> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut acks = Vec::new();
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    for m in netlink::messages(&buf[..n]) {
                        if m.kind == NLMSG_ERROR {
                            acks.push((m.seq, netlink::error_code(&m).unwrap_or(0)));
                        }
                    }
                }
                Err(Errno::EAGAIN) => return Ok(acks),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(KernelError::Recv(e)),
            }
        }
    }

    /// Sends a batch as it is; the errors, one line per refused message.
    fn talk(&self, batch: &Batch, bytes: &[u8]) -> Result<(), KernelError> {
        // Anything left from an earlier call is stale.
        self.drain()?;
        self.send(bytes)?;
        let acks = self.drain()?;
        let what: BTreeMap<u32, &str> = netlink::messages(&batch.bytes)
            .iter()
            .zip(&batch.what)
            .map(|(m, w)| (m.seq, w.as_str()))
            .collect();
        let errors: Vec<String> = acks
            .iter()
            .filter(|(_, code)| *code < 0)
            .map(|(seq, code)| {
                let errno = Errno::from_raw(-code);
                let what = what.get(seq).copied().unwrap_or("a message");
                format!("{what}: {} ({errno:?})", errno.desc())
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(KernelError::Refused(errors))
        }
    }

    /// Applies a batch atomically: all of it or, on any error, nothing.
    /// When the kernel's commit-time validation fails, it replays the
    /// batch validating each rule, and every rule after the culprit fails
    /// too: only the first error is the cause.
    pub fn commit(&mut self, batch: &Batch) -> Result<(), KernelError> {
        self.talk(batch, &batch.bytes).map_err(|e| match e {
            KernelError::Refused(mut lines) if lines.len() > 1 => {
                let more = lines.len() - 1;
                lines.truncate(1);
                lines.push(format!("(and {more} later messages, refused after it)"));
                KernelError::Refused(lines)
            }
            e => e,
        })
    }

    /// Has the kernel check every message of a batch, then abort it: the
    /// batch goes without its end message, so nothing is committed
    /// (`NFNL_ABORT_VALIDATE`, what `nft --check` does).
    pub fn check(&mut self, batch: &Batch) -> Result<(), KernelError> {
        self.talk(batch, &netlink::without_end(&batch.bytes))
    }

    /// Every rule of fwd's table with its chain, comment and counter;
    /// empty when the table does not exist.
    pub fn rules(&mut self) -> Result<Vec<DumpedRule>, KernelError> {
        self.drain()?;
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.send(&netlink::get_rules(TABLE, seq))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut rules = Vec::new();
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                .map_err(KernelError::Recv)?;
            for m in netlink::messages(&buf[..n]) {
                if m.seq != seq {
                    continue;
                }
                match m.kind {
                    NLMSG_DONE => return Ok(rules),
                    NLMSG_ERROR => match netlink::error_code(&m) {
                        Some(0) | None => {}
                        Some(code) if -code == Errno::ENOENT as i32 => return Ok(Vec::new()),
                        Some(code) => return Err(KernelError::Dump(Errno::from_raw(-code))),
                    },
                    _ => rules.extend(netlink::parse_rule(&m)),
                }
            }
        }
    }

    /// Whether the kernel has flowtables (`nf_flow_table`): a checked,
    /// never committed batch that adds one to a scratch table.
    pub fn flowtables_supported(&mut self) -> Result<bool, KernelError> {
        let probe = crate::batch::flowtable_probe();
        match self.check(&probe) {
            Ok(()) => Ok(true),
            Err(KernelError::Refused(errors))
                if errors
                    .iter()
                    .all(|e| e.contains("ENOENT") || e.contains("EOPNOTSUPP")) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Counters of the rules named `names`, summed over the kernel rules each
/// expanded to, in the order of `names`.
pub fn counters(rules: &[DumpedRule], names: &[String]) -> Vec<(String, u64, u64)> {
    names
        .iter()
        .map(|name| {
            let (p, b) = rules
                .iter()
                .filter(|r| r.comment.as_deref() == Some(name.as_str()))
                .filter_map(|r| r.counter)
                .fold((0, 0), |(p, b), (rp, rb)| (p + rp, b + rb));
            (name.clone(), p, b)
        })
        .collect()
}
