//! Which router, and with which keys: each from its flag, else its
//! environment variable, else `~/.config/oxctl/config.toml`:
//!
//! ```toml
//! key = "/home/me/.config/oxctl/key"   # the client key (oxctl keygen)
//! default = "home"                     # the host when none is named
//!
//! [hosts.home]
//! address = "192.168.1.1"              # port 7443 unless given
//! server_key = "3d40...660c"           # the router's key, pinned
//! ```
//!
//! A server key is never learned silently: without one, the first
//! contact fails and says which key the router presented.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use bus_schema::config::value::parse_ed25519_public;
use bus_schema::config::wire::DEFAULT_CONTROL_PORT;
use oxwrt_quic::Identity;
use serde::Deserialize;

use super::Failure;

/// `~/.config/oxctl/config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client key file.
    pub key: Option<PathBuf>,
    /// The host used when none is named.
    pub default: Option<String>,
    /// Known routers by name.
    #[serde(default)]
    pub hosts: BTreeMap<String, Host>,
}

/// One known router.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// `ADDR[:PORT]`.
    pub address: String,
    /// Its pinned public key, hex.
    pub server_key: Option<String>,
}

/// Where to connect, and with which keys.
#[derive(Debug)]
pub struct Target {
    /// The router's control-plane socket.
    pub address: SocketAddr,
    /// Our key.
    pub key: Identity,
    /// The router's pinned key.
    pub server_key: Option<[u8; 32]>,
}

/// What the command line (or environment, through clap) named.
#[derive(Debug, Default, Clone)]
pub struct Wanted {
    /// `-H`/`OXCTL_HOST`.
    pub host: Option<String>,
    /// `--key`/`OXCTL_KEY`.
    pub key: Option<PathBuf>,
    /// `--server-key`/`OXCTL_SERVER_KEY`.
    pub server_key: Option<String>,
}

/// The client config's path: `$OXCTL_CONFIG`, else
/// `$XDG_CONFIG_HOME/oxctl/config.toml`, else `~/.config/oxctl/...`.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OXCTL_CONFIG") {
        return Some(p.into());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("oxctl").join("config.toml"))
}

/// The config path as shown in hints.
pub fn config_path_hint() -> String {
    config_path().map_or_else(
        || "~/.config/oxctl/config.toml".into(),
        |p| p.display().to_string(),
    )
}

fn load_config() -> Result<ClientConfig, Failure> {
    let Some(path) = config_path() else {
        return Ok(ClientConfig::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
        Err(e) => Err(Failure::Usage(format!("{}: {e}", path.display()))),
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address.
pub fn parse_address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = u16::try_from(DEFAULT_CONTROL_PORT).unwrap_or(7443);
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| {
            format!("{s:?} is not ADDR[:PORT] (a name in the config's [hosts] or an IP address)")
        })
}

/// Whether any host is named (flag, environment or the config's default).
pub fn host_named(wanted: &Wanted) -> bool {
    wanted.host.is_some() || load_config().is_ok_and(|c| c.default.is_some())
}

impl Target {
    /// Resolves what was asked for against the client config.
    pub fn resolve(wanted: &Wanted) -> Result<Self, Failure> {
        let config = load_config()?;
        let host = wanted
            .host
            .clone()
            .or(config.default.clone())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "which router? Name one with -H ADDR[:PORT], OXCTL_HOST, or default in {}",
                    config_path_hint()
                ))
            })?;
        let entry = config.hosts.get(&host).or_else(|| {
            // An address that a [hosts] entry also names gets its key.
            let want = parse_address(&host).ok()?;
            config
                .hosts
                .values()
                .find(|h| parse_address(&h.address).ok() == Some(want))
        });
        let address = parse_address(entry.map_or(host.as_str(), |h| h.address.as_str()))
            .map_err(Failure::Usage)?;
        let server_key = match wanted
            .server_key
            .clone()
            .or_else(|| entry.and_then(|h| h.server_key.clone()))
        {
            Some(hex) => Some(
                parse_ed25519_public(&hex)
                    .map_err(|e| Failure::Usage(format!("server key: {e}")))?,
            ),
            None => None,
        };
        let key_path = wanted.key.clone().or(config.key).ok_or_else(|| {
            Failure::Usage(format!(
                "which client key? Pass --key PATH, set OXCTL_KEY, or key in {} (make one with oxctl keygen --out PATH)",
                config_path_hint()
            ))
        })?;
        let key = Identity::load(&key_path).map_err(|e| Failure::Usage(e.to_string()))?;
        Ok(Self {
            address,
            key,
            server_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_default_port_unless_given() {
        assert_eq!(
            parse_address("192.168.1.1").expect("v4"),
            "192.168.1.1:7443".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(
            parse_address("192.168.1.1:9000").expect("v4 port"),
            "192.168.1.1:9000".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(
            parse_address("fd00::1").expect("v6"),
            "[fd00::1]:7443".parse::<SocketAddr>().expect("addr")
        );
        assert!(parse_address("router.lan").is_err());
    }
}
