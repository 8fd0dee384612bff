//! Parsers for the string-typed values of the config: each returns the
//! parsed value or a message (lower-case, no final period) for a diagnostic.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use base64::Engine as _;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize, Serializer};

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let err =
            || format!("invalid MAC address {s:?} (expected six hex pairs like 02:00:00:00:00:01)");
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (byte, part) in out.iter_mut().zip(&parts) {
            *byte = hex_byte(part).ok_or_else(err)?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl MacAddr {
    /// Whether the group bit is set (not valid as a device address).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

/// An inclusive port range; a single port has `low == high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port.
    pub high: u16,
}

impl PortRange {
    /// Number of ports in the range.
    pub fn len(&self) -> u32 {
        u32::from(self.high) - u32::from(self.low) + 1
    }

    /// Whether the range is a single port (never empty).
    pub fn is_empty(&self) -> bool {
        false
    }
}

fn port(s: &str, whole: &str) -> Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(_) => Err(format!(
            "port {} out of range 1-65535 in {whole:?}",
            s.trim()
        )),
        Err(_) => Err(format!(
            "invalid port {whole:?} (expected a number or LOW-HIGH)"
        )),
    }
}

/// ICMP and ICMPv6 types by their nftables names, in the order the
/// validator lists them: `(name, ICMP type, ICMPv6 type)`.
pub const ICMP_TYPES: &[(&str, Option<u8>, Option<u8>)] = &[
    ("echo-reply", Some(0), Some(129)),
    ("destination-unreachable", Some(3), Some(1)),
    ("source-quench", Some(4), None),
    ("redirect", Some(5), None),
    ("echo-request", Some(8), Some(128)),
    ("router-advertisement", Some(9), None),
    ("router-solicitation", Some(10), None),
    ("time-exceeded", Some(11), Some(3)),
    ("parameter-problem", Some(12), Some(4)),
    ("timestamp-request", Some(13), None),
    ("timestamp-reply", Some(14), None),
    ("packet-too-big", None, Some(2)),
    ("nd-neighbor-solicit", None, Some(135)),
    ("nd-neighbor-advert", None, Some(136)),
    ("nd-router-solicit", None, Some(133)),
    ("nd-router-advert", None, Some(134)),
    ("mld-listener-query", None, Some(130)),
];

/// The number of ICMP (`v6`: ICMPv6) type `name`, if that family has it.
pub fn icmp_type(name: &str, v6: bool) -> Option<u8> {
    ICMP_TYPES
        .iter()
        .find(|(n, _, _)| *n == name)
        .and_then(|(_, v4, v6_type)| if v6 { *v6_type } else { *v4 })
}

/// The nftables name of ICMP (`v6`: ICMPv6) type number `t`.
pub fn icmp_name(t: u8, v6: bool) -> Option<&'static str> {
    ICMP_TYPES
        .iter()
        .find(|(_, v4, v6_type)| (if v6 { *v6_type } else { *v4 }) == Some(t))
        .map(|(n, _, _)| *n)
}

/// Checks an MTU (576–9216).
pub fn parse_mtu(m: u32) -> Result<u16, String> {
    match u16::try_from(m) {
        Ok(v) if (576..=9216).contains(&v) => Ok(v),
        _ => Err(format!("MTU {m} out of range 576-9216")),
    }
}

/// Checks a 16-bit quantity that cannot be zero (ports, intervals);
/// `what` names it in the message.
pub fn nonzero_u16(n: u32, what: &str) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(v) if v != 0 => Ok(v),
        _ => Err(format!("{what} {n} out of range 1-65535")),
    }
}

/// Parses a MAC address that a device may have (not multicast).
pub fn parse_unicast_mac(s: &str) -> Result<MacAddr, String> {
    let mac: MacAddr = s.parse()?;
    if mac.is_multicast() {
        return Err(format!("MAC address {s} is a multicast address"));
    }
    Ok(mac)
}

/// Parses a port number.
pub fn parse_port_number(n: i64) -> Result<PortRange, String> {
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(PortRange { low: p, high: p }),
        _ => Err(format!("port {n} out of range 1-65535")),
    }
}

/// Parses `"22"` or `"8000-8080"`.
pub fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let (low, high) = match s.split_once('-') {
        Some((a, b)) => (port(a, s)?, port(b, s)?),
        None => {
            let p = port(s, s)?;
            (p, p)
        }
    };
    if low > high {
        return Err(format!(
            "port range {s:?} is reversed (low must not exceed high)"
        ));
    }
    Ok(PortRange { low, high })
}

/// Parses an IPv4 prefix with a host address, `192.168.1.1/24`.
pub fn parse_ipv4_iface(s: &str) -> Result<Ipv4Net, String> {
    prefix_len_in_range(s, 32)?;
    let net: Ipv4Net = s.parse().map_err(|_| {
        format!("invalid IPv4 address with prefix {s:?} (expected like 192.168.1.1/24)")
    })?;
    if net.prefix_len() < 31 && (net.addr() == net.network() || net.addr() == net.broadcast()) {
        return Err(format!(
            "{s} is the network or broadcast address of its subnet, not a host address"
        ));
    }
    Ok(net)
}

/// Names an out-of-range prefix length as the problem, when it is one.
fn prefix_len_in_range(s: &str, max: u32) -> Result<(), String> {
    match s.rsplit_once('/').map(|(_, p)| p.parse::<u32>()) {
        Some(Ok(len)) if len > max => {
            Err(format!("prefix length {len} out of range 0-{max} in {s:?}"))
        }
        _ => Ok(()),
    }
}

/// Why `ip` cannot be a host's address in `net` (the router's own, the
/// network or the broadcast address), if it cannot.
pub fn host_address_problem(net: Ipv4Net, ip: std::net::Ipv4Addr) -> Option<String> {
    if ip == net.addr() {
        Some(format!("{ip} is the router's own address"))
    } else if net.prefix_len() < 31 && (ip == net.network() || ip == net.broadcast()) {
        Some(format!(
            "{ip} is the network or broadcast address of {}",
            net.trunc()
        ))
    } else {
        None
    }
}

/// Parses an IPv6 address with prefix, `fd00::1/64`.
pub fn parse_ipv6_iface(s: &str) -> Result<Ipv6Net, String> {
    prefix_len_in_range(s, 128)?;
    s.parse().map_err(|_| {
        format!("invalid IPv6 address with prefix {s:?} (expected like fd12:3456:789a::1/64)")
    })
}

/// Parses an address or prefix of either family; a bare address is a host prefix.
pub fn parse_ip_or_net(s: &str) -> Result<IpNet, String> {
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("invalid address or prefix {s:?}"))?;
    if net.addr() != net.network() {
        return Err(format!(
            "prefix {s} has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Parses a route destination prefix (host bits must be zero).
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("invalid prefix {s:?} (expected like 10.0.0.0/8 or 2001:db8::/32)"))?;
    if net.addr() != net.network() {
        return Err(format!(
            "prefix {s} has host bits set (did you mean {}?)",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Parses an IP address of either family.
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| format!("invalid IP address {s:?}"))
}

/// Parses a socket address; `default_port` applies to a bare address.
pub fn parse_socket_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    match s.parse::<SocketAddr>() {
        Ok(sa) if sa.port() == 0 => Err(format!("port 0 in {s:?} (ports are 1-65535)")),
        Ok(sa) => Ok(sa),
        Err(_) => Err(format!(
            "invalid address {s:?} (expected IP, IP:PORT or [IPv6]:PORT)"
        )),
    }
}

/// Checks `HOST:PORT` where HOST is a name, an IPv4 address or `[IPv6]`.
pub fn check_endpoint(s: &str) -> Result<(), String> {
    let err = || format!("invalid endpoint {s:?} (expected HOST:PORT, IPv4:PORT or [IPv6]:PORT)");
    let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(err)?;
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok() || check_hostname(host, true).is_ok(),
    };
    if host_ok { Ok(()) } else { Err(err()) }
}

/// Checks a Linux interface name.
pub fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("interface name is empty".into());
    }
    if s.len() > IFNAME_MAX {
        return Err(format!(
            "interface name {s:?} is {} bytes; Linux allows at most {IFNAME_MAX}",
            s.len()
        ));
    }
    if s == "."
        || s == ".."
        || s.bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || !b.is_ascii_graphic())
    {
        return Err(format!("invalid interface name {s:?}"));
    }
    Ok(())
}

/// Checks an RFC 1123 host name label (or dotted name when `dotted`).
pub fn check_hostname(s: &str, dotted: bool) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let ok = if dotted {
        s.len() <= 253 && s.trim_end_matches('.').split('.').all(label_ok)
    } else {
        label_ok(s)
    };
    if ok {
        Ok(())
    } else if dotted {
        Err(format!(
            "invalid host name {s:?} (RFC 1123: dot-separated labels of letters, digits and inner hyphens)"
        ))
    } else {
        Err(format!(
            "invalid host name {s:?} (RFC 1123: 1-63 letters, digits and inner hyphens)"
        ))
    }
}

/// Parses a duration such as `90s`, `30m`, `12h`, `1d` or a bare number of seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        Some((i, 'w')) => (&s[..i], 604_800),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid duration {s:?} (expected like 90s, 30m, 12h, 1d)"))
}

/// A rate such as `10/minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Events per unit.
    pub count: u32,
    /// The unit.
    pub per: RateUnit,
}

/// Unit of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
    /// Per day.
    Day,
}

/// Parses `N/second|minute|hour|day`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let err = || format!("invalid rate {s:?} (expected like 10/second, 5/minute, 100/hour)");
    let (n, unit) = s.split_once('/').ok_or_else(err)?;
    let count = n
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(err)?;
    let per = match unit.trim() {
        "s" | "second" => RateUnit::Second,
        "m" | "minute" => RateUnit::Minute,
        "h" | "hour" => RateUnit::Hour,
        "d" | "day" => RateUnit::Day,
        _ => return Err(err()),
    };
    Ok(Rate { count, per })
}

/// When a rule is active: days of the week and a daily window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Bit 0 = Monday … bit 6 = Sunday.
    pub days: u8,
    /// Start of the window, minutes after midnight.
    pub start_min: u16,
    /// End of the window (exclusive), minutes after midnight; may be less
    /// than `start_min` for a window across midnight.
    pub end_min: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// Parses `DAYS HH:MM-HH:MM`, where DAYS is `daily`, a day (`sat`), a range
/// (`mon-fri`) or a comma list of those (`mon,wed,fri-sun`); either part may
/// be omitted (`mon-fri`, `22:00-06:00`).
pub fn parse_schedule(s: &str) -> Result<Schedule, String> {
    let err = |why: &str| {
        format!(
            "invalid schedule {s:?}: {why} (expected like \"mon-fri 09:00-17:00\", \"sat,sun\" or \"22:00-06:00\")"
        )
    };
    let mut days = 0u8;
    let mut window = None;
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.is_empty() || parts.len() > 2 {
        return Err(err("expected days, a time window, or both"));
    }
    for part in parts {
        if part.contains(':') {
            if window.is_some() {
                return Err(err("more than one time window"));
            }
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| err("time window needs a start and an end"))?;
            let (a, b) = (
                parse_hhmm(a).ok_or_else(|| err(&format!("bad time {a:?}")))?,
                parse_hhmm(b).ok_or_else(|| err(&format!("bad time {b:?}")))?,
            );
            if a == b {
                return Err(err("time window is empty"));
            }
            window = Some((a, b));
        } else if part.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err(&format!(
                "bad time window {part:?}: write hours and minutes, like 09:00-17:00"
            )));
        } else {
            if days != 0 {
                return Err(err("more than one day list"));
            }
            for item in part.split(',') {
                let day = |d: &str| {
                    DAYS.iter().position(|x| *x == d).ok_or_else(|| {
                        err(&format!(
                            "unknown day {d:?} (days: mon tue wed thu fri sat sun, or daily)"
                        ))
                    })
                };
                if item == "daily" {
                    days |= 0x7f;
                } else if let Some((a, b)) = item.split_once('-') {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut i = a;
                    loop {
                        days |= 1 << i;
                        if i == b {
                            break;
                        }
                        i = (i + 1) % 7;
                    }
                } else {
                    days |= 1 << day(item)?;
                }
            }
        }
    }
    let (start_min, end_min) = window.unwrap_or((0, 24 * 60));
    Ok(Schedule {
        days: if days == 0 { 0x7f } else { days },
        start_min,
        end_min,
    })
}

/// Parses a WireGuard key: base64 of exactly 32 bytes.
pub fn parse_wg_key(s: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| {
            "invalid WireGuard key (expected base64 of 32 bytes, as `wg genkey` and `wg pubkey` print)".to_string()
        })?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("invalid WireGuard key: {} bytes, expected 32", b.len()))
}

/// Parses an ed25519 public key written as 64 hex digits.
pub fn parse_ed25519_public(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    let bytes = decode_hex(s)
        .filter(|b| b.len() == 32)
        .ok_or_else(|| format!("invalid ed25519 public key {s:?} (expected 64 hex digits)"))?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| "invalid ed25519 public key: not a point on the curve".to_string())?;
    Ok(key)
}

/// Decodes hex digits (even count, either case).
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(hex_byte))
        .collect()
}

/// Two hex digits (no sign: `from_str_radix` alone would take "+1").
fn hex_byte(s: &str) -> Option<u8> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// Parses a memory size: bytes, or with K, M, G suffix (powers of 1024).
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let err = || format!("invalid memory size {s:?} (expected like 64M, 1G, 524288)");
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac() {
        assert_eq!(
            "02:AB:00:00:00:01"
                .parse::<MacAddr>()
                .map(|m| m.to_string()),
            Ok("02:ab:00:00:00:01".to_string())
        );
        assert!("02:ab:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:ab:00:00:00:0g".parse::<MacAddr>().is_err());
        assert!("+2:ab:00:00:00:01".parse::<MacAddr>().is_err());
        assert_eq!(decode_hex("+1"), None);
        assert!(
            "03:00:00:00:00:00"
                .parse::<MacAddr>()
                .is_ok_and(|m| m.is_multicast())
        );
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port_range("22"), Ok(PortRange { low: 22, high: 22 }));
        assert_eq!(parse_port_range("8000-8080").map(|r| r.len()), Ok(81));
        assert!(parse_port_range("9000-8000").is_err_and(|e| e.contains("reversed")));
        assert!(parse_port_range("0").is_err());
        assert!(parse_port_range("70000").is_err());
        assert!(parse_port_number(0).is_err());
        assert!(parse_port_number(65535).is_ok());
    }

    #[test]
    fn addresses() {
        assert!(parse_ipv4_iface("192.168.1.1/24").is_ok());
        assert!(parse_ipv4_iface("192.168.1.0/24").is_err());
        assert!(parse_ipv4_iface("192.168.1.255/24").is_err());
        assert!(parse_ipv4_iface("10.0.0.0/31").is_ok());
        assert!(
            parse_ipv4_iface("192.168.1.1/33")
                .is_err_and(|e| e.contains("prefix length 33 out of range 0-32"))
        );
        assert!(parse_socket_addr("9.9.9.9:0", 53).is_err());
        assert!(check_endpoint("[2001:db8::1]:51820").is_ok());
        assert!(check_endpoint("vpn.example:51820").is_ok());
        assert!(check_endpoint("2001:db8::1").is_err());
        assert!(parse_prefix("10.0.0.1/8").is_err_and(|e| e.contains("10.0.0.0/8")));
        assert!(parse_socket_addr("[2606:4700::1111]:53", 53).is_ok());
        assert_eq!(parse_socket_addr("1.1.1.1", 53).map(|a| a.port()), Ok(53));
    }

    #[test]
    fn names() {
        assert!(check_ifname("br-lan").is_ok());
        assert!(check_ifname("a-very-long-ifname").is_err());
        assert!(check_hostname("router-1", false).is_ok());
        assert!(check_hostname("-x", false).is_err());
        assert!(check_hostname("under_score", false).is_err());
        assert!(check_hostname("home.example.com", true).is_ok());
    }

    #[test]
    fn durations_rates_memory() {
        assert_eq!(parse_duration_secs("12h"), Ok(43_200));
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert!(parse_duration_secs("h").is_err());
        assert_eq!(parse_rate("10/minute").map(|r| r.per), Ok(RateUnit::Minute));
        assert!(parse_rate("0/second").is_err());
        assert_eq!(parse_memory("64M"), Ok(64 << 20));
        assert!(parse_memory("lots").is_err());
    }

    #[test]
    fn schedules() {
        let s = parse_schedule("mon-fri 09:00-17:00").expect("valid");
        assert_eq!((s.days, s.start_min, s.end_min), (0b001_1111, 540, 1020));
        let s = parse_schedule("fri-mon").expect("wraps");
        assert_eq!(s.days, 0b111_0001);
        let s = parse_schedule("22:00-06:00").expect("across midnight");
        assert_eq!((s.days, s.start_min, s.end_min), (0x7f, 1320, 360));
        assert!(parse_schedule("mon-fri 9-17").is_err_and(|e| e.contains("like 09:00-17:00")));
        assert!(parse_schedule("funday").is_err());
        assert!(parse_schedule("mon 25:00-26:00").is_err());
    }

    #[test]
    fn keys() {
        let wg = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(parse_wg_key(&wg).is_ok());
        assert!(parse_wg_key("abcd").is_err());
        // The ed25519 base point encoding is a valid public key.
        let base = "5866666666666666666666666666666666666666666666666666666666666666";
        assert!(parse_ed25519_public(base).is_ok());
        assert!(parse_ed25519_public("00").is_err());
    }
}
