//! A cgroup per service: `memory_max` and `pids_max` from its spec, an
//! OOM kill told apart from any other SIGKILL, and every process a
//! service leaves behind found and killed when its main process ends.
//!
//! oxinit makes one cgroup of its own (`oxwrt-<pid>`, under the cgroup it
//! was started in) and one child per service in it, kept across respawns
//! and removed at shutdown. A service joins its cgroup between fork and
//! exec, before anything else, so nothing it allocates escapes the limit.
//!
//! cgroup v2 is used when the unified hierarchy holds the memory and pids
//! controllers: on the router, where oxinit is PID 1 in the root cgroup
//! and mounts cgroup2 itself. A host whose memory and pids controllers are
//! bound to cgroup v1 hierarchies (a hybrid layout, this project's CI
//! machines among them) gets the same from those two v1 hierarchies.
//! Where neither works, services run without limits and oxinit says so
//! once at start-up ([`Cgroups::setup`] returns the reason).

use std::{
    fs, io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

/// Which hierarchy a cgroup directory belongs to: the files differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// cgroup v2: memory and pids in one directory.
    Unified,
    /// cgroup v1's memory hierarchy.
    Memory,
    /// cgroup v1's pids hierarchy.
    Pids,
}

impl Kind {
    /// The memory limit's file and its value for `bytes` (none: no limit).
    fn memory_limit(self, bytes: Option<u64>) -> Option<(&'static str, String)> {
        match self {
            Kind::Unified => Some(("memory.max", bytes.map_or("max".into(), |b| b.to_string()))),
            Kind::Memory => Some((
                "memory.limit_in_bytes",
                bytes.map_or("-1".into(), |b| b.to_string()),
            )),
            Kind::Pids => None,
        }
    }

    /// The file holding the `oom_kill` counter.
    fn oom_events(self) -> Option<&'static str> {
        match self {
            Kind::Unified => Some("memory.events"),
            Kind::Memory => Some("memory.oom_control"),
            Kind::Pids => None,
        }
    }

    fn has_pids(self) -> bool {
        matches!(self, Kind::Unified | Kind::Pids)
    }
}

/// oxinit's own cgroups, one per hierarchy used.
#[derive(Debug)]
pub struct Cgroups {
    bases: Vec<(Kind, PathBuf)>,
}

/// One service's cgroup (a directory per hierarchy).
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<(Kind, PathBuf)>,
}

/// Limits a cgroup enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Bytes of memory (swap included: none may be used).
    pub memory_max: Option<u64>,
    /// Tasks (processes and threads).
    pub pids_max: Option<u32>,
}

/// A mounted cgroup hierarchy (from `/proc/self/mountinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// Where it is mounted.
    at: PathBuf,
    /// The cgroup shown at `at` (not `/` inside a cgroup namespace).
    root: String,
    /// cgroup2, or the v1 controllers it holds.
    v1: Option<Vec<String>>,
}

/// Every cgroup mount in a `mountinfo` text.
fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let (root, at) = (fields.get(3)?, fields.get(4)?);
            let v1 = match fstype {
                "cgroup2" => None,
                "cgroup" => Some(options.split(',').map(str::to_owned).collect()),
                _ => return None,
            };
            Some(Mount {
                at: PathBuf::from(unescape(at)),
                root: unescape(root),
                v1,
            })
        })
        .collect()
}

/// `mountinfo` escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The cgroup path of this process in the hierarchy whose
/// `/proc/self/cgroup` controller list is `controllers` ("" for v2).
fn own_path(proc_cgroup: &str, wanted: impl Fn(&str) -> bool) -> Option<&str> {
    proc_cgroup.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_id, controllers, path) = (f.next()?, f.next()?, f.next()?);
        wanted(controllers).then_some(path)
    })
}

/// The directory of cgroup `path` in mount `m`.
fn directory(m: &Mount, path: &str) -> PathBuf {
    let inside = path
        .strip_prefix(m.root.as_str())
        .unwrap_or(path)
        .trim_start_matches('/');
    m.at.join(inside)
}

/// The hierarchies to use: the unified one when its cgroup here holds
/// memory and pids, else v1's memory and pids hierarchies.
fn choose(mountinfo: &str, proc_cgroup: &str) -> Result<Vec<(Kind, PathBuf)>, String> {
    let mounts = mounts(mountinfo);
    let unified = mounts.iter().find(|m| m.v1.is_none()).and_then(|m| {
        let dir = directory(m, own_path(proc_cgroup, str::is_empty)?);
        let controllers = fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        (has("memory") && has("pids")).then_some(dir)
    });
    if let Some(dir) = unified {
        return Ok(vec![(Kind::Unified, dir)]);
    }
    let mut out = Vec::new();
    for (kind, controller) in [(Kind::Memory, "memory"), (Kind::Pids, "pids")] {
        let holds = |list: &str| list.split(',').any(|c| c == controller);
        let m = mounts
            .iter()
            .find(|m| {
                m.v1.as_ref()
                    .is_some_and(|o| o.iter().any(|c| c == controller))
            })
            .ok_or_else(|| {
                format!("no cgroup hierarchy (v2 or v1) holds the {controller} controller")
            })?;
        let path = own_path(proc_cgroup, holds)
            .ok_or_else(|| format!("/proc/self/cgroup has no {controller} line"))?;
        out.push((kind, directory(m, path)));
    }
    Ok(out)
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("write {value:?} to {}: {e}", dir.join(file).display()),
        )
    })
}

fn mkdir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io::Error::new(
            e.kind(),
            format!("create cgroup {}: {e}", dir.display()),
        )),
        _ => Ok(()),
    }
}

impl Cgroups {
    /// Makes oxinit's own cgroup in each hierarchy used. `Err` says why
    /// services will run without cgroups.
    pub fn setup() -> Result<Self, String> {
        let read = |p: &str| fs::read_to_string(p).map_err(|e| format!("read {p}: {e}"));
        let chosen = choose(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)?;
        let name = format!("oxwrt-{}", std::process::id());
        let mut bases = Vec::new();
        for (kind, own) in chosen {
            let base = own.join(&name);
            if kind == Kind::Unified {
                // A v2 cgroup passes controllers to its children only when
                // it holds no process itself (the root cgroup excepted):
                // fine for PID 1, refused (EBUSY) inside a busy cgroup.
                write(&own, "cgroup.subtree_control", "+memory +pids")
                    .map_err(|e| e.to_string())?;
                mkdir(&base).map_err(|e| e.to_string())?;
                write(&base, "cgroup.subtree_control", "+memory +pids")
                    .map_err(|e| e.to_string())?;
            } else {
                mkdir(&base).map_err(|e| e.to_string())?;
            }
            bases.push((kind, base));
        }
        Ok(Self { bases })
    }

    /// Service `name`'s cgroup with `limits`, made or updated.
    pub fn service(&self, name: &str, limits: Limits) -> io::Result<Cgroup> {
        let cgroup = Cgroup {
            dirs: self
                .bases
                .iter()
                .map(|(kind, base)| (*kind, base.join(name)))
                .collect(),
        };
        for (kind, dir) in &cgroup.dirs {
            mkdir(dir)?;
            if let Some((file, value)) = kind.memory_limit(limits.memory_max) {
                set_memory(*kind, dir, file, &value)?;
            }
            if kind.has_pids() {
                let value = limits.pids_max.map_or("max".into(), |n| n.to_string());
                write(dir, "pids.max", &value)?;
            }
        }
        Ok(cgroup)
    }

    /// Removes every service's cgroup and oxinit's own; once every
    /// process is gone (shutdown).
    pub fn remove(&self) {
        for (_, base) in &self.bases {
            if let Ok(entries) = fs::read_dir(base) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        remove_dir(&e.path());
                    }
                }
            }
            remove_dir(base);
        }
    }
}

/// Sets the memory limit; swap is held to the same total (v2:
/// `memory.swap.max` 0, v1: `memory.memsw.limit_in_bytes`, which may not
/// go below the plain limit, hence the order), and a v2 OOM kill takes
/// the whole service, not one of its processes.
fn set_memory(kind: Kind, dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let optional = |file: &str, value: &str| {
        if dir.join(file).exists() {
            write(dir, file, value)
        } else {
            Ok(())
        }
    };
    match kind {
        Kind::Unified => {
            write(dir, file, value)?;
            optional("memory.swap.max", "0")?;
            optional("memory.oom.group", "1")
        }
        _ => {
            optional("memory.memsw.limit_in_bytes", "-1")?;
            write(dir, file, value)?;
            optional("memory.memsw.limit_in_bytes", value)
        }
    }
}

/// rmdir, retried for a moment: a killed process leaves its cgroup only
/// once it has been reaped.
fn remove_dir(dir: &Path) {
    for _ in 0..50 {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return tracing::warn!("remove cgroup {}: {e}", dir.display());
            }
            _ => return,
        }
    }
    tracing::warn!("remove cgroup {}: still busy", dir.display());
}

impl Cgroup {
    /// Its `cgroup.procs` files, open for writing: the child writes `0`
    /// to each between fork and exec ([`join`]).
    pub fn procs(&self) -> io::Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|(_, dir)| {
                let path = dir.join("cgroup.procs");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
            })
            .collect()
    }

    /// OOM kills in it so far (0 when the kernel does not count them).
    pub fn oom_kills(&self) -> u64 {
        self.dirs
            .iter()
            .filter_map(|(kind, dir)| fs::read_to_string(dir.join(kind.oom_events()?)).ok())
            .filter_map(|text| oom_kill_count(&text))
            .sum()
    }

    /// SIGKILLs every process left in it.
    pub fn kill_all(&self) {
        use nix::{sys::signal, unistd::Pid};
        for (_, dir) in &self.dirs {
            let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) else {
                continue;
            };
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = signal::kill(Pid::from_raw(pid), signal::Signal::SIGKILL);
            }
        }
    }
}

/// The `oom_kill` line of `memory.events` (v2) or `memory.oom_control`
/// (v1).
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// Runs in the child between fork and exec: moves it into the cgroups
/// whose `cgroup.procs` files `procs` are ("0" means the writer).
pub fn join(procs: &[OwnedFd]) -> io::Result<()> {
    for fd in procs {
        // write(2), async-signal-safe.
        nix::unistd::write(fd, b"0")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
40 35 0:35 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 35 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
42 35 0:37 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
43 35 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
8:pids:/
4:memory:/process_api/abc
2:cpu,cpuacct:/
0::/
";

    #[test]
    fn mountinfo_gives_each_hierarchy_and_its_controllers() {
        let m = mounts(HYBRID);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].at, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(
            m[0].v1.as_deref(),
            Some(&["rw".into(), "memory".into()][..])
        );
        assert_eq!(m[3].at, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(m[3].v1, None);
        assert_eq!(unescape(r"/a\040b\\c"), r"/a b\\c");
    }

    #[test]
    fn a_hybrid_host_uses_v1_memory_and_pids_at_its_own_cgroups() {
        // The unified hierarchy's cgroup.controllers does not exist here
        // (no such directory under a test's /sys), so v1 is chosen.
        let chosen = choose(
            &HYBRID.replace("/sys/fs/cgroup/unified", "/nonexistent/unified"),
            HYBRID_SELF,
        )
        .expect("v1");
        assert_eq!(
            chosen,
            [
                (
                    Kind::Memory,
                    PathBuf::from("/sys/fs/cgroup/memory/process_api/abc")
                ),
                (Kind::Pids, PathBuf::from("/sys/fs/cgroup/pids")),
            ]
        );
        let no_pids: String = HYBRID
            .lines()
            .filter(|l| !l.contains("pids"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = choose(&no_pids, HYBRID_SELF).expect_err("no pids");
        assert!(err.contains("pids controller"), "{err}");
    }

    #[test]
    fn a_cgroup_namespace_root_is_stripped() {
        let m = Mount {
            at: "/sys/fs/cgroup".into(),
            root: "/lab".into(),
            v1: None,
        };
        assert_eq!(directory(&m, "/lab/x"), Path::new("/sys/fs/cgroup/x"));
        assert_eq!(directory(&m, "/"), Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn the_oom_kill_counter_is_read_from_either_file() {
        let v2 = "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n";
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(oom_kill_count(v2), Some(2));
        assert_eq!(oom_kill_count(v1), Some(3));
        assert_eq!(oom_kill_count("oom 1\n"), None);
    }

    #[test]
    fn limits_map_to_each_hierarchys_files() {
        assert_eq!(
            Kind::Unified.memory_limit(Some(1 << 20)),
            Some(("memory.max", "1048576".into()))
        );
        assert_eq!(
            Kind::Memory.memory_limit(None),
            Some(("memory.limit_in_bytes", "-1".into()))
        );
        assert_eq!(Kind::Pids.memory_limit(Some(1)), None);
        assert!(Kind::Pids.has_pids() && Kind::Unified.has_pids() && !Kind::Memory.has_pids());
    }
}
