//! Sockets the DHCP daemons share: UDP on one device, on a fixed port.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Opening a device's socket failed.
#[derive(Debug, thiserror::Error)]
#[error("open udp port {port} on {device}: {step}: {source}")]
pub struct DeviceSocketError {
    /// The device.
    pub device: String,
    /// The port.
    pub port: u16,
    /// Which step failed (`socket`, `SO_BINDTODEVICE`, `bind`, ...).
    pub step: &'static str,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// A UDP socket on 0.0.0.0:`port` that sends and receives only through
/// `device` (SO_BINDTODEVICE), may broadcast, and shares the port with the
/// sockets of other devices (SO_REUSEADDR). `recv_buffer` sets SO_RCVBUF
/// when given. Needs CAP_NET_RAW for the device binding and
/// CAP_NET_BIND_SERVICE for a port below 1024, and a tokio runtime.
pub fn udp_on_device(
    device: &str,
    port: u16,
    recv_buffer: Option<usize>,
) -> Result<UdpSocket, DeviceSocketError> {
    let failed = |step| {
        move |source| DeviceSocketError {
            device: device.to_string(),
            port,
            step,
            source,
        }
    };
    let socket =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(failed("socket"))?;
    socket
        .set_reuse_address(true)
        .map_err(failed("SO_REUSEADDR"))?;
    socket.set_broadcast(true).map_err(failed("SO_BROADCAST"))?;
    if let Some(size) = recv_buffer {
        socket
            .set_recv_buffer_size(size)
            .map_err(failed("SO_RCVBUF"))?;
    }
    socket
        .bind_device(Some(device.as_bytes()))
        .map_err(failed("SO_BINDTODEVICE"))?;
    socket.set_nonblocking(true).map_err(failed("O_NONBLOCK"))?;
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    socket.bind(&any.into()).map_err(failed("bind"))?;
    UdpSocket::from_std(socket.into()).map_err(failed("register"))
}
