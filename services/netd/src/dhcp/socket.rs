//! The client's socket: UDP on 0.0.0.0:68, bound to the WAN device, able
//! to broadcast. Requests without an address set the BROADCAST flag, so
//! servers broadcast their replies and no raw socket is needed; once the
//! lease is configured, renewals go and come back by unicast.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use tokio::net::UdpSocket;

use super::action::Destination;

/// The DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;

/// Errors of the client's I/O set-up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Creating, configuring or binding the socket failed.
    #[error(transparent)]
    Open(#[from] oxwrt_daemon::net::DeviceSocketError),
    /// Opening rtnetlink failed.
    #[error("open rtnetlink: {0}")]
    Netlink(#[source] io::Error),
    /// Reading the device from rtnetlink failed.
    #[error("read link {device}: {source}")]
    ReadLink {
        /// The device.
        device: String,
        /// Why.
        source: rtnetlink::Error,
    },
    /// The device has no 6-byte hardware address.
    #[error("device {0} has no Ethernet address")]
    NoMac(String),
}

/// A DHCP client socket on one device.
#[derive(Debug)]
pub struct DhcpSocket {
    inner: UdpSocket,
}

impl DhcpSocket {
    /// Opens the socket on `device` (SO_BINDTODEVICE, SO_BROADCAST,
    /// SO_REUSEADDR, bound to 0.0.0.0:68). Needs CAP_NET_BIND_SERVICE and
    /// CAP_NET_RAW (or root), and a tokio runtime.
    pub fn open(device: &str) -> Result<Self, SocketError> {
        let inner = oxwrt_daemon::net::udp_on_device(device, CLIENT_PORT, None)?;
        Ok(Self { inner })
    }

    /// Sends `packet` to the server port at `to`.
    pub async fn send(&self, to: Destination, packet: &[u8]) -> io::Result<()> {
        let ip = match to {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Unicast(ip) => ip,
        };
        self.inner
            .send_to(packet, SocketAddrV4::new(ip, SERVER_PORT))
            .await
            .map(|_| ())
    }

    /// Receives one datagram into `buf`: its length and sender.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.recv_from(buf).await
    }
}

/// The hardware address of `device` in the current network namespace,
/// read through rtnetlink (sysfs may show another namespace). Needs a
/// tokio runtime.
pub async fn read_mac(device: &str) -> Result<[u8; 6], SocketError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(SocketError::Netlink)?;
    let task = tokio::spawn(connection);
    let found = handle
        .link()
        .get()
        .match_name(device.to_string())
        .execute()
        .try_next()
        .await;
    task.abort();
    let link = found
        .map_err(|source| SocketError::ReadLink {
            device: device.to_string(),
            source,
        })?
        .ok_or_else(|| SocketError::NoMac(device.to_string()))?;
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        })
        .ok_or_else(|| SocketError::NoMac(device.to_string()))
}
