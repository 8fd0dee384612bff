//! `cargo xtask bench dns`.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct DnsArgs {}

pub fn run(_args: DnsArgs) -> Result<()> {
    bail!("the dns benchmark is not built yet")
}
