//! PID 1 duties: early mounts, the hostname, and the final sync and
//! reboot. Compiled and unit-tested everywhere; exercised only when
//! oxinit really is PID 1 (on hardware or in the image boot test).

use nix::{mount::MsFlags, sys::reboot::RebootMode};

use crate::paths::Paths;

/// One early mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyMount {
    /// Source (also the name shown in /proc/mounts).
    pub source: &'static str,
    /// Mount point.
    pub target: &'static str,
    /// File system type.
    pub fstype: &'static str,
    /// Options.
    pub data: Option<&'static str>,
}

/// Mounted in this order; an already mounted one (EBUSY) is fine.
pub const EARLY_MOUNTS: &[EarlyMount] = &[
    EarlyMount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        data: None,
    },
    EarlyMount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        data: None,
    },
    EarlyMount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        data: Some("mode=0755"),
    },
    EarlyMount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        data: Some("mode=0755"),
    },
    EarlyMount {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        data: Some("mode=1777"),
    },
    EarlyMount {
        source: "cgroup2",
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        data: None,
    },
];

/// Mounts [`EARLY_MOUNTS`]; returns the failures (logged by the caller).
pub fn mount_early() -> Vec<String> {
    let mut errors = Vec::new();
    for m in EARLY_MOUNTS {
        let _ = std::fs::create_dir_all(m.target);
        let flags = MsFlags::MS_NOSUID
            | if m.fstype == "devtmpfs" {
                MsFlags::empty()
            } else {
                MsFlags::MS_NODEV
            };
        match nix::mount::mount(Some(m.source), m.target, Some(m.fstype), flags, m.data) {
            Ok(()) | Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => errors.push(format!("mount {} on {}: {e}", m.fstype, m.target)),
        }
    }
    errors
}

/// `system.hostname` of an `oxwrt.toml` text, if set and sane.
pub fn hostname_from(text: &str) -> Option<String> {
    let table: toml::Table = text.parse().ok()?;
    let name = table.get("system")?.get("hostname")?.as_str()?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| name.to_owned())
}

/// The hostname from `$ETC/oxwrt.toml`, else `oxwrt`.
pub fn hostname(paths: &Paths) -> String {
    std::fs::read_to_string(paths.etc.join("oxwrt.toml"))
        .ok()
        .and_then(|t| hostname_from(&t))
        .unwrap_or_else(|| "oxwrt".to_owned())
}

/// Sets the hostname.
pub fn set_hostname(paths: &Paths) -> nix::Result<()> {
    nix::unistd::sethostname(hostname(paths))
}

/// The sysctls that make the machine a router: IPv4 and IPv6 forwarding.
/// oxinit sets them as PID 1 because they are root-owned files that no
/// daemon's uid may write (outside PID 1, whoever set up the network
/// namespace decides, as the lab does).
pub const FORWARDING: &[&str] = &[
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
];

/// br_netfilter's switches, when the module is loaded: off, so that
/// bridged IP does not pass the router's nftables hooks at the bridge
/// layer (a port forward to a host behind the same bridge port would be
/// bridged back out that port instead of routed).
pub const BRIDGE_NETFILTER: &[&str] = &[
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
    "/proc/sys/net/bridge/bridge-nf-call-arptables",
];

/// Turns forwarding on and br_netfilter's switches off; one message per
/// sysctl that failed (a missing br_netfilter switch is fine).
pub fn enable_forwarding() -> Vec<String> {
    let set = |path: &&str, value: &str| {
        std::fs::write(path, value)
            .err()
            .map(|e| format!("set {path} to {value}: {e}"))
    };
    FORWARDING
        .iter()
        .filter_map(|p| set(p, "1"))
        .chain(
            BRIDGE_NETFILTER
                .iter()
                .filter(|p| std::path::Path::new(p).exists())
                .filter_map(|p| set(p, "0")),
        )
        .collect()
}

/// How PID 1 ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// Restart the machine.
    Reboot,
    /// Stop the CPU.
    Halt,
    /// Power off.
    PowerOff,
}

impl Final {
    /// PID 1's signal contract: SIGTERM and SIGINT (ctrl-alt-del) reboot,
    /// SIGUSR1 halts, SIGUSR2 powers off (busybox init's convention).
    pub fn from_signal(sig: nix::sys::signal::Signal) -> Self {
        use nix::sys::signal::Signal;
        match sig {
            Signal::SIGUSR1 => Final::Halt,
            Signal::SIGUSR2 => Final::PowerOff,
            _ => Final::Reboot,
        }
    }

    fn mode(self) -> RebootMode {
        match self {
            Final::Reboot => RebootMode::RB_AUTOBOOT,
            Final::Halt => RebootMode::RB_HALT_SYSTEM,
            Final::PowerOff => RebootMode::RB_POWER_OFF,
        }
    }
}

/// Syncs and reboots (halts, powers off). Never returns while PID 1.
pub fn finish(how: Final) -> nix::Error {
    nix::unistd::sync();
    match nix::sys::reboot::reboot(how.mode()) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use nix::sys::signal::Signal;

    use super::*;

    #[test]
    fn hostname_comes_from_the_system_section() {
        assert_eq!(
            hostname_from("[system]\nhostname = \"gw-1\"\n").as_deref(),
            Some("gw-1")
        );
        assert_eq!(hostname_from("[system]\nhostname = \"bad name\"\n"), None);
        assert_eq!(hostname_from("[system]\n"), None);
        assert_eq!(hostname_from("not toml ["), None);
        let p = Paths::new(Path::new("/nonexistent-root"), "/bin".into());
        assert_eq!(hostname(&p), "oxwrt");
    }

    #[test]
    fn mounts_come_in_order_and_signals_map() {
        let targets: Vec<_> = EARLY_MOUNTS.iter().map(|m| m.target).collect();
        let pos = |t| targets.iter().position(|&x| x == t).expect("present");
        assert!(pos("/sys") < pos("/sys/fs/cgroup"));
        assert!(pos("/proc") == 0);
        assert_eq!(Final::from_signal(Signal::SIGTERM), Final::Reboot);
        assert_eq!(Final::from_signal(Signal::SIGINT), Final::Reboot);
        assert_eq!(Final::from_signal(Signal::SIGUSR1), Final::Halt);
        assert_eq!(Final::from_signal(Signal::SIGUSR2), Final::PowerOff);
    }
}
