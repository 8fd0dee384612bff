//! Wire config → validated model, collecting every finding at once.
//!
//! Each section's checker parses every field of an item before it builds
//! the item (`Option` fields, then `?`), so one bad value never hides the
//! next one.

mod firewall;
mod lan;
mod misc;
mod network;
mod services;
mod wireless;

use std::collections::{BTreeMap, BTreeSet};

use super::diag::{Diagnostic, Path, Severity, SourceFile};
use super::model::Config;
use super::secret::{Secret, SecretField};
use super::wire;

/// Built-in daemons and init: service names reserved for them.
pub const BUILTIN_SERVICES: &[&str] = &[
    "oxinit", "bus", "configd", "netd", "fwd", "dhcpd", "dnsd", "wifid", "ctld",
];

/// The secrets file, parsed: each secret with its TOML path for locating it.
#[derive(Debug, Default)]
pub(crate) struct Secrets {
    /// Valid secrets by name.
    pub values: BTreeMap<String, Secret>,
    /// Names present but invalid, already reported: references to them
    /// are not reported again.
    pub broken: BTreeSet<String>,
    /// The file did not parse (already reported): no reference is reported.
    pub unparsable: bool,
}

/// How far the secrets file is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretsMode {
    /// Parsed from its text.
    Present,
    /// Known not to exist.
    Missing,
    /// Not at hand: references are not checked.
    Unchecked,
}

/// Collects findings while checking one config pair.
pub(crate) struct Ctx<'a> {
    public: &'a SourceFile,
    secrets_src: &'a SourceFile,
    secrets: &'a Secrets,
    secrets_mode: SecretsMode,
    used_secrets: BTreeSet<String>,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    /// A context for the given files.
    pub fn new(
        public: &'a SourceFile,
        secrets_src: &'a SourceFile,
        secrets: &'a Secrets,
        secrets_mode: SecretsMode,
    ) -> Self {
        Self {
            public,
            secrets_src,
            secrets,
            secrets_mode,
            used_secrets: BTreeSet::new(),
            diags: Vec::new(),
        }
    }

    /// An error at `path` in the public file.
    pub fn err(&mut self, path: &Path, msg: impl Into<String>) {
        let d = self.public.diag_at(Severity::Error, path, msg.into());
        self.diags.push(d);
    }

    /// A warning at `path` in the public file.
    pub fn warn(&mut self, path: &Path, msg: impl Into<String>) {
        let d = self.public.diag_at(Severity::Warning, path, msg.into());
        self.diags.push(d);
    }

    /// The value of a parse, or an error at `path`.
    pub fn check<T>(&mut self, path: &Path, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.err(path, m)).ok()
    }

    /// Parses an optional value: `Some(None)` when absent, `None` after an
    /// error at `path`.
    pub fn check_opt<V: ?Sized, T>(
        &mut self,
        path: &Path,
        value: Option<&V>,
        parse: impl FnOnce(&V) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match value {
            None => Some(None),
            Some(v) => self.check(path, parse(v)).map(Some),
        }
    }

    /// Resolves a secret field against the secrets file, checking the value
    /// with `check` (errors about the value point into the secrets file).
    pub fn secret(
        &mut self,
        path: &Path,
        field: &SecretField,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Option<Secret> {
        let name = match field {
            SecretField::Inline(_) => {
                let leaf = path
                    .segments()
                    .last()
                    .map(|s| match s {
                        super::diag::Seg::Key(k) => k.clone(),
                        super::diag::Seg::Index(_) => "value".into(),
                    })
                    .unwrap_or_default();
                self.err(
                    path,
                    format!(
                        "secret value written in {}; move it to {} as NAME = \"...\" and write {leaf} = {{ secret = \"NAME\" }} here",
                        self.public.name(),
                        self.secrets_src.name()
                    ),
                );
                return None;
            }
            SecretField::Ref(name) => name,
        };
        self.used_secrets.insert(name.clone());
        if self.secrets_mode == SecretsMode::Unchecked {
            return Some(Secret::new(String::new()));
        }
        if self.secrets.unparsable || self.secrets.broken.contains(name) {
            return None;
        }
        let Some(value) = self.secrets.values.get(name) else {
            let msg = if self.secrets_mode == SecretsMode::Present {
                format!(
                    "secret {name:?} is not defined in {}",
                    self.secrets_src.name()
                )
            } else {
                format!(
                    "secret {name:?} is referenced but {} does not exist",
                    self.secrets_src.name()
                )
            };
            self.err(&path.key("secret"), msg);
            return None;
        };
        if let Err(m) = check(value.expose()) {
            let d = self.secrets_src.diag_at(
                Severity::Error,
                &Path::root().key(name),
                format!("{m} (used by {path})"),
            );
            self.diags.push(d);
            return None;
        }
        Some(value.clone())
    }

    /// Reports names that occur twice; `what` names the objects ("network").
    pub fn unique<'n>(&mut self, what: &str, items: impl IntoIterator<Item = (Path, &'n str)>) {
        let mut seen: BTreeMap<&str, Path> = BTreeMap::new();
        for (path, name) in items {
            if let Some(first) = seen.get(name) {
                let msg = format!("duplicate {what} {name:?} (first defined at {first})");
                self.err(&path, msg);
            } else {
                seen.insert(name, path);
            }
        }
    }

    /// [`Ctx::unique`] over the `field` of every item of the array at `base`.
    pub fn unique_by<T>(
        &mut self,
        what: &str,
        base: &Path,
        field: &str,
        items: &[T],
        get: impl Fn(&T) -> &str,
    ) {
        self.unique(
            what,
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (base.idx(i).key(field), get(item))),
        );
    }

    /// Checks that `name` is one of `known`; reports the choices if not.
    pub fn reference(&mut self, path: &Path, what: &str, name: &str, known: &[&str]) -> bool {
        if known.contains(&name) {
            return true;
        }
        let choices = if known.is_empty() {
            format!("no {what}s are defined")
        } else {
            format!("{what}s: {}", known.join(", "))
        };
        self.err(path, format!("unknown {what} {name:?} ({choices})"));
        false
    }

    /// Checks that `name` is a network of one of `kinds`. A network of
    /// another kind is named as such rather than called unknown; `user`
    /// says who needs it ("DHCP pools serve").
    pub fn network_ref(
        &mut self,
        path: &Path,
        name: &str,
        names: &Names<'_>,
        kinds: &[wire::NetworkKind],
        user: &str,
    ) -> bool {
        let allowed = names.networks_of(kinds);
        if allowed.contains(&name) {
            return true;
        }
        let what = if kinds.is_empty() {
            "network".to_string()
        } else {
            let kinds: Vec<&str> = kinds.iter().map(|k| kind_name(*k)).collect();
            format!("{} network", kinds.join(" or "))
        };
        match names.kind_of(name) {
            Some(kind) => {
                let choices = if allowed.is_empty() {
                    format!("no {what}s are defined")
                } else {
                    format!("{what}s: {}", allowed.join(", "))
                };
                self.err(
                    path,
                    format!(
                        "network {name:?} is a {} network, but {user} only {what}s ({choices})",
                        kind_name(kind)
                    ),
                );
                false
            }
            None => self.reference(path, &what, name, &allowed),
        }
    }

    /// [`Ctx::network_ref`] for every name of a list (`base[i]`).
    pub fn network_refs(
        &mut self,
        base: &Path,
        list: &[String],
        names: &Names<'_>,
        kinds: &[wire::NetworkKind],
        user: &str,
    ) -> bool {
        let results: Vec<bool> = list
            .iter()
            .enumerate()
            .map(|(i, n)| self.network_ref(&base.idx(i), n, names, kinds, user))
            .collect();
        results.into_iter().all(|ok| ok)
    }

    /// Reports a field set where it does not apply.
    pub fn not_applicable(&mut self, path: &Path, set: bool, field: &str, context: &str) {
        if set {
            self.err(
                &path.key(field),
                format!("`{field}` does not apply to {context}"),
            );
        }
    }

    /// Reports a required field that is missing; returns the value if present.
    pub fn required<'v, T>(
        &mut self,
        path: &Path,
        value: Option<&'v T>,
        field: &str,
        context: &str,
    ) -> Option<&'v T> {
        if value.is_none() {
            self.err(path, format!("`{field}` is required for {context}"));
        }
        value
    }

    /// Warns about secrets no field uses.
    fn unused_secrets(&mut self) {
        for name in self.secrets.values.keys() {
            if !self.used_secrets.contains(name) {
                let d = self.secrets_src.diag_at_key(
                    Severity::Warning,
                    &Path::root().key(name),
                    "secret is not used by any field".into(),
                );
                self.diags.push(d);
            }
        }
    }
}

/// Names of the objects that other sections refer to, taken from the wire
/// config before any checking so that references can be checked even when
/// the object itself has other errors.
pub(crate) struct Names<'w> {
    pub networks: Vec<(&'w str, wire::NetworkKind)>,
    pub zones: Vec<&'w str>,
    pub radios: Vec<&'w str>,
    pub wireguard: Vec<&'w str>,
}

impl<'w> Names<'w> {
    fn new(c: &'w wire::Config) -> Self {
        Self {
            networks: c
                .networks
                .iter()
                .map(|n| (n.name.as_str(), n.kind))
                .collect(),
            zones: c.firewall.zones.iter().map(|z| z.name.as_str()).collect(),
            radios: c.wifi.radios.iter().map(|r| r.name.as_str()).collect(),
            wireguard: c.wireguard.iter().map(|w| w.name.as_str()).collect(),
        }
    }

    /// Names of networks of the given kinds (all kinds when empty).
    pub fn networks_of(&self, kinds: &[wire::NetworkKind]) -> Vec<&'w str> {
        self.networks
            .iter()
            .filter(|(_, k)| kinds.is_empty() || kinds.contains(k))
            .map(|(n, _)| *n)
            .collect()
    }

    /// The kind of the network called `name`.
    pub fn kind_of(&self, name: &str) -> Option<wire::NetworkKind> {
        self.networks
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }
}

/// The config spelling of a network kind.
pub(crate) fn kind_name(kind: wire::NetworkKind) -> &'static str {
    match kind {
        wire::NetworkKind::Lan => "lan",
        wire::NetworkKind::Wan => "wan",
        wire::NetworkKind::Simple => "simple",
    }
}

/// Checks an object name: 1–32 of `[A-Za-z0-9_-]`.
pub(crate) fn object_name(ctx: &mut Ctx<'_>, path: &Path, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        ctx.err(
            &path.key("name"),
            format!("invalid name {name:?} (1-32 letters, digits, '-' or '_')"),
        );
    }
}

/// Checks the whole wire config; returns the model when there is no error.
pub(crate) fn check(ctx: &mut Ctx<'_>, c: &wire::Config) -> Option<Config> {
    let names = Names::new(c);
    let system = misc::system(ctx, &c.system);
    let networks = network::networks(ctx, &c.networks);
    let routes = network::routes(ctx, &c.routes, &names);
    let firewall = firewall::firewall(ctx, c, &names);
    let port_forwards = firewall::port_forwards(ctx, &c.port_forwards, &c.networks, &names);
    let dhcp = lan::dhcp(ctx, c, &names);
    let dns = lan::dns(ctx, c, &names);
    let wifi = wireless::wifi(ctx, &c.wifi, &names);
    let wireguard = wireless::wireguard(ctx, &c.wireguard, &c.networks);
    let ntp = misc::ntp(ctx, &c.ntp, &names);
    let ddns = misc::ddns(ctx, &c.ddns, &names);
    let control = misc::control(ctx, c, &names);
    let services = services::services(ctx, &c.services, &c.networks, &names);
    ctx.unused_secrets();
    Some(Config {
        system: system?,
        networks: networks?,
        routes: routes?,
        firewall: firewall?,
        port_forwards: port_forwards?,
        dhcp: dhcp?,
        dns: dns?,
        wifi: wifi?,
        wireguard: wireguard?,
        ntp: ntp?,
        ddns: ddns?,
        control: control?,
        services: services?,
    })
}

/// Collects a list of per-item results: `None` if any item failed.
pub(crate) fn all<T>(items: impl IntoIterator<Item = Option<T>>) -> Option<Vec<T>> {
    let v: Vec<Option<T>> = items.into_iter().collect();
    v.into_iter().collect()
}
