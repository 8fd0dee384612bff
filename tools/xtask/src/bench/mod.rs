//! `cargo xtask bench`: oxwrt's daemons measured side by side with the
//! established peer doing the same job, in one run, on the same
//! namespaces. Figures are printed, never asserted: targets are read by
//! people from the report.

mod control;
mod dhcp;
mod dns;

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::test::{install_packages, workspace_root};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum Target {
    /// oxctl against ctld (status round trips, push and reload), and ssh
    /// against dropbear, in the lab router.
    Control(control::ControlArgs),
    /// perfdhcp against dhcpd, Kea and dnsmasq.
    Dhcp(dhcp::DhcpArgs),
    /// dnsperf against dnsd, dnsmasq and unbound.
    Dns(dns::DnsArgs),
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.target {
        Target::Control(a) => control::run(a),
        Target::Dhcp(a) => dhcp::run(a),
        Target::Dns(a) => dns::run(a),
    }
}

/// Checks for root, installs the Debian `packages` that are missing
/// (unless `no_deps_install`), and builds `binaries` (each of the package
/// of the same name) with `--release`; returns the directory they are in.
fn prepare(
    what: &str,
    packages: &[&str],
    no_deps_install: bool,
    binaries: &[&str],
) -> Result<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the {what} benchmark needs root (network namespaces, privileged ports)");
    }
    if !no_deps_install {
        install_packages(packages)?;
    }
    let root = workspace_root()?;
    eprintln!("==> building {} (release)", binaries.join(", "));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--release"]).current_dir(&root);
    for binary in binaries {
        build.args(["-p", binary, "--bin", binary]);
    }
    let status = build.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building {} failed ({status})", binaries.join(", "));
    }
    Ok(root.join("target/release"))
}

/// `field` of `/proc/PID/status`, in kB.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// A child process, killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
