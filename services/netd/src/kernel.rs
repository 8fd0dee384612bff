//! The kernel side: read links, addresses and netd's routes into
//! [`Observed`], and carry out [`Action`]s, through rtnetlink.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVlan, RouteMessageBuilder};

use crate::desired::RouteSpec;
use crate::reconcile::{Action, Kind, LinkState, Observed};

/// The route protocol netd marks its routes with (`ip route` shows
/// `proto 88`), so that it recognises them after a restart and never
/// touches anyone else's.
pub const ROUTE_PROTOCOL: u8 = 88;

/// Errors of the kernel side.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Opening the netlink socket failed.
    #[error("open rtnetlink: {0}")]
    Open(#[source] std::io::Error),
    /// A dump failed.
    #[error("read {what}: {source}")]
    Dump {
        /// What was read.
        what: &'static str,
        /// Why it failed.
        source: rtnetlink::Error,
    },
    /// An action failed.
    #[error("{action:?}: {source}")]
    Apply {
        /// The action.
        action: Box<Action>,
        /// Why it failed.
        source: rtnetlink::Error,
    },
    /// An action names a device the kernel does not have.
    #[error("{action:?}: no device {device}")]
    NoDevice {
        /// The action.
        action: Box<Action>,
        /// The device.
        device: String,
    },
}

/// An rtnetlink connection in the current network namespace.
#[derive(Debug, Clone)]
pub struct Kernel {
    handle: Handle,
}

impl Kernel {
    /// Opens a connection; its task runs on the current tokio runtime.
    pub fn open() -> Result<Self, KernelError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(KernelError::Open)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Reads the links, every address and netd's routes.
    pub async fn observe(&self) -> Result<Observed, KernelError> {
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| KernelError::Dump {
                what: "links",
                source,
            })?;
        let names: BTreeMap<u32, String> = links
            .iter()
            .filter_map(|l| Some((l.header.index, link_name(l)?)))
            .collect();
        let mut observed = Observed::default();
        for l in &links {
            let Some(name) = link_name(l) else { continue };
            observed.links.insert(name, link_state(l, &names));
        }
        let addresses: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| KernelError::Dump {
                what: "addresses",
                source,
            })?;
        for a in &addresses {
            let (Some(device), Some(ip)) = (names.get(&a.header.index), address_of(a)) else {
                continue;
            };
            if let Ok(net) = IpNet::new(ip, a.header.prefix_len) {
                observed.addresses.insert((device.clone(), net));
            }
        }
        for family in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let routes: Vec<RouteMessage> = self
                .handle
                .route()
                .get(family)
                .execute()
                .try_collect()
                .await
                .map_err(|source| KernelError::Dump {
                    what: "routes",
                    source,
                })?;
            for r in routes
                .iter()
                .filter(|r| r.header.protocol == RouteProtocol::Other(ROUTE_PROTOCOL))
            {
                if let Some(spec) = route_spec(r, &names) {
                    observed.routes.insert(spec);
                }
            }
        }
        Ok(observed)
    }

    /// Carries out `actions` in order; stops at the first failure.
    pub async fn apply(&self, actions: &[Action]) -> Result<(), KernelError> {
        for action in actions {
            self.apply_one(action).await?;
        }
        Ok(())
    }

    async fn index(&self, action: &Action, device: &str) -> Result<u32, KernelError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(device.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l.header.index),
            _ => Err(KernelError::NoDevice {
                action: Box::new(action.clone()),
                device: device.to_string(),
            }),
        }
    }

    async fn apply_one(&self, action: &Action) -> Result<(), KernelError> {
        let failed = |source| KernelError::Apply {
            action: Box::new(action.clone()),
            source,
        };
        let link = self.handle.link();
        match action {
            Action::CreateBridge(name) => link
                .add(LinkBridge::new(name).build())
                .execute()
                .await
                .map_err(failed),
            Action::CreateVlan { name, vlan } => {
                let parent = self.index(action, &vlan.parent).await?;
                link.add(LinkVlan::new(name, parent, vlan.id).build())
                    .execute()
                    .await
                    .map_err(failed)
            }
            Action::SetMaster { device, master } => {
                let index = self.index(action, device).await?;
                let builder = LinkUnspec::new_with_index(index);
                let message = match master {
                    Some(m) => builder.controller(self.index(action, m).await?),
                    None => builder.nocontroller(),
                };
                link.set(message.build()).execute().await.map_err(failed)
            }
            Action::SetMtu(device, mtu) => {
                let index = self.index(action, device).await?;
                let message = LinkUnspec::new_with_index(index).mtu(u32::from(*mtu));
                link.set(message.build()).execute().await.map_err(failed)
            }
            Action::SetMac(device, mac) => {
                let index = self.index(action, device).await?;
                let message = LinkUnspec::new_with_index(index).address(mac.0.to_vec());
                link.set(message.build()).execute().await.map_err(failed)
            }
            Action::SetUp(device) => {
                let index = self.index(action, device).await?;
                let message = LinkUnspec::new_with_index(index).up();
                link.set(message.build()).execute().await.map_err(failed)
            }
            Action::DeleteLink(device) => {
                let index = self.index(action, device).await?;
                link.del(index).execute().await.map_err(failed)
            }
            Action::AddAddress(device, net) => {
                let index = self.index(action, device).await?;
                self.handle
                    .address()
                    .add(index, net.addr(), net.prefix_len())
                    .execute()
                    .await
                    .map_err(failed)
            }
            Action::DelAddress(device, net) => {
                let index = self.index(action, device).await?;
                let found = self
                    .handle
                    .address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_filter(|a| {
                        std::future::ready(
                            address_of(a) == Some(net.addr())
                                && a.header.prefix_len == net.prefix_len(),
                        )
                    })
                    .try_next()
                    .await
                    .map_err(failed)?;
                match found {
                    Some(a) => self.handle.address().del(a).execute().await.map_err(failed),
                    None => Ok(()),
                }
            }
            Action::AddRoute(spec) => {
                let message = self.route_message(action, spec).await?;
                self.handle
                    .route()
                    .add(message)
                    .execute()
                    .await
                    .map_err(failed)
            }
            Action::DelRoute(spec) => {
                let message = self.route_message(action, spec).await?;
                self.handle
                    .route()
                    .del(message)
                    .execute()
                    .await
                    .map_err(failed)
            }
        }
    }

    async fn route_message(
        &self,
        action: &Action,
        spec: &RouteSpec,
    ) -> Result<RouteMessage, KernelError> {
        let oif = match &spec.device {
            Some(d) => Some(self.index(action, d).await?),
            None => None,
        };
        let protocol = RouteProtocol::Other(ROUTE_PROTOCOL);
        let mut message = match spec.destination {
            IpNet::V4(dest) => {
                let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                    .destination_prefix(dest.addr(), dest.prefix_len())
                    .priority(spec.metric)
                    .protocol(protocol);
                if let Some(IpAddr::V4(gw)) = spec.gateway {
                    b = b.gateway(gw);
                }
                if let Some(oif) = oif {
                    b = b.output_interface(oif);
                }
                b.build()
            }
            IpNet::V6(dest) => {
                let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                    .destination_prefix(dest.addr(), dest.prefix_len())
                    .priority(spec.metric)
                    .protocol(protocol);
                if let Some(IpAddr::V6(gw)) = spec.gateway {
                    b = b.gateway(gw);
                }
                if let Some(oif) = oif {
                    b = b.output_interface(oif);
                }
                b.build()
            }
        };
        message.header.kind = RouteType::Unicast;
        Ok(message)
    }
}

fn link_name(l: &LinkMessage) -> Option<String> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn link_state(l: &LinkMessage, names: &BTreeMap<u32, String>) -> LinkState {
    let mut state = LinkState {
        kind: Kind::Other,
        master: None,
        mtu: 0,
        mac: None,
        up: l.header.flags.contains(LinkFlags::Up),
        index: l.header.index,
        oper: "unknown".to_string(),
    };
    let mut parent = None;
    let mut vlan_id = None;
    for a in &l.attributes {
        match a {
            LinkAttribute::Mtu(m) => state.mtu = *m,
            LinkAttribute::OperState(o) => state.oper = format!("{o:?}").to_lowercase(),
            LinkAttribute::Address(bytes) => {
                state.mac = <[u8; 6]>::try_from(bytes.as_slice())
                    .ok()
                    .map(bus_schema::config::value::MacAddr)
            }
            LinkAttribute::Controller(i) => state.master = names.get(i).cloned(),
            LinkAttribute::Link(i) => parent = names.get(i).cloned(),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::Bridge) => state.kind = Kind::Bridge,
                        LinkInfo::Data(InfoData::Vlan(v)) => {
                            vlan_id = v.iter().find_map(|i| match i {
                                InfoVlan::Id(id) => Some(*id),
                                _ => None,
                            })
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let (Some(parent), Some(id)) = (parent, vlan_id) {
        state.kind = Kind::Vlan(crate::desired::VlanOf { parent, id });
    }
    state
}

fn address_of(a: &AddressMessage) -> Option<IpAddr> {
    // For IPv4 `Local` is the interface's own address (`Address` is the
    // peer's on point-to-point links); IPv6 has only `Address`.
    let local = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}

fn route_spec(r: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<RouteSpec> {
    let ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    let mut destination = None;
    let (mut gateway, mut device, mut metric) = (None, None, 0);
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => destination = ip(d),
            RouteAttribute::Gateway(g) => gateway = ip(g),
            RouteAttribute::Oif(i) => device = names.get(i).cloned(),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    let unspecified = match r.header.address_family {
        rtnetlink::packet_route::AddressFamily::Inet6 => {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        }
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    let destination = IpNet::new(
        destination.unwrap_or(unspecified),
        r.header.destination_prefix_length,
    )
    .ok()?;
    Some(RouteSpec {
        destination,
        gateway,
        device,
        metric,
    })
}
