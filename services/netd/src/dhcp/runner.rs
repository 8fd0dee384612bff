//! One tokio task per WAN device: feeds the [`Client`] what its socket
//! receives, its timers and its commands, carries out its actions, and
//! reports leases to netd's core as [`DhcpEvent`]s. It never configures
//! the kernel.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::action::{Action, Command, Input, Now};
use super::client::Client;
use super::lease::{self, Lease};
use super::packet::Identity;
use super::socket::{DhcpSocket, SocketError, read_mac};

/// How long to wait before trying to open the socket again (the device
/// may not exist yet).
const REOPEN_DELAY: Duration = Duration::from_secs(5);
/// A receive error is retried after this, so that a persistent one does
/// not spin.
const RECV_ERROR_DELAY: Duration = Duration::from_secs(1);
/// Room for any DHCP message on an Ethernet link.
const MAX_DATAGRAM: usize = 1500;

/// What one client needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The WAN device. Its hardware address is read when the client
    /// opens its socket.
    pub device: String,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 60.
    pub vendor_class: Option<String>,
    /// Release the lease on [`DhcpHandle::stop`].
    pub release_on_stop: bool,
    /// Where the lease file lives (netd: `$STATE/netd/`).
    pub lease_dir: PathBuf,
}

/// What a client tells netd's core (one channel per client, so the
/// device is the channel's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpEvent {
    /// A new lease: configure it, replacing what the client had before.
    Bound(Lease),
    /// The same address, extended; options may have changed.
    Renewed(Lease),
    /// The lease is gone (refused, expired or released): remove it.
    Lost,
}

/// The handle of a running client. Dropping it stops the client without
/// releasing (as [`DhcpHandle::stop`] without `release_on_stop`).
#[derive(Debug)]
pub struct DhcpHandle {
    device: String,
    commands: mpsc::UnboundedSender<Command>,
    release_on_stop: bool,
    task: JoinHandle<()>,
}

impl DhcpHandle {
    /// The device.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Renews now (or starts discovering, when idle or searching).
    pub fn renew(&self) {
        let _ = self.commands.send(Command::Renew);
    }

    /// Releases the lease; the client stays idle until [`Self::renew`].
    pub fn release(&self) {
        let _ = self.commands.send(Command::Release);
    }

    /// Stops the client, releasing the lease first when the config says
    /// so, and waits until it has. A `Lost` for a released lease is queued
    /// only if the event channel has room: the caller knows it stopped it.
    pub async fn stop(self) {
        let _ = self.commands.send(Command::Stop {
            release: self.release_on_stop,
        });
        if let Err(e) = self.task.await {
            tracing::error!(device = %self.device, "dhcp client task failed: {e}");
        }
    }
}

/// Starts the client of `config.device` on the current tokio runtime.
pub fn spawn(config: ClientConfig, events: mpsc::Sender<DhcpEvent>) -> DhcpHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let span = tracing::info_span!("dhcp", device = %config.device);
    let device = config.device.clone();
    let release_on_stop = config.release_on_stop;
    let task = tokio::spawn(run(config, events, rx).instrument(span));
    DhcpHandle {
        device,
        commands: tx,
        release_on_stop,
        task,
    }
}

/// The wall clock in seconds since the Unix epoch (0 if it reads earlier).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        unix: unix_now(),
    }
}

struct Runner {
    config: ClientConfig,
    events: mpsc::Sender<DhcpEvent>,
    socket: DhcpSocket,
}

async fn run(
    config: ClientConfig,
    events: mpsc::Sender<DhcpEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let (socket, mac) = loop {
        match open(&config.device).await {
            Ok(opened) => break opened,
            Err(e) => {
                tracing::warn!("{e}; retrying in {}s", REOPEN_DELAY.as_secs());
                tokio::select! {
                    c = commands.recv() => match c {
                        None | Some(Command::Stop { .. }) => return,
                        Some(_) => {}
                    },
                    () = tokio::time::sleep(REOPEN_DELAY) => {}
                }
            }
        }
    };
    let mut client = Client::new(
        Identity {
            mac,
            hostname: config.hostname.clone(),
            vendor_class: config.vendor_class.clone(),
        },
        rand::random(),
    );
    let runner = Runner {
        config,
        events,
        socket,
    };
    let remembered = runner
        .blocking(|dir, dev| lease::load(&dir, &dev))
        .await
        .flatten();
    if let Some(l) = &remembered {
        tracing::info!(address = %l.address, "remembered lease");
    }
    let actions = client.handle(now(), Input::Start(remembered));
    runner.execute(actions, false).await;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = client.deadline().map(tokio::time::Instant::from_std);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            c = commands.recv() => {
                // A dropped handle stops without releasing.
                let c = c.unwrap_or(Command::Stop { release: false });
                let stop = matches!(c, Command::Stop { .. });
                let actions = client.handle(now(), Input::Command(c));
                runner.execute(actions, stop).await;
                if stop {
                    tracing::info!("stopped");
                    return;
                }
            }
            r = runner.socket.recv(&mut buf) => match r {
                Ok((n, from)) => {
                    let packet = buf.get(..n).unwrap_or_default();
                    tracing::trace!(%from, len = n, "datagram");
                    let actions = client.handle(now(), Input::Packet(packet));
                    runner.execute(actions, false).await;
                }
                Err(e) => {
                    tracing::warn!("receive: {e}");
                    tokio::time::sleep(RECV_ERROR_DELAY).await;
                }
            },
            () = sleep => {
                let actions = client.handle(now(), Input::Timer);
                runner.execute(actions, false).await;
            }
        }
    }
}

/// The socket and the device's hardware address.
async fn open(device: &str) -> Result<(DhcpSocket, [u8; 6]), SocketError> {
    let mac = read_mac(device).await?;
    Ok((DhcpSocket::open(device)?, mac))
}

impl Runner {
    /// Runs file I/O off the runtime's threads; `None` if it panicked.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(PathBuf, String) -> T + Send + 'static,
    ) -> Option<T> {
        let dir = self.config.lease_dir.clone();
        let dev = self.config.device.clone();
        match tokio::task::spawn_blocking(move || f(dir, dev)).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!("lease file task: {e}");
                None
            }
        }
    }

    /// Carries out `actions`. While stopping, events never wait for room.
    async fn execute(&self, actions: Vec<Action>, stopping: bool) {
        for action in actions {
            let event = match action {
                Action::Send { to, packet } => {
                    if packet.is_empty() {
                        continue;
                    }
                    if let Err(e) = self.socket.send(to, &packet).await {
                        tracing::warn!(?to, "send: {e}");
                    }
                    continue;
                }
                Action::Persist(l) => {
                    let saved = self.blocking(move |dir, dev| lease::save(&dir, &dev, &l));
                    if let Some(Err(e)) = saved.await {
                        tracing::warn!("{e}");
                    }
                    continue;
                }
                Action::Forget => {
                    let removed = self.blocking(|dir, dev| lease::remove(&dir, &dev));
                    if let Some(Err(e)) = removed.await {
                        tracing::warn!("{e}");
                    }
                    continue;
                }
                Action::Bound(lease) => DhcpEvent::Bound(lease),
                Action::Renewed(lease) => DhcpEvent::Renewed(lease),
                Action::Lost => DhcpEvent::Lost,
            };
            let delivered = if stopping {
                self.events.try_send(event).is_ok()
            } else {
                self.events.send(event).await.is_ok()
            };
            if !delivered {
                tracing::debug!("event not delivered (receiver gone or full while stopping)");
            }
        }
    }
}
