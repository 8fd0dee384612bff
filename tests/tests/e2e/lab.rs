//! End-to-end tests of the lab harness itself: the topology comes up and the
//! upstream works, labs run side by side, and nothing is left behind after
//! a drop, a panic, a detached run or a dead owner.
//!
//! They need root; without it (or without veth and bridges in the kernel)
//! each test prints `SKIP: <reason>`.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use oxwrt_lab::exec::ProcId;
use oxwrt_lab::plan::{ISP_ADDR, ROUTER_LAN_ADDR, in_wan_pool};
use oxwrt_lab::state::State;
use oxwrt_lab::testing::{self, Scope, TestResult};
use oxwrt_lab::{Lab, LabConfig, LabError, LabInfo, netns};

const LIMIT: Duration = Duration::from_secs(120);

/// Everything a lab leaves on the machine, to check it is gone later.
struct Traces {
    name: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    processes: Vec<ProcId>,
}

impl Traces {
    fn of(lab: &Lab) -> Result<Traces, Box<dyn std::error::Error + Send + Sync>> {
        let state = State::load(lab.dir())?;
        Ok(Traces {
            name: lab.name().to_owned(),
            dir: lab.dir().to_owned(),
            namespaces: state.namespaces.clone(),
            processes: state.processes.iter().map(|p| p.id).collect(),
        })
    }

    fn assert_gone(&self) -> TestResult {
        let left: Vec<String> = netns::list()?
            .into_iter()
            .filter(|ns| self.namespaces.contains(ns))
            .collect();
        assert!(left.is_empty(), "namespaces left behind: {left:?}");
        let alive: Vec<u32> = self
            .processes
            .iter()
            .filter(|id| id.is_alive())
            .map(|id| id.pid)
            .collect();
        assert!(alive.is_empty(), "processes left behind: {alive:?}");
        let mentioning = processes_mentioning(&self.dir.to_string_lossy());
        assert!(
            mentioning.is_empty(),
            "processes naming {} left behind: {mentioning:?}",
            self.dir.display()
        );
        assert!(!self.dir.exists(), "{} left behind", self.dir.display());
        assert!(!self.namespaces.is_empty() && !self.name.is_empty());
        Ok(())
    }
}

/// Processes whose command line contains `needle`, with their command lines.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

/// The host's interfaces and routes, which a lab must never change.
fn host_network() -> Result<(String, String), Box<dyn std::error::Error + Send + Sync>> {
    let run = |argv: &[&str]| -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let out = oxwrt_lab::exec::run_ok(argv, Duration::from_secs(10))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let links: Vec<String> = run(&["ip", "-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_owned()))
        .collect();
    Ok((
        links.join(","),
        run(&["ip", "-4", "route", "show", "table", "all"])?,
    ))
}

fn up_clients(
    scope: &Scope,
    lan_clients: usize,
) -> Result<Lab, Box<dyn std::error::Error + Send + Sync>> {
    scope.up(LabConfig {
        lan_clients,
        ..LabConfig::default()
    })
}

#[test]
fn upstream_works_from_the_router() {
    testing::run(LIMIT, |scope| {
        let host_before = host_network();
        let lab = up_clients(scope, 2)?;
        let info = lab.info();

        // The router's WAN has a lease from the ISP's dnsmasq.
        let wan: std::net::Ipv4Addr = info.addresses.router_wan.parse()?;
        assert!(in_wan_pool(wan), "router WAN {wan} not from the ISP's pool");
        let leases = fs::read_to_string(lab.dir().join("isp/dnsmasq.leases"))?;
        assert!(
            leases.contains(&info.addresses.router_wan),
            "leases: {leases}"
        );

        // HTTP, DNS and the LAN, through the harness's own check...
        let check = lab.check()?;
        assert_eq!(check.wan_address, info.addresses.router_wan);
        assert_eq!(check.dns_answer, ISP_ADDR.to_string());
        assert_eq!(check.lan_pinged, info.namespaces.lan);

        // ...and by hand, the way later tests will use the lab.
        let router = &info.namespaces.router;
        let page = lab.ns_exec_ok(
            router,
            &["curl", "-sS", "--max-time", "5", "http://100.64.0.1/"],
            Duration::from_secs(10),
        )?;
        let body = String::from_utf8_lossy(&page.stdout);
        assert!(
            body.contains(&format!("lab {}", lab.name())),
            "page: {body}"
        );
        let dig = lab.ns_exec_ok(
            router,
            &["dig", "@100.64.0.1", "www.example.test", "+short"],
            Duration::from_secs(10),
        )?;
        assert_eq!(
            String::from_utf8_lossy(&dig.stdout).trim(),
            ISP_ADDR.to_string()
        );
        for client in &info.namespaces.lan {
            lab.wait_ping(client, &ROUTER_LAN_ADDR.to_string())?;
        }
        // The router forwards; the clients do not.
        let forward = lab.ns_exec_ok(
            router,
            &["sysctl", "-n", "net.ipv4.ip_forward"],
            Duration::from_secs(5),
        )?;
        assert_eq!(String::from_utf8_lossy(&forward.stdout).trim(), "1");

        // The router's root is laid out, and nothing outside is touched.
        for dir in ["etc/oxwrt", "run/oxwrt", "var/lib/oxwrt"] {
            assert!(lab.root().join(dir).is_dir(), "{dir}");
        }
        assert_eq!(
            host_network()?,
            host_before?,
            "the host's interfaces or routes changed"
        );
        assert!(matches!(
            lab.ns_exec("host", &["true"], Duration::from_secs(1)),
            Err(LabError::UnknownNamespace { .. })
        ));
        Ok(())
    });
}

#[test]
fn two_labs_run_side_by_side() {
    testing::run(LIMIT, |scope| {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let scope = scope.clone();
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || -> Result<(Lab, LabInfo), String> {
                    barrier.wait();
                    let lab = up_clients(&scope, 1).map_err(|e| e.to_string())?;
                    let check = lab.check().map_err(|e| e.to_string())?;
                    assert_eq!(check.lan_pinged.len(), 1);
                    let info = lab.info().clone();
                    Ok((lab, info))
                })
            })
            .collect();
        let mut labs = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(result) => labs.push(result?),
                Err(panic) => panic::resume_unwind(panic),
            }
        }
        let [(_, a), (_, b)] = &labs[..] else {
            return Err("expected two labs".into());
        };
        assert_ne!(a.name, b.name);
        assert_ne!(a.root, b.root);
        assert_ne!(a.namespaces.router, b.namespaces.router);
        let all: Vec<&String> = [&a.namespaces, &b.namespaces]
            .iter()
            .flat_map(|n| [&n.isp, &n.router, &n.switch].into_iter().chain(&n.lan))
            .collect();
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "namespaces collide: {all:?}");
        Ok(())
    });
}

#[test]
fn drop_removes_namespaces_processes_and_files() {
    testing::run(LIMIT, |scope| {
        let lab = up_clients(scope, 1)?;
        let traces = Traces::of(&lab)?;
        assert!(traces.processes.len() >= 3, "dnsmasq, http, dhclient");
        assert!(traces.processes.iter().all(ProcId::is_alive));
        assert!(!processes_mentioning(&traces.dir.to_string_lossy()).is_empty());
        drop(lab);
        traces.assert_gone()
    });
}

#[test]
fn a_panic_with_a_lab_alive_still_cleans_up() {
    testing::run(LIMIT, |scope| {
        let seen: Mutex<Option<Traces>> = Mutex::new(None);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| -> TestResult {
            let lab = up_clients(scope, 1)?;
            *seen.lock().map_err(|e| e.to_string())? = Some(Traces::of(&lab)?);
            panic!("intentional panic with lab {} alive", lab.name());
        }));
        match outcome {
            Err(_) => {}
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => return Err("the body should have panicked".into()),
        }
        let traces = seen.lock().map_err(|e| e.to_string())?.take();
        traces.ok_or("the lab never came up")?.assert_gone()
    });
}

#[test]
fn a_detached_lab_lives_until_down() {
    testing::run(LIMIT, |scope| {
        let name = format!("det{}", std::process::id());
        let lab = scope.up(LabConfig {
            name: Some(name.clone()),
            ..LabConfig::default()
        })?;
        let traces = Traces::of(&lab)?;
        let info = lab.into_detached()?;
        assert_eq!(info.name, name);

        // Still there with the guard gone, and recorded as detached.
        let state = State::load(&traces.dir)?;
        assert!(state.detached && state.owner.is_none());
        assert_eq!(state.info.as_ref(), Some(&info));
        assert!(traces.processes.iter().all(ProcId::is_alive));
        let namespaces = netns::list()?;
        assert!(traces.namespaces.iter().all(|ns| namespaces.contains(ns)));

        // A second lab of that name is refused while it is up.
        let again = Lab::up(LabConfig {
            name: Some(name.clone()),
            ..LabConfig::default()
        });
        assert!(
            matches!(again, Err(LabError::ClaimName { .. })),
            "{again:?}"
        );

        Lab::down(&name)?;
        traces.assert_gone()?;
        assert!(matches!(Lab::down(&name), Err(LabError::NotFound { .. })));
        Ok(())
    });
}

#[test]
fn a_lab_whose_owner_died_is_reaped() {
    testing::run(LIMIT, |scope| {
        let state_dir =
            std::env::temp_dir().join(format!("oxwrt-lab-orphans-{}", std::process::id()));
        let lab = scope.up(LabConfig {
            state_dir: Some(state_dir.clone()),
            ..LabConfig::default()
        })?;
        let traces = Traces::of(&lab)?;
        // Pretend the owner died without unwinding: its guard never drops,
        // and the recorded owner is no longer a live process.
        let mut state = State::load(lab.dir())?;
        std::mem::forget(lab);
        state.owner = state.owner.map(|owner| ProcId {
            start_time: owner.start_time.wrapping_add(1),
            ..owner
        });
        state.save(&traces.dir)?;

        let reaped = oxwrt_lab::state::reap_orphans(&state_dir);
        assert_eq!(reaped, std::slice::from_ref(&traces.name));
        traces.assert_gone()?;
        remove_empty(&state_dir)
    });
}

#[test]
fn a_config_is_copied_into_the_router_root() {
    testing::run(LIMIT, |scope| {
        let src = std::env::temp_dir().join(format!("oxwrt-lab-config-{}", std::process::id()));
        fs::create_dir_all(&src)?;
        let file = src.join("oxwrt.toml");
        fs::write(&file, "# test\n")?;
        let lab = scope.up(LabConfig {
            config: Some(file),
            lan_clients: 0,
            ..LabConfig::default()
        });
        // The lab has its own copy; remove the source before anything can
        // return early (a skip included).
        fs::remove_dir_all(&src)?;
        let lab = lab?;
        assert_eq!(
            fs::read_to_string(lab.root().join("etc/oxwrt/oxwrt.toml"))?,
            "# test\n"
        );
        assert!(lab.info().namespaces.lan.is_empty());
        Ok(())
    });
}

#[test]
fn a_failed_up_leaves_nothing_behind() {
    testing::run(LIMIT, |scope| {
        let state_dir =
            std::env::temp_dir().join(format!("oxwrt-lab-failed-{}", std::process::id()));
        let result = scope.up(LabConfig {
            name: Some("failing".into()),
            config: Some("/nonexistent/oxwrt.toml".into()),
            state_dir: Some(state_dir.clone()),
            ..LabConfig::default()
        });
        let err = match result {
            Ok(_) => return Err("a missing config must fail the lab".into()),
            Err(e) if e.is::<testing::Skip>() => return Err(e),
            Err(e) => e,
        };
        assert!(err.to_string().contains("/nonexistent/oxwrt.toml"), "{err}");
        assert!(!state_dir.join("failing").exists());
        assert!(
            !netns::list()?
                .iter()
                .any(|ns| ns.starts_with("oxl-failing-"))
        );
        remove_empty(&state_dir)
    });
}

#[test]
fn a_test_that_runs_out_of_time_has_its_labs_torn_down() {
    testing::run(LIMIT, |_| {
        if let Err(oxwrt_lab::support::SupportError::Unsupported { reason }) =
            oxwrt_lab::support::check_kernel()
        {
            return Err(Box::new(testing::Skip { reason }));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let outcome = panic::catch_unwind(|| {
            testing::run(Duration::from_secs(5), move |scope| {
                let lab = up_clients(scope, 1)?;
                let _ = tx.send(Traces::of(&lab)?);
                // Hangs with the lab alive, well past the limit.
                thread::sleep(Duration::from_secs(8));
                drop(lab);
                Ok(())
            });
        });
        assert!(outcome.is_err(), "the inner test should have timed out");
        let traces = rx.recv_timeout(Duration::from_secs(1))?;
        traces.assert_gone()?;
        // The hung body wakes up later and drops its guard on a lab that is
        // gone already; that must be harmless.
        thread::sleep(Duration::from_secs(4));
        traces.assert_gone()
    });
}

fn remove_empty(dir: &Path) -> TestResult {
    fs::remove_dir(dir)?;
    Ok(())
}
