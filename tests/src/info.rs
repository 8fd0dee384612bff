//! What a running lab looks like from outside: the object `cargo xtask lab
//! up` prints as JSON, and what tests and tools read to reach the lab.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A running lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabInfo {
    /// The lab's name (namespaces are `oxl-<name>-<role>`).
    pub name: String,
    /// The lab's directory: state file, logs, ISP and WAN client files.
    pub dir: PathBuf,
    /// The router's root directory (`etc/oxwrt`, `run/oxwrt`,
    /// `var/lib/oxwrt` below it).
    pub root: PathBuf,
    /// The lab's network namespaces.
    pub namespaces: Namespaces,
    /// Addresses inside the lab, without prefix length.
    pub addresses: Addresses,
    /// The router's bus address, once the lab runs oxinit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// How to reach the router's control plane, once the lab runs ctld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlInfo>,
}

/// Names of a lab's network namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    /// The upstream ISP (DHCP, DNS, HTTP).
    pub isp: String,
    /// The router.
    pub router: String,
    /// The LAN switch joining the router's `lan0` and the clients.
    pub switch: String,
    /// The LAN clients.
    pub lan: Vec<String>,
}

/// Addresses inside a lab, without prefix length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// The router's LAN address.
    pub router_lan: String,
    /// The address the router's WAN got from the ISP's DHCP server.
    pub router_wan: String,
    /// The ISP's address (gateway, DNS and HTTP server).
    pub isp: String,
    /// The LAN clients' addresses, in the order of `namespaces.lan`.
    pub lan: Vec<String>,
}

/// How to reach a router's control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlInfo {
    /// `address:port` of ctld.
    pub addr: String,
    /// Path of the operator key.
    pub key: String,
    /// The router's public key.
    pub server_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_omits_what_is_not_there_yet() -> Result<(), serde_json::Error> {
        let info = LabInfo {
            name: "t1".into(),
            dir: "/tmp/oxwrt-lab/t1".into(),
            root: "/tmp/oxwrt-lab/t1/root".into(),
            namespaces: Namespaces {
                isp: "oxl-t1-isp".into(),
                router: "oxl-t1-router".into(),
                switch: "oxl-t1-sw".into(),
                lan: vec!["oxl-t1-lan1".into()],
            },
            addresses: Addresses {
                router_lan: "192.168.1.1".into(),
                router_wan: "100.64.0.150".into(),
                isp: "100.64.0.1".into(),
                lan: vec!["192.168.1.10".into()],
            },
            bus: None,
            control: None,
        };
        let json = serde_json::to_value(&info)?;
        assert_eq!(json["namespaces"]["router"], "oxl-t1-router");
        assert_eq!(json["addresses"]["lan"][0], "192.168.1.10");
        assert!(json.get("bus").is_none());
        assert!(json.get("control").is_none());
        let back: LabInfo = serde_json::from_value(json)?;
        assert_eq!(back, info);
        Ok(())
    }
}
