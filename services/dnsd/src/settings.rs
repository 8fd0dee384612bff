//! What dnsd takes from the config: sections `system`, `networks`,
//! `dhcp` and `dns`, merged as they arrive (configd sends only the
//! changed ones), and the plain [`Settings`] made of them.

use std::net::{IpAddr, SocketAddr};

use bus_schema::config::Sections;
use bus_schema::config::model::{
    BlockResponse, Dhcp, Dns, DnsProtocol, Network, NetworkKind, System,
};
use ipnet::IpNet;

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A section is not valid JSON of its model type.
    #[error("{0}")]
    Section(String),
    /// `dns.listen` names a network without an address of its own.
    #[error("dns.listen: network {0:?} has no address of its own to serve on")]
    NoAddress(String),
    /// `dns.listen` names a network that is not in `networks`.
    #[error("dns.listen: no network {0:?}")]
    UnknownNetwork(String),
    /// An upstream uses a transport dnsd does not speak yet.
    #[error("dns.upstreams: {0} over tls is not built yet (use udp or tcp)")]
    Tls(SocketAddr),
}

/// The sections dnsd consumes, as last received.
#[derive(Debug, Clone, Default)]
pub struct Config {
    system: Option<System>,
    networks: Option<Vec<Network>>,
    dhcp: Option<Dhcp>,
    dns: Option<Dns>,
}

impl Config {
    /// This config with the sections in `sections` replaced.
    pub fn merged(&self, sections: &Sections) -> Result<Self, SettingsError> {
        fn get<T: serde::de::DeserializeOwned>(
            sections: &Sections,
            name: &str,
        ) -> Result<Option<T>, SettingsError> {
            oxwrt_daemon::section(sections, name).map_err(SettingsError::Section)
        }
        Ok(Self {
            system: get(sections, "system")?.or_else(|| self.system.clone()),
            networks: get(sections, "networks")?.or_else(|| self.networks.clone()),
            dhcp: get(sections, "dhcp")?.or_else(|| self.dhcp.clone()),
            dns: get(sections, "dns")?.or_else(|| self.dns.clone()),
        })
    }

    /// The settings, once every section has arrived.
    pub fn settings(&self) -> Result<Option<Settings>, SettingsError> {
        match (&self.system, &self.networks, &self.dhcp, &self.dns) {
            (Some(s), Some(n), Some(h), Some(d)) => Settings::new(s, n, h, d).map(Some),
            _ => Ok(None),
        }
    }
}

/// One address dnsd serves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The network's name.
    pub network: String,
    /// The router's address on it.
    pub address: IpAddr,
    /// The network's subnet: clients from here are answered.
    pub subnet: IpNet,
}

/// A configured upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Address and port.
    pub address: SocketAddr,
    /// Always TCP (else UDP, TCP when truncated).
    pub tcp: bool,
}

/// A local name and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Lower-case name without the final dot.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
}

/// Everything dnsd needs from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The router's host name (one label, lower-case).
    pub hostname: String,
    /// The local domain (lower-case).
    pub domain: String,
    /// Addresses served on.
    pub listen: Vec<Listen>,
    /// `[[dns.hosts]]`.
    pub hosts: Vec<Host>,
    /// Static leases with a host name, as `<hostname>.<domain>`.
    pub statics: Vec<Host>,
    /// Configured upstreams (empty: the WAN's).
    pub upstreams: Vec<UpstreamConfig>,
    /// Cache capacity in records.
    pub cache_size: usize,
    /// Rebind protection.
    pub rebind_protection: bool,
    /// Domains exempt from it (lower-case).
    pub rebind_allow: Vec<String>,
    /// Blocklist files.
    pub blocklists: Vec<String>,
    /// The answer for blocked names.
    pub block_response: BlockResponse,
}

fn lower(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

impl Settings {
    /// Settings from the four sections.
    pub fn new(
        system: &System,
        networks: &[Network],
        dhcp: &Dhcp,
        dns: &Dns,
    ) -> Result<Self, SettingsError> {
        let domain = lower(&dns.domain);
        let mut listen = Vec::new();
        for name in &dns.listen {
            let net = networks
                .iter()
                .find(|n| &n.name == name)
                .ok_or_else(|| SettingsError::UnknownNetwork(name.clone()))?;
            let v4 = net.ipv4().map(IpNet::V4);
            let v6 = match &net.kind {
                NetworkKind::Lan(l) => l.ipv6.map(IpNet::V6),
                NetworkKind::Simple(s) => s.ipv6.map(IpNet::V6),
                NetworkKind::Wan(_) => None,
            };
            let nets: Vec<IpNet> = v4.into_iter().chain(v6).collect();
            if nets.is_empty() {
                return Err(SettingsError::NoAddress(name.clone()));
            }
            listen.extend(nets.into_iter().map(|n| Listen {
                network: name.clone(),
                address: n.addr(),
                subnet: n.trunc(),
            }));
        }
        let upstreams = dns
            .upstreams
            .iter()
            .map(|u| match u.protocol {
                DnsProtocol::Tls => Err(SettingsError::Tls(u.address)),
                p => Ok(UpstreamConfig {
                    address: u.address,
                    tcp: p == DnsProtocol::Tcp,
                }),
            })
            .collect::<Result<_, _>>()?;
        let hosts = dns
            .hosts
            .iter()
            .map(|h| Host {
                name: lower(&h.name),
                addresses: h.addresses.clone(),
            })
            .collect();
        let statics = dhcp
            .static_leases
            .iter()
            .filter_map(|s| {
                let host = s.hostname.as_deref()?;
                Some(Host {
                    name: format!("{}.{domain}", lower(host)),
                    addresses: vec![IpAddr::V4(s.ip)],
                })
            })
            .collect();
        Ok(Self {
            hostname: lower(&system.hostname),
            domain,
            listen,
            hosts,
            statics,
            upstreams,
            cache_size: usize::try_from(dns.cache_size).unwrap_or(usize::MAX),
            rebind_protection: dns.rebind_protection,
            rebind_allow: dns.rebind_allow.iter().map(|d| lower(d)).collect(),
            blocklists: dns.blocklists.clone(),
            block_response: dns.block_response,
        })
    }

    /// The subnets whose clients are answered.
    pub fn subnets(&self) -> Vec<IpNet> {
        let mut nets: Vec<IpNet> = self.listen.iter().map(|l| l.subnet).collect();
        nets.dedup();
        nets
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sections of a config given as TOML text.
    pub(crate) fn sections_of(text: &str) -> Sections {
        let loaded = bus_schema::config::check_public_text(text)
            .unwrap_or_else(|e| panic!("invalid test config:\n{e}"));
        bus_schema::config::sections(&loaded.config, false)
    }

    /// A router `gw` on 192.168.7.1/24 (and fd00:7::1/64) serving `home`.
    pub(crate) const CONFIG: &str = r#"
version = 1
[system]
hostname = "gw"
domain = "home"

[[networks]]
name = "lan"
kind = "lan"
bridge = "br-lan"
ports = ["lan0"]
address = "192.168.7.1/24"
ipv6 = "fd00:7::1/64"

[[networks]]
name = "wan"
kind = "wan"
device = "wan0"
mode = "dhcp"

[[dhcp.pools]]
network = "lan"
start = "192.168.7.100"
end = "192.168.7.199"

[[dhcp.static_leases]]
mac = "02:00:00:00:00:01"
ip = "192.168.7.5"
hostname = "Printer"

[dns]
rebind_allow = ["Rebind.Example"]

[[dns.hosts]]
name = "nas"
addresses = ["192.168.7.6", "fd00:7::6"]

[[dns.hosts]]
name = "wiki.corp.example"
addresses = ["10.1.2.3"]
"#;

    pub(crate) fn settings() -> Settings {
        Config::default()
            .merged(&sections_of(CONFIG))
            .expect("merge")
            .settings()
            .expect("settings")
            .expect("complete")
    }

    #[test]
    fn settings_from_the_sections() {
        let s = settings();
        assert_eq!((s.hostname.as_str(), s.domain.as_str()), ("gw", "home"));
        let addrs: Vec<String> = s.listen.iter().map(|l| l.address.to_string()).collect();
        assert_eq!(addrs, ["192.168.7.1", "fd00:7::1"]);
        assert_eq!(s.subnets()[0].to_string(), "192.168.7.0/24");
        assert_eq!(s.statics[0].name, "printer.home");
        assert_eq!(s.hosts[0].name, "nas.home");
        assert_eq!(s.hosts[1].name, "wiki.corp.example");
        assert_eq!(s.rebind_allow, ["rebind.example"]);
        assert!(s.rebind_protection);
        assert_eq!(s.cache_size, 10_000);
        assert!(s.upstreams.is_empty());
    }

    #[test]
    fn incomplete_until_every_section_arrived() {
        let all = sections_of(CONFIG);
        let only_dns: Sections = all
            .iter()
            .filter(|(k, _)| k.as_str() == "dns")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let c = Config::default().merged(&only_dns).expect("merge");
        assert_eq!(c.settings(), Ok(None));
    }

    #[test]
    fn tls_upstreams_are_refused() {
        // Validation rejects them first; this is dnsd's own guard, so the
        // section is edited past validation.
        let text =
            format!("{CONFIG}\n[[dns.upstreams]]\naddress = \"9.9.9.9\"\nprotocol = \"tcp\"\n");
        let mut sections = sections_of(&text);
        let dns = sections.get_mut("dns").expect("a dns section");
        assert!(dns.contains("\"tcp\""), "{dns}");
        *dns = dns.replace("\"tcp\"", "\"tls\"");
        let c = Config::default().merged(&sections).expect("merge");
        assert!(matches!(c.settings(), Err(SettingsError::Tls(_))));
    }
}
