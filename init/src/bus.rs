//! oxinit on the bus: `org.oxwrt.Init1` at `/org/oxwrt/Init` under the
//! name `org.oxwrt.Init`, exactly the members of
//! [`bus_schema::bus::Init1Proxy`].

use bus_schema::bus::{BusError, INIT_PATH, ServiceStatus, authorize};
use tokio::sync::{mpsc, oneshot, watch};
use zbus::{Connection, message::Header, object_server::SignalEmitter};

use crate::{
    manager::{Command, Event, Rings, Snapshot},
    phase::BootPhase,
};

/// Well-known name oxinit owns.
pub const NAME: &str = "org.oxwrt.Init";
const INTERFACE: &str = "org.oxwrt.Init1";

/// The `org.oxwrt.Init1` object.
#[derive(Debug)]
pub struct InitServer {
    /// To the manager.
    pub tx: mpsc::UnboundedSender<Event>,
    /// From the manager.
    pub snapshot: watch::Receiver<Snapshot>,
    /// Every service's output.
    pub rings: Rings,
    /// Boot phase.
    pub phase: watch::Receiver<BootPhase>,
}

impl InitServer {
    async fn command(
        &self,
        command: Command,
        name: String,
        conn: &Connection,
        header: &Header<'_>,
        member: &str,
    ) -> Result<(), BusError> {
        authorize(conn, header, INTERFACE, member).await?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Event::Command {
                command,
                name,
                reply,
            })
            .map_err(|_| BusError::Failed("supervisor is gone".into()))?;
        rx.await
            .map_err(|_| BusError::Failed("supervisor is gone".into()))?
    }

    /// A service's log ring.
    fn ring(&self, name: &str) -> Result<std::sync::Arc<crate::logs::LogRing>, BusError> {
        self.rings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| BusError::NotFound(format!("no service {name}")))
    }
}

#[zbus::interface(name = "org.oxwrt.Init1")]
impl InitServer {
    /// Every service, in start order.
    async fn list_services(&self) -> Vec<ServiceStatus> {
        self.snapshot.borrow().statuses.clone()
    }

    /// Restarts one service (also one that is `failed`).
    async fn restart(
        &self,
        name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.command(Command::Restart, name, conn, &header, "Restart")
            .await
    }

    /// Stops one service; it stays stopped until `Start`.
    async fn stop(
        &self,
        name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.command(Command::Stop, name, conn, &header, "Stop")
            .await
    }

    /// Starts a stopped or failed service.
    async fn start(
        &self,
        name: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), BusError> {
        self.command(Command::Start, name, conn, &header, "Start")
            .await
    }

    /// The last `lines` lines a service wrote (0: all that are kept).
    async fn logs(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
        name: String,
        lines: u32,
    ) -> Result<Vec<String>, BusError> {
        authorize(conn, &header, INTERFACE, "Logs").await?;
        Ok(self
            .ring(&name)?
            .last(usize::try_from(lines).unwrap_or(usize::MAX)))
    }

    /// The lines a service wrote from number `seq` on, and the number to
    /// ask for next: `logs --follow` polls this.
    async fn logs_since(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] header: Header<'_>,
        name: String,
        seq: u64,
    ) -> Result<(u64, Vec<String>), BusError> {
        authorize(conn, &header, INTERFACE, "LogsSince").await?;
        Ok(self.ring(&name)?.since(seq))
    }

    /// Boot phase.
    #[zbus(property)]
    async fn phase(&self) -> String {
        self.phase.borrow().as_str().to_owned()
    }

    /// A service changed state.
    #[zbus(signal)]
    async fn service_changed(
        emitter: &SignalEmitter<'_>,
        status: ServiceStatus,
    ) -> zbus::Result<()>;
}

/// Connects to the bus, serves `server` and `containers` (oxinit's
/// config domain, `org.oxwrt.Daemon1`) and requests [`NAME`].
pub async fn connect(
    address: &str,
    server: InitServer,
    containers: crate::containers::Containers,
) -> zbus::Result<Connection> {
    let builder = zbus::connection::Builder::address(address).serve_at(INIT_PATH, server);
    oxwrt_daemon::serve_domain(builder, containers)
        .name(NAME)
        .build()
        .await
}

/// Emits `ServiceChanged` for every change and `PropertiesChanged` for
/// every phase change, until the channels close.
pub async fn announce(
    conn: Connection,
    mut changes: mpsc::UnboundedReceiver<ServiceStatus>,
    mut phase: watch::Receiver<BootPhase>,
) {
    let iface = match conn
        .object_server()
        .interface::<_, InitServer>(INIT_PATH)
        .await
    {
        Ok(i) => i,
        Err(e) => return tracing::error!("Init1 not served: {e}"),
    };
    let emitter = iface.signal_emitter();
    loop {
        tokio::select! {
            status = changes.recv() => {
                let Some(status) = status else { return };
                if let Err(e) = InitServer::service_changed(emitter, status).await {
                    // The broker stops last at shutdown; our last words are lost.
                    if *phase.borrow() == BootPhase::Shutdown {
                        tracing::debug!("ServiceChanged: {e}");
                    } else {
                        tracing::warn!("ServiceChanged: {e}");
                    }
                }
            }
            r = phase.changed() => {
                if r.is_err() {
                    return;
                }
                if let Err(e) = iface.get().await.phase_changed(emitter).await {
                    tracing::warn!("Phase changed: {e}");
                }
            }
        }
    }
}
