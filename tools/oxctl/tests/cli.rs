//! oxctl's offline verbs, run as the operator runs them.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn oxctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn oxctl");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("stdin");
    }
    child.wait_with_output().expect("wait oxctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The cookbook pair in a temp dir, the secrets file at `mode`.
fn cookbook(mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("oxwrt.toml");
    std::fs::copy(repo().join("config/oxwrt.toml"), &config).expect("copy config");
    let secrets = dir.path().join("oxwrt.secrets.toml");
    std::fs::copy(repo().join("config/oxwrt.secrets.toml.example"), &secrets)
        .expect("copy secrets");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(mode)).expect("chmod");
    (dir, config)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn validate_accepts_the_cookbook() {
    let (_dir, config) = cookbook(0o600);
    let out = oxctl(&["validate", s(&config)], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid"));
}

#[test]
fn validate_accepts_the_cookbook_in_the_repo_without_its_secrets() {
    // The repository ships only the .example secrets (git cannot keep mode
    // 0600), so the public file is checked alone, with a warning.
    let config = repo().join("config/oxwrt.toml");
    let out = oxctl(&["validate", s(&config)], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("secret references and their values were not checked"));
    // A secrets file named explicitly must exist.
    let missing = repo().join("config/no-such.secrets.toml");
    let out = oxctl(&["validate", s(&config), "--secrets", s(&missing)], None);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is referenced but"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn validate_with_explicit_secrets_path() {
    let (dir, config) = cookbook(0o600);
    let other = dir.path().join("elsewhere.toml");
    std::fs::rename(dir.path().join("oxwrt.secrets.toml"), &other).expect("rename");
    let out = oxctl(&["validate", s(&config), "--secrets", s(&other)], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn validate_prints_every_error_with_position_and_exits_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("oxwrt.toml");
    std::fs::write(
        &config,
        "version = 1\n[[networks]]\nname = \"lan\"\nkind = \"lan\"\naddress = \"192.168.1.1/24\"\n\
         [[firewall.zones]]\nname = \"lan\"\nnetworks = [\"lan\"]\n\
         [[firewall.rules]]\nname = \"r\"\nsrc = \"lan\"\ndest = \"dmz\"\naction = \"accept\"\n\
         [[port_forwards]]\nname = \"p\"\nexternal_port = \"9000-8000\"\ninternal = \"192.168.1.10:80\"\nsrc_zone = \"lan\"\n",
    )
    .expect("write");
    let out = oxctl(&["validate", s(&config)], None);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    let name = config.display().to_string();
    assert!(
        err.contains(&format!(
            "{name}:12:8: firewall.rules[0].dest: unknown zone \"dmz\" (zones: lan)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:16:17: port_forwards[0].external_port: port range \"9000-8000\" is reversed"
        )),
        "{err}"
    );
    assert!(err.contains("2 errors"), "{err}");
}

#[test]
fn secrets_file_with_mode_0644_is_refused() {
    let (_dir, config) = cookbook(0o644);
    let out = oxctl(&["validate", s(&config)], None);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stderr).contains("mode 0644 lets other users read secrets"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dump_config_shows_no_secret_value() {
    let (_dir, config) = cookbook(0o600);
    let out = oxctl(&["dump-config", s(&config)], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dump = text(&out.stdout);
    assert!(dump.contains("passphrase = \"<redacted>\""), "{dump}");
    let secrets =
        std::fs::read_to_string(repo().join("config/oxwrt.secrets.toml.example")).expect("read");
    for line in secrets.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, v)) = line.split_once(" = ") {
            assert!(
                !dump.contains(v.trim_matches('"')),
                "dump-config leaks {line}"
            );
        }
    }
    // The dump is itself TOML.
    assert!(dump.parse::<toml::Table>().is_ok());
}

#[test]
fn schema_is_json_schema_of_the_config() {
    let out = oxctl(&["schema"], None);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v.pointer("/properties/networks").is_some());
    assert!(v.get("$schema").is_some());
}

const ADMIN: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

#[test]
fn wizard_non_interactive_writes_a_valid_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("etc");
    let args = [
        "wizard",
        "--out",
        s(&out_dir),
        "--non-interactive",
        "--hostname",
        "gw",
        "--lan-address",
        "10.0.0.1/24",
        "--wan-mode",
        "dhcp",
        "--ssid",
        "Home",
        "--wifi-passphrase",
        "long enough pass",
        "--admin-key",
        ADMIN,
    ];
    let out = oxctl(&args, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let secrets = out_dir.join("oxwrt.secrets.toml");
    let mode = std::fs::metadata(&secrets)
        .expect("secrets")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let public = std::fs::read_to_string(out_dir.join("oxwrt.toml")).expect("config");
    assert!(
        !public.contains("long enough pass"),
        "secret in public file"
    );
    let out = oxctl(&["validate", s(&out_dir.join("oxwrt.toml"))], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Defaults: a DHCP pool derived from the LAN address.
    let dump = text(&oxctl(&["dump-config", s(&out_dir.join("oxwrt.toml"))], None).stdout);
    assert!(dump.contains("start = \"10.0.0.100\""), "{dump}");
    // A second run does not overwrite without --force.
    let again = oxctl(&args, None);
    assert_ne!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn wizard_asks_for_what_flags_do_not_give() {
    let dir = tempfile::tempdir().expect("tempdir");
    // hostname, LAN address, ports, WAN device, WAN mode, SSID (none), admin key (none).
    let answers = "edge\n\neth1,eth2\n\nstatic\n198.51.100.2/24\n198.51.100.1\n\n\n";
    let out = oxctl(&["wizard", "--out", s(dir.path())], Some(answers));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let public = std::fs::read_to_string(dir.path().join("oxwrt.toml")).expect("config");
    assert!(public.contains("hostname = \"edge\""));
    assert!(public.contains("gateway = \"198.51.100.1\""));
    assert!(public.contains("ports = [\"eth1\", \"eth2\"]"));
}

#[test]
fn wizard_writes_nothing_when_answers_are_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = oxctl(
        &[
            "wizard",
            "--out",
            s(dir.path()),
            "--non-interactive",
            "--ssid",
            "Home",
            "--wifi-passphrase",
            "short",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("WPA passphrase must be 8-63 printable ASCII characters"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("oxwrt.toml").exists());
    assert!(!dir.path().join("oxwrt.secrets.toml").exists());
}
