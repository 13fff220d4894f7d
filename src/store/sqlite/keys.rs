//! Virtual keys changed through the API: their configuration (value redacted) and the hash of
//! their value, never the value.

use rusqlite::params;

use super::Database;
use crate::config::VirtualKeyConfig;
use crate::store::{KeyChange, StoreError};

impl Database {
    /// Records a key added or edited through the API.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn save_key(&self, config: &VirtualKeyConfig, hash: &str) -> Result<(), StoreError> {
        let json = serde_json::to_string(config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO virtual_keys (name, key_hash, config) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET key_hash = excluded.key_hash,
                     config = excluded.config,
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![config.name, hash, json],
            )
        })?;
        Ok(())
    }

    /// Records that a key was removed through the API.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn forget_key(&self, name: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO virtual_keys (name, key_hash, config) VALUES (?1, NULL, NULL)
                 ON CONFLICT(name) DO UPDATE SET key_hash = NULL, config = NULL,
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![name],
            )
        })?;
        Ok(())
    }

    /// Every recorded key change, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a stored key does not parse.
    pub(super) fn key_changes(&self) -> Result<Vec<KeyChange>, StoreError> {
        type Row = (String, Option<String>, Option<String>);
        let rows: Vec<Row> = self.with(|c| {
            let mut statement = c.prepare(
                "SELECT name, key_hash, config FROM virtual_keys ORDER BY updated_at, name",
            )?;
            let rows =
                statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(name, hash, config)| match (hash, config) {
                (Some(hash), Some(json)) => serde_json::from_str(&json)
                    .map(|config| KeyChange::Saved(Box::new(config), hash))
                    .map_err(|e| StoreError::Corrupt(format!("virtual key {name}: {e}"))),
                _ => Ok(KeyChange::Removed(name)),
            })
            .collect()
    }
}
