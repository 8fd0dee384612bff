//! Container services from the config's `[[services]]`, in the lab router
//! with the real stack: added by a reload, an isolated one in a network
//! namespace of its own that reaches the LAN and sees none of the
//! router's interfaces, a host one in the router's; both in status, logs
//! and restart like the built-in daemons; removed by the next reload.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use bus_schema::bus::{Init1Proxy, ServiceStatus};
use oxwrt_lab::plan::{Plan, ROUTER_LAN_ADDR};
use oxwrt_lab::testing::{self, TestResult};
use oxwrt_lab::{wait_for, wait_until};

use crate::router::Router;
use crate::spine::BoxError;

const LIMIT: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(30);

const ISOLATED_ADDR: &str = "192.168.1.60";

fn services(rootfs: &str) -> String {
    format!(
        r#"
[[services]]
name = "rooted"
command = ["/bin/busybox", "sh", "-c", "echo root holds $(/bin/busybox ls /); exec /bin/busybox sleep 100000"]
rootfs = "{rootfs}"

[[services]]
name = "boxed"
command = ["/bin/sh", "-c", "echo boxed up; exec sleep 100000"]
network_mode = "isolated"
network = "lan"
address = "{ISOLATED_ADDR}/24"
memory_max = "32M"
restart = "always"

[[services]]
name = "hosted"
command = ["/bin/sleep", "100000"]
user = "7300:7301"
capabilities = ["CAP_NET_BIND_SERVICE"]
depends_on = ["boxed"]
"#
    )
}

/// A root directory holding busybox and the libraries it loads (as `ldd`
/// names them), at their own paths.
fn busybox_root(dir: &std::path::Path) -> TestResult {
    let busybox = "/usr/bin/busybox";
    let ldd = Command::new("ldd").arg(busybox).output()?;
    let mut files = vec![(busybox.to_string(), "/bin/busybox".to_string())];
    for line in String::from_utf8(ldd.stdout)?.lines() {
        let path = line
            .split("=>")
            .last()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        if path.starts_with('/') {
            files.push((path.to_string(), path.to_string()));
        }
    }
    for (from, to) in files {
        let to = dir.join(to.trim_start_matches('/'));
        fs::create_dir_all(to.parent().ok_or("no parent")?)?;
        fs::copy(from, to)?;
    }
    Ok(())
}

/// `argv` in `pid`'s network namespace.
fn in_netns(pid: u32, argv: &[&str]) -> Result<String, BoxError> {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg("--")
        .args(argv)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{argv:?} in {pid}'s netns: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The inode of a network namespace file: equal means the same namespace.
fn netns_id(path: &str) -> Result<u64, BoxError> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata(path)?.ino())
}

fn status_field(pid: u32, key: &str) -> Result<String, BoxError> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default())
}

#[test]
fn container_services_come_and_go_with_the_config_an_isolated_one_on_the_lan_only() {
    testing::run(LIMIT, |scope| {
        let router = Router::boot(scope, 1)?;
        let init = router.rt.block_on(Init1Proxy::new(&router.conn))?;
        let service = |name: &str| -> Option<ServiceStatus> {
            let all = router.rt.block_on(init.list_services()).ok()?;
            all.into_iter().find(|s| s.name == name)
        };
        let running = |name: &str| -> Result<ServiceStatus, BoxError> {
            wait_for(&format!("{name} to run"), Instant::now() + WAIT, || {
                service(name).filter(|s| s.state == "running" && s.pid > 0)
            })
            .map_err(|e| {
                let logs = router.rt.block_on(init.logs(name, 5));
                format!("{e}: {:?}, its log: {logs:?}", service(name)).into()
            })
        };

        let rootfs = router.lab.root().join("rootfs");
        busybox_root(&rootfs)?;
        router.reload_with("", &services(&rootfs.display().to_string()))?;
        let boxed = running("boxed")?;
        let hosted = running("hosted")?;

        // Its own root: what it lists is the directory it was given.
        let rooted = running("rooted")?;
        assert_eq!(fs::read_link(format!("/proc/{}/root", rooted.pid))?, rootfs);
        let logs = wait_for("rooted's listing", Instant::now() + WAIT, || {
            let logs = router.rt.block_on(init.logs("rooted", 10)).ok()?;
            logs.into_iter().find(|l| l.contains("root holds"))
        })?;
        assert!(
            logs.contains("root holds bin") && !logs.contains("usr"),
            "{logs}"
        );

        // Isolated: a namespace of its own, holding only its loopback and
        // its end of the pair, with its address; the router's interfaces
        // (wan0, lan0, br-lan) are not there.
        let router_ns = netns_id(&format!("/run/netns/{}", router.ns().router))?;
        assert_ne!(netns_id(&format!("/proc/{}/ns/net", boxed.pid))?, router_ns);
        let links: Vec<String> = in_netns(boxed.pid, &["ip", "-o", "link"])?
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect();
        assert_eq!(links, ["lo", "eth0"], "the isolated service's interfaces");
        let addrs = in_netns(boxed.pid, &["ip", "-o", "-4", "addr", "show", "eth0"])?;
        assert!(addrs.contains(&format!("{ISOLATED_ADDR}/24")), "{addrs}");
        // It reaches a LAN client and the router, through the LAN bridge.
        let client = Plan::lan_addr(0).to_string();
        for peer in [client.as_str(), &ROUTER_LAN_ADDR.to_string()] {
            in_netns(boxed.pid, &["busybox", "ping", "-c", "1", "-W", "3", peer])?;
        }
        let ports = router.ip(&["-o", "link", "show", "master", "br-lan"])?;
        assert!(ports.contains("oxc-boxed"), "{ports}");
        // Its own uid from the range, no capability.
        let uid = status_field(boxed.pid, "Uid:")?;
        let first: u32 = uid.split(' ').next().unwrap_or("").parse()?;
        assert!((7200..8000).contains(&first), "{uid}");
        assert_eq!(status_field(boxed.pid, "CapEff:")?, "0000000000000000");
        assert_eq!(status_field(boxed.pid, "NoNewPrivs:")?, "1");
        // Its cgroup holds the config's memory limit.
        if crate::limits::no_cgroups().is_none() {
            let (memory, _) = crate::limits::limits(boxed.pid)?;
            assert_eq!(memory, (32u64 << 20).to_string(), "boxed's memory_max");
        }

        // Host mode: the router's namespace, the uid and gid it was given.
        assert_eq!(
            netns_id(&format!("/proc/{}/ns/net", hosted.pid))?,
            router_ns
        );
        assert_eq!(status_field(hosted.pid, "Uid:")?, "7300 7300 7300 7300");
        assert_eq!(status_field(hosted.pid, "Gid:")?, "7301 7301 7301 7301");
        // Exactly the capabilities the config gives it (bit 10).
        for set in ["CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(status_field(hosted.pid, set)?, "0000000000000400", "{set}");
        }

        // Logs and restart as for any service; the namespace stays.
        let logs = router.rt.block_on(init.logs("boxed", 10))?;
        assert!(logs.iter().any(|l| l.contains("boxed up")), "{logs:?}");
        router.rt.block_on(init.restart("boxed"))?;
        let again = wait_for("boxed to restart", Instant::now() + WAIT, || {
            service("boxed").filter(|s| s.state == "running" && s.pid != boxed.pid)
        })?;
        assert_eq!(again.restarts, 1);
        in_netns(
            again.pid,
            &["busybox", "ping", "-c", "1", "-W", "3", &client],
        )?;

        // Removed from the config: stopped, gone from the list, its link
        // gone from the bridge.
        let path = router.lab.root().join("etc/oxwrt/oxwrt.toml");
        let text = fs::read_to_string(&path)?;
        router.reload_with(&text[text.find("[[services]]").ok_or("no services")?..], "")?;
        wait_until("both to be gone", Instant::now() + WAIT, || {
            ["boxed", "hosted", "rooted"]
                .iter()
                .all(|n| service(n).is_none())
        })?;
        wait_until("the isolated link to go", Instant::now() + WAIT, || {
            router
                .ip(&["-o", "link"])
                .is_ok_and(|l| !l.contains("oxc-boxed"))
        })?;
        assert!(
            fs::metadata(format!("/proc/{}", again.pid)).is_err(),
            "still running"
        );
        Ok(())
    });
}
