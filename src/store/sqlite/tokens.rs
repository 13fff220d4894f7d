//! Upstream OAuth authorizations, their secrets sealed before they are written and opened when
//! read: the database file never holds a token or a client secret in clear.

use rusqlite::params;

use super::Database;
use crate::store::{OAuthToken, StoreError};

impl Database {
    /// Records `token` (replacing the one of its client and subject), its secret sealed.
    ///
    /// # Errors
    /// [`StoreError`] when sealing or the database fails.
    pub(super) fn save_token(&self, token: &OAuthToken) -> Result<(), StoreError> {
        let sealed = self.seal(&token.secret, &context(&token.client, &token.subject))?;
        let scopes = token.scopes.join(" ");
        self.with(|c| {
            c.execute(
                "INSERT INTO oauth_tokens (client, subject, secret, scopes, expires_at, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(client, subject) DO UPDATE SET secret = excluded.secret,
                     scopes = excluded.scopes, expires_at = excluded.expires_at,
                     updated_at_ms = excluded.updated_at_ms",
                params![
                    token.client,
                    token.subject,
                    sealed,
                    scopes,
                    token.expires_at,
                    token.updated_at_ms
                ],
            )
        })?;
        Ok(())
    }

    /// The token of `client` for `subject`, opened.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or the secret cannot be opened.
    pub(super) fn token(
        &self,
        client: &str,
        subject: &str,
    ) -> Result<Option<OAuthToken>, StoreError> {
        let rows = self.token_rows(Some((client, subject)))?;
        rows.into_iter()
            .next()
            .map(|(token, sealed)| self.opened(token, &sealed))
            .transpose()
    }

    /// Every token, secrets left out (empty).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn tokens(&self) -> Result<Vec<OAuthToken>, StoreError> {
        Ok(self
            .token_rows(None)?
            .into_iter()
            .map(|(token, _)| token)
            .collect())
    }

    /// Deletes the token of `client` for `subject`; answers whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn forget_token(&self, client: &str, subject: &str) -> Result<bool, StoreError> {
        let deleted = self.with(|c| {
            c.execute(
                "DELETE FROM oauth_tokens WHERE client = ?1 AND subject = ?2",
                params![client, subject],
            )
        })?;
        Ok(deleted > 0)
    }

    /// Seals again every token secret sealed with a previous key (key rotation).
    ///
    /// # Errors
    /// [`StoreError`] when a secret cannot be opened or the database fails.
    pub(super) fn reseal_tokens(&self) -> Result<usize, StoreError> {
        let mut count = 0;
        for (token, sealed) in self.token_rows(None)? {
            if self.sealer.needs_resealing(&sealed) {
                let token = self.opened(token, &sealed)?;
                self.save_token(&token)?;
                count += 1;
            }
        }
        Ok(count)
    }

    fn opened(&self, mut token: OAuthToken, sealed: &str) -> Result<OAuthToken, StoreError> {
        token.secret = self.open_sealed(sealed, &context(&token.client, &token.subject))?;
        Ok(token)
    }

    /// Rows with their sealed secret (the token's `secret` left empty).
    fn token_rows(
        &self,
        key: Option<(&str, &str)>,
    ) -> Result<Vec<(OAuthToken, String)>, StoreError> {
        let (client, subject) = key.unwrap_or_default();
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT client, subject, secret, scopes, expires_at, updated_at_ms
                 FROM oauth_tokens WHERE (?1 = 0 OR (client = ?2 AND subject = ?3))
                 ORDER BY client, subject",
            )?;
            let rows = statement.query_map(params![key.is_some(), client, subject], |row| {
                let scopes: String = row.get(3)?;
                Ok((
                    OAuthToken {
                        client: row.get(0)?,
                        subject: row.get(1)?,
                        secret: String::new(),
                        scopes: scopes.split_whitespace().map(str::to_string).collect(),
                        expires_at: row.get(4)?,
                        updated_at_ms: row.get(5)?,
                    },
                    row.get::<_, String>(2)?,
                ))
            })?;
            rows.collect()
        })
    }
}

/// What a token's secret is bound to: its row.
fn context(client: &str, subject: &str) -> String {
    format!("oauth_tokens/{client}/{subject}")
}
