//! An ed25519 key pair in a file: 64 hex digits of the private seed,
//! mode 0600. ctld keeps the router's in `$STATE/ctld/server.key`;
//! `oxctl keygen` writes an operator's, with its public key in hex beside
//! it (`PATH.pub`).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use bus_schema::config::value::decode_hex;
use bus_schema::control::{fingerprint, key_hex};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};

/// Errors of loading or writing a key file.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("{0}: not an oxwrt key file (expected 64 hex digits of an ed25519 private key)")]
    Malformed(PathBuf),
    /// The file is readable by others.
    #[error("{path}: mode {mode:o} lets others read the private key; chmod 600 it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The key could not be encoded for TLS (never expected).
    #[error("encode the key: {0}")]
    Encode(String),
}

/// An ed25519 key pair.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private half.
        write!(f, "Identity({})", self.fingerprint())
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError {
    let path = path.to_path_buf();
    move |source| IdentityError::Io {
        action,
        path,
        source,
    }
}

impl Identity {
    /// A new random key.
    pub fn generate() -> Self {
        Self {
            key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
        }
    }

    /// The key in `path`, which must not be readable by group or others.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let meta = std::fs::metadata(path).map_err(io("read", path))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io("read", path))?;
        Self::from_private_hex(&text).ok_or_else(|| IdentityError::Malformed(path.to_path_buf()))
    }

    /// The key in `path`, made (with its directory) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        if path.exists() {
            return Self::load(path);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let id = Self::generate();
        id.write(path)?;
        Ok(id)
    }

    /// Writes the private key to `path` (mode 0600, which must not exist
    /// yet), synced before it is used.
    pub fn write(&self, path: &Path) -> Result<(), IdentityError> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io("create", path))?;
        writeln!(f, "{}", self.private_hex()).map_err(io("write", path))?;
        f.sync_all().map_err(io("sync", path))
    }

    /// The private seed in hex: what the key file holds (and a backup
    /// with `--server-key`).
    pub fn private_hex(&self) -> String {
        key_hex(&self.key.to_bytes())
    }

    /// The private key from the hex a key file holds.
    pub fn from_private_hex(hex: &str) -> Option<Self> {
        let seed: [u8; 32] = decode_hex(hex.trim())?.try_into().ok()?;
        Some(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key in hex, as `[[control.clients]]` and
    /// `--server-key` take it.
    pub fn public_hex(&self) -> String {
        key_hex(&self.public())
    }

    /// `SHA256:...` of the public key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public())
    }

    /// PKCS#8 DER of the private key, for rustls.
    pub(crate) fn pkcs8_der(&self) -> Result<Vec<u8>, IdentityError> {
        self.key
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| IdentityError::Encode(e.to_string()))
    }

    /// SubjectPublicKeyInfo DER of the public key: the "certificate" of
    /// a raw-public-key handshake.
    pub(crate) fn spki_der(&self) -> Result<Vec<u8>, IdentityError> {
        self.key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| IdentityError::Encode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ctld/server.key");
        let a = Identity::load_or_create(&path).expect("created");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Identity::load_or_create(&path).expect("read back");
        assert_eq!(a.public(), b.public());
        assert!(!format!("{a:?}").contains(&a.private_hex()));
        assert_eq!(
            Identity::from_private_hex(&a.private_hex()).map(|i| i.public()),
            Some(a.public())
        );
    }

    #[test]
    fn an_exposed_or_malformed_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        std::fs::write(&path, "not hex\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::Malformed(_))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            Identity::load(&path),
            Err(IdentityError::Exposed { mode: 0o644, .. })
        ));
    }
}
