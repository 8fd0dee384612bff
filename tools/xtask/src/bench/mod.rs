//! `cargo xtask bench`: oxwrt's daemons measured side by side with the
//! established peer doing the same job, in one run, on the same
//! namespaces. Figures are printed, never asserted: targets are read by
//! people from the report.

mod dhcp;
mod dns;

use anyhow::Result;
use clap::{Args, Subcommand};

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
