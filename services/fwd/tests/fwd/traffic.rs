//! Real packets through a router namespace running fwd's table:
//!
//!     client 192.168.77.10 --+
//!                            br-lan 192.168.77.1 [router] wan0 203.0.113.1 -- wanhost 203.0.113.99
//!     lanhost 192.168.77.20 -+
//!
//! Sockets are made inside a namespace (on a thread that entered it) and
//! then used from anywhere: a socket stays in the namespace it was made in.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use bus_schema::bus::WanStatus;
use fwd::core::{Core, Outcome};

use crate::netns::{Netns, netns, require_root};
use crate::{load, sections};

/// How long a connection that should work may take.
const WORKS: Duration = Duration::from_secs(5);
/// How long to wait for a connection that should be dropped.
const BLOCKED: Duration = Duration::from_secs(1);

struct Lab {
    router: Netns,
    client: Netns,
    lanhost: Netns,
    wanhost: Netns,
}

impl Lab {
    fn new() -> Self {
        let lab = Self {
            router: netns(),
            client: netns(),
            lanhost: netns(),
            wanhost: netns(),
        };
        let r = &lab.router;
        r.ip(&["link", "add", "br-lan", "type", "bridge"]);
        r.veth("lan0", &lab.client, "c0");
        r.veth("lan1", &lab.lanhost, "h0");
        for port in ["lan0", "lan1"] {
            r.ip(&["link", "set", port, "master", "br-lan"]);
        }
        r.ip(&["link", "set", "br-lan", "up"]);
        r.ip(&["addr", "add", "192.168.77.1/24", "dev", "br-lan"]);
        r.veth("wan0", &lab.wanhost, "s0");
        r.ip(&["addr", "add", "203.0.113.1/24", "dev", "wan0"]);
        r.exec_ok("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        for (ns, dev, addr) in [
            (&lab.client, "c0", "192.168.77.10/24"),
            (&lab.lanhost, "h0", "192.168.77.20/24"),
        ] {
            ns.ip(&["addr", "add", addr, "dev", dev]);
            ns.ip(&["route", "add", "default", "via", "192.168.77.1"]);
        }
        lab.wanhost
            .ip(&["addr", "add", "203.0.113.99/24", "dev", "s0"]);
        // So that the WAN side could reach LAN hosts if fwd let it.
        lab.wanhost
            .ip(&["route", "add", "192.168.77.0/24", "via", "203.0.113.1"]);
        lab
    }
}

/// A TCP server in `ns` on `addr`: tells each client the address it sees
/// it from, then echoes lines.
fn serve(ns: &Netns, addr: &str) {
    let addr: SocketAddr = addr.parse().expect("addr");
    let listener = ns.run(move || TcpListener::bind(addr).expect("bind"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let peer = stream.peer_addr().map(|a| a.ip().to_string());
                let mut out = stream.try_clone().expect("clone");
                let _ = writeln!(out, "{}", peer.unwrap_or_default());
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if writeln!(out, "{line}").is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// An open connection from a namespace.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim().to_string())
    }

    /// Sends a line and reads its echo.
    fn echo(&mut self, text: &str) -> std::io::Result<String> {
        writeln!(self.writer, "{text}")?;
        self.line()
    }
}

/// Connects from `ns` to `addr`; on success, the address the server saw.
fn connect(ns: &Netns, addr: &str, timeout: Duration) -> std::io::Result<(Conn, String)> {
    let addr: SocketAddr = addr.parse().expect("addr");
    let stream = ns.run(move || TcpStream::connect_timeout(&addr, timeout))?;
    stream.set_read_timeout(Some(WORKS))?;
    let writer = stream.try_clone()?;
    let mut conn = Conn {
        reader: BufReader::new(stream),
        writer,
    };
    let seen = conn.line()?;
    Ok((conn, seen))
}

fn seen_as(ns: &Netns, addr: &str) -> String {
    match connect(ns, addr, WORKS) {
        Ok((_, seen)) => seen,
        Err(e) => panic!("connect from {} to {addr}: {e}", ns.name()),
    }
}

fn blocked(ns: &Netns, addr: &str) -> bool {
    connect(ns, addr, BLOCKED).is_err()
}

const ROUTER: &str = r#"
version = 1
[[networks]]
name = "lan"
kind = "lan"
bridge = "br-lan"
ports = ["lan0", "lan1"]
address = "192.168.77.1/24"

[[networks]]
name = "wan"
kind = "wan"
device = "wan0"
mode = "dhcp"

[[firewall.zones]]
name = "lan"
networks = ["lan"]
input = "accept"
forward = "accept"

[[firewall.zones]]
name = "wan"
networks = ["wan"]
masquerade = true
mss_clamping = true

[[firewall.forwardings]]
src = "lan"
dest = "wan"

[[firewall.rules]]
name = "wan-2222"
src = "wan"
proto = ["tcp"]
dest_port = [2222]
action = "accept"

[[port_forwards]]
name = "web"
external_port = 8080
internal = "192.168.77.20:80"
"#;

/// netd's report of the WAN address.
fn wan_up() -> Vec<WanStatus> {
    vec![WanStatus {
        network: "wan".into(),
        device: "wan0".into(),
        mode: "dhcp".into(),
        state: "up".into(),
        active: true,
        address: "203.0.113.1/24".into(),
        ..WanStatus::default()
    }]
}

/// A core that has applied `config` in the router namespace.
fn applied(lab: &Lab, config: &str) -> Core {
    let sections = sections(&load(config));
    lab.router.run(move || {
        let mut core = Core::new();
        let outcome = core.apply(&sections).expect("apply");
        assert!(matches!(outcome, Outcome::Committed { .. }), "{outcome:?}");
        println!("first apply: {outcome:?}");
        core
    })
}

#[test]
fn lan_clients_reach_the_wan_masqueraded_and_the_wan_reaches_only_what_is_allowed() {
    require_root!();
    let lab = Lab::new();
    serve(&lab.wanhost, "203.0.113.99:80");
    serve(&lab.lanhost, "192.168.77.20:22");
    for port in [2222, 2223] {
        serve(&lab.router, &format!("0.0.0.0:{port}"));
    }
    // Without fwd's table, routing alone lets the WAN side in: what is
    // blocked below is blocked by fwd.
    assert_eq!(seen_as(&lab.wanhost, "192.168.77.20:22"), "203.0.113.99");
    assert_eq!(seen_as(&lab.wanhost, "203.0.113.1:2223"), "203.0.113.99");
    assert_eq!(seen_as(&lab.client, "203.0.113.99:80"), "192.168.77.10");

    let _core = applied(&lab, ROUTER);

    // Masquerade: the server sees the router's WAN address.
    assert_eq!(seen_as(&lab.client, "203.0.113.99:80"), "203.0.113.1");
    // The WAN side cannot open connections to LAN hosts ...
    assert!(blocked(&lab.wanhost, "192.168.77.20:22"));
    // ... nor to a router port the config does not open; the input rule
    // opens exactly its port.
    assert!(blocked(&lab.wanhost, "203.0.113.1:2223"));
    assert_eq!(seen_as(&lab.wanhost, "203.0.113.1:2222"), "203.0.113.99");
    // The LAN zone's input policy is accept.
    assert_eq!(seen_as(&lab.client, "192.168.77.1:2223"), "192.168.77.10");
}

#[test]
fn a_port_forward_reaches_the_lan_server_and_reflection_follows_the_wan_address() {
    require_root!();
    let lab = Lab::new();
    serve(&lab.lanhost, "192.168.77.20:80");
    let core = applied(&lab, ROUTER);

    // From the WAN: DNAT to the LAN server, which sees the real client.
    assert_eq!(seen_as(&lab.wanhost, "203.0.113.1:8080"), "203.0.113.99");
    // netd has not told fwd the (DHCP) WAN address: no reflection yet,
    // so the router itself answers (nothing listens: refused).
    assert!(connect(&lab.client, "203.0.113.1:8080", WORKS).is_err());

    // netd reports the address: reflection is added.
    let mut core = core;
    let outcome = core.set_wan(&wan_up()).expect("set wan");
    assert!(matches!(outcome, Outcome::Committed { .. }), "{outcome:?}");
    // The LAN client reaches the server through the public address; the
    // hairpinned flow is masqueraded, so the server sees the router.
    assert_eq!(seen_as(&lab.client, "203.0.113.1:8080"), "192.168.77.1");
    // The same report again changes nothing.
    assert_eq!(
        core.set_wan(&wan_up()).expect("set wan"),
        Outcome::Unchanged
    );
}

#[test]
fn established_connections_survive_an_apply_that_does_not_concern_them() {
    require_root!();
    let lab = Lab::new();
    serve(&lab.wanhost, "203.0.113.99:80");
    serve(&lab.lanhost, "192.168.77.20:80");
    let mut core = applied(&lab, ROUTER);
    core.set_wan(&wan_up()).expect("set wan");

    let (mut out, seen) = connect(&lab.client, "203.0.113.99:80", WORKS).expect("outbound");
    assert_eq!(seen, "203.0.113.1");
    let (mut forwarded, _) = connect(&lab.wanhost, "203.0.113.1:8080", WORKS).expect("forward");
    assert_eq!(out.echo("before").expect("echo"), "before");
    assert_eq!(forwarded.echo("before").expect("echo"), "before");

    // A new rule and a changed port forward (another port, and one more).
    let changed = ROUTER.replace("external_port = 8080", "external_port = 8081")
        + "\n[[firewall.rules]]\nname = \"wan-2223\"\nsrc = \"wan\"\nproto = [\"tcp\"]\ndest_port = [2223]\naction = \"accept\"\n"
        + "\n[[port_forwards]]\nname = \"ssh\"\nexternal_port = 2200\ninternal = \"192.168.77.20:22\"\n";
    let outcome = core.apply(&sections(&load(&changed))).expect("apply");
    assert!(matches!(outcome, Outcome::Committed { .. }), "{outcome:?}");

    // Conntrack keeps both flows: the DNATed one too, though its port
    // forward moved to another port.
    assert_eq!(out.echo("after").expect("echo after apply"), "after");
    assert_eq!(forwarded.echo("after").expect("echo after apply"), "after");
    // New connections follow the new config.
    assert_eq!(seen_as(&lab.wanhost, "203.0.113.1:8081"), "203.0.113.99");
    assert!(blocked(&lab.wanhost, "203.0.113.1:8080"));
}
