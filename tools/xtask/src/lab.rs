//! `cargo xtask lab`: a lab in the foreground until Ctrl-C; `lab up` and
//! `lab down`: a detached lab for scripts and other tools.

use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use oxwrt_lab::plan::{
    CLIENT_IF, DNS_NAME, HTTP_PORT, LAN_PREFIX, Plan, ROUTER_LAN_IF, ROUTER_WAN_IF, SWITCH_BRIDGE,
    SWITCH_UPLINK, WAN_POOL_END, WAN_POOL_START, WAN_PREFIX,
};
use oxwrt_lab::{Boot, LAB_CONFIG_DIR, Lab, LabConfig, LabError, LabInfo};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LabArgs {
    #[command(subcommand)]
    command: Option<LabCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Bring a lab up detached and print it as one JSON object.
    Up(UpArgs),
    /// Tear down a lab brought up with `lab up`.
    Down(DownArgs),
}

/// What both `lab` and `lab up` bring up.
#[derive(Debug, Args)]
struct Shape {
    /// Number of LAN clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Config file (or directory) to copy into the router's etc/oxwrt
    /// [default: the lab's own pair in tests/lab/ when booting].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Bring up the topology only, without booting oxinit in the router.
    #[arg(long)]
    no_boot: bool,
}

/// A lab in the foreground.
#[derive(Debug, Args)]
struct RunArgs {
    /// Lab name (default: a random one).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    shape: Shape,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Lab name: namespaces are oxl-NAME-*, state in $OXWRT_LAB_DIR/NAME.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    shape: Shape,
}

#[derive(Debug, Args)]
struct DownArgs {
    /// Name given to `lab up`.
    #[arg(long)]
    name: String,
}

pub fn run(args: LabArgs) -> Result<()> {
    match args.command {
        None => foreground(args.run),
        Some(LabCommand::Up(up)) => detached_up(up),
        Some(LabCommand::Down(down)) => detached_down(&down.name),
    }
}

fn foreground(args: RunArgs) -> Result<()> {
    // First, so that a Ctrl-C while the lab comes up still tears it down.
    let (stop, stopped) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })
    .context("cannot install the Ctrl-C handler")?;

    eprintln!("bringing the lab up...");
    let lab = bring_up(args.name, args.shape)?;
    print_topology(lab.info());
    print_checks(&lab);
    print_stack(&lab);
    println!("\nPress Ctrl-C to tear the lab down.");

    let _ = stopped.recv();
    eprintln!("\ntearing the lab down...");
    let name = lab.name().to_owned();
    lab.teardown()?;
    eprintln!("lab {name} removed");
    Ok(())
}

fn detached_up(args: UpArgs) -> Result<()> {
    let lab = bring_up(Some(args.name), args.shape)?;
    let info = lab.into_detached()?;
    println!("{}", serde_json::to_string(&info)?);
    Ok(())
}

/// Brings the topology up and, unless `--no-boot`, oxinit in the router
/// (which the lab then stops at teardown).
fn bring_up(name: Option<String>, shape: Shape) -> Result<Lab> {
    let boot = (!shape.no_boot).then(build_stack).transpose()?;
    // With the stack, netd leases the WAN and owns the LAN address, and
    // the router gets the lab's config pair unless told otherwise.
    let config = match (&boot, shape.config) {
        (_, Some(config)) => Some(config),
        (Some(_), None) => Some(PathBuf::from(LAB_CONFIG_DIR)),
        (None, None) => None,
    };
    let mut lab = Lab::up(LabConfig {
        name,
        lan_clients: shape.clients,
        config,
        manual_router: boot.is_none(),
        ..LabConfig::default()
    })
    .map_err(explain)?;
    if let Some(boot) = &boot {
        let oxinit = lab.boot(boot)?;
        lab.adopt(oxinit);
        lab.wait_router_wan(WAN_TIMEOUT)?;
        if lab.info().control.is_some() {
            lab.wait_control(WAN_TIMEOUT)?;
        }
    }
    Ok(lab)
}

/// How long netd may take to lease the WAN after boot.
const WAN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Builds the binaries oxinit starts, into the target directory this
/// xtask binary runs from.
fn build_stack() -> Result<Boot> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building oxinit, configd, netd, fwd, dhcpd, dnsd and ctld...");
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--manifest-path", manifest])
        .args([
            "-p", "oxinit", "-p", "configd", "-p", "netd", "-p", "fwd", "-p", "dhcpd", "-p",
            "dnsd", "-p", "ctld", "-p", "oxctl",
        ])
        .status()
        .context("cannot run cargo")?;
    anyhow::ensure!(status.success(), "cargo build failed ({status})");
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let bin_dir = exe.parent().context("the xtask binary has no directory")?;
    Ok(Boot::new(bin_dir))
}

fn print_stack(lab: &Lab) {
    let Some(bus) = &lab.info().bus else {
        return;
    };
    println!(
        "\nThe router runs oxinit (logs in {}/logs):",
        lab.dir().display()
    );
    println!("  busctl --address={bus} list");
    println!(
        "  busctl --address={bus} call org.oxwrt.Init /org/oxwrt/Init org.oxwrt.Init1 ListServices"
    );
    println!("  busctl --address={bus} introspect org.oxwrt.Config /org/oxwrt/Config");
    let (Some(control), Some(client)) = (&lab.info().control, lab.info().namespaces.lan.first())
    else {
        return;
    };
    let oxctl = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join("oxctl")))
        .map_or_else(|| "oxctl".into(), |p| p.display().to_string());
    println!(
        "\nThe router runs ctld on {} (the LAN); from a LAN client:",
        control.addr
    );
    println!(
        "  ip netns exec {client} env OXCTL_HOST={} OXCTL_KEY={} OXCTL_SERVER_KEY={} {oxctl} status",
        control.addr, control.key, control.server_key
    );
}

fn detached_down(name: &str) -> Result<()> {
    Lab::down(name)?;
    eprintln!("lab {name} removed");
    Ok(())
}

fn explain(e: LabError) -> anyhow::Error {
    match e.skip_reason() {
        Some(reason) => anyhow::anyhow!("the lab cannot run here: {reason}"),
        None => e.into(),
    }
}

fn print_topology(info: &LabInfo) {
    let ns = &info.namespaces;
    let addr = &info.addresses;
    println!(
        "oxwrt lab {} is up (state and logs in {})\n",
        info.name,
        info.dir.display()
    );
    println!(
        "  isp     {:<24} {} {}/{WAN_PREFIX}: dnsmasq (DHCP {WAN_POOL_START}-{WAN_POOL_END}, DNS {DNS_NAME}), HTTP :{HTTP_PORT}",
        ns.isp,
        oxwrt_lab::plan::ISP_IF,
        addr.isp
    );
    println!("     |");
    println!(
        "  router  {:<24} {ROUTER_WAN_IF} {} (DHCP from isp)   {ROUTER_LAN_IF} (br-lan {}/{LAN_PREFIX} with netd)",
        ns.router, addr.router_wan, addr.router_lan
    );
    println!("     |");
    let ports: Vec<String> = std::iter::once(SWITCH_UPLINK.to_owned())
        .chain((0..ns.lan.len()).map(Plan::switch_port))
        .collect();
    println!(
        "  switch  {:<24} {SWITCH_BRIDGE}: {}",
        ns.switch,
        ports.join(" ")
    );
    for (client, ip) in ns.lan.iter().zip(&addr.lan) {
        println!("     |");
        println!("  client  {client:<24} {CLIENT_IF} {ip}/{LAN_PREFIX}");
    }
    println!("\nRouter root: {}", info.root.display());
    println!("Enter a namespace:");
    for name in [&ns.isp, &ns.router, &ns.switch].into_iter().chain(&ns.lan) {
        println!("  ip netns exec {name} bash");
    }
}

fn print_checks(lab: &Lab) {
    println!("\nUpstream checks:");
    match lab.check() {
        Ok(check) => {
            println!(
                "  router WAN lease   {} (from the isp's dnsmasq)",
                check.wan_address
            );
            println!("  HTTP from router   {} OK", check.http_url);
            println!(
                "  DNS from router    {} -> {}",
                check.dns_name, check.dns_answer
            );
            for client in &check.lan_pinged {
                println!(
                    "  LAN ping           {client} -> {} OK",
                    lab.info().addresses.router_lan
                );
            }
        }
        Err(e) => println!("  FAILED: {e} (the lab stays up for inspection)"),
    }
}
