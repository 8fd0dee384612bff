//! netd's state and the one place that changes the kernel: the config it
//! applies, what it owns, the WAN leases, and converging the kernel to
//! all of that. The daemon's domain (config from configd), the DHCP
//! clients' events and the kernel's link events all come here, one at a
//! time (the caller holds the lock).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bus_schema::config::Sections;
use bus_schema::config::model::{Network, NetworkKind, Route, WanMode, Wireguard};
use bus_schema::config::section;
use tokio::sync::mpsc;

use crate::desired::Desired;
use crate::dhcp::Lease;
use crate::kernel::Kernel;
use crate::reconcile::{Observed, Owned, reconcile};
use crate::status;
use crate::uplinks::{ClientEvent, Clients};

/// File under `$STATE/netd/` that lists what netd created.
const OWNED_FILE: &str = "owned.json";

/// Errors of starting netd's core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The rtnetlink socket could not be opened.
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
}

/// netd's state.
#[derive(Debug)]
pub struct Core {
    kernel: Kernel,
    /// `$STATE/netd/`.
    dir: PathBuf,
    owned: Owned,
    networks: Vec<Network>,
    routes: Vec<Route>,
    /// Leases of dynamic WANs, by device.
    leases: BTreeMap<String, Lease>,
    clients: Clients,
    conn: Arc<OnceLock<zbus::Connection>>,
}

impl Core {
    /// Opens rtnetlink and reads what netd owned before it (re)started.
    pub fn open(
        dir: PathBuf,
        events: mpsc::Sender<ClientEvent>,
        conn: Arc<OnceLock<zbus::Connection>>,
    ) -> Result<Self, CoreError> {
        let owned = oxwrt_daemon::persist::load_json(&dir, OWNED_FILE).unwrap_or_default();
        Ok(Self {
            kernel: Kernel::open()?,
            clients: Clients::new(dir.clone(), events),
            dir,
            owned,
            networks: Vec::new(),
            routes: Vec::new(),
            leases: BTreeMap::new(),
            conn,
        })
    }

    /// The config after `sections` (only the changed ones) replace parts
    /// of the current one.
    fn merged(&self, sections: &Sections) -> Result<(Vec<Network>, Vec<Route>), String> {
        let networks = section(sections, "networks")?.unwrap_or_else(|| self.networks.clone());
        let routes = section(sections, "routes")?.unwrap_or_else(|| self.routes.clone());
        Ok((networks, routes))
    }

    /// What the kernel should have for this config and the current leases.
    fn desired(&self, networks: &[Network], routes: &[Route]) -> Desired {
        let mut d = Desired::from_config(networks, routes);
        for n in networks {
            if let NetworkKind::Wan(wan) = &n.kind {
                if let (WanMode::Dhcp { .. }, Some(lease)) =
                    (&wan.mode, self.leases.get(&wan.device))
                {
                    d.add_uplink(&wan.device, wan.priority, &crate::uplinks::uplink(lease));
                }
            }
        }
        d
    }

    /// Could `sections` be applied? Every device must exist (or be one
    /// netd creates) and be of the right kind.
    pub async fn check(&self, sections: &Sections) -> Result<(), String> {
        let (networks, routes) = self.merged(sections)?;
        if let Some(wg) = section::<Vec<Wireguard>>(sections, "wireguard")? {
            if !wg.is_empty() {
                return Err(format!(
                    "wireguard: {} interface(s) configured, but netd does not build \
                     WireGuard interfaces yet",
                    wg.len()
                ));
            }
        }
        let observed = self.kernel.observe().await.map_err(|e| e.to_string())?;
        let plan = reconcile(&self.desired(&networks, &routes), &observed, &self.owned);
        if plan.problems.is_empty() {
            Ok(())
        } else {
            Err(plan.problems.join("; "))
        }
    }

    /// Applies `sections`: the new config, its DHCP clients, and the
    /// kernel converged to it.
    pub async fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        let (networks, routes) = self.merged(sections)?;
        if let Some(wg) = section::<Vec<Wireguard>>(sections, "wireguard")? {
            if !wg.is_empty() {
                tracing::warn!(
                    "wireguard: not built yet; {} interface(s) ignored",
                    wg.len()
                );
            }
        }
        self.networks = networks;
        self.routes = routes;
        // Clients whose WAN went away or changed stop first (releasing
        // when configured); a lease they leave behind is dropped.
        self.clients.stop_stale(&self.networks).await;
        self.leases.retain(|device, _| self.clients.wants(device));
        // A WAN that starts with a lease still valid keeps its address
        // while its client confirms it (INIT-REBOOT): no flap on restart.
        for (device, lease) in self.clients.persisted(&self.networks) {
            self.leases.entry(device).or_insert(lease);
        }
        let observed = self.converge().await?;
        // After the converge, so that a configured MAC is in place before
        // a client reads it.
        self.clients.start_missing(&self.networks, &observed).await;
        self.publish(&observed).await;
        Ok(())
    }

    /// Makes the kernel match the config and leases, touching only what
    /// differs, and returns the kernel's state after that (read again only
    /// when something was done). A missing device is logged and set up on
    /// a later link event (hotplug); a failing kernel call is an error.
    pub async fn converge(&mut self) -> Result<Observed, String> {
        let observed = self.kernel.observe().await.map_err(|e| e.to_string())?;
        let plan = reconcile(
            &self.desired(&self.networks, &self.routes),
            &observed,
            &self.owned,
        );
        for p in &plan.problems {
            tracing::warn!("{p}");
        }
        if !plan.actions.is_empty() {
            tracing::info!(actions = ?plan.actions, "converging");
        }
        let result = self
            .kernel
            .apply(&plan.actions)
            .await
            .map_err(|e| e.to_string());
        // What netd created is recorded even when a later action failed.
        if plan.owned != self.owned {
            self.owned = plan.owned;
            if let Err(e) = oxwrt_daemon::persist::save_json(&self.dir, OWNED_FILE, &self.owned) {
                tracing::error!("save {}: {e}", self.dir.join(OWNED_FILE).display());
            }
        }
        result?;
        if plan.actions.is_empty() {
            Ok(observed)
        } else {
            self.kernel.observe().await.map_err(|e| e.to_string())
        }
    }

    /// A DHCP client's news.
    pub async fn on_client(&mut self, event: ClientEvent) {
        match event.lease {
            Some(lease) => {
                tracing::info!(device = event.device, address = %lease.address, "lease bound");
                self.leases.insert(event.device, lease);
            }
            None => {
                tracing::warn!(device = event.device, "lease lost");
                self.leases.remove(&event.device);
            }
        }
        match self.converge().await {
            Ok(observed) => self.publish(&observed).await,
            Err(e) => tracing::error!("apply the lease: {e}"),
        }
    }

    /// A link or address changed in the kernel: converge again (a device
    /// that appeared is set up; an address or route of netd's that someone
    /// removed comes back; nothing happens when nothing differs), restart
    /// the DHCP client of a WAN device that was replaced, then publish.
    pub async fn on_kernel_change(&mut self) {
        match self.converge().await {
            Ok(observed) => {
                self.clients
                    .restart_replaced(&self.networks, &observed)
                    .await;
                self.publish(&observed).await;
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// Stops every client (releasing leases where configured) and removes
    /// what a released lease put in the kernel.
    pub async fn shutdown(&mut self) {
        let released = self.clients.stop_all().await;
        if released.is_empty() {
            return;
        }
        for device in released {
            self.leases.remove(&device);
        }
        if let Err(e) = self.converge().await {
            tracing::warn!("remove released leases: {e}");
        }
    }

    /// Publishes links and WAN state on `org.oxwrt.Net1` (a signal only
    /// when something changed).
    async fn publish(&self, observed: &Observed) {
        let Some(conn) = self.conn.get() else { return };
        let (links, wan) = self.status(observed);
        if let Err(e) = crate::bus::publish(conn, links, wan).await {
            tracing::warn!("publish on the bus: {e}");
        }
    }

    fn status(
        &self,
        observed: &Observed,
    ) -> (
        Vec<bus_schema::bus::LinkStatus>,
        Vec<bus_schema::bus::WanStatus>,
    ) {
        (
            status::links(observed),
            status::wans(&self.networks, &self.leases, observed),
        )
    }
}
