//! `cargo xtask test`: the whole CI pipeline. System packages the tests use,
//! then `cargo fmt --check`, `cargo clippy -D warnings`, the binaries the
//! end-to-end tests run, and the tests (nextest when installed).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

/// Debian packages the tests run (real peers: dnsmasq, dhclient, udhcpc,
/// dhcpcd, dig, nft, curl, busybox; busctl and dbus-send on the bus), the
/// lab itself needs (ip, ss, sysctl, python3's http.server, setpriv) and
/// the stack runs (dbus-daemon, the bus broker); fwd builds against
/// libnftnl and libmnl (found through pkg-config).
pub(crate) const PACKAGES: &[&str] = &[
    "iproute2",
    "procps",
    "dnsmasq-base",
    "isc-dhcp-client",
    "udhcpc",
    "dhcpcd5",
    "bind9-dnsutils",
    "nftables",
    "python3",
    "curl",
    "busybox",
    "dbus-daemon",
    "dbus-bin",
    "systemd",
    "util-linux",
    "pkg-config",
    "libmnl-dev",
    "libnftnl-dev",
];

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Do not install missing system packages.
    #[arg(long)]
    no_deps_install: bool,
    /// Passed on to `cargo nextest run` (or `cargo test`).
    #[arg(last = true)]
    extra: Vec<OsString>,
}

pub fn run(args: TestArgs) -> Result<()> {
    let root = workspace_root()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    if args.no_deps_install {
        step_note("system packages", "skipped (--no-deps-install)");
    } else {
        install_packages(PACKAGES).context("step `system packages` failed")?;
    }

    run_step(&root, "fmt", &cargo, &["fmt", "--all", "--check"])?;
    run_step(
        &root,
        "clippy",
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;

    // The end-to-end tests run the workspace's binaries (oxinit, configd)
    // from the target directory; tests alone do not build other crates'
    // binaries.
    run_step(&root, "build", &cargo, &["build", "--workspace", "--bins"])?;

    let nextest = Command::new(&cargo)
        .args(["nextest", "--version"])
        .current_dir(&root)
        .output()
        .is_ok_and(|o| o.status.success());
    let mut test_args: Vec<OsString> = if nextest {
        vec!["nextest".into(), "run".into(), "--workspace".into()]
    } else {
        vec!["test".into(), "--workspace".into()]
    };
    test_args.extend(args.extra);
    run_step(
        &root,
        if nextest { "nextest" } else { "test" },
        &cargo,
        &test_args,
    )?;

    eprintln!("==> xtask test: all steps passed");
    Ok(())
}

pub(crate) fn workspace_root() -> Result<PathBuf> {
    // tools/xtask -> the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_owned)
        .context("cannot find the workspace root")
}

fn step_note(step: &str, note: &str) {
    eprintln!("==> {step}: {note}");
}

fn run_step<S: AsRef<std::ffi::OsStr>>(
    root: &Path,
    step: &str,
    program: impl AsRef<std::ffi::OsStr>,
    args: &[S],
) -> Result<()> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    step_note(step, &format!("cargo {}", shown.join(" ")));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("step `{step}` could not start"))?;
    if !status.success() {
        bail!("step `{step}` failed ({status})");
    }
    Ok(())
}

/// Installs the Debian `packages` that are missing (`apt-get update`
/// first).
pub(crate) fn install_packages(packages: &[&str]) -> Result<()> {
    let mut missing = Vec::new();
    for package in packages {
        let out = Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", package])
            .output()
            .context("cannot run dpkg-query (not Debian? install the packages by hand and pass --no-deps-install)")?;
        let status = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !status.ends_with(" installed") {
            missing.push(*package);
        }
    }
    if missing.is_empty() {
        step_note("system packages", "all installed");
        return Ok(());
    }
    step_note(
        "system packages",
        &format!("installing {}", missing.join(" ")),
    );
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot run apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update"])?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install)
}
