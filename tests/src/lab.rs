//! The lab guard: brings a topology up, hands out ways to run things in it,
//! and tears it all down when dropped (also while unwinding from a panic).

use std::collections::hash_map::RandomState;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::exec::{self, ChildGuard, ExecError, ProcId};
use crate::info::{Addresses, LabInfo, Namespaces};
use crate::isp::{self, IspFiles, PAGE_MARKER};
use crate::netns::{self, NetnsError};
use crate::plan::{
    CLIENT_IF, DNS_NAME, HTTP_PORT, ISP_ADDR, ISP_IF, LAN_PREFIX, NS_PREFIX, Plan, ROUTER_LAN_ADDR,
    ROUTER_LAN_IF, ROUTER_WAN_IF, SWITCH_BRIDGE, SWITCH_UPLINK, WAN_PREFIX, in_wan_pool,
};
use crate::state::{self, State, StateError};
use crate::support::{self, SupportError, Tools};
use crate::wait::{WaitError, wait_for, wait_until};
use crate::wan::{self, WanFiles};

/// How long the ISP's servers get to start listening.
const SERVER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the router's WAN gets to obtain a lease.
const LEASE_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of each command of [`Lab::check`].
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Give the router's `lan0` its address statically. netd will own this
    /// address once it exists; then labs that run the stack turn this off.
    pub static_router_lan: bool,
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
            static_router_lan: true,
            state_dir: None,
        }
    }
}

/// Results of [`Lab::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabCheck {
    /// The router's WAN address, from the ISP's DHCP pool.
    pub wan_address: String,
    /// The page the router fetched from the ISP.
    pub http_url: String,
    /// The name the router resolved through the ISP's DNS server.
    pub dns_name: String,
    /// What it resolved to.
    pub dns_answer: String,
    /// The LAN client namespaces that pinged the router's LAN address.
    pub lan_pinged: Vec<String>,
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
    static_router_lan: bool,
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
            static_router_lan: cfg.static_router_lan,
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
        let child = self.start_child(&label, ns, argv)?;
        self.state.processes.push(child.record().clone());
        self.save()?;
        Ok(child)
    }

    /// Hands `child` to the lab: stopped at teardown, kept running by
    /// [`into_detached`](Lab::into_detached).
    pub fn adopt(&mut self, child: ChildGuard) {
        self.children.push(child);
    }

    /// Checks the lab end to end from the router: the WAN lease is from the
    /// ISP's pool, the ISP's page comes over HTTP, the ISP's DNS answers;
    /// and, with a static router LAN address, every LAN client pings it.
    pub fn check(&self) -> Result<LabCheck, LabError> {
        let fail = |what: &str, detail: String| LabError::Check {
            what: what.to_owned(),
            detail,
        };
        let router = &self.plan.router;
        let wan_address = netns::ipv4_addrs(router, ROUTER_WAN_IF)?
            .into_iter()
            .next()
            .ok_or_else(|| fail("router WAN lease", "wan0 has no IPv4 address".into()))?;
        if !wan_address.parse().is_ok_and(in_wan_pool) {
            return Err(fail(
                "router WAN lease",
                format!("{wan_address} is not from the ISP's pool"),
            ));
        }

        let http_url = isp::page_url();
        let curl = self.tool_argv(&self.tools.curl, &["-sS", "--max-time", "5", &http_url]);
        let page = self.ns_exec(router, &curl, CHECK_TIMEOUT)?;
        let body = String::from_utf8_lossy(&page.stdout);
        let own_page = format!("lab {}", self.plan.name);
        if !page.status.success() || !body.contains(PAGE_MARKER) || !body.contains(&own_page) {
            return Err(fail(
                "HTTP from the router",
                format!(
                    "{http_url}: {} {}",
                    page.status,
                    String::from_utf8_lossy(&page.stderr).trim()
                ),
            ));
        }

        let server = format!("@{ISP_ADDR}");
        let dig = self.tool_argv(
            &self.tools.dig,
            &[&server, DNS_NAME, "A", "+short", "+time=2", "+tries=2"],
        );
        let answer = self.ns_exec(router, &dig, CHECK_TIMEOUT)?;
        let dns_answer = String::from_utf8_lossy(&answer.stdout).trim().to_owned();
        if !answer.status.success() || dns_answer != ISP_ADDR.to_string() {
            return Err(fail(
                "DNS from the router",
                format!("{DNS_NAME} resolved to {dns_answer:?}, expected {ISP_ADDR}"),
            ));
        }

        let mut lan_pinged = Vec::new();
        if self.static_router_lan {
            for ns in &self.plan.lan {
                self.wait_ping(ns, &ROUTER_LAN_ADDR.to_string())
                    .map_err(|e| fail(&format!("ping from {ns}"), e.to_string()))?;
                lan_pinged.push(ns.clone());
            }
        }
        Ok(LabCheck {
            wan_address,
            http_url,
            dns_name: DNS_NAME.to_owned(),
            dns_answer,
            lan_pinged,
        })
    }

    /// Waits until `ns` gets an answer to a ping of `addr` (ARP and bridge
    /// learning may take a moment on a fresh link).
    pub fn wait_ping(&self, ns: &str, addr: &str) -> Result<(), LabError> {
        self.check_ns(ns)?;
        let ping = self.tool_argv(&self.tools.busybox, &["ping", "-c", "1", "-W", "1", addr]);
        wait_until(
            &format!("{addr} to answer a ping from {ns}"),
            Instant::now() + CHECK_TIMEOUT,
            || exec::ns_exec(ns, &ping, Duration::from_secs(3)).is_ok_and(|o| o.status.success()),
        )
        .map_err(|source| LabError::Ready {
            source,
            log: self.dir.join("logs"),
        })
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
        if self.plan.owns(ns) {
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

    fn write(&self, path: &Path, contents: &str, mode: u32) -> Result<(), LabError> {
        let err = |source| LabError::WriteFile {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        fs::write(path, contents).map_err(err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)
    }

    fn mkdir(&self, path: &Path) -> Result<(), LabError> {
        fs::create_dir_all(path).map_err(|source| {
            LabError::State(StateError::CreateDir {
                path: path.to_owned(),
                source,
            })
        })
    }

    fn start_child<S: AsRef<OsStr>>(
        &self,
        label: &str,
        ns: &str,
        argv: &[S],
    ) -> Result<ChildGuard, LabError> {
        let logs = self.dir.join("logs");
        self.mkdir(&logs)?;
        ChildGuard::spawn(label, Some(ns), argv, &logs.join(format!("{label}.log"))).map_err(
            |source| LabError::Spawn {
                what: label.to_owned(),
                source,
            },
        )
    }

    /// Starts a process the lab owns.
    fn start<S: AsRef<OsStr>>(
        &mut self,
        label: &str,
        ns: &str,
        argv: &[S],
    ) -> Result<&mut ChildGuard, LabError> {
        let child = self.start_child(label, ns, argv)?;
        self.state.processes.push(child.record().clone());
        self.save()?;
        self.children.push(child);
        let newest = self.children.len() - 1;
        Ok(&mut self.children[newest])
    }

    fn build(&mut self, cfg: &LabConfig) -> Result<(), LabError> {
        self.make_root(cfg.config.as_deref())?;
        let plan = self.plan.clone();
        for ns in plan.namespaces() {
            // Recorded first, so a crash right after creating it still
            // leaves a trace for `Lab::down`.
            self.state.namespaces.push(ns.to_owned());
            self.save()?;
            netns::add(ns)?;
        }

        // isp:eth0 <-> router:wan0
        netns::veth(&plan.isp, ISP_IF, &plan.router, ROUTER_WAN_IF)?;
        netns::add_addr(&plan.isp, ISP_IF, &ISP_ADDR.to_string(), WAN_PREFIX)?;

        // router:lan0 <-> sw:rtr0 in br0 <-> sw:lanN <-> lanN:eth0
        netns::bridge(&plan.switch, SWITCH_BRIDGE)?;
        netns::veth(&plan.router, ROUTER_LAN_IF, &plan.switch, SWITCH_UPLINK)?;
        netns::enslave(&plan.switch, SWITCH_UPLINK, SWITCH_BRIDGE)?;
        for (index, (ns, addr)) in plan.lan.iter().zip(plan.lan_addrs()).enumerate() {
            let port = Plan::switch_port(index);
            netns::veth(&plan.switch, &port, ns, CLIENT_IF)?;
            netns::enslave(&plan.switch, &port, SWITCH_BRIDGE)?;
            // Static until dhcpd exists.
            netns::add_addr(ns, CLIENT_IF, &addr.to_string(), LAN_PREFIX)?;
            netns::default_route(ns, &ROUTER_LAN_ADDR.to_string())?;
        }
        if self.static_router_lan {
            // netd will own this address once it exists.
            netns::add_addr(
                &plan.router,
                ROUTER_LAN_IF,
                &ROUTER_LAN_ADDR.to_string(),
                LAN_PREFIX,
            )?;
        }
        netns::sysctl(&plan.router, "net.ipv4.ip_forward", "1")?;

        self.start_isp()?;
        let router_wan = self.start_wan()?;
        self.info.addresses.router_wan = router_wan;
        self.state.info = Some(self.info.clone());
        self.save()
    }

    fn make_root(&self, config: Option<&Path>) -> Result<(), LabError> {
        let etc = self.info.root.join("etc/oxwrt");
        for dir in [
            &etc,
            &self.info.root.join("run/oxwrt"),
            &self.info.root.join("var/lib/oxwrt"),
        ] {
            self.mkdir(dir)?;
        }
        let Some(config) = config else {
            return Ok(());
        };
        let copy = |from: &Path| -> Result<(), LabError> {
            let to = etc.join(from.file_name().unwrap_or(from.as_os_str()));
            fs::copy(from, &to)
                .map(drop)
                .map_err(|source| LabError::CopyConfig {
                    from: from.to_owned(),
                    to,
                    source,
                })
        };
        if config.is_dir() {
            let entries = fs::read_dir(config).map_err(|source| LabError::CopyConfig {
                from: config.to_owned(),
                to: etc.clone(),
                source,
            })?;
            for entry in entries.filter_map(Result::ok) {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    copy(&entry.path())?;
                }
            }
            Ok(())
        } else {
            copy(config)
        }
    }

    fn start_isp(&mut self) -> Result<(), LabError> {
        let isp_ns = self.plan.isp.clone();
        let files = IspFiles::under(&self.dir.join("isp"));
        self.write(
            &files.www.join("index.html"),
            &isp::page(&self.plan.name),
            0o644,
        )?;
        let isp_addr = ISP_ADDR.to_string();

        let argv = isp::dnsmasq_argv(&self.tools.dnsmasq, &files);
        let dnsmasq = self.start("dnsmasq", &isp_ns, &argv)?;
        wait_child(
            dnsmasq,
            "dnsmasq to serve DNS and DHCP",
            SERVER_TIMEOUT,
            || {
                (netns::listening(&isp_ns, "udp", &isp_addr, 53)
                    && netns::listening(&isp_ns, "udp", &isp_addr, 67))
                .then_some(())
            },
        )?;

        let argv = isp::http_argv(
            self.tools.python3.as_deref(),
            &self.tools.busybox,
            &files.www,
        );
        let http = self.start("http", &isp_ns, &argv)?;
        wait_child(http, "the HTTP server to listen", SERVER_TIMEOUT, || {
            netns::listening(&isp_ns, "tcp", &isp_addr, HTTP_PORT).then_some(())
        })
    }

    fn start_wan(&mut self) -> Result<String, LabError> {
        let router = self.plan.router.clone();
        let files = WanFiles::under(&self.dir.join("wan"));
        self.write(&files.conf, wan::DHCLIENT_CONF, 0o644)?;
        self.write(&files.script, &wan::dhclient_script(&self.tools.ip), 0o755)?;
        let argv = wan::dhclient_argv(&self.tools.dhclient, &files);
        let dhclient = self.start("dhclient", &router, &argv)?;
        wait_child(
            dhclient,
            "the router's WAN to get a lease",
            LEASE_TIMEOUT,
            || {
                netns::ipv4_addrs(&router, ROUTER_WAN_IF)
                    .ok()
                    .and_then(|addrs| addrs.into_iter().next())
            },
        )
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

/// Waits for `ready` to give a value while `child` keeps running.
fn wait_child<T>(
    child: &mut ChildGuard,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, LabError> {
    // `Some(None)` ends the wait early: the child died.
    let result = wait_for(what, Instant::now() + timeout, || {
        if let Some(value) = ready() {
            return Some(Some(value));
        }
        (!child.is_running()).then_some(None)
    });
    let log = child.log_path().to_owned();
    match result {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(LabError::Died {
            process: child.label().to_owned(),
            what: what.to_owned(),
            log,
        }),
        Err(source) => Err(LabError::Ready { source, log }),
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
