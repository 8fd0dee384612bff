//! The config pair: `oxwrt.toml` (publishable) and `oxwrt.secrets.toml`
//! (secrets only, mode 0600).
//!
//! Loading goes text → [`wire`] structs (serde, unknown fields denied) →
//! validated [`model`] (every reference resolved, every value parsed), and
//! reports every finding at once as [`Diagnostic`]s with file, line, column
//! and TOML path.

mod diag;
pub mod model;
mod reference;
mod secret;
mod sections;
mod validate;
pub mod value;
pub mod wire;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path as FsPath, PathBuf};

pub use diag::{Diagnostic, Diagnostics, Path, Severity, SourceFile};
pub use reference::reference_markdown;
pub use secret::{REDACTED, Secret, SecretField};
pub use sections::{SECTIONS, Sections, section, sections};
pub use validate::BUILTIN_SERVICES;

use validate::{Ctx, Secrets, SecretsMode};

/// Router-side ends of isolated container services' veth pairs are
/// named this plus the service's name: oxinit makes them and puts them on
/// a LAN bridge; netd, which owns the bridge, leaves them there.
pub const CONTAINER_LINK_PREFIX: &str = "oxc-";

/// The schema version this firmware reads and writes.
pub const CURRENT_VERSION: u32 = 1;

/// Default location of the public file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/oxwrt/oxwrt.toml";

/// File name of the secrets file, beside the public file.
pub const SECRETS_FILE_NAME: &str = "oxwrt.secrets.toml";

/// Migrations from older schema versions: entry `i` turns a version `i + 1`
/// document into version `i + 2`. Version 1 is the first, so none exist yet.
const MIGRATIONS: &[fn(&mut toml::Table)] = &[];

/// A valid config and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: model::Config,
    /// Findings that do not stop the config from being used.
    pub warnings: Diagnostics,
    /// False when the public file was checked alone
    /// ([`SecretsFile::Unchecked`]): every secret in `config` is then empty
    /// and the config must not be applied.
    pub secrets_checked: bool,
}

/// The secrets file, as far as the caller has it.
#[derive(Debug, Clone, Copy)]
pub enum SecretsFile<'a> {
    /// Its text.
    Present(&'a SourceFile),
    /// It does not exist (name for messages): every reference is an error.
    Missing(&'a str),
    /// It is not at hand (name for messages): the public file is checked
    /// alone; references resolve to empty values, with one warning.
    Unchecked(&'a str),
}

/// What [`load_files`] does when the secrets file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingSecrets {
    /// References to secrets are errors: for anything that applies a config.
    Refuse,
    /// Check the public file alone (an operator checking a config whose
    /// secrets live elsewhere).
    CheckPublicOnly,
}

/// The secrets file that belongs beside `config`.
pub fn secrets_path_for(config: &FsPath) -> PathBuf {
    config.with_file_name(SECRETS_FILE_NAME)
}

/// Loads and validates the pair from disk. A secrets file readable by
/// group or others is refused; a missing one is handled per `missing`.
pub fn load_files(
    config: &FsPath,
    secrets: &FsPath,
    missing: MissingSecrets,
) -> Result<Loaded, Diagnostics> {
    let public = match std::fs::read_to_string(config) {
        Ok(text) => SourceFile::new(config.display().to_string(), text),
        Err(e) => {
            return Err(Diagnostics(vec![file_error(
                config,
                format!("cannot read: {e}"),
            )]));
        }
    };
    let secrets_src = match read_secrets(secrets) {
        Ok(Some(text)) => Some(SourceFile::new(secrets.display().to_string(), text)),
        Ok(None) => None,
        Err(d) => return Err(Diagnostics(vec![d])),
    };
    let secrets_name = secrets.display().to_string();
    let secrets = match (&secrets_src, missing) {
        (Some(src), _) => SecretsFile::Present(src),
        (None, MissingSecrets::Refuse) => SecretsFile::Missing(&secrets_name),
        (None, MissingSecrets::CheckPublicOnly) => SecretsFile::Unchecked(&secrets_name),
    };
    check_pair(&public, secrets)
}

fn file_error(path: &FsPath, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.display().to_string(),
        position: None,
        path: String::new(),
        message,
    }
}

/// Reads the secrets file, refusing one that others could read; `None`
/// when it does not exist.
pub fn read_secrets(path: &FsPath) -> Result<Option<String>, Diagnostic> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error(path, format!("cannot read: {e}"))),
    };
    if !meta.is_file() {
        return Err(file_error(path, "is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(file_error(
            path,
            format!(
                "mode {mode:04o} lets other users read secrets; it must be 0600 or 0400 (chmod 600 {})",
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| file_error(path, format!("cannot read: {e}")))
}

/// Validates a public file's text alone, as `oxwrt.toml`, without its
/// secrets file (every secret is then empty): for tools and tests that
/// need the model of a config, never for applying one.
pub fn check_public_text(text: &str) -> Result<Loaded, Diagnostics> {
    check_pair(
        &SourceFile::new("oxwrt.toml", text),
        SecretsFile::Unchecked(SECRETS_FILE_NAME),
    )
}

/// Validates a pair held in memory (what configd does with a pushed
/// candidate).
pub fn check_pair(public: &SourceFile, secrets: SecretsFile<'_>) -> Result<Loaded, Diagnostics> {
    let (secrets_src, mode) = match secrets {
        SecretsFile::Present(src) => (src.clone(), SecretsMode::Present),
        SecretsFile::Missing(name) => (SourceFile::new(name, ""), SecretsMode::Missing),
        SecretsFile::Unchecked(name) => (SourceFile::new(name, ""), SecretsMode::Unchecked),
    };
    let secrets_src = &secrets_src;
    let mut diags = Vec::new();
    if mode == SecretsMode::Unchecked {
        diags.push(secrets_src.diag_file(
            Severity::Warning,
            "does not exist: secret references and their values were not checked".into(),
        ));
    }
    let parsed_secrets = parse_secrets(secrets_src, &mut diags);
    let wire = parse_public(public, &mut diags);
    let mut model = None;
    if let Some(wire) = &wire {
        let mut ctx = Ctx::new(public, secrets_src, &parsed_secrets, mode);
        model = validate::check(&mut ctx, wire);
        diags.append(&mut ctx.diags);
    }
    // Errors first, then by file and position, so the output reads top-down.
    diags.sort_by(|a, b| (a.severity, &a.file, a.position).cmp(&(b.severity, &b.file, b.position)));
    let diags = Diagnostics(diags);
    match model {
        Some(config) if !diags.has_errors() => Ok(Loaded {
            config,
            warnings: diags,
            secrets_checked: mode != SecretsMode::Unchecked,
        }),
        _ => Err(diags),
    }
}

/// Parses the public file into wire structs after checking its version.
fn parse_public(src: &SourceFile, diags: &mut Vec<Diagnostic>) -> Option<wire::Config> {
    let mut table: toml::Table = match toml::from_str(src.text()) {
        Ok(t) => t,
        Err(e) => {
            diags.push(toml_error(src, &e));
            return None;
        }
    };
    let version = match table.get("version") {
        None => {
            diags.push(src.diag_at(
                Severity::Error,
                &Path::root(),
                format!("missing `version = {CURRENT_VERSION}` at the top of the file"),
            ));
            return None;
        }
        Some(toml::Value::Integer(v)) => *v,
        Some(_) => {
            diags.push(src.diag_at(
                Severity::Error,
                &Path::root().key("version"),
                "version must be an integer".into(),
            ));
            return None;
        }
    };
    let current = i64::from(CURRENT_VERSION);
    if version > current || version < 1 {
        let msg = if version > current {
            format!(
                "config version {version} is newer than this firmware understands (up to {CURRENT_VERSION})"
            )
        } else {
            format!("config version {version} does not exist (versions start at 1)")
        };
        diags.push(src.diag_at(Severity::Error, &Path::root().key("version"), msg));
        return None;
    }
    let result = if version == current {
        // The common case keeps spans: parse the text itself.
        toml::from_str::<wire::Config>(src.text())
    } else {
        for migrate in MIGRATIONS
            .iter()
            .skip(usize::try_from(version - 1).unwrap_or(0))
        {
            migrate(&mut table);
        }
        table.insert("version".into(), toml::Value::Integer(current));
        wire::Config::deserialize_from(table)
    };
    result.map_err(|e| diags.push(toml_error(src, &e))).ok()
}

impl wire::Config {
    fn deserialize_from(table: toml::Table) -> Result<Self, toml::de::Error> {
        use serde::Deserialize;
        Self::deserialize(toml::Value::Table(table))
            .map_err(|e| <toml::de::Error as serde::de::Error>::custom(e.to_string()))
    }
}

fn toml_error(src: &SourceFile, e: &toml::de::Error) -> Diagnostic {
    // serde names Rust integer types; say what the operator should write.
    let mut message = e
        .message()
        .trim_end_matches('\n')
        .trim_end_matches('.')
        .to_string();
    for (rust, plain) in [
        ("expected u8", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
    ] {
        message = message.replace(rust, plain);
    }
    match e.span() {
        Some(span) => src.diag_at_span(Severity::Error, span, message),
        None => src.diag_file(Severity::Error, message),
    }
}

/// Parses the secrets file: a flat table of `NAME = "value"`.
fn parse_secrets(src: &SourceFile, diags: &mut Vec<Diagnostic>) -> Secrets {
    let mut out = Secrets::default();
    let table: BTreeMap<String, toml::Value> = match toml::from_str(src.text()) {
        Ok(t) => t,
        Err(e) => {
            diags.push(toml_error(src, &e));
            out.unparsable = true;
            return out;
        }
    };
    for (name, value) in table {
        let path = Path::root().key(&name);
        if !secret::valid_secret_name(&name) {
            diags.push(src.diag_at_key(
                Severity::Error,
                &path,
                "invalid secret name (1-64 letters, digits, '-' or '_')".into(),
            ));
            continue;
        }
        match value {
            toml::Value::String(s) => {
                out.values.insert(name, Secret::new(s));
            }
            _ => {
                diags.push(src.diag_at(Severity::Error, &path, "a secret must be a string".into()));
                out.broken.insert(name);
            }
        }
    }
    out
}

/// The JSON Schema of `oxwrt.toml`, for editors (taplo, Even Better TOML).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(wire::Config)).unwrap_or_default()
}

/// The merged config as TOML with every secret `<redacted>`.
pub fn dump_redacted(config: &model::Config) -> Result<String, toml::ser::Error> {
    toml::to_string_pretty(config)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    /// A number below `n` (0 when `n` is 0) from the seeded generator, so
    /// every run mutates the same way.
    fn below(rng: &mut StdRng, n: usize) -> usize {
        rng.random_range(0..n.max(1))
    }

    /// Mutated cookbooks (bytes flipped, lines dropped, duplicated or
    /// swapped, values replaced) must produce a result, never a panic.
    #[test]
    fn never_panics_on_mutated_input() {
        let cookbook = include_str!("../../../config/oxwrt.toml");
        let secrets = include_str!("../../../config/oxwrt.secrets.toml.example");
        let secrets = SourceFile::new("oxwrt.secrets.toml", secrets);
        let odd = [
            "\"\"",
            "-1",
            "99999999999",
            "[]",
            "{}",
            "\"::\"",
            "\"0.0.0.0/0\"",
            "true",
            "\"a-b-c-d-e-f-g-h-i\"",
        ];
        let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
        for _ in 0..800 {
            let mut lines: Vec<String> = cookbook.lines().map(String::from).collect();
            for _ in 0..1 + below(&mut rng, 4) {
                let i = below(&mut rng, lines.len());
                match below(&mut rng, 5) {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let l = lines[i].clone();
                        lines.insert(below(&mut rng, lines.len()), l);
                    }
                    2 => {
                        let j = below(&mut rng, lines.len());
                        lines.swap(i, j);
                    }
                    3 => {
                        if let Some((k, _)) = lines[i].split_once(" = ") {
                            lines[i] = format!("{k} = {}", odd[below(&mut rng, odd.len())]);
                        }
                    }
                    _ => {
                        let mut bytes = lines[i].clone().into_bytes();
                        if !bytes.is_empty() {
                            let b = below(&mut rng, bytes.len());
                            bytes[b] = b"x0.:/-\"[]={}\n"[below(&mut rng, 13)];
                        }
                        lines[i] = String::from_utf8_lossy(&bytes).into_owned();
                    }
                }
            }
            let public = SourceFile::new("oxwrt.toml", lines.join("\n"));
            let _ = check_pair(&public, SecretsFile::Present(&secrets));
        }
    }
}
