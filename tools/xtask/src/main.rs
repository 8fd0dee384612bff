//! oxwrt developer tasks: `cargo xtask lab`, `cargo xtask test` and
//! `cargo xtask bench`.

#![forbid(unsafe_code)]

mod bench;
mod lab;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// oxwrt developer tasks.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a virtual router in network namespaces (needs root).
    Lab(lab::LabArgs),
    /// Install system packages, then run fmt, clippy and the tests.
    Test(test::TestArgs),
    /// Benchmark a daemon against its established peer (needs root).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lab(args) => lab::run(args),
        Command::Test(args) => test::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
