//! The config model from outside: the cookbook, the invalid fixtures with
//! their exact messages, the secrets file's mode, redaction, the reference.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bus_schema::config::{
    MissingSecrets, Secret, SecretsFile, Severity, SourceFile, check_pair, dump_redacted,
    load_files, reference_markdown,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Secrets shared by fixtures that have no `.secrets.toml` of their own.
const FIXTURE_SECRETS: &str = "wifi = \"correct horse battery\"\npppoe = \"hunter22\"\n\
wg = \"OEWmQd3cJJHZNAzBHU4ONaotyJY+f99WxINhAX/Lr7k=\"\ntoken = \"t0ken\"\n";

fn warning_lines(loaded: &bus_schema::config::Loaded) -> Vec<String> {
    loaded
        .warnings
        .warnings()
        .map(ToString::to_string)
        .collect()
}

fn check_texts(
    public: &str,
    secrets: &str,
) -> Result<bus_schema::config::Loaded, bus_schema::config::Diagnostics> {
    let p = SourceFile::new("oxwrt.toml", public);
    let s = SourceFile::new("oxwrt.secrets.toml", secrets);
    check_pair(&p, SecretsFile::Present(&s))
}

#[test]
fn cookbook_is_valid_and_uses_every_secret() {
    let public = read(&repo().join("config/oxwrt.toml"));
    let secrets = read(&repo().join("config/oxwrt.secrets.toml.example"));
    match check_texts(&public, &secrets) {
        Ok(loaded) => assert!(
            loaded.warnings.0.is_empty(),
            "the cookbook should have no warnings:\n{}",
            loaded.warnings
        ),
        Err(d) => panic!("the cookbook does not validate:\n{d}"),
    }
}

#[test]
fn cookbook_uses_every_section_and_field() {
    // Every key the schema knows appears somewhere in the cookbook, except
    // the keys of PPPoE and DNS over TLS, which validation rejects as not
    // supported yet.
    const UNSUPPORTED: &[&str] = &["username", "password", "server_name"];
    let cookbook = read(&repo().join("config/oxwrt.toml"));
    let schema = bus_schema::config::json_schema();
    let mut missing = Vec::new();
    let mut objects = vec![&schema];
    if let Some(defs) = schema.get("$defs").and_then(|d| d.as_object()) {
        objects.extend(defs.values());
    }
    for obj in objects {
        for key in obj
            .get("properties")
            .and_then(|p| p.as_object())
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let used = cookbook.lines().any(|l| {
                let l = l.trim_start().trim_start_matches('[');
                l.starts_with(&format!("{key} "))
                    || l.starts_with(&format!("{key}="))
                    || l.contains(&format!("{{ {key} ="))
                    || l.contains(&format!(", {key} ="))
                    || l.starts_with(&format!("{key}]"))
                    || l.starts_with(&format!("{key}."))
                    || l.contains(&format!(".{key}]"))
            });
            if !used && !UNSUPPORTED.contains(&key.as_str()) {
                missing.push(key.clone());
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "config/oxwrt.toml never uses: {missing:?}"
    );
}

/// Each fixture starts with one `# expect: LINE:COL: PATH: MESSAGE` line
/// per error (prefix `oxwrt.secrets.toml:` for errors in the secrets file);
/// the errors must be exactly those, in order.
#[test]
fn invalid_fixtures_fail_with_their_exact_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".toml") && !name.ends_with(".secrets.toml")
        })
        .collect();
    fixtures.sort();
    assert!(
        fixtures.len() >= 30,
        "want at least 30 invalid fixtures, have {}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for path in &fixtures {
        let text = read(path);
        let expected: Vec<String> = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|e| {
                if e.starts_with("oxwrt.secrets.toml:") {
                    e.to_string()
                } else {
                    format!("oxwrt.toml:{e}")
                }
            })
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            path.display()
        );
        let secrets_path = path.with_extension("secrets.toml");
        let secrets = if secrets_path.exists() {
            read(&secrets_path)
        } else {
            FIXTURE_SECRETS.to_string()
        };
        let actual: Vec<String> = match check_texts(&text, &secrets) {
            Ok(_) => vec!["<valid>".into()],
            Err(d) => d.errors().map(ToString::to_string).collect(),
        };
        if actual != expected {
            failures.push(format!(
                "{}\n  expected: {expected:?}\n  actual:   {actual:?}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let public = "version = 1\n\n[system]\nhostname = \"-bad\"\n\n[[networks]]\nname = \"lan\"\nkind = \"lan\"\naddress = \"192.168.1.0/24\"\n\n[[firewall.zones]]\nname = \"lan\"\nnetworks = [\"lan\", \"nope\"]\n";
    let Err(d) = check_texts(public, "") else {
        panic!("invalid config accepted")
    };
    let errors: Vec<String> = d.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with("oxwrt.toml:4:12: system.hostname: invalid host name"),
        "{errors:#?}"
    );
    assert!(
        errors[1]
            .starts_with("oxwrt.toml:9:11: networks[0].address: 192.168.1.0/24 is the network"),
        "{errors:#?}"
    );
    assert_eq!(
        errors[2],
        "oxwrt.toml:13:20: firewall.zones[0].networks[1]: unknown network \"nope\" (networks: lan)"
    );
}

fn write_pair(dir: &Path, public: &str, secrets: &str, mode: u32) -> (PathBuf, PathBuf) {
    let (p, s) = (dir.join("oxwrt.toml"), dir.join("oxwrt.secrets.toml"));
    std::fs::write(&p, public).expect("write config");
    std::fs::write(&s, secrets).expect("write secrets");
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(mode)).expect("chmod");
    (p, s)
}

const WIFI_CONFIG: &str = "version = 1\n[[networks]]\nname = \"lan\"\nkind = \"lan\"\naddress = \"192.168.1.1/24\"\n\
[[wifi.radios]]\nname = \"r\"\nphy = \"phy0\"\nband = \"2g\"\nchannel = 1\ncountry = \"DE\"\n\
[[wifi.networks]]\nname = \"home\"\nradio = \"r\"\nssid = \"Home\"\nsecurity = \"wpa2\"\npassphrase = { secret = \"wifi\" }\nnetwork = \"lan\"\n";

#[test]
fn secrets_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (mode, ok) in [
        (0o644, false),
        (0o640, false),
        (0o604, false),
        (0o600, true),
        (0o400, true),
    ] {
        let (p, s) = write_pair(
            dir.path(),
            WIFI_CONFIG,
            "wifi = \"correct horse battery\"\n",
            mode,
        );
        match load_files(&p, &s, MissingSecrets::Refuse) {
            Ok(_) => assert!(ok, "mode {mode:o} accepted"),
            Err(d) => {
                assert!(!ok, "mode {mode:o} refused: {d}");
                let msg = d.to_string();
                assert!(
                    msg.contains(&format!("mode {mode:04o} lets other users read secrets")),
                    "{msg}"
                );
                assert!(msg.contains("chmod 600"), "{msg}");
            }
        }
    }
}

#[test]
fn missing_secrets_file_is_named_when_a_secret_is_referenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("oxwrt.toml");
    std::fs::write(&p, WIFI_CONFIG).expect("write");
    let Err(d) = load_files(
        &p,
        &dir.path().join("oxwrt.secrets.toml"),
        MissingSecrets::Refuse,
    ) else {
        panic!("accepted")
    };
    assert!(
        d.to_string().contains("secret \"wifi\" is referenced but"),
        "{d}"
    );
}

#[test]
fn no_secret_value_ever_prints() {
    let public = read(&repo().join("config/oxwrt.toml"));
    let secrets_text = read(&repo().join("config/oxwrt.secrets.toml.example"));
    let loaded = check_texts(&public, &secrets_text).expect("cookbook valid");
    let values: Vec<String> = secrets_text
        .lines()
        .filter_map(|l| {
            l.split_once(" = ")
                .map(|(_, v)| v.trim_matches('"').to_string())
        })
        .collect();
    assert!(values.len() >= 5);
    let dump = dump_redacted(&loaded.config).expect("dump");
    let debug = format!("{:?}", loaded.config);
    for v in &values {
        assert!(!dump.contains(v.as_str()), "dump shows a secret");
        assert!(!debug.contains(v.as_str()), "Debug shows a secret");
    }
    assert!(dump.contains("<redacted>"));
    let s = Secret::new("hunter22");
    assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
}

#[test]
fn secret_written_inline_says_where_it_belongs() {
    let public = WIFI_CONFIG.replace(
        "passphrase = { secret = \"wifi\" }",
        "passphrase = \"correct horse battery\"",
    );
    let Err(d) = check_texts(&public, "") else {
        panic!("accepted")
    };
    let msg = d
        .errors()
        .next()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert_eq!(
        msg,
        "oxwrt.toml:17:14: wifi.networks[0].passphrase: secret value written in oxwrt.toml; move it to oxwrt.secrets.toml as NAME = \"...\" and write passphrase = { secret = \"NAME\" } here"
    );
    assert!(
        !d.to_string().contains("correct horse"),
        "the message repeats the secret"
    );
}

#[test]
fn unused_secret_is_a_warning_in_the_secrets_file() {
    let loaded = check_texts(
        WIFI_CONFIG,
        "wifi = \"correct horse battery\"\nold = \"x\"\n",
    )
    .expect("valid");
    let w = warning_lines(&loaded);
    assert!(
        w.contains(
            &"oxwrt.secrets.toml:2:1: warning: old: secret is not used by any field".to_string()
        ),
        "{w:#?}"
    );
    assert!(
        loaded
            .warnings
            .0
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
}

#[test]
fn docs_config_md_matches_the_schema() {
    let path = repo().join("docs/config.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == reference_markdown(),
        "docs/config.md is stale; regenerate it with `cargo run -q -p oxctl -- schema --markdown > docs/config.md`"
    );
}

#[test]
fn json_schema_describes_every_section() {
    let schema = bus_schema::config::json_schema();
    let props = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .expect("properties");
    for &section in std::iter::once(&"version").chain(bus_schema::config::SECTIONS) {
        assert!(props.contains_key(section), "schema lacks {section}");
    }
    assert_eq!(
        schema.pointer("/additionalProperties"),
        Some(&serde_json::Value::Bool(false))
    );
}

#[test]
fn public_file_alone_is_checked_without_its_secrets() {
    let p = SourceFile::new("oxwrt.toml", WIFI_CONFIG);
    let loaded = check_pair(&p, SecretsFile::Unchecked("oxwrt.secrets.toml")).expect("valid alone");
    assert!(!loaded.secrets_checked);
    let w = warning_lines(&loaded);
    assert!(w.contains(&"oxwrt.secrets.toml: warning: does not exist: secret references and their values were not checked".to_string()), "{w:#?}");
    // Everything else is still checked.
    let bad = WIFI_CONFIG.replace("channel = 1", "channel = 15");
    assert!(
        check_pair(
            &SourceFile::new("oxwrt.toml", bad),
            SecretsFile::Unchecked("s")
        )
        .is_err()
    );
    // Applying code refuses the same situation.
    let Err(d) = check_pair(&p, SecretsFile::Missing("oxwrt.secrets.toml")) else {
        panic!("accepted")
    };
    assert!(
        d.to_string()
            .contains("secret \"wifi\" is referenced but oxwrt.secrets.toml does not exist"),
        "{d}"
    );
}

#[test]
fn masquerade_zone_without_wan_is_a_warning() {
    let public = "version = 1\n[[networks]]\nname = \"lan\"\nkind = \"lan\"\naddress = \"192.168.1.1/24\"\n\
[[firewall.zones]]\nname = \"lan\"\nnetworks = [\"lan\"]\nmasquerade = true\n";
    let loaded = check_texts(public, "").expect("a warning does not block");
    let w = warning_lines(&loaded);
    assert!(
        w.contains(&"oxwrt.toml:9:14: warning: firewall.zones[0].masquerade: zone \"lan\" masquerades but has no wan network".to_string()),
        "{w:#?}"
    );
}
