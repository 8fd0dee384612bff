//! `cargo xtask bench`: oxwrt's daemons measured side by side with the
//! established peer doing the same job, in one run, on the same
//! namespaces. Figures are printed, never asserted: targets are read by
//! people from the report.

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
    /// perfdhcp against dhcpd, Kea and dnsmasq.
    Dhcp(dhcp::DhcpArgs),
    /// dnsperf against dnsd, dnsmasq and unbound.
    Dns(dns::DnsArgs),
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.target {
        Target::Dhcp(a) => dhcp::run(a),
        Target::Dns(a) => dns::run(a),
    }
}

/// Checks for root, installs the Debian `packages` that are missing
/// (unless `no_deps_install`), and builds `binary` (of the package of the
/// same name) with `--release`; returns its path.
fn prepare(what: &str, packages: &[&str], no_deps_install: bool, binary: &str) -> Result<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the {what} benchmark needs root (network namespaces, privileged ports)");
    }
    if !no_deps_install {
        install_packages(packages)?;
    }
    let root = workspace_root()?;
    eprintln!("==> building {binary} (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", binary, "--bin", binary])
        .current_dir(&root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building {binary} failed ({status})");
    }
    Ok(root.join("target/release").join(binary))
}

/// A child process, killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
