//! What ctld serves, worked out from its sections: the sockets to listen
//! on, the clients and their roles, the rate limit. Pure: `apply` binds.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use bus_schema::config::model::{self, ControlListen, Role};
use bus_schema::config::{Sections, section};

/// An authorized client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its name in `[[control.clients]]`.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Everything ctld needs from the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// Router hostname, for `status`.
    pub hostname: String,
    /// Sockets to listen on, sorted.
    pub listen: Vec<SocketAddr>,
    /// Clients by public key.
    pub clients: HashMap<[u8; 32], Client>,
    /// Calls per second per key.
    pub rate: u32,
    /// Burst above the rate.
    pub burst: u32,
}

/// The config sections ctld keeps (each apply brings only the changed
/// ones, so it merges them into what it had).
#[derive(Debug, Clone, Default)]
pub struct Kept {
    sections: BTreeMap<String, String>,
}

impl Kept {
    /// These sections merged over the kept ones (nothing is kept yet).
    pub fn merged(&self, changed: &Sections) -> Sections {
        let mut all = self.sections.clone();
        all.extend(changed.iter().map(|(k, v)| (k.clone(), v.clone())));
        all
    }

    /// Keeps `all` (after a successful apply).
    pub fn keep(&mut self, all: Sections) {
        self.sections = all;
    }
}

/// Works out the settings. A listen entry naming a network without a
/// fixed address (a WAN learning one by DHCP) is an error: ctld cannot
/// follow a learned address yet.
pub fn settings(sections: &Sections) -> Result<Settings, String> {
    let control: model::Control =
        section(sections, "control")?.ok_or("no control section in the running config")?;
    let networks: Vec<model::Network> = section(sections, "networks")?.unwrap_or_default();
    let hostname = section::<model::System>(sections, "system")?
        .map(|s| s.hostname)
        .unwrap_or_default();
    let mut listen = Vec::new();
    for l in &control.listen {
        let ip = match l {
            ControlListen::Address(ip) => *ip,
            ControlListen::Network(name) => {
                let net = networks
                    .iter()
                    .find(|n| &n.name == name)
                    .ok_or_else(|| format!("control.listen: no network {name:?}"))?;
                let v4 = net.ipv4().ok_or_else(|| {
                    format!("control.listen: network {name:?} has no fixed address to listen on")
                })?;
                IpAddr::V4(v4.addr())
            }
        };
        listen.push(SocketAddr::new(ip, control.port));
    }
    listen.sort();
    listen.dedup();
    let clients = control
        .clients
        .iter()
        .map(|c| {
            (
                c.key,
                Client {
                    name: c.name.clone(),
                    role: c.role,
                },
            )
        })
        .collect();
    Ok(Settings {
        hostname,
        listen,
        clients,
        rate: control.rate_limit.max(1),
        burst: control.rate_burst.max(control.rate_limit).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_schema::config::{check_public_text, sections};

    fn of(toml: &str) -> Result<Settings, String> {
        let loaded = check_public_text(toml).expect("valid");
        settings(&sections(&loaded.config, false))
    }

    const BASE: &str = r#"version = 1

[system]
hostname = "gw"

[[networks]]
name = "lan"
kind = "lan"
ports = ["eth1"]
address = "192.168.1.1/24"

[[networks]]
name = "wan"
kind = "wan"
device = "eth0"
mode = "dhcp"
"#;

    #[test]
    fn the_default_listens_on_every_lan_address_with_the_clients_by_key() {
        let key = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
        let s = of(&format!(
            "{BASE}\n[control]\nrate_limit = 5\nrate_burst = 2\n[[control.clients]]\nname = \"laptop\"\nkey = \"{key}\"\nrole = \"admin\"\n"
        ))
        .expect("settings");
        assert_eq!(s.hostname, "gw");
        assert_eq!(s.listen, ["192.168.1.1:7443".parse().expect("addr")]);
        assert_eq!(s.clients.len(), 1);
        let client = s.clients.values().next().expect("one");
        assert_eq!((client.name.as_str(), client.role), ("laptop", Role::Admin));
        // The burst is never below the rate.
        assert_eq!((s.rate, s.burst), (5, 5));
    }

    #[test]
    fn a_network_without_a_fixed_address_cannot_be_listened_on() {
        let err = of(&format!(
            "{BASE}\n[control]\nallow_wan = true\nlisten = [\"wan\", \"127.0.0.1\"]\n"
        ))
        .expect_err("refused");
        assert!(err.contains("\"wan\" has no fixed address"), "{err}");
    }
}
