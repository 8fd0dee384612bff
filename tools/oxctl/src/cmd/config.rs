//! `oxctl get PATH`, `dump-config` (remote), `diff FILE` and
//! `config-push FILE [--secrets FILE]`.

use std::path::Path;

use bus_schema::config::{MissingSecrets, dump_redacted, load_files, secrets_path_for};
use bus_schema::control::{Call, ConfigPair, Empty, Reply};

use crate::remote::{Failure, Session};

use super::{Out, unexpected};

/// The running config as TOML (defaults filled in, secrets redacted).
async fn running(s: &Session) -> Result<String, Failure> {
    match s.call(Call::DumpConfig(Empty {})).await? {
        Reply::Config(c) => Ok(c.toml),
        r => Err(unexpected(&r)),
    }
}

/// `dump-config` against the router.
pub async fn dump(s: &Session) -> Result<(), Failure> {
    print!("{}", running(s).await?);
    Ok(())
}

/// The value at a dotted TOML path (`control.port`, `networks.0.name`).
fn lookup<'a>(root: &'a toml::Value, path: &str) -> Option<&'a toml::Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(root, |v, key| match v {
            toml::Value::Table(t) => t.get(key),
            toml::Value::Array(a) => a.get(key.parse::<usize>().ok()?),
            _ => None,
        })
}

/// `get PATH`.
pub async fn get(s: &Session, path: &str, out: Out) -> Result<(), Failure> {
    let text = running(s).await?;
    let root: toml::Value = toml::from_str(&text)
        .map_err(|e| Failure::Remote(format!("the running config does not parse: {e}")))?;
    let v = lookup(&root, path)
        .ok_or_else(|| Failure::Usage(format!("no {path:?} in the running config")))?;
    let human = match v {
        toml::Value::String(s) => format!("{s}\n"),
        toml::Value::Table(_) => toml::to_string_pretty(v).unwrap_or_default(),
        other => format!("{other}\n"),
    };
    out.print(human, serde_json::to_value(v).unwrap_or_default())
}

/// `diff FILE`: what a push of `file` would change, as a unified diff of
/// both configs in the same normal form (defaults filled in, secrets
/// redacted), so only meaningful differences show.
pub async fn diff(s: &Session, file: &Path) -> Result<(), Failure> {
    let local = load_files(
        file,
        &secrets_path_for(file),
        MissingSecrets::CheckPublicOnly,
    )
    .map_err(|d| Failure::Invalid(d.to_string()))?;
    let local = dump_redacted(&local.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let remote = running(s).await?;
    let diff = similar::TextDiff::from_lines(&remote, &local);
    if diff.ratio() == 1.0 {
        println!("no differences");
    } else {
        print!(
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header("running", &file.display().to_string())
        );
    }
    Ok(())
}

/// Replaces the names configd gives pushed files with the operator's.
fn local_names(text: &str, public: &Path, secrets: Option<&Path>) -> String {
    let text = text.replace("pushed oxwrt.toml", &public.display().to_string());
    match secrets {
        Some(p) => text.replace("pushed oxwrt.secrets.toml", &p.display().to_string()),
        None => text,
    }
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

/// `config-push FILE [--secrets FILE]`: validated on the router and kept
/// as the candidate of the next `reload`. The secrets file defaults to
/// the one beside FILE, if there is one.
pub async fn push(s: &Session, file: &Path, secrets: Option<&Path>) -> Result<(), Failure> {
    let beside = secrets_path_for(file);
    let secrets = secrets.or_else(|| beside.exists().then_some(beside.as_path()));
    let pair = ConfigPair {
        public: read(file)?,
        secrets: secrets.map(read).transpose()?.unwrap_or_default(),
    };
    match s.call(Call::ConfigPush(pair)).await {
        Ok(Reply::Pushed(p)) => {
            eprint!("{}", local_names(&p.warnings, file, secrets));
            println!("pushed: the candidate is valid; `oxctl reload` applies it");
            Ok(())
        }
        Ok(r) => Err(unexpected(&r)),
        Err(Failure::Invalid(m)) => Err(Failure::Invalid(local_names(&m, file, secrets))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dotted_path_reaches_tables_and_array_items() {
        let v: toml::Value =
            toml::from_str("[control]\nport = 7443\n[[networks]]\nname = \"lan\"\n").expect("toml");
        assert_eq!(
            lookup(&v, "control.port").and_then(toml::Value::as_integer),
            Some(7443)
        );
        assert_eq!(
            lookup(&v, "networks.0.name").and_then(toml::Value::as_str),
            Some("lan")
        );
        assert!(lookup(&v, "networks.1").is_none());
        assert!(lookup(&v, "control.port.x").is_none());
    }
}
