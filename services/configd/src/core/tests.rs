use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::transaction::fake::{FAST, Fake, pair};

struct Dirs {
    _tmp: tempfile::TempDir,
    etc: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl Dirs {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (etc, state) = (tmp.path().join("etc"), tmp.path().join("state"));
        fs::create_dir_all(&etc).expect("etc");
        let d = Self {
            _tmp: tmp,
            etc,
            state,
        };
        d.edit(&pair("r1", 100));
        d
    }

    /// The operator edits `$ETC`.
    fn edit(&self, p: &Pair) {
        fs::write(self.etc.join("oxwrt.toml"), &p.public).expect("write");
        let secrets = self.etc.join("oxwrt.secrets.toml");
        fs::write(&secrets, &p.secrets).expect("write");
        fs::set_permissions(&secrets, fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    fn core(&self) -> Core {
        let store = Store::open(&self.etc, &self.state).expect("store");
        Core::start(store, FAST).expect("start")
    }

    fn committed(&self) -> String {
        fs::read_to_string(self.state.join("config/committed")).expect("committed")
    }
}

fn request(confirm_secs: u32) -> Request {
    Request {
        confirm_secs,
        who: "test".into(),
        ..Request::default()
    }
}

fn hostname(core: &Core) -> &str {
    &core.running().config.system.hostname
}

#[tokio::test]
async fn first_boot_then_reload_then_restart() {
    let d = Dirs::new();
    let mut core = d.core();
    assert_eq!(core.running().number, 1);
    d.edit(&pair("r1", 200));
    let fake = Fake::default();
    let (report, announce) = core.reload(&fake, &request(0)).await.expect("reload");
    assert_eq!(report.generation, 2);
    assert_eq!(report.changed, vec!["dns"]);
    assert_eq!(announce.expect("announced").changed, vec!["dns"]);
    assert_eq!(
        fake.calls(),
        vec!["check org.oxwrt.Dns 2 dns", "apply org.oxwrt.Dns 2 dns"]
    );
    assert_eq!(d.committed(), "2");
    drop(core);
    let core = d.core();
    assert_eq!(core.running().number, 2);
    assert_eq!(core.list_snapshots().expect("list")[0].generation, 1);
}

#[tokio::test]
async fn a_reload_without_changes_makes_no_generation() {
    let d = Dirs::new();
    let mut core = d.core();
    let mut same = pair("r1", 100);
    same.public.push_str("# a comment\n");
    d.edit(&same);
    let fake = Fake::default();
    let (report, announce) = core.reload(&fake, &request(0)).await.expect("reload");
    assert!(announce.is_none() && report.changed.is_empty());
    assert_eq!(report.generation, 1);
    assert!(fake.calls().is_empty());
    assert!(core.list_snapshots().expect("list").is_empty());
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let d = Dirs::new();
    let mut core = d.core();
    d.edit(&pair("r2", 100));
    let fake = Fake::default();
    let req = Request {
        dry_run: true,
        ..request(0)
    };
    let (report, announce) = core.reload(&fake, &req).await.expect("dry run");
    assert!(announce.is_none());
    assert_eq!(report.generation, 1);
    assert!(
        report.diff[0].1.contains("+hostname = \"r2\""),
        "{:?}",
        report.diff
    );
    assert!(fake.calls().iter().all(|c| c.starts_with("check")));
    assert_eq!(d.committed(), "1");
    assert!(core.list_snapshots().expect("list").is_empty());
}

#[tokio::test]
async fn a_failed_apply_keeps_the_running_generation_on_disk() {
    let d = Dirs::new();
    let mut core = d.core();
    d.edit(&pair("r1", 300));
    let fake = Fake {
        fail_apply: Some(("org.oxwrt.Dns", 2)),
        ..Fake::default()
    };
    let err = core.reload(&fake, &request(0)).await.expect_err("fails");
    assert!(
        matches!(&err, BusError::ApplyFailed(m) if m == "apply dnsd: boom; reverted to generation 1"),
        "{err:?}"
    );
    assert_eq!(core.running().number, 1);
    assert_eq!(d.committed(), "1");
    assert!(core.list_snapshots().expect("list").is_empty());
    // The next generation number is still new.
    d.edit(&pair("r1", 400));
    let (report, _) = core
        .reload(&Fake::default(), &request(0))
        .await
        .expect("reload");
    assert_eq!(report.generation, 3);
}

#[tokio::test]
async fn invalid_config_is_refused_with_every_error() {
    let d = Dirs::new();
    let mut core = d.core();
    fs::write(
        d.etc.join("oxwrt.toml"),
        "version = 1\n[system]\nhostname = \"-bad-\"\n[[routes]]\ndestination = \"10.9.0.0/16\"\ngateway = \"bogus\"\n",
    )
    .expect("write");
    let err = core
        .reload(&Fake::default(), &request(0))
        .await
        .expect_err("invalid");
    let BusError::Invalid(text) = err else {
        panic!("{err:?}")
    };
    assert!(text.lines().count() >= 2, "{text}");
    assert!(text.contains("oxwrt.toml:3:12: system.hostname"), "{text}");
}

#[tokio::test]
async fn unconfirmed_generation_reverts_on_expiry_and_on_restart() {
    let d = Dirs::new();
    let mut core = d.core();
    d.edit(&pair("r2", 100));
    let fake = Fake::default();
    let (report, _) = core.reload(&fake, &request(60)).await.expect("reload");
    assert!(report.confirm_deadline > 0);
    assert_eq!(hostname(&core), "r2");
    assert_eq!(d.committed(), "1", "not committed before confirmation");
    // A reboot before confirmation comes up in generation 1, $ETC too.
    let restarted = d.core();
    assert_eq!(restarted.running().number, 1);
    assert_eq!(hostname(&restarted), "r1");
    let etc = fs::read_to_string(d.etc.join("oxwrt.toml")).expect("read");
    assert!(etc.contains("\"r1\""), "{etc}");
    drop(restarted);

    let mut core = d.core();
    d.edit(&pair("r3", 100));
    core.reload(&fake, &request(60)).await.expect("reload");
    let g = core.provisional().expect("provisional").generation;
    let announce = core
        .expire(&fake, g)
        .await
        .expect("expire")
        .expect("reverted");
    assert_eq!(announce.generation, 1);
    assert_eq!(hostname(&core), "r1");
    assert!(core.provisional().is_none());
    // $ETC is back on generation 1; the rejected edit is kept beside it.
    let etc = fs::read_to_string(d.etc.join("oxwrt.toml")).expect("read");
    assert!(etc.contains("\"r1\""), "{etc}");
    let rejected = fs::read_to_string(d.etc.join("oxwrt.toml.rejected")).expect("read");
    assert!(rejected.contains("\"r3\""), "{rejected}");
    assert!(fake.calls().last().expect("calls").ends_with(" 1 system"));
}

#[tokio::test]
async fn confirmed_generation_is_kept() {
    let d = Dirs::new();
    let mut core = d.core();
    d.edit(&pair("r2", 100));
    let fake = Fake::default();
    core.reload(&fake, &request(60)).await.expect("reload");
    let g = core.provisional().expect("provisional").generation;
    assert!(matches!(
        core.reload(&fake, &request(0)).await,
        Err(BusError::Busy(_))
    ));
    core.confirm().expect("confirm");
    assert_eq!(d.committed(), g.to_string());
    assert!(core.expire(&fake, g).await.expect("expire").is_none());
    assert_eq!(d.core().running().number, g);
}

#[tokio::test]
async fn rollback_applies_an_old_snapshot_as_a_new_generation() {
    let d = Dirs::new();
    let mut core = d.core();
    let fake = Fake::default();
    d.edit(&pair("r2", 100));
    core.reload(&fake, &request(0)).await.expect("reload");
    let (report, _) = core
        .rollback(&fake, 0, &request(0))
        .await
        .expect("rollback");
    assert_eq!(report.generation, 3);
    assert_eq!(hostname(&core), "r1");
    let ring = core.list_snapshots().expect("list");
    assert_eq!(
        ring.iter().map(|s| s.generation).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert!(matches!(
        core.rollback(&fake, 9, &request(0)).await,
        Err(BusError::NotFound(_))
    ));
    // $ETC follows the running generation.
    let etc = fs::read_to_string(d.etc.join("oxwrt.toml")).expect("read");
    assert!(etc.contains("\"r1\""));
}

#[tokio::test]
async fn a_crash_between_snapshot_and_commit_comes_up_in_the_old_generation() {
    let d = Dirs::new();
    let core = d.core();
    let store = Store::open(&d.etc, &d.state).expect("store");
    // What an apply leaves if configd dies after the snapshot was written
    // but before `committed` named it.
    let g = Generation::from_snapshot(2, pair("r9", 100), b"k").expect("valid");
    store
        .write_snapshot(&g.pair, &meta(&g, "test", "crash"))
        .expect("snapshot");
    drop(core);
    let core = d.core();
    assert_eq!(core.running().number, 1);
    assert_eq!(hostname(&core), "r1");
    assert!(core.list_snapshots().expect("list").is_empty());
}

#[tokio::test]
async fn a_pushed_candidate_is_what_reload_applies() {
    let d = Dirs::new();
    let mut core = d.core();
    let bad = Pair {
        public: "version = 1\nbogus = 1\n".into(),
        secrets: String::new(),
    };
    assert!(matches!(core.push(bad), Err(BusError::Invalid(_))));
    // A candidate whose apply fails is dropped too: $ETC counts again.
    core.push(pair("doomed", 999)).expect("push");
    let failing = Fake {
        fail_apply: Some(("org.oxwrt.Dns", 2)),
        ..Fake::default()
    };
    assert!(core.reload(&failing, &request(0)).await.is_err());
    core.push(pair("pushed", 100)).expect("push");
    core.reload(&Fake::default(), &request(0))
        .await
        .expect("reload");
    assert_eq!(hostname(&core), "pushed");
    // The candidate is consumed; $ETC now holds it.
    d.edit(&pair("edited", 100));
    core.reload(&Fake::default(), &request(0))
        .await
        .expect("reload");
    assert_eq!(hostname(&core), "edited");
}

#[tokio::test]
async fn the_ring_keeps_ten_older_generations_with_who_and_why() {
    let d = Dirs::new();
    let mut core = d.core();
    let fake = Fake::default();
    for cache in 1..=12 {
        d.edit(&pair("r1", 100 + cache));
        let req = Request {
            comment: format!("cache {cache}"),
            ..request(0)
        };
        core.reload(&fake, &req).await.expect("reload");
    }
    assert_eq!(core.running().number, 13);
    let ring = core.list_snapshots().expect("list");
    let generations: Vec<u64> = ring.iter().map(|s| s.generation).collect();
    assert_eq!(generations, (3..=12).rev().collect::<Vec<u64>>());
    assert_eq!(ring.len(), RING);
    let newest = &ring[0];
    assert_eq!((newest.index, newest.who.as_str()), (0, "test"));
    assert_eq!(newest.comment, "cache 11");
    assert!(newest.time > 0 && newest.hash.len() == 64, "{newest:?}");
}
