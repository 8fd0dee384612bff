//! The validated config: what daemons consume. Every reference resolves,
//! every value is parsed, defaults are filled in, secrets are resolved into
//! [`Secret`] values that never print.
//!
//! Plain value enums (actions, protocols, modes) are shared with the wire
//! layer; everything else is typed here.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::value::{MacAddr, PortRange, Rate, Schedule};
pub use super::wire::{
    Action, Band, BlockResponse, DdnsProvider, DnsProtocol, Family, NetworkMode, Proto,
    RestartPolicy, Role, Security,
};

/// The whole validated config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Device identity.
    pub system: System,
    /// Networks, in file order.
    pub networks: Vec<Network>,
    /// Static routes.
    pub routes: Vec<Route>,
    /// Firewall policy.
    pub firewall: Firewall,
    /// Port forwards.
    pub port_forwards: Vec<PortForward>,
    /// DHCP service.
    pub dhcp: Dhcp,
    /// DNS service.
    pub dns: Dns,
    /// Wi-Fi.
    pub wifi: Wifi,
    /// WireGuard interfaces.
    pub wireguard: Vec<Wireguard>,
    /// Time synchronisation.
    pub ntp: Ntp,
    /// Dynamic DNS updaters.
    pub ddns: Vec<Ddns>,
    /// Control plane.
    pub control: Control,
    /// Container services.
    pub services: Vec<Service>,
}

impl Config {
    /// The network called `name`.
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }
}

/// Device identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct System {
    /// Host name.
    pub hostname: String,
    /// Local domain.
    pub domain: String,
    /// IANA time zone.
    pub timezone: String,
}

/// A network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    /// Unique name.
    pub name: String,
    /// MTU override.
    pub mtu: Option<u16>,
    /// MAC override.
    pub mac: Option<MacAddr>,
    /// Kind-specific settings.
    #[serde(flatten)]
    pub kind: NetworkKind,
}

impl Network {
    /// The Linux device that carries the network's addresses.
    pub fn device(&self) -> &str {
        match &self.kind {
            NetworkKind::Lan(lan) => &lan.bridge,
            NetworkKind::Wan(wan) => &wan.device,
            NetworkKind::Simple(simple) => &simple.device,
        }
    }

    /// The network's own IPv4 address and prefix, when it is configured.
    pub fn ipv4(&self) -> Option<Ipv4Net> {
        match &self.kind {
            NetworkKind::Lan(lan) => Some(lan.address),
            NetworkKind::Simple(simple) => simple.address,
            NetworkKind::Wan(Wan {
                mode: WanMode::Static { address, .. },
                ..
            }) => Some(*address),
            NetworkKind::Wan(_) => None,
        }
    }
}

/// Kind-specific network settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NetworkKind {
    /// A bridge serving clients.
    Lan(Lan),
    /// An uplink.
    Wan(Wan),
    /// A plain interface.
    Simple(Simple),
}

/// LAN bridge settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lan {
    /// Bridge device.
    pub bridge: String,
    /// Member ports (a VLAN member appears as `parent.id`).
    pub ports: Vec<String>,
    /// Router address and prefix.
    pub address: Ipv4Net,
    /// Router IPv6 address and prefix.
    pub ipv6: Option<Ipv6Net>,
    /// The VLAN sub-interface added to the bridge.
    pub vlan: Option<Vlan>,
}

/// An 802.1Q VLAN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vlan {
    /// Parent device.
    pub parent: String,
    /// VLAN id, 1–4094.
    pub id: u16,
    /// Sub-interface name, `parent.id`.
    pub device: String,
}

/// WAN settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wan {
    /// Device.
    pub device: String,
    /// Lower is preferred.
    pub priority: u32,
    /// How the address is obtained.
    #[serde(flatten)]
    pub mode: WanMode,
}

/// How a WAN gets its address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum WanMode {
    /// DHCPv4 client.
    Dhcp {
        /// Option 12.
        hostname: Option<String>,
        /// Option 60.
        vendor_class: Option<String>,
        /// Release the lease when netd stops.
        release: bool,
    },
    /// Static addressing.
    Static {
        /// Address and prefix.
        address: Ipv4Net,
        /// Default gateway.
        gateway: Ipv4Addr,
        /// DNS servers.
        dns: Vec<IpAddr>,
    },
    /// PPPoE.
    Pppoe {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

/// A plain interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Simple {
    /// Device (the VLAN sub-interface when `vlan` is set).
    pub device: String,
    /// IPv4 address.
    pub address: Option<Ipv4Net>,
    /// IPv6 address.
    pub ipv6: Option<Ipv6Net>,
    /// VLAN the device is created as.
    pub vlan: Option<Vlan>,
}

/// A static route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub destination: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Network whose device carries the route.
    pub network: Option<String>,
    /// Metric.
    pub metric: u32,
}

/// Firewall policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Firewall {
    /// Defaults.
    pub defaults: FirewallDefaults,
    /// Zones.
    pub zones: Vec<Zone>,
    /// Forwardings.
    pub forwardings: Vec<Forwarding>,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// Firewall defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirewallDefaults {
    /// Input policy.
    pub input: Action,
    /// Output policy.
    pub output: Action,
    /// Forward policy.
    pub forward: Action,
    /// Drop conntrack-invalid packets.
    pub drop_invalid: bool,
    /// SYN flood limit, when protection is on.
    pub syn_flood: Option<(Rate, u32)>,
    /// Flow offload requested.
    pub flow_offload: bool,
}

/// A zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Zone {
    /// Name.
    pub name: String,
    /// Member networks and WireGuard interfaces.
    pub networks: Vec<String>,
    /// Input policy.
    pub input: Action,
    /// Output policy.
    pub output: Action,
    /// Intra-zone forward policy.
    pub forward: Action,
    /// Masquerade.
    pub masquerade: bool,
    /// MSS clamping.
    pub mss_clamping: bool,
}

/// A forwarding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarding {
    /// Source zone.
    pub src: String,
    /// Destination zone.
    pub dest: String,
}

/// A firewall rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    /// Name.
    pub name: String,
    /// Source zone (none: the router).
    pub src: Option<String>,
    /// Destination zone (none: the router).
    pub dest: Option<String>,
    /// Family.
    pub family: Family,
    /// Protocols (empty: any).
    pub proto: Vec<Proto>,
    /// Source prefixes.
    pub src_addr: Vec<IpNet>,
    /// Destination prefixes.
    pub dest_addr: Vec<IpNet>,
    /// Source ports.
    pub src_port: Vec<PortRange>,
    /// Destination ports.
    pub dest_port: Vec<PortRange>,
    /// ICMP type names.
    pub icmp_type: Vec<String>,
    /// Verdict.
    pub action: Action,
    /// Log.
    pub log: bool,
    /// Count.
    pub counter: bool,
    /// Rate limit and burst.
    pub limit: Option<(Rate, u32)>,
    /// Active time.
    pub schedule: Option<Schedule>,
}

/// A port forward.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PortForward {
    /// Name.
    pub name: String,
    /// Protocols.
    pub proto: Vec<Proto>,
    /// External ports.
    pub external: PortRange,
    /// Internal host.
    pub internal_addr: Ipv4Addr,
    /// Internal ports (same length as `external`).
    pub internal: PortRange,
    /// Source zone.
    pub src_zone: String,
    /// Hairpin NAT.
    pub reflection: bool,
}

/// DHCP service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dhcp {
    /// Pools.
    pub pools: Vec<DhcpPool>,
    /// Static leases.
    pub static_leases: Vec<StaticLease>,
}

/// A DHCP pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DhcpPool {
    /// LAN network.
    pub network: String,
    /// First address.
    pub start: Ipv4Addr,
    /// Last address.
    pub end: Ipv4Addr,
    /// Lease time in seconds.
    pub lease_secs: u32,
    /// Option 3.
    pub router: Ipv4Addr,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: String,
    /// Option 42.
    pub ntp: Vec<Ipv4Addr>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 121.
    pub classless_routes: Vec<(Ipv4Net, Ipv4Addr)>,
    /// Other options by code, ascending.
    pub raw_options: Vec<(u8, Vec<u8>)>,
}

/// A static lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticLease {
    /// Client MAC.
    pub mac: MacAddr,
    /// Fixed address.
    pub ip: Ipv4Addr,
    /// Host name.
    pub hostname: Option<String>,
    /// LAN network the address is in.
    pub network: String,
}

/// DNS service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dns {
    /// Networks served.
    pub listen: Vec<String>,
    /// Upstreams (empty: WAN-learned).
    pub upstreams: Vec<Upstream>,
    /// Cache capacity.
    pub cache_size: u32,
    /// Local domain.
    pub domain: String,
    /// Static names (fully qualified, lower-case).
    pub hosts: Vec<DnsHost>,
    /// Rebind protection.
    pub rebind_protection: bool,
    /// Exempt domains.
    pub rebind_allow: Vec<String>,
    /// Blocklist files.
    pub blocklists: Vec<String>,
    /// Blocked answer.
    pub block_response: BlockResponse,
}

/// An upstream DNS server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upstream {
    /// Address and port.
    pub address: SocketAddr,
    /// Transport.
    pub protocol: DnsProtocol,
    /// TLS name.
    pub server_name: Option<String>,
}

/// A static DNS name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsHost {
    /// Fully qualified name.
    pub name: String,
    /// Addresses.
    pub addresses: Vec<IpAddr>,
}

/// Wi-Fi.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wifi {
    /// Radios.
    pub radios: Vec<Radio>,
    /// SSIDs.
    pub networks: Vec<WifiNetwork>,
}

/// A radio.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Radio {
    /// Name.
    pub name: String,
    /// Kernel phy.
    pub phy: String,
    /// Band.
    pub band: Band,
    /// Channel (none: automatic).
    pub channel: Option<u8>,
    /// Country.
    pub country: String,
    /// Width in MHz.
    pub width: u16,
}

/// An SSID.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WifiNetwork {
    /// Name.
    pub name: String,
    /// Radio.
    pub radio: String,
    /// SSID.
    pub ssid: String,
    /// Security.
    pub security: Security,
    /// Passphrase (none for open).
    pub passphrase: Option<Secret>,
    /// LAN network.
    pub network: String,
    /// Hidden.
    pub hidden: bool,
    /// Client isolation.
    pub client_isolation: bool,
}

/// A WireGuard interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wireguard {
    /// Interface name.
    pub name: String,
    /// Listen port.
    pub listen_port: Option<u16>,
    /// Private key (base64).
    pub private_key: Secret,
    /// Interface addresses.
    pub addresses: Vec<IpNet>,
    /// Peers.
    pub peers: Vec<WireguardPeer>,
}

/// A WireGuard peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireguardPeer {
    /// Name.
    pub name: String,
    /// Public key bytes.
    #[serde(serialize_with = "base64_key", deserialize_with = "base64_key_de")]
    pub public_key: [u8; 32],
    /// Preshared key.
    pub preshared_key: Option<Secret>,
    /// Allowed prefixes.
    pub allowed_ips: Vec<IpNet>,
    /// `host:port`.
    pub endpoint: Option<String>,
    /// Keepalive seconds.
    pub persistent_keepalive: Option<u16>,
}

/// Time synchronisation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ntp {
    /// Servers.
    pub servers: Vec<String>,
    /// Networks served.
    pub serve: Vec<String>,
}

/// A DDNS updater.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ddns {
    /// Name.
    pub name: String,
    /// Provider.
    pub provider: DdnsProvider,
    /// Name to update.
    pub hostname: String,
    /// Token.
    pub token: Secret,
    /// dyndns2 user name.
    pub username: Option<String>,
    /// dyndns2 server.
    pub server: Option<String>,
    /// WAN network.
    pub network: String,
}

/// Control plane.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    /// Listen entries: network names or addresses.
    pub listen: Vec<ControlListen>,
    /// UDP port.
    pub port: u16,
    /// Requests per second per key.
    pub rate_limit: u32,
    /// Burst.
    pub rate_burst: u32,
    /// Clients.
    pub clients: Vec<ControlClient>,
}

/// Where ctld listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlListen {
    /// The router's address on a network.
    Network(String),
    /// A fixed address.
    Address(IpAddr),
}

/// A control client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlClient {
    /// Name.
    pub name: String,
    /// ed25519 public key.
    #[serde(serialize_with = "hex_key", deserialize_with = "hex_key_de")]
    pub key: [u8; 32],
    /// Role.
    pub role: Role,
}

/// A container service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Service {
    /// Name.
    pub name: String,
    /// argv.
    pub command: Vec<String>,
    /// Root file system.
    pub rootfs: Option<String>,
    /// Network placement.
    pub network: ServiceNetwork,
    /// Capabilities kept.
    pub capabilities: Vec<String>,
    /// memory.max in bytes.
    pub memory_max: Option<u64>,
    /// pids.max.
    pub pids_max: Option<u32>,
    /// Dependencies.
    pub depends_on: Vec<String>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// uid and gid.
    pub user: Option<(u32, u32)>,
    /// Environment.
    pub environment: BTreeMap<String, String>,
}

/// Network placement of a container service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum ServiceNetwork {
    /// Router's namespace.
    Host,
    /// Own namespace on a LAN.
    Isolated {
        /// LAN network.
        network: String,
        /// Address.
        address: Ipv4Net,
    },
}

fn base64_key<S: serde::Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(key))
}

fn hex_key<S: serde::Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&key.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn base64_key_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    use base64::Engine as _;
    let text = String::deserialize(d)?;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| serde::de::Error::custom("not a base64 32-byte key"))
}

fn hex_key_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = String::deserialize(d)?;
    super::value::decode_hex(&text)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| serde::de::Error::custom("not a hex 32-byte key"))
}
