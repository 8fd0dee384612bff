//! An isolated container service's network: a network namespace of its
//! own, joined to a LAN bridge by a veth pair, with its address and a
//! default route through the router's address on that LAN.
//!
//! oxinit makes it (not netd) because it is part of the service's
//! sandbox: made before the service's first start, kept across its
//! respawns, and gone with the namespace when the service is removed or
//! oxinit stops (a namespace with no process and no descriptor left is
//! destroyed, and its end of the pair with it). The router-side ends are
//! named [`bus_schema::config::CONTAINER_LINK_PREFIX`]`<service>`, names
//! netd leaves alone on the bridges it owns.

use std::{
    fs::File,
    io,
    net::Ipv4Addr,
    os::fd::{AsRawFd, OwnedFd},
};

use futures_util::TryStreamExt;
use nix::sched::{CloneFlags, setns, unshare};
use rtnetlink::{
    Handle, LinkUnspec, LinkVeth, RouteMessageBuilder, packet_route::link::LinkMessage,
};

/// Where an isolated service sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolated {
    /// The LAN bridge its veth pair joins.
    pub bridge: String,
    /// The router-side end's name.
    pub link: String,
    /// Its address inside, and the prefix length.
    pub address: (Ipv4Addr, u8),
    /// The router's address on that LAN: its default route.
    pub gateway: Ipv4Addr,
}

/// The service's end inside its namespace.
pub const INSIDE: &str = "eth0";

/// Makes the namespace and the link; the namespace lives while the
/// returned descriptor (or a process in it) does.
pub fn create(net: &Isolated) -> io::Result<OwnedFd> {
    let net = net.clone();
    // A thread of its own: it switches network namespace, which the
    // runtime's thread must never do.
    std::thread::spawn(move || on_own_thread(&net))
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

fn on_own_thread(net: &Isolated) -> io::Result<OwnedFd> {
    let home = File::open("/proc/thread-self/ns/net")?;
    unshare(CloneFlags::CLONE_NEWNET)?;
    let ns = File::open("/proc/thread-self/ns/net")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A netlink socket works in the namespace it was opened in.
    let inside = rt.block_on(async { connect() })?;
    setns(&home, CloneFlags::CLONE_NEWNET)?;
    let outside = rt.block_on(async { connect() })?;
    rt.block_on(async {
        let made = plumb(net, &outside, &inside, &ns).await;
        if made.is_err() {
            // Half made: the router's end goes (the other with it).
            remove(&outside, &net.link).await;
        }
        made
    })
    .map_err(|e| io::Error::other(format!("{}: {e}", net.link)))?;
    Ok(ns.into())
}

fn connect() -> io::Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The index of link `name`; an error names it when it is not there.
async fn index(handle: &Handle, name: &str) -> Result<u32, String> {
    let link = handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await;
    match link {
        Ok(Some(l)) => Ok(l.header.index),
        Ok(None) | Err(_) => Err(format!("no link {name}")),
    }
}

/// Deletes link `name` if it is there.
async fn remove(handle: &Handle, name: &str) {
    if let Ok(i) = index(handle, name).await {
        let _ = handle.link().del(i).execute().await;
    }
}

/// Sets what `message` says of a link.
async fn set(handle: &Handle, message: LinkMessage) -> Result<(), String> {
    handle
        .link()
        .set(message)
        .execute()
        .await
        .map_err(|e| e.to_string())
}

async fn plumb(net: &Isolated, outside: &Handle, inside: &Handle, ns: &File) -> Result<(), String> {
    let failed = |e: rtnetlink::Error| e.to_string();
    // A pair left by an oxinit that died, or by a namespace not yet
    // destroyed after a restart, goes first.
    remove(outside, &net.link).await;
    let peer = format!("{}.p", &net.link[..net.link.len().min(13)]);
    outside
        .link()
        .add(LinkVeth::new(&net.link, &peer).build())
        .execute()
        .await
        .map_err(failed)?;
    let peer_index = index(outside, &peer).await?;
    let into_ns = LinkUnspec::new_with_index(peer_index).setns_by_fd(ns.as_raw_fd());
    set(outside, into_ns.build()).await?;
    let (bridge, host) = (
        index(outside, &net.bridge).await?,
        index(outside, &net.link).await?,
    );
    let port = LinkUnspec::new_with_index(host).controller(bridge).up();
    set(outside, port.build()).await?;
    let lo = index(inside, "lo").await?;
    set(inside, LinkUnspec::new_with_index(lo).up().build()).await?;
    let eth = index(inside, &peer).await?;
    set(
        inside,
        LinkUnspec::new_with_index(eth).name(INSIDE).up().build(),
    )
    .await?;
    let (address, prefix) = net.address;
    inside
        .address()
        .add(eth, address.into(), prefix)
        .execute()
        .await
        .map_err(failed)?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(net.gateway)
        .output_interface(eth)
        .build();
    inside.route().add(route).execute().await.map_err(failed)
}
