//! `cargo xtask bench control`: the control plane, side by side with an
//! SSH server (dropbear, the one OpenWrt runs) in the same router, in one
//! run.
//!
//! ```text
//!  lab router namespace: oxinit, configd, netd, fwd, dhcpd, dnsd, ctld (release)
//!    oxctl ---QUIC--> ctld      192.168.1.1:7443   over loopback
//!    ssh   ---TCP---> dropbear  192.168.1.1:2222   over loopback
//! ```
//!
//! Both ends pin ed25519 keys on both sides. Figures, never asserted:
//!
//! - **Round trips.** `oxctl ping -c CALLS -i 0`: `status` calls back to
//!   back on one connection, best of `--rounds` by p50. `--connections`
//!   runs of `oxctl ping -c 1`: the handshake and hello (`connect_ms`) and
//!   the whole process as an operator runs it. The peer: as many
//!   `ssh router true`, a new process and connection each, and as many
//!   over one ControlMaster connection (a new channel and a shell each).
//!   Then the resident memory of ctld and of dropbear's listener.
//! - **Push and reload.** The cookbook (`config/oxwrt.toml`, less what no
//!   namespace here can host, on veths named as its devices) and the
//!   lab's own config in turn, `--rounds` times each: the wall time of
//!   `oxctl config-push` and of `oxctl reload`, and the CPU time the
//!   router's processes spent in the reload.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Args;
use oxwrt_lab::exec::run_ok;
use oxwrt_lab::netns;
use oxwrt_lab::plan::ROUTER_LAN_ADDR;
use oxwrt_lab::scratch::{self, Netns};
use oxwrt_lab::wait::wait_for;
use oxwrt_lab::{Boot, LAB_CONFIG_DIR, Lab, LabConfig};

use super::{Guard, status_kib};

#[derive(Debug, Args)]
pub struct ControlArgs {
    /// Status calls per `oxctl ping` run.
    #[arg(long, default_value_t = 2000)]
    calls: u32,
    /// New connections (one process each) per client, for the handshake.
    #[arg(long, default_value_t = 50)]
    connections: u32,
    /// Ping runs (the best p50 is kept), and reloads each way.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Do not install missing system packages.
    #[arg(long)]
    no_deps_install: bool,
}

/// The binaries the lab router runs, and oxctl.
const STACK: &[&str] = &[
    "oxinit", "configd", "netd", "fwd", "dhcpd", "dnsd", "ctld", "oxctl",
];
/// The peer's Debian packages, beyond the lab's own.
const PEER_PACKAGES: &[&str] = &["dropbear-bin", "openssh-client"];
/// dropbear's port on the router's LAN address.
const SSH_PORT: u16 = 2222;
/// A rate limit no run here reaches: the round trips measure ctld, not
/// its limiter.
const RATE: &str = "rate_limit = 100000\nrate_burst = 100000\n";
/// Names in each blocklist the cookbook names.
const BLOCKED: usize = 100_000;
/// How long dropbearkey and ssh-keygen may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dropbear and ssh's master connection may take to come up.
const UP: Duration = Duration::from_secs(10);
/// How long the router may take to lease its WAN and start ctld.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Latency figures, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples` (ms).
    fn of(mut samples: Vec<f64>) -> Latency {
        samples.sort_by(f64::total_cmp);
        let rank = |p: usize| {
            let i = (samples.len() * p).div_ceil(100).max(1) - 1;
            samples.get(i).copied().unwrap_or_default()
        };
        Latency {
            p50: rank(50),
            p99: rank(99),
            max: rank(100),
        }
    }
}

/// One push and reload direction's figures (ms).
#[derive(Debug)]
struct Reloads {
    name: &'static str,
    push: Vec<f64>,
    reload: Vec<f64>,
    cpu: Vec<f64>,
}

/// Everything measured.
#[derive(Debug)]
struct Report {
    rtt: Latency,
    connect: Latency,
    oxctl_process: Latency,
    ssh_process: Latency,
    ssh_channel: Latency,
    ctld_rss_kib: u64,
    dropbear_rss_kib: u64,
    stripped: Vec<String>,
    reloads: Vec<Reloads>,
}

pub fn run(args: ControlArgs) -> Result<()> {
    let packages = [crate::test::PACKAGES, PEER_PACKAGES].concat();
    let bin = super::prepare("control", &packages, args.no_deps_install, STACK)?;
    let dir = tempfile::Builder::new()
        .prefix("oxwrt-bench-control-")
        .tempdir()?;
    eprintln!("==> booting the lab router");
    let lab = boot(&bin, dir.path())?;
    let result = bench(&args, &lab, &bin, dir.path());
    let teardown = lab.teardown();
    let report = result?;
    teardown?;
    print!("{}", table(&report, &args));
    Ok(())
}

/// The lab with the release stack, its config allowing any call rate.
fn boot(bin: &Path, dir: &Path) -> Result<Lab> {
    let config = dir.join("lab-config");
    fs::create_dir_all(&config)?;
    for name in ["oxwrt.toml", "oxwrt.secrets.toml"] {
        fs::copy(Path::new(LAB_CONFIG_DIR).join(name), config.join(name))
            .with_context(|| format!("copy the lab's {name}"))?;
    }
    let path = config.join("oxwrt.toml");
    let text = fs::read_to_string(&path)?;
    ensure!(
        text.contains("\n[control]\n"),
        "the lab's config has no [control]"
    );
    fs::write(
        &path,
        text.replace("\n[control]\n", &format!("\n[control]\n{RATE}")),
    )?;
    let mut lab = Lab::up(LabConfig {
        config: Some(config),
        manual_router: false,
        ..LabConfig::default()
    })?;
    let oxinit = lab.boot(&Boot::new(bin))?;
    lab.adopt(oxinit);
    lab.wait_router_wan(BOOT_TIMEOUT)?;
    lab.wait_control(BOOT_TIMEOUT)?;
    Ok(lab)
}

fn bench(args: &ControlArgs, lab: &Lab, bin: &Path, dir: &Path) -> Result<Report> {
    let control = lab.info().control.clone().context("the lab runs no ctld")?;
    let ctl = Oxctl {
        path: bin.join("oxctl"),
        env: vec![
            ("OXCTL_HOST", control.addr.clone()),
            ("OXCTL_KEY", control.key.clone()),
            ("OXCTL_SERVER_KEY", control.server_key.clone()),
            (
                "OXCTL_CONFIG",
                dir.join("no-client-config.toml").display().to_string(),
            ),
        ],
    };
    let ssh = Ssh::new(&dir.join("ssh"))?;
    let (a, b) = (dir.join("lab"), dir.join("cookbook"));
    save_running(lab, &a)?;
    let stripped = cookbook(&b, &a.join("oxwrt.toml"))?;
    // The cookbook's devices, each a veth to a namespace of their own.
    let far = Netns::new("oxbc");
    for device in devices(&b.join("oxwrt.toml"))? {
        netns::veth(&lab.namespaces().router, &device, far.name(), &device)?;
    }
    blocklists(lab, &b.join("oxwrt.toml"))?;
    let ctld = ctld_pid(lab)?;

    // On a thread inside the router's namespace: the processes it starts
    // live there, and reach ctld and dropbear over loopback.
    scratch::run_in(&lab.namespaces().router, || {
        eprintln!("==> round trips: oxctl ping");
        let mut rtt: Option<Latency> = None;
        for round in 1..=args.rounds.max(1) {
            let json = ctl.json(&["ping", "-c", &args.calls.to_string(), "-i", "0"])?;
            let run = Latency {
                p50: number(&json, "p50_ms")?,
                p99: number(&json, "p99_ms")?,
                max: number(&json, "max_ms")?,
            };
            eprintln!(
                "    round {round}: p50 {:.3} ms, p99 {:.3} ms",
                run.p50, run.p99
            );
            if rtt.is_none_or(|best| run.p50 < best.p50) {
                rtt = Some(run);
            }
        }
        eprintln!("==> new connections: oxctl ping -c 1, ssh true");
        let (mut connect, mut oxctl_process) = (Vec::new(), Vec::new());
        for _ in 0..args.connections {
            let start = Instant::now();
            let json = ctl.json(&["ping", "-c", "1"])?;
            oxctl_process.push(ms(start.elapsed()));
            connect.push(number(&json, "connect_ms")?);
        }
        let dropbear = ssh.serve()?;
        let ssh_process = timed(args.connections, || ssh.run(&[]))?;
        let master = ssh.master()?;
        let ssh_channel = timed(args.connections, || ssh.run(&ssh.multiplexed()))?;
        drop(master);
        let dropbear_rss_kib = status_kib(dropbear.0.id(), "VmRSS:")?;

        eprintln!("==> push and reload, lab <-> cookbook");
        let mut reloads = [
            Reloads::new("lab -> cookbook"),
            Reloads::new("cookbook -> lab"),
        ];
        for round in 1..=args.rounds.max(1) {
            for (figures, pair) in reloads.iter_mut().zip([&b, &a]) {
                figures.measure(&ctl, lab, pair)?;
                eprintln!(
                    "    round {round}, {}: push {:.1} ms, reload {:.1} ms",
                    figures.name,
                    figures.push.last().copied().unwrap_or_default(),
                    figures.reload.last().copied().unwrap_or_default()
                );
            }
        }
        Ok(Report {
            rtt: rtt.unwrap_or_default(),
            connect: Latency::of(connect),
            oxctl_process: Latency::of(oxctl_process),
            ssh_process,
            ssh_channel,
            ctld_rss_kib: status_kib(ctld, "VmRSS:")?,
            dropbear_rss_kib,
            stripped,
            reloads: reloads.into(),
        })
    })
}

/// oxctl with the lab's keys, run from the router's namespace.
struct Oxctl {
    path: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Oxctl {
    /// Runs `oxctl --json ARGS`; its output as JSON.
    fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let out = self.run(&[&["--json"], args].concat())?;
        serde_json::from_slice(&out.stdout).context("oxctl printed no JSON")
    }

    /// Runs oxctl; fails unless it succeeds.
    fn run(&self, args: &[&str]) -> Result<Output> {
        let out = Command::new(&self.path)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .context("run oxctl")?;
        ensure!(
            out.status.success(),
            "oxctl {}: {}",
            args.join(" "),
            describe(&out)
        );
        Ok(out)
    }
}

impl Reloads {
    fn new(name: &'static str) -> Reloads {
        Reloads {
            name,
            push: Vec::new(),
            reload: Vec::new(),
            cpu: Vec::new(),
        }
    }

    /// Pushes the pair in `dir` and reloads it; a reload that does not
    /// move the router to a new generation fails the benchmark.
    fn measure(&mut self, ctl: &Oxctl, lab: &Lab, dir: &Path) -> Result<()> {
        let config = dir.join("oxwrt.toml").display().to_string();
        let start = Instant::now();
        ctl.run(&["config-push", &config])?;
        self.push.push(ms(start.elapsed()));
        let cpu = router_cpu(lab);
        let start = Instant::now();
        let applied = ctl.json(&["reload"])?;
        self.reload.push(ms(start.elapsed()));
        self.cpu.push(ms(router_cpu(lab).saturating_sub(cpu)));
        ensure!(
            applied["generation"].as_u64() > applied["generation_before"].as_u64(),
            "the reload to {} changed no generation: {applied}",
            dir.display()
        );
        Ok(())
    }
}

/// Copies the router's running pair (the lab's, with its operator key) to
/// `dir`.
fn save_running(lab: &Lab, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    for name in ["oxwrt.toml", "oxwrt.secrets.toml"] {
        fs::copy(lab.root().join("etc/oxwrt").join(name), dir.join(name))
            .with_context(|| format!("copy the router's {name}"))?;
    }
    Ok(())
}

/// Writes the cookbook pair to `dir`, with the lab's `[control]` (its
/// address, rate limit and operator key) and without what no namespace
/// here can host; returns what was left out, and why.
fn cookbook(dir: &Path, lab_config: &Path) -> Result<Vec<String>> {
    let root = super::workspace_root()?;
    let mut config: toml::Table =
        toml::from_str(&fs::read_to_string(root.join("config/oxwrt.toml"))?)?;
    let lab: toml::Table = toml::from_str(&fs::read_to_string(lab_config)?)?;
    let mut stripped = Vec::new();
    for (section, why) in [
        ("wifi", "no radio in a namespace"),
        ("wireguard", "needs the wireguard module"),
        (
            "services",
            "their programs and root file systems are not installed",
        ),
    ] {
        if config.remove(section).is_some() {
            stripped.push(format!("[{section}]: {why}"));
        }
    }
    let networks = config
        .get_mut("networks")
        .and_then(toml::Value::as_array_mut)
        .context("the cookbook has no networks")?;
    for network in networks.iter_mut().filter_map(toml::Value::as_table_mut) {
        if network.remove("vlan").is_some() {
            stripped.push(format!(
                "the VLAN port of network {}: needs 802.1q",
                network
                    .get("name")
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ));
        }
    }
    // The WireGuard interface's network is gone from the zones too.
    for zone in config
        .get_mut("firewall")
        .and_then(|f| f.get_mut("zones"))
        .and_then(toml::Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(networks) = zone.get_mut("networks").and_then(toml::Value::as_array_mut) {
            networks.retain(|n| n.as_str() != Some("wg0"));
        }
    }
    let control = lab
        .get("control")
        .context("the lab's config has no [control]")?;
    config.insert("control".into(), control.clone());
    fs::create_dir_all(dir)?;
    fs::write(dir.join("oxwrt.toml"), toml::to_string(&config)?)?;
    let secrets = dir.join("oxwrt.secrets.toml");
    fs::copy(root.join("config/oxwrt.secrets.toml.example"), &secrets)?;
    fs::set_permissions(&secrets, fs::Permissions::from_mode(0o600))?;
    Ok(stripped)
}

/// Writes the blocklists `config` names, each [`BLOCKED`] names long (as
/// large as a common ad list), below the router's root, and points the
/// config at them there: the lab's daemons see the host's paths.
fn blocklists(lab: &Lab, config: &Path) -> Result<()> {
    let mut table: toml::Table = toml::from_str(&fs::read_to_string(config)?)?;
    let lists = table
        .get_mut("dns")
        .and_then(|d| d.get_mut("blocklists"))
        .and_then(toml::Value::as_array_mut);
    for list in lists.into_iter().flatten() {
        let name = list.as_str().context("a blocklist that is not a path")?;
        let path = lab.root().join(name.trim_start_matches('/'));
        let mut text = String::with_capacity(BLOCKED * 32);
        for i in 0..BLOCKED {
            let _ = writeln!(text, "0.0.0.0 ads{i}.tracker.example");
        }
        fs::create_dir_all(path.parent().context("a blocklist at /")?)?;
        fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        *list = path.display().to_string().into();
    }
    fs::write(config, toml::to_string(&table)?)?;
    Ok(())
}

/// The devices a config's networks name (`device`, `ports`).
fn devices(config: &Path) -> Result<Vec<String>> {
    let config: toml::Table = toml::from_str(&fs::read_to_string(config)?)?;
    let mut devices = Vec::new();
    for network in config
        .get("networks")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports = network.get("ports").and_then(toml::Value::as_array);
        let named = network
            .get("device")
            .into_iter()
            .chain(ports.into_iter().flatten());
        devices.extend(named.filter_map(toml::Value::as_str).map(str::to_owned));
    }
    Ok(devices)
}

/// ctld's pid: the process of that name in the router's namespace.
fn ctld_pid(lab: &Lab) -> Result<u32> {
    netns::pids(&lab.namespaces().router)?
        .into_iter()
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ctld")
        })
        .context("no ctld in the router")
}

/// CPU time of every thread of every process in the router's namespace
/// so far (`/proc/PID/task/TID/schedstat`: nanoseconds on a CPU).
fn router_cpu(lab: &Lab) -> Duration {
    let pids = netns::pids(&lab.namespaces().router).unwrap_or_default();
    let mut nanos = 0u64;
    for pid in pids {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let stat = fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            nanos += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(nanos)
}

/// The peer: dropbear on the router's LAN address, ssh as the operator.
struct Ssh {
    dir: PathBuf,
    common: Vec<String>,
}

impl Ssh {
    /// Makes both keys and pins each on the other side.
    fn new(dir: &Path) -> Result<Ssh> {
        let home = dir.join("root");
        fs::create_dir_all(home.join(".ssh"))?;
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700))?;
        fs::set_permissions(home.join(".ssh"), fs::Permissions::from_mode(0o700))?;
        let host_key = dir.join("host_key").display().to_string();
        run_ok(
            &["dropbearkey", "-t", "ed25519", "-f", &host_key],
            TOOL_TIMEOUT,
        )?;
        let public = run_ok(&["dropbearkey", "-y", "-f", &host_key], TOOL_TIMEOUT)?.stdout;
        let public = String::from_utf8_lossy(&public);
        let public = public
            .lines()
            .find(|l| l.starts_with("ssh-ed25519 "))
            .context("dropbearkey printed no public key")?;
        let known = dir.join("known_hosts");
        fs::write(&known, format!("[{ROUTER_LAN_ADDR}]:{SSH_PORT} {public}\n"))?;
        let id = dir.join("id_ed25519");
        let id_path = id.display().to_string();
        run_ok(
            &[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                &id_path,
            ],
            TOOL_TIMEOUT,
        )?;
        let authorized = home.join(".ssh/authorized_keys");
        fs::copy(id.with_extension("pub"), &authorized)?;
        fs::set_permissions(&authorized, fs::Permissions::from_mode(0o600))?;
        let common = [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", known.display()),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "HostKeyAlgorithms=ssh-ed25519",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
            &id.display().to_string(),
            "-p",
            &SSH_PORT.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        Ok(Ssh {
            dir: dir.to_owned(),
            common,
        })
    }

    /// Starts dropbear, with root's home seen as the directory holding the
    /// authorized key: a bind mount in a mount namespace of its own, so
    /// the host's `/root` is never touched.
    fn serve(&self) -> Result<Guard> {
        let script = r#"mount --bind "$0" /root && exec dropbear -F -E -s -p "$1" -r "$2" -P "$3""#;
        let log = fs::File::create(self.dir.join("dropbear.log"))?;
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .arg(self.dir.join("root"))
            .arg(format!("{ROUTER_LAN_ADDR}:{SSH_PORT}"))
            .arg(self.dir.join("host_key"))
            .arg(self.dir.join("dropbear.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start dropbear")?;
        let guard = Guard(child);
        wait_for("dropbear to let ssh in", Instant::now() + UP, || {
            self.run(&[]).ok()
        })
        .with_context(|| {
            let log = fs::read_to_string(self.dir.join("dropbear.log")).unwrap_or_default();
            format!("dropbear's log: {log}")
        })?;
        Ok(guard)
    }

    /// The options that send a command over the master connection.
    fn multiplexed(&self) -> [String; 4] {
        [
            "-o".into(),
            "ControlMaster=no".into(),
            "-o".into(),
            format!("ControlPath={}", self.dir.join("master").display()),
        ]
    }

    /// A master connection that later commands share.
    fn master(&self) -> Result<Guard> {
        let socket = self.dir.join("master");
        let child = Command::new("ssh")
            .args(&self.common)
            .args([
                "-N",
                "-o",
                "ControlMaster=yes",
                "-o",
                &format!("ControlPath={}", socket.display()),
                &format!("root@{ROUTER_LAN_ADDR}"),
            ])
            .stdin(Stdio::null())
            .spawn()
            .context("start ssh's master connection")?;
        let guard = Guard(child);
        wait_for("ssh's master connection", Instant::now() + UP, || {
            socket.exists().then_some(())
        })?;
        Ok(guard)
    }

    /// `ssh [extra] root@router true`.
    fn run(&self, extra: &[String]) -> Result<()> {
        let out = Command::new("ssh")
            .args(&self.common)
            .args(extra)
            .args([&format!("root@{ROUTER_LAN_ADDR}"), "true"])
            .stdin(Stdio::null())
            .output()
            .context("run ssh")?;
        ensure!(out.status.success(), "ssh: {}", describe(&out));
        Ok(())
    }
}

/// Wall times of `n` runs of `f`.
fn timed(n: u32, mut f: impl FnMut() -> Result<()>) -> Result<Latency> {
    let mut samples = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        f()?;
        samples.push(ms(start.elapsed()));
    }
    Ok(Latency::of(samples))
}

fn describe(out: &Output) -> String {
    format!(
        "{} {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn number(json: &serde_json::Value, key: &str) -> Result<f64> {
    json[key]
        .as_f64()
        .with_context(|| format!("no {key} in {json}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn table(r: &Report, args: &ControlArgs) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nround trips in the router's namespace over loopback, pinned ed25519 keys both ways (ms)\n"
    );
    let _ = writeln!(out, "{:<58} {:>8} {:>8} {:>8}", "", "p50", "p99", "max");
    let mut row = |what: String, l: Latency| {
        let _ = writeln!(
            out,
            "{what:<58} {:>8.3} {:>8.3} {:>8.3}",
            l.p50, l.p99, l.max
        );
    };
    row(
        format!(
            "ctld: status on one connection ({} calls, best run)",
            args.calls
        ),
        r.rtt,
    );
    let n = args.connections;
    row(
        format!("ctld: handshake and hello ({n} connections)"),
        r.connect,
    );
    row(
        format!("ctld: a whole `oxctl ping -c 1` run ({n} runs)"),
        r.oxctl_process,
    );
    row(
        format!("dropbear: `ssh router true` ({n} runs)"),
        r.ssh_process,
    );
    row(
        format!("dropbear: `ssh true` over a ControlMaster ({n} runs)"),
        r.ssh_channel,
    );
    let _ = writeln!(
        out,
        "\nresident memory: ctld {:.1} MB, dropbear's listener {:.1} MB (it forks per connection)",
        r.ctld_rss_kib as f64 / 1024.0,
        r.dropbear_rss_kib as f64 / 1024.0
    );
    let _ = writeln!(
        out,
        "\nconfig push and reload, ms over {} rounds: the wall time of each oxctl run (a whole\n\
         run, as in the row above), and the CPU time every process of the router spent in the reload",
        args.rounds
    );
    let _ = writeln!(
        out,
        "the cookbook with a blocklist of {BLOCKED} names, and without:"
    );
    for s in &r.stripped {
        let _ = writeln!(out, "  {s}");
    }
    let _ = writeln!(
        out,
        "\n{:<18} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "push p50", "push max", "reload p50", "reload max", "CPU p50"
    );
    for reloads in &r.reloads {
        let (push, reload, cpu) = (
            Latency::of(reloads.push.clone()),
            Latency::of(reloads.reload.clone()),
            Latency::of(reloads.cpu.clone()),
        );
        let _ = writeln!(
            out,
            "{:<18} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            reloads.name, push.p50, push.max, reload.p50, reload.max, cpu.p50
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookbook_loses_only_what_a_namespace_cannot_host() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let lab = dir.path().join("lab.toml");
        fs::write(&lab, format!("[control]\nlisten = [\"lan\"]\n{RATE}"))?;
        let stripped = cookbook(dir.path(), &lab)?;
        assert_eq!(stripped.len(), 4, "{stripped:?}");
        let config = dir.path().join("oxwrt.toml");
        if let Err(errors) = bus_schema::config::load_files(
            &config,
            &dir.path().join("oxwrt.secrets.toml"),
            bus_schema::config::MissingSecrets::Refuse,
        ) {
            panic!("the benchmark's cookbook is invalid:\n{errors}");
        }
        let text = fs::read_to_string(dir.path().join("oxwrt.toml"))?;
        assert!(!text.contains("wg0\"") && !text.contains("[wifi") && !text.contains("vlan"));
        assert!(text.contains("rate_limit = 100000"), "{text}");
        assert_eq!(devices(&config)?, ["eth1", "eth2", "eth0", "eth4", "eth6"]);
        Ok(())
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency::of((1..=100).rev().map(f64::from).collect());
        assert_eq!((l.p50, l.p99, l.max), (50.0, 99.0, 100.0));
        assert_eq!(Latency::of(Vec::new()).max, 0.0);
    }
}
