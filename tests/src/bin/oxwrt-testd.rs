//! A test daemon (never shipped): joins the system through the daemon
//! framework as any daemon of the policy table, records every check and
//! apply it receives, and fails when told to.

#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use oxwrt_daemon::{Domain, Sections};

#[derive(Debug, Parser)]
struct Args {
    /// The daemon it stands in for (its name, uid and sections).
    #[arg(long, default_value = "netd")]
    service: String,
    /// Appends one JSON line per check or apply here.
    #[arg(long)]
    record: Option<std::path::PathBuf>,
    /// An apply whose sections contain this text fails.
    #[arg(long)]
    fail_apply_if: Option<String>,
    /// A check whose sections contain this text fails.
    #[arg(long)]
    fail_check_if: Option<String>,
    /// Each apply takes this long.
    #[arg(long, default_value_t = 0)]
    apply_delay_ms: u64,
    /// Exits at once with this status, before joining.
    #[arg(long)]
    exit_with: Option<u8>,
}

struct Test {
    args: Args,
}

impl Test {
    fn record(&self, op: &str, sections: &Sections) -> Result<(), String> {
        let Some(path) = &self.args.record else {
            return Ok(());
        };
        let line = serde_json::json!({ "op": op, "sections": sections });
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"))
            .map_err(|e| format!("record {}: {e}", path.display()))
    }
}

fn contains(sections: &Sections, text: &Option<String>) -> bool {
    text.as_ref()
        .is_some_and(|t| sections.values().any(|json| json.contains(t.as_str())))
}

impl Domain for Test {
    async fn check(&mut self, sections: &Sections) -> Result<(), String> {
        self.record("check", sections)?;
        if contains(sections, &self.args.fail_check_if) {
            return Err("test daemon: check refused".into());
        }
        Ok(())
    }

    async fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        tokio::time::sleep(Duration::from_millis(self.args.apply_delay_ms)).await;
        self.record("apply", sections)?;
        if contains(sections, &self.args.fail_apply_if) {
            return Err("test daemon: apply failed".into());
        }
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(code) = args.exit_with {
        return ExitCode::from(code);
    }
    oxwrt_daemon::init_logging();
    let service = args.service.clone();
    match oxwrt_daemon::run(&service, Test { args }).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
