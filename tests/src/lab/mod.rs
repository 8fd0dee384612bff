//! The lab guard: brings a topology up, hands out ways to run things in it,
//! and tears it all down when dropped (also while unwinding from a panic).

mod boot;
mod bringup;
mod check;

use std::collections::hash_map::RandomState;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::exec::{self, ChildGuard, ExecError, ProcId};
use crate::info::{Addresses, LabInfo, Namespaces};
use crate::netns::{self, NetnsError};
use crate::plan::{ISP_ADDR, NS_PREFIX, Plan, ROUTER_LAN_ADDR};
use crate::state::{self, State, StateError};
use crate::support::{self, SupportError, Tools};
use crate::wait::WaitError;

pub use boot::{Boot, LAB_CONFIG_DIR};
pub use check::LabCheck;

/// Errors of bringing up, using and tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The machine cannot run the lab, or lacks a program.
    #[error(transparent)]
    Support(#[from] SupportError),
    /// The requested name or size is not valid.
    #[error("invalid lab {name:?}: {reason}")]
    CheckName { name: String, reason: String },
    /// A lab of that name exists already.
    #[error(
        "lab {name} is already up (state in {dir}); `cargo xtask lab down --name {name}` removes it"
    )]
    ClaimName { name: String, dir: PathBuf },
    /// Reading or writing the state file failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A file of the lab could not be written.
    #[error("cannot write {path}: {source}")]
    WriteFile { path: PathBuf, source: io::Error },
    /// The router's configuration could not be copied into its root.
    #[error("cannot copy config {from} to {to}: {source}")]
    CopyConfig {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    /// Setting up namespaces, links or addresses failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A long-running process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn { what: String, source: ExecError },
    /// Something did not become ready in time, or died while starting.
    #[error("{source} (log: {log})")]
    Ready { source: WaitError, log: PathBuf },
    /// A process of the lab exited while the lab waited for it.
    #[error("{process} exited while waiting for {what} (log: {log})")]
    Died {
        process: String,
        what: String,
        log: PathBuf,
    },
    /// A command was aimed at a namespace outside the lab.
    #[error("{ns} is not a namespace of lab {name}")]
    UnknownNamespace { name: String, ns: String },
    /// Running a command failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A check of the running lab failed.
    #[error("check failed: {what}: {detail}")]
    Check { what: String, detail: String },
    /// There is no lab of that name.
    #[error("no lab named {name} (no {dir} and no namespaces of that name)")]
    NotFound { name: String, dir: PathBuf },
    /// Tearing down left something behind.
    #[error("teardown of lab {name} left things behind: {}", errors.join("; "))]
    Teardown { name: String, errors: Vec<String> },
}

impl LabError {
    /// Why the lab cannot run on this machine at all, if that is the error:
    /// tests print `SKIP: <reason>` instead of failing.
    pub fn skip_reason(&self) -> Option<&str> {
        match self {
            LabError::Support(SupportError::Unsupported { reason }) => Some(reason),
            _ => None,
        }
    }
}

/// What lab to bring up.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The lab's name; `None` picks a unique one. A named lab fails to come
    /// up while another lab of that name exists.
    pub name: Option<String>,
    /// How many LAN clients hang off the switch.
    pub lan_clients: usize,
    /// A config file (or a directory of them) copied into the router's
    /// `etc/oxwrt`.
    pub config: Option<PathBuf>,
    /// The lab sets the router up by hand: `lan0` gets its address and
    /// dhclient leases `wan0`. Off when the oxwrt stack runs in the router
    /// (netd owns both then; see [`Lab::boot`] and
    /// [`Lab::wait_router_wan`]).
    pub manual_router: bool,
    /// Where lab directories live; `None` means
    /// [`default_state_dir`](crate::default_state_dir).
    pub state_dir: Option<PathBuf>,
}

impl Default for LabConfig {
    fn default() -> LabConfig {
        LabConfig {
            name: None,
            lan_clients: 1,
            config: None,
            manual_router: true,
            state_dir: None,
        }
    }
}

/// A running lab. Dropping it tears everything down: processes stopped and
/// reaped, namespaces deleted, directory removed; see
/// [`into_detached`](Lab::into_detached) to keep it running instead.
#[derive(Debug)]
pub struct Lab {
    plan: Plan,
    dir: PathBuf,
    state: State,
    children: Vec<ChildGuard>,
    info: LabInfo,
    tools: Tools,
    manual_router: bool,
    spawned: usize,
    armed: bool,
}

impl Lab {
    /// Brings a lab up and returns once it is ready: the ISP's DHCP, DNS and
    /// HTTP servers listen and the router's WAN has a lease. On any error,
    /// whatever was created is removed again. Also tears down labs in the
    /// same state directory whose owner died without doing so.
    pub fn up(cfg: LabConfig) -> Result<Lab, LabError> {
        support::check_kernel()?;
        let tools = Tools::find()?;
        let state_dir = cfg
            .state_dir
            .clone()
            .unwrap_or_else(state::default_state_dir);
        state::prepare_state_dir(&state_dir)?;
        state::reap_orphans(&state_dir);
        support::reap_probes();
        let (plan, dir) = claim(&state_dir, cfg.name.as_deref(), cfg.lan_clients)?;
        let info = placeholder_info(&plan, &dir);
        let mut lab = Lab {
            state: State {
                name: plan.name.clone(),
                owner: ProcId::this(),
                ..State::default()
            },
            plan,
            dir,
            children: Vec::new(),
            info,
            tools,
            manual_router: cfg.manual_router,
            spawned: 0,
            armed: true,
        };
        // From here on, an early return drops `lab`, which tears down.
        lab.save()?;
        lab.build(&cfg)?;
        Ok(lab)
    }

    /// Tears down lab `name` in the default state directory, wherever it was
    /// brought up: kills its recorded processes, deletes its namespaces,
    /// removes its directory. [`LabError::NotFound`] if there is no trace of it.
    pub fn down(name: &str) -> Result<(), LabError> {
        Lab::down_in(&state::default_state_dir(), name)
    }

    /// [`Lab::down`] for labs in `state_dir`.
    pub fn down_in(state_dir: &Path, name: &str) -> Result<(), LabError> {
        crate::plan::check_name(name).map_err(|reason| LabError::CheckName {
            name: name.to_owned(),
            reason,
        })?;
        let dir = state_dir.join(name);
        let mut errors = Vec::new();
        let state = match State::load(&dir) {
            Ok(state) if state.name == name => state,
            Ok(_) => {
                errors.push(format!("{} names another lab", State::path(&dir).display()));
                State::default()
            }
            Err(StateError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                State::default()
            }
            Err(e) => {
                errors.push(e.to_string());
                State::default()
            }
        };
        let state = State {
            name: name.to_owned(),
            ..state
        };
        let leftovers = netns::list()?
            .into_iter()
            .any(|ns| Plan::is_lab_namespace(name, &ns));
        if !dir.exists() && !leftovers {
            return Err(LabError::NotFound {
                name: name.to_owned(),
                dir,
            });
        }
        if let Err(more) = state.teardown(&dir) {
            errors.extend(more);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown {
                name: name.to_owned(),
                errors,
            })
        }
    }

    /// The lab as published: names, addresses, directories.
    pub fn info(&self) -> &LabInfo {
        &self.info
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        &self.plan.name
    }

    /// The lab's directory (state file, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The router's root directory.
    pub fn root(&self) -> &Path {
        &self.info.root
    }

    /// The lab's namespaces.
    pub fn namespaces(&self) -> &Namespaces {
        &self.info.namespaces
    }

    /// Runs `argv` in namespace `ns` of this lab, killing it after `timeout`;
    /// a non-zero exit status is returned, not an error.
    pub fn ns_exec<S: AsRef<OsStr>>(
        &self,
        ns: &str,
        argv: &[S],
        timeout: Duration,
    ) -> Result<Output, LabError> {
        self.check_ns(ns)?;
        Ok(exec::ns_exec(ns, argv, timeout)?)
    }

    /// Like [`ns_exec`](Lab::ns_exec), but a non-zero exit status is an error.
    pub fn ns_exec_ok<S: AsRef<OsStr>>(
        &self,
        ns: &str,
        argv: &[S],
        timeout: Duration,
    ) -> Result<Output, LabError> {
        self.check_ns(ns)?;
        Ok(exec::ns_exec_ok(ns, argv, timeout)?)
    }

    /// Starts a long-running `argv` in namespace `ns` of this lab, output to
    /// a log file in the lab's `logs/`. The guard stops it when dropped; the
    /// lab stops it at teardown anyway (see [`adopt`](Lab::adopt) to hand it
    /// to the lab).
    pub fn spawn<S: AsRef<OsStr>>(&mut self, ns: &str, argv: &[S]) -> Result<ChildGuard, LabError> {
        self.spawn_joining(ns, argv, true)
    }

    /// Like [`spawn`](Lab::spawn), but joins only `ns`'s network namespace
    /// (`nsenter --net`), not the mount namespace with a fresh `/sys` that
    /// `ip netns exec` makes: the process keeps the host's mounts, its
    /// cgroup hierarchies among them, as oxinit has on a router.
    pub fn spawn_net_only<S: AsRef<OsStr>>(
        &mut self,
        ns: &str,
        argv: &[S],
    ) -> Result<ChildGuard, LabError> {
        self.spawn_joining(ns, argv, false)
    }

    fn spawn_joining<S: AsRef<OsStr>>(
        &mut self,
        ns: &str,
        argv: &[S],
        mounts: bool,
    ) -> Result<ChildGuard, LabError> {
        self.check_ns(ns)?;
        self.spawned += 1;
        let role = ns
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.strip_prefix(self.plan.name.as_str()))
            .map_or(ns, |role| role.trim_start_matches('-'));
        let program = argv
            .first()
            .and_then(|p| Path::new(p.as_ref()).file_name())
            .map_or_else(|| "cmd".into(), |p| p.to_string_lossy().into_owned());
        let label = format!("{role}-{program}-{}", self.spawned);
        let child = if mounts {
            self.start_child(&label, Some(ns), argv)?
        } else {
            let mut full: Vec<OsString> = vec![
                "nsenter".into(),
                format!("--net=/run/netns/{ns}").into(),
                "--".into(),
            ];
            full.extend(argv.iter().map(|a| a.as_ref().to_owned()));
            self.start_child(&label, None, &full)?
        };
        self.state.processes.push(child.record().clone());
        self.save()?;
        Ok(child)
    }

    /// Hands `child` to the lab: stopped at teardown, kept running by
    /// [`into_detached`](Lab::into_detached).
    pub fn adopt(&mut self, child: ChildGuard) {
        self.children.push(child);
    }

    /// Keeps the lab running after this guard is gone (and after this
    /// process exits): its state file then says it is detached, and
    /// [`Lab::down`] removes it. Returns the lab's info.
    pub fn into_detached(mut self) -> Result<LabInfo, LabError> {
        self.state.detached = true;
        self.state.owner = None;
        if let Err(e) = self.save() {
            // Not recorded as detached: tear down as usual (on drop).
            self.state.detached = false;
            return Err(e);
        }
        for child in self.children.drain(..) {
            child.detach();
        }
        self.armed = false;
        Ok(self.info.clone())
    }

    /// Tears the lab down now, reporting what could not be removed (dropping
    /// the guard does the same and prints failures to stderr).
    pub fn teardown(mut self) -> Result<(), LabError> {
        self.teardown_now().map_err(|errors| LabError::Teardown {
            name: self.plan.name.clone(),
            errors,
        })
    }

    fn teardown_now(&mut self) -> Result<(), Vec<String>> {
        self.armed = false;
        // Newest first, each stopped and reaped by its guard.
        while let Some(child) = self.children.pop() {
            let _ = child.stop();
        }
        self.state.teardown(&self.dir)
    }

    fn check_ns(&self, ns: &str) -> Result<(), LabError> {
        if self.plan.owns(ns) || self.state.namespaces.iter().any(|n| n == ns) {
            Ok(())
        } else {
            Err(LabError::UnknownNamespace {
                name: self.plan.name.clone(),
                ns: ns.to_owned(),
            })
        }
    }

    fn tool_argv(&self, tool: &Path, args: &[&str]) -> Vec<OsString> {
        let mut argv = vec![tool.as_os_str().to_owned()];
        argv.extend(args.iter().map(OsString::from));
        argv
    }

    fn save(&self) -> Result<(), LabError> {
        Ok(self.state.save(&self.dir)?)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(errors) = self.teardown_now() {
            eprintln!(
                "oxwrt-lab: teardown of lab {} left things behind: {}",
                self.plan.name,
                errors.join("; ")
            );
        }
    }
}

/// Picks the lab's name and creates its directory, which is what reserves
/// the name (`create_dir` is atomic).
fn claim(
    state_dir: &Path,
    name: Option<&str>,
    lan_clients: usize,
) -> Result<(Plan, PathBuf), LabError> {
    let invalid = |name: &str, reason| LabError::CheckName {
        name: name.to_owned(),
        reason,
    };
    if let Some(name) = name {
        let plan = Plan::new(name, lan_clients).map_err(|r| invalid(name, r))?;
        let dir = state_dir.join(name);
        let taken = || LabError::ClaimName {
            name: name.to_owned(),
            dir: dir.clone(),
        };
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(taken()),
            Err(source) => return Err(StateError::CreateDir { path: dir, source }.into()),
        }
        if plan.namespaces().into_iter().any(netns::exists) {
            let _ = fs::remove_dir(&dir);
            return Err(taken());
        }
        return Ok((plan, dir));
    }
    let mut last = None;
    for _ in 0..16 {
        let name = fresh_name();
        let plan = Plan::new(&name, lan_clients).map_err(|r| invalid(&name, r))?;
        let dir = state_dir.join(&name);
        match fs::create_dir(&dir) {
            Ok(()) if !plan.namespaces().into_iter().any(netns::exists) => return Ok((plan, dir)),
            Ok(()) => {
                let _ = fs::remove_dir(&dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(StateError::CreateDir { path: dir, source }.into()),
        }
        last = Some(dir);
    }
    Err(LabError::ClaimName {
        name: "(random)".into(),
        dir: last.unwrap_or_else(|| state_dir.to_owned()),
    })
}

/// A short name unlikely to be in use: six hex digits.
fn fresh_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    format!("{:06x}", hasher.finish() & 0xff_ffff)
}

fn placeholder_info(plan: &Plan, dir: &Path) -> LabInfo {
    LabInfo {
        name: plan.name.clone(),
        dir: dir.to_owned(),
        root: dir.join("root"),
        namespaces: Namespaces {
            isp: plan.isp.clone(),
            router: plan.router.clone(),
            switch: plan.switch.clone(),
            lan: plan.lan.clone(),
        },
        addresses: Addresses {
            router_lan: ROUTER_LAN_ADDR.to_string(),
            router_wan: String::new(),
            isp: ISP_ADDR.to_string(),
            lan: plan.lan_addrs().iter().map(ToString::to_string).collect(),
        },
        bus: None,
        control: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_are_valid_and_differ() {
        let a = fresh_name();
        let b = fresh_name();
        assert!(crate::plan::check_name(&a).is_ok(), "{a}");
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
    }

    #[test]
    fn only_unsupported_is_a_skip() {
        let skip = LabError::Support(SupportError::Unsupported {
            reason: "not root".into(),
        });
        assert_eq!(skip.skip_reason(), Some("not root"));
        let missing = LabError::Support(SupportError::FindTool {
            tool: "dnsmasq",
            package: "dnsmasq-base",
        });
        assert_eq!(missing.skip_reason(), None);
    }

    #[test]
    fn placeholder_info_has_the_plan() -> Result<(), String> {
        let plan = Plan::new("t1", 2)?;
        let info = placeholder_info(&plan, Path::new("/x/t1"));
        assert_eq!(info.root, Path::new("/x/t1/root"));
        assert_eq!(info.namespaces.lan, ["oxl-t1-lan1", "oxl-t1-lan2"]);
        assert_eq!(info.addresses.lan, ["192.168.1.10", "192.168.1.11"]);
        Ok(())
    }
}
