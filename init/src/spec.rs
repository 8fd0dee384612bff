//! Declarative service specs: the built-in table and the
//! `--extra-services` file, which uses the same fields.
//!
//! ```toml
//! [[service]]
//! name = "sleeper"                 # required, unique
//! exec = "/bin/sh"                 # absolute, or relative to --bin-dir
//! args = ["-c", "echo ready >&3; exec sleep 1000"]
//! user = 0                         # numeric uid; gid is the same number
//! ready = "fd"                     # "fd" (one line on fd 3) or "spawned"
//! depends_on = ["bus"]
//! phase = "services"               # "bus", "config" or "services"
//! capabilities = []                # kept; every other one is dropped
//! seccomp = "name"                 # a policy of init/sandbox/seccomp.toml
//! landlock = "name"                # a files profile (sandbox/files.rs):
//!                                  # landlock ruleset and mount namespace
//! start_timeout_ms = 30000
//! term_timeout_ms = 5000
//! memory_max = "64M"               # its cgroup's limit (swap included)
//! pids_max = 64                    # tasks (processes and threads)
//! restart = "always"               # "always", "on-failure" or "never"
//! [service.respawn]
//! backoff_min_ms = 100
//! backoff_max_ms = 30000
//! max_crashes = 5
//! window_ms = 60000
//! ```

use std::{collections::HashSet, path::PathBuf, time::Duration};

use serde::Deserialize;

pub use bus_schema::config::wire::RestartPolicy as Restart;

use crate::{
    cgroup::Limits,
    paths::Paths,
    sandbox::{files, seccomp},
};

/// Which boot phase starts a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The bus broker.
    Bus,
    /// configd.
    Config,
    /// Everything else.
    Services,
}

/// When a started service counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// It writes one line to fd 3 (`OXWRT_READY_FD`).
    Fd,
    /// Once it has been exec'd.
    Spawned,
}

/// Respawn policy and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Respawn {
    /// Which ends are followed by a respawn (the config's own enum:
    /// `always`, `on-failure`, `never`).
    pub restart: Restart,
    /// First delay after a crash; doubles per crash.
    pub backoff_min: Duration,
    /// Cap of the delay.
    pub backoff_max: Duration,
    /// This many crashes within `window` mark the service `failed`.
    pub max_crashes: u32,
    /// See `max_crashes`; a run longer than this resets the count.
    pub window: Duration,
}

impl Default for Respawn {
    fn default() -> Self {
        Self {
            restart: Restart::Always,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            max_crashes: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// One supervised service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Unique name.
    pub name: String,
    /// Binary: absolute, or relative to `--bin-dir`.
    pub exec: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// uid (and gid) it runs as.
    pub user: u32,
    /// Capabilities it keeps.
    pub capabilities: Vec<String>,
    /// Its seccomp policy (`init/sandbox/seccomp.toml`), if any.
    pub seccomp: Option<String>,
    /// Its files profile (`sandbox/files.rs`), if any: the landlock
    /// ruleset and the mount namespace with a read-only system.
    pub landlock: Option<String>,
    /// Its cgroup's limits.
    pub limits: Limits,
    /// Services that must be ready before this one starts.
    pub depends_on: Vec<String>,
    /// Readiness protocol.
    pub ready: Ready,
    /// Respawn limits.
    pub respawn: Respawn,
    /// Not ready after this long counts as a crash.
    pub start_timeout: Duration,
    /// SIGTERM, then SIGKILL after this long.
    pub term_timeout: Duration,
    /// Boot phase.
    pub phase: Phase,
    /// Run it in a private mount namespace that sees `$RUN/passwd` as
    /// `/etc/passwd` (only the broker; see `broker.rs`).
    pub passwd_overlay: bool,
    /// Set for a container service of the config's `[[services]]`
    /// (`containers.rs`): the next apply may replace or remove it.
    pub container: Option<Container>,
    /// Keep root's capabilities and skip `no_new_privs` (only the broker
    /// for now: Debian's dbus-daemon, started through a mount namespace).
    /// Every other service, root ones included, keeps exactly
    /// `capabilities`.
    pub privileged: bool,
}

/// What a container service has beyond a spec's common fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// Its gid (the spec's `user` is its uid).
    pub group: u32,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Its root directory, or the host's (read-only) when `None`.
    pub rootfs: Option<PathBuf>,
    /// Isolated: its own network namespace on a LAN; `None` for the
    /// router's (host mode).
    pub network: Option<crate::netns::Isolated>,
}

/// Errors of loading an `--extra-services` file.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a valid service list.
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// Two services with one name.
    #[error("service {0} is declared twice")]
    Duplicate(String),
    /// A service names a seccomp policy `seccomp.toml` does not have.
    #[error("service {0}: unknown seccomp policy {1:?}")]
    UnknownSeccomp(String, String),
    /// A service names a files profile that does not exist.
    #[error("service {0}: unknown files profile (landlock) {1:?}")]
    UnknownFiles(String, String),
    /// A service's `memory_max` is not a size.
    #[error("service {0}: memory_max: {1}")]
    Memory(String, String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFile {
    #[serde(default)]
    service: Vec<WireService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireService {
    name: String,
    exec: PathBuf,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    user: u32,
    #[serde(default)]
    capabilities: Vec<String>,
    seccomp: Option<String>,
    landlock: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default = "default_ready")]
    ready: Ready,
    #[serde(default)]
    respawn: WireRespawn,
    start_timeout_ms: Option<u64>,
    term_timeout_ms: Option<u64>,
    #[serde(default = "default_phase")]
    phase: Phase,
    memory_max: Option<String>,
    pids_max: Option<u32>,
    restart: Option<Restart>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRespawn {
    backoff_min_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    max_crashes: Option<u32>,
    window_ms: Option<u64>,
}

fn default_ready() -> Ready {
    Ready::Fd
}

fn default_phase() -> Phase {
    Phase::Services
}

impl TryFrom<WireService> for ServiceSpec {
    type Error = SpecError;

    fn try_from(w: WireService) -> Result<Self, SpecError> {
        let d = Respawn::default();
        let ms = Duration::from_millis;
        let memory_max = w
            .memory_max
            .as_deref()
            .map(bus_schema::config::value::parse_memory)
            .transpose()
            .map_err(|e| SpecError::Memory(w.name.clone(), e))?;
        let mut spec = ServiceSpec::new(&w.name, w.exec, w.phase);
        spec.limits = Limits {
            memory_max,
            pids_max: w.pids_max,
        };
        spec.args = w.args;
        spec.user = w.user;
        spec.capabilities = w.capabilities;
        spec.seccomp = w.seccomp;
        spec.landlock = w.landlock;
        spec.depends_on = w.depends_on;
        spec.ready = w.ready;
        spec.respawn = Respawn {
            restart: w.restart.unwrap_or(d.restart),
            backoff_min: w.respawn.backoff_min_ms.map_or(d.backoff_min, ms),
            backoff_max: w.respawn.backoff_max_ms.map_or(d.backoff_max, ms),
            max_crashes: w.respawn.max_crashes.unwrap_or(d.max_crashes).max(1),
            window: w.respawn.window_ms.map_or(d.window, ms),
        };
        spec.start_timeout = w.start_timeout_ms.map_or(spec.start_timeout, ms);
        spec.term_timeout = w.term_timeout_ms.map_or(spec.term_timeout, ms);
        Ok(spec)
    }
}

impl ServiceSpec {
    /// A spec with every default: uid 0, ready by fd, no dependencies.
    pub fn new(name: &str, exec: impl Into<PathBuf>, phase: Phase) -> Self {
        Self {
            name: name.to_owned(),
            exec: exec.into(),
            args: Vec::new(),
            user: 0,
            capabilities: Vec::new(),
            seccomp: None,
            landlock: None,
            limits: Limits::default(),
            depends_on: Vec::new(),
            ready: Ready::Fd,
            respawn: Respawn::default(),
            start_timeout: Duration::from_secs(30),
            term_timeout: Duration::from_secs(5),
            phase,
            passwd_overlay: false,
            container: None,
            privileged: false,
        }
    }
}

/// The services oxinit ships, in declaration order.
pub fn builtins(paths: &Paths) -> Vec<ServiceSpec> {
    let mut configd = sandboxed(ServiceSpec::new("configd", "configd", Phase::Config));
    configd.depends_on = vec!["bus".into()];
    configd.limits = daemon_limits(64);
    let netd = daemon(
        "netd",
        &[
            // rtnetlink: links, bridges, addresses, routes.
            "CAP_NET_ADMIN",
            // The DHCP client's socket: SO_BINDTODEVICE on the WAN device.
            "CAP_NET_RAW",
            // The DHCP client's socket: UDP port 68.
            "CAP_NET_BIND_SERVICE",
        ],
    );
    let fwd = daemon(
        "fwd",
        &[
            // nf_tables netlink: its own table.
            "CAP_NET_ADMIN",
        ],
    );
    let dhcpd = daemon(
        "dhcpd",
        &[
            // SO_BINDTODEVICE on each LAN device, and the packet socket for
            // replies to a client's hardware address.
            "CAP_NET_RAW",
            // UDP port 67.
            "CAP_NET_BIND_SERVICE",
        ],
    );
    let mut dnsd = daemon(
        "dnsd",
        &[
            // UDP and TCP port 53.
            "CAP_NET_BIND_SERVICE",
        ],
    );
    // Room for the default cache (10,000 records, about 5 MB measured
    // under the DNS benchmark) many times over, and for blocklists.
    dnsd.limits = daemon_limits(128);
    // No capability: the control plane's default port is not privileged.
    let ctld = daemon("ctld", &[]);
    vec![
        crate::broker::spec(paths),
        configd,
        netd,
        fwd,
        dhcpd,
        dnsd,
        ctld,
    ]
}

/// A config-consuming daemon: its binary of the same name, its uid from
/// the bus policy table, started once configd is ready.
fn daemon(name: &str, capabilities: &[&str]) -> ServiceSpec {
    let mut spec = sandboxed(ServiceSpec::new(name, name, Phase::Services));
    spec.user = bus_schema::bus::policy::by_service(name).map_or(NOBODY, |p| p.uid);
    spec.capabilities = capabilities.iter().map(|c| c.to_string()).collect();
    spec.depends_on = vec!["configd".into()];
    spec.limits = daemon_limits(64);
    spec
}

/// A built-in daemon's cgroup limits: `mib` MiB of memory, and 64 tasks
/// (each runs one tokio thread and a small blocking pool; 64 stops a
/// runaway fork or thread loop long before the router's own limit).
fn daemon_limits(mib: u64) -> Limits {
    Limits {
        memory_max: Some(mib << 20),
        pids_max: Some(64),
    }
}

/// `spec` with the seccomp policy and files profile of its own name.
fn sandboxed(mut spec: ServiceSpec) -> ServiceSpec {
    spec.seccomp = Some(spec.name.clone());
    spec.landlock = Some(spec.name.clone());
    spec
}

/// The uid of a daemon missing from the policy table (a bug caught by a
/// test): one that can do nothing.
const NOBODY: u32 = 65534;

/// Parses an `--extra-services` document.
pub fn parse_extra(text: &str, path: &std::path::Path) -> Result<Vec<ServiceSpec>, SpecError> {
    let wire: WireFile = toml::from_str(text).map_err(|source| SpecError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    wire.service
        .into_iter()
        .map(ServiceSpec::try_from)
        .collect()
}

/// Reads an `--extra-services` file.
pub fn load_extra(path: &std::path::Path) -> Result<Vec<ServiceSpec>, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_extra(&text, path)
}

/// Built-ins, with an extra of the same name replacing the built-in in
/// place, other extras appended, and the `without` names dropped.
pub fn merge(
    builtins: Vec<ServiceSpec>,
    extras: Vec<ServiceSpec>,
    without: &[String],
) -> Result<Vec<ServiceSpec>, SpecError> {
    let mut seen = HashSet::new();
    for e in &extras {
        if !seen.insert(e.name.clone()) {
            return Err(SpecError::Duplicate(e.name.clone()));
        }
    }
    let mut out = builtins;
    for e in extras {
        match out.iter_mut().find(|s| s.name == e.name) {
            Some(slot) => *slot = e,
            None => out.push(e),
        }
    }
    out.retain(|s| !without.contains(&s.name));
    for s in &out {
        if let Some(p) = s.seccomp.as_ref().filter(|p| !seccomp::exists(p)) {
            return Err(SpecError::UnknownSeccomp(s.name.clone(), p.clone()));
        }
        if let Some(p) = s.landlock.as_ref().filter(|p| files::profile(p).is_none()) {
            return Err(SpecError::UnknownFiles(s.name.clone(), p.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const EXTRA: &str = r#"
[[service]]
name = "sleeper"
exec = "/bin/sh"
args = ["-c", "echo ready >&3; exec sleep 1000"]
depends_on = ["bus"]

[[service]]
name = "configd"
exec = "fake-configd"
ready = "spawned"
phase = "config"
term_timeout_ms = 200
[service.respawn]
max_crashes = 2
"#;

    fn paths() -> Paths {
        Paths::new(Path::new("/r"), "/bin".into())
    }

    #[test]
    fn extras_replace_append_and_without_drops() {
        let extra = parse_extra(EXTRA, Path::new("x.toml")).expect("parses");
        let all = merge(
            builtins(&paths()),
            extra,
            &[
                "bus".into(),
                "netd".into(),
                "fwd".into(),
                "dhcpd".into(),
                "dnsd".into(),
                "ctld".into(),
            ],
        )
        .expect("merges");
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["configd", "sleeper"]);
        assert_eq!(all[0].exec, Path::new("fake-configd"));
        assert_eq!(all[0].ready, Ready::Spawned);
        assert_eq!(all[0].term_timeout, Duration::from_millis(200));
        assert_eq!(all[0].respawn.max_crashes, 2);
        assert_eq!(all[0].respawn.window, Duration::from_secs(60));
        assert_eq!(all[1].ready, Ready::Fd);
        assert_eq!(all[1].phase, Phase::Services);
    }

    #[test]
    fn builtin_daemons_run_as_their_policy_uid_with_their_capabilities() {
        let all = builtins(&paths());
        for (name, caps) in [
            (
                "netd",
                &["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"][..],
            ),
            ("fwd", &["CAP_NET_ADMIN"][..]),
            ("dhcpd", &["CAP_NET_RAW", "CAP_NET_BIND_SERVICE"][..]),
            ("dnsd", &["CAP_NET_BIND_SERVICE"][..]),
            ("ctld", &[][..]),
        ] {
            let spec = all.iter().find(|s| s.name == name).expect("builtin");
            let principal = bus_schema::bus::policy::by_service(name).expect("principal");
            assert_eq!(spec.user, principal.uid);
            assert_eq!(spec.capabilities, caps);
            assert_eq!(spec.depends_on, ["configd"]);
        }
    }

    #[test]
    fn builtin_daemons_have_a_sandbox_of_their_own_name() {
        for spec in builtins(&paths()).iter().filter(|s| s.name != "bus") {
            assert_eq!(spec.seccomp.as_deref(), Some(spec.name.as_str()));
            assert_eq!(spec.landlock.as_deref(), Some(spec.name.as_str()));
        }
        merge(builtins(&paths()), vec![], &[]).expect("every builtin profile exists");
    }

    #[test]
    fn unknown_fields_duplicates_and_unknown_profiles_are_refused() {
        let bad = "[[service]]\nname = \"a\"\nexec = \"x\"\nbogus = 1\n";
        assert!(matches!(
            parse_extra(bad, Path::new("x")),
            Err(SpecError::Parse { .. })
        ));
        let twice =
            "[[service]]\nname = \"a\"\nexec = \"x\"\n[[service]]\nname = \"a\"\nexec = \"y\"\n";
        let extra = parse_extra(twice, Path::new("x")).expect("parses");
        assert!(matches!(merge(vec![], extra, &[]), Err(SpecError::Duplicate(n)) if n == "a"));
        let seccomp = "[[service]]\nname = \"a\"\nexec = \"x\"\nseccomp = \"dnsdd\"\n";
        let extra = parse_extra(seccomp, Path::new("x")).expect("parses");
        assert!(
            matches!(merge(vec![], extra, &[]), Err(SpecError::UnknownSeccomp(_, p)) if p == "dnsdd")
        );
        let files = "[[service]]\nname = \"a\"\nexec = \"x\"\nlandlock = \"nope\"\n";
        let extra = parse_extra(files, Path::new("x")).expect("parses");
        assert!(
            matches!(merge(vec![], extra, &[]), Err(SpecError::UnknownFiles(_, p)) if p == "nope")
        );
    }
}
