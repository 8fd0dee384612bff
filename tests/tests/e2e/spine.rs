//! End-to-end tests of the spine: oxinit in a router namespace brings up
//! the broker, configd and test daemons (`oxwrt-testd`, never shipped);
//! busctl sees them; reloads reach only the daemons whose sections
//! changed; failures and unconfirmed generations revert; crashes are
//! supervised; shutdown leaves nothing behind.
//!
//! They need root; without it each test prints `SKIP: <reason>`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus_schema::bus::{Config1Proxy, Init1Proxy, ServiceStatus};
use futures_util::StreamExt;
use oxwrt_lab::exec::ProcId;
use oxwrt_lab::testing::{self, Scope, TestResult};
use oxwrt_lab::{Boot, ChildGuard, Lab, LabConfig, wait_for, wait_until};

const LIMIT: Duration = Duration::from_secs(180);
const WAIT: Duration = Duration::from_secs(30);

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A built binary of the workspace, beside this test's own directory.
pub(crate) fn built(name: &str) -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("test binary has no target directory")?;
    let path = dir.join(name);
    if !path.exists() {
        return Err(format!(
            "{} is not built: run `cargo build --workspace` (cargo xtask test does)",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// A stand-in daemon for the `--extra-services` file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Testd<'a> {
    pub(crate) service: &'a str,
    pub(crate) args: &'a [&'a str],
    /// Run under this daemon's uid, seccomp policy and files profile (and
    /// record into its state directory, the one place it may write).
    pub(crate) sandbox: Option<&'a str>,
}

impl<'a> Testd<'a> {
    /// One that does what it is told and records it.
    pub(crate) fn plain(service: &'a str) -> Self {
        Self {
            service,
            args: &[],
            sandbox: None,
        }
    }
}

/// oxinit running in a lab's router namespace.
pub(crate) struct Stack {
    /// Torn down when the stack is dropped.
    _lab: Lab,
    oxinit: Option<ChildGuard>,
    root: PathBuf,
    /// A directory every test daemon uid may write to.
    shared: PathBuf,
    pub(crate) rt: tokio::runtime::Runtime,
    conn: zbus::Connection,
}

impl Stack {
    pub(crate) fn start(scope: &Scope, daemons: &[Testd<'_>]) -> Result<Stack, BoxError> {
        Self::start_without(scope, daemons, &[])
    }

    /// The stack with `services`, `[[service]]` entries of oxinit's
    /// `--extra-services` file, besides configd.
    pub(crate) fn start_services(scope: &Scope, services: &str) -> Result<Stack, BoxError> {
        Self::boot(scope, &[], &[], services)
    }

    /// The stack without the services named in `without`.
    fn start_without(
        scope: &Scope,
        daemons: &[Testd<'_>],
        without: &[&str],
    ) -> Result<Stack, BoxError> {
        Self::boot(scope, daemons, without, "")
    }

    fn boot(
        scope: &Scope,
        daemons: &[Testd<'_>],
        without: &[&str],
        extra: &str,
    ) -> Result<Stack, BoxError> {
        let oxinit = built("oxinit")?;
        let testd = PathBuf::from(env!("CARGO_BIN_EXE_oxwrt-testd"));
        let mut lab = scope.up(LabConfig::default())?;
        let root = lab.root().to_path_buf();
        let shared = root.join("shared");
        fs::create_dir_all(&shared)?;
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777))?;

        let mut services = extra.to_string();
        for d in daemons {
            let principal = bus_schema::bus::policy::by_service(d.sandbox.unwrap_or(d.service))
                .ok_or_else(|| format!("no principal {}", d.service))?;
            let record = Self::record_path(&root, d);
            let mut args = vec![
                "--service".to_string(),
                d.service.to_string(),
                "--record".to_string(),
                record.display().to_string(),
            ];
            args.extend(d.args.iter().map(|a| a.to_string()));
            services.push_str(&format!(
                "[[service]]\nname = {:?}\nexec = {:?}\nargs = {:?}\nuser = {}\ndepends_on = [\"configd\"]\n",
                d.service,
                testd.display().to_string(),
                args,
                principal.uid,
            ));
            if let Some(profile) = d.sandbox {
                services.push_str(&format!("seccomp = {profile:?}\nlandlock = {profile:?}\n"));
            }
            services.push_str("[service.respawn]\nbackoff_min_ms = 50\nbackoff_max_ms = 400\nmax_crashes = 3\nwindow_ms = 30000\n");
        }
        let bin_dir = oxinit.parent().ok_or("no bin dir")?.to_path_buf();
        // The real daemons stay out unless a test daemon stands in for them.
        let mut without: Vec<String> = without.iter().map(|s| s.to_string()).collect();
        for real in ["netd", "fwd", "dhcpd", "dnsd", "ctld"] {
            if !daemons.iter().any(|d| d.service == real) {
                without.push(real.to_string());
            }
        }
        let guard = lab.boot(&Boot {
            extra_services: Some(services),
            without,
            ..Boot::new(bin_dir)
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let address = bus_schema::bus::address_for(&root.join("run/oxwrt"));
        let conn = rt.block_on(zbus::connection::Builder::address(address.as_str()).build())?;
        let stack = Stack {
            _lab: lab,
            oxinit: Some(guard),
            root,
            shared,
            rt,
            conn,
        };
        wait_until(
            "oxinit to reach phase running",
            Instant::now() + WAIT,
            || stack.phase().as_deref() == Some("running"),
        )?;
        Ok(stack)
    }

    fn bus(&self) -> String {
        bus_schema::bus::address_for(&self.root.join("run/oxwrt"))
    }

    pub(crate) fn init(&self) -> Result<Init1Proxy<'static>, BoxError> {
        Ok(self.rt.block_on(
            Init1Proxy::builder(&self.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build(),
        )?)
    }

    fn config(&self) -> Result<Config1Proxy<'static>, BoxError> {
        Ok(self.rt.block_on(
            Config1Proxy::builder(&self.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build(),
        )?)
    }

    fn phase(&self) -> Option<String> {
        let init = self.init().ok()?;
        self.rt.block_on(init.phase()).ok()
    }

    fn services(&self) -> Result<Vec<ServiceStatus>, BoxError> {
        let init = self.init()?;
        Ok(self.rt.block_on(init.list_services())?)
    }

    pub(crate) fn service(&self, name: &str) -> Result<ServiceStatus, BoxError> {
        self.services()?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("no service {name}").into())
    }

    pub(crate) fn wait_service(
        &self,
        name: &str,
        what: &str,
        ok: impl Fn(&ServiceStatus) -> bool,
    ) -> Result<ServiceStatus, BoxError> {
        wait_for(what, Instant::now() + WAIT, || {
            self.service(name).ok().filter(|s| ok(s))
        })
        .map_err(|e| {
            let logs = self
                .init()
                .and_then(|i| Ok(self.rt.block_on(i.logs(name, 5))?));
            format!("{e}: {:?}, its log: {logs:?}", self.service(name)).into()
        })
    }

    fn generation(&self) -> Result<u64, BoxError> {
        let config = self.config()?;
        Ok(self.rt.block_on(config.generation())?)
    }

    fn reload(&self, confirm_secs: u32) -> Result<bus_schema::bus::ApplyReport, zbus::Error> {
        let config = self
            .config()
            .map_err(|e| zbus::Error::Failure(e.to_string()))?;
        self.rt.block_on(config.reload(false, confirm_secs, "test"))
    }

    /// Replaces `from` by `to` in `$ETC/oxwrt.toml`.
    fn edit(&self, from: &str, to: &str) -> TestResult {
        let path = self.root.join("etc/oxwrt/oxwrt.toml");
        let text = fs::read_to_string(&path)?;
        assert!(text.contains(from), "{from:?} not in the config");
        fs::write(&path, text.replacen(from, to, 1))?;
        Ok(())
    }

    /// Where test daemon `d` records what it receives.
    fn record_path(root: &Path, d: &Testd<'_>) -> PathBuf {
        match d.sandbox {
            Some(_) => root
                .join("var/lib/oxwrt")
                .join(d.service)
                .join("record.jsonl"),
            None => root.join("shared").join(format!("{}.jsonl", d.service)),
        }
    }

    /// The lines test daemon `d` recorded, as JSON.
    pub(crate) fn record_json(&self, d: &Testd<'_>) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(Self::record_path(&self.root, d)).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// What unsandboxed test daemon `service` recorded: `(op, section
    /// names, sections JSON)`.
    fn record(&self, service: &str) -> Vec<(String, Vec<String>, String)> {
        self.record_json(&Testd::plain(service))
            .into_iter()
            .map(|v| {
                let sections = v["sections"].as_object().cloned().unwrap_or_default();
                (
                    v["op"].as_str().unwrap_or_default().to_string(),
                    sections.keys().cloned().collect(),
                    serde_json::Value::Object(sections).to_string(),
                )
            })
            .collect()
    }

    fn committed(&self) -> Result<u64, BoxError> {
        let path = self.root.join("var/lib/oxwrt/config/committed");
        Ok(fs::read_to_string(path)?.trim().parse()?)
    }

    /// SIGTERM to oxinit; its exit status.
    pub(crate) fn shutdown(&mut self) -> Result<ExitStatus, BoxError> {
        let guard = self.oxinit.take().ok_or("already stopped")?;
        Ok(guard.stop()?)
    }
}

fn busctl(stack: &Stack, args: &[&str]) -> Result<String, BoxError> {
    let out = Command::new("busctl")
        .arg(format!("--address={}", stack.bus()))
        .args(args)
        .arg("--no-pager")
        .output()?;
    if !out.status.success() {
        return Err(format!("busctl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

const ROUTE_METRIC: &str = "metric = 100";

#[test]
fn busctl_sees_init_and_config_and_a_reload_reaches_only_the_changed_section() {
    testing::run(LIMIT, |scope| {
        let stack = Stack::start(scope, &[Testd::plain("netd")])?;
        let names = busctl(&stack, &["list"])?;
        for name in ["org.oxwrt.Init", "org.oxwrt.Config", "org.oxwrt.Net"] {
            assert!(names.contains(name), "{name} not in\n{names}");
        }
        let init = busctl(&stack, &["introspect", "org.oxwrt.Init", "/org/oxwrt/Init"])?;
        for member in [
            ".ListServices",
            ".Restart",
            ".Stop",
            ".Start",
            ".Logs",
            ".ServiceChanged",
        ] {
            assert!(init.contains(member), "{member} not in\n{init}");
        }
        let config = busctl(
            &stack,
            &["introspect", "org.oxwrt.Config", "/org/oxwrt/Config"],
        )?;
        for member in [
            ".GetSection",
            ".Reload",
            ".Confirm",
            ".Rollback",
            ".NewGeneration",
        ] {
            assert!(config.contains(member), "{member} not in\n{config}");
        }
        let tree = busctl(&stack, &["tree", "org.oxwrt.Config"])?;
        assert!(tree.contains("/org/oxwrt/Config"), "{tree}");

        // At start-up the daemon converged to all of its sections.
        let first = stack.record("netd");
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].1, ["networks", "routes", "wireguard"]);
        // Its secrets were resolved (it is entitled); a reader's are not.
        assert!(
            first[0].2.contains("OEWmQd3cJJHZNAzBHU4ONaotyJY"),
            "wg key missing"
        );
        let section = busctl(
            &stack,
            &[
                "call",
                "org.oxwrt.Config",
                "/org/oxwrt/Config",
                "org.oxwrt.Config1",
                "GetSection",
                "s",
                "wireguard",
            ],
        )?;
        assert!(section.contains("redacted") && !section.contains("OEWmQd3cJJHZNAzBHU4ONaotyJY"));

        // busctl monitor sees the transaction. It is attached once it
        // shows a call made after it started.
        let mut monitor = KillOnDrop(
            Command::new("busctl")
                .arg(format!("--address={}", stack.bus()))
                .args(["monitor", "--no-pager"])
                .stdout(std::process::Stdio::piped())
                .spawn()?,
        );
        let seen = Arc::new(Mutex::new(String::new()));
        if let Some(out) = monitor.0.stdout.take() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
                    let Ok(line) = line else { break };
                    if let Ok(mut s) = seen.lock() {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let monitored = |member: &str| seen.lock().is_ok_and(|s| s.contains(member));
        let ping = ["call", "org.oxwrt.Config", "/org/oxwrt/Config"];
        wait_until("busctl monitor to attach", Instant::now() + WAIT, || {
            let _ = busctl(
                &stack,
                &[&ping[..], &["org.freedesktop.DBus.Peer", "Ping"]].concat(),
            );
            monitored("Member=Ping")
        })?;
        stack.edit(ROUTE_METRIC, "metric = 200")?;
        let report = stack.reload(0)?;
        assert_eq!(report.generation, 2);
        wait_until(
            "the transaction in busctl monitor",
            Instant::now() + WAIT,
            || {
                ["Member=Reload", "Member=Apply", "Member=NewGeneration"]
                    .iter()
                    .all(|m| monitored(m))
            },
        )?;
        drop(monitor);
        assert_eq!(report.changed, ["routes"]);
        let after = stack.record("netd");
        let ops: Vec<(&str, &[String])> = after[1..]
            .iter()
            .map(|(op, s, _)| (op.as_str(), s.as_slice()))
            .collect();
        assert_eq!(
            ops,
            [
                ("check", &["routes".to_string()][..]),
                ("apply", &["routes".to_string()][..])
            ]
        );
        assert!(after[2].2.contains(":200"), "{}", after[2].2);
        assert_eq!(stack.committed()?, 2);
        // A change to a section nobody running consumes reaches nobody.
        stack.edit("cache_size = ", "cache_size = 1")?;
        let report = stack.reload(0)?;
        assert_eq!(report.changed, ["dns"]);
        assert_eq!(stack.record("netd").len(), 3);
        Ok(())
    });
}

#[test]
fn a_failed_apply_reverts_the_generation_and_leaves_the_disk_alone() {
    testing::run(LIMIT, |scope| {
        let stack = Stack::start(
            scope,
            &[
                Testd::plain("netd"),
                Testd {
                    service: "fwd",
                    args: &["--fail-apply-if", "\"fail-me\""],
                    sandbox: None,
                },
            ],
        )?;
        let snapshot = stack.root.join("var/lib/oxwrt/config/snapshots");
        let before = fs::read_dir(&snapshot)?.count();
        // One edit touching both daemons' sections; fwd refuses its part.
        stack.edit(ROUTE_METRIC, "metric = 300")?;
        stack.edit("name = \"wan-ping\"", "name = \"fail-me\"")?;
        let err = stack.reload(0).expect_err("apply fails");
        let text = err.to_string();
        assert!(text.contains("ApplyFailed"), "{text}");
        assert!(
            text.contains("apply fwd: test daemon: apply failed; reverted to generation 1"),
            "{text}"
        );
        assert_eq!(stack.generation()?, 1);
        assert_eq!(stack.committed()?, 1);
        assert_eq!(fs::read_dir(&snapshot)?.count(), before);
        // netd applied the new routes, then got the old ones back.
        let netd = stack.record("netd");
        let applies: Vec<&String> = netd
            .iter()
            .filter(|r| r.0 == "apply")
            .map(|r| &r.2)
            .collect();
        assert_eq!(applies.len(), 3, "{netd:?}");
        assert!(applies[1].contains(":300"));
        assert!(applies[2].contains(":100") && !applies[2].contains(":300"));
        Ok(())
    });
}

#[test]
fn an_unconfirmed_generation_reverts_and_a_confirmed_one_stays() {
    testing::run(LIMIT, |scope| {
        let stack = Stack::start(scope, &[Testd::plain("netd")])?;
        let config = stack.config()?;
        let mut signals = stack.rt.block_on(config.receive_new_generation())?;
        stack.edit(ROUTE_METRIC, "metric = 200")?;
        let report = stack.reload(2)?;
        assert_eq!(report.generation, 2);
        assert!(report.confirm_deadline > 0);
        assert_eq!(stack.committed()?, 1, "not committed before confirmation");
        // The timer fires: generation 1 is announced again and applied.
        let reverted = stack.rt.block_on(async {
            tokio::time::timeout(WAIT, async {
                while let Some(s) = signals.next().await {
                    let generation = s.args().map(|a| a.generation).unwrap_or_default();
                    if generation == 1 {
                        return true;
                    }
                }
                false
            })
            .await
        })?;
        assert!(reverted, "no revert to generation 1 announced");
        assert_eq!(stack.generation()?, 1);
        let last = stack.record("netd").pop().ok_or("no record")?;
        assert_eq!(last.0, "apply");
        assert!(last.2.contains(":100"), "{}", last.2);

        // Unconfirmed when configd dies: the restarted configd comes up in
        // the confirmed generation and puts the daemons back on it.
        stack.edit("metric = 100", "metric = 700")?;
        let report = stack.reload(60)?;
        assert_eq!(stack.generation()?, report.generation);
        let pid = stack.service("configd")?.pid;
        kill9(pid)?;
        stack.wait_service("configd", "configd back", |s| {
            s.pid != pid && s.state == "running"
        })?;
        assert_eq!(stack.generation()?, 1);
        wait_until("netd back on generation 1", Instant::now() + WAIT, || {
            stack
                .record("netd")
                .last()
                .is_some_and(|r| r.0 == "apply" && r.2.contains(":100"))
        })?;

        // Confirmed in time: kept, and it survives configd's restart.
        stack.edit("metric = 100", "metric = 800")?;
        let report = stack.reload(60)?;
        stack.rt.block_on(config.confirm())?;
        assert_eq!(stack.committed()?, report.generation);
        assert_eq!(stack.rt.block_on(config.confirm_deadline())?, 0);
        let pid = stack.service("configd")?.pid;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        stack.wait_service("configd", "configd back", |s| {
            s.pid != pid && s.state == "running"
        })?;
        assert_eq!(stack.generation()?, report.generation);
        Ok(())
    });
}

#[test]
fn killing_configd_during_an_apply_leaves_a_whole_config_and_a_consistent_generation() {
    testing::run(LIMIT, |scope| {
        let stack = Stack::start(
            scope,
            &[Testd {
                service: "netd",
                args: &["--apply-delay-ms", "1500"],
                sandbox: None,
            }],
        )?;
        let etc = stack.root.join("etc/oxwrt/oxwrt.toml");
        stack.edit(ROUTE_METRIC, "metric = 500")?;
        let configd = stack.service("configd")?;
        let address = stack.bus();
        // Reload from another connection; configd dies while netd applies.
        let caller = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let conn = zbus::connection::Builder::address(address.as_str())
                    .build()
                    .await
                    .ok()?;
                let config = Config1Proxy::new(&conn).await.ok()?;
                Some(config.reload(false, 0, "killed").await.is_ok())
            })
        });
        wait_until("netd to be asked to apply", Instant::now() + WAIT, || {
            stack.record("netd").iter().any(|r| r.0 == "check")
        })?;
        let before = stack.record("netd").len();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(configd.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )?;
        assert_eq!(
            caller.join().ok().flatten(),
            Some(false),
            "the reload cannot succeed"
        );
        stack.wait_service("configd", "configd respawned", |s| {
            s.pid != configd.pid && s.state == "running"
        })?;
        // The running generation is the old one, on disk and on the bus,
        // and netd was brought back to it.
        assert_eq!(stack.committed()?, 1);
        assert_eq!(stack.generation()?, 1);
        let snapshot = fs::read_to_string(
            stack
                .root
                .join("var/lib/oxwrt/config/snapshots/00000000000000000001/oxwrt.toml"),
        )?;
        assert!(snapshot.contains(ROUTE_METRIC));
        // $ETC is the operator's edit, whole.
        let text = fs::read_to_string(&etc)?;
        assert!(text.contains("metric = 500") && text.parse::<toml::Table>().is_ok());
        // Whether or not the apply of the dead configd's generation got to
        // netd, the restarted configd's comes last.
        wait_until("netd back on generation 1", Instant::now() + WAIT, || {
            let record = stack.record("netd");
            record.len() > before
                && record
                    .last()
                    .is_some_and(|r| r.0 == "apply" && r.2.contains(":100"))
        })?;
        Ok(())
    });
}

#[test]
fn oxinit_restarts_a_killed_daemon_fails_a_crash_loop_and_restarts_only_what_it_is_asked() {
    testing::run(LIMIT, |scope| {
        let stack = Stack::start(
            scope,
            &[
                Testd::plain("netd"),
                Testd::plain("dnsd"),
                Testd {
                    service: "wifid",
                    args: &["--exit-with", "1"],
                    sandbox: None,
                },
                Testd {
                    service: "ctld",
                    args: &["--exit-with", "78"],
                    sandbox: None,
                },
            ],
        )?;
        let init = stack.init()?;
        let netd = stack.service("netd")?;
        assert_eq!((netd.state.as_str(), netd.restarts), ("running", 0));
        kill9(netd.pid)?;
        let back = stack.wait_service("netd", "netd respawned", |s| {
            s.pid != netd.pid && s.state == "running"
        })?;
        assert_eq!(back.restarts, 1);
        assert!(back.last_exit.contains("SIGKILL"), "{back:?}");

        // Restart(name) touches only that daemon.
        let before = stack.services()?;
        let dnsd = stack.service("dnsd")?;
        stack.rt.block_on(init.restart("dnsd"))?;
        stack.wait_service("dnsd", "dnsd restarted", |s| {
            s.state == "running" && s.pid != dnsd.pid
        })?;
        for b in before.iter().filter(|b| b.name != "dnsd" && b.pid != 0) {
            assert_eq!(
                stack.service(&b.name)?.pid,
                b.pid,
                "{} was restarted",
                b.name
            );
        }

        // Crashing at every start ends `failed` after the configured three
        // crashes; exit 78 (bad config) ends `failed` at once.
        let wifid = stack.wait_service("wifid", "wifid failed", |s| s.state == "failed")?;
        assert!(wifid.restarts >= 2, "{wifid:?}");
        let ctld = stack.wait_service("ctld", "ctld failed", |s| s.state == "failed")?;
        assert_eq!(ctld.restarts, 0, "{ctld:?}");
        assert!(ctld.reason.contains("78"), "{ctld:?}");
        // And a signal says so.
        let mut changes = stack.rt.block_on(init.receive_service_changed())?;
        stack.rt.block_on(init.start("wifid"))?;
        let signalled = stack.rt.block_on(async {
            tokio::time::timeout(WAIT, async {
                while let Some(s) = changes.next().await {
                    if let Ok(a) = s.args() {
                        if a.status.name == "wifid" && a.status.state == "failed" {
                            return true;
                        }
                    }
                }
                false
            })
            .await
        });
        assert!(
            matches!(signalled, Ok(true)),
            "no ServiceChanged(wifid, failed)"
        );
        Ok(())
    });
}

fn kill9(pid: u32) -> TestResult {
    let pid = i32::try_from(pid)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    Ok(())
}

#[test]
fn a_stopped_daemon_is_skipped_and_converges_when_it_starts_again() {
    // The stack runs with test binaries owning netd's and dnsd's names;
    // one of them going away does not stop the rest from working.
    testing::run(LIMIT, |scope| {
        let stack = Stack::start(scope, &[Testd::plain("netd"), Testd::plain("dnsd")])?;
        let init = stack.init()?;
        stack.rt.block_on(init.stop("dnsd"))?;
        stack.wait_service("dnsd", "dnsd stopped", |s| {
            s.state == "stopped" && s.pid == 0
        })?;
        stack.edit(ROUTE_METRIC, "metric = 200")?;
        stack.edit("cache_size = ", "cache_size = 1")?;
        let report = stack.reload(0)?;
        assert_eq!(report.changed, ["routes", "dns"]);
        assert_eq!(stack.record("dnsd").len(), 1, "only its start-up apply");
        stack.rt.block_on(init.start("dnsd"))?;
        stack.wait_service("dnsd", "dnsd running", |s| s.state == "running")?;
        let dnsd = stack.record("dnsd");
        assert_eq!(dnsd.len(), 2, "{dnsd:?}");
        // A start fetches every section dnsd consumes.
        let mut sections = bus_schema::bus::policy::by_service("dnsd")
            .ok_or("no dnsd principal")?
            .sections
            .to_vec();
        sections.sort_unstable();
        assert_eq!(dnsd[1].1, sections);
        assert!(dnsd[1].2.contains("\"cache_size\\\":1"), "{}", dnsd[1].2);
        Ok(())
    });
}

#[test]
fn a_daemon_left_out_of_the_stack_can_be_replaced_by_a_binary_run_by_hand() {
    // What a developer does to try a new dnsd: boot without it, run their
    // own build under its uid, and the rest works unchanged.
    testing::run(LIMIT, |scope| {
        let stack = Stack::start_without(
            scope,
            &[Testd::plain("netd"), Testd::plain("dnsd")],
            &["dnsd"],
        )?;
        assert!(stack.service("dnsd").is_err(), "dnsd was started");
        let record = stack.shared.join("by-hand.jsonl");
        let by_hand = Command::new("setpriv")
            .args(["--reuid=7104", "--regid=7104", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_oxwrt-testd"))
            .args(["--service", "dnsd", "--record"])
            .arg(&record)
            .env_clear()
            .env(bus_schema::bus::BUS_ADDRESS_ENV, stack.bus())
            .spawn()?;
        let _by_hand = KillOnDrop(by_hand);
        wait_until(
            "the hand-run dnsd to own its name",
            Instant::now() + WAIT,
            || {
                busctl(&stack, &["list"]).is_ok_and(|l| l.contains("org.oxwrt.Dns"))
                    && fs::read_to_string(&record).is_ok_and(|r| r.lines().count() == 1)
            },
        )?;
        stack.edit("cache_size = ", "cache_size = 1")?;
        stack.edit(ROUTE_METRIC, "metric = 200")?;
        let report = stack.reload(0)?;
        assert_eq!(report.changed, ["routes", "dns"]);
        let lines = fs::read_to_string(&record)?;
        assert_eq!(lines.lines().count(), 3, "{lines}");
        assert!(
            lines.contains("\"op\":\"apply\",\"sections\":{\"dns\""),
            "{lines}"
        );
        let netd = stack.record("netd");
        assert_eq!(netd.len(), 3, "{netd:?}");
        assert_eq!(netd[2].1, ["routes"]);
        Ok(())
    });
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_broker_keeps_names_and_mutations_to_their_uids() {
    testing::run(LIMIT, |scope| {
        let stack = Stack::start(scope, &[])?;
        let bus = stack.bus();
        // dbus-send as another uid: exit status 0 means the call succeeded.
        let as_uid = |uid: u32, args: &[&str]| -> Result<(bool, String), BoxError> {
            let out = Command::new("setpriv")
                .args([
                    format!("--reuid={uid}"),
                    format!("--regid={uid}"),
                    "--clear-groups".into(),
                    "dbus-send".into(),
                    format!("--bus={bus}"),
                    "--print-reply".into(),
                ])
                .args(args)
                .output()?;
            Ok((
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        };
        let own = |uid: u32, name: &str| {
            let name = format!("string:{name}");
            let args = [
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.RequestName",
                name.as_str(),
                "uint32:4",
            ];
            as_uid(uid, &args)
        };
        let (ok, err) = own(7104, "org.oxwrt.Config")?;
        assert!(
            !ok && err.contains("AccessDenied"),
            "uid 7104 owned org.oxwrt.Config: {err}"
        );
        let (ok, err) = own(7104, "org.oxwrt.Dns")?;
        assert!(ok, "uid 7104 could not own its own name: {err}");
        let (ok, err) = own(7101, "org.oxwrt.Dns")?;
        assert!(
            !ok && err.contains("AccessDenied"),
            "uid 7101 owned org.oxwrt.Dns: {err}"
        );
        let reload = [
            "--dest=org.oxwrt.Config",
            "/org/oxwrt/Config",
            "org.oxwrt.Config1.Reload",
            "boolean:true",
            "uint32:0",
            "string:x",
        ];
        let (ok, err) = as_uid(7101, &reload)?;
        assert!(
            !ok && err.contains("AccessDenied"),
            "uid 7101 called Reload: {err}"
        );
        // Reading is open to the daemons.
        let read = [
            "--dest=org.oxwrt.Config",
            "/org/oxwrt/Config",
            "org.oxwrt.Config1.GetSection",
            "string:system",
        ];
        let (ok, err) = as_uid(7101, &read)?;
        assert!(ok, "uid 7101 could not read: {err}");
        // A uid that is no principal cannot even connect.
        let (ok, _) = as_uid(4242, &read)?;
        assert!(!ok, "uid 4242 reached the bus");
        Ok(())
    });
}

#[test]
fn shutdown_stops_everything_and_leaves_no_process() {
    testing::run(LIMIT, |scope| {
        let mut stack = Stack::start(scope, &[Testd::plain("netd")])?;
        let init = stack.init()?;
        wait_until(
            "netd's ready line in its log",
            Instant::now() + WAIT,
            || {
                stack
                    .rt
                    .block_on(init.logs("netd", 50))
                    .is_ok_and(|logs| logs.iter().any(|l| l.contains("ready")))
            },
        )?;
        let pids: Vec<ProcId> = stack
            .services()?
            .iter()
            .filter_map(|s| ProcId::of(s.pid))
            .collect();
        assert!(pids.len() >= 3, "bus, configd, netd: {pids:?}");
        let status = stack.shutdown()?;
        assert!(status.success(), "oxinit exited with {status}");
        let alive: Vec<u32> = pids
            .iter()
            .filter(|p| p.is_alive())
            .map(|p| p.pid)
            .collect();
        assert!(alive.is_empty(), "left behind: {alive:?}");
        Ok(())
    });
}

#[test]
fn configd_checks_the_caller_itself_when_the_broker_lets_a_call_through() {
    // Defence in depth: a broker that allows everything, and still another
    // uid cannot reload, because configd asks the broker who is calling.
    // (nobody, 65534: dbus-daemon refuses uids without a passwd entry.)
    testing::run(LIMIT, |_| {
        if !nix::unistd::geteuid().is_root() {
            return Err(Box::new(testing::Skip {
                reason: "needs root (to call as another uid)".into(),
            }));
        }
        let dir = tempfile::tempdir()?;
        // The caller of another uid must reach the socket.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let socket = dir.path().join("bus.sock");
        let conf = dir.path().join("bus.conf");
        fs::write(
            &conf,
            format!(
                "<busconfig><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
                 <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\
                 <allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>",
                socket.display()
            ),
        )?;
        let _broker = KillOnDrop(
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", conf.display()))
                .args(["--nofork", "--nopidfile", "--nosyslog"])
                .stdout(std::process::Stdio::null())
                .spawn()?,
        );
        wait_until("the broker", Instant::now() + WAIT, || socket.exists())?;
        let (etc, state) = (dir.path().join("etc"), dir.path().join("state"));
        fs::create_dir_all(&etc)?;
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/");
        fs::copy(format!("{config}oxwrt.toml"), etc.join("oxwrt.toml"))?;
        let secrets = etc.join("oxwrt.secrets.toml");
        fs::copy(format!("{config}oxwrt.secrets.toml.example"), &secrets)?;
        fs::set_permissions(&secrets, fs::Permissions::from_mode(0o600))?;
        let bus = format!("unix:path={}", socket.display());
        let _configd = KillOnDrop(
            Command::new(built("configd")?)
                .env(bus_schema::bus::BUS_ADDRESS_ENV, &bus)
                .env("OXWRT_ETC", &etc)
                .env("OXWRT_STATE", &state)
                .stderr(std::process::Stdio::null())
                .spawn()?,
        );
        let reload = |uid: u32| -> Result<(bool, String), BoxError> {
            let out = Command::new("setpriv")
                .args([format!("--reuid={uid}"), format!("--regid={uid}")])
                .args(["--clear-groups", "dbus-send", &format!("--bus={bus}")])
                .args([
                    "--print-reply",
                    "--dest=org.oxwrt.Config",
                    "/org/oxwrt/Config",
                ])
                .args([
                    "org.oxwrt.Config1.Reload",
                    "boolean:true",
                    "uint32:0",
                    "string:x",
                ])
                .output()?;
            Ok((
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        };
        let (ok, _) = wait_for("configd on the bus", Instant::now() + WAIT, || {
            reload(0).ok().filter(|(ok, _)| *ok)
        })?;
        assert!(ok);
        let (ok, err) = reload(65534)?;
        assert!(!ok, "uid 65534 reloaded");
        assert!(
            err.contains("org.oxwrt.Error.AccessDenied")
                && err.contains("uid 65534 may not call org.oxwrt.Config1.Reload"),
            "{err}"
        );
        Ok(())
    });
}
