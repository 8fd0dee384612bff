//! What the lab needs from the machine: root, network namespaces, veth and
//! bridges in the kernel, and a handful of programs.
//!
//! A missing kernel feature or missing privileges make the lab
//! [unsupported](SupportError::Unsupported) (tests skip and say why); a
//! missing program is an error, since `cargo xtask test` installs them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::exec;
use crate::netns;

/// Errors of checking the machine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SupportError {
    /// The lab cannot run here at all.
    #[error("{reason}")]
    Unsupported { reason: String },
    /// A program the lab runs is not installed.
    #[error("{tool} not found in PATH, /usr/sbin or /sbin (Debian package {package})")]
    FindTool {
        tool: &'static str,
        package: &'static str,
    },
}

/// Absolute paths of the programs the lab runs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// iproute2's `ip`.
    pub ip: PathBuf,
    /// iproute2's `ss`.
    pub ss: PathBuf,
    /// procps's `sysctl`.
    pub sysctl: PathBuf,
    /// The ISP's DHCP and DNS server.
    pub dnsmasq: PathBuf,
    /// The router's WAN DHCP client (until netd exists).
    pub dhclient: PathBuf,
    /// HTTP client for the upstream check.
    pub curl: PathBuf,
    /// DNS client for the upstream check.
    pub dig: PathBuf,
    /// ping, and httpd when there is no python3.
    pub busybox: PathBuf,
    /// The system python3 (not a per-user shim), for the HTTP server.
    pub python3: Option<PathBuf>,
}

/// Finds executable `name` in PATH, then in /usr/sbin, /sbin, /usr/bin, /bin.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Tools {
    /// Finds every program the lab needs.
    pub fn find() -> Result<Tools, SupportError> {
        let need = |tool: &'static str, package: &'static str| {
            find_tool(tool).ok_or(SupportError::FindTool { tool, package })
        };
        Ok(Tools {
            ip: need("ip", "iproute2")?,
            ss: need("ss", "iproute2")?,
            sysctl: need("sysctl", "procps")?,
            dnsmasq: need("dnsmasq", "dnsmasq-base")?,
            dhclient: need("dhclient", "isc-dhcp-client")?,
            curl: need("curl", "curl")?,
            dig: need("dig", "bind9-dnsutils")?,
            busybox: need("busybox", "busybox")?,
            python3: ["/usr/bin/python3", "/bin/python3"]
                .map(PathBuf::from)
                .into_iter()
                .find(|p| is_executable(p)),
        })
    }
}

/// Checks, once per process, that this process may create network
/// namespaces and that the kernel has veth and bridges, by trying them in a
/// throw-away namespace.
pub fn check_kernel() -> Result<(), SupportError> {
    static RESULT: OnceLock<Result<(), SupportError>> = OnceLock::new();
    RESULT.get_or_init(probe).clone()
}

fn probe() -> Result<(), SupportError> {
    let unsupported = |reason: String| SupportError::Unsupported { reason };
    if !nix::unistd::geteuid().is_root() {
        return Err(unsupported(
            "not root: the lab needs CAP_SYS_ADMIN and CAP_NET_ADMIN for network namespaces".into(),
        ));
    }
    if find_tool("ip").is_none() {
        return Err(SupportError::FindTool {
            tool: "ip",
            package: "iproute2",
        });
    }
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let ns = format!(
        "oxl-probe-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let result = try_features(&ns).map_err(unsupported);
    // Best effort: nothing is running in it.
    let _ = netns::delete(&ns);
    result
}

/// Deletes probe namespaces left by processes that died while probing.
pub fn reap_probes() {
    let Ok(all) = netns::list() else {
        return;
    };
    for ns in all {
        let pid = ns
            .strip_prefix("oxl-probe-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| exec::ProcId::of(pid).is_none()) {
            let _ = netns::delete(&ns);
        }
    }
}

fn try_features(ns: &str) -> Result<(), String> {
    let ip = |args: &[&str]| {
        let mut argv = vec!["ip"];
        argv.extend_from_slice(args);
        exec::run_ok(&argv, netns::IP_TIMEOUT).map(drop)
    };
    ip(&["netns", "add", ns]).map_err(|e| format!("cannot create network namespaces: {e}"))?;
    ip(&[
        "-n", ns, "link", "add", "name", "p0", "type", "veth", "peer", "name", "p1",
    ])
    .map_err(|e| format!("kernel lacks veth support: {e}"))?;
    ip(&["-n", ns, "link", "add", "name", "br0", "type", "bridge"])
        .map_err(|e| format!("kernel lacks bridge support: {e}"))?;
    ip(&["-n", ns, "link", "set", "dev", "p0", "master", "br0"])
        .map_err(|e| format!("cannot add a veth to a bridge: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("surely-no-such-program-oxwrt").is_none());
    }
}
