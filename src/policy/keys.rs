//! Virtual keys: the callers' identities and their rules.
//!
//! Keys come from the config file (`governance.virtual_keys`, values usually `env.NAME`) and
//! from the API; API changes persist in the store and win over the file on restart. Only a
//! SHA-256 hash of each key is kept, in memory and in the store: a leaked database or a listing
//! never reveals a key.
//!
//! The ring's state (`Keys`: by name and by hash, with a version counter) sits behind one
//! lock, so both maps always agree. Changes are serialised by a second, async lock held across
//! the store's write: a change is checked, committed to the store, then applied in memory, and
//! two concurrent changes cannot both pass the check. Authentication only takes the state's
//! read lock, never waits on the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sha2::{Digest, Sha256};

use super::Permit;
use super::rules::{ToolRule, key_rules};
use crate::config::{
    AuthMode, GovernanceConfig, REDACTED, VirtualKeyConfig, VirtualKeyProvider, resolve_env,
};
use crate::store::{KeyChange, KeyStore, StoreError};

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
    providers: Arc<Vec<VirtualKeyProvider>>,
    version: u64,
}

/// A key's rules as they stand at one check.
#[derive(Debug, Clone)]
pub struct KeyRules {
    rules: Arc<HashMap<String, ToolRule>>,
    providers: Arc<Vec<VirtualKeyProvider>>,
    /// Changes whenever the key is saved again.
    pub version: u64,
}

impl KeyRules {
    /// Whether these rules allow `client`'s `tool` (a client not listed is not allowed).
    pub fn allows(&self, client: &str, tool: &str) -> bool {
        self.rules.get(client).is_some_and(|rule| rule.allows(tool))
    }

    /// Whether these rules allow `provider`'s `model` in chat requests (no provider listed:
    /// every one).
    pub fn allows_model(&self, provider: &str, model: &str) -> bool {
        self.providers.is_empty() || self.providers.iter().any(|p| p.allows(provider, model))
    }
}

/// What a caller holds after presenting a key: the key's name and value, looked up in the ring
/// at every check, so a change to the key applies to the caller's next call.
#[derive(Clone)]
pub struct KeyGrant {
    name: String,
    hash: KeyHash,
    keys: Arc<RwLock<Keys>>,
}

impl std::fmt::Debug for KeyGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyGrant")
            .field("name", &self.name)
            .finish()
    }
}

impl KeyGrant {
    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's rules now; `None` when it was removed, disabled, or given another value.
    pub fn current(&self) -> Option<KeyRules> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let key = keys.by_name.get(&self.name)?;
        (key.config.is_active && key.hash.as_ref() == Some(&self.hash)).then(|| KeyRules {
            rules: Arc::clone(&key.rules),
            providers: Arc::clone(&key.providers),
            version: key.version,
        })
    }
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Keys are required and none was presented.
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

/// Whether callers must present a key, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// Every caller presents a valid key (configured, or latched by keys and admin tokens).
    Required,
    /// Callers without a key may call: the configuration says so.
    Open,
    /// Callers without a key may call: nothing was configured that needs keys yet. The first
    /// key added through the API makes it [`Auth::Required`]; nothing makes it open again.
    #[default]
    Unconfigured,
}

/// The keys by name and by hash, always in agreement, and the auth mode they are used under.
#[derive(Debug, Default)]
struct Keys {
    by_name: BTreeMap<String, Arc<VirtualKey>>,
    by_hash: HashMap<KeyHash, Arc<VirtualKey>>,
    auth: Auth,
    /// The version the next inserted key gets (permits cache views by key and version).
    next_version: u64,
}

impl Keys {
    fn insert(&mut self, config: VirtualKeyConfig, hash: Option<KeyHash>) {
        self.delete(&config.name);
        self.next_version += 1;
        let key = Arc::new(VirtualKey {
            rules: Arc::new(key_rules(&config.mcp_configs)),
            providers: Arc::new(config.provider_configs.clone()),
            config: redact(config),
            hash: hash.clone(),
            version: self.next_version,
        });
        if let Some(hash) = hash {
            self.by_hash.insert(hash, Arc::clone(&key));
        }
        self.by_name.insert(key.config.name.clone(), key);
    }

    fn delete(&mut self, name: &str) {
        if let Some(hash) = self.by_name.remove(name).and_then(|k| k.hash.clone()) {
            self.by_hash.remove(&hash);
        }
    }
}

/// Every virtual key.
pub struct KeyRing {
    /// Shared with every [`KeyGrant`], which reads it at each check.
    keys: Arc<RwLock<Keys>>,
    /// Serialises changes across the store's write (see the module docs).
    edits: tokio::sync::Mutex<()>,
    store: Option<Arc<dyn KeyStore>>,
}

impl KeyRing {
    /// The keys of the config file with the store's changes applied (they win); later changes
    /// are recorded in `store`. A key whose `env.NAME` value is unset is kept but matches no
    /// caller (logged), so the service still requires keys.
    ///
    /// # Errors
    /// [`StoreError`] when the recorded changes cannot be read.
    pub async fn load(
        governance: &GovernanceConfig,
        store: Option<Arc<dyn KeyStore>>,
    ) -> Result<KeyRing, StoreError> {
        let file = &governance.virtual_keys;
        let mut keys = Keys::default();
        for config in file {
            let hash = match resolve_env(&config.value) {
                Ok(value) => Some(hash_key(&value)),
                Err(error) => {
                    tracing::error!(key = %config.name, %error, "virtual key unusable");
                    None
                }
            };
            keys.insert(config.clone(), hash);
        }
        let mut recorded = false;
        if let Some(store) = &store {
            for change in store.key_changes().await? {
                recorded = true;
                match change {
                    KeyChange::Saved(config, hash) => keys.insert(*config, Some(hash)),
                    KeyChange::Removed(name) => keys.delete(&name),
                }
            }
        }
        // Keys once configured (a removed key leaves its record) keep callers required to
        // present one, however many are left.
        keys.auth = match governance.auth {
            Some(AuthMode::Required) => Auth::Required,
            Some(AuthMode::Open) => Auth::Open,
            None if !file.is_empty() || governance.admin_token.is_some() || recorded => {
                Auth::Required
            }
            None => Auth::Unconfigured,
        };
        Ok(KeyRing {
            keys: Arc::new(RwLock::new(keys)),
            edits: tokio::sync::Mutex::new(()),
            store,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Keys> {
        // Every write leaves `Keys` consistent before it can panic.
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether callers must present a key, and why.
    pub fn auth(&self) -> Auth {
        self.read().auth
    }

    /// The permit of a caller who presented `key` (or none).
    ///
    /// # Errors
    /// [`AuthError`] when keys are required and `key` is missing or unknown, or `key` is
    /// disabled.
    pub fn authenticate(&self, key: Option<&str>) -> Result<Permit, AuthError> {
        let keys = self.read();
        let required = keys.auth == Auth::Required;
        let found = key.and_then(|key| {
            let hash = hash_key(key);
            keys.by_hash.get(&hash).map(|found| (found, hash))
        });
        let (found, hash) = match (found, key) {
            (Some(found), _) => found,
            (None, _) if !required => return Ok(Permit::open()),
            (None, None) => return Err(AuthError::Missing),
            (None, Some(_)) => return Err(AuthError::Unknown),
        };
        self.grant(found, hash)
    }

    /// The permit of the key named `name`, for an admin who acts as it (the web UI's
    /// playground): the same rules its holder gets.
    ///
    /// # Errors
    /// [`AuthError::Unknown`] when no usable key has that name (its `env.NAME` may be unset),
    /// [`AuthError::Disabled`] when it is disabled.
    pub fn permit_of(&self, name: &str) -> Result<Permit, AuthError> {
        let keys = self.read();
        let (found, hash) = keys
            .by_name
            .get(name)
            .and_then(|key| Some((key, key.hash.clone()?)))
            .ok_or(AuthError::Unknown)?;
        self.grant(found, hash)
    }

    fn grant(&self, found: &VirtualKey, hash: KeyHash) -> Result<Permit, AuthError> {
        if !found.config.is_active {
            return Err(AuthError::Disabled(found.config.name.clone()));
        }
        Ok(Permit::for_key(KeyGrant {
            name: found.config.name.clone(),
            hash,
            keys: Arc::clone(&self.keys),
        }))
    }

    /// Every key's configuration, values redacted.
    pub fn list(&self) -> Vec<VirtualKeyConfig> {
        self.read()
            .by_name
            .values()
            .map(|k| k.config.clone())
            .collect()
    }

    /// Adds a key (its value, or the variable it names, is hashed now).
    ///
    /// # Errors
    /// [`KeyError`] for a taken name or value, an unset variable, or a store failure.
    pub async fn add(&self, config: VirtualKeyConfig) -> Result<(), KeyError> {
        let _edit = self.edits.lock().await;
        if self.read().by_name.contains_key(&config.name) {
            return Err(KeyError::Duplicate(config.name));
        }
        self.save(None, config).await
    }

    /// Replaces the key named `name` (the new configuration may rename it).
    ///
    /// # Errors
    /// As [`add`](Self::add), with [`KeyError::NotFound`] for an unknown name.
    pub async fn replace(&self, name: &str, config: VirtualKeyConfig) -> Result<(), KeyError> {
        let _edit = self.edits.lock().await;
        if !self.read().by_name.contains_key(name) {
            return Err(KeyError::NotFound(name.to_string()));
        }
        self.save(Some(name), config).await
    }

    /// Removes a key.
    ///
    /// # Errors
    /// [`KeyError::NotFound`], or a store failure.
    pub async fn remove(&self, name: &str) -> Result<(), KeyError> {
        let _edit = self.edits.lock().await;
        if !self.read().by_name.contains_key(name) {
            return Err(KeyError::NotFound(name.to_string()));
        }
        if let Some(store) = &self.store {
            store.forget_key(name).await?;
        }
        self.write().delete(name);
        Ok(())
    }

    /// The hash of a key's new `value`. `<redacted>` (what a listing shows) keeps the hash of
    /// the key it replaces, so a listing edited and sent back never makes that placeholder a
    /// working key.
    fn hash_of(&self, replacing: Option<&str>, value: &str) -> Result<KeyHash, KeyError> {
        if value != REDACTED {
            let value = resolve_env(value).map_err(|e| KeyError::Value(e.to_string()))?;
            return Ok(hash_key(&value));
        }
        replacing
            .and_then(|name| self.read().by_name.get(name).and_then(|k| k.hash.clone()))
            .ok_or_else(|| KeyError::Value("give the key's value (\"<redacted>\" only keeps a key's value when it is edited)".into()))
    }

    /// Hashes `config`'s value, checks that no other key has it, records the change (removing
    /// `replacing` when the key is renamed) and applies it. The caller holds `edits`.
    async fn save(
        &self,
        replacing: Option<&str>,
        config: VirtualKeyConfig,
    ) -> Result<(), KeyError> {
        let hash = self.hash_of(replacing, &config.value)?;
        let taken = self.read().by_hash.get(&hash).is_some_and(|k| {
            k.config.name != config.name && Some(k.config.name.as_str()) != replacing
        });
        if taken {
            return Err(KeyError::SameValue);
        }
        let renamed = replacing.filter(|old| *old != config.name);
        let config = redact(config);
        if let Some(store) = &self.store {
            if let Some(old) = renamed {
                store.forget_key(old).await?;
            }
            store.save_key(&config, &hash).await?;
        }
        let mut keys = self.write();
        if let Some(old) = renamed {
            keys.delete(old);
        }
        keys.insert(config, Some(hash));
        if keys.auth == Auth::Unconfigured {
            keys.auth = Auth::Required;
        }
        Ok(())
    }
}

fn redact(mut config: VirtualKeyConfig) -> VirtualKeyConfig {
    config.value = REDACTED.into();
    config
}
