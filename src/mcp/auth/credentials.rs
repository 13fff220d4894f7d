//! The tokens of one (client, subject) as rmcp's OAuth client keeps them: rmcp's
//! `CredentialStore` over codemode's [`TokenStore`]. Beside the tokens are kept the registration
//! (client id and secret: a refresh needs the secret, and rmcp does not store it) and the
//! authorization server's metadata they came from: a refresh or a revocation goes to those
//! endpoints and no others, whatever the server's metadata says later.

use std::sync::Arc;

use async_trait::async_trait;
use rmcp::transport::auth::AuthorizationMetadata;
use rmcp::transport::{AuthError, CredentialRefreshGuard, CredentialStore, StoredCredentials};
use serde::{Deserialize, Serialize};

use crate::observe::audit::now_ms;
use crate::store::{OAuthToken, TokenStore};

/// The registration and tokens of one (client, subject), as sealed at rest.
#[derive(Serialize, Deserialize)]
pub(super) struct Secret {
    pub(super) client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) credentials: Option<StoredCredentials>,
    /// The authorization server the tokens came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) metadata: Option<AuthorizationMetadata>,
}

impl Secret {
    /// Its registration.
    pub(super) fn registration(&self) -> Registration {
        Registration {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
        }
    }
}

/// A client id and its secret, however they were obtained.
#[derive(Clone)]
pub(super) struct Registration {
    pub(super) client_id: String,
    pub(super) client_secret: Option<String>,
}

/// rmcp's credential store over codemode's [`TokenStore`], for one (client, subject).
pub(super) struct Credentials {
    pub(super) tokens: Arc<dyn TokenStore>,
    pub(super) client: String,
    pub(super) subject: String,
    /// The registration the tokens belong to (kept with them: a refresh needs the secret).
    pub(super) registration: Option<Registration>,
    /// The authorization server they come from.
    pub(super) metadata: Option<AuthorizationMetadata>,
    pub(super) refreshing: Arc<tokio::sync::Mutex<()>>,
}

fn store_failed(error: impl std::fmt::Display) -> AuthError {
    AuthError::CredentialStoreError(format!("the token store failed: {error}"))
}

#[async_trait]
impl CredentialStore for Credentials {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        let Some(token) = self
            .tokens
            .token(&self.client, &self.subject)
            .await
            .map_err(store_failed)?
        else {
            return Ok(None);
        };
        let secret: Secret = serde_json::from_str(&token.secret).map_err(store_failed)?;
        Ok(secret.credentials)
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let registration = self.registration.clone().unwrap_or(Registration {
            client_id: credentials.client_id.clone(),
            client_secret: None,
        });
        let expires_at = credentials
            .token_response
            .as_ref()
            .and_then(oauth2::TokenResponse::expires_in)
            .zip(credentials.token_received_at)
            .map(|(lifetime, received)| received.saturating_add(lifetime.as_secs()))
            .and_then(|at| i64::try_from(at).ok());
        let secret = Secret {
            client_id: registration.client_id,
            client_secret: registration.client_secret,
            credentials: Some(credentials.clone()),
            metadata: self.metadata.clone(),
        };
        let token = OAuthToken {
            client: self.client.clone(),
            subject: self.subject.clone(),
            secret: serde_json::to_string(&secret).map_err(store_failed)?,
            scopes: credentials.granted_scopes.clone(),
            expires_at,
            updated_at_ms: now_ms(),
        };
        self.tokens.save_token(&token).await.map_err(store_failed)
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.tokens
            .forget_token(&self.client, &self.subject)
            .await
            .map(|_| ())
            .map_err(store_failed)
    }

    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        let guard = Arc::clone(&self.refreshing).lock_owned().await;
        Ok(Some(CredentialRefreshGuard::new(guard)))
    }
}
