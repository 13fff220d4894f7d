//! MCP clients changed through the API, stored as written: `env.NAME` references stay
//! references, never resolved secrets; a literal OAuth client secret is sealed.

use rusqlite::params;

use super::Database;
use crate::config::ClientConfig;
use crate::store::{ClientChange, StoreError};

impl Database {
    /// Records a tool manager setting changed through the API (JSON text).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn save_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO mcp_settings (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
        })?;
        Ok(())
    }

    /// Every recorded tool manager setting.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a stored value is not JSON.
    pub(super) fn settings(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let rows: Vec<(String, String)> = self.with(|c| {
            let mut statement = c.prepare("SELECT name, value FROM mcp_settings ORDER BY name")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(name, value)| {
                serde_json::from_str(&value)
                    .map(|value| (name.clone(), value))
                    .map_err(|e| StoreError::Corrupt(format!("setting {name}: {e}")))
            })
            .collect()
    }

    /// Records a client added or edited through the API.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn save_client(&self, config: &ClientConfig) -> Result<(), StoreError> {
        let mut config = config.clone();
        let context = context(&config.name);
        if let Some(secret) = client_secret(&mut config) {
            *secret = self.seal(secret, &context)?;
        }
        let json =
            serde_json::to_string(&config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
    pub(super) fn forget_client(&self, name: &str) -> Result<(), StoreError> {
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
    pub(super) fn client_changes(&self) -> Result<Vec<ClientChange>, StoreError> {
        let rows: Vec<(String, Option<String>)> = self.with(|c| {
            let mut statement =
                c.prepare("SELECT name, config FROM mcp_clients ORDER BY updated_at, name")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(name, config)| match config {
                None => Ok(ClientChange::Removed(name)),
                Some(json) => {
                    let mut config = ClientConfig::parse(&json)
                        .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?;
                    let context = context(&config.name);
                    if let Some(secret) = client_secret(&mut config) {
                        *secret = self.open_sealed(secret, &context)?;
                    }
                    Ok(ClientChange::Saved(Box::new(config)))
                }
            })
            .collect()
    }

    /// Seals again every client secret sealed with a previous key (key rotation).
    ///
    /// # Errors
    /// [`StoreError`] when a secret cannot be opened or the database fails.
    pub(super) fn reseal_client_secrets(&self) -> Result<usize, StoreError> {
        let rows: Vec<String> = self.with(|c| {
            let mut statement =
                c.prepare("SELECT config FROM mcp_clients WHERE config IS NOT NULL")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect()
        })?;
        let mut count = 0;
        for json in rows {
            let Ok(mut config) = ClientConfig::parse(&json) else {
                continue;
            };
            let context = context(&config.name);
            if let Some(secret) = client_secret(&mut config)
                && self.sealer.needs_resealing(secret)
            {
                *secret = self.open_sealed(secret, &context)?;
                self.save_client(&config)?;
                count += 1;
            }
        }
        Ok(count)
    }
}

/// The literal OAuth client secret of `config`, if it has one (an `env.NAME` reference is a
/// name, kept as it is).
fn client_secret(config: &mut ClientConfig) -> Option<&mut String> {
    config
        .oauth_config
        .as_mut()
        .and_then(|oauth| oauth.client_secret.as_mut())
        .filter(|secret| !secret.starts_with("env."))
}

/// What a client's sealed secret is bound to: its row.
fn context(client: &str) -> String {
    format!("mcp_clients/{client}/client_secret")
}
