use bus_schema::config::model::Config;
use bus_schema::config::value::Schedule;

use bus_schema::config::value::icmp_type;

use super::rules::day_runs;
use super::*;
use crate::ir::{HourWindow, Policy};

fn load(text: &str) -> Config {
    bus_schema::config::check_public_text(text)
        .expect("valid config")
        .config
}

fn cookbook() -> Config {
    load(include_str!("../../../../config/oxwrt.toml"))
}

fn wan(network: &str, addr: &str) -> WanAddress {
    WanAddress {
        network: network.into(),
        address: addr.parse().expect("ip"),
    }
}

fn render_with(c: &Config, wan: &[WanAddress]) -> Rendered {
    render(&Input {
        networks: &c.networks,
        firewall: &c.firewall,
        port_forwards: &c.port_forwards,
        wan,
        utc_offset: 0,
    })
    .expect("render")
}

fn lines(r: &Rendered, chain: &str) -> Vec<String> {
    r.ruleset
        .chain(chain)
        .unwrap_or_else(|| panic!("no chain {chain}"))
        .rules
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

#[test]
fn the_cookbook_renders_zones_with_their_devices_and_policies() {
    let c = cookbook();
    let r = render_with(&c, &[]);
    let input = r.ruleset.chain("input").expect("input");
    assert_eq!(input.base.map(|b| b.policy), Some(Policy::Drop));
    let input = lines(&r, "input");
    assert_eq!(input[0], "iifname \"lo\" accept");
    assert_eq!(input[1], "ct state established,related accept");
    assert_eq!(input[2], "ct state invalid drop");
    assert!(has(
        &input,
        "meta l4proto tcp tcp flags & (fin | syn | rst | ack) == syn jump syn_flood"
    ));
    assert!(has(
        &input,
        "meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit accept"
    ));
    assert!(has(
        &input,
        "meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type packet-too-big accept"
    ));
    // lan = br-lan, mgmt = eth6, wg0 is a WireGuard interface.
    for (dev, zone) in [
        ("br-lan", "lan"),
        ("eth6", "lan"),
        ("wg0", "lan"),
        ("br-guest", "guest"),
        ("eth0", "wan"),
        ("eth4", "wan"),
    ] {
        assert!(
            has(&input, &format!("iifname \"{dev}\" jump input_{zone}")),
            "{dev}: {input:#?}"
        );
    }
    assert_eq!(lines(&r, "input_lan"), ["accept"]);
    assert_eq!(
        lines(&r, "input_wan").last().map(String::as_str),
        Some("drop")
    );
    let syn = lines(&r, "syn_flood");
    assert_eq!(
        syn,
        [
            "limit rate 25/second burst 50 packets return",
            "drop comment \"syn flood\""
        ]
    );
}

#[test]
fn rules_land_in_the_chain_of_their_zones() {
    let r = render_with(&cookbook(), &[]);
    let guest = lines(&r, "input_guest");
    assert_eq!(
        guest,
        [
            "meta l4proto udp th dport 53 accept comment \"guest-dhcp-dns\"",
            "meta l4proto udp th dport 67 accept comment \"guest-dhcp-dns\"",
            "drop",
        ]
    );
    let wan = lines(&r, "input_wan");
    assert!(has(
        &wan,
        "meta nfproto ipv4 meta l4proto icmp icmp type echo-request limit rate 10/second burst 20 packets accept comment \"wan-ping\""
    ));
    assert!(has(
        &wan,
        "meta l4proto udp th dport 51820 counter accept comment \"wan-wireguard\""
    ));
    assert_eq!(r.counted, ["wan-wireguard"]);
}

#[test]
fn a_forward_rule_expands_per_device_protocol_and_day_run_before_the_forwardings() {
    let r = render_with(&cookbook(), &[]);
    let fwd = lines(&r, "forward_lan");
    // block-kids-evenings: 2 devices x 2 protocols; mon-fri is one run;
    // 21:00-07:00 crosses midnight; dest 0.0.0.0/0 narrows only the family.
    let kids: Vec<&String> = fwd
        .iter()
        .filter(|l| l.contains("block-kids-evenings"))
        .collect();
    assert_eq!(kids.len(), 4, "{fwd:#?}");
    assert_eq!(
        kids[0],
        "oifname \"eth0\" meta nfproto ipv4 meta l4proto tcp ip saddr 192.168.1.64/28 th sport 1024-65535 meta day 1-5 meta hour != \"07:00\"-\"20:59:59\" log prefix \"block-kids-evenings: \" jump handle_reject comment \"block-kids-evenings\""
    );
    let first_forwarding = fwd
        .iter()
        .position(|l| l.contains("forwarding lan -> wan"))
        .expect("forwarding");
    assert!(fwd.iter().rposition(|l| l.contains("block-kids")) < Some(first_forwarding));
    assert!(has(
        &fwd,
        "oifname \"eth4\" accept comment \"forwarding lan -> wan\""
    ));
    // The intra-zone policy (accept) for each of the zone's devices.
    assert!(has(&fwd, "oifname \"wg0\" accept"));
    // guest -> wan forwarding, guest's own forward policy is drop.
    let guest = lines(&r, "forward_guest");
    assert!(has(&guest, "oifname \"br-guest\" drop"));
}

#[test]
fn port_forwards_dnat_from_their_zone_and_reflect_once_the_wan_address_is_known() {
    let c = cookbook();
    let without = render_with(&c, &[]);
    let dst = lines(&without, "dstnat");
    assert!(has(
        &dst,
        "meta nfproto ipv4 iifname \"eth0\" meta l4proto tcp th dport 8443 dnat ip to 192.168.1.10:443 comment \"nas-https\""
    ));
    // An unshifted range keeps the ports.
    assert!(has(
        &dst,
        "meta nfproto ipv4 iifname \"eth4\" meta l4proto udp th dport 27015-27030 dnat ip to 192.168.1.20 comment \"game\""
    ));
    assert!(dst.iter().all(|l| !l.contains("reflection")), "{dst:#?}");
    assert!(
        lines(&without, "srcnat")
            .iter()
            .all(|l| !l.contains("reflection"))
    );

    let with = render_with(
        &c,
        &[wan("wan", "198.51.100.7"), wan("wan2", "203.0.113.2")],
    );
    let dst = lines(&with, "dstnat");
    assert!(has(
        &dst,
        "meta nfproto ipv4 iifname \"br-lan\" ip daddr 198.51.100.7 meta l4proto tcp th dport 8443 dnat ip to 192.168.1.10:443 comment \"nas-https (reflection)\""
    ));
    assert!(has(
        &dst,
        "meta nfproto ipv4 iifname \"br-guest\" ip daddr 203.0.113.2 meta l4proto tcp th dport 8443 dnat ip to 192.168.1.10:443 comment \"nas-https (reflection)\""
    ));
    let src = lines(&with, "srcnat");
    assert_eq!(
        src[0],
        "meta nfproto ipv4 oifname \"br-lan\" ip saddr 192.168.1.0/24 ip daddr 192.168.1.10 meta l4proto tcp th dport 443 ct status dnat masquerade comment \"nas-https (reflection)\""
    );
    assert!(has(
        &src,
        "meta nfproto ipv4 oifname \"eth0\" masquerade comment \"zone wan masquerade\""
    ));
    let forward = lines(&with, "forward");
    assert!(has(
        &forward,
        "ct status dnat accept comment \"port forwards\""
    ));
}

#[test]
fn the_static_wan_address_comes_from_the_config() {
    let c = cookbook();
    assert_eq!(static_wan(&c.networks), [wan("wan2", "203.0.113.2")]);
}

#[test]
fn mss_clamping_covers_both_directions_of_the_zone() {
    let r = render_with(&cookbook(), &[]);
    let m = lines(&r, "mangle_forward");
    assert_eq!(m.len(), 4);
    assert_eq!(
        m[0],
        "iifname \"eth0\" meta l4proto tcp tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu comment \"zone wan mss clamping\""
    );
}

const SMALL: &str = r#"
version = 1
[[networks]]
name = "lan"
kind = "lan"
address = "192.168.77.1/24"

[[networks]]
name = "wan"
kind = "wan"
device = "w0"
mode = "dhcp"

[firewall.defaults]
input = "reject"

[[firewall.zones]]
name = "lan"
networks = ["lan"]
input = "accept"
forward = "accept"

[[firewall.zones]]
name = "wan"
networks = ["wan"]
input = "reject"
"#;

#[test]
fn reject_is_a_jump_to_the_reject_chain_and_the_policy_stays_drop() {
    let c = load(SMALL);
    let r = render_with(&c, &[]);
    let input = r.ruleset.chain("input").expect("input");
    assert_eq!(input.base.map(|b| b.policy), Some(Policy::Drop));
    assert_eq!(
        lines(&r, "input").last().map(String::as_str),
        Some("jump handle_reject")
    );
    assert_eq!(lines(&r, "input_wan"), ["jump handle_reject"]);
    assert_eq!(
        lines(&r, "handle_reject"),
        [
            "meta l4proto tcp reject with tcp reset",
            "reject with icmpx port-unreachable"
        ]
    );
    // No port forwards: no ct status dnat accept; no masquerade.
    assert!(lines(&r, "forward").iter().all(|l| !l.contains("dnat")));
    assert!(lines(&r, "srcnat").is_empty());
}

fn with_rule(rule: &str) -> Config {
    load(&format!("{SMALL}\n[[firewall.rules]]\n{rule}"))
}

#[test]
fn icmp_and_icmpv6_types_expand_per_family() {
    let c = with_rule(
        "name = \"ping\"\nsrc = \"wan\"\nproto = [\"icmp\", \"icmpv6\"]\nicmp_type = [\"echo-request\", \"packet-too-big\"]\naction = \"accept\"",
    );
    let l = lines(&render_with(&c, &[]), "input_wan");
    // echo-request in both; packet-too-big only in ICMPv6.
    assert_eq!(
        l.iter().filter(|l| l.contains("\"ping\"")).count(),
        3,
        "{l:#?}"
    );
    assert!(has(
        &l,
        "meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type packet-too-big accept comment \"ping\""
    ));
}

#[test]
fn addresses_of_two_families_never_meet_in_one_rule() {
    let c = with_rule(
        "name = \"mix\"\nsrc = \"wan\"\nsrc_addr = [\"10.0.0.0/8\", \"fd00::/8\"]\ndest_addr = [\"192.168.77.5\"]\naction = \"drop\"",
    );
    let l = lines(&render_with(&c, &[]), "input_wan");
    assert_eq!(
        l.iter()
            .filter(|l| l.contains("\"mix\""))
            .collect::<Vec<_>>(),
        ["meta nfproto ipv4 ip saddr 10.0.0.0/8 ip daddr 192.168.77.5 drop comment \"mix\""]
    );
    let c = with_rule(
        "name = \"never\"\nsrc = \"wan\"\nsrc_addr = [\"fd00::/8\"]\ndest_addr = [\"192.168.77.5\"]\naction = \"drop\"",
    );
    let err = render(&Input {
        networks: &c.networks,
        firewall: &c.firewall,
        port_forwards: &c.port_forwards,
        wan: &[],
        utc_offset: 0,
    })
    .expect_err("empty");
    assert!(matches!(err, RenderError::Empty { .. }), "{err}");
}

#[test]
fn a_rule_that_would_explode_is_refused() {
    let ports: Vec<String> = (1000..1100).map(|p| p.to_string()).collect();
    let c = with_rule(&format!(
        "name = \"big\"\nsrc = \"wan\"\nproto = [\"tcp\", \"udp\"]\ndest_port = [{}]\naction = \"accept\"\nsrc_addr = [\"10.0.0.1\", \"10.0.0.2\"]",
        ports.join(", ")
    ));
    let err = render(&Input {
        networks: &c.networks,
        firewall: &c.firewall,
        port_forwards: &c.port_forwards,
        wan: &[],
        utc_offset: 0,
    })
    .expect_err("too large");
    assert_eq!(
        err,
        RenderError::TooLarge {
            kind: "rule",
            name: "big".into(),
            count: 400
        }
    );
}

#[test]
fn a_shifted_port_range_forwards_port_by_port() {
    let c = load(&format!(
        "{SMALL}\n[[port_forwards]]\nname = \"shift\"\nexternal_port = \"8000-8002\"\ninternal = \"192.168.77.9:9000\"\nreflection = false\n"
    ));
    let d = lines(&render_with(&c, &[]), "dstnat");
    assert_eq!(
        d,
        [
            "meta nfproto ipv4 iifname \"w0\" meta l4proto tcp th dport 8000 dnat ip to 192.168.77.9:9000 comment \"shift\"",
            "meta nfproto ipv4 iifname \"w0\" meta l4proto tcp th dport 8001 dnat ip to 192.168.77.9:9001 comment \"shift\"",
            "meta nfproto ipv4 iifname \"w0\" meta l4proto tcp th dport 8002 dnat ip to 192.168.77.9:9002 comment \"shift\"",
        ]
    );
}

#[test]
fn schedules_become_day_runs_and_a_utc_window() {
    let s = |days, start_min, end_min| Schedule {
        days,
        start_min,
        end_min,
    };
    // Bit 0 is Monday; the kernel counts from Sunday = 0.
    assert_eq!(day_runs(&s(0b001_1111, 0, 1440)), [(1, 5)]);
    assert_eq!(day_runs(&s(0b110_0000, 0, 1440)), [(0, 0), (6, 6)]);
    assert!(day_runs(&s(0x7f, 0, 1440)).is_empty());
    // 09:00-17:00 in UTC+2 is 07:00-15:00 UTC.
    let w = HourWindow {
        start: 9 * 3600,
        end: 17 * 3600,
        utc_offset: 7200,
    };
    assert_eq!(w.utc(), (7 * 3600, 15 * 3600 - 1, false));
    // 21:00-07:00 local (UTC+0) is everything but 07:00-20:59:59.
    let w = HourWindow {
        start: 21 * 3600,
        end: 7 * 3600,
        utc_offset: 0,
    };
    assert_eq!(w.utc(), (7 * 3600, 21 * 3600 - 1, true));
    // 01:00-03:00 in UTC+2 crosses midnight in UTC: 23:00-01:00.
    let w = HourWindow {
        start: 3600,
        end: 3 * 3600,
        utc_offset: 7200,
    };
    assert_eq!(w.utc(), (3600, 23 * 3600 - 1, true));
}

#[test]
fn icmp_names_follow_nft() {
    assert_eq!(icmp_type("echo-request", false), Some(8));
    assert_eq!(icmp_type("echo-request", true), Some(128));
    assert_eq!(icmp_type("packet-too-big", false), None);
    assert_eq!(icmp_type("nd-neighbor-solicit", true), Some(135));
}

#[test]
fn a_dhcp_wan_takes_its_servers_answers_whatever_its_zone_says() {
    let c = cookbook();
    let input = lines(&render_with(&c, &[]), "input");
    // The cookbook's wan (eth0) is DHCP; wan2 (eth4) is static.
    let rule = "iifname \"eth0\" meta nfproto ipv4 meta l4proto udp th sport 67 th dport 68 accept";
    let at = input.iter().position(|l| l == rule);
    let jump = input
        .iter()
        .position(|l| l == "iifname \"eth0\" jump input_wan");
    assert!(at.is_some() && at < jump, "{input:#?}");
    assert!(
        !input
            .iter()
            .any(|l| l.contains("\"eth4\"") && l.contains("dport 68"))
    );
}
