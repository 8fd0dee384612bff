//! `cargo xtask lab up` / `lab down` from outside: the detached lab
//! outlives the command, the command prints one JSON object and does not
//! leave its output held open, and `lab down` removes everything.

use std::process::Output;
use std::time::Duration;

use oxwrt_lab::exec::{ProcId, run};
use oxwrt_lab::state::{STATE_DIR_ENV, State};
use oxwrt_lab::support::{SupportError, check_kernel};
use oxwrt_lab::testing::{self, Skip, TestResult};
use oxwrt_lab::{LabInfo, netns};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn xtask(state_dir: &std::path::Path, args: &[&str]) -> Result<Output, oxwrt_lab::ExecError> {
    // `env` sets the state directory without touching this process's
    // environment, which other tests share.
    let dir = format!("{STATE_DIR_ENV}={}", state_dir.display());
    let mut argv = vec!["env", dir.as_str(), XTASK];
    argv.extend_from_slice(args);
    run(&argv, Duration::from_secs(60))
}

/// Takes a detached lab down when a check fails before the test's own
/// `lab down` (which disarms it).
struct Down<'a> {
    state_dir: &'a std::path::Path,
    name: &'a str,
    armed: bool,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = xtask(self.state_dir, &["lab", "down", "--name", self.name]);
        }
    }
}

#[test]
fn lab_up_detaches_and_lab_down_removes() {
    testing::run(Duration::from_secs(120), |_| -> TestResult {
        if let Err(SupportError::Unsupported { reason }) = check_kernel() {
            return Err(Box::new(Skip { reason }));
        }
        let pid = std::process::id();
        let name = format!("cli{pid}");
        let state_dir = std::env::temp_dir().join(format!("oxwrt-lab-cli-{pid}"));

        let up = xtask(
            &state_dir,
            &["lab", "up", "--name", &name, "--clients", "2"],
        )?;
        let mut cleanup = Down {
            state_dir: &state_dir,
            name: &name,
            armed: true,
        };
        let stdout = String::from_utf8_lossy(&up.stdout);
        assert!(
            up.status.success(),
            "lab up failed: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
        let info: LabInfo = serde_json::from_str(&stdout)?;
        assert_eq!(info.name, name);
        assert_eq!(info.namespaces.lan.len(), 2);
        // Addresses are bare, without a prefix length.
        let a = &info.addresses;
        for addr in [&a.router_lan, &a.router_wan, &a.isp]
            .into_iter()
            .chain(&a.lan)
        {
            assert!(
                addr.parse::<std::net::IpAddr>().is_ok(),
                "not a bare address: {addr}"
            );
        }
        assert_eq!(a.lan.len(), 2);
        assert_eq!(info.dir, state_dir.join(&name));

        // The command is gone; the lab is not.
        let state = State::load(&info.dir)?;
        assert!(state.detached);
        let processes: Vec<ProcId> = state.processes.iter().map(|p| p.id).collect();
        assert!(!processes.is_empty() && processes.iter().all(ProcId::is_alive));
        let live = netns::list()?;
        assert!(live.contains(&info.namespaces.router));

        // ctld runs in the stack: a LAN client reaches it with the key and
        // the pinned server key the lab printed.
        let control = info.control.as_ref().ok_or("lab up runs no ctld")?;
        let oxctl = std::path::Path::new(XTASK).with_file_name("oxctl");
        let env = [
            format!("OXCTL_HOST={}", control.addr),
            format!("OXCTL_KEY={}", control.key),
            format!("OXCTL_SERVER_KEY={}", control.server_key),
            format!(
                "OXCTL_CONFIG={}",
                info.dir.join("no-client-config.toml").display()
            ),
        ];
        let mut argv = vec!["ip", "netns", "exec", &info.namespaces.lan[0], "env"];
        argv.extend(env.iter().map(String::as_str));
        argv.extend([oxctl.to_str().ok_or("oxctl's path")?, "status"]);
        let status = run(&argv, Duration::from_secs(30))?;
        let text = String::from_utf8_lossy(&status.stdout);
        assert!(
            status.status.success() && text.contains("client       lab (admin)"),
            "oxctl status: {text}{}",
            String::from_utf8_lossy(&status.stderr)
        );

        cleanup.armed = false;
        let down = xtask(&state_dir, &["lab", "down", "--name", &name])?;
        assert!(
            down.status.success(),
            "lab down failed: {}",
            String::from_utf8_lossy(&down.stderr)
        );
        assert!(processes.iter().all(|id| !id.is_alive()));
        let live = netns::list()?;
        assert!(state.namespaces.iter().all(|ns| !live.contains(ns)));
        assert!(!info.dir.exists());

        let again = xtask(&state_dir, &["lab", "down", "--name", &name])?;
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("no lab named"));
        std::fs::remove_dir(&state_dir)?;
        Ok(())
    });
}
