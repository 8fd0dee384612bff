use super::fake::{Fake, pair};
use super::*;
use crate::store::Pair;

fn generation(number: u64, hostname: &str, cache: u32) -> Generation {
    Generation::from_snapshot(number, pair(hostname, cache), b"key").expect("valid")
}

use super::fake::FAST;

#[test]
fn a_change_reaches_only_the_daemons_that_consume_it() {
    let plan = Plan::between(&generation(1, "a", 100), &generation(2, "a", 200));
    assert_eq!(plan.changed, vec!["dns"]);
    let services: Vec<_> = plan.steps.iter().map(|s| s.principal.service).collect();
    assert_eq!(services, vec!["dnsd"]);
    assert_eq!(plan.steps[0].sections, vec!["dns"]);
    let same = Plan::between(&generation(1, "a", 100), &generation(2, "a", 100));
    assert!(same.changed.is_empty() && same.steps.is_empty());
}

#[tokio::test]
async fn a_failed_apply_reverts_every_daemon_it_touched() {
    let (old, new) = (generation(1, "a", 100), generation(2, "b", 200));
    let plan = Plan {
        changed: vec!["system", "dns"],
        steps: vec![
            Step {
                principal: bus_schema::bus::policy::by_service("netd").expect("netd"),
                sections: vec!["system"],
            },
            Step {
                principal: bus_schema::bus::policy::by_service("dnsd").expect("dnsd"),
                sections: vec!["dns"],
            },
        ],
    };
    let fake = Fake {
        fail_apply: Some(("org.oxwrt.Dns", 2)),
        ..Fake::default()
    };
    let failure = apply(&plan.steps, &old, &new, &fake, FAST)
        .await
        .expect_err("fails");
    assert_eq!((failure.stage, failure.service), ("apply", "dnsd"));
    assert!(failure.revert_errors.is_empty());
    assert_eq!(
        failure.to_string(),
        "apply dnsd: boom; reverted to generation 1"
    );
    assert_eq!(
        fake.calls(),
        vec![
            "apply org.oxwrt.Net 2 system",
            "apply org.oxwrt.Dns 2 dns",
            "apply org.oxwrt.Dns 1 dns",
            "apply org.oxwrt.Net 1 system",
        ]
    );
}

#[tokio::test]
async fn a_failed_check_applies_nothing() {
    let new = generation(2, "b", 200);
    let plan = Plan::everything();
    let fake = Fake {
        fail_check: Some("org.oxwrt.Dns"),
        ..Fake::default()
    };
    let failure = check(&plan.steps, &new, &fake, FAST)
        .await
        .expect_err("fails");
    assert_eq!(
        failure.to_string(),
        "check dnsd: cannot; nothing was applied"
    );
    assert!(fake.calls().iter().all(|c| c.starts_with("check")));
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out_and_is_reverted() {
    let (old, new) = (generation(1, "a", 100), generation(2, "a", 200));
    let plan = Plan::between(&old, &new);
    let fake = Fake {
        hang: Some("org.oxwrt.Dns"),
        ..Fake::default()
    };
    let failure = apply(&plan.steps, &old, &new, &fake, FAST)
        .await
        .expect_err("times out");
    assert!(failure.error.contains("no answer within"), "{failure}");
    assert_eq!(failure.revert_errors.len(), 1, "the revert hangs too");
}

#[tokio::test]
async fn offline_daemons_are_skipped() {
    let plan = Plan::everything();
    let fake = Fake {
        offline: vec!["org.oxwrt.Net"],
        ..Fake::default()
    };
    let steps = online(&plan, &fake).await;
    assert!(steps.iter().all(|s| s.principal.name != "org.oxwrt.Net"));
    assert_eq!(steps.len(), plan.steps.len() - 1);
}

#[test]
fn secrets_go_only_to_entitled_daemons() {
    let pair = Pair {
        public: include_str!("../../../../config/oxwrt.toml").into(),
        secrets: include_str!("../../../../config/oxwrt.secrets.toml.example").into(),
    };
    let g = Generation::from_snapshot(1, pair, b"key").expect("cookbook is valid");
    let step = |service| Step {
        principal: bus_schema::bus::policy::by_service(service).expect("known"),
        sections: vec!["wifi"],
    };
    let secret = "correct horse battery staple";
    assert!(payload(&g, &step("wifid"))["wifi"].contains(secret));
    assert!(!payload(&g, &step("ctld"))["wifi"].contains(secret));
}
