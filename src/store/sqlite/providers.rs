//! LLM providers changed through the API, stored as written: a key's value is an `env.NAME`
//! reference (the API refuses anything else), never a secret.

use rusqlite::params;

use super::Database;
use crate::config::ProviderConfig;
use crate::store::{ProviderChange, StoreError};

impl Database {
    /// Records provider `name` added or edited through the API.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn save_provider(
        &self,
        name: &str,
        config: &ProviderConfig,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO llm_providers (name, config) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET config = excluded.config,
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![name, json],
            )
        })?;
        Ok(())
    }

    /// Records that provider `name` was removed through the API.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn forget_provider(&self, name: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO llm_providers (name, config) VALUES (?1, NULL)
                 ON CONFLICT(name) DO UPDATE SET config = NULL,
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![name],
            )
        })?;
        Ok(())
    }

    /// Every recorded provider change, oldest first.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a stored configuration does not parse.
    pub(super) fn provider_changes(&self) -> Result<Vec<ProviderChange>, StoreError> {
        let rows: Vec<(String, Option<String>)> = self.with(|c| {
            let mut statement =
                c.prepare("SELECT name, config FROM llm_providers ORDER BY updated_at, name")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(name, config)| match config {
                None => Ok(ProviderChange::Removed(name)),
                Some(json) => serde_json::from_str(&json)
                    .map(|config| ProviderChange::Saved(name.clone(), Box::new(config)))
                    .map_err(|e| StoreError::Corrupt(format!("provider {name}: {e}"))),
            })
            .collect()
    }
}
