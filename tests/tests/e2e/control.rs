//! The control plane end to end: `oxctl` in a LAN client's namespace
//! talks QUIC to ctld in the lab router (the real stack, the lab's
//! config), and every change is checked in the kernel (`br-lan`'s MTU).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bus_schema::bus::{Config1Proxy, Init1Proxy};
use oxwrt_lab::testing::{self, TestResult};
use oxwrt_lab::wait_for;

use crate::router::Router;
use crate::spine::{BoxError, built};

const LIMIT: Duration = Duration::from_secs(300);
/// The DHCP host whose lease a backup keeps.
const HOST_MAC: &str = "02:00:00:00:01:77";
const WAIT: Duration = Duration::from_secs(30);

/// The LAN bridge's MTU as the test sets it first, and the edit it
/// pushes. Explicit both ways: netd leaves a link's MTU alone when the
/// config stops naming one, so a rollback to "no mtu" would not show.
const BRIDGE: &str = "bridge = \"br-lan\"\n";
const MTU: &str = "bridge = \"br-lan\"\nmtu = 1500\n";
const SMALL_MTU: &str = "bridge = \"br-lan\"\nmtu = 1400\n";

/// oxctl as an operator on a LAN client runs it.
struct Ctl<'a> {
    router: &'a Router,
    oxctl: PathBuf,
    dir: PathBuf,
    host: String,
    server_key: String,
}

impl<'a> Ctl<'a> {
    fn new(router: &'a Router, dir: &Path) -> Result<Self, BoxError> {
        let control = router
            .lab
            .info()
            .control
            .clone()
            .ok_or("the lab runs no ctld")?;
        Ok(Self {
            router,
            oxctl: built("oxctl")?,
            dir: dir.to_owned(),
            host: control.addr,
            server_key: control.server_key,
        })
    }

    fn command(&self, key: &Path, server_key: Option<&str>, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.router.ns().lan[0]])
            .arg(&self.oxctl)
            .args(args)
            .env("OXCTL_HOST", &self.host)
            .env("OXCTL_KEY", key)
            .env("OXCTL_CONFIG", self.dir.join("no-client-config.toml"))
            .env_remove("OXCTL_SERVER_KEY");
        if let Some(k) = server_key {
            c.env("OXCTL_SERVER_KEY", k);
        }
        c
    }

    /// Runs oxctl with `key` and the router's pinned key.
    fn run(&self, key: &Path, args: &[&str]) -> Result<Output, BoxError> {
        Ok(self.command(key, Some(&self.server_key), args).output()?)
    }

    /// Runs it and requires success; its stdout.
    fn ok(&self, key: &Path, args: &[&str]) -> Result<String, BoxError> {
        let out = self.run(key, args)?;
        if !out.status.success() {
            return Err(format!("oxctl {args:?}: {}", describe(&out)).into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// A new client key (oxctl keygen) and its public half.
    fn keygen(&self, name: &str) -> Result<(PathBuf, String), BoxError> {
        let path = self.dir.join(format!("{name}.key"));
        let out = Command::new(&self.oxctl)
            .args(["keygen", "--out"])
            .arg(&path)
            .output()?;
        assert!(out.status.success(), "keygen: {}", describe(&out));
        let public = std::fs::read_to_string(path.with_extension("key.pub"))?;
        Ok((path, public.trim().to_string()))
    }

    /// `br-lan`'s MTU in the router.
    fn mtu(&self) -> Result<u32, BoxError> {
        let link = self.router.ip(&["-o", "link", "show", "br-lan"])?;
        let mtu = link
            .split_whitespace()
            .skip_while(|w| *w != "mtu")
            .nth(1)
            .ok_or("no mtu")?;
        Ok(mtu.parse()?)
    }

    fn wait_mtu(&self, want: u32, why: &str) -> TestResult {
        wait_for(why, Instant::now() + WAIT, || {
            self.mtu().ok().filter(|m| *m == want)
        })?;
        Ok(())
    }

    /// The running generation, from configd.
    fn generation(&self) -> Result<u64, BoxError> {
        let config = self.router.rt.block_on(
            Config1Proxy::builder(&self.router.conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build(),
        )?;
        Ok(self.router.rt.block_on(config.generation())?)
    }
}

/// The lab router with the stack, and a directory for oxctl's files.
fn boot(scope: &testing::Scope) -> Result<(Router, PathBuf), BoxError> {
    let router = Router::boot(scope, 1)?;
    let dir = router.lab.dir().join("oxctl");
    std::fs::create_dir_all(&dir)?;
    Ok((router, dir))
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn clients(entries: &[(&str, &str, &str)]) -> String {
    entries
        .iter()
        .map(|(name, key, role)| {
            format!(
                "\n[[control.clients]]\nname = \"{name}\"\nkey = \"{key}\"\nrole = \"{role}\"\n"
            )
        })
        .collect()
}

#[test]
fn an_operator_pushes_reloads_confirms_rolls_back_and_restores_over_quic() {
    testing::run(LIMIT, |scope| {
        let (mut router, dir) = boot(scope)?;
        let host = router.host(HOST_MAC)?;
        let ctl = Ctl::new(&router, &dir)?;

        // A new key, authorized in the router's config.
        let (admin, admin_pub) = ctl.keygen("admin")?;
        let mode = std::fs::metadata(&admin)?.permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        router.reload_with(BRIDGE, MTU)?;
        router.reload_with("", &clients(&[("admin", &admin_pub, "admin")]))?;

        // status works, in both forms.
        let status = ctl.ok(&admin, &["status"])?;
        assert!(status.contains("hostname     oxwrt-lab"), "{status}");
        assert!(status.contains("client       admin (admin)"), "{status}");
        let json: serde_json::Value =
            serde_json::from_str(&ctl.ok(&admin, &["status", "--json"])?)?;
        assert_eq!(json["generation"], ctl.generation()?);
        let names: Vec<&str> = json["services"]
            .as_array()
            .ok_or("services")?
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        for daemon in ["configd", "netd", "fwd", "dhcpd", "dnsd", "ctld"] {
            assert!(names.contains(&daemon), "{names:?}");
        }
        assert_eq!(ctl.ok(&admin, &["get", "system.hostname"])?, "oxwrt-lab\n");
        assert!(
            json["wan"]
                .as_array()
                .ok_or("wan")?
                .iter()
                .any(|w| w["network"] == "wan" && w["device"] == "wan0"),
            "{json}"
        );
        // The key the lab pinned is the one the router prints.
        let state = router.lab.root().join("var/lib/oxwrt");
        let printed = Command::new(&ctl.oxctl)
            .args(["--print-server-key", "--state"])
            .arg(&state)
            .output()?;
        assert_eq!(String::from_utf8(printed.stdout)?.trim(), ctl.server_key);
        // restart, as an admin may.
        assert_eq!(ctl.ok(&admin, &["restart", "dnsd"])?, "restarted dnsd\n");

        // A changed config, pushed.
        let etc = router.lab.root().join("etc/oxwrt");
        let running = std::fs::read_to_string(etc.join("oxwrt.toml"))?;
        let local = dir.join("oxwrt.toml");
        std::fs::write(&local, running.replacen(MTU, SMALL_MTU, 1))?;
        std::fs::copy(
            etc.join("oxwrt.secrets.toml"),
            dir.join("oxwrt.secrets.toml"),
        )?;
        let diff = ctl.ok(&admin, &["diff", &local.display().to_string()])?;
        assert!(diff.contains("+mtu = 1400"), "{diff}");
        ctl.ok(&admin, &["config-push", &local.display().to_string()])?;

        // A dry run shows the diff and changes nothing.
        let before = ctl.generation()?;
        let on_disk = std::fs::read(etc.join("oxwrt.toml"))?;
        let dry = ctl.ok(&admin, &["reload", "--dry-run"])?;
        assert!(
            dry.contains("mtu") && dry.contains("+mtu = 1400") && dry.contains("dry run"),
            "{dry}"
        );
        assert_eq!(ctl.generation()?, before);
        assert_eq!(ctl.mtu()?, 1500);
        assert_eq!(std::fs::read(etc.join("oxwrt.toml"))?, on_disk);

        // The reload applies it.
        let applied = ctl.ok(&admin, &["reload", "--comment", "smaller mtu"])?;
        assert!(applied.contains("changed: networks"), "{applied}");
        assert_eq!(ctl.generation()?, before + 1);
        ctl.wait_mtu(1400, "the pushed MTU in the kernel")?;

        // rollback needs --confirm, on the client and then the server.
        let out = ctl.run(&admin, &["rollback"])?;
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        ctl.ok(&admin, &["rollback", "--confirm"])?;
        ctl.wait_mtu(1500, "the rolled-back MTU in the kernel")?;

        // The ring holds every generation, newest first.
        let list: serde_json::Value =
            serde_json::from_str(&ctl.ok(&admin, &["rollback-list", "--json"])?)?;
        let gens: Vec<u64> = list["snapshots"]
            .as_array()
            .ok_or("snapshots")?
            .iter()
            .filter_map(|s| s["generation"].as_u64())
            .collect();
        assert!(
            gens.len() >= 3 && gens.windows(2).all(|w| w[0] > w[1]),
            "{gens:?}"
        );
        assert_eq!(list["running"], ctl.generation()?);
        let table = ctl.ok(&admin, &["rollback-list"])?;
        assert!(
            table.starts_with("INDEX") && table.contains("smaller mtu"),
            "{table}"
        );

        // Commit-confirm: without confirm it reverts by itself...
        ctl.ok(&admin, &["config-push", &local.display().to_string()])?;
        ctl.ok(&admin, &["reload", "--confirm-within", "3s"])?;
        ctl.wait_mtu(1400, "the provisional MTU")?;
        ctl.wait_mtu(1500, "the unconfirmed MTU to revert")?;
        // ...and with it, stays past the deadline.
        ctl.ok(&admin, &["config-push", &local.display().to_string()])?;
        ctl.ok(&admin, &["reload", "--confirm-within", "3s"])?;
        ctl.ok(&admin, &["confirm"])?;
        let kept = ctl.generation()?;
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(ctl.generation()?, kept);
        assert_eq!(ctl.mtu()?, 1400);

        // A pushed config with errors: all of them, with the local file's
        // name and lines; the running config stays.
        let bad = dir.join("bad.toml");
        let text = running
            .replacen(
                "address = \"192.168.1.1/24\"",
                "address = \"192.168.1.300/24\"",
                1,
            )
            .replacen("hostname = \"oxwrt-lab\"\n", "hostname = \"-bad-\"\n", 1);
        std::fs::write(&bad, text)?;
        let on_disk = std::fs::read(etc.join("oxwrt.toml"))?;
        let out = ctl.run(&admin, &["config-push", &bad.display().to_string()])?;
        assert_eq!(out.status.code(), Some(78), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(&format!("{}:", bad.display())))
            .collect();
        assert!(
            errors
                .iter()
                .any(|l| l.contains("bad.toml:10:12: system.hostname")),
            "{err}"
        );
        assert!(
            errors
                .iter()
                .any(|l| l.contains("bad.toml:20:11: networks[0].address")),
            "{err}"
        );
        assert_eq!(ctl.generation()?, kept);
        assert_eq!(std::fs::read(etc.join("oxwrt.toml"))?, on_disk);

        // backup, a deliberate bad change, restore: the config and a DHCP
        // host's lease, released after the backup, come back.
        let udhcpc = host.udhcpc("restored", &[]);
        host.wait_event(&["bound"]);
        let leased = router.wait_lease("the host's lease", |l| l.mac == HOST_MAC)?;
        let backup = dir.join("backup.tar.gz");
        ctl.ok(&admin, &["backup", "-o", &backup.display().to_string()])?;
        let mode = std::fs::metadata(&backup)?.permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        udhcpc.signal("USR2"); // DHCPRELEASE
        wait_for("the host's release", Instant::now() + WAIT, || {
            let leases = router.leases().ok()?;
            leases.iter().all(|l| l.mac != HOST_MAC).then_some(())
        })?;
        std::fs::write(
            &local,
            running.replacen(MTU, "bridge = \"br-lan\"\nmtu = 1280\n", 1),
        )?;
        ctl.ok(&admin, &["config-push", &local.display().to_string()])?;
        ctl.ok(&admin, &["reload"])?;
        ctl.wait_mtu(1280, "the bad change")?;
        let out = ctl.run(&admin, &["restore", &backup.display().to_string()])?;
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        let restored = ctl.ok(
            &admin,
            &["restore", "--confirm", &backup.display().to_string()],
        )?;
        ctl.wait_mtu(1400, "the backed-up MTU")?;
        assert!(
            restored.contains("leases: 1 restored, 0 left out"),
            "{restored}"
        );
        let back = router.leases()?;
        assert!(back.contains(&leased), "{leased:?} not in {back:?}");
        // Durable: dhcpd reads it back from its journal after a restart.
        let restart = router.restarted("dhcpd", || ctl.ok(&admin, &["restart", "dhcpd"]))?;
        assert_eq!(restart, "restarted dhcpd\n");
        wait_for(
            "the restored lease after a restart",
            Instant::now() + WAIT,
            || router.leases().ok()?.contains(&leased).then_some(()),
        )?;

        // Every mutation is in the audit log, with who and generations.
        let audit: serde_json::Value =
            serde_json::from_str(&ctl.ok(&admin, &["audit", "--json", "-n", "0"])?)?;
        let entries = audit.as_array().ok_or("audit")?;
        let rpcs: Vec<&str> = entries.iter().filter_map(|e| e["rpc"].as_str()).collect();
        for rpc in [
            "restart dnsd",
            "config-push",
            "reload --dry-run",
            "reload",
            "rollback --to 0",
            "confirm",
            "backup",
            "restore",
        ] {
            assert!(rpcs.contains(&rpc), "{rpc} not in {rpcs:?}");
        }
        let reload = entries
            .iter()
            .find(|e| e["rpc"] == "reload")
            .ok_or("no reload entry")?;
        assert_eq!(reload["client"], "admin");
        assert_eq!(
            reload["fingerprint"],
            oxwrt_quic::Identity::load(&admin)?.fingerprint()
        );
        assert_eq!(reload["result"], "ok");
        assert_eq!(reload["generation_after"], before + 1);
        assert_eq!(reload["generation_before"], before);
        assert!(
            entries
                .iter()
                .any(|e| e["result"].as_str().is_some_and(|r| r.starts_with("error"))),
            "the invalid push is audited as failed: {entries:?}"
        );

        // diag reads the kernel and the daemons.
        let links = ctl.ok(&admin, &["diag", "links"])?;
        assert!(links.contains("br-lan"), "{links}");
        let routes: serde_json::Value =
            serde_json::from_str(&ctl.ok(&admin, &["diag", "routes", "--json"])?)?;
        assert!(
            routes
                .as_array()
                .ok_or("routes")?
                .iter()
                .any(|r| r["destination"] == "0.0.0.0/0" && r["device"] == "wan0"),
            "{routes}"
        );
        Ok(())
    });
}

/// How soon ctld must notice a client that closed its connection:
/// well within the QUIC idle timeout (30 s), after which it would notice
/// a client that vanished without a word.
const CLOSED: Duration = Duration::from_secs(10);

/// Waits for a line of ctld's log containing `text`.
fn ctld_logged(router: &Router, text: &str, within: Duration) -> TestResult {
    let init = router.rt.block_on(Init1Proxy::new(&router.conn))?;
    wait_for(
        &format!("ctld to log {text:?}"),
        Instant::now() + within,
        || {
            let logs = router.rt.block_on(init.logs("ctld", 0)).ok()?;
            logs.iter().any(|l| l.contains(text)).then_some(())
        },
    )?;
    Ok(())
}

/// Reads `child`'s stdout until `lines` lines containing `marker` came.
fn read_until(child: &mut Child, marker: &str, count: usize) -> Result<String, BoxError> {
    use std::io::BufRead as _;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut reader = std::io::BufReader::new(stdout);
    let (mut seen, mut all, mut line) = (0, String::new(), String::new());
    while seen < count {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(format!("stream ended after {all:?}").into());
        }
        seen += usize::from(line.contains(marker));
        all.push_str(&line);
    }
    child.stdout = Some(reader.into_inner());
    Ok(all)
}

#[test]
fn keys_roles_rate_limits_and_streams_are_enforced_by_ctld() {
    testing::run(LIMIT, |scope| {
        let (router, dir) = boot(scope)?;
        let ctl = Ctl::new(&router, &dir)?;
        let (admin, admin_pub) = ctl.keygen("admin")?;
        let (reader, reader_pub) = ctl.keygen("reader")?;
        let (stranger, _) = ctl.keygen("stranger")?;
        router.reload_with(
            "",
            &clients(&[
                ("admin", &admin_pub, "admin"),
                ("reader", &reader_pub, "read-only"),
            ]),
        )?;

        // An unknown key cannot connect.
        let out = ctl.run(&stranger, &["status"])?;
        assert_eq!(out.status.code(), Some(77), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("refused this client's key"),
            "{}",
            describe(&out)
        );
        // A read-only key reads (ping is status calls) but cannot reload.
        ctl.ok(&reader, &["services"])?;
        let ping = ctl.ok(&reader, &["ping", "-c", "3", "-i", "0.05"])?;
        assert!(
            ping.contains("connected in")
                && ping.contains("seq=3 time=")
                && ping.contains("3 calls, round trip min/p50/p99/max"),
            "{ping}"
        );
        let ping: serde_json::Value =
            serde_json::from_str(&ctl.ok(&reader, &["--json", "ping", "-c", "2", "-i", "0"])?)?;
        assert_eq!(ping["calls"], 2, "{ping}");
        for figure in ["connect_ms", "min_ms", "p50_ms", "p99_ms", "max_ms"] {
            assert!(ping[figure].as_f64().is_some_and(|ms| ms > 0.0), "{ping}");
        }
        assert!(ping["min_ms"].as_f64() <= ping["max_ms"].as_f64(), "{ping}");
        let out = ctl.run(&reader, &["reload"])?;
        assert_eq!(out.status.code(), Some(77), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("read-only"),
            "{}",
            describe(&out)
        );
        // A wrong pinned server key, and none at all.
        let wrong = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
        let out = ctl.command(&admin, Some(wrong), &["status"]).output()?;
        assert_eq!(out.status.code(), Some(77), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not the pinned"),
            "{}",
            describe(&out)
        );
        let out = ctl.command(&admin, None, &["status"]).output()?;
        assert_eq!(out.status.code(), Some(77), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no server key is pinned") && err.contains(&ctl.server_key),
            "{err}"
        );

        // watch streams until the client is stopped; the server ends its
        // stream at once.
        let mut watch = ctl
            .command(
                &admin,
                Some(&ctl.server_key),
                &["watch", "--interval", "0.3", "services"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let seen = read_until(&mut watch, "SERVICE", 3)?;
        assert!(seen.contains("ctld"), "{seen}");
        // Ctrl-C, as an operator stops it.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(watch.id())?),
            nix::sys::signal::Signal::SIGINT,
        )?;
        assert_eq!(watch.wait()?.code(), Some(130));
        ctld_logged(&router, "watch services stream ended", CLOSED)?;

        // logs -f: the last lines, then new ones as they are written
        // (each connection makes ctld log one).
        let mut follow = ctl
            .command(
                &admin,
                Some(&ctl.server_key),
                &["logs", "-f", "-n", "1", "ctld"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        read_until(&mut follow, "", 1)?;
        ctl.ok(&reader, &["status"])?;
        let new = read_until(&mut follow, "reader", 1)?;
        assert!(new.contains("connected"), "{new}");
        // Ctrl-C, as an operator stops it.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(follow.id())?),
            nix::sys::signal::Signal::SIGINT,
        )?;
        assert_eq!(follow.wait()?.code(), Some(130));
        ctld_logged(&router, "logs --follow ctld stream ended", CLOSED)?;

        // Malformed frames close their stream with an error; the
        // connection and the server go on.
        let ns = router.ns().lan[0].clone();
        let (host, server_key) = (ctl.host.clone(), ctl.server_key.clone());
        let key = oxwrt_quic::Identity::load(&admin)?;
        std::thread::spawn(move || raw::malformed_frames(&ns, &host, &server_key, &key))
            .join()
            .map_err(|_| "the raw client panicked")??;

        // The rate limit: a burst goes over it and says when to retry;
        // after that wait, calls pass again.
        router.reload_with("[control]\n", "[control]\nrate_limit = 1\nrate_burst = 2\n")?;
        let mut limited = None;
        for _ in 0..6 {
            let out = ctl.run(&admin, &["services"])?;
            if out.status.code() == Some(75) {
                limited = Some(String::from_utf8_lossy(&out.stderr).into_owned());
                break;
            }
            assert!(out.status.success(), "{}", describe(&out));
        }
        let limited = limited.ok_or("six calls in a row were never rate limited")?;
        assert!(limited.contains("rate limited, retry in"), "{limited}");
        let ms: u64 = limited
            .split("retry in ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .ok_or("no delay")?
            .parse()?;
        std::thread::sleep(Duration::from_millis(ms + 50));
        ctl.ok(&admin, &["services"])?;
        Ok(())
    });
}

/// A client below oxctl: frames oxctl would never send.
mod raw {
    use bus_schema::control::{
        Call, Empty, ErrorCode, Hello, MAX_RESPONSE, PROTOCOL_VERSION, Reply, Request, Response,
        RollbackRequest,
    };
    use ctld::server::MAX_CONNECTIONS;
    use oxwrt_quic::{Identity, ServerKeySeen, client_config, frame};

    use crate::spine::BoxError;

    /// In a thread of its own: joins LAN namespace `ns`, connects, and
    /// checks that another protocol version is refused, bad frames get
    /// errors while a good call still works, and the connection limit.
    pub(super) fn malformed_frames(
        ns: &str,
        host: &str,
        server_key: &str,
        key: &Identity,
    ) -> Result<(), BoxError> {
        oxwrt_lab::scratch::enter(ns)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let (ep, conn) = connect(host, server_key, key).await?;
            let welcome = hello(&conn, PROTOCOL_VERSION).await?;
            assert!(matches!(welcome, Some(Reply::Welcome(_))), "{welcome:?}");

            // Another protocol version is refused at the hello.
            let (_ep2, other) = connect(host, server_key, key).await?;
            match hello(&other, PROTOCOL_VERSION + 1).await? {
                Some(Reply::Error(e)) => assert_eq!(e.code, ErrorCode::Version as i32, "{e:?}"),
                r => return Err(format!("a wrong version got {r:?}").into()),
            }

            let error_for = |bytes: Vec<u8>| {
                let conn = conn.clone();
                async move {
                    let (mut send, mut recv) = conn.open_bi().await?;
                    send.write_all(&bytes).await?;
                    send.finish()?;
                    let e = match frame::read::<Response>(&mut recv, MAX_RESPONSE)
                        .await?
                        .and_then(|r| r.reply)
                    {
                        Some(Reply::Error(e)) => e,
                        other => return Err(format!("no error for {bytes:?}: {other:?}").into()),
                    };
                    // ... and the server ends that stream after it.
                    let after = frame::read::<Response>(&mut recv, MAX_RESPONSE).await?;
                    if after.is_some() {
                        return Err(format!("the stream went on after the error: {after:?}").into());
                    }
                    Ok::<_, BoxError>(e)
                }
            };
            // Not protobuf; cut short; over the size limit.
            for bytes in [
                vec![0, 0, 0, 3, 0xff, 0xff, 0xff],
                vec![0, 0, 0, 9, 1],
                vec![0xff, 0xff, 0xff, 0xff],
            ] {
                let e = error_for(bytes).await?;
                assert_eq!(e.code, ErrorCode::BadRequest as i32, "{e:?}");
            }
            // A destructive call without confirm, below oxctl's check.
            let unconfirmed = bus_schema::control::encode_frame(&Request {
                call: Some(Call::Rollback(RollbackRequest {
                    to: 0,
                    confirm: false,
                })),
            });
            let e = error_for(unconfirmed).await?;
            assert_eq!(e.code, ErrorCode::NotConfirmed as i32, "{e:?}");
            // The same connection still serves.
            let (mut send, mut recv) = conn.open_bi().await?;
            let status = Request {
                call: Some(Call::Services(Empty {})),
            };
            frame::write(&mut send, &status).await?;
            send.finish()?;
            let r = frame::read::<Response>(&mut recv, MAX_RESPONSE).await?;
            assert!(matches!(r.and_then(|r| r.reply), Some(Reply::Services(_))));
            conn.close(0u8.into(), b"done");
            ep.wait_idle().await;

            // Each listener serves 16 connections at once; the next is
            // closed with the reason. (Killed clients above may still hold
            // slots until their idle timeout, so the refusal may come
            // sooner; it must come.)
            let mut held = Vec::new();
            let mut refused = None;
            for _ in 0..=MAX_CONNECTIONS {
                let (ep, conn) = connect(host, server_key, key).await?;
                match hello(&conn, PROTOCOL_VERSION).await {
                    Ok(Some(Reply::Welcome(_))) => held.push((ep, conn)),
                    other => {
                        refused = Some(format!("{other:?}: {:?}", conn.close_reason()));
                        break;
                    }
                }
            }
            let refused = refused.ok_or("no connection over the limit was refused")?;
            assert!(refused.contains("too many connections"), "{refused}");
            // Closed, and told to the router, so the slots are free again.
            for (ep, conn) in held {
                conn.close(0u8.into(), b"done");
                ep.wait_idle().await;
            }
            Ok(())
        })
    }

    /// A connection with `key`, pinning `server_key`.
    async fn connect(
        host: &str,
        server_key: &str,
        key: &Identity,
    ) -> Result<(quinn::Endpoint, quinn::Connection), BoxError> {
        let pinned = bus_schema::config::value::parse_ed25519_public(server_key)?;
        let mut ep = quinn::Endpoint::client("0.0.0.0:0".parse()?)?;
        ep.set_default_client_config(client_config(key, Some(pinned), ServerKeySeen::default())?);
        let conn = ep.connect(host.parse()?, "oxwrt")?.await?;
        Ok((ep, conn))
    }

    /// Sends a hello of `version`; the answer.
    async fn hello(conn: &quinn::Connection, version: u32) -> Result<Option<Reply>, BoxError> {
        let (mut send, mut recv) = conn.open_bi().await?;
        let hello = Hello {
            version,
            software: "test".into(),
        };
        frame::write(&mut send, &hello).await?;
        send.finish()?;
        Ok(frame::read::<Response>(&mut recv, MAX_RESPONSE)
            .await?
            .and_then(|r| r.reply))
    }
}
