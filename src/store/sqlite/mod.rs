//! SQLite, the embedded store: one file, one connection, queries on the blocking pool.
//!
//! The database is small and written rarely (runtime changes, and the audit log in batches),
//! so one connection behind a mutex serves. [`SqliteStore`] runs every query on Tokio's
//! blocking pool, never on a runtime worker; the synchronous queries themselves are methods of
//! [`Database`], one file per aggregate (`clients.rs`, `keys.rs`, `audit.rs`).
//!
//! The schema is versioned with SQLite's `user_version`: [`MIGRATIONS`] are numbered files
//! applied in order, each in its own transaction, when the database is opened. A database made
//! by a newer codemode is refused rather than misread.

mod audit;
mod clients;
mod keys;
mod llm;
mod providers;
mod tokens;

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::Connection;
use serde_json::Value;

use super::secret::Sealer;
use super::{
    AuditRecord, AuditStore, ClientChange, ClientStore, KeyChange, KeyStore, LlmQuery, LlmRecord,
    LogQuery, OAuthToken, ProviderChange, ProviderStore, StoreError, TokenStore,
};
use crate::config::{ClientConfig, ProviderConfig, VirtualKeyConfig};

/// The schema's migrations: version, then the SQL that reaches it from the one before.
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_audit_repeats.sql")),
    (3, include_str!("migrations/0003_llm_providers.sql")),
    (4, include_str!("migrations/0004_llm_log.sql")),
    (5, include_str!("migrations/0005_audit_iteration.sql")),
    (6, include_str!("migrations/0006_mcp_settings.sql")),
    (7, include_str!("migrations/0007_oauth_tokens.sql")),
];

/// The open database, used synchronously.
pub struct Database {
    path: String,
    connection: Mutex<Connection>,
    /// Seals secrets before they are written (tokens, client secrets).
    sealer: Sealer,
}

impl Database {
    /// Opens (creating if needed) the database at `path` and migrates it.
    ///
    /// # Errors
    /// [`StoreError`] when the directory or the database cannot be created, a migration fails,
    /// or the database's schema is newer than this build's.
    pub fn open(path: &Path) -> Result<Database, StoreError> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            create_dir(dir)?;
        }
        let sealer = Sealer::load(dir.unwrap_or(Path::new(".")))?;
        Database::open_with(path, sealer)
    }

    /// [`open`](Self::open) with `sealer` instead of the configured key.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(path: &Path, sealer: Sealer) -> Result<Database, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dir(dir)?;
        }
        let database = Database {
            sealer,
            path: path.display().to_string(),
            connection: Mutex::new(Connection::open(path).map_err(|source| {
                StoreError::Sqlite {
                    path: path.display().to_string(),
                    source,
                }
            })?),
        };
        database
            .with(|c| c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"))?;
        database.migrate()?;
        let resealed = database.reseal_tokens()? + database.reseal_client_secrets()?;
        if resealed > 0 {
            tracing::info!(
                resealed,
                "secrets sealed with the previous key were sealed again"
            );
        }
        Ok(database)
    }

    /// `plain` sealed with the database's key for `context` (the row it is kept in).
    fn seal(&self, plain: &str, context: &str) -> Result<String, StoreError> {
        Ok(self.sealer.seal(plain, context)?)
    }

    /// The secret `sealed` holds, sealed for `context`.
    fn open_sealed(&self, sealed: &str, context: &str) -> Result<String, StoreError> {
        Ok(self.sealer.open(sealed, context)?)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let supported = MIGRATIONS.last().map_or(0, |(version, _)| *version);
        let found: u32 = self.with(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))?;
        if found > supported {
            return Err(StoreError::Version {
                path: self.path.clone(),
                found,
                supported,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
            self.with_mut(|c| {
                let transaction = c.transaction()?;
                transaction.execute_batch(sql)?;
                transaction.pragma_update(None, "user_version", version)?;
                transaction.commit()
            })?;
        }
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        self.with_mut(|connection| f(connection))
    }

    fn with_mut<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back); keep going.
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut connection).map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }
}

/// Creates `dir` (and its parents) when missing.
fn create_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
        path: dir.display().to_string(),
        source,
    })
}

/// A `WHERE` clause of equality filters and an `at_ms` range, with its parameters: what the
/// audit log's and the LLM log's queries filter by.
pub(super) struct Filter {
    /// `WHERE ...`, or empty.
    pub(super) clause: String,
    values: Vec<Box<dyn rusqlite::ToSql>>,
}

impl Filter {
    /// `column = value` for each given value, and `since <= at_ms < until`.
    pub(super) fn new(
        equal: &[(&str, &Option<String>)],
        since: Option<i64>,
        until: Option<i64>,
    ) -> Filter {
        let mut conditions = Vec::new();
        let mut values: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        for (column, value) in equal {
            if let Some(value) = value {
                values.push(Box::new(value.clone()));
                conditions.push(format!("{column} = ?{}", values.len()));
            }
        }
        for (bound, condition) in [(since, "at_ms >="), (until, "at_ms <")] {
            if let Some(bound) = bound {
                values.push(Box::new(bound));
                conditions.push(format!("{condition} ?{}", values.len()));
            }
        }
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        Filter { clause, values }
    }

    /// The parameters, in the clause's order.
    pub(super) fn params(&self) -> Vec<&dyn rusqlite::ToSql> {
        self.values.iter().map(|v| v.as_ref()).collect()
    }
}

/// A page's `LIMIT` (default 100, at most 1,000) and `OFFSET`.
pub(super) fn page(limit: Option<u32>, offset: Option<u32>) -> (u32, u32) {
    (limit.unwrap_or(100).min(1_000), offset.unwrap_or(0))
}

/// The SQLite store: the [`Database`], queried on the blocking pool.
pub struct SqliteStore {
    database: Arc<Database>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    ///
    /// # Errors
    /// As [`Database::open`].
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            database: Arc::new(Database::open(path)?),
        })
    }

    /// [`open`](Self::open) with `sealer` instead of the configured key.
    ///
    /// # Errors
    /// As [`Database::open`].
    pub fn open_with(path: &Path, sealer: Sealer) -> Result<SqliteStore, StoreError> {
        Ok(SqliteStore {
            database: Arc::new(Database::open_with(path, sealer)?),
        })
    }

    /// Runs `query` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let database = Arc::clone(&self.database);
        tokio::task::spawn_blocking(move || query(&database))
            .await
            .map_err(|error| StoreError::Task(error.to_string()))?
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn save_client(&self, config: &ClientConfig) -> Result<(), StoreError> {
        let config = config.clone();
        self.blocking(move |db| db.save_client(&config)).await
    }

    async fn forget_client(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        self.blocking(move |db| db.forget_client(&name)).await
    }

    async fn client_changes(&self) -> Result<Vec<ClientChange>, StoreError> {
        self.blocking(|db| db.client_changes()).await
    }

    async fn save_setting(&self, name: &str, value: &Value) -> Result<(), StoreError> {
        let (name, value) = (name.to_string(), value.to_string());
        self.blocking(move |db| db.save_setting(&name, &value))
            .await
    }

    async fn settings(&self) -> Result<Vec<(String, Value)>, StoreError> {
        self.blocking(|db| db.settings()).await
    }
}

#[async_trait]
impl ProviderStore for SqliteStore {
    async fn save_provider(&self, name: &str, config: &ProviderConfig) -> Result<(), StoreError> {
        let (name, config) = (name.to_string(), config.clone());
        self.blocking(move |db| db.save_provider(&name, &config))
            .await
    }

    async fn forget_provider(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        self.blocking(move |db| db.forget_provider(&name)).await
    }

    async fn provider_changes(&self) -> Result<Vec<ProviderChange>, StoreError> {
        self.blocking(|db| db.provider_changes()).await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn save_key(&self, config: &VirtualKeyConfig, hash: &str) -> Result<(), StoreError> {
        let (config, hash) = (config.clone(), hash.to_string());
        self.blocking(move |db| db.save_key(&config, &hash)).await
    }

    async fn forget_key(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        self.blocking(move |db| db.forget_key(&name)).await
    }

    async fn key_changes(&self) -> Result<Vec<KeyChange>, StoreError> {
        self.blocking(|db| db.key_changes()).await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        self.blocking(move |db| db.insert_audit(&records)).await
    }

    async fn query_audit(&self, query: LogQuery) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        self.blocking(move |db| db.query_audit(&query)).await
    }

    async fn prune_audit(&self, oldest_ms: i64, max_records: u64) -> Result<usize, StoreError> {
        self.blocking(move |db| db.prune_audit(oldest_ms, max_records))
            .await
    }

    async fn insert_llm(&self, records: Vec<LlmRecord>) -> Result<(), StoreError> {
        self.blocking(move |db| db.insert_llm(&records)).await
    }

    async fn query_llm(&self, query: LlmQuery) -> Result<(Vec<LlmRecord>, u64), StoreError> {
        self.blocking(move |db| db.query_llm(&query)).await
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn save_token(&self, token: &OAuthToken) -> Result<(), StoreError> {
        let token = token.clone();
        self.blocking(move |db| db.save_token(&token)).await
    }

    async fn token(&self, client: &str, subject: &str) -> Result<Option<OAuthToken>, StoreError> {
        let (client, subject) = (client.to_string(), subject.to_string());
        self.blocking(move |db| db.token(&client, &subject)).await
    }

    async fn tokens(&self) -> Result<Vec<OAuthToken>, StoreError> {
        self.blocking(|db| db.tokens()).await
    }

    async fn forget_token(&self, client: &str, subject: &str) -> Result<bool, StoreError> {
        let (client, subject) = (client.to_string(), subject.to_string());
        self.blocking(move |db| db.forget_token(&client, &subject))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_versions_is_migrated_in_place() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("old.db");
        {
            // What codemode created before migrations were numbered: the tables, version 0.
            let old = Connection::open(&path).expect("open");
            old.execute_batch(MIGRATIONS[0].1).expect("old schema");
            old.execute(
                "INSERT INTO mcp_clients (name, config) VALUES ('gone', NULL)",
                [],
            )
            .expect("row");
        }
        let database = Database::open(&path).expect("migrated");
        let version: u32 = database
            .with(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .expect("version");
        assert_eq!(version, MIGRATIONS.len() as u32);
        assert_eq!(
            database.client_changes().expect("rows kept"),
            [ClientChange::Removed("gone".into())]
        );
    }

    #[test]
    fn a_database_from_a_newer_codemode_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("new.db");
        Connection::open(&path)
            .and_then(|c| c.pragma_update(None, "user_version", 99))
            .expect("newer database");
        let error = Database::open(&path).err().expect("refused");
        assert!(
            matches!(error, StoreError::Version { found: 99, .. }),
            "{error}"
        );
    }
}
