//! Virtual keys: the callers' identities and their rules.
//!
//! Keys come from the config file (`governance.virtual_keys`, values usually `env.NAME`) and
//! from the API; API changes persist in the store and win over the file on restart. Only a
//! SHA-256 hash of each key is kept, in memory and in the store: a leaked database or a listing
//! never reveals a key.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::Permit;
use super::rules::{ToolRule, key_rules};
use crate::config::{VirtualKeyConfig, resolve_env};
use crate::store::{KeyChange, Store, StoreError};

/// A key's hash, hex-encoded.
pub type KeyHash = String;

/// The hash under which a key is known.
pub fn hash_key(key: &str) -> KeyHash {
    sha256_hex(key.as_bytes())
}

/// SHA-256 of `bytes`, hex-encoded: key hashes and the audit log's argument hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One virtual key as the ring holds it.
#[derive(Debug)]
struct VirtualKey {
    /// Its configuration, the value replaced by a placeholder.
    config: VirtualKeyConfig,
    /// Its hash; `None` when its `env.NAME` value is not set (it can match no caller).
    hash: Option<KeyHash>,
    rules: Arc<HashMap<String, ToolRule>>,
    version: u64,
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Keys exist and none was presented.
    #[error("a virtual key is required: send Authorization: Bearer <key> or x-bf-vk: <key>")]
    Missing,
    /// No key matches.
    #[error("the virtual key is not valid")]
    Unknown,
    /// The key is disabled.
    #[error("the virtual key {0} is disabled")]
    Disabled(String),
    /// Two different keys were presented.
    #[error("Authorization and x-bf-vk carry different keys; send one")]
    Conflict,
}

/// A change to the keys that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key has this name.
    #[error("there is no virtual key named {0}")]
    NotFound(String),
    /// The name is taken.
    #[error("a virtual key named {0} exists already")]
    Duplicate(String),
    /// Another key has the same value.
    #[error("another virtual key has the same value")]
    SameValue,
    /// The value names an unset variable.
    #[error("value: {0}")]
    Value(String),
    /// The store failed (the change was not made).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every virtual key, by name and by hash.
pub struct KeyRing {
    keys: RwLock<BTreeMap<String, Arc<VirtualKey>>>,
    by_hash: RwLock<HashMap<KeyHash, Arc<VirtualKey>>>,
    store: Option<Arc<Store>>,
    versions: AtomicU64,
}

const REDACTED: &str = "<redacted>";

impl KeyRing {
    /// The keys of the config file with the store's changes applied (they win); later changes
    /// are recorded in `store`. A key whose `env.NAME` value is unset is kept but matches no
    /// caller (logged), so the service still requires keys.
    ///
    /// # Errors
    /// [`StoreError`] when the recorded changes cannot be read.
    pub fn load(
        file: &[VirtualKeyConfig],
        store: Option<Arc<Store>>,
    ) -> Result<KeyRing, StoreError> {
        let ring = KeyRing {
            keys: RwLock::new(BTreeMap::new()),
            by_hash: RwLock::new(HashMap::new()),
            store,
            versions: AtomicU64::new(1),
        };
        for config in file {
            let hash = match resolve_env(&config.value) {
                Ok(value) => Some(hash_key(&value)),
                Err(error) => {
                    tracing::error!(key = %config.name, %error, "virtual key unusable");
                    None
                }
            };
            ring.insert(config.clone(), hash);
        }
        if let Some(store) = &ring.store {
            for change in store.key_changes()? {
                match change {
                    KeyChange::Saved(config, hash) => ring.insert(*config, Some(hash)),
                    KeyChange::Removed(name) => ring.delete(&name),
                }
            }
        }
        Ok(ring)
    }

    /// Whether no key exists (then callers need none).
    pub fn is_empty(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// The permit of a caller who presented `key` (or none).
    ///
    /// # Errors
    /// [`AuthError`] when keys exist and `key` is missing, unknown or disabled.
    pub fn authenticate(&self, key: Option<&str>) -> Result<Permit, AuthError> {
        if self.is_empty() {
            return Ok(Permit::open());
        }
        let key = key.ok_or(AuthError::Missing)?;
        let by_hash = self.by_hash.read().unwrap_or_else(|p| p.into_inner());
        let found = by_hash.get(&hash_key(key)).ok_or(AuthError::Unknown)?;
        if !found.config.is_active {
            return Err(AuthError::Disabled(found.config.name.clone()));
        }
        Ok(Permit::for_key(
            &found.config.name,
            Arc::clone(&found.rules),
            found.version,
        ))
    }

    /// Every key's configuration, values redacted.
    pub fn list(&self) -> Vec<VirtualKeyConfig> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.values().map(|k| k.config.clone()).collect()
    }

    /// Adds a key (its value, or the variable it names, is hashed now).
    ///
    /// # Errors
    /// [`KeyError`] for a taken name or value, an unset variable, or a store failure.
    pub fn add(&self, config: VirtualKeyConfig) -> Result<(), KeyError> {
        if self.exists(&config.name) {
            return Err(KeyError::Duplicate(config.name));
        }
        self.save(config)
    }

    /// Replaces a key.
    ///
    /// # Errors
    /// As [`add`](Self::add), with [`KeyError::NotFound`] for an unknown name.
    pub fn replace(&self, name: &str, config: VirtualKeyConfig) -> Result<(), KeyError> {
        if !self.exists(name) {
            return Err(KeyError::NotFound(name.to_string()));
        }
        if config.name != name {
            self.remove(name)?;
        }
        self.save(config)
    }

    /// Removes a key.
    ///
    /// # Errors
    /// [`KeyError::NotFound`], or a store failure.
    pub fn remove(&self, name: &str) -> Result<(), KeyError> {
        if !self.exists(name) {
            return Err(KeyError::NotFound(name.to_string()));
        }
        if let Some(store) = &self.store {
            store.forget_key(name)?;
        }
        self.delete(name);
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.contains_key(name)
    }

    fn save(&self, config: VirtualKeyConfig) -> Result<(), KeyError> {
        let value = resolve_env(&config.value).map_err(|e| KeyError::Value(e.to_string()))?;
        let hash = hash_key(&value);
        let taken = self
            .by_hash
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .is_some_and(|k| k.config.name != config.name);
        if taken {
            return Err(KeyError::SameValue);
        }
        let config = redact(config);
        if let Some(store) = &self.store {
            store.save_key(&config, &hash)?;
        }
        self.insert(config, Some(hash));
        Ok(())
    }

    fn insert(&self, config: VirtualKeyConfig, hash: Option<KeyHash>) {
        self.delete(&config.name);
        let key = Arc::new(VirtualKey {
            rules: Arc::new(key_rules(&config.mcp_configs)),
            config: redact(config),
            hash: hash.clone(),
            version: self.versions.fetch_add(1, Ordering::Relaxed),
        });
        if let Some(hash) = hash {
            let mut by_hash = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
            by_hash.insert(hash, Arc::clone(&key));
        }
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.insert(key.config.name.clone(), key);
    }

    fn delete(&self, name: &str) {
        let removed = self
            .keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(hash) = removed.and_then(|k| k.hash.clone()) {
            let mut by_hash = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
            by_hash.remove(&hash);
        }
    }
}

fn redact(mut config: VirtualKeyConfig) -> VirtualKeyConfig {
    config.value = REDACTED.into();
    config
}
