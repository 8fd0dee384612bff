//! `[system]`, `[ntp]`, `[[ddns]]` and `[control]`.

use std::net::IpAddr;

use super::{Ctx, Names, all, object_name};
use crate::config::diag::Path;
use crate::config::model::{self, ControlListen, DdnsProvider, Role};
use crate::config::value::{
    check_hostname, nonzero_u16, parse_ed25519_public, parse_ipv4_iface, parse_ipv6_iface,
};
use crate::config::wire::{self, NetworkKind};

pub(super) fn system(ctx: &mut Ctx<'_>, s: &wire::System) -> Option<model::System> {
    let base = Path::root().key("system");
    let host = ctx.check(&base.key("hostname"), check_hostname(&s.hostname, false));
    let domain = ctx.check(&base.key("domain"), check_hostname(&s.domain, true));
    let tz_ok = !s.timezone.is_empty()
        && !s.timezone.starts_with('/')
        && !s
            .timezone
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && s.timezone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
    if !tz_ok {
        ctx.err(
            &base.key("timezone"),
            format!(
                "invalid time zone {:?} (an IANA name such as Europe/Berlin or UTC)",
                s.timezone
            ),
        );
    }
    host?;
    domain?;
    tz_ok.then(|| model::System {
        hostname: s.hostname.clone(),
        domain: s.domain.clone(),
        timezone: s.timezone.clone(),
    })
}

pub(super) fn ntp(ctx: &mut Ctx<'_>, n: &wire::Ntp, names: &Names<'_>) -> Option<model::Ntp> {
    let base = Path::root().key("ntp");
    let servers = all(n.servers.iter().enumerate().map(|(i, s)| {
        let ok = s.parse::<IpAddr>().is_ok() || check_hostname(s, true).is_ok();
        ctx.check(
            &base.key("servers").idx(i),
            if ok {
                Ok(s.clone())
            } else {
                Err(format!("invalid NTP server {s:?} (host name or address)"))
            },
        )
    }));
    let serve_ok = ctx.network_refs(
        &base.key("serve"),
        &n.serve,
        names,
        &[NetworkKind::Lan],
        "NTP serves",
    );
    serve_ok.then_some(())?;
    Some(model::Ntp {
        servers: servers?,
        serve: n.serve.clone(),
    })
}

pub(super) fn ddns(
    ctx: &mut Ctx<'_>,
    list: &[wire::Ddns],
    names: &Names<'_>,
) -> Option<Vec<model::Ddns>> {
    let base = Path::root().key("ddns");
    ctx.unique_by("ddns", &base, "name", list, |d| &d.name);
    let wans = names.networks_of(&[NetworkKind::Wan]);
    all(list.iter().enumerate().map(|(i, d)| {
        let path = base.idx(i);
        object_name(ctx, &path, &d.name);
        let host = ctx.check(&path.key("hostname"), check_hostname(&d.hostname, true));
        let token = ctx.secret(&path.key("token"), &d.token, |t| {
            if t.is_empty() {
                Err("token is empty".into())
            } else {
                Ok(())
            }
        });
        let network = match &d.network {
            Some(n) => ctx
                .network_ref(
                    &path.key("network"),
                    n,
                    names,
                    &[NetworkKind::Wan],
                    "dynamic DNS publishes",
                )
                .then(|| n.clone()),
            None => {
                let first = wans.first().map(|w| (*w).to_string());
                if first.is_none() {
                    ctx.err(&path, "dynamic DNS needs a wan network to publish");
                }
                first
            }
        };
        let dyndns2 = d.provider == DdnsProvider::Dyndns2;
        let extra_ok = if dyndns2 {
            let u = ctx
                .required(
                    &path,
                    d.username.as_ref(),
                    "username",
                    "the dyndns2 provider",
                )
                .is_some();
            let s = ctx
                .required(&path, d.server.as_ref(), "server", "the dyndns2 provider")
                .is_some();
            let s_ok = d.server.as_ref().is_none_or(|s| {
                ctx.check(&path.key("server"), check_hostname(s, true))
                    .is_some()
            });
            u && s && s_ok
        } else {
            ctx.not_applicable(&path, d.username.is_some(), "username", "this provider");
            ctx.not_applicable(&path, d.server.is_some(), "server", "this provider");
            d.username.is_none() && d.server.is_none()
        };
        host?;
        extra_ok.then_some(())?;
        Some(model::Ddns {
            name: d.name.clone(),
            provider: d.provider,
            hostname: d.hostname.clone(),
            token: token?,
            username: d.username.clone(),
            server: d.server.clone(),
            network: network?,
        })
    }))
}

pub(super) fn control(
    ctx: &mut Ctx<'_>,
    c: &wire::Config,
    names: &Names<'_>,
) -> Option<model::Control> {
    let ctl = &c.control;
    let base = Path::root().key("control");
    // The router's own fixed addresses, with the kind of their network.
    let own: Vec<(IpAddr, NetworkKind)> = c
        .networks
        .iter()
        .flat_map(|n| {
            let v4 = n
                .address
                .as_deref()
                .and_then(|a| parse_ipv4_iface(a).ok())
                .map(|a| IpAddr::V4(a.addr()));
            let v6 = n
                .ipv6
                .as_deref()
                .and_then(|a| parse_ipv6_iface(a).ok())
                .map(|a| IpAddr::V6(a.addr()));
            [v4, v6].into_iter().flatten().map(move |ip| (ip, n.kind))
        })
        .collect();
    let listen = match &ctl.listen {
        None => Some(
            names
                .networks_of(&[NetworkKind::Lan])
                .into_iter()
                .map(|n| ControlListen::Network(n.to_string()))
                .collect(),
        ),
        Some(list) => all(list.iter().enumerate().map(|(i, l)| {
            let path = base.key("listen").idx(i);
            let (entry, wan) = if let Ok(ip) = l.parse::<IpAddr>() {
                let kind = if ip.is_loopback() {
                    NetworkKind::Simple
                } else if let Some((_, k)) = own.iter().find(|(a, _)| *a == ip) {
                    *k
                } else {
                    let list: Vec<String> = own.iter().map(|(a, _)| a.to_string()).collect();
                    ctx.err(
                        &path,
                        format!(
                            "{ip} is not a fixed address of this router ({}); name a network to follow an address it learns",
                            list.join(", ")
                        ),
                    );
                    return None;
                };
                (ControlListen::Address(ip), kind == NetworkKind::Wan)
            } else {
                if !ctx.network_ref(&path, l, names, &[], "the control plane listens on") {
                    return None;
                }
                (ControlListen::Network(l.clone()), names.kind_of(l) == Some(NetworkKind::Wan))
            };
            if wan && !ctl.allow_wan {
                ctx.err(
                    &path,
                    format!("the control plane would listen on wan ({l}); set control.allow_wan = true if that is really meant"),
                );
                return None;
            }
            Some(entry)
        })),
    };
    let port = ctx.check(
        &base.key("port"),
        nonzero_u16(ctl.port, "port").and_then(|p| {
            match c.wireguard.iter().find(|w| w.listen_port == Some(ctl.port)) {
                Some(w) => Err(format!(
                    "port {p} is also wireguard interface {:?}'s listen port",
                    w.name
                )),
                None => Ok(p),
            }
        }),
    );
    if ctl.rate_limit == 0 {
        ctx.err(
            &base.key("rate_limit"),
            "rate limit must be at least 1 request per second",
        );
    }
    let cbase = base.key("clients");
    ctx.unique_by("control client", &cbase, "name", &ctl.clients, |k| &k.name);
    ctx.unique_by("control client key", &cbase, "key", &ctl.clients, |k| {
        &k.key
    });
    let clients = all(ctl.clients.iter().enumerate().map(|(i, k)| {
        let path = cbase.idx(i);
        object_name(ctx, &path, &k.name);
        let key = ctx.check(&path.key("key"), parse_ed25519_public(&k.key))?;
        Some(model::ControlClient {
            name: k.name.clone(),
            key,
            role: k.role,
        })
    }));
    if !ctl.clients.iter().any(|k| k.role == Role::Admin) {
        ctx.warn(
            &cbase,
            "no admin client: nobody can change this router over the control plane",
        );
    }
    (ctl.rate_limit > 0).then_some(())?;
    Some(model::Control {
        listen: listen?,
        port: port?,
        rate_limit: ctl.rate_limit,
        rate_burst: ctl.rate_burst.max(ctl.rate_limit),
        clients: clients?,
    })
}
