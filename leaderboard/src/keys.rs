//! Keys: ed25519 key pairs in the formats OpenSSL reads and writes (PKCS#8 PEM private key, SPKI PEM public key),
//! key ids, and the leaderboard's list of accepted keys (`keys/keys.toml`), each revocable.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Deserialize;

use crate::{invalid, io_err, LeaderboardError};

/// A key's id: `ed25519:` and the SHA-256 of its 32 public-key bytes (what a DSSE signature's `keyid` holds).
pub fn key_id(key: &VerifyingKey) -> String {
    format!("ed25519:{}", crate::sha256_hex(key.as_bytes()))
}

/// Writes a new key pair: `path` (private, PKCS#8 PEM, mode 0600, never overwritten) and `path.pub` (public, SPKI
/// PEM). Returns the public key's id.
pub fn keygen(path: &Path) -> Result<String, LeaderboardError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| LeaderboardError::Usage(format!("no randomness from the operating system: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| invalid(path, e.to_string()))?;
    let public = key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|e| invalid(path, e.to_string()))?;
    let pub_path = public_path(path);
    for p in [path, pub_path.as_path()] {
        if p.exists() {
            return Err(LeaderboardError::Usage(format!("{} exists: keygen never overwrites a key", p.display())));
        }
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_err(path))?;
    f.write_all(private.as_bytes()).map_err(io_err(path))?;
    std::fs::write(&pub_path, public).map_err(io_err(&pub_path))?;
    Ok(key_id(&key.verifying_key()))
}

/// `KEY.pub` beside `KEY`.
pub fn public_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Reads a private key (PKCS#8 PEM, as `edgebench keygen` or `openssl genpkey -algorithm ed25519` writes it).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, LeaderboardError> {
    let text = crate::read_small(path, crate::CONFIG_FILE_LIMIT, "private key")?;
    SigningKey::from_pkcs8_pem(&text)
        .map_err(|e| invalid(path, format!("not an ed25519 private key in PKCS#8 PEM: {e}")))
}

/// Reads a public key (SPKI PEM).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, LeaderboardError> {
    let text = crate::read_small(path, crate::CONFIG_FILE_LIMIT, "public key")?;
    VerifyingKey::from_public_key_pem(&text)
        .map_err(|e| invalid(path, format!("not an ed25519 public key in SPKI PEM: {e}")))
}

/// What a key may sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submissions.
    Submitter,
    /// Submissions and reproductions (tier 3).
    Maintainer,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    key: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    file: String,
    role: Role,
    #[serde(default)]
    revoked: Option<String>,
}

/// An accepted (or revoked) key.
#[derive(Debug, Clone)]
pub struct Key {
    /// Who holds it (the signer's name in the site).
    pub name: String,
    /// The public key.
    pub key: VerifyingKey,
    /// [`key_id`] of it.
    pub id: String,
    /// What it may sign.
    pub role: Role,
    /// Why and when it was revoked: everything it signed is rejected.
    pub revoked: Option<String>,
}

/// The leaderboard's keys (`keys/keys.toml`: `[[key]]` with `name`, `file` (a public key in `keys/`), `role`
/// (`submitter` or `maintainer`) and optionally `revoked` (when and why)).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Every listed key.
    pub keys: Vec<Key>,
}

impl Keyring {
    /// Reads `DIR/keys/keys.toml` and the key files it names.
    pub fn read(dir: &Path) -> Result<Keyring, LeaderboardError> {
        let kdir = dir.join("keys");
        let path = kdir.join("keys.toml");
        let text = crate::read_small(&path, crate::CONFIG_FILE_LIMIT, "key list")?;
        let file: KeysFile = toml::from_str(&text).map_err(|e| invalid(&path, e.to_string()))?;
        let mut keys: Vec<Key> = Vec::new();
        for e in file.key {
            if !crate::scan::safe_name(&e.file) {
                return Err(invalid(&path, format!("key {:?}: file {:?} is not a plain file name", e.name, e.file)));
            }
            let key = read_public_key(&kdir.join(&e.file))?;
            let id = key_id(&key);
            if let Some(k) = keys.iter().find(|k| k.id == id || k.name == e.name) {
                return Err(invalid(&path, format!("key {:?} is listed twice (also as {:?})", e.name, k.name)));
            }
            keys.push(Key { name: e.name, key, id, role: e.role, revoked: e.revoked });
        }
        Ok(Keyring { keys })
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_round_trip_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        let id = keygen(&p).unwrap();
        let sk = read_signing_key(&p).unwrap();
        let pk = read_public_key(&public_path(&p)).unwrap();
        assert_eq!(sk.verifying_key(), pk);
        assert_eq!(key_id(&pk), id);
        assert!(id.starts_with("ed25519:") && id.len() == 8 + 64);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let e = keygen(&p).unwrap_err().to_string();
        assert!(e.contains("never overwrites"), "{e}");
        std::fs::write(d.path().join("bad"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let e = read_signing_key(&d.path().join("bad")).unwrap_err().to_string();
        assert!(e.contains("bad") && e.contains("PKCS#8"), "{e}");
    }
}
