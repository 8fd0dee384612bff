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
    /// Before joining, fills this many MiB of memory, then sleeps
    /// forever: a service past its memory limit, but a bounded one where
    /// no limit stops it.
    #[arg(long)]
    hog_mib: Option<usize>,
    /// Before joining, tries what a sandbox allows and forbids (files
    /// inside and outside its state, `/tmp`, a UDP socket) and records
    /// each outcome as one `probe` line.
    #[arg(long)]
    probe: bool,
    /// Before joining, makes one syscall its seccomp policy should kill it
    /// for: `netlink` (a socket of a family it may not open) or `mount`.
    #[arg(long)]
    forbidden: Option<String>,
}

/// The outcome of each sandbox probe, "ok" or the error.
fn probes(service: &str) -> serde_json::Map<String, serde_json::Value> {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let (etc, state) = (env("OXWRT_ETC"), env("OXWRT_STATE"));
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.kind().to_string(),
    };
    let write = |path: String| outcome(std::fs::write(path, "probe"));
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: String| out.insert(k.into(), v.into());
    put("write_own_state", write(format!("{state}/{service}/probe")));
    put("write_other_state", write(format!("{state}/configd/probe")));
    put("write_etc", write(format!("{etc}/probe")));
    put("write_tmp", write("/tmp/probe".into()));
    put(
        "read_etc",
        outcome(std::fs::read(format!("{etc}/oxwrt.toml")).map(drop)),
    );
    put(
        "read_host_etc",
        outcome(std::fs::read("/etc/hostname").map(drop)),
    );
    put(
        "udp_socket",
        outcome(std::net::UdpSocket::bind("127.0.0.1:0").map(drop)),
    );
    out
}

/// Makes the syscall `what` names; returns only if it was allowed.
fn forbidden(what: &str) -> std::io::Result<()> {
    match what {
        "netlink" => socket2::Socket::new(
            socket2::Domain::from(nix::libc::AF_NETLINK),
            socket2::Type::RAW,
            None,
        )
        .map(drop),
        "mount" => nix::mount::mount(
            Some("none"),
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(std::io::Error::from),
        other => Err(std::io::Error::other(format!("no probe {other}"))),
    }
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
    if let Some(mib) = args.hog_mib {
        // Every page written, so every page is charged.
        let held = vec![1u8; mib << 20];
        loop {
            std::thread::sleep(Duration::from_secs(3600));
            std::hint::black_box(&held);
        }
    }
    oxwrt_daemon::init_logging();
    if let Some(what) = &args.forbidden {
        tracing::error!("{what}: allowed ({:?})", forbidden(what));
        return ExitCode::from(70);
    }
    if args.probe {
        let line = serde_json::json!({ "op": "probe", "results": probes(&args.service) });
        let recorded = args.record.as_ref().map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"))
        });
        if let Some(Err(e)) = recorded {
            tracing::error!("record the probes: {e}");
            return ExitCode::from(70);
        }
    }
    let service = args.service.clone();
    match oxwrt_daemon::run(&service, Test { args }).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}
