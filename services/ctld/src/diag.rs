//! What `diag` and `status` read from the kernel directly: routes and
//! conntrack from `/proc` (no daemon owns them as state), and uptime.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `0.0.0.0/0`, `192.168.1.0/24`, `::/0`...
    pub destination: String,
    /// Next hop; empty when on-link.
    pub gateway: String,
    /// Device.
    pub device: String,
    /// Metric.
    pub metric: u32,
}

/// Connection tracking: how full the table is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conntrack {
    /// Entries now.
    pub count: u64,
    /// Table size.
    pub max: u64,
}

/// Seconds since boot.
pub fn uptime_secs() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split('.').next()?.parse().ok())
        .unwrap_or(0)
}

/// The routes of the calling namespace's main table, IPv4 then IPv6.
pub fn routes() -> Vec<Route> {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    let mut out = parse_v4(&v4);
    out.extend(parse_v6(&v6));
    out
}

/// A next hop as shown: empty when the route is on-link.
fn gateway(gw: IpAddr) -> String {
    if gw.is_unspecified() {
        String::new()
    } else {
        gw.to_string()
    }
}

/// `/proc/net/route`: little-endian hex addresses, a header line.
fn parse_v4(text: &str) -> Vec<Route> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dev, dst, gw, metric, mask) =
                (f.first()?, f.get(1)?, f.get(2)?, f.get(6)?, f.get(7)?);
            let dst = Ipv4Addr::from(hex(dst)?);
            let gw = Ipv4Addr::from(hex(gw)?);
            let prefix = hex(mask)?.count_ones();
            Some(Route {
                destination: format!("{dst}/{prefix}"),
                gateway: gateway(gw.into()),
                device: dev.to_string(),
                metric: metric.parse().ok()?,
            })
        })
        .collect()
}

/// `/proc/net/ipv6_route`: 32 hex digits per address, no header; the
/// loopback and local routes the kernel adds are left out.
fn parse_v6(text: &str) -> Vec<Route> {
    let addr = |s: &str| u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from);
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = addr(f.first()?)?;
            let prefix = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let gw = addr(f.get(4)?)?;
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let dev = f.get(9)?;
            if *dev == "lo" {
                return None;
            }
            Some(Route {
                destination: format!("{dst}/{prefix}"),
                gateway: gateway(gw.into()),
                device: dev.to_string(),
                metric,
            })
        })
        .collect()
}

/// The conntrack table's fill (zero when the module is not loaded).
pub fn conntrack() -> Conntrack {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    Conntrack {
        count: read("nf_conntrack_count"),
        max: read("nf_conntrack_max"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_route_tables_read_as_routes() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  wan0\t00000000\t0102000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                  br-lan\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_v4(v4);
        assert_eq!(r[0].destination, "0.0.0.0/0");
        assert_eq!(r[0].gateway, "10.0.2.1");
        assert_eq!((r[0].device.as_str(), r[0].metric), ("wan0", 100));
        assert_eq!(r[1].destination, "192.168.1.0/24");
        assert_eq!(r[1].gateway, "");
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001   br-lan\n\
                  00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";
        let r = parse_v6(v6);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].destination, "fd00::/64");
        assert_eq!((r[0].device.as_str(), r[0].metric), ("br-lan", 256));
    }
}
