//! `cargo xtask bench dhcp`: perfdhcp against dhcpd, Kea and dnsmasq, one
//! after the other, on the same namespaces, with the same pool.
//!
//! ```text
//!  load (perfdhcp) 10.80.0.2 --- srv: br-lan 10.80.0.1/16, the server
//! ```
//!
//! perfdhcp acts as a relay (giaddr 10.80.0.2, in the pool's subnet), so
//! every server answers by unicast. Each server gets the pool
//! 10.80.1.0-10.80.250.255 with a one-hour lease, starts with an empty
//! lease database, and keeps every lease on disk: dhcpd's journal (one
//! fdatasync per batch, before the batch's ACKs), Kea's memfile
//! (`persist: true`) and dnsmasq's lease file. Per server the offered rate
//! of 4-way exchanges (DISCOVER-OFFER-REQUEST-ACK) climbs in steps of
//! `--seconds`; the figure is the highest rate achieved with no drops.
//! perfdhcp receives every reply on one socket with the kernel's default
//! buffer (which a namespace cannot raise), so a server that answers in
//! bursts (dhcpd sends a batch's ACKs after its fdatasync) can overflow
//! the load generator itself: the load namespace's `RcvbufErrors` are
//! counted per step and reported beside the drops, and the ramp goes on
//! while every drop is such an overflow. The server's CPU time per
//! exchange (user + system, from /proc) is reported for the highest clean
//! step: on a machine this small the load generator saturates, so the
//! rate at 0 % drops can be the generator's limit rather than the
//! server's. perfdhcp runs single-threaded on CPU 0 and every server on
//! CPU 1 (`taskset`), so that neither takes the other's time, and the
//! server's port hands what it receives to CPU 1 (RPS), so that the
//! kernel's work for the server is not done on perfdhcp's CPU. Figures
//! are printed, never asserted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use oxwrt_lab::scratch::Netns;

use super::Guard;

#[derive(Debug, Args)]
pub struct DhcpArgs {
    /// Length of each perfdhcp step, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Do not install missing system packages.
    #[arg(long)]
    no_deps_install: bool,
}

const SERVER: &str = "10.80.0.1";
const LOAD: &str = "10.80.0.2";
const POOL: (&str, &str) = ("10.80.1.0", "10.80.250.255");
/// Distinct clients perfdhcp simulates (fewer than the pool's addresses).
const CLIENTS: &str = "50000";
/// Offered rates, exchanges per second.
const RATES: &[u32] = &[
    100, 200, 500, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000, 10_000, 11_000,
    12_000, 15_000, 20_000,
];
/// Debian packages the benchmark runs.
const PACKAGES: &[&str] = &["kea-admin", "kea-dhcp4-server", "dnsmasq-base", "iproute2"];

/// One perfdhcp step.
#[derive(Debug, Clone, Copy)]
struct Step {
    offered: u32,
    achieved: f64,
    drops: u64,
    /// Datagrams the load namespace's own receive buffers dropped.
    overflows: u64,
    /// The server's CPU time during the step, in microseconds per
    /// exchange completed.
    cpu_micros: f64,
}

impl Step {
    /// Whether every drop (if any) happened in perfdhcp's own buffer.
    fn server_clean(&self) -> bool {
        self.drops <= self.overflows
    }
}

pub fn run(args: DhcpArgs) -> Result<()> {
    let dhcpd = super::prepare("dhcp", PACKAGES, args.no_deps_install, &["dhcpd"])?.join("dhcpd");
    let dir = tempfile::tempdir()?;
    let (load, srv) = (Netns::new("oxbh"), Netns::new("oxbh"));
    load.veth("eth0", &srv, "lan0");
    load.ip(&["addr", "add", &format!("{LOAD}/16"), "dev", "eth0"]);
    srv.ip(&["link", "add", "br-lan", "type", "bridge", "stp_state", "0"]);
    srv.ip(&["link", "set", "lan0", "master", "br-lan"]);
    srv.ip(&["addr", "add", &format!("{SERVER}/16"), "dev", "br-lan"]);
    srv.ip(&["link", "set", "br-lan", "up"]);
    // What perfdhcp sends is received (bridge, UDP, the server's socket)
    // on the CPU that sent it unless the server's port steers it (RPS)
    // to the server's CPU.
    let cpu = server_cpu();
    let steer = format!(
        "echo {:x} > /sys/class/net/lan0/queues/rx-0/rps_cpus",
        1u32 << cpu
    );
    let out = srv.exec("sh", &["-c", &steer]);
    if !out.status.success() {
        bail!("{steer}: {}", String::from_utf8_lossy(&out.stderr));
    }

    let mut rows = Vec::new();
    for name in ["dhcpd", "kea", "dnsmasq"] {
        let state = dir.path().join(name);
        std::fs::create_dir_all(&state)?;
        eprintln!("==> {name}");
        let server = start(name, &srv, &state, &dhcpd, cpu)?;
        let steps = ramp(&load, args.seconds, &state, server.0.id())?;
        rows.push((name, steps));
    }
    print!("{}", table(&rows, args.seconds));
    Ok(())
}

fn start(name: &str, srv: &Netns, state: &Path, dhcpd: &Path, cpu: u32) -> Result<Guard> {
    let s = |p: &Path| p.display().to_string();
    let log = std::fs::File::create(state.join("server.log"))?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &cpu.to_string(), "ip", "netns", "exec", srv.name()]);
    match name {
        "dhcpd" => {
            let config = state.join("oxwrt.toml");
            std::fs::write(&config, dhcpd_config())?;
            cmd.arg(dhcpd)
                .args(["--config", &s(&config), "--state", &s(state)])
                .env("RUST_LOG", "warn");
        }
        "kea" => {
            let config = state.join("kea-dhcp4.json");
            std::fs::write(&config, kea_config(state))?;
            cmd.args(["kea-dhcp4", "-c", &s(&config)])
                .env("KEA_PIDFILE_DIR", state)
                .env("KEA_LOCKFILE_DIR", state);
        }
        _ => {
            let range = format!("--dhcp-range={},{},255.255.0.0,1h", POOL.0, POOL.1);
            cmd.args([
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",
                "--user=root",
                "--interface=br-lan",
                "--bind-interfaces",
                "--dhcp-authoritative",
                "--no-ping",
                "--dhcp-lease-max=100000",
                &range,
            ])
            .arg(format!("--dhcp-leasefile={}", s(&state.join("leases"))))
            .arg(format!("--pid-file={}", s(&state.join("pid"))));
        }
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {name}"))?;
    // Ready when port 67 is bound in the namespace.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !srv
        .exec("ss", &["-lun", "sport", "= :67"])
        .stdout
        .contains(&b'6')
    {
        if Instant::now() > deadline {
            bail!(
                "{name} did not bind port 67; see {}",
                state.join("server.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Guard(child))
}

fn dhcpd_config() -> String {
    format!(
        "version = 1\n\
         [[networks]]\nname = \"lan\"\nkind = \"lan\"\nbridge = \"br-lan\"\naddress = \"{SERVER}/16\"\n\
         [[dhcp.pools]]\nnetwork = \"lan\"\nstart = \"{}\"\nend = \"{}\"\nlease_time = \"1h\"\n",
        POOL.0, POOL.1
    )
}

fn kea_config(state: &Path) -> String {
    let leases = state.join("kea-leases4.csv");
    serde_json::json!({
        "Dhcp4": {
            "interfaces-config": { "interfaces": ["br-lan"], "dhcp-socket-type": "udp" },
            "lease-database": {
                "type": "memfile",
                "persist": true,
                "name": leases.display().to_string(),
                "lfc-interval": 0
            },
            "valid-lifetime": 3600,
            "subnet4": [{
                "id": 1,
                "subnet": "10.80.0.0/16",
                "pools": [{ "pool": format!("{} - {}", POOL.0, POOL.1) }],
                "option-data": [{ "name": "routers", "data": SERVER }]
            }],
            "loggers": [{
                "name": "kea-dhcp4",
                "output_options": [{ "output": "stdout" }],
                "severity": "WARN"
            }]
        }
    })
    .to_string()
}

/// The CPU the load generator runs on.
const LOAD_CPU: u32 = 0;

/// The CPU the servers run on: one of their own when there are two or
/// more, so that neither steals the other's time (perfdhcp needs most of
/// a core at the top rates, and starved it overflows its own buffer);
/// otherwise they share [`LOAD_CPU`].
fn server_cpu() -> u32 {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::from(n >= 2)
}

/// Offers climbing rates until a step drops a packet or falls short of
/// its rate.
fn ramp(load: &Netns, seconds: u32, state: &Path, server: u32) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for (i, &rate) in RATES.iter().enumerate() {
        let overflows_before = rcvbuf_errors(load)?;
        let cpu_before = cpu_ticks(server)?;
        let out = load.exec(
            "taskset",
            &[
                "-c",
                &LOAD_CPU.to_string(),
                "perfdhcp",
                // One thread sends and receives: in its default mode a
                // second thread receives, and on a machine this small
                // the two starve each other into overflowing the buffer.
                "-g",
                "single",
                "-4",
                "-r",
                &rate.to_string(),
                "-R",
                CLIENTS,
                "-p",
                &seconds.to_string(),
                // Wait a second for the last replies, so packets in flight
                // at the end are not counted as drops.
                "-W",
                "1000000",
                "-l",
                LOAD,
                SERVER,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        std::fs::write(state.join(format!("perfdhcp-{i}.txt")), &text)?;
        let mut step = parse(rate, seconds, &text)
            .with_context(|| format!("cannot read perfdhcp's output:\n{text}"))?;
        step.overflows = rcvbuf_errors(load)?.saturating_sub(overflows_before);
        let ticks = cpu_ticks(server)?.saturating_sub(cpu_before);
        let exchanges = step.achieved * f64::from(seconds);
        step.cpu_micros = ticks as f64 * 1e6 / USER_HZ / exchanges.max(1.0);
        eprintln!(
            "    offered {rate}/s: {:.0}/s, {} drops ({} in perfdhcp's receive buffer), {:.0} µs CPU per exchange",
            step.achieved, step.drops, step.overflows, step.cpu_micros
        );
        steps.push(step);
        if !step.server_clean() || step.achieved < f64::from(rate) * 0.95 {
            break;
        }
    }
    Ok(steps)
}

/// Clock ticks per second of /proc's CPU times (`USER_HZ`: 100 on every
/// Linux architecture's user ABI).
const USER_HZ: f64 = 100.0;

/// User + system CPU time of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let fields = oxwrt_lab::exec::stat_fields(pid)
        .with_context(|| format!("read /proc/{pid}/stat (did the server exit?)"))?;
    // Fields from 3 (the state) on: utime is 14, stime 15.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(user), Some(system)) => Ok(user + system),
        _ => bail!("cannot read CPU times from /proc/{pid}/stat"),
    }
}

/// `RcvbufErrors` of UDP in `ns` (/proc/net/snmp).
fn rcvbuf_errors(ns: &Netns) -> Result<u64> {
    let out = ns.exec("cat", &["/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next(), udp.next());
    let column = names
        .and_then(|n| n.split_whitespace().position(|c| c == "RcvbufErrors"))
        .context("no RcvbufErrors in /proc/net/snmp")?;
    values
        .and_then(|v| v.split_whitespace().nth(column))
        .and_then(|v| v.parse().ok())
        .context("cannot read RcvbufErrors")
}

/// The achieved rate (ACKs received per second of the step; perfdhcp's
/// own "Rate" counts the exit wait too) and the drops of both exchanges
/// from perfdhcp's report.
fn parse(offered: u32, seconds: u32, text: &str) -> Option<Step> {
    let acks: u32 = text
        .lines()
        .filter_map(|l| l.strip_prefix("received packets: "))
        .nth(1)
        .and_then(|r| r.trim().parse().ok())?;
    let achieved = f64::from(acks) / f64::from(seconds);
    let drops = text
        .lines()
        .filter_map(|l| l.strip_prefix("drops: "))
        .filter_map(|d| d.trim().parse::<u64>().ok())
        .sum();
    Some(Step {
        offered,
        achieved,
        drops,
        overflows: 0,
        cpu_micros: 0.0,
    })
}

fn table(rows: &[(&str, Vec<Step>)], seconds: u32) -> String {
    let mut out = format!(
        "\nperfdhcp, relayed, {seconds} s per step; 4-way exchanges per second\n\n\
         {:<8} {:>14} {:>26} {:>24} {:>18}\n",
        "server",
        "at 0 % drops",
        "0 % but perfdhcp's buffer",
        "first step with drops",
        "CPU per exchange"
    );
    for (name, steps) in rows {
        let best = |ok: fn(&Step) -> bool| {
            steps
                .iter()
                .filter(|s| ok(s))
                .max_by(|a, b| a.achieved.total_cmp(&b.achieved))
        };
        let clean = best(|s| s.drops == 0);
        let server = best(|s| s.server_clean()).map_or(0.0, |s| s.achieved);
        let failed = steps.iter().find(|s| s.drops > 0).map_or_else(
            || "-".to_string(),
            |s| format!("{}/s: {} ({})", s.offered, s.drops, s.overflows),
        );
        let cpu = clean.map_or_else(|| "-".to_string(), |s| format!("{:.0} µs", s.cpu_micros));
        let clean = clean.map_or(0.0, |s| s.achieved);
        out.push_str(&format!(
            "{name:<8} {clean:>14.0} {server:>26.0} {failed:>24} {cpu:>18}\n"
        ));
    }
    out.push_str(
        "\n(n): of the drops, datagrams perfdhcp's own receive buffer overflowed\n\
         CPU per exchange: the server's user + system time at its best 0 % step\n",
    );
    out
}
