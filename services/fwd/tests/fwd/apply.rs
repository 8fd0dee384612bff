//! Applying, checking and reading back, asserted with `nft`.

use std::net::UdpSocket;

use fwd::core::{Core, Outcome};
use fwd::ir::{Rule, Ruleset, Verdict};
use fwd::kernel::{Kernel, KernelError};
use fwd::render::WanAddress;

use crate::netns::{Netns, Nft, netns, require_root};
use crate::{COUNTED, check, commit, load, render, sections};

const COOKBOOK: &str = include_str!("../../../../config/oxwrt.toml");

/// `nft list table inet oxwrt` without the counters' values (which
/// differ between two namespaces).
fn listed(ns: &Netns) -> String {
    let text = ns.nft(&["list", "table", "inet", "oxwrt"]);
    text.lines()
        .map(|l| match l.find("counter packets") {
            Some(i) => {
                let rest = &l[i..];
                let end = rest.find(" bytes ").map_or(rest.len(), |b| {
                    b + 7 + rest[b + 7..].find(' ').unwrap_or(rest.len() - b - 7)
                });
                format!("{}counter{}", &l[..i], &rest[end..])
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_batch_and_the_ruleset_text_mean_the_same_to_the_kernel() {
    require_root!();
    let config = load(COOKBOOK);
    let rendered = render(
        &config,
        &[WanAddress {
            network: "wan".into(),
            address: "198.51.100.7".parse().expect("ip"),
        }],
    );
    // Through fwd's batch.
    let ours = netns();
    let started = std::time::Instant::now();
    commit(&ours, &rendered).expect("commit");
    let rules: usize = rendered.ruleset.chains.iter().map(|c| c.rules.len()).sum();
    println!(
        "cookbook: {} chains, {rules} rules, built and committed in {:?}",
        rendered.ruleset.chains.len(),
        started.elapsed()
    );
    // Through nft, from the text fwd publishes as `Ruleset`.
    let theirs = netns();
    let text = rendered.ruleset.to_string();
    let file = std::env::temp_dir().join(format!("{}.nft", theirs.name()));
    std::fs::write(&file, &text).expect("write");
    let path = file.to_string_lossy().into_owned();
    let out = theirs.exec("nft", &["-f", &path]);
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "nft -f refused the text:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listed(&ours), listed(&theirs));
}

/// A router namespace with `w0` (10.9.0.1) to a peer namespace (10.9.0.2).
fn router_and_peer() -> (Netns, Netns) {
    let (router, peer) = (netns(), netns());
    router.veth("w0", &peer, "p0");
    router.ip(&["addr", "add", "10.9.0.1/24", "dev", "w0"]);
    peer.ip(&["addr", "add", "10.9.0.2/24", "dev", "p0"]);
    (router, peer)
}

fn send_udp(peer: &Netns, n: usize) {
    peer.run(move || {
        let s = UdpSocket::bind("10.9.0.2:0").expect("bind");
        for _ in 0..n {
            s.send_to(b"x", "10.9.0.1:9999").expect("send");
        }
    });
}

#[test]
fn a_second_apply_of_the_same_config_commits_nothing_and_counters_read_back() {
    require_root!();
    let (router, peer) = router_and_peer();
    let same = sections(&load(COUNTED));
    let changed = sections(&load(&format!(
        "{COUNTED}\n[[firewall.rules]]\nname = \"more\"\nsrc = \"wan\"\nproto = [\"tcp\"]\ndest_port = [22]\naction = \"accept\"\n"
    )));
    let core = router.run(move || {
        let mut core = Core::new();
        let first = core.apply(&same).expect("apply");
        assert!(matches!(first, Outcome::Committed { .. }), "{first:?}");
        core
    });
    send_udp(&peer, 3);
    let (core, counters) = router.run(move || {
        let mut core = core;
        let counters = core.counters().expect("counters");
        (core, counters)
    });
    assert_eq!(counters.len(), 1);
    assert_eq!(
        (counters[0].rule.as_str(), counters[0].packets),
        ("count-udp", 3)
    );
    assert!(counters[0].bytes > 0);

    let same = sections(&load(COUNTED));
    let core = router.run(move || {
        let mut core = core;
        assert_eq!(core.apply(&same).expect("apply"), Outcome::Unchanged);
        // Had anything been committed, the counter would start again at 0.
        assert_eq!(core.counters().expect("counters")[0].packets, 3);
        assert_eq!(core.stats().apply_count, 1);
        core
    });
    router.run(move || {
        let mut core = core;
        let outcome = core.apply(&changed).expect("apply");
        assert!(matches!(outcome, Outcome::Committed { .. }));
        assert_eq!(core.stats().apply_count, 2);
        assert_eq!(core.counters().expect("counters")[0].packets, 0);
    });
    let text = router.nft(&["list", "chain", "inet", "oxwrt", "input_wan"]);
    assert!(
        text.contains("tcp dport 22 accept comment \"more\""),
        "{text}"
    );
}

#[test]
fn a_table_of_someone_else_survives_every_apply() {
    require_root!();
    let ns = netns();
    let other = "table inet other {\n\tchain c {\n\t\ttype filter hook input priority 10; policy accept;\n\t\ttcp dport 4242 counter accept\n\t}\n}\n";
    let file = std::env::temp_dir().join(format!("{}-other.nft", ns.name()));
    std::fs::write(&file, other).expect("write");
    ns.nft(&["-f", &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
    let before = ns.nft(&["list", "table", "inet", "other"]);
    let config = load(COOKBOOK);
    commit(&ns, &render(&config, &[])).expect("first");
    commit(&ns, &render(&load(COUNTED), &[])).expect("second");
    commit(&ns, &render(&config, &[])).expect("third");
    assert_eq!(ns.nft(&["list", "table", "inet", "other"]), before);
    let tables = ns.nft(&["list", "tables"]);
    assert_eq!(tables, "table inet other\ntable inet oxwrt\n");
}

/// `COUNTED` plus one rule in `input`.
fn with_input_rule(rule: Rule) -> Ruleset {
    let mut rules = render(&load(COUNTED), &[]).ruleset;
    let input = rules
        .chains
        .iter_mut()
        .find(|c| c.name == "input")
        .expect("input");
    input.rules.push(rule);
    rules
}

#[test]
fn the_check_names_what_the_kernel_refuses_and_commits_nothing() {
    require_root!();
    let ns = netns();
    // A good batch passes the check and leaves no table behind.
    check(&ns, &render(&load(COOKBOOK), &[])).expect("check");
    assert_eq!(ns.nft(&["list", "tables"]), "");

    // A bad one is refused, naming the message that failed.
    let bad = with_input_rule(Rule::new(vec![], Verdict::Jump("nowhere".into())));
    let batch = fwd::batch::replace(&bad).expect("batch");
    let err = ns
        .run(move || Kernel::open()?.check(&batch))
        .expect_err("refused");
    let KernelError::Refused(lines) = &err else {
        panic!("{err}");
    };
    assert_eq!(
        lines,
        &["add rule to chain input: jump nowhere: No such file or directory (ENOENT)"]
    );
    assert_eq!(ns.nft(&["list", "tables"]), "");

    // With fwd's table in place, checking a bad or a good batch leaves it
    // as it was.
    commit(&ns, &render(&load(COUNTED), &[])).expect("commit");
    let before = ns.nft(&["list", "ruleset"]);
    let batch = fwd::batch::replace(&bad).expect("batch");
    ns.run(move || Kernel::open()?.check(&batch))
        .expect_err("refused");
    check(&ns, &render(&load(COOKBOOK), &[])).expect("check");
    assert_eq!(ns.nft(&["list", "ruleset"]), before);
}

#[test]
fn checks_the_kernel_defers_to_the_commit_fail_the_commit_and_change_nothing() {
    require_root!();
    // Masquerade outside a NAT chain: the kernel validates chain types
    // only when committing, so the check (like `nft --check`) passes on
    // this kernel, and the commit is refused as a whole.
    let ns = netns();
    commit(&ns, &render(&load(COUNTED), &[])).expect("commit");
    let before = ns.nft(&["list", "ruleset"]);
    let bad = with_input_rule(Rule::new(vec![], Verdict::Masquerade).comment("nat in filter"));
    let batch = fwd::batch::replace(&bad).expect("batch");
    let checked = batch.clone();
    let check = ns.run(move || Kernel::open()?.check(&checked));
    println!("check of masquerade in a filter chain: {check:?}");
    let err = ns
        .run(move || Kernel::open()?.commit(&batch))
        .expect_err("refused");
    let KernelError::Refused(lines) = &err else {
        panic!("{err}");
    };
    assert!(
        lines[0].starts_with("add rule to chain input: masquerade comment \"nat in filter\":")
            && lines[0].contains("EOPNOTSUPP"),
        "{err}"
    );
    assert_eq!(ns.nft(&["list", "ruleset"]), before);
}

#[test]
fn flowtables_are_probed_without_a_trace() {
    require_root!();
    let ns = netns();
    let supported = ns
        .run(|| Kernel::open()?.flowtables_supported())
        .expect("probe");
    println!("flowtables supported: {supported}");
    assert_eq!(ns.nft(&["list", "tables"]), "");
}
