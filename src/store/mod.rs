//! Persistence: one async trait per aggregate, and SQLite, the embedded default, behind them.
//!
//! - [`ClientStore`]: MCP clients changed through the API (saved, or removed so they do not come
//!   back from the config file).
//! - [`KeyStore`]: virtual keys changed through the API: hashes, never keys.
//! - [`AuditStore`]: the audit log: batched inserts, filtered pages, retention.
//! - [`TokenStore`]: upstream OAuth authorizations per client and per caller, sealed at rest
//!   ([`secret`]); [`memory::MemoryTokens`] keeps them for a process without a database.
//!
//! A new aggregate is one more trait here, one more field of [`Store`], one more file in
//! `sqlite/` and one more migration.
//!
//! [`Store`] bundles one implementation of each; [`Store::open`] gives the SQLite one
//! ([`sqlite`]). A second backend (Postgres, for several instances) is a second module that
//! implements the same traits. Every method is async and no implementation blocks a runtime
//! worker (SQLite runs on the blocking pool), so callers may await them freely, though never
//! while holding a lock that tool calls need.
//!
//! The store is the source of truth for runtime changes: every change is committed before the
//! API answers, so a restart (a `kill -9` included) finds it, and at start-up the changes are
//! applied over the config file ([`merge_clients`]). Configurations are stored as written:
//! `env.NAME` references stay references.

pub mod audit;
pub mod memory;
pub mod secret;
pub mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

pub use audit::{AuditOutcome, AuditRecord, LlmQuery, LlmRecord, LogQuery};

use crate::config::{ClientConfig, ProviderConfig, VirtualKeyConfig};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("the database {path} failed: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A stored configuration no longer parses.
    #[error("a stored configuration is unreadable: {0}")]
    Corrupt(String),
    /// The database's directory could not be created.
    #[error("cannot create {path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The database was written by a newer codemode, whose schema this one does not know.
    #[error(
        "the database {path} has schema version {found}; this codemode knows up to {supported}"
    )]
    Version {
        /// The database file.
        path: String,
        /// Its schema version.
        found: u32,
        /// The newest this build knows.
        supported: u32,
    },
    /// The task running the query failed (it panicked or the runtime is shutting down).
    #[error("a database task failed: {0}")]
    Task(String),
    /// A secret could not be sealed or opened, or the key not loaded.
    #[error(transparent)]
    Secret(#[from] secret::SecretError),
}

/// One upstream OAuth authorization: of a client's operator (`subject` empty) or of one caller
/// (per-user OAuth).
#[derive(Clone, PartialEq)]
pub struct OAuthToken {
    /// The client.
    pub client: String,
    /// Whose: empty for the client's own, else the caller.
    pub subject: String,
    /// The registration and the tokens (JSON). Sealed at rest; never logged.
    pub secret: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// When the access token expires (Unix seconds), when the server said.
    pub expires_at: Option<i64>,
    /// When it was last written (Unix milliseconds).
    pub updated_at_ms: i64,
}

impl std::fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthToken")
            .field("client", &self.client)
            .field("subject", &self.subject)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Upstream OAuth authorizations.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Records `token`, replacing the one of its client and subject.
    async fn save_token(&self, token: &OAuthToken) -> Result<(), StoreError>;
    /// The token of `client` for `subject`.
    async fn token(&self, client: &str, subject: &str) -> Result<Option<OAuthToken>, StoreError>;
    /// Every token, their `secret` left empty (for listing).
    async fn tokens(&self) -> Result<Vec<OAuthToken>, StoreError>;
    /// Deletes the token of `client` for `subject`; answers whether there was one.
    async fn forget_token(&self, client: &str, subject: &str) -> Result<bool, StoreError>;
}

/// A change recorded for one client: its configuration, or its removal.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientChange {
    /// Added or edited through the API.
    Saved(Box<ClientConfig>),
    /// Removed through the API (it must not come back from the config file).
    Removed(String),
}

/// A change recorded for one virtual key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    /// Added or edited through the API: its configuration and its value's hash.
    Saved(Box<VirtualKeyConfig>, String),
    /// Removed through the API.
    Removed(String),
}

/// MCP clients changed at run time.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Records a client added or edited through the API.
    async fn save_client(&self, config: &ClientConfig) -> Result<(), StoreError>;
    /// Records that a client was removed through the API.
    async fn forget_client(&self, name: &str) -> Result<(), StoreError>;
    /// Every recorded client change, oldest first.
    async fn client_changes(&self) -> Result<Vec<ClientChange>, StoreError>;
    /// Records a tool manager setting changed through the API (`max_agent_depth`).
    async fn save_setting(&self, name: &str, value: &serde_json::Value) -> Result<(), StoreError>;
    /// Every recorded tool manager setting.
    async fn settings(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError>;
}

/// A provider saved or removed through the API.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderChange {
    /// Added or edited: its name and configuration.
    Saved(String, Box<ProviderConfig>),
    /// Removed.
    Removed(String),
}

/// Where LLM providers changed through the API are kept.
#[async_trait]
pub trait ProviderStore: Send + Sync {
    /// Records provider `name` added or edited.
    async fn save_provider(&self, name: &str, config: &ProviderConfig) -> Result<(), StoreError>;
    /// Records that provider `name` was removed.
    async fn forget_provider(&self, name: &str) -> Result<(), StoreError>;
    /// Every recorded change, oldest first.
    async fn provider_changes(&self) -> Result<Vec<ProviderChange>, StoreError>;
}

/// Virtual keys changed at run time (their hashes, never their values).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Records a key added or edited through the API, with its value's hash.
    async fn save_key(&self, config: &VirtualKeyConfig, hash: &str) -> Result<(), StoreError>;
    /// Records that a key was removed through the API.
    async fn forget_key(&self, name: &str) -> Result<(), StoreError>;
    /// Every recorded key change, oldest first.
    async fn key_changes(&self) -> Result<Vec<KeyChange>, StoreError>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Inserts `records` in one transaction.
    async fn insert_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError>;
    /// One page of the records `query` selects, newest first, and how many it selects in all.
    async fn query_audit(&self, query: LogQuery) -> Result<(Vec<AuditRecord>, u64), StoreError>;
    /// Deletes records older than `oldest_ms` and all but the newest `max_records`; answers
    /// how many went.
    async fn prune_audit(&self, oldest_ms: i64, max_records: u64) -> Result<usize, StoreError>;
    /// Appends LLM request records in one transaction.
    async fn insert_llm(&self, records: Vec<LlmRecord>) -> Result<(), StoreError>;
    /// One page of the LLM records `query` selects, newest first, and how many it selects.
    async fn query_llm(&self, query: LlmQuery) -> Result<(Vec<LlmRecord>, u64), StoreError>;
}

/// One store of each aggregate.
#[derive(Clone)]
pub struct Store {
    /// Runtime client changes.
    pub clients: Arc<dyn ClientStore>,
    /// Runtime key changes.
    pub keys: Arc<dyn KeyStore>,
    /// Runtime LLM provider changes.
    pub providers: Arc<dyn ProviderStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Upstream OAuth authorizations, sealed at rest.
    pub tokens: Arc<dyn TokenStore>,
}

impl Store {
    /// The SQLite store at `path`, created (with its directory) when missing and migrated to
    /// the current schema.
    ///
    /// # Errors
    /// [`StoreError`] when the directory or the database cannot be created, or the database
    /// comes from a newer codemode.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store::over(Arc::new(sqlite::SqliteStore::open(path)?)))
    }

    /// [`open`](Self::open) with `sealer` instead of the configured key (`CODEMODE_SECRET_KEY`
    /// or the key file).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(path: &Path, sealer: secret::Sealer) -> Result<Store, StoreError> {
        Ok(Store::over(Arc::new(sqlite::SqliteStore::open_with(
            path, sealer,
        )?)))
    }

    fn over(sqlite: Arc<sqlite::SqliteStore>) -> Store {
        Store {
            clients: Arc::clone(&sqlite) as Arc<dyn ClientStore>,
            keys: Arc::clone(&sqlite) as Arc<dyn KeyStore>,
            providers: Arc::clone(&sqlite) as Arc<dyn ProviderStore>,
            tokens: Arc::clone(&sqlite) as Arc<dyn TokenStore>,
            audit: sqlite,
        }
    }

    /// The default database: `$XDG_DATA_HOME/codemode/codemode.db`, else
    /// `~/.local/share/codemode/codemode.db`, else `./codemode.db`.
    pub fn default_path() -> PathBuf {
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share"))
            });
        match base {
            Some(base) => base.join("codemode").join("codemode.db"),
            None => PathBuf::from("codemode.db"),
        }
    }
}

/// The clients to run: the file's, with the recorded API changes applied on top (they win).
pub fn merge_clients(file: &[ClientConfig], changes: Vec<ClientChange>) -> Vec<ClientConfig> {
    let mut clients: Vec<ClientConfig> = file.to_vec();
    for change in changes {
        match change {
            ClientChange::Saved(config) => match clients.iter_mut().find(|c| c.name == config.name)
            {
                Some(existing) => *existing = *config,
                None => clients.push(*config),
            },
            ClientChange::Removed(name) => clients.retain(|c| c.name != name),
        }
    }
    clients
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, url: &str) -> ClientConfig {
        ClientConfig::parse(&format!(
            r#"{{"name": "{name}", "connection_type": "http", "connection_string": "{url}"}}"#
        ))
        .expect("valid")
    }

    #[tokio::test]
    async fn saved_and_removed_clients_survive_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("nested/codemode.db");
        {
            let store = Store::open(&path).expect("open");
            let clients = &store.clients;
            clients
                .save_client(&client("a", "env.A_URL"))
                .await
                .expect("save");
            clients
                .save_client(&client("b", "http://b"))
                .await
                .expect("save");
            clients.forget_client("b").await.expect("forget");
        }
        let store = Store::open(&path).expect("reopen");
        let changes = store.clients.client_changes().await.expect("changes");
        assert_eq!(
            changes,
            [
                ClientChange::Saved(Box::new(client("a", "env.A_URL"))),
                ClientChange::Removed("b".into())
            ]
        );
    }

    use base64::Engine;

    const KEY_A: [u8; 32] = [0xa; 32];
    const KEY_B: [u8; 32] = [0xb; 32];

    fn sealer(current: [u8; 32], previous: Option<[u8; 32]>) -> secret::Sealer {
        let text = |key: [u8; 32]| base64::engine::general_purpose::STANDARD.encode(key);
        secret::Sealer::from_keys(&text(current), previous.map(text).as_deref()).expect("keys")
    }

    fn token(secret: &str) -> OAuthToken {
        OAuthToken {
            client: "linear".into(),
            subject: "alice".into(),
            secret: secret.into(),
            scopes: vec!["read".into()],
            expires_at: Some(1),
            updated_at_ms: 2,
        }
    }

    /// The database file and its write-ahead log, as bytes.
    fn on_disk(path: &Path) -> Vec<u8> {
        let mut bytes = std::fs::read(path).expect("db");
        let wal = path.with_file_name(format!(
            "{}-wal",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        ));
        bytes.extend(std::fs::read(wal).unwrap_or_default());
        bytes
    }

    fn holds(bytes: &[u8], text: &str) -> bool {
        bytes.windows(text.len()).any(|w| w == text.as_bytes())
    }

    #[tokio::test]
    async fn tokens_and_client_secrets_are_sealed_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("codemode.db");
        let store = Store::open_with(&path, sealer(KEY_A, None)).expect("open");
        store
            .tokens
            .save_token(&token("the-refresh-token-r1"))
            .await
            .expect("save");
        let mut client = client("linear", "https://mcp.linear.app/mcp");
        client.auth_type = crate::config::AuthType::Oauth;
        client.oauth_config = Some(crate::config::OAuthConfig {
            client_id: Some("id".into()),
            client_secret: Some("the-client-secret-s1".into()),
            ..Default::default()
        });
        store.clients.save_client(&client).await.expect("save");
        let bytes = on_disk(&path);
        assert!(!holds(&bytes, "the-refresh-token-r1"));
        assert!(!holds(&bytes, "the-client-secret-s1"));
        let read = store.tokens.token("linear", "alice").await.expect("read");
        assert_eq!(
            read.map(|t| t.secret).as_deref(),
            Some("the-refresh-token-r1")
        );
        let changes = store.clients.client_changes().await.expect("changes");
        assert_eq!(changes, [ClientChange::Saved(Box::new(client))]);
        assert!(
            store.tokens.tokens().await.expect("list")[0]
                .secret
                .is_empty()
        );
    }

    #[tokio::test]
    async fn rotating_the_key_seals_everything_again() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("codemode.db");
        {
            let store = Store::open_with(&path, sealer(KEY_A, None)).expect("open");
            store.tokens.save_token(&token("t1")).await.expect("save");
        }
        // Started with the new key and the old one as previous: resealed at open.
        drop(Store::open_with(&path, sealer(KEY_B, Some(KEY_A))).expect("rotate"));
        // The old key is no longer needed.
        let store = Store::open_with(&path, sealer(KEY_B, None)).expect("open");
        let read = store.tokens.token("linear", "alice").await.expect("read");
        assert_eq!(read.map(|t| t.secret).as_deref(), Some("t1"));
        // Without the key, the store does not open at all: a clear error naming the key to set,
        // never a wrong secret, and nothing is lost.
        drop(store);
        let error = Store::open_with(&path, sealer(KEY_A, None)).err();
        assert!(matches!(error, Some(StoreError::Secret(_))), "{error:?}");
        let store = Store::open_with(&path, sealer(KEY_B, None)).expect("open");
        assert_eq!(store.tokens.tokens().await.expect("list").len(), 1);
    }

    #[test]
    fn api_changes_win_over_the_file() {
        let file = [client("a", "http://file-a"), client("b", "http://file-b")];
        let changes = vec![
            ClientChange::Saved(Box::new(client("a", "http://api-a"))),
            ClientChange::Removed("b".into()),
            ClientChange::Saved(Box::new(client("c", "http://api-c"))),
        ];
        let merged = merge_clients(&file, changes);
        let urls: Vec<_> = merged
            .iter()
            .map(|c| c.connection_string.clone().unwrap_or_default())
            .collect();
        assert_eq!(urls, ["http://api-a", "http://api-c"]);
    }
}
