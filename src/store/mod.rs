//! SQLite persistence of runtime changes and of the audit log.
//!
//! It holds the MCP clients changed through the API ([`Store::save_client`],
//! [`Store::forget_client`]), the virtual keys changed through the API ([`keys`]: hashes, never
//! keys), and the audit log ([`audit`]). Every change is committed before the API answers, so
//! a restart (a `kill -9` included) finds it. Client configurations are stored as written:
//! `env.NAME` references stay references, never resolved secrets.
//!
//! The database is small and written rarely, so one connection behind a mutex serves; queries
//! run on the caller's thread and take microseconds.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, params};

use crate::config::ClientConfig;

pub mod audit;
pub mod keys;

pub use audit::{AuditOutcome, AuditRecord, LogQuery};
pub use keys::KeyChange;

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
    #[error("a stored client configuration is unreadable: {0}")]
    Corrupt(String),
    /// The database's directory could not be created.
    #[error("cannot create {path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// A change recorded for one client: its configuration, or its removal.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientChange {
    /// Added or edited through the API.
    Saved(Box<ClientConfig>),
    /// Removed through the API (it must not come back from the config file).
    Removed(String),
}

/// The database.
pub struct Store {
    path: String,
    connection: Mutex<Connection>,
}

impl Store {
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

    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    /// [`StoreError`] when the directory or the database cannot be created.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let display = path.display().to_string();
        let sqlite = |source| StoreError::Sqlite {
            path: display.clone(),
            source,
        };
        let connection = Connection::open(path).map_err(sqlite)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS mcp_clients (
                     name TEXT PRIMARY KEY,
                     config TEXT,            -- NULL: removed through the API
                     updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                 );
                 CREATE TABLE IF NOT EXISTS virtual_keys (
                     name TEXT PRIMARY KEY,
                     key_hash TEXT,          -- SHA-256 of the key; NULL: removed through the API
                     config TEXT,            -- the value replaced by a placeholder
                     updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                 );
                 CREATE TABLE IF NOT EXISTS audit_log (
                     id INTEGER PRIMARY KEY,
                     at_ms INTEGER NOT NULL,
                     vk TEXT,
                     client TEXT NOT NULL,
                     tool TEXT NOT NULL,
                     arg_bytes INTEGER NOT NULL,
                     arg_hash TEXT NOT NULL,
                     outcome TEXT NOT NULL,
                     error_type TEXT,
                     latency_ms REAL NOT NULL,
                     execution_id TEXT NOT NULL,
                     parent_execution_id TEXT
                 );
                 CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at_ms);",
            )
            .map_err(sqlite)?;
        Ok(Store {
            path: display,
            connection: Mutex::new(connection),
        })
    }

    fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        self.with_mut(|connection| f(connection))
    }

    fn with_mut<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock cannot leave SQLite inconsistent; keep going.
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut connection).map_err(|e| self.sqlite(e))
    }

    /// Records a client added or edited through the API.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn save_client(&self, config: &ClientConfig) -> Result<(), StoreError> {
        let json = serde_json::to_string(config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO mcp_clients (name, config) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET config = excluded.config,
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![config.name, json],
            )
        })?;
        Ok(())
    }

    /// Records that a client was removed through the API.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn forget_client(&self, name: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO mcp_clients (name, config) VALUES (?1, NULL)
                 ON CONFLICT(name) DO UPDATE SET config = NULL,
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![name],
            )
        })?;
        Ok(())
    }

    /// Every recorded client change, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a stored configuration does not parse.
    pub fn client_changes(&self) -> Result<Vec<ClientChange>, StoreError> {
        let rows: Vec<(String, Option<String>)> = self.with(|c| {
            let mut statement =
                c.prepare("SELECT name, config FROM mcp_clients ORDER BY updated_at, name")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(name, config)| match config {
                None => Ok(ClientChange::Removed(name)),
                Some(json) => ClientConfig::parse(&json)
                    .map(|config| ClientChange::Saved(Box::new(config)))
                    .map_err(|e| StoreError::Corrupt(format!("{name}: {e}"))),
            })
            .collect()
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

    #[test]
    fn saved_and_removed_clients_survive_reopening() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("nested/codemode.db");
        {
            let store = Store::open(&path).expect("open");
            store.save_client(&client("a", "env.A_URL")).expect("save");
            store.save_client(&client("b", "http://b")).expect("save");
            store.forget_client("b").expect("forget");
        }
        let store = Store::open(&path).expect("reopen");
        let changes = store.client_changes().expect("changes");
        assert_eq!(
            changes,
            [
                ClientChange::Saved(Box::new(client("a", "env.A_URL"))),
                ClientChange::Removed("b".into())
            ]
        );
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
