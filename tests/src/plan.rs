//! The lab's topology as data: namespace and interface names, addresses.
//! Plain values, decided before anything touches the kernel.
//!
//! ```text
//!  isp ns                 router ns                 switch ns             lanN ns
//!  eth0 100.64.0.1/24 === wan0 (DHCP)
//!                         lan0 192.168.1.1/24 ===== rtr0 ─┐
//!                                                         br0
//!                                                   lanN ─┘ ============= eth0 192.168.1.(9+N)/24
//! ```
//!
//! Every lab has namespaces of its own, so the addresses are the same in all
//! labs and never appear outside them.

use std::net::Ipv4Addr;

/// Prefix of every namespace name: `oxl-<lab>-<role>`.
pub const NS_PREFIX: &str = "oxl-";
/// Longest lab name: it ends up in namespace names and paths.
pub const MAX_NAME_LEN: usize = 24;
/// Most LAN clients one lab may have.
pub const MAX_LAN_CLIENTS: usize = 100;

/// The ISP's interface toward the router (in the isp namespace).
pub const ISP_IF: &str = "eth0";
/// The router's WAN port.
pub const ROUTER_WAN_IF: &str = "wan0";
/// The router's LAN port (to the switch).
pub const ROUTER_LAN_IF: &str = "lan0";
/// The switch's bridge.
pub const SWITCH_BRIDGE: &str = "br0";
/// The switch port wired to the router.
pub const SWITCH_UPLINK: &str = "rtr0";
/// A LAN client's interface.
pub const CLIENT_IF: &str = "eth0";
/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// The ISP's address on the WAN segment (DHCP server, DNS server, HTTP
/// server and default gateway of the router).
pub const ISP_ADDR: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
/// Prefix length of the WAN segment.
pub const WAN_PREFIX: u8 = 24;
/// First address the ISP's DHCP server hands out.
pub const WAN_POOL_START: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 100);
/// Last address the ISP's DHCP server hands out.
pub const WAN_POOL_END: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 200);
/// The router's LAN address.
pub const ROUTER_LAN_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
/// Prefix length of the LAN.
pub const LAN_PREFIX: u8 = 24;
/// Host part of the first LAN client's address.
const FIRST_CLIENT_HOST: u8 = 10;
/// Port of the ISP's HTTP server.
pub const HTTP_PORT: u16 = 80;
/// A name the ISP's DNS server answers (with [`ISP_ADDR`]), subdomains too.
pub const DNS_NAME: &str = "example.test";

/// Whether `name` can name a lab: 1 to [`MAX_NAME_LEN`] characters of
/// lower-case ASCII letters, digits and inner dashes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("must be 1 to {MAX_NAME_LEN} characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may hold only a-z, 0-9 and '-'".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("may not start or end with '-'".into());
    }
    Ok(())
}

/// Names of one lab's namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The lab's name.
    pub name: String,
    /// The upstream ISP.
    pub isp: String,
    /// The router.
    pub router: String,
    /// The LAN switch (a bridge) between the router and the clients.
    pub switch: String,
    /// The LAN clients, `lan1` first.
    pub lan: Vec<String>,
}

impl Plan {
    /// The plan for lab `name` with `lan_clients` clients.
    pub fn new(name: &str, lan_clients: usize) -> Result<Plan, String> {
        check_name(name)?;
        if lan_clients > MAX_LAN_CLIENTS {
            return Err(format!("at most {MAX_LAN_CLIENTS} LAN clients"));
        }
        let ns = |role: &str| format!("{NS_PREFIX}{name}-{role}");
        Ok(Plan {
            name: name.to_owned(),
            isp: ns("isp"),
            router: ns("router"),
            switch: ns("sw"),
            lan: (1..=lan_clients).map(|i| ns(&format!("lan{i}"))).collect(),
        })
    }

    /// The namespace of extra LAN host `index` (1-based; see
    /// [`crate::Lab::add_host`]).
    pub fn host(&self, index: usize) -> String {
        format!("{NS_PREFIX}{}-host{index}", self.name)
    }

    /// The switch port of extra LAN host `index`.
    pub fn host_port(index: usize) -> String {
        format!("h{index}")
    }

    /// Every namespace, in the order they are created.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut all = vec![
            self.isp.as_str(),
            self.router.as_str(),
            self.switch.as_str(),
        ];
        all.extend(self.lan.iter().map(String::as_str));
        all
    }

    /// Whether `ns` names one of this lab's namespaces.
    pub fn owns(&self, ns: &str) -> bool {
        self.namespaces().contains(&ns)
    }

    /// Whether `ns` is a namespace that lab `name` would create, for any
    /// number of clients: recognises a lab's leftovers without its state.
    pub fn is_lab_namespace(name: &str, ns: &str) -> bool {
        let Some(role) = ns
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.strip_prefix(name))
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            return false;
        };
        match role {
            "isp" | "router" | "sw" => true,
            _ => role
                .strip_prefix("lan")
                .or_else(|| role.strip_prefix("host"))
                .is_some_and(|n| {
                    !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
                }),
        }
    }

    /// The switch port for LAN client `index` (0-based).
    pub fn switch_port(index: usize) -> String {
        format!("lan{}", index + 1)
    }

    /// The address of LAN client `index` (0-based).
    pub fn lan_addr(index: usize) -> Ipv4Addr {
        let host = u8::try_from(index)
            .ok()
            .and_then(|i| i.checked_add(FIRST_CLIENT_HOST))
            .unwrap_or(u8::MAX);
        let [a, b, c, _] = ROUTER_LAN_ADDR.octets();
        Ipv4Addr::new(a, b, c, host)
    }

    /// Addresses of all LAN clients.
    pub fn lan_addrs(&self) -> Vec<Ipv4Addr> {
        (0..self.lan.len()).map(Plan::lan_addr).collect()
    }
}

/// Whether `addr` is in the ISP's DHCP pool.
pub fn in_wan_pool(addr: Ipv4Addr) -> bool {
    (WAN_POOL_START..=WAN_POOL_END).contains(&addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() -> Result<(), String> {
        let plan = Plan::new("t1", 2)?;
        assert_eq!(
            plan.namespaces(),
            [
                "oxl-t1-isp",
                "oxl-t1-router",
                "oxl-t1-sw",
                "oxl-t1-lan1",
                "oxl-t1-lan2"
            ]
        );
        assert!(plan.owns("oxl-t1-lan2"));
        assert!(!plan.owns("oxl-t1-lan3"));
        Ok(())
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        for name in [
            ISP_IF,
            ROUTER_WAN_IF,
            ROUTER_LAN_IF,
            SWITCH_BRIDGE,
            SWITCH_UPLINK,
            CLIENT_IF,
        ] {
            assert!(name.len() <= MAX_IFNAME_LEN, "{name}");
        }
        assert!(Plan::switch_port(MAX_LAN_CLIENTS - 1).len() <= MAX_IFNAME_LEN);
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "",
            "Upper",
            "a b",
            "-a",
            "a-",
            "a/b",
            "x".repeat(MAX_NAME_LEN + 1).as_str(),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "t1", "ci-42", "x".repeat(MAX_NAME_LEN).as_str()] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn too_many_clients_are_refused() {
        assert!(Plan::new("a", MAX_LAN_CLIENTS + 1).is_err());
    }

    #[test]
    fn lan_addresses_do_not_collide_with_the_router() {
        let plan = Plan::new("a", MAX_LAN_CLIENTS).unwrap_or_else(|e| panic!("{e}"));
        let addrs = plan.lan_addrs();
        assert_eq!(addrs[0], Ipv4Addr::new(192, 168, 1, 10));
        assert!(!addrs.contains(&ROUTER_LAN_ADDR));
        let mut unique = addrs.clone();
        unique.dedup();
        assert_eq!(unique.len(), addrs.len());
    }

    #[test]
    fn leftover_namespaces_are_recognised_exactly() {
        assert!(Plan::is_lab_namespace("t1", "oxl-t1-isp"));
        assert!(Plan::is_lab_namespace("t1", "oxl-t1-lan12"));
        assert!(Plan::is_lab_namespace("t1", "oxl-t1-host3"));
        assert!(!Plan::is_lab_namespace("t1", "oxl-t1-host"));
        assert!(!Plan::is_lab_namespace("t1", "oxl-t1-x-isp"));
        assert!(!Plan::is_lab_namespace("t1", "oxl-t10-isp"));
        assert!(!Plan::is_lab_namespace("t1", "oxl-t1-lan"));
        assert!(!Plan::is_lab_namespace("t1", "oxl-t1-lan01"));
        assert!(!Plan::is_lab_namespace("t1", "other"));
    }

    #[test]
    fn the_pool_is_on_the_wan_segment() {
        assert!(in_wan_pool(Ipv4Addr::new(100, 64, 0, 150)));
        assert!(!in_wan_pool(ISP_ADDR));
    }
}
