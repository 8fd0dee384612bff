//! Replies to a client that has no address yet and did not ask for a
//! broadcast (RFC 2131 4.1): an IPv4/UDP datagram sent straight to the
//! client's hardware address through a packet socket, because the kernel
//! would ARP for `yiaddr` and the client cannot answer. The kernel adds
//! the Ethernet header (SOCK_DGRAM); the socket's protocol is 0, so it
//! receives nothing. Needs CAP_NET_RAW.
//!
//! This is dhcpd's only unsafe code: building a `sockaddr_ll`, which no
//! safe API of socket2 or nix constructs, and `if_nametoindex`.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;

use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type};

use crate::leases::Mac;

/// EtherType of IPv4.
const ETH_P_IP: u16 = 0x0800;
/// IPv4 header length without options.
const IP_HEADER: usize = 20;
/// UDP header length.
const UDP_HEADER: usize = 8;

/// A packet socket for sending to hardware addresses.
#[derive(Debug)]
pub struct RawSender {
    socket: Socket,
}

impl RawSender {
    /// Opens the packet socket (non-blocking; a full queue drops the
    /// reply, and the client retransmits).
    pub fn open() -> io::Result<Self> {
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(0.into()))?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket })
    }

    /// Sends `frame` (an IPv4 packet) out of interface `ifindex` to `mac`.
    pub fn send(&self, ifindex: u32, mac: &Mac, frame: &[u8]) -> io::Result<()> {
        let index = i32::try_from(ifindex).map_err(io::Error::other)?;
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: `SockAddrStorage` is a zeroed `sockaddr_storage`, which
        // is larger than and at least as aligned as `sockaddr_ll`; every
        // bit pattern is a valid `sockaddr_ll`.
        let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
        ll.sll_family = libc::AF_PACKET as libc::sa_family_t;
        ll.sll_protocol = ETH_P_IP.to_be();
        ll.sll_ifindex = index;
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(mac);
        let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: the storage holds an initialised `sockaddr_ll` of family
        // AF_PACKET and `len` is its size.
        let addr = unsafe { SockAddr::new(storage, len) };
        self.socket.send_to(frame, &addr).map(|_| ())
    }
}

/// The index of interface `name` in this network namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call;
    // if_nametoindex only reads it.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// An IPv4 packet carrying `payload` in UDP from `src:sport` to
/// `dst:dport`, with both checksums.
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = UDP_HEADER + payload.len();
    let total = IP_HEADER + udp_len;
    let mut p = Vec::with_capacity(total);
    // IPv4 header: version 4, IHL 5, no DSCP, length, no id/fragments,
    // TTL 64, protocol UDP, checksum (filled below), addresses.
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let ip_sum = checksum(&[&p[..IP_HEADER]]);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    // UDP header and payload; the checksum covers a pseudo-header.
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let udp_sum = match checksum(&[&pseudo, &p[IP_HEADER..]]) {
        // 0 means "no checksum" in UDP over IPv4; all ones is the same sum.
        0 => 0xffff,
        s => s,
    };
    p[IP_HEADER + 6..IP_HEADER + 8].copy_from_slice(&udp_sum.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071) of the concatenated `parts`; each part
/// but the last has an even length.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_checksums_verify() {
        let src = Ipv4Addr::new(192, 168, 1, 1);
        let dst = Ipv4Addr::new(192, 168, 1, 100);
        let payload = b"odd-length payload";
        let p = ipv4_udp(src, dst, 67, 68, payload);
        assert_eq!(p.len(), 20 + 8 + payload.len());
        assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, p.len());
        assert_eq!(&p[12..16], &src.octets());
        assert_eq!(&p[16..20], &dst.octets());
        // A header with its checksum in place sums to zero.
        assert_eq!(checksum(&[&p[..20]]), 0);
        let mut pseudo = [0u8; 12];
        pseudo[..4].copy_from_slice(&src.octets());
        pseudo[4..8].copy_from_slice(&dst.octets());
        pseudo[9] = 17;
        pseudo[10..12].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        assert_eq!(checksum(&[&pseudo, &p[20..]]), 0);
        assert_eq!(&p[20..24], &[0, 67, 0, 68]);
        assert_eq!(&p[28..], payload);
    }

    #[test]
    fn a_known_header_has_the_known_checksum() {
        // RFC 1071's worked example style: a header whose sum is known.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&[&h]), 0xb861);
    }
}
