//! The router's WAN side until netd exists: ISC dhclient on `wan0`, with a
//! configuration and a script of the lab's own, so that the lease only ever
//! configures `wan0` inside the router namespace (Debian's dhclient-script
//! would rewrite the host's /etc/resolv.conf).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::plan::ROUTER_WAN_IF;

/// Where the WAN DHCP client's files live inside a lab directory.
#[derive(Debug, Clone)]
pub struct WanFiles {
    /// dhclient.conf.
    pub conf: PathBuf,
    /// The hook script dhclient runs.
    pub script: PathBuf,
    /// The lease database.
    pub leases: PathBuf,
    /// The pid file.
    pub pid: PathBuf,
}

impl WanFiles {
    /// The WAN client's files under `dir`.
    pub fn under(dir: &Path) -> WanFiles {
        WanFiles {
            conf: dir.join("dhclient.conf"),
            script: dir.join("dhclient-script"),
            leases: dir.join("dhclient.leases"),
            pid: dir.join("dhclient.pid"),
        }
    }
}

/// dhclient.conf: ask for what a router's WAN needs, retry quickly.
pub const DHCLIENT_CONF: &str = "\
# Written by oxwrt-lab.
request subnet-mask, broadcast-address, routers, domain-name-servers, domain-name;
initial-interval 1;
timeout 30;
retry 5;
";

/// The dhclient hook script. It only adds and removes the lease's address
/// and default route on the lease's interface, with `ip` at `ip_path`.
pub fn dhclient_script(ip_path: &Path) -> String {
    let ip = ip_path.display();
    format!(
        r#"#!/bin/sh
# Written by oxwrt-lab. Configures only "$interface" inside the lab's router
# namespace: never the host's DNS settings or anything else.
ip={ip}
case "$reason" in
PREINIT)
    "$ip" link set dev "$interface" up
    ;;
BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
        "$ip" -4 addr flush dev "$interface"
    fi
    "$ip" -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    for router in $new_routers; do
        "$ip" -4 route replace default via "$router" dev "$interface"
        break
    done
    ;;
EXPIRE|FAIL|RELEASE|STOP)
    "$ip" -4 addr flush dev "$interface"
    ;;
esac
exit 0
"#
    )
}

/// The dhclient command line: foreground (`-d`) so the lab tracks its pid,
/// every file in the lab directory.
pub fn dhclient_argv(dhclient: &Path, files: &WanFiles) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![dhclient.into(), "-4".into(), "-d".into(), "-v".into()];
    for (flag, path) in [
        ("-cf", &files.conf),
        ("-sf", &files.script),
        ("-lf", &files.leases),
        ("-pf", &files.pid),
    ] {
        argv.push(flag.into());
        argv.push(path.into());
    }
    argv.push(ROUTER_WAN_IF.into());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_touches_only_the_interface() {
        let script = dhclient_script(Path::new("/usr/sbin/ip"));
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("ip=/usr/sbin/ip\n"));
        assert!(!script.contains("resolv"));
        assert!(!script.contains("/etc/"));
    }

    #[test]
    fn dhclient_uses_only_lab_files() {
        let files = WanFiles::under(Path::new("/lab/wan"));
        let argv: Vec<String> = dhclient_argv(Path::new("/sbin/dhclient"), &files)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(argv.last().map(String::as_str), Some("wan0"));
        for (flag, path) in [
            ("-cf", "/lab/wan/dhclient.conf"),
            ("-sf", "/lab/wan/dhclient-script"),
            ("-lf", "/lab/wan/dhclient.leases"),
            ("-pf", "/lab/wan/dhclient.pid"),
        ] {
            let at = argv.iter().position(|a| a == flag);
            assert_eq!(
                at.and_then(|i| argv.get(i + 1)).map(String::as_str),
                Some(path)
            );
        }
    }
}
