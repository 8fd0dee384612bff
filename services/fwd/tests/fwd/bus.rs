//! `org.oxwrt.Firewall1` on a private bus (dbus-daemon): the properties
//! follow the commits with `PropertiesChanged`, and `Counters()` reads the
//! kernel.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use bus_schema::bus::{FIREWALL_PATH, Firewall1Proxy};
use futures_util::StreamExt;
use fwd::bus::{Firewall1, publish};
use fwd::core::Core;
use oxwrt_lab::testing::PrivateBus;
use tokio::sync::Mutex;

use crate::netns::{netns, require_root};
use crate::{COUNTED, load, sections};

#[test]
fn firewall1_publishes_commits_and_reads_counters() {
    require_root!();
    let Some(bus) = PrivateBus::start() else {
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
        let iface = Firewall1::new(core.clone());
        let server = bus.serve(FIREWALL_PATH, "org.oxwrt.Firewall", iface).await;
        let stats = core.lock().await.stats().clone();
        publish(&server, &stats).await;
        let fw = Firewall1Proxy::new(&bus.client().await)
            .await
            .expect("proxy");
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
