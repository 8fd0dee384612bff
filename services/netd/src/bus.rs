//! `org.oxwrt.Net1`: netd's links and WAN state, for other daemons (fwd,
//! dnsd) and operators. Read-only; each property signals its changes.

use bus_schema::bus::{LinkStatus, NET_PATH, WanStatus};

/// The served object: the last published state.
#[derive(Debug, Default)]
pub struct Net1 {
    links: Vec<LinkStatus>,
    wan: Vec<WanStatus>,
}

#[zbus::interface(name = "org.oxwrt.Net1")]
impl Net1 {
    /// Every link in netd's namespace, by name.
    #[zbus(property)]
    fn links(&self) -> Vec<LinkStatus> {
        self.links.clone()
    }

    /// Every WAN network in config order.
    #[zbus(property)]
    fn wan(&self) -> Vec<WanStatus> {
        self.wan.clone()
    }
}

/// Replaces the published state; emits `PropertiesChanged` for each
/// property that differs.
pub async fn publish(
    conn: &zbus::Connection,
    links: Vec<LinkStatus>,
    wan: Vec<WanStatus>,
) -> zbus::Result<()> {
    let iface = conn.object_server().interface::<_, Net1>(NET_PATH).await?;
    let mut net = iface.get_mut().await;
    let emitter = iface.signal_emitter();
    if net.links != links {
        net.links = links;
        net.links_changed(emitter).await?;
    }
    if net.wan != wan {
        net.wan = wan;
        net.wan_changed(emitter).await?;
    }
    Ok(())
}
