//! Forwarding to dnsmasq: answers, the cache (the upstream sees one
//! query), negative caching, blocklists, truncation and TCP, rebind
//! protection.

use std::io::Write;
use std::time::Duration;

use crate::support::{Dnsd, Net, ROUTER, UPSTREAM, Upstream, config, dig, timed};

const LIMIT: Duration = Duration::from_secs(90);

/// 100 addresses for `big.up.test`: about 1.7 kB, more than our 1232-byte
/// EDNS size, so dnsmasq truncates its UDP answer too.
fn records() -> Vec<String> {
    let mut r = vec![
        "www.up.test,203.0.113.7".to_string(),
        "evil.up.test,192.168.0.66".to_string(),
        "x.lan-ok.up.test,192.168.0.77".to_string(),
        "sentinel.up.test,203.0.113.99".to_string(),
    ];
    r.extend((1..=100).map(|i| format!("big.up.test,198.51.100.{i}")));
    r
}

fn start(net: &Net, extra: &str) -> (Upstream, Dnsd) {
    let records = records();
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let upstream = Upstream::start(net, &refs);
    let dns = format!(
        "upstreams = [{{ address = \"{UPSTREAM}\" }}]\nrebind_allow = [\"lan-ok.up.test\"]\n{extra}"
    );
    let dnsd = Dnsd::start(&net.router, &config(&dns));
    (upstream, dnsd)
}

#[test]
fn forwarded_answers_are_cached_positive_and_negative() {
    timed(LIMIT, || {
        let net = Net::new();
        let (upstream, dnsd) = start(&net, "");
        let ask = |args: &[&str]| dig(&net.client, ROUTER, args);

        let first = ask(&["www.up.test"]);
        assert_eq!(first.status, "NOERROR", "{}", first.text);
        assert_eq!(first.answers, ["203.0.113.7"]);
        assert!(first.flags.contains(&"ra".to_string()));
        assert!(
            first.text.contains("udp: 1232"),
            "EDNS size advertised: {}",
            first.text
        );
        let second = ask(&["WWW.up.test"]);
        assert_eq!(second.answers, ["203.0.113.7"]);
        assert!(second.ttls[0] <= first.ttls[0]);

        let nx = ask(&["nope.up.test"]);
        assert_eq!(nx.status, "NXDOMAIN", "{}", nx.text);
        assert_eq!(nx.authority, ["SOA"]);
        assert_eq!(ask(&["nope.up.test"]).status, "NXDOMAIN");

        // Everything before the sentinel is in dnsmasq's log by now.
        assert_eq!(ask(&["sentinel.up.test"]).answers, ["203.0.113.99"]);
        upstream.wait_logged("sentinel.up.test");
        assert_eq!(
            upstream.queries("www.up.test"),
            1,
            "second query served from the cache"
        );
        assert_eq!(
            upstream.queries("nope.up.test"),
            1,
            "NXDOMAIN served from the cache"
        );
        let stats = dnsd.shared.lock().resolver.stats();
        assert_eq!((stats.hits, stats.misses), (2, 3));
    });
}

#[test]
fn large_answers_are_truncated_over_udp_and_whole_over_tcp() {
    timed(LIMIT, || {
        let net = Net::new();
        let (upstream, _dnsd) = start(&net, "");
        let ask = |args: &[&str]| dig(&net.client, ROUTER, args);

        let udp = ask(&["+notcp", "+noedns", "+ignore", "big.up.test"]);
        assert_eq!(udp.status, "NOERROR", "{}", udp.text);
        assert!(udp.flags.contains(&"tc".to_string()), "{}", udp.text);
        assert!(udp.answers.is_empty());
        // dnsmasq truncated its UDP answer to us too: dnsd asked again
        // over TCP (both show in the log).
        assert_eq!(upstream.queries("big.up.test"), 2);

        let tcp = ask(&["+tcp", "big.up.test"]);
        assert_eq!(tcp.answers.len(), 100, "{}", tcp.text);
        assert!(!tcp.flags.contains(&"tc".to_string()));
        // EDNS with 1232 bytes: still too big for UDP.
        let edns = ask(&["+notcp", "+ignore", "+bufsize=4096", "big.up.test"]);
        assert!(edns.flags.contains(&"tc".to_string()), "{}", edns.text);
        // dig retries over TCP by itself and gets everything.
        assert_eq!(ask(&["big.up.test"]).answers.len(), 100);
        // A TCP client's question that misses the cache is forwarded.
        assert_eq!(ask(&["+tcp", "www.up.test"]).answers, ["203.0.113.7"]);
        assert_eq!(upstream.queries("www.up.test"), 1);
        // A small answer fits without EDNS.
        assert_eq!(ask(&["+noedns", "www.up.test"]).answers, ["203.0.113.7"]);
    });
}

#[test]
fn blocked_domains_and_their_subdomains() {
    timed(LIMIT, || {
        let mut list = tempfile::NamedTempFile::new().expect("blocklist");
        writeln!(list, "# ads\nads.up.test\n0.0.0.0 tracker.up.test").expect("write");
        let extra = format!("blocklists = [\"{}\"]", list.path().display());
        let net = Net::new();
        let (upstream, _dnsd) = start(&net, &extra);
        let ask = |args: &[&str]| dig(&net.client, ROUTER, args);
        for name in ["ads.up.test", "x.ads.up.test", "a.b.tracker.up.test"] {
            assert_eq!(ask(&[name]).status, "NXDOMAIN", "{name}");
        }
        assert_eq!(ask(&["www.up.test"]).answers, ["203.0.113.7"]);
        upstream.wait_logged("www.up.test");
        assert_eq!(upstream.queries("ads.up.test"), 0);
        assert_eq!(upstream.queries("x.ads.up.test"), 0);
    });
}

#[test]
fn blocked_domains_answer_zero_when_configured() {
    timed(LIMIT, || {
        let mut list = tempfile::NamedTempFile::new().expect("blocklist");
        writeln!(list, "ads.up.test").expect("write");
        let extra = format!(
            "blocklists = [\"{}\"]\nblock_response = \"zero\"",
            list.path().display()
        );
        let net = Net::new();
        let (_upstream, _dnsd) = start(&net, &extra);
        let ask = |args: &[&str]| dig(&net.client, ROUTER, args);
        assert_eq!(ask(&["x.ads.up.test", "A"]).answers, ["0.0.0.0"]);
        assert_eq!(ask(&["x.ads.up.test", "AAAA"]).answers, ["::"]);
    });
}

#[test]
fn rebind_protection_refuses_private_answers_for_public_names() {
    timed(LIMIT, || {
        let net = Net::new();
        let (_upstream, _dnsd) = start(&net, "");
        let ask = |args: &[&str]| dig(&net.client, ROUTER, args);
        let evil = ask(&["evil.up.test"]);
        assert_eq!(evil.status, "REFUSED", "{}", evil.text);
        assert!(evil.answers.is_empty());
        assert_eq!(ask(&["x.lan-ok.up.test"]).answers, ["192.168.0.77"]);
    });
}

#[test]
fn rebind_protection_can_be_turned_off() {
    timed(LIMIT, || {
        let net = Net::new();
        let (_upstream, _dnsd) = start(&net, "rebind_protection = false");
        assert_eq!(
            dig(&net.client, ROUTER, &["evil.up.test"]).answers,
            ["192.168.0.66"]
        );
    });
}

#[test]
fn configured_upstreams_win_over_the_wans_and_the_wans_serve_without_them() {
    timed(LIMIT, || {
        let net = Net::new();
        let status = |dnsd: &Dnsd| -> Vec<(String, String)> {
            let st = dnsd.shared.lock();
            st.upstreams
                .status(std::time::Instant::now())
                .into_iter()
                .map(|u| (u.address, u.source))
                .collect()
        };
        // The WAN's server is a black hole (TEST-NET-1): only the
        // configured dnsmasq is asked.
        let (_upstream, dnsd) = start(&net, "");
        dnsd.core
            .blocking_lock()
            .set_wan_dns(vec!["192.0.2.1".parse().expect("ip")]);
        assert_eq!(
            status(&dnsd),
            [(format!("{UPSTREAM}:53"), "config".to_string())]
        );
        let answer = dig(&net.client, ROUTER, &["www.up.test"]);
        assert_eq!(answer.answers, ["203.0.113.7"], "{}", answer.text);
        drop(dnsd);

        // No upstreams in the config: the WAN's servers are used.
        let dnsd = Dnsd::start(&net.router, &config(""));
        assert_eq!(status(&dnsd), []);
        dnsd.core
            .blocking_lock()
            .set_wan_dns(vec![UPSTREAM.parse().expect("ip")]);
        assert_eq!(
            status(&dnsd),
            [(format!("{UPSTREAM}:53"), "wan".to_string())]
        );
        let answer = dig(&net.client, ROUTER, &["www.up.test"]);
        assert_eq!(answer.answers, ["203.0.113.7"], "{}", answer.text);
    });
}
