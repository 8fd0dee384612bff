//! `org.oxwrt.Dns1` on a private bus (dbus-daemon): cache statistics,
//! upstreams, and `Flush()`.

use std::time::Duration;

use bus_schema::bus::{DNS_PATH, Dns1Proxy};
use dnsd::bus::Dns1;

use crate::support::{Dnsd, Net, ROUTER, UPSTREAM, Upstream, config, dig, timed};

#[test]
fn dns1_reports_the_cache_and_upstreams_and_flushes() {
    timed(Duration::from_secs(60), || {
        let Some(bus) = oxwrt_lab::testing::PrivateBus::start() else {
            return;
        };
        let net = Net::new();
        let _upstream = Upstream::start(&net, &["www.up.test,203.0.113.7"]);
        let dns = format!("upstreams = [{{ address = \"{UPSTREAM}\" }}]\ncache_size = 500");
        let dnsd = Dnsd::start(&net.router, &config(&dns));
        for _ in 0..2 {
            assert_eq!(
                dig(&net.client, ROUTER, &["www.up.test"]).answers,
                ["203.0.113.7"]
            );
        }
        let shared = dnsd.shared.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let _server = bus
                    .serve(DNS_PATH, "org.oxwrt.Dns", Dns1::new(shared))
                    .await;
                let dns = Dns1Proxy::new(&bus.client().await).await.expect("proxy");
                let stats = dns.cache_stats().await.expect("stats");
                // One entry: dnsmasq's A record and its zone's NS record.
                assert_eq!(
                    (stats.hits, stats.misses, stats.size, stats.capacity),
                    (1, 1, 2, 500)
                );
                let ups = dns.upstreams().await.expect("upstreams");
                assert_eq!(ups.len(), 1);
                assert_eq!(ups[0].address, format!("{UPSTREAM}:53"));
                assert_eq!(
                    (ups[0].source.as_str(), ups[0].health.as_str()),
                    ("config", "up")
                );
                assert_eq!(ups[0].queries, 1);
                // The test runs as root, who may flush.
                assert_eq!(dns.flush().await.expect("flush"), 1);
                assert_eq!(dns.cache_stats().await.expect("stats").size, 0);
            });
    });
}
