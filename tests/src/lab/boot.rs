//! Booting the oxwrt stack in the router namespace: `oxinit --root` with
//! the router's directory as its root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Lab, LabError};
use crate::exec::ChildGuard;
use crate::wait::wait_until;

/// The example config pair shipped in the repository.
const EXAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/oxwrt.toml");
const EXAMPLE_SECRETS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../config/oxwrt.secrets.toml.example"
);

/// How to boot the stack.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Where `oxinit`, `configd` and the daemons are (a cargo target
    /// directory such as `target/debug`).
    pub bin_dir: PathBuf,
    /// An `--extra-services` file's text (test daemons), if any.
    pub extra_services: Option<String>,
    /// Services oxinit must not start (`--without`).
    pub without: Vec<String>,
    /// How long the bus may take to appear.
    pub timeout: Duration,
}

impl Boot {
    /// Booting the binaries in `bin_dir`.
    pub fn new(bin_dir: impl Into<PathBuf>) -> Boot {
        Boot {
            bin_dir: bin_dir.into(),
            extra_services: None,
            without: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl Lab {
    /// The router's `$RUN` (`<root>/run/oxwrt`).
    pub fn router_run(&self) -> PathBuf {
        self.root().join("run/oxwrt")
    }

    /// Starts oxinit in the router namespace and returns once the bus
    /// socket exists. The router gets the repository's example config pair
    /// unless its `etc/oxwrt` already holds one; the secrets file is made
    /// mode 0600 either way. The lab stops oxinit at teardown.
    pub fn boot(&mut self, boot: &Boot) -> Result<ChildGuard, LabError> {
        let oxinit = boot.bin_dir.join("oxinit");
        for binary in ["oxinit", "configd"] {
            if !boot.bin_dir.join(binary).exists() {
                return Err(LabError::Check {
                    what: format!("{binary} in {}", boot.bin_dir.display()),
                    detail: "not built: run `cargo build --workspace`".into(),
                });
            }
        }
        let etc = self.root().join("etc/oxwrt");
        install_default(&etc.join("oxwrt.toml"), Path::new(EXAMPLE_CONFIG))?;
        let secrets = etc.join("oxwrt.secrets.toml");
        install_default(&secrets, Path::new(EXAMPLE_SECRETS))?;
        fs::set_permissions(&secrets, fs::Permissions::from_mode(0o600)).map_err(|source| {
            LabError::WriteFile {
                path: secrets.clone(),
                source,
            }
        })?;
        self.authorize_operator(&etc.join("oxwrt.toml"))?;
        let mut argv = vec![
            oxinit.display().to_string(),
            "--root".into(),
            self.root().display().to_string(),
            "--bin-dir".into(),
            boot.bin_dir.display().to_string(),
        ];
        if let Some(text) = &boot.extra_services {
            let path = self.dir().join("services.toml");
            fs::write(&path, text).map_err(|source| LabError::WriteFile {
                path: path.clone(),
                source,
            })?;
            argv.extend(["--extra-services".into(), path.display().to_string()]);
        }
        for name in &boot.without {
            argv.extend(["--without".into(), name.clone()]);
        }
        let router = self.namespaces().router.clone();
        let mut child = self.spawn_net_only(&router, &argv)?;
        let socket = self.router_run().join("bus.sock");
        let log = child.log_path().to_owned();
        let mut died = false;
        wait_until(
            "the router's bus socket",
            Instant::now() + boot.timeout,
            || {
                died = !child.is_running();
                died || socket.exists()
            },
        )
        .map_err(|source| LabError::Ready {
            source,
            log: log.clone(),
        })?;
        if died {
            return Err(LabError::Died {
                process: "oxinit".into(),
                what: "the bus".into(),
                log,
            });
        }
        self.info.bus = Some(format!("unix:path={}", socket.display()));
        self.save()?;
        Ok(child)
    }
}

impl Lab {
    /// When the router's config has a `[control]` section: makes the
    /// lab's operator key (`<lab dir>/operator.key`, kept across boots),
    /// authorizes it as `admin` client `lab` at the end of the config,
    /// and records where ctld will listen.
    fn authorize_operator(&mut self, config: &Path) -> Result<(), LabError> {
        let text = fs::read_to_string(config).map_err(|source| LabError::WriteFile {
            path: config.to_owned(),
            source,
        })?;
        if !text.lines().any(|l| l.trim() == "[control]") {
            return Ok(());
        }
        let key_path = self.dir().join("operator.key");
        let key =
            oxwrt_quic::Identity::load_or_create(&key_path).map_err(|e| LabError::WriteFile {
                path: key_path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        if !text.contains(&key.public_hex()) {
            let entry = format!(
                "\n# Added by the lab: its operator key ({}).\n[[control.clients]]\nname = \"lab\"\nkey = \"{}\"\nrole = \"admin\"\n",
                key_path.display(),
                key.public_hex()
            );
            fs::write(config, text + &entry).map_err(|source| LabError::WriteFile {
                path: config.to_owned(),
                source,
            })?;
        }
        self.info.control = Some(crate::info::ControlInfo {
            addr: format!(
                "{}:{}",
                crate::plan::ROUTER_LAN_ADDR,
                bus_schema::config::wire::DEFAULT_CONTROL_PORT
            ),
            key: key_path.display().to_string(),
            server_key: String::new(),
        });
        Ok(())
    }

    /// Waits until ctld has made its server key and records its public
    /// half (the key operators pin) in the lab's info.
    pub fn wait_control(&mut self, timeout: Duration) -> Result<(), LabError> {
        let path = self
            .root()
            .join("var/lib/oxwrt")
            .join(bus_schema::control::SERVER_KEY_FILE);
        let key = crate::wait::wait_for("ctld's server key", Instant::now() + timeout, || {
            oxwrt_quic::Identity::load(&path).ok()
        })
        .map_err(|source| LabError::Ready {
            source,
            log: self.dir().join("logs"),
        })?;
        if let Some(control) = &mut self.info.control {
            control.server_key = key.public_hex();
        }
        self.save()
    }

    /// Waits until the router's `wan0` holds an address from the ISP's
    /// pool (netd's DHCP client leased it) and records it in the lab's
    /// info.
    pub fn wait_router_wan(&mut self, timeout: Duration) -> Result<String, LabError> {
        let router = self.namespaces().router.clone();
        let addr = crate::wait::wait_for(
            "the router's WAN to get a lease",
            Instant::now() + timeout,
            || {
                crate::netns::ipv4_addrs(&router, crate::plan::ROUTER_WAN_IF)
                    .ok()?
                    .into_iter()
                    .find(|a| a.parse().is_ok_and(crate::plan::in_wan_pool))
            },
        )
        .map_err(|source| LabError::Ready {
            source,
            log: self.dir().join("logs"),
        })?;
        self.info.addresses.router_wan = addr.clone();
        self.save()?;
        Ok(addr)
    }
}

/// The lab's own config pair (the router's real devices: `wan0` by DHCP
/// from the ISP, `lan0` in the LAN bridge), for labs that run the stack.
pub const LAB_CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lab");

fn install_default(to: &Path, from: &Path) -> Result<(), LabError> {
    if to.exists() {
        return Ok(());
    }
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(|source| LabError::WriteFile {
            path: dir.to_owned(),
            source,
        })?;
    }
    fs::copy(from, to)
        .map(drop)
        .map_err(|source| LabError::CopyConfig {
            from: from.to_owned(),
            to: to.to_owned(),
            source,
        })
}
