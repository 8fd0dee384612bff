//! The sandbox from outside: a test daemon started by oxinit under dhcpd's
//! uid, seccomp policy and files profile tries what the profile allows
//! and forbids, then joins the bus and reads its config sections as dhcpd
//! does. The real daemons' sandboxes are checked from `/proc` in
//! `router::each_daemon_runs_as_its_uid_with_only_its_capabilities`.

use std::time::Duration;

use oxwrt_lab::testing;

use crate::spine::{Stack, Testd};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn a_daemon_under_dhcpds_sandbox_may_do_what_its_policy_allows_and_nothing_else() {
    testing::run(LIMIT, |scope| {
        let probe = Testd {
            service: "dhcpd",
            args: &["--probe"],
            sandbox: Some("dhcpd"),
        };
        let netlink = Testd {
            service: "probe-netlink",
            args: &["--forbidden", "netlink"],
            sandbox: Some("dhcpd"),
        };
        let mount = Testd {
            service: "probe-mount",
            args: &["--forbidden", "mount"],
            sandbox: Some("dhcpd"),
        };
        let stack = Stack::start(scope, &[probe, netlink, mount])?;

        // A syscall outside the policy (mount), or an allowed one with an
        // argument it does not allow (a netlink socket), kills the process;
        // oxinit says why.
        for name in ["probe-netlink", "probe-mount"] {
            let s = stack.wait_service(name, "the forbidden syscall's crash", |s| {
                s.last_exit.contains("SIGSYS")
            })?;
            assert_eq!(
                s.last_exit, "killed by SIGSYS (a syscall outside its seccomp policy)",
                "{name}"
            );
        }

        stack.wait_service("dhcpd", "the probing dhcpd to run", |s| {
            s.state == "running"
        })?;
        let lines = stack.record_json(&probe);
        let results = &lines.first().ok_or("no probe line")?["results"];
        let outcome = |k: &str| results[k].as_str().unwrap_or("missing").to_string();
        // Landlock and the read-only mounts: its own state only.
        assert_eq!(outcome("write_own_state"), "ok", "{results}");
        assert_eq!(outcome("udp_socket"), "ok", "{results}");
        // The private /tmp is writable as a mount; landlock alone refuses it.
        assert_eq!(outcome("write_tmp"), "permission denied", "{results}");
        assert_eq!(outcome("read_host_etc"), "permission denied", "{results}");
        // Elsewhere the read-only view or landlock refuses it, or, in a
        // lab whose root is under /tmp, it is not even in the private /tmp.
        for k in ["write_other_state", "write_etc", "read_etc"] {
            assert!(
                [
                    "permission denied",
                    "read-only filesystem or storage medium",
                    "entity not found"
                ]
                .contains(&outcome(k).as_str()),
                "{k}: {results}"
            );
        }
        // Through the bus it still gets its own sections, as dhcpd would.
        let apply = lines
            .iter()
            .find(|l| l["op"] == "apply")
            .ok_or("no apply recorded")?;
        assert!(apply["sections"].get("dhcp").is_some(), "{apply}");
        Ok(())
    });
}
