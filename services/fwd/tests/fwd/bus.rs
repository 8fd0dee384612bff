//! `org.oxwrt.Firewall1` on a private bus (dbus-daemon): the properties
//! follow the commits with `PropertiesChanged`, and `Counters()` reads the
//! kernel.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bus_schema::bus::{FIREWALL_PATH, Firewall1Proxy};
use futures_util::StreamExt;
use fwd::bus::{Firewall1, publish};
use fwd::core::Core;
use tokio::sync::Mutex;

use crate::netns::{netns, require_root};
use crate::{COUNTED, load, sections};

/// A private dbus-daemon, killed on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Bus {
    fn start() -> Option<Self> {
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        // Ready once it prints its address.
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut()?)
            .read_line(&mut line)
            .ok()?;
        Some(Self {
            child,
            address: line.trim().to_string(),
        })
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn firewall1_publishes_commits_and_reads_counters() {
    require_root!();
    let Some(bus) = Bus::start() else {
        oxwrt_lab::testing::skip("dbus-daemon is not installed");
        return;
    };
    let (router, peer) = (netns(), netns());
    router.veth("w0", &peer, "p0");
    router.ip(&["addr", "add", "10.9.0.1/24", "dev", "w0"]);
    peer.ip(&["addr", "add", "10.9.0.2/24", "dev", "p0"]);
    let first = sections(&load(COUNTED));
    let second = sections(&load(&COUNTED.replace("9999", "9998")));
    // The core's socket is made in the router namespace on first use.
    let core = router.run(move || {
        let mut core = Core::new();
        core.apply(&first).expect("apply");
        core
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let core = Arc::new(Mutex::new(core));
        let server = zbus::connection::Builder::address(bus.address.as_str())
            .serve_at(FIREWALL_PATH, Firewall1::new(core.clone()))
            .name("org.oxwrt.Firewall")
            .build()
            .await
            .expect("server");
        let stats = core.lock().await.stats().clone();
        publish(&server, &stats).await;
        let client = zbus::connection::Builder::address(bus.address.as_str())
            .build()
            .await
            .expect("client");
        let fw = Firewall1Proxy::new(&client).await.expect("proxy");
        assert_eq!(fw.apply_count().await.expect("count"), 1);
        let ruleset = fw.ruleset().await.expect("ruleset");
        assert!(ruleset.starts_with("table inet oxwrt {"), "{ruleset}");
        assert!(ruleset.contains("th dport 9999 counter accept comment \"count-udp\""));
        assert!(fw.last_apply_micros().await.expect("micros") > 0);

        let s = peer.run(|| UdpSocket::bind("10.9.0.2:0").expect("bind"));
        for _ in 0..2 {
            s.send_to(b"x", "10.9.0.1:9999").expect("send");
        }
        let counters = fw.counters().await.expect("counters");
        assert_eq!(counters.len(), 1);
        assert_eq!(
            (counters[0].rule.as_str(), counters[0].packets),
            ("count-udp", 2)
        );

        // A commit signals the changed properties.
        let mut changes = fw.receive_apply_count_changed().await;
        // The stream first yields the current value.
        let current = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("current value")
            .expect("stream");
        assert_eq!(current.get().await.expect("value"), 1);
        let stats = {
            let mut core = core.lock().await;
            core.apply(&second).expect("apply");
            core.stats().clone()
        };
        publish(&server, &stats).await;
        let changed = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("PropertiesChanged within 5 s")
            .expect("stream");
        assert_eq!(changed.get().await.expect("value"), 2);
        assert!(
            fw.ruleset()
                .await
                .expect("ruleset")
                .contains("th dport 9998")
        );
    });
}
