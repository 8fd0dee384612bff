//! dhcpd's sockets: one UDP socket on port 67 per LAN device, whose
//! receiving task feeds one queue, and the sending of replies where
//! RFC 2131 4.1 says they go.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::raw::{self, RawSender};
use crate::server::{Destination, Reply};

/// The DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// The DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// Receive buffer per device: a burst of clients waits here while a batch
/// is being made durable.
const RECV_BUFFER: usize = 4 << 20;
/// Largest datagram read (anything longer is truncated and then refused
/// by the parser).
const MAX_DATAGRAM: usize = 1500;

/// One received datagram.
#[derive(Debug)]
pub struct Incoming {
    /// The device it came in on.
    pub device: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A device dhcpd serves: its socket, interface index and receiving task.
#[derive(Debug)]
struct Device {
    socket: Arc<UdpSocket>,
    ifindex: u32,
    receiver: JoinHandle<()>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// Where one reply goes out.
#[derive(Debug)]
pub struct Outgoing {
    socket: Arc<UdpSocket>,
    ifindex: u32,
    reply: Reply,
}

/// The sockets of every served device.
#[derive(Debug)]
pub struct Sockets {
    devices: HashMap<String, Device>,
    incoming: mpsc::Sender<Incoming>,
}

impl Sockets {
    /// No devices yet; received datagrams will go to `incoming`.
    pub fn new(incoming: mpsc::Sender<Incoming>) -> Self {
        Self {
            devices: HashMap::new(),
            incoming,
        }
    }

    /// Serves exactly `wanted`: closes the sockets of other devices, and
    /// opens (or reopens, when the device was replaced and has a new
    /// index) the missing ones. A device that cannot be opened now (it is
    /// not there yet) is logged and tried again on the next call.
    pub fn serve(&mut self, wanted: &[String]) {
        self.devices.retain(|name, _| wanted.contains(name));
        for name in wanted {
            let current = raw::ifindex(name).ok();
            if let Some(d) = self.devices.get(name)
                && Some(d.ifindex) == current
            {
                continue;
            }
            self.devices.remove(name);
            let Some(ifindex) = current else {
                tracing::debug!(device = %name, "not present: not served yet");
                continue;
            };
            match oxwrt_daemon::net::udp_on_device(name, SERVER_PORT, Some(RECV_BUFFER)) {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    let receiver =
                        tokio::spawn(receive(name.clone(), socket.clone(), self.incoming.clone()));
                    tracing::info!(device = %name, ifindex, "serving DHCP");
                    self.devices.insert(
                        name.clone(),
                        Device {
                            socket,
                            ifindex,
                            receiver,
                        },
                    );
                }
                Err(e) => tracing::warn!("{e}; trying again later"),
            }
        }
    }

    /// The devices served now.
    pub fn served(&self) -> Vec<String> {
        let mut names: Vec<String> = self.devices.keys().cloned().collect();
        names.sort();
        names
    }

    /// `reply` with the socket it leaves by, or `None` when its device is
    /// not served.
    pub fn route(&self, reply: Reply) -> Option<Outgoing> {
        let d = self.devices.get(&reply.device)?;
        Some(Outgoing {
            socket: d.socket.clone(),
            ifindex: d.ifindex,
            reply,
        })
    }
}

/// Reads datagrams from `socket` into `queue` until the task is aborted.
/// When the queue is full the datagram is dropped (the client retries).
async fn receive(device: String, socket: Arc<UdpSocket>, queue: mpsc::Sender<Incoming>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, _)) => {
                let incoming = Incoming {
                    device: device.clone(),
                    bytes: buf[..n].to_vec(),
                };
                if queue.try_send(incoming).is_err() {
                    tracing::debug!(%device, "queue full: datagram dropped");
                }
            }
            Err(e) => {
                tracing::warn!(%device, "receive: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Sends `out` to its destination (RFC 2131 4.1).
pub async fn send(raw: &RawSender, out: &Outgoing) -> io::Result<()> {
    let r = &out.reply;
    let to = |ip, port| SocketAddrV4::new(ip, port);
    let sent = match r.to {
        Destination::Broadcast => {
            out.socket
                .send_to(&r.bytes, to(Ipv4Addr::BROADCAST, CLIENT_PORT))
                .await
        }
        Destination::Unicast(ip) => out.socket.send_to(&r.bytes, to(ip, CLIENT_PORT)).await,
        Destination::Relay(ip) => out.socket.send_to(&r.bytes, to(ip, SERVER_PORT)).await,
        Destination::Hardware { mac, ip } => {
            let packet = raw::ipv4_udp(r.server, ip, SERVER_PORT, CLIENT_PORT, &r.bytes);
            return raw.send(out.ifindex, &mac, &packet);
        }
    };
    sent.map(|_| ())
}
