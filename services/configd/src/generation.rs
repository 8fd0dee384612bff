//! A generation: a validated pair, its number, hash and sections.

use bus_schema::config::{
    Diagnostics, SECRETS_FILE_NAME, SecretsFile, Sections, SourceFile, check_pair, model, sections,
};
use sha2::{Digest, Sha256};

use crate::store::{CONFIG_FILE_NAME, Pair};

/// A validated config pair.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Its number.
    pub number: u64,
    /// The pair as text.
    pub pair: Pair,
    /// The validated config.
    pub config: model::Config,
    /// Keyed hash of the pair.
    pub hash: String,
    /// Validation warnings, one per line.
    pub warnings: String,
    /// The sections as JSON, secrets redacted.
    pub redacted: Sections,
    /// The sections as JSON, secrets resolved (only for entitled daemons).
    pub exposed: Sections,
}

impl Generation {
    /// Validates `pair`. The error lists every diagnostic, one per line,
    /// as `file:line:col: path: message`; `names` are the file names the
    /// diagnostics use.
    pub fn validate(
        number: u64,
        pair: Pair,
        names: (&str, &str),
        hash_key: &[u8],
    ) -> Result<Self, String> {
        let public = SourceFile::new(names.0, pair.public.as_str());
        let secrets = SourceFile::new(names.1, pair.secrets.as_str());
        let loaded = check_pair(&public, SecretsFile::Present(&secrets))
            .map_err(|d: Diagnostics| d.to_string())?;
        Ok(Self {
            number,
            hash: hash(hash_key, &pair),
            warnings: loaded.warnings.to_string(),
            redacted: sections(&loaded.config, false),
            exposed: sections(&loaded.config, true),
            config: loaded.config,
            pair,
        })
    }

    /// Validates a pair that configd wrote itself (a snapshot).
    pub fn from_snapshot(number: u64, pair: Pair, hash_key: &[u8]) -> Result<Self, String> {
        Self::validate(
            number,
            pair,
            (CONFIG_FILE_NAME, SECRETS_FILE_NAME),
            hash_key,
        )
    }
}

/// SHA-256 over the key and both files, hex. Keyed, so that a published
/// hash cannot be used to guess a secret offline.
fn hash(key: &[u8], pair: &Pair) -> String {
    let mut h = Sha256::new();
    h.update(key);
    for part in [&pair.public, &pair.secrets] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
