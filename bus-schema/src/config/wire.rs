//! The wire layer: serde structs that mirror `oxwrt.toml` exactly.
//!
//! Every struct denies unknown fields. Values whose syntax is richer than a
//! TOML type (addresses, ports, durations, schedules, keys) stay strings here
//! and are parsed by the validation layer, so that one pass can report every
//! bad value at once with its position. Doc comments on these items are the
//! config reference: they feed the JSON Schema and `docs/config.md`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret::SecretField;

/// The whole public config file, `oxwrt.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "oxwrt.toml")]
pub struct Config {
    /// Schema version of this file. This firmware reads version 1.
    pub version: u32,
    /// Device identity.
    #[serde(default)]
    pub system: System,
    /// Layer-3 networks: LAN bridges, WAN uplinks and plain interfaces.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Firewall policy: defaults, zones, forwardings and rules.
    #[serde(default)]
    pub firewall: Firewall,
    /// Port forwards (DNAT) from a zone to a host on a LAN.
    #[serde(default)]
    pub port_forwards: Vec<PortForward>,
    /// DHCPv4 service on LAN networks.
    #[serde(default)]
    pub dhcp: Dhcp,
    /// DNS service for the LAN.
    #[serde(default)]
    pub dns: Dns,
    /// Radios and Wi-Fi networks (SSIDs).
    #[serde(default)]
    pub wifi: Wifi,
    /// WireGuard interfaces.
    #[serde(default)]
    pub wireguard: Vec<Wireguard>,
    /// Time synchronisation.
    #[serde(default)]
    pub ntp: Ntp,
    /// Dynamic DNS updaters.
    #[serde(default)]
    pub ddns: Vec<Ddns>,
    /// The operator control plane (QUIC, pinned ed25519 keys).
    #[serde(default)]
    pub control: Control,
    /// Operator-declared container services run by oxinit.
    #[serde(default)]
    pub services: Vec<Service>,
}

/// Device identity.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct System {
    /// Host name of the router (RFC 1123 label).
    pub hostname: String,
    /// Local DNS domain for LAN names.
    pub domain: String,
    /// IANA time zone name, such as `Europe/Berlin`.
    pub timezone: String,
}

impl Default for System {
    fn default() -> Self {
        Self {
            hostname: "oxwrt".into(),
            domain: "lan".into(),
            timezone: "UTC".into(),
        }
    }
}

/// What a network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    /// A bridge of member ports serving clients.
    Lan,
    /// An uplink to the internet.
    Wan,
    /// A plain interface with an address.
    Simple,
}

/// How a WAN network gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WanMode {
    /// DHCPv4 client.
    Dhcp,
    /// Fixed address, gateway and DNS servers.
    Static,
    /// PPP over Ethernet.
    Pppoe,
}

/// A layer-3 network. Which fields apply depends on `kind` (and `mode`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Unique name, referenced by zones, DHCP, Wi-Fi and others.
    pub name: String,
    /// `lan`, `wan` or `simple`.
    pub kind: NetworkKind,
    /// lan: bridge device name (default `br-<name>`).
    pub bridge: Option<String>,
    /// lan: member ports enslaved to the bridge.
    #[serde(default)]
    pub ports: Vec<String>,
    /// wan, simple: the device carrying this network.
    pub device: Option<String>,
    /// lan, simple, wan static: IPv4 address with prefix, `192.168.1.1/24`.
    pub address: Option<String>,
    /// lan, simple: optional IPv6 address with prefix (a ULA such as `fd12:3456:789a::1/64`).
    pub ipv6: Option<String>,
    /// lan, simple: put this network on an 802.1Q VLAN of a parent device.
    pub vlan: Option<Vlan>,
    /// wan: `dhcp` or `static` (`pppoe` is rejected: not supported yet).
    pub mode: Option<WanMode>,
    /// wan dhcp: host name sent to the DHCP server (option 12).
    pub hostname: Option<String>,
    /// wan dhcp: vendor class identifier sent to the DHCP server (option 60).
    pub vendor_class: Option<String>,
    /// wan dhcp: send a DHCPRELEASE when netd stops, so the ISP frees the address at once (default false: keep it for the next start).
    pub release: Option<bool>,
    /// wan static: default gateway.
    pub gateway: Option<String>,
    /// wan static: DNS servers.
    pub dns: Option<Vec<String>>,
    /// wan pppoe (not supported yet): user name.
    pub username: Option<String>,
    /// wan pppoe (not supported yet): password, `{ secret = "NAME" }`.
    pub password: Option<SecretField>,
    /// MTU of the device (576–9216).
    pub mtu: Option<u32>,
    /// MAC address override, `02:00:00:00:00:01`.
    pub mac: Option<String>,
    /// wan: preference among several WANs; the lowest number is used first.
    pub priority: Option<u32>,
}

/// An 802.1Q VLAN on a parent device.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vlan {
    /// Parent device, such as `eth0`.
    pub parent: String,
    /// VLAN id, 1–4094.
    pub id: u32,
}

/// A static route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix, IPv4 or IPv6 (`10.20.0.0/16`, `::/0`).
    pub destination: String,
    /// Next hop; same family as the destination.
    pub gateway: Option<String>,
    /// Network whose device the route uses.
    pub network: Option<String>,
    /// Route metric.
    #[serde(default)]
    pub metric: u32,
}

/// Verdict of a policy or rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let the packet through.
    Accept,
    /// Discard silently.
    Drop,
    /// Discard and tell the sender (TCP reset or ICMP unreachable).
    Reject,
}

/// Firewall policy.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Firewall {
    /// Global defaults.
    pub defaults: FirewallDefaults,
    /// Zones: groups of networks sharing a policy.
    pub zones: Vec<Zone>,
    /// Allowed forwarding between zones.
    pub forwardings: Vec<Forwarding>,
    /// Rules, evaluated in order.
    pub rules: Vec<Rule>,
}

/// Global firewall defaults.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallDefaults {
    /// Policy for traffic to the router not matched by a zone.
    pub input: Action,
    /// Policy for traffic from the router.
    pub output: Action,
    /// Policy for forwarded traffic not matched by a forwarding or rule.
    pub forward: Action,
    /// Drop packets that conntrack marks invalid.
    pub drop_invalid: bool,
    /// Rate-limit new TCP connections (SYN flood protection).
    pub syn_flood_protection: bool,
    /// SYN rate when protection is on, such as `25/second`.
    pub syn_flood_rate: String,
    /// Burst allowed above the SYN rate.
    pub syn_flood_burst: u32,
    /// Offload established flows to a flowtable where the kernel has one.
    pub flow_offload: bool,
}

impl Default for FirewallDefaults {
    fn default() -> Self {
        Self {
            input: Action::Drop,
            output: Action::Accept,
            forward: Action::Drop,
            drop_invalid: true,
            syn_flood_protection: true,
            syn_flood_rate: "25/second".into(),
            syn_flood_burst: 50,
            flow_offload: false,
        }
    }
}

/// A firewall zone.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Unique zone name.
    pub name: String,
    /// Networks (or WireGuard interfaces) in this zone.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Policy for traffic from this zone to the router.
    #[serde(default = "drop")]
    pub input: Action,
    /// Policy for traffic from the router into this zone.
    #[serde(default = "accept")]
    pub output: Action,
    /// Policy for traffic between networks of this zone.
    #[serde(default = "drop")]
    pub forward: Action,
    /// Source-NAT traffic leaving through this zone to the zone's address.
    #[serde(default)]
    pub masquerade: bool,
    /// Clamp TCP MSS to the path MTU on traffic through this zone.
    #[serde(default)]
    pub mss_clamping: bool,
}

fn drop() -> Action {
    Action::Drop
}
fn accept() -> Action {
    Action::Accept
}
fn yes() -> bool {
    true
}

/// Forwarding allowed from one zone to another.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Forwarding {
    /// Source zone.
    pub src: String,
    /// Destination zone.
    pub dest: String,
}

/// Address family a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 and IPv6.
    #[default]
    Any,
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (IPv4).
    Icmp,
    /// ICMPv6.
    Icmpv6,
}

/// A port: a number (`22`) or an inclusive range (`"8000-8080"`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PortSpec {
    /// A single port.
    Number(i64),
    /// A single port or a range `"LOW-HIGH"`.
    Text(String),
}

/// A firewall rule.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique rule name (used in logs and counters).
    pub name: String,
    /// Source zone; absent means traffic from the router itself.
    pub src: Option<String>,
    /// Destination zone; absent means traffic to the router itself.
    pub dest: Option<String>,
    /// Address family.
    #[serde(default)]
    pub family: Family,
    /// Protocols; empty means any.
    #[serde(default)]
    pub proto: Vec<Proto>,
    /// Source addresses or prefixes.
    #[serde(default)]
    pub src_addr: Vec<String>,
    /// Destination addresses or prefixes.
    #[serde(default)]
    pub dest_addr: Vec<String>,
    /// Source ports and ranges (tcp/udp only).
    #[serde(default)]
    pub src_port: Vec<PortSpec>,
    /// Destination ports and ranges (tcp/udp only).
    #[serde(default)]
    pub dest_port: Vec<PortSpec>,
    /// ICMP/ICMPv6 type names, such as `echo-request`.
    #[serde(default)]
    pub icmp_type: Vec<String>,
    /// What to do with matching packets.
    pub action: Action,
    /// Log matching packets (prefixed with the rule name).
    #[serde(default)]
    pub log: bool,
    /// Count matching packets.
    #[serde(default)]
    pub counter: bool,
    /// Match at most this rate, such as `10/minute`.
    pub limit: Option<String>,
    /// Burst allowed above `limit`.
    pub limit_burst: Option<u32>,
    /// When the rule is active, such as `mon-fri 09:00-17:00` (router local time).
    pub schedule: Option<String>,
}

/// A port forward (DNAT).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    /// Unique name.
    pub name: String,
    /// Protocols forwarded (`tcp`, `udp`).
    #[serde(default = "tcp")]
    pub proto: Vec<Proto>,
    /// External port or range.
    pub external_port: PortSpec,
    /// Internal host and port, `192.168.1.10:80`; with a range, the first port of the internal range.
    pub internal: String,
    /// Zone the traffic arrives from.
    #[serde(default = "wan")]
    pub src_zone: String,
    /// Hairpin NAT, so LAN clients can use the public address too.
    #[serde(default = "yes")]
    pub reflection: bool,
}

fn tcp() -> Vec<Proto> {
    vec![Proto::Tcp]
}
fn wan() -> String {
    "wan".into()
}

/// DHCPv4 service.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Dhcp {
    /// One pool per LAN network that serves DHCP.
    pub pools: Vec<DhcpPool>,
    /// Fixed addresses by MAC.
    pub static_leases: Vec<StaticLease>,
}

/// DHCP service on one LAN network.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpPool {
    /// LAN network served.
    pub network: String,
    /// First address of the pool.
    pub start: String,
    /// Last address of the pool.
    pub end: String,
    /// Lease time, such as `12h`, `30m`, `1d` (at least 2m).
    #[serde(default = "twelve_hours")]
    pub lease_time: String,
    /// Router option (3); default the network's own address.
    pub router: Option<String>,
    /// DNS servers option (6); default the network's own address.
    pub dns: Option<Vec<String>>,
    /// Domain name option (15); default `system.domain`.
    pub domain: Option<String>,
    /// NTP servers option (42).
    #[serde(default)]
    pub ntp: Vec<String>,
    /// Interface MTU option (26).
    pub mtu: Option<u32>,
    /// Classless static routes option (121).
    #[serde(default)]
    pub classless_routes: Vec<ClasslessRoute>,
    /// Other options by number.
    #[serde(default)]
    pub raw_options: Vec<RawOption>,
}

fn twelve_hours() -> String {
    "12h".into()
}

/// One classless static route handed to clients.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClasslessRoute {
    /// Destination prefix (IPv4).
    pub destination: String,
    /// Gateway (IPv4).
    pub gateway: String,
}

/// A DHCP option by number, with its payload as hex or text.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOption {
    /// Option code, 1–254.
    pub code: u32,
    /// Payload as hex bytes, `"0a0b0c"`.
    pub hex: Option<String>,
    /// Payload as text.
    pub text: Option<String>,
}

/// A fixed address for a client.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticLease {
    /// Client MAC address.
    pub mac: String,
    /// Address, inside a LAN network that has a DHCP pool.
    pub ip: String,
    /// Host name published in DNS as `<hostname>.<domain>`.
    pub hostname: Option<String>,
}

/// DNS service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Networks whose router address serves DNS; default every LAN network.
    pub listen: Option<Vec<String>>,
    /// Upstream servers; empty means the DNS servers learned on the WAN.
    pub upstreams: Vec<Upstream>,
    /// Cache capacity in records; an answer counts its records or one per
    /// 256 bytes, whichever is more, so this bounds memory too (0
    /// disables the cache).
    pub cache_size: u32,
    /// Local domain; default `system.domain`.
    pub domain: Option<String>,
    /// Static names.
    pub hosts: Vec<DnsHost>,
    /// Refuse private addresses in answers for public names.
    pub rebind_protection: bool,
    /// Domains exempt from rebind protection.
    pub rebind_allow: Vec<String>,
    /// Files listing blocked domains, one per line. Keep them in
    /// `/etc/oxwrt` beside the config: dnsd's sandbox reads nothing else.
    pub blocklists: Vec<String>,
    /// Answer for blocked names: `nxdomain` or `zero` (0.0.0.0 / ::).
    pub block_response: BlockResponse,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            listen: None,
            upstreams: Vec::new(),
            cache_size: 10_000,
            domain: None,
            hosts: Vec::new(),
            rebind_protection: true,
            rebind_allow: Vec::new(),
            blocklists: Vec::new(),
            block_response: BlockResponse::Nxdomain,
        }
    }
}

/// Answer for blocked names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlockResponse {
    /// NXDOMAIN.
    Nxdomain,
    /// 0.0.0.0 or ::.
    Zero,
}

/// Transport to an upstream DNS server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DnsProtocol {
    /// Plain DNS over UDP (TCP on truncation).
    #[default]
    Udp,
    /// Plain DNS over TCP.
    Tcp,
    /// DNS over TLS: rejected, not supported yet.
    Tls,
}

/// An upstream DNS server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Address, optionally with port: `1.1.1.1`, `[2606:4700::1111]:53`.
    pub address: String,
    /// Transport: `udp` or `tcp` (`tls` is rejected: not supported yet).
    #[serde(default)]
    pub protocol: DnsProtocol,
    /// tls (not supported yet): the server name to verify.
    pub server_name: Option<String>,
}

/// A static DNS name.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsHost {
    /// Name; a bare label is placed under the local domain.
    pub name: String,
    /// IPv4 and IPv6 addresses.
    pub addresses: Vec<String>,
}

/// Radios and SSIDs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Wifi {
    /// Physical radios.
    pub radios: Vec<Radio>,
    /// SSIDs on those radios.
    pub networks: Vec<WifiNetwork>,
}

/// Radio band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Band {
    /// 2.4 GHz.
    #[serde(rename = "2g")]
    G2,
    /// 5 GHz.
    #[serde(rename = "5g")]
    G5,
    /// 6 GHz.
    #[serde(rename = "6g")]
    G6,
}

/// A channel number or `"auto"`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Channel {
    /// A channel number.
    Number(i64),
    /// `"auto"`.
    Text(String),
}

/// A physical radio.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Radio {
    /// Unique radio name, referenced by Wi-Fi networks.
    pub name: String,
    /// Kernel phy, such as `phy0`.
    pub phy: String,
    /// `2g`, `5g` or `6g`.
    pub band: Band,
    /// Channel number valid for the band, or `"auto"`.
    pub channel: Channel,
    /// ISO 3166-1 alpha-2 regulatory country, such as `DE`.
    pub country: String,
    /// Channel width in MHz: 20, 40, 80, 160.
    #[serde(default = "width20")]
    pub width: u32,
}

fn width20() -> u32 {
    20
}

/// Wi-Fi security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    /// No encryption.
    Open,
    /// WPA2-PSK.
    Wpa2,
    /// WPA3-SAE.
    Wpa3,
    /// WPA2-PSK and WPA3-SAE transition mode.
    Wpa2Wpa3,
}

/// An SSID.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WifiNetwork {
    /// Unique name.
    pub name: String,
    /// Radio carrying this SSID.
    pub radio: String,
    /// SSID, 1–32 bytes.
    pub ssid: String,
    /// Security mode.
    pub security: Security,
    /// Passphrase (8–63 printable ASCII), `{ secret = "NAME" }`; not for `open`.
    pub passphrase: Option<SecretField>,
    /// LAN network the stations join.
    pub network: String,
    /// Do not broadcast the SSID.
    #[serde(default)]
    pub hidden: bool,
    /// Stop stations on this SSID from talking to each other.
    #[serde(default)]
    pub client_isolation: bool,
}

/// A WireGuard interface.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Wireguard {
    /// Interface name, such as `wg0`; zones may list it as a network.
    pub name: String,
    /// UDP listen port.
    pub listen_port: Option<u32>,
    /// Private key (base64), `{ secret = "NAME" }`.
    pub private_key: SecretField,
    /// Addresses of the interface, with prefix.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Peers.
    #[serde(default)]
    pub peers: Vec<WireguardPeer>,
}

/// A WireGuard peer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WireguardPeer {
    /// Unique name within the interface.
    pub name: String,
    /// The peer's public key (base64 of 32 bytes).
    pub public_key: String,
    /// Optional preshared key (base64), `{ secret = "NAME" }`.
    pub preshared_key: Option<SecretField>,
    /// Prefixes routed to this peer.
    #[serde(default)]
    pub allowed_ips: Vec<String>,
    /// `host:port` to reach the peer.
    pub endpoint: Option<String>,
    /// Keepalive interval in seconds (1–65535).
    pub persistent_keepalive: Option<u32>,
}

/// Time synchronisation.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Ntp {
    /// NTP servers (host names or addresses).
    pub servers: Vec<String>,
    /// LAN networks the router serves time to.
    pub serve: Vec<String>,
}

impl Default for Ntp {
    fn default() -> Self {
        Self {
            servers: vec!["pool.ntp.org".into()],
            serve: Vec::new(),
        }
    }
}

/// Dynamic DNS provider protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DdnsProvider {
    /// Cloudflare API (token).
    Cloudflare,
    /// Duck DNS (token).
    Duckdns,
    /// The dyndns2 protocol (username + token as password, `server` required).
    Dyndns2,
}

/// A dynamic DNS updater.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ddns {
    /// Unique name.
    pub name: String,
    /// Provider protocol.
    pub provider: DdnsProvider,
    /// Fully qualified name to update.
    pub hostname: String,
    /// API token or password, `{ secret = "NAME" }`.
    pub token: SecretField,
    /// dyndns2: user name.
    pub username: Option<String>,
    /// dyndns2: update server host name.
    pub server: Option<String>,
    /// WAN network whose address is published; default the first WAN.
    pub network: Option<String>,
}

/// The control plane.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    /// Where ctld listens: network names (following their address) or fixed
    /// addresses of the router; default every lan network.
    pub listen: Option<Vec<String>>,
    /// UDP port.
    pub port: u32,
    /// Allow listening on a WAN network.
    pub allow_wan: bool,
    /// Requests per second per client key.
    pub rate_limit: u32,
    /// Burst above the rate.
    pub rate_burst: u32,
    /// Authorised clients.
    pub clients: Vec<ControlClient>,
}

/// Default UDP port of the control plane; not WireGuard's 51820.
pub const DEFAULT_CONTROL_PORT: u32 = 7443;

impl Default for Control {
    fn default() -> Self {
        Self {
            listen: None,
            port: DEFAULT_CONTROL_PORT,
            allow_wan: false,
            rate_limit: 20,
            rate_burst: 40,
            clients: Vec::new(),
        }
    }
}

/// What a control client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Every RPC.
    Admin,
    /// Reading RPCs only.
    ReadOnly,
}

/// An operator key allowed on the control plane.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlClient {
    /// Unique name, shown in the audit log.
    pub name: String,
    /// ed25519 public key, 64 hex digits.
    pub key: String,
    /// `admin` or `read-only`.
    pub role: Role,
}

/// Network placement of a container service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Share the router's network namespace.
    #[default]
    Host,
    /// Own network namespace, joined to a LAN bridge by a veth.
    Isolated,
}

/// When oxinit restarts a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// After any exit.
    Always,
    /// After a non-zero exit or a signal.
    #[default]
    OnFailure,
    /// Never.
    Never,
}

/// An operator-declared container service.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unique name (must not be a built-in daemon's).
    pub name: String,
    /// Program and arguments; the program is an absolute path.
    pub command: Vec<String>,
    /// Root file system directory; absent means the host's (read-only).
    pub rootfs: Option<String>,
    /// `host` or `isolated`.
    #[serde(default)]
    pub network_mode: NetworkMode,
    /// isolated: LAN network to join.
    pub network: Option<String>,
    /// isolated: IPv4 address with prefix inside that network.
    pub address: Option<String>,
    /// Capabilities kept, such as `CAP_NET_BIND_SERVICE`; default none.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Memory limit, such as `128M` or `1G`.
    pub memory_max: Option<String>,
    /// Maximum number of tasks.
    pub pids_max: Option<u32>,
    /// Services (built-in or declared) started first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Restart policy.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Numeric uid:gid to run as; default a uid of its own.
    pub user: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// Deserializes a TOML integer-or-string field into `$ty`'s `Number` and
/// `Text` variants, with an `expecting` message in the operator's terms
/// (serde's untagged enums only say "did not match any variant").
macro_rules! number_or_text {
    ($ty:ident, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$ty, E> {
                        Ok($ty::Number(v))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$ty, E> {
                        Ok($ty::Number(i64::try_from(v).unwrap_or(i64::MAX)))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        Ok($ty::Text(v.to_owned()))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

number_or_text!(PortSpec, r#"a port number or a range "LOW-HIGH""#);
number_or_text!(Channel, r#"a channel number or "auto""#);
