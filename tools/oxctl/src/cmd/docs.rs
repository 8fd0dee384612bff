//! `oxctl completions SHELL` and `oxctl man`: generated from the clap
//! definition, so they can never disagree with it.

use std::process::ExitCode;

use clap::CommandFactory as _;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(shell, &mut cmd, "oxctl", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page (roff).
pub fn man() -> anyhow::Result<ExitCode> {
    clap_mangen::Man::new(crate::Cli::command()).render(&mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}
