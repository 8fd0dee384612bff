//! Named network namespaces and the links between them, through `ip`.
//!
//! Links are always created directly inside their namespaces
//! (`ip link add NAME netns A type veth peer name NAME2 netns B`), so nothing
//! ever appears in the host's namespace.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::exec::{self, ExecError, ProcId, run, run_ok};

/// Deadline for one `ip` invocation.
pub const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of namespace and link operations.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// An `ip` command failed.
    #[error("cannot {what}: {source}")]
    Ip { what: String, source: ExecError },
    /// Processes in a namespace survived SIGKILL.
    #[error("processes {pids:?} in namespace {ns} survived SIGKILL")]
    KillPids { ns: String, pids: Vec<u32> },
}

fn ip(what: impl FnOnce() -> String, args: &[&str]) -> Result<(), NetnsError> {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(args);
    run_ok(&argv, IP_TIMEOUT)
        .map(drop)
        .map_err(|source| NetnsError::Ip {
            what: what(),
            source,
        })
}

/// Whether named namespace `ns` exists.
pub fn exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// The named network namespaces (`ip netns list`).
pub fn list() -> Result<Vec<String>, NetnsError> {
    let out = run_ok(&["ip", "netns", "list"], IP_TIMEOUT).map_err(|source| NetnsError::Ip {
        what: "list network namespaces".into(),
        source,
    })?;
    Ok(exec::lossy(out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Creates named namespace `ns` and brings its loopback up.
pub fn add(ns: &str) -> Result<(), NetnsError> {
    ip(|| format!("create namespace {ns}"), &["netns", "add", ns])?;
    ip(
        || format!("bring up lo in {ns}"),
        &["-n", ns, "link", "set", "dev", "lo", "up"],
    )
}

/// Deletes named namespace `ns` after killing every process in it; a
/// namespace that does not exist is not an error.
pub fn delete(ns: &str) -> Result<(), NetnsError> {
    if !exists(ns) {
        return Ok(());
    }
    kill_all(ns)?;
    ip(|| format!("delete namespace {ns}"), &["netns", "del", ns])
}

/// The processes in namespace `ns` (`ip netns pids`).
pub fn pids(ns: &str) -> Result<Vec<u32>, NetnsError> {
    let out =
        run_ok(&["ip", "netns", "pids", ns], IP_TIMEOUT).map_err(|source| NetnsError::Ip {
            what: format!("list processes in {ns}"),
            source,
        })?;
    Ok(exec::lossy(out.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect())
}

/// Stops every process in namespace `ns`: SIGTERM, a grace period, SIGKILL.
pub fn kill_all(ns: &str) -> Result<(), NetnsError> {
    let victims: Vec<ProcId> = pids(ns)?.into_iter().filter_map(ProcId::of).collect();
    if victims.is_empty() {
        return Ok(());
    }
    let signal_all = |signal| {
        for id in victims.iter().filter(|id| id.is_alive()) {
            if let Ok(raw) = i32::try_from(id.pid) {
                let _ = kill(Pid::from_raw(raw), signal);
            }
        }
    };
    let all_gone = |grace: Duration| {
        crate::wait::wait_until("processes to exit", Instant::now() + grace, || {
            victims.iter().all(|id| !id.is_alive())
        })
        .is_ok()
    };
    signal_all(Signal::SIGTERM);
    if all_gone(exec::STOP_GRACE) {
        return Ok(());
    }
    signal_all(Signal::SIGKILL);
    if all_gone(Duration::from_secs(2)) {
        return Ok(());
    }
    Err(NetnsError::KillPids {
        ns: ns.to_owned(),
        pids: victims
            .iter()
            .filter(|id| id.is_alive())
            .map(|id| id.pid)
            .collect(),
    })
}

/// Creates veth pair `a_if` (in `a_ns`) ↔ `b_if` (in `b_ns`); both ends are
/// created in their namespaces directly, then brought up.
pub fn veth(a_ns: &str, a_if: &str, b_ns: &str, b_if: &str) -> Result<(), NetnsError> {
    ip(
        || format!("create veth {a_ns}:{a_if} <-> {b_ns}:{b_if}"),
        &[
            "link", "add", "name", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if,
            "netns", b_ns,
        ],
    )?;
    link_up(a_ns, a_if)?;
    link_up(b_ns, b_if)
}

/// Brings interface `dev` in `ns` up.
pub fn link_up(ns: &str, dev: &str) -> Result<(), NetnsError> {
    ip(
        || format!("bring up {dev} in {ns}"),
        &["-n", ns, "link", "set", "dev", dev, "up"],
    )
}

/// Creates bridge `br` in `ns` without STP, so its ports forward at once.
pub fn bridge(ns: &str, br: &str) -> Result<(), NetnsError> {
    ip(
        || format!("create bridge {br} in {ns}"),
        &[
            "-n",
            ns,
            "link",
            "add",
            "name",
            br,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
    )?;
    link_up(ns, br)
}

/// Makes `dev` a port of bridge `br`, both in `ns`.
pub fn enslave(ns: &str, dev: &str, br: &str) -> Result<(), NetnsError> {
    ip(
        || format!("add {dev} to {br} in {ns}"),
        &["-n", ns, "link", "set", "dev", dev, "master", br],
    )
}

/// Adds `addr/prefix` to `dev` in `ns`.
pub fn add_addr(ns: &str, dev: &str, addr: &str, prefix: u8) -> Result<(), NetnsError> {
    let cidr = format!("{addr}/{prefix}");
    ip(
        || format!("add {cidr} to {dev} in {ns}"),
        &["-n", ns, "addr", "add", &cidr, "dev", dev],
    )
}

/// Sets the default route in `ns` via `gateway`.
pub fn default_route(ns: &str, gateway: &str) -> Result<(), NetnsError> {
    ip(
        || format!("set the default route in {ns} via {gateway}"),
        &["-n", ns, "route", "replace", "default", "via", gateway],
    )
}

/// The IPv4 addresses (without prefix) on `dev` in `ns`.
pub fn ipv4_addrs(ns: &str, dev: &str) -> Result<Vec<String>, NetnsError> {
    let out = run_ok(
        &["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", dev],
        IP_TIMEOUT,
    )
    .map_err(|source| NetnsError::Ip {
        what: format!("read addresses of {dev} in {ns}"),
        source,
    })?;
    Ok(parse_inet(&exec::lossy(out.stdout)))
}

/// Addresses from `ip -o -4 addr` output: the word after each `inet`.
fn parse_inet(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if word == "inet" {
                if let Some(cidr) = words.next() {
                    out.push(cidr.split('/').next().unwrap_or(cidr).to_owned());
                }
            }
        }
    }
    out
}

/// Sets sysctl `key` to `value` inside `ns` (sysctls under net. are per
/// namespace).
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), NetnsError> {
    let setting = format!("{key}={value}");
    exec::ns_exec_ok(ns, &["sysctl", "-q", "-w", &setting], IP_TIMEOUT)
        .map(drop)
        .map_err(|source| NetnsError::Ip {
            what: format!("set {setting} in {ns}"),
            source,
        })
}

/// Whether sysctl `key` exists inside `ns` (`net.bridge.*` only with
/// br_netfilter loaded).
pub fn sysctl_exists(ns: &str, key: &str) -> bool {
    exec::ns_exec_ok(ns, &["sysctl", "-n", key], IP_TIMEOUT).is_ok()
}

/// Whether something in `ns` listens on `addr:port` (`proto` is `tcp` or
/// `udp`), according to `ss`.
pub fn listening(ns: &str, proto: &str, addr: &str, port: u16) -> bool {
    let flags = if proto == "udp" { "-Hlun" } else { "-Hltn" };
    let Ok(out) = run(&["ss", "-N", ns, flags], IP_TIMEOUT) else {
        return false;
    };
    out.status.success() && ss_has_listener(&exec::lossy(out.stdout), addr, port)
}

/// Whether `ss -Hln` output lists a local address `addr:port`, possibly
/// scoped to a device (`addr%dev:port`), or the wildcard address.
fn ss_has_listener(text: &str, addr: &str, port: u16) -> bool {
    let suffix = format!(":{port}");
    text.lines().any(|line| {
        line.split_whitespace().nth(3).is_some_and(|local| {
            local.strip_suffix(&suffix).is_some_and(|host| {
                let host = host.split('%').next().unwrap_or(host);
                host == addr || host == "0.0.0.0" || host == "*"
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_addr_output() {
        let text = "5: wan0    inet 100.64.0.150/24 brd 100.64.0.255 scope global wan0\\       valid_lft forever preferred_lft forever\n";
        assert_eq!(parse_inet(text), ["100.64.0.150"]);
        assert!(parse_inet("").is_empty());
    }

    #[test]
    fn parses_ss_output() {
        let text = "UNCONN 0      0         100.64.0.1:53        0.0.0.0:*\n\
                    UNCONN 0      0     0.0.0.0%eth0:67        0.0.0.0:*\n\
                    LISTEN 0      5         100.64.0.1:80        0.0.0.0:*\n";
        assert!(ss_has_listener(text, "100.64.0.1", 53));
        assert!(ss_has_listener(text, "100.64.0.1", 67));
        assert!(ss_has_listener(text, "100.64.0.1", 80));
        assert!(!ss_has_listener(text, "100.64.0.1", 8080));
        assert!(!ss_has_listener(text, "100.64.0.1", 5));
    }
}
