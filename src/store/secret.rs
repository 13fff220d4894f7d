//! Sealing secrets at rest: upstream OAuth tokens, refresh tokens and client secrets are
//! encrypted with AES-256-GCM before they reach the database, and opened when read.
//!
//! The key comes from `CODEMODE_SECRET_KEY` (32 bytes, base64), else from the key file next to
//! the database (`secret.key`, created with mode 0600 on first start). A sealed value is
//! `v1.<key id>.<base64 of nonce ‖ ciphertext ‖ tag>`; the key id (the first bytes of the key's
//! SHA-256) says which key sealed it, so rotation works: start with the new key in
//! `CODEMODE_SECRET_KEY` and the old one in `CODEMODE_PREVIOUS_SECRET_KEY`, and every value
//! sealed with the old key is opened with it and sealed again with the new one
//! ([`Sealer::needs_resealing`]); after that start the old key can go.
//!
//! The crypto is aws-lc-rs, the library rustls already links: nothing new is compiled, and its
//! AEAD is the field's standard.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// The variable holding the key, base64 of 32 bytes.
pub const KEY_VARIABLE: &str = "CODEMODE_SECRET_KEY";
/// The variable holding the previous key while rotating.
pub const PREVIOUS_KEY_VARIABLE: &str = "CODEMODE_PREVIOUS_SECRET_KEY";
/// The key file's name, next to the database.
pub const KEY_FILE: &str = "secret.key";

const KEY_LEN: usize = 32;
const PREFIX: &str = "v1.";

/// Why a secret could not be sealed or opened, or the key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key in the environment or the file is not base64 of 32 bytes.
    #[error("{0} is not a base64-encoded 32-byte key")]
    BadKey(String),
    /// The key file could not be read or created.
    #[error("the key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A sealed value was sealed by a key codemode does not have, or was altered.
    #[error("a sealed secret cannot be opened: {0}")]
    Open(&'static str),
    /// The system's random source failed.
    #[error("no randomness available")]
    Random,
    /// Sealing failed.
    #[error("a secret could not be sealed")]
    Seal,
}

/// One AES-256-GCM key and its id.
struct Key {
    id: String,
    key: LessSafeKey,
}

impl Key {
    fn new(bytes: &[u8]) -> Option<Key> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        let digest = Sha256::digest(bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Some(Key {
            id,
            key: LessSafeKey::new(unbound),
        })
    }

    fn parse(text: &str, source: &str) -> Result<Key, SecretError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| SecretError::BadKey(source.to_string()))?;
        if bytes.len() != KEY_LEN {
            return Err(SecretError::BadKey(source.to_string()));
        }
        Key::new(&bytes).ok_or_else(|| SecretError::BadKey(source.to_string()))
    }
}

/// Seals and opens secrets with the current key (and, while rotating, opens with the previous
/// one).
pub struct Sealer {
    current: Key,
    previous: Option<Key>,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.current.id)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The sealer of a database in `dir`: the key from [`KEY_VARIABLE`], else from `dir`'s key
    /// file, created (mode 0600) when missing.
    ///
    /// # Errors
    /// [`SecretError`] when a key is malformed or the key file cannot be read or written.
    pub fn load(dir: &Path) -> Result<Sealer, SecretError> {
        let previous = match std::env::var(PREVIOUS_KEY_VARIABLE) {
            Ok(text) => Some(Key::parse(&text, PREVIOUS_KEY_VARIABLE)?),
            Err(_) => None,
        };
        let current = match std::env::var(KEY_VARIABLE) {
            Ok(text) => Key::parse(&text, KEY_VARIABLE)?,
            Err(_) => key_from_file(&dir.join(KEY_FILE))?,
        };
        Ok(Sealer {
            current,
            previous,
            random: SystemRandom::new(),
        })
    }

    /// A sealer with the base64 key `current` and, while rotating, `previous`.
    ///
    /// # Errors
    /// [`SecretError::BadKey`] when a key is not base64 of 32 bytes.
    pub fn from_keys(current: &str, previous: Option<&str>) -> Result<Sealer, SecretError> {
        Ok(Sealer {
            current: Key::parse(current, "the key")?,
            previous: previous
                .map(|key| Key::parse(key, "the previous key"))
                .transpose()?,
            random: SystemRandom::new(),
        })
    }

    /// A sealer with a fresh random key that nothing persists (a process without a database).
    ///
    /// # Errors
    /// [`SecretError::Random`] when the system has no randomness.
    pub fn ephemeral() -> Result<Sealer, SecretError> {
        let random = SystemRandom::new();
        let mut bytes = [0u8; KEY_LEN];
        random.fill(&mut bytes).map_err(|_| SecretError::Random)?;
        let current = Key::new(&bytes).ok_or(SecretError::Random)?;
        Ok(Sealer {
            current,
            previous: None,
            random,
        })
    }

    /// `plain` sealed with the current key, bound to `context` (where it is kept: a sealed
    /// value moved to another row does not open there).
    ///
    /// # Errors
    /// [`SecretError::Random`] when no nonce can be drawn.
    pub fn seal(&self, plain: &str, context: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SecretError::Random)?;
        let mut data = plain.as_bytes().to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| SecretError::Seal)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        Ok(format!(
            "{PREFIX}{}.{}",
            self.current.id,
            BASE64.encode(sealed)
        ))
    }

    /// The secret `sealed` holds, sealed for `context`.
    ///
    /// # Errors
    /// [`SecretError::Open`] when it is not a sealed value, was sealed by an unknown key or
    /// for another context, or was altered.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretError> {
        let (id, body) = sealed
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('.'))
            .ok_or(SecretError::Open("not a sealed value"))?;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.id == id)
            .ok_or(SecretError::Open(
                "sealed with a key codemode does not have (set CODEMODE_SECRET_KEY, or CODEMODE_PREVIOUS_SECRET_KEY while rotating)",
            ))?;
        let mut data = BASE64
            .decode(body)
            .map_err(|_| SecretError::Open("not base64"))?;
        if data.len() < NONCE_LEN {
            return Err(SecretError::Open("too short"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&data[..NONCE_LEN]);
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data[NONCE_LEN..],
            )
            .map_err(|_| SecretError::Open("altered, moved, or sealed with another key"))?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Open("not text"))
    }

    /// Whether `sealed` was sealed with a key other than the current one (so it should be
    /// sealed again).
    pub fn needs_resealing(&self, sealed: &str) -> bool {
        !sealed.starts_with(&format!("{PREFIX}{}.", self.current.id))
    }
}

/// The key in `path`, created with a fresh random key (mode 0600) when missing.
fn key_from_file(path: &PathBuf) -> Result<Key, SecretError> {
    let failed = |source| SecretError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            Key::parse(&text, &path.display().to_string())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; KEY_LEN];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| SecretError::Random)?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(failed)?;
            file.write_all(BASE64.encode(bytes).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(failed)?;
            Key::new(&bytes).ok_or(SecretError::Random)
        }
        Err(error) => Err(failed(error)),
    }
}

/// Logs a warning when the key file can be read by anyone but its owner.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "the secret key file is readable by others than its owner: chmod 600 it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_and_hides_its_text() {
        let sealer = Sealer::ephemeral().expect("key");
        let sealed = sealer.seal("refresh-token-123", "row").expect("seal");
        assert!(!sealed.contains("refresh-token-123"));
        assert_eq!(
            sealer.open(&sealed, "row").expect("open"),
            "refresh-token-123"
        );
        assert_ne!(
            sealer.seal("x", "row").expect("seal"),
            sealer.seal("x", "row").expect("seal")
        );
    }

    #[test]
    fn an_altered_or_foreign_value_is_refused() {
        let sealer = Sealer::ephemeral().expect("key");
        let other = Sealer::ephemeral().expect("key");
        let sealed = sealer.seal("secret", "row").expect("seal");
        assert!(matches!(
            other.open(&sealed, "row"),
            Err(SecretError::Open(_))
        ));
        assert!(matches!(
            sealer.open(&sealed, "another row"),
            Err(SecretError::Open(_))
        ));
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(matches!(
            sealer.open(&altered, "row"),
            Err(SecretError::Open(_))
        ));
        assert!(matches!(
            sealer.open("plain", "row"),
            Err(SecretError::Open(_))
        ));
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let first = key_from_file(&dir.path().join(KEY_FILE)).expect("create");
        let again = key_from_file(&dir.path().join(KEY_FILE)).expect("read");
        assert_eq!(first.id, again.id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_value_of_the_previous_key_opens_and_asks_for_resealing() {
        let old = Sealer::ephemeral().expect("key");
        let sealed = old.seal("token", "row").expect("seal");
        let new = Sealer {
            previous: Some(old.current),
            ..Sealer::ephemeral().expect("key")
        };
        assert_eq!(new.open(&sealed, "row").expect("open"), "token");
        assert!(new.needs_resealing(&sealed));
        assert!(!new.needs_resealing(&new.seal("token", "row").expect("seal")));
    }
}
