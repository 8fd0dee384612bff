//! `cargo xtask bench dns`: dnsperf against dnsd, dnsmasq and unbound, one
//! after the other, on the same namespaces, with the same upstream and the
//! same query files.
//!
//! ```text
//!  load (dnsperf) 192.168.60.10 --- srv: server under test 192.168.60.1
//!                                        10.60.0.1 --- up: dnsmasq 10.60.0.53
//! ```
//!
//! The upstream answers every name with 192.0.2.1 (TTL 3600). Each server
//! runs single-threaded (dnsd and dnsmasq are; unbound gets
//! `num-threads: 1`) with a cache of 10,000 entries (unbound: its default
//! byte-sized caches) and its other defaults. Per server: a warm-up pass
//! over the cached file, then `--seconds` of cached answers (1,000 names
//! asked over and over), then `--seconds` of cache misses (names never
//! asked before), then its resident memory (VmRSS); `--rounds` times
//! over the three, keeping each server's best figures (the machine is
//! shared with builds and tests). Figures are printed, never asserted.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use oxwrt_lab::scratch::Netns;

use super::{Guard, status_kib};

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Length of each dnsperf run, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Rounds over the three servers; each figure is the best round's
    /// (the machine is shared: a round can be disturbed).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Do not install missing system packages.
    #[arg(long)]
    no_deps_install: bool,
}

const SERVER: &str = "192.168.60.1";
const LOAD: &str = "192.168.60.10";
const SERVER_WAN: &str = "10.60.0.1";
const UPSTREAM: &str = "10.60.0.53";
const DNSMASQ: &str = "/usr/sbin/dnsmasq";
const UNBOUND: &str = "/usr/sbin/unbound";
/// Debian packages the benchmark runs.
const PACKAGES: &[&str] = &[
    "dnsperf",
    "unbound",
    "dnsmasq-base",
    "bind9-dnsutils",
    "iproute2",
];
/// Names in the cached query file.
const CACHED_NAMES: usize = 1_000;
/// Names in the miss query file: more than any server answers in a run.
const MISS_NAMES: usize = 2_000_000;

/// One dnsperf run's result.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    qps: f64,
    lost_percent: f64,
}

/// One server's figures.
#[derive(Debug)]
struct Row {
    name: &'static str,
    cached: Run,
    misses: Run,
    rss_kib: u64,
}

pub fn run(args: DnsArgs) -> Result<()> {
    let dnsd = super::prepare("dns", PACKAGES, args.no_deps_install, &["dnsd"])?.join("dnsd");

    let dir = std::env::temp_dir().join(format!("oxwrt-bench-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&args, &dir, &dnsd);
    let _ = std::fs::remove_dir_all(&dir);
    let rows = result?;
    print!("{}", table(&rows, args.seconds, args.rounds));
    Ok(())
}

fn bench(args: &DnsArgs, dir: &Path, dnsd: &Path) -> Result<Vec<Row>> {
    let (load, srv, up) = (Netns::new("oxbd"), Netns::new("oxbd"), Netns::new("oxbd"));
    load.veth("eth0", &srv, "lan0");
    load.ip(&["addr", "add", &format!("{LOAD}/24"), "dev", "eth0"]);
    srv.ip(&["addr", "add", &format!("{SERVER}/24"), "dev", "lan0"]);
    srv.veth("wan0", &up, "eth0");
    srv.ip(&["addr", "add", &format!("{SERVER_WAN}/24"), "dev", "wan0"]);
    up.ip(&["addr", "add", &format!("{UPSTREAM}/24"), "dev", "eth0"]);

    let cached = dir.join("cached.txt");
    let misses = dir.join("misses.txt");
    write_queries(&cached, "c", CACHED_NAMES)?;
    write_queries(&misses, "m", MISS_NAMES)?;

    let _upstream = spawn(
        &up,
        DNSMASQ,
        &[
            "--keep-in-foreground",
            &format!("--pid-file={}", dir.join("upstream.pid").display()),
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--group=root",
            &format!("--listen-address={UPSTREAM}"),
            "--bind-interfaces",
            "--address=/#/192.0.2.1",
            "--local-ttl=3600",
            "--cache-size=0",
        ],
    )?;
    wait_answering(&srv, UPSTREAM)?;

    let mut rows: Vec<Row> = Vec::new();
    for round in 1..=args.rounds.max(1) {
        for name in ["dnsd", "dnsmasq", "unbound"] {
            eprintln!("==> round {round}: {name}");
            let row = measure(name, args.seconds, &load, &srv, dir, dnsd, &cached, &misses)?;
            match rows.iter_mut().find(|r| r.name == name) {
                Some(best) => {
                    if row.cached.qps > best.cached.qps {
                        best.cached = row.cached;
                    }
                    if row.misses.qps > best.misses.qps {
                        best.misses = row.misses;
                    }
                    best.rss_kib = best.rss_kib.max(row.rss_kib);
                }
                None => rows.push(row),
            }
        }
    }
    Ok(rows)
}

/// One server: start, warm up, cached run, miss run, VmRSS, stop.
#[allow(clippy::too_many_arguments)]
fn measure(
    name: &'static str,
    seconds: u32,
    load: &Netns,
    srv: &Netns,
    dir: &Path,
    dnsd: &Path,
    cached: &Path,
    misses: &Path,
) -> Result<Row> {
    let mut server = start_server(name, srv, dir, dnsd)?;
    wait_answering(load, SERVER)?;
    let pid = server.0.id();
    // Warm-up: every cached name once.
    dnsperf(load, cached, &["-n", "1"])?;
    let secs = seconds.to_string();
    let cached_run = dnsperf(load, cached, &["-l", &secs])?;
    eprintln!(
        "    cached: {:.0} qps, {:.2}% lost",
        cached_run.qps, cached_run.lost_percent
    );
    let miss_run = dnsperf(load, misses, &["-l", &secs])?;
    eprintln!(
        "    misses: {:.0} qps, {:.2}% lost",
        miss_run.qps, miss_run.lost_percent
    );
    if let Ok(Some(status)) = server.0.try_wait() {
        bail!("{name} exited during the run ({status})");
    }
    let rss_kib = status_kib(pid, "VmRSS:")?;
    // Heap and stacks apart from the binary's and libraries' pages.
    eprintln!(
        "    VmRSS: {rss_kib} kB (anonymous {} kB, file {} kB)",
        status_kib(pid, "RssAnon:")?,
        status_kib(pid, "RssFile:")?
    );
    Ok(Row {
        name,
        cached: cached_run,
        misses: miss_run,
        rss_kib,
    })
}

fn start_server(name: &str, srv: &Netns, dir: &Path, dnsd: &Path) -> Result<Guard> {
    match name {
        "dnsd" => {
            let config = dir.join("oxwrt.toml");
            std::fs::write(&config, dnsd_config())?;
            let path = config.display().to_string();
            spawn(srv, &dnsd.display().to_string(), &["--config", &path])
        }
        "dnsmasq" => spawn(
            srv,
            DNSMASQ,
            &[
                "--keep-in-foreground",
                &format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--group=root",
                &format!("--listen-address={SERVER}"),
                "--bind-interfaces",
                &format!("--server={UPSTREAM}"),
                "--cache-size=10000",
            ],
        ),
        _ => {
            let config = dir.join("unbound.conf");
            std::fs::write(&config, unbound_config(dir))?;
            let path = config.display().to_string();
            spawn(srv, UNBOUND, &["-d", "-c", &path])
        }
    }
}

fn dnsd_config() -> String {
    format!(
        r#"version = 1
[system]
hostname = "bench"

[[networks]]
name = "lan"
kind = "lan"
bridge = "lan0"
ports = []
address = "{SERVER}/24"

[dns]
cache_size = 10000
upstreams = [{{ address = "{UPSTREAM}" }}]
"#
    )
}

fn unbound_config(dir: &Path) -> String {
    format!(
        r#"server:
  interface: {SERVER}
  port: 53
  access-control: 192.168.60.0/24 allow
  num-threads: 1
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-ip6: no
  module-config: "iterator"
  qname-minimisation: no
  do-not-query-localhost: no
forward-zone:
  name: "."
  forward-addr: {UPSTREAM}
"#,
        dir = dir.display()
    )
}

fn write_queries(path: &Path, prefix: &str, n: usize) -> Result<()> {
    let mut text = String::with_capacity(n * 24);
    for i in 0..n {
        let _ = writeln!(text, "{prefix}{i}.bench.example A");
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn spawn(ns: &Netns, program: &str, args: &[&str]) -> Result<Guard> {
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name(), program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("start {program}"))?;
    Ok(Guard(child))
}

/// Waits (at most 20 s) until `server` answers a query from `ns`.
fn wait_answering(ns: &Netns, server: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ns.exec(
            "dig",
            &[
                &format!("@{server}"),
                "+time=1",
                "+tries=1",
                "+short",
                "ready.bench.example",
            ],
        );
        if String::from_utf8_lossy(&out.stdout).contains("192.0.2.1") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{server} does not answer");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One dnsperf run from `ns` against the server.
fn dnsperf(ns: &Netns, queries: &Path, extra: &[&str]) -> Result<Run> {
    let file = queries.display().to_string();
    let mut args = vec!["-s", SERVER, "-d", &file, "-c", "8", "-q", "100", "-t", "2"];
    args.extend_from_slice(extra);
    let out = ns.exec("dnsperf", &args);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "dnsperf failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |label: &str| -> Option<&str> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(str::trim)
    };
    let qps = field("Queries per second:")
        .and_then(|v| v.parse().ok())
        .context("dnsperf printed no queries per second")?;
    // "Queries lost:         12 (0.01%)"
    let lost_percent = field("Queries lost:")
        .and_then(|v| v.split('(').nth(1))
        .and_then(|v| v.trim_end_matches(')').trim_end_matches('%').parse().ok())
        .unwrap_or(0.0);
    Ok(Run { qps, lost_percent })
}

fn table(rows: &[Row], seconds: u32, rounds: u32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ndnsperf, {seconds} s per run, 8 clients, 100 in flight, best of {rounds} rounds (RSS: the largest);\nupstream: dnsmasq answering every name; caches of 10,000 entries (unbound: its defaults)\n"
    );
    let _ = writeln!(
        out,
        "{:<9} {:>12} {:>7} {:>12} {:>7} {:>10}",
        "server", "cached qps", "lost", "miss qps", "lost", "RSS"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<9} {:>12.0} {:>6.2}% {:>12.0} {:>6.2}% {:>7.1} MB",
            r.name,
            r.cached.qps,
            r.cached.lost_percent,
            r.misses.qps,
            r.misses.lost_percent,
            r.rss_kib as f64 / 1024.0
        );
    }
    out
}
