//! `oxctl wizard --out DIR`: asks a few questions (or takes flags) and
//! writes a valid config pair, the secrets file with mode 0600.

use std::fs::OpenOptions;
use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use bus_schema::config::{SECRETS_FILE_NAME, SecretsFile, SourceFile, check_pair};

use bus_schema::exit::CONFIG as EX_CONFIG;

/// How the WAN gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WanMode {
    /// DHCP client.
    Dhcp,
    /// Fixed address.
    Static,
}

/// Answers; anything not given is asked for (or defaulted with `--non-interactive`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write oxwrt.toml and oxwrt.secrets.toml into.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
    /// Ask nothing: use flags and defaults.
    #[arg(long)]
    pub non_interactive: bool,
    /// Router host name [default: oxwrt].
    #[arg(long)]
    pub hostname: Option<String>,
    /// Router LAN address with prefix [default: 192.168.1.1/24].
    #[arg(long)]
    pub lan_address: Option<String>,
    /// LAN bridge member ports, comma separated [default: eth1].
    #[arg(long)]
    pub lan_ports: Option<String>,
    /// WAN device [default: eth0].
    #[arg(long)]
    pub wan_device: Option<String>,
    /// WAN mode [default: dhcp].
    #[arg(long, value_enum)]
    pub wan_mode: Option<WanMode>,
    /// Static WAN address with prefix.
    #[arg(long)]
    pub wan_address: Option<String>,
    /// Static WAN gateway.
    #[arg(long)]
    pub wan_gateway: Option<String>,
    /// Wi-Fi SSID; empty for none [default: none].
    #[arg(long)]
    pub ssid: Option<String>,
    /// Wi-Fi passphrase, 8-63 characters (prefer the prompt).
    #[arg(long)]
    pub wifi_passphrase: Option<String>,
    /// Wi-Fi regulatory country [default: US].
    #[arg(long)]
    pub country: Option<String>,
    /// The admin's ed25519 public key (64 hex digits); empty for none.
    #[arg(long)]
    pub admin_key: Option<String>,
}

/// Asks on stdin for values the flags did not give.
struct Asker<R> {
    input: R,
    interactive: bool,
}

impl<R: BufRead> Asker<R> {
    fn ask(
        &mut self,
        given: &Option<String>,
        question: &str,
        default: &str,
    ) -> anyhow::Result<String> {
        if let Some(v) = given {
            return Ok(v.clone());
        }
        if !self.interactive {
            return Ok(default.to_string());
        }
        let mut err = std::io::stderr();
        if default.is_empty() {
            write!(err, "{question}: ")?;
        } else {
            write!(err, "{question} [{default}]: ")?;
        }
        err.flush()?;
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            bail!("no answer for {question:?} (end of input)");
        }
        let line = line.trim();
        Ok(if line.is_empty() {
            default.to_string()
        } else {
            line.to_string()
        })
    }
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The generated pair: public text and secrets text.
fn render<R: BufRead>(args: &Args, a: &mut Asker<R>) -> anyhow::Result<(String, String)> {
    let hostname = a.ask(&args.hostname, "Router host name", "oxwrt")?;
    let lan = a.ask(
        &args.lan_address,
        "LAN address with prefix",
        "192.168.1.1/24",
    )?;
    let ports = a.ask(&args.lan_ports, "LAN ports (comma separated)", "eth1")?;
    let wan_device = a.ask(&args.wan_device, "WAN device", "eth0")?;
    let mode_default = match args.wan_mode {
        Some(WanMode::Static) => "static",
        Some(WanMode::Dhcp) | None => "dhcp",
    };
    let mode = if args.wan_mode.is_some() {
        mode_default.to_string()
    } else {
        a.ask(&None, "WAN mode (dhcp, static)", mode_default)?
    };
    let mut public = format!(
        "# Written by `oxctl wizard`. Every field: docs/config.md.\nversion = 1\n\n\
         [system]\nhostname = {}\n\n\
         [[networks]]\nname = \"lan\"\nkind = \"lan\"\nports = [{}]\naddress = {}\n\n\
         [[networks]]\nname = \"wan\"\nkind = \"wan\"\ndevice = {}\nmode = {}\n",
        q(&hostname),
        ports
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(q)
            .collect::<Vec<_>>()
            .join(", "),
        q(&lan),
        q(&wan_device),
        q(&mode),
    );
    let mut secrets = String::from("# Written by `oxctl wizard`. Keep this file mode 0600.\n");
    match mode.as_str() {
        "dhcp" => {}
        "static" => {
            let address = a.ask(&args.wan_address, "WAN address with prefix", "")?;
            let gateway = a.ask(&args.wan_gateway, "WAN gateway", "")?;
            public += &format!("address = {}\ngateway = {}\n", q(&address), q(&gateway));
        }
        "pppoe" => bail!("WAN mode \"pppoe\" is not supported yet (see docs/config.md)"),
        other => bail!("unknown WAN mode {other:?} (dhcp, static)"),
    }
    public += "\n[[firewall.zones]]\nname = \"lan\"\nnetworks = [\"lan\"]\ninput = \"accept\"\nforward = \"accept\"\n\n\
               [[firewall.zones]]\nname = \"wan\"\nnetworks = [\"wan\"]\nmasquerade = true\nmss_clamping = true\n\n\
               [[firewall.forwardings]]\nsrc = \"lan\"\ndest = \"wan\"\n";
    if let Some(pool) = default_pool(&lan) {
        public += &format!(
            "\n[[dhcp.pools]]\nnetwork = \"lan\"\nstart = \"{}\"\nend = \"{}\"\n",
            pool.0, pool.1
        );
    }
    let ssid = a.ask(&args.ssid, "Wi-Fi SSID (empty for none)", "")?;
    if !ssid.is_empty() {
        let pass = a.ask(
            &args.wifi_passphrase,
            "Wi-Fi passphrase (8-63 characters)",
            "",
        )?;
        let country = a.ask(&args.country, "Wi-Fi country (ISO code)", "US")?;
        public += &format!(
            "\n[[wifi.radios]]\nname = \"radio0\"\nphy = \"phy0\"\nband = \"2g\"\nchannel = \"auto\"\ncountry = {}\n\n\
             [[wifi.networks]]\nname = \"home\"\nradio = \"radio0\"\nssid = {}\nsecurity = \"wpa2-wpa3\"\n\
             passphrase = {{ secret = \"wifi_home\" }}\nnetwork = \"lan\"\n",
            q(&country),
            q(&ssid)
        );
        secrets += &format!("wifi_home = {}\n", q(&pass));
    }
    let key = a.ask(
        &args.admin_key,
        "Admin ed25519 public key (hex; empty for none)",
        "",
    )?;
    if !key.is_empty() {
        public += &format!(
            "\n[[control.clients]]\nname = \"admin\"\nkey = {}\nrole = \"admin\"\n",
            q(&key)
        );
    }
    Ok((public, secrets))
}

/// A pool from .100 to .249 (or the upper half of a small subnet), or none
/// when the address does not parse (validation then says why).
fn default_pool(lan: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let net: ipnet::Ipv4Net = lan.parse().ok()?;
    let network = u32::from(net.network());
    let hosts = u32::from(net.broadcast()).checked_sub(network + 1)?;
    if hosts < 4 {
        return None;
    }
    let (first, count) = if hosts >= 250 {
        (100, 150)
    } else {
        (hosts / 2 + 1, hosts / 2 - 1)
    };
    let (start, end) = (
        Ipv4Addr::from(network + first),
        Ipv4Addr::from(network + first + count - 1),
    );
    (!(start..=end).contains(&net.addr())).then_some((start, end))
}

fn write_file(path: &Path, text: &str, mode: u32, force: bool) -> anyhow::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).mode(mode);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {} (use --force to replace it)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    // `mode` applies only to a new file; make a replaced one right too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    Ok(())
}

/// Writes the pair only once it validates.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let mut asker = Asker {
        input: stdin.lock(),
        interactive: !args.non_interactive,
    };
    let (public, secrets) = render(args, &mut asker)?;
    let config_path = args.out.join("oxwrt.toml");
    let secrets_path = args.out.join(SECRETS_FILE_NAME);
    let public_src = SourceFile::new(config_path.display().to_string(), public.clone());
    let secrets_src = SourceFile::new(secrets_path.display().to_string(), secrets.clone());
    match check_pair(&public_src, SecretsFile::Present(&secrets_src)) {
        Ok(loaded) => {
            eprint!("{}", loaded.warnings);
        }
        Err(diags) => {
            eprint!("{diags}");
            eprintln!("oxctl: nothing written: the answers do not make a valid config");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_file(&secrets_path, &secrets, 0o600, args.force)?;
    write_file(&config_path, &public, 0o644, args.force)?;
    println!(
        "wrote {} and {} (mode 0600)",
        config_path.display(),
        secrets_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
