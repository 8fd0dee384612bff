//! `[wifi]` and `[[wireguard]]`.

use std::collections::BTreeMap;

use super::{Ctx, Names, all, object_name};
use crate::config::diag::Path;
use crate::config::model::{self, Band, Security};
use crate::config::value::{
    check_endpoint, check_ifname, nonzero_u16, parse_ip_or_net, parse_ipv4_iface, parse_ipv6_iface,
    parse_prefix, parse_wg_key,
};
use crate::config::wire::{self, Channel, NetworkKind};

/// Whether `ch` is a valid primary channel in `band`.
fn channel_valid(band: Band, ch: i64) -> bool {
    match band {
        Band::G2 => (1..=14).contains(&ch),
        Band::G5 => {
            (matches!(ch, 36..=64 | 100..=144) && ch % 4 == 0)
                || ((149..=177).contains(&ch) && ch % 4 == 1)
        }
        Band::G6 => (1..=233).contains(&ch) && ch % 4 == 1,
    }
}

fn widths(band: Band) -> &'static [u32] {
    match band {
        Band::G2 => &[20, 40],
        Band::G5 | Band::G6 => &[20, 40, 80, 160],
    }
}

fn passphrase(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if !(8..=63).contains(&n) {
        return Err(format!(
            "WPA passphrase must be 8-63 printable ASCII characters (has {n} characters)"
        ));
    }
    match p.chars().position(|c| !(' '..='~').contains(&c)) {
        Some(i) => Err(format!(
            "WPA passphrase must be 8-63 printable ASCII characters (character {} is not)",
            i + 1
        )),
        None => Ok(()),
    }
}

pub(super) fn wifi(ctx: &mut Ctx<'_>, w: &wire::Wifi, names: &Names<'_>) -> Option<model::Wifi> {
    let rbase = Path::root().key("wifi").key("radios");
    ctx.unique_by("radio", &rbase, "name", &w.radios, |r| &r.name);
    ctx.unique_by("radio phy", &rbase, "phy", &w.radios, |r| &r.phy);
    let radios = all(w.radios.iter().enumerate().map(|(i, r)| {
        let path = rbase.idx(i);
        object_name(ctx, &path, &r.name);
        let phy = ctx.check(&path.key("phy"), check_ifname(&r.phy));
        let channel = match &r.channel {
            Channel::Text(t) if t == "auto" => Some(None),
            Channel::Number(n) if channel_valid(r.band, *n) => Some(u8::try_from(*n).ok()),
            other => {
                let shown = match other {
                    Channel::Number(n) => n.to_string(),
                    Channel::Text(t) => format!("{t:?}"),
                };
                let band = serde_json::to_value(r.band).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
                ctx.err(&path.key("channel"), format!("channel {shown} is not valid in band {band} (use a channel of the band or \"auto\")"));
                None
            }
        };
        let country_ok = r.country.len() == 2 && r.country.bytes().all(|b| b.is_ascii_uppercase());
        if !country_ok {
            ctx.err(&path.key("country"), format!("invalid country {:?} (two upper-case letters, ISO 3166-1, such as DE)", r.country));
        }
        let ws = widths(r.band);
        let width_ok = ws.contains(&r.width);
        if !width_ok {
            let list: Vec<String> = ws.iter().map(u32::to_string).collect();
            ctx.err(&path.key("width"), format!("width {} MHz is not valid in this band ({})", r.width, list.join(", ")));
        }
        phy?;
        (country_ok && width_ok).then_some(())?;
        Some(model::Radio {
            name: r.name.clone(),
            phy: r.phy.clone(),
            band: r.band,
            channel: channel?,
            country: r.country.clone(),
            width: r.width as u16,
        })
    }));

    let nbase = Path::root().key("wifi").key("networks");
    ctx.unique_by("wifi network", &nbase, "name", &w.networks, |n| &n.name);
    let bands: BTreeMap<&str, Band> = w.radios.iter().map(|r| (r.name.as_str(), r.band)).collect();
    let networks = all(w.networks.iter().enumerate().map(|(i, n)| {
        let path = nbase.idx(i);
        object_name(ctx, &path, &n.name);
        let radio_ok = ctx.reference(&path.key("radio"), "radio", &n.radio, &names.radios);
        let net_ok = ctx.network_ref(
            &path.key("network"),
            &n.network,
            names,
            &[NetworkKind::Lan],
            "Wi-Fi networks join",
        );
        let ssid_ok = (1..=32).contains(&n.ssid.len());
        if !ssid_ok {
            ctx.err(
                &path.key("ssid"),
                format!("SSID must be 1-32 bytes (has {})", n.ssid.len()),
            );
        }
        if bands.get(n.radio.as_str()) == Some(&Band::G6) && n.security != Security::Wpa3 {
            ctx.err(
                &path.key("security"),
                "6 GHz networks require security = \"wpa3\"",
            );
            return None;
        }
        let pass = match (n.security, &n.passphrase) {
            (Security::Open, None) => Some(None),
            (Security::Open, Some(_)) => {
                ctx.err(&path.key("passphrase"), "open networks take no passphrase");
                None
            }
            (_, None) => {
                ctx.err(
                    &path,
                    "`passphrase` is required unless security is \"open\"",
                );
                None
            }
            (_, Some(f)) => ctx.secret(&path.key("passphrase"), f, passphrase).map(Some),
        };
        (radio_ok && net_ok && ssid_ok).then_some(())?;
        Some(model::WifiNetwork {
            name: n.name.clone(),
            radio: n.radio.clone(),
            ssid: n.ssid.clone(),
            security: n.security,
            passphrase: pass?,
            network: n.network.clone(),
            hidden: n.hidden,
            client_isolation: n.client_isolation,
        })
    }));
    Some(model::Wifi {
        radios: radios?,
        networks: networks?,
    })
}

fn wg_key(v: &str) -> Result<(), String> {
    parse_wg_key(v).map(|_| ())
}

fn port16(ctx: &mut Ctx<'_>, path: &Path, p: Option<u32>, what: &str) -> Option<Option<u16>> {
    ctx.check_opt(path, p.as_ref(), |p| nonzero_u16(*p, what))
}

pub(super) fn wireguard(
    ctx: &mut Ctx<'_>,
    wgs: &[wire::Wireguard],
    nets: &[wire::Network],
) -> Option<Vec<model::Wireguard>> {
    let base = Path::root().key("wireguard");
    ctx.unique_by("wireguard interface", &base, "name", wgs, |w| &w.name);
    all(wgs.iter().enumerate().map(|(i, w)| {
        let path = base.idx(i);
        let name = ctx.check(&path.key("name"), check_ifname(&w.name));
        if nets.iter().any(|n| n.name == w.name) {
            ctx.err(
                &path.key("name"),
                format!(
                    "{:?} is also the name of a network; zones could not tell them apart",
                    w.name
                ),
            );
            return None;
        }
        let port = port16(ctx, &path.key("listen_port"), w.listen_port, "listen port");
        let key = ctx.secret(&path.key("private_key"), &w.private_key, wg_key);
        let addresses = all(w.addresses.iter().enumerate().map(|(j, a)| {
            // An interface address, not a prefix: IPv4 gets the host checks.
            let parsed = match a.parse::<ipnet::IpNet>() {
                Ok(ipnet::IpNet::V4(_)) => parse_ipv4_iface(a).map(ipnet::IpNet::V4),
                Ok(_) => parse_ipv6_iface(a).map(ipnet::IpNet::V6),
                Err(_) => Err(format!("invalid address with prefix {a:?}")),
            };
            ctx.check(&path.key("addresses").idx(j), parsed)
        }));
        let pbase = path.key("peers");
        ctx.unique_by("peer", &pbase, "name", &w.peers, |p| &p.name);
        ctx.unique_by("peer public key", &pbase, "public_key", &w.peers, |p| {
            &p.public_key
        });
        let peers = all(w.peers.iter().enumerate().map(|(j, p)| {
            let pp = pbase.idx(j);
            object_name(ctx, &pp, &p.name);
            let public_key = ctx.check(&pp.key("public_key"), parse_wg_key(&p.public_key));
            let psk = match &p.preshared_key {
                Some(f) => ctx.secret(&pp.key("preshared_key"), f, wg_key).map(Some),
                None => Some(None),
            };
            let allowed = all(p.allowed_ips.iter().enumerate().map(|(k, a)| {
                ctx.check(
                    &pp.key("allowed_ips").idx(k),
                    parse_prefix(a).or_else(|_| parse_ip_or_net(a)),
                )
            }));
            let endpoint = ctx.check_opt(&pp.key("endpoint"), p.endpoint.as_deref(), |e| {
                check_endpoint(e).map(|()| e.to_string())
            });
            let keepalive = port16(
                ctx,
                &pp.key("persistent_keepalive"),
                p.persistent_keepalive,
                "keepalive",
            );
            Some(model::WireguardPeer {
                name: p.name.clone(),
                public_key: public_key?,
                preshared_key: psk?,
                allowed_ips: allowed?,
                endpoint: endpoint?,
                persistent_keepalive: keepalive?,
            })
        }));
        name?;
        Some(model::Wireguard {
            name: w.name.clone(),
            listen_port: port?,
            private_key: key?,
            addresses: addresses?,
            peers: peers?,
        })
    }))
}
