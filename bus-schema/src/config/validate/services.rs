//! `[[services]]`: operator-declared container services.

use std::collections::BTreeMap;

use super::{BUILTIN_SERVICES, Ctx, Names, all, object_name};
use crate::config::diag::Path;
use crate::config::model::{self, NetworkMode, ServiceNetwork};
use crate::config::value::{parse_ipv4_iface, parse_memory};
use crate::config::wire::{self, NetworkKind};

/// Capability names a service may keep.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_SYS_CHROOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
];

pub(super) fn services(
    ctx: &mut Ctx<'_>,
    list: &[wire::Service],
    nets: &[wire::Network],
    names: &Names<'_>,
) -> Option<Vec<model::Service>> {
    let base = Path::root().key("services");
    ctx.unique_by("service", &base, "name", list, |s| &s.name);
    let mut known: Vec<&str> = BUILTIN_SERVICES.to_vec();
    known.extend(list.iter().map(|s| s.name.as_str()));
    let out = all(list
        .iter()
        .enumerate()
        .map(|(i, s)| service(ctx, &base.idx(i), s, nets, names, &known)))?;
    // Dependencies must form no cycle among declared services.
    let deps: BTreeMap<&str, &[String]> = out
        .iter()
        .map(|s| (s.name.as_str(), s.depends_on.as_slice()))
        .collect();
    for (i, s) in out.iter().enumerate() {
        let mut stack: Vec<&str> = s.depends_on.iter().map(String::as_str).collect();
        let mut seen = Vec::new();
        while let Some(d) = stack.pop() {
            if d == s.name {
                ctx.err(
                    &base.idx(i).key("depends_on"),
                    format!(
                        "service {:?} depends on itself through its dependencies",
                        s.name
                    ),
                );
                return None;
            }
            if !seen.contains(&d) {
                seen.push(d);
                stack.extend(
                    deps.get(d)
                        .into_iter()
                        .flat_map(|v| v.iter().map(String::as_str)),
                );
            }
        }
    }
    Some(out)
}

fn service(
    ctx: &mut Ctx<'_>,
    path: &Path,
    s: &wire::Service,
    nets: &[wire::Network],
    names: &Names<'_>,
    known: &[&str],
) -> Option<model::Service> {
    object_name(ctx, path, &s.name);
    let name_ok = !BUILTIN_SERVICES.contains(&s.name.as_str());
    if !name_ok {
        ctx.err(
            &path.key("name"),
            format!("{:?} is the name of a built-in daemon", s.name),
        );
    }
    let cmd_ok = s.command.first().is_some_and(|p| p.starts_with('/'));
    if !cmd_ok {
        ctx.err(
            &path.key("command"),
            "`command` needs at least the program, as an absolute path",
        );
    }
    let rootfs_ok = s.rootfs.as_ref().is_none_or(|r| r.starts_with('/'));
    if !rootfs_ok {
        ctx.err(&path.key("rootfs"), "`rootfs` must be an absolute path");
    }
    let network = match s.network_mode {
        NetworkMode::Host => {
            ctx.not_applicable(
                path,
                s.network.is_some(),
                "network",
                "services in host network mode",
            );
            ctx.not_applicable(
                path,
                s.address.is_some(),
                "address",
                "services in host network mode",
            );
            (s.network.is_none() && s.address.is_none()).then_some(ServiceNetwork::Host)
        }
        NetworkMode::Isolated => isolated(ctx, path, s, nets, names),
    };
    let mut caps_ok = true;
    for (i, c) in s.capabilities.iter().enumerate() {
        if !CAPABILITIES.contains(&c.as_str()) {
            ctx.err(
                &path.key("capabilities").idx(i),
                format!("unknown or unsupported capability {c:?}"),
            );
            caps_ok = false;
        }
    }
    let memory = ctx.check_opt(
        &path.key("memory_max"),
        s.memory_max.as_deref(),
        parse_memory,
    );
    if s.pids_max == Some(0) {
        ctx.err(&path.key("pids_max"), "pids_max must be at least 1");
    }
    let mut deps_ok = true;
    for (i, d) in s.depends_on.iter().enumerate() {
        let dp = path.key("depends_on").idx(i);
        if d == &s.name {
            ctx.err(&dp, "a service cannot depend on itself");
            deps_ok = false;
        } else if !ctx.reference(&dp, "service", d, known) {
            deps_ok = false;
        }
    }
    let user = match &s.user {
        Some(u) => {
            let parsed = u
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                .filter(|&(uid, _)| uid != 0);
            ctx.check(
                &path.key("user"),
                parsed.ok_or_else(|| format!("invalid user {u:?} (numeric UID:GID, not root)")),
            )
            .map(Some)
        }
        None => Some(None),
    };
    let mut env_ok = true;
    for k in s.environment.keys() {
        let ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            ctx.err(
                &path.key("environment").key(k),
                format!("invalid environment variable name {k:?}"),
            );
            env_ok = false;
        }
    }
    (name_ok && cmd_ok && rootfs_ok && caps_ok && deps_ok && env_ok && s.pids_max != Some(0))
        .then_some(())?;
    Some(model::Service {
        name: s.name.clone(),
        command: s.command.clone(),
        rootfs: s.rootfs.clone(),
        network: network?,
        capabilities: s.capabilities.clone(),
        memory_max: memory?,
        pids_max: s.pids_max,
        depends_on: s.depends_on.clone(),
        restart: s.restart,
        user: user?,
        environment: s.environment.clone(),
    })
}

fn isolated(
    ctx: &mut Ctx<'_>,
    path: &Path,
    s: &wire::Service,
    nets: &[wire::Network],
    names: &Names<'_>,
) -> Option<ServiceNetwork> {
    let context = "services in isolated network mode";
    let network = ctx.required(path, s.network.as_ref(), "network", context)?;
    let address = ctx.required(path, s.address.as_ref(), "address", context)?;
    if !ctx.network_ref(
        &path.key("network"),
        network,
        names,
        &[NetworkKind::Lan],
        "isolated services join",
    ) {
        return None;
    }
    let addr = ctx.check(&path.key("address"), parse_ipv4_iface(address))?;
    let subnet = nets
        .iter()
        .find(|n| &n.name == network)
        .and_then(|n| parse_ipv4_iface(n.address.as_deref()?).ok())?;
    if subnet.trunc() != addr.trunc() {
        ctx.err(
            &path.key("address"),
            format!(
                "{addr} is not in network {network:?}'s subnet {}",
                subnet.trunc()
            ),
        );
        return None;
    }
    if subnet.addr() == addr.addr() {
        ctx.err(
            &path.key("address"),
            format!("{} is the router's own address", addr.addr()),
        );
        return None;
    }
    Some(ServiceNetwork::Isolated {
        network: network.clone(),
        address: addr,
    })
}
