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
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

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
            if let Ok(i) = index(&outside, &net.link).await {
                let _ = outside.link().del(i).execute().await;
            }
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

async fn index(handle: &Handle, name: &str) -> Result<u32, rtnetlink::Error> {
    let link = handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await?;
    Ok(link.map_or(0, |l| l.header.index))
}

async fn plumb(
    net: &Isolated,
    outside: &Handle,
    inside: &Handle,
    ns: &File,
) -> Result<(), rtnetlink::Error> {
    // A pair left by an oxinit that died goes first.
    if let Ok(stale) = index(outside, &net.link).await.map(|i| i > 0) {
        if stale {
            let i = index(outside, &net.link).await?;
            outside.link().del(i).execute().await?;
        }
    }
    let peer = format!("{}.p", &net.link[..net.link.len().min(13)]);
    outside
        .link()
        .add(LinkVeth::new(&net.link, &peer).build())
        .execute()
        .await?;
    let peer_index = index(outside, &peer).await?;
    outside
        .link()
        .set(
            LinkUnspec::new_with_index(peer_index)
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await?;
    let (bridge, host) = (
        index(outside, &net.bridge).await?,
        index(outside, &net.link).await?,
    );
    outside
        .link()
        .set(
            LinkUnspec::new_with_index(host)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await?;
    let lo = index(inside, "lo").await?;
    inside
        .link()
        .set(LinkUnspec::new_with_index(lo).up().build())
        .execute()
        .await?;
    let eth = index(inside, &peer).await?;
    inside
        .link()
        .set(LinkUnspec::new_with_index(eth).name(INSIDE).up().build())
        .execute()
        .await?;
    let (address, prefix) = net.address;
    inside
        .address()
        .add(eth, address.into(), prefix)
        .execute()
        .await?;
    inside
        .route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(net.gateway)
                .output_interface(eth)
                .build(),
        )
        .execute()
        .await?;
    Ok(())
}
