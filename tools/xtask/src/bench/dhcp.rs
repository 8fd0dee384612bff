//! `cargo xtask bench dhcp`.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct DhcpArgs {}

pub fn run(_args: DhcpArgs) -> Result<()> {
    bail!("the dhcp benchmark is not built yet")
}
