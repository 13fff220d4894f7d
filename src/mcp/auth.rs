//! Upstream OAuth 2.1: codemode as the OAuth client of the MCP servers it connects to.
//!
//! The protocol is rmcp's (`transport::auth`, built on the `oauth2` crate): discovery from a
//! 401's `WWW-Authenticate` (RFC 9728 protected-resource metadata, path-aware then root; RFC
//! 8414 or OpenID configuration; the 2025-03-26 default endpoints), PKCE S256 (an authorization
//! server that does not offer it is refused), RFC 8707 `resource`, scope selection (the
//! challenge's, else `scopes_supported`, else none), token endpoint authentication as the
//! server advertises, refresh when a token is about to expire or is refused. This module is
//! codemode's side of it:
//!
//! - **Who**: one authorization per (client, subject). The subject is empty for the client's
//!   own (the operator's) and names the caller for per-user OAuth ([`OPERATOR`]).
//! - **Registration**, in the spec's order: the configured `client_id`; codemode's Client ID
//!   Metadata Document when the server supports them and codemode has one (its URL must be
//!   HTTPS); else dynamic registration (RFC 7591), done here so the secret it returns is kept.
//! - **Flows**: [`OAuth::start`] prepares an authorization and answers the URL a person opens;
//!   the authorization server sends the browser to `/api/oauth/callback`, and
//!   [`OAuth::finish`] checks its `state` against the flows in progress and exchanges the code.
//!   A callback whose state is unknown stores nothing.
//! - **Tokens** live in the [`TokenStore`] (sealed at rest) through `Credentials`, rmcp's
//!   credential store; [`OAuth::http_client`] is the HTTP client of a connection, which puts the
//!   token on every request and refreshes it in place, so a refresh never drops a connection or
//!   a call in flight.
//! - **Step-up**: a `403 insufficient_scope` starts a new authorization for the scopes the
//!   server asked for, at most [`MAX_STEP_UPS`] times in a row before codemode stops asking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rmcp::transport::auth::{AuthorizationMetadata, OAuthClientConfig};
use rmcp::transport::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationRequest, AuthorizationSession,
    CredentialRefreshGuard, CredentialStore, StoredCredentials,
};
use serde::{Deserialize, Serialize};

use crate::config::mcp::check_oauth_url;
use crate::config::{ClientConfig, MissingVariable, OAuthConfig, resolve_env};
use crate::store::{OAuthToken, StoreError, TokenStore};

/// The subject of a client's own authorization (the operator's).
pub const OPERATOR: &str = "";

/// Authorizations asked for in a row because the server wanted more scope, before codemode
/// stops asking (the client then needs the operator).
pub const MAX_STEP_UPS: u32 = 2;

/// How long an authorization may wait for its callback.
const FLOW_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Where codemode's own pages are: `/api/oauth/callback` and the metadata document.
pub const CALLBACK_PATH: &str = "/api/oauth/callback";
/// Where codemode serves its Client ID Metadata Document.
pub const METADATA_DOCUMENT_PATH: &str = "/oauth/client-metadata.json";

/// Why an OAuth step failed. Each names its step, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A configured value names an unset variable.
    #[error(transparent)]
    MissingVariable(#[from] MissingVariable),
    /// The server's metadata could not be found or was refused.
    #[error("OAuth discovery failed: {0}")]
    Discovery(String),
    /// A discovered or configured endpoint may not be used.
    #[error("OAuth discovery: the {field} {url} is refused: {reason}")]
    Endpoint {
        /// Which endpoint.
        field: &'static str,
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// codemode could not register as a client.
    #[error("OAuth client registration failed: {0}")]
    Registration(String),
    /// The authorization could not be prepared.
    #[error("OAuth authorization failed: {0}")]
    Authorization(String),
    /// The callback's `state` matches no authorization in progress.
    #[error(
        "OAuth callback: the state matches no authorization in progress (it expired, was already used, or was not started by codemode)"
    )]
    UnknownState,
    /// The authorization server sent the browser back with an error.
    #[error("OAuth callback: the authorization server refused: {0}")]
    Refused(String),
    /// The code could not be exchanged for a token.
    #[error("OAuth token exchange failed: {0}")]
    Exchange(String),
    /// The server asked for more scope too many times in a row.
    #[error(
        "the server asked for more scope ({scope}) after {MAX_STEP_UPS} re-authorizations; codemode stopped asking"
    )]
    StepUpLimit {
        /// What it asked for last.
        scope: String,
    },
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AuthError> for OAuthError {
    fn from(error: AuthError) -> Self {
        OAuthError::Authorization(error.to_string())
    }
}

/// What a finished callback authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The client.
    pub client: String,
    /// Whose authorization: [`OPERATOR`] or a caller.
    pub subject: String,
}

/// An authorization waiting for its callback.
struct Flow {
    client: String,
    subject: String,
    session: AuthorizationSession,
    started: Instant,
}

/// The registration and tokens of one (client, subject), as sealed at rest.
#[derive(Serialize, Deserialize)]
struct Secret {
    client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credentials: Option<StoredCredentials>,
}

/// A client id and its secret, however they were obtained.
#[derive(Clone)]
struct Registration {
    client_id: String,
    client_secret: Option<String>,
}

/// codemode's OAuth client side: flows in progress, and the tokens of every (client, subject).
pub struct OAuth {
    tokens: Arc<dyn TokenStore>,
    redirect_uri: String,
    client_metadata_url: Option<String>,
    flows: Mutex<HashMap<String, Flow>>,
    /// Step-up authorizations asked for in a row, by (client, subject).
    step_ups: Mutex<HashMap<(String, String), u32>>,
    /// One lock per (client, subject), held across a refresh and its save.
    refreshing: Mutex<HashMap<(String, String), RefreshLock>>,
}

/// Held across one refresh of one (client, subject) and its save.
type RefreshLock = Arc<tokio::sync::Mutex<()>>;

impl OAuth {
    /// OAuth over `tokens`, codemode being reached at `public_url` (its callback is
    /// `<public_url>/api/oauth/callback`). `client_metadata_url` is codemode's Client ID
    /// Metadata Document, used where servers support them.
    pub fn new(
        tokens: Arc<dyn TokenStore>,
        public_url: &str,
        client_metadata_url: Option<String>,
    ) -> OAuth {
        OAuth {
            tokens,
            redirect_uri: format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/')),
            client_metadata_url,
            flows: Mutex::new(HashMap::new()),
            step_ups: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashMap::new()),
        }
    }

    /// Where authorization servers send the browser back.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The token store.
    pub fn tokens(&self) -> &Arc<dyn TokenStore> {
        &self.tokens
    }

    /// Whether `client` has a token for `subject`.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn has_token(&self, client: &str, subject: &str) -> Result<bool, StoreError> {
        Ok(self.tokens.token(client, subject).await?.is_some())
    }

    /// The HTTP client of a connection to `config`'s server on behalf of `subject`: it puts the
    /// stored token on every request (none when there is none yet, so the server's 401 says
    /// how to authorize) and refreshes it when it expires or is refused.
    ///
    /// # Errors
    /// [`OAuthError`] when the URL or a configured value is unusable, or discovery of a server
    /// codemode holds a token for fails.
    pub async fn http_client(
        &self,
        config: &ClientConfig,
        subject: &str,
    ) -> Result<AuthClient<reqwest::Client>, OAuthError> {
        let settings = Settings::resolve(config)?;
        let stored = self.secret(&config.name, subject).await?;
        let mut manager = self.manager(&settings, &config.name, subject).await?;
        if let Some(secret) = stored.filter(|s| s.credentials.is_some()) {
            let metadata = match manager.resolve_metadata().await {
                Ok(resolution) => resolution.metadata,
                Err(error) => legacy_metadata(&settings.url, None, error).await?,
            };
            manager.set_metadata(settings.apply(metadata)?);
            let client = OAuthClientConfig::new(secret.client_id, self.redirect_uri.clone());
            let client = match secret.client_secret {
                Some(client_secret) => client.with_client_secret(client_secret),
                None => client,
            };
            manager.configure_client(client)?;
        }
        Ok(AuthClient::new(reqwest::Client::new(), manager))
    }

    /// Prepares an authorization of `config`'s server for `subject` and answers the URL a person
    /// opens to grant it. `challenge` is the `WWW-Authenticate` of the server's refusal, which
    /// says where its metadata is and which scope it wants; `step_up` says the refusal was
    /// `insufficient_scope`.
    ///
    /// # Errors
    /// [`OAuthError`] naming the step that failed: discovery, a refused endpoint, registration,
    /// the authorization request, or [`OAuthError::StepUpLimit`].
    pub async fn start(
        &self,
        config: &ClientConfig,
        subject: &str,
        challenge: Option<&str>,
        step_up: bool,
    ) -> Result<String, OAuthError> {
        if step_up {
            self.count_step_up(&config.name, subject, challenge)?;
        }
        let settings = Settings::resolve(config)?;
        let mut manager = self.manager(&settings, &config.name, subject).await?;
        let (metadata, discovered) = match manager.resolve_metadata_from_challenge(challenge).await
        {
            Ok(resolution) => (resolution.metadata, resolution.source.is_discovered()),
            Err(error) => (
                legacy_metadata(&settings.url, challenge, error).await?,
                true,
            ),
        };
        // The spec: a server whose metadata does not list S256 does not do PKCE as OAuth 2.1
        // requires, and the client must not proceed. (The 2025-03-26 default endpoints come
        // with no metadata to read.)
        let s256 = metadata
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
        if discovered && !s256 {
            return Err(OAuthError::Discovery(
                "the authorization server does not advertise PKCE with S256 \
                 (code_challenge_methods_supported), which OAuth 2.1 requires"
                    .into(),
            ));
        }
        let metadata = settings.apply(metadata)?;
        let supports_cimd = metadata
            .additional_fields
            .get("client_id_metadata_document_supported")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        manager.set_metadata(metadata);
        let scopes = if settings.oauth.scopes.is_empty() {
            manager.select_scopes(None, &[])
        } else {
            settings.oauth.scopes.clone()
        };
        let mut request = AuthorizationRequest::new(self.redirect_uri.clone())
            .with_client_name("codemode")
            .with_scopes(scopes.clone());
        let registration = match (&settings.oauth.client_id, &self.client_metadata_url) {
            (Some(client_id), _) => Some(Registration {
                client_id: client_id.clone(),
                client_secret: settings.oauth.client_secret.clone(),
            }),
            (None, Some(url)) if supports_cimd => {
                request = request.with_client_metadata_url(url.clone());
                None
            }
            (None, _) => {
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                let registered = manager
                    .register_client("codemode", &self.redirect_uri, &scopes)
                    .await
                    .map_err(|e| OAuthError::Registration(e.to_string()))?;
                Some(Registration {
                    client_id: registered.client_id,
                    client_secret: registered.client_secret,
                })
            }
        };
        if let Some(registration) = &registration {
            request = request.with_preregistered_client(registration.client_id.clone());
            if let Some(secret) = &registration.client_secret {
                request = request.with_client_secret(secret.clone());
            }
        }
        let credentials = self.credentials(&config.name, subject, registration);
        manager.set_credential_store(credentials);
        let session = AuthorizationSession::new(manager, request)
            .await
            .map_err(|(_, e)| OAuthError::Authorization(e.to_string()))?;
        let url = session.get_authorization_url().to_string();
        let state = query_value(&url, "state").ok_or_else(|| {
            OAuthError::Authorization("the authorization URL has no state".into())
        })?;
        let mut flows = lock(&self.flows);
        flows.retain(|_, flow| flow.started.elapsed() < FLOW_LIFETIME);
        flows.insert(
            state,
            Flow {
                client: config.name.clone(),
                subject: subject.to_string(),
                session,
                started: Instant::now(),
            },
        );
        Ok(url)
    }

    /// Finishes the authorization whose `state` came back with `code` (and the authorization
    /// server's `iss`, RFC 9207): exchanges the code and stores the tokens.
    ///
    /// # Errors
    /// [`OAuthError::UnknownState`] for a state no flow in progress has (nothing is stored),
    /// [`OAuthError::Exchange`] when the server does not give a token.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        issuer: Option<&str>,
    ) -> Result<Authorized, OAuthError> {
        let flow = lock(&self.flows)
            .remove(state)
            .filter(|flow| flow.started.elapsed() < FLOW_LIFETIME)
            .ok_or(OAuthError::UnknownState)?;
        flow.session
            .handle_callback_with_issuer(code, state, issuer)
            .await
            .map_err(|e| OAuthError::Exchange(e.to_string()))?;
        tracing::info!(client = %flow.client, per_user = !flow.subject.is_empty(), "authorized");
        Ok(Authorized {
            client: flow.client,
            subject: flow.subject,
        })
    }

    /// Forgets the authorization of `client` for `subject`, first revoking its tokens at the
    /// authorization server when it offers revocation (RFC 7009; a failure there is logged,
    /// the token is forgotten anyway). Answers whether there was one.
    ///
    /// # Errors
    /// [`OAuthError::Store`] when the store fails.
    pub async fn revoke(
        &self,
        client: &str,
        subject: &str,
        config: Option<&ClientConfig>,
    ) -> Result<bool, OAuthError> {
        let secret = self.secret(client, subject).await?;
        if let (Some(secret), Some(config)) = (secret, config)
            && let Err(error) = revoke_at_server(config, secret).await
        {
            tracing::warn!(client, %error, "the authorization server did not revoke the token");
        }
        Ok(self.tokens.forget_token(client, subject).await?)
    }

    /// Drops the flow of `state` after the authorization server answered with an error.
    pub fn abandon(&self, state: &str) -> Option<Authorized> {
        lock(&self.flows).remove(state).map(|flow| Authorized {
            client: flow.client,
            subject: flow.subject,
        })
    }

    /// A call of `client` for `subject` worked: the next refusal for scope starts the count of
    /// step-ups anew.
    pub fn succeeded(&self, client: &str, subject: &str) {
        let mut step_ups = lock(&self.step_ups);
        if !step_ups.is_empty() {
            step_ups.remove(&(client.to_string(), subject.to_string()));
        }
    }

    /// Forgets every authorization of `client` (it was removed).
    pub fn forget_flows(&self, client: &str) {
        lock(&self.flows).retain(|_, flow| flow.client != client);
    }

    fn count_step_up(
        &self,
        client: &str,
        subject: &str,
        challenge: Option<&str>,
    ) -> Result<(), OAuthError> {
        let mut step_ups = lock(&self.step_ups);
        let count = step_ups
            .entry((client.to_string(), subject.to_string()))
            .or_insert(0);
        *count += 1;
        if *count > MAX_STEP_UPS {
            let scope = challenge
                .and_then(|c| challenge_param(c, "scope"))
                .unwrap_or_default();
            return Err(OAuthError::StepUpLimit { scope });
        }
        Ok(())
    }

    /// A manager for `settings`' server whose credentials are those of (client, subject).
    async fn manager(
        &self,
        settings: &Settings,
        client: &str,
        subject: &str,
    ) -> Result<AuthorizationManager, OAuthError> {
        let mut manager = AuthorizationManager::new(settings.url.as_str())
            .await
            .map_err(|e| OAuthError::Discovery(e.to_string()))?;
        let registration = self.secret(client, subject).await?.map(|s| Registration {
            client_id: s.client_id,
            client_secret: s.client_secret,
        });
        manager.set_credential_store(self.credentials(client, subject, registration));
        Ok(manager)
    }

    fn credentials(
        &self,
        client: &str,
        subject: &str,
        registration: Option<Registration>,
    ) -> Credentials {
        let key = (client.to_string(), subject.to_string());
        let refreshing = Arc::clone(lock(&self.refreshing).entry(key).or_default());
        Credentials {
            tokens: Arc::clone(&self.tokens),
            client: client.to_string(),
            subject: subject.to_string(),
            registration,
            refreshing,
        }
    }

    async fn secret(&self, client: &str, subject: &str) -> Result<Option<Secret>, OAuthError> {
        let Some(token) = self.tokens.token(client, subject).await? else {
            return Ok(None);
        };
        serde_json::from_str(&token.secret)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("the OAuth token of {client}: {e}")).into())
    }
}

/// A client's OAuth settings with `env.NAME` references resolved.
struct Settings {
    url: String,
    oauth: OAuthConfig,
}

impl Settings {
    fn resolve(config: &ClientConfig) -> Result<Settings, OAuthError> {
        let url = resolve_env(config.connection_string.as_deref().unwrap_or_default())?;
        let given = config.oauth_config.clone().unwrap_or_default();
        let resolve = |value: &Option<String>| value.as_deref().map(resolve_env).transpose();
        let oauth = OAuthConfig {
            client_id: resolve(&given.client_id)?,
            client_secret: resolve(&given.client_secret)?,
            scopes: given.scopes,
            authorize_url: resolve(&given.authorize_url)?,
            token_url: resolve(&given.token_url)?,
            registration_url: resolve(&given.registration_url)?,
            resource: resolve(&given.resource)?,
        };
        Ok(Settings { url, oauth })
    }

    /// `discovered` with the configured endpoints in place of the discovered ones, each
    /// checked: HTTPS, or HTTP to a loopback host.
    fn apply(
        &self,
        mut metadata: AuthorizationMetadata,
    ) -> Result<AuthorizationMetadata, OAuthError> {
        if let Some(url) = &self.oauth.authorize_url {
            metadata.authorization_endpoint = url.clone();
        }
        if let Some(url) = &self.oauth.token_url {
            metadata.token_endpoint = url.clone();
        }
        if let Some(url) = &self.oauth.registration_url {
            metadata.registration_endpoint = Some(url.clone());
        }
        let endpoints = [
            (
                "authorization endpoint",
                Some(&metadata.authorization_endpoint),
            ),
            ("token endpoint", Some(&metadata.token_endpoint)),
            (
                "registration endpoint",
                metadata.registration_endpoint.as_ref(),
            ),
        ];
        for (field, url) in endpoints {
            if let Some(url) = url
                && let Err(reason) = check_oauth_url(url)
            {
                return Err(OAuthError::Endpoint {
                    field,
                    url: url.clone(),
                    reason,
                });
            }
        }
        Ok(metadata)
    }
}

/// rmcp's credential store over codemode's [`TokenStore`], for one (client, subject).
struct Credentials {
    tokens: Arc<dyn TokenStore>,
    client: String,
    subject: String,
    /// The registration the tokens belong to (kept with them: a refresh needs the secret).
    registration: Option<Registration>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

fn store_failed(error: impl std::fmt::Display) -> AuthError {
    AuthError::InternalError(format!("the token store failed: {error}"))
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

/// The largest metadata document codemode reads.
const MAX_METADATA_BYTES: usize = 256 * 1024;

/// Discovery failed with `error`: for a 2025-03-26 server (its refusal names no
/// protected-resource metadata), the authorization server metadata at the server's origin is
/// taken even when its `issuer` differs from that origin. That revision finds the document by
/// the server's URL, not by an issuer, so there is no issuer to match; a server of a later
/// revision names its authorization server, and a mismatch there stays refused.
async fn legacy_metadata(
    url: &str,
    challenge: Option<&str>,
    error: AuthError,
) -> Result<AuthorizationMetadata, OAuthError> {
    let refused = || OAuthError::Discovery(error.to_string());
    let names_metadata =
        challenge.is_some_and(|c| challenge_param(c, "resource_metadata").is_some());
    if names_metadata || !error.to_string().contains("issuer mismatch") {
        return Err(refused());
    }
    let mut origin = url::Url::parse(url).map_err(|_| refused())?;
    origin.set_path("/.well-known/oauth-authorization-server");
    origin.set_query(None);
    let response = reqwest::Client::new()
        .get(origin.as_str())
        .send()
        .await
        .map_err(|_| refused())?;
    if !response.status().is_success()
        || response
            .content_length()
            .is_some_and(|length| length > MAX_METADATA_BYTES as u64)
    {
        return Err(refused());
    }
    let body = response.bytes().await.map_err(|_| refused())?;
    if body.len() > MAX_METADATA_BYTES {
        return Err(refused());
    }
    let metadata: AuthorizationMetadata = serde_json::from_slice(&body).map_err(|e| {
        OAuthError::Discovery(format!(
            "the authorization server metadata is malformed: {e}"
        ))
    })?;
    tracing::warn!(
        issuer = ?metadata.issuer,
        "a 2025-03-26 server's authorization server metadata names another issuer; using it"
    );
    Ok(metadata)
}

/// Revokes `secret`'s refresh token (else its access token) at the authorization server of
/// `config`'s server, when its metadata names a revocation endpoint.
async fn revoke_at_server(config: &ClientConfig, secret: Secret) -> Result<(), OAuthError> {
    let settings = Settings::resolve(config)?;
    let manager = AuthorizationManager::new(settings.url.as_str())
        .await
        .map_err(|e| OAuthError::Discovery(e.to_string()))?;
    let metadata = manager
        .resolve_metadata()
        .await
        .map_err(|e| OAuthError::Discovery(e.to_string()))?
        .metadata;
    let Some(endpoint) = metadata
        .additional_fields
        .get("revocation_endpoint")
        .and_then(serde_json::Value::as_str)
    else {
        return Ok(());
    };
    check_oauth_url(endpoint).map_err(|reason| OAuthError::Endpoint {
        field: "revocation endpoint",
        url: endpoint.to_string(),
        reason,
    })?;
    let Some(tokens) = secret.credentials.and_then(|c| c.token_response) else {
        return Ok(());
    };
    use oauth2::TokenResponse;
    let (token, hint) = match tokens.refresh_token() {
        Some(refresh) => (refresh.secret().clone(), "refresh_token"),
        None => (tokens.access_token().secret().clone(), "access_token"),
    };
    // Client authentication as the server advertises for revocation (else for its token
    // endpoint): HTTP Basic unless only the body is offered.
    let methods = [
        "revocation_endpoint_auth_methods_supported",
        "token_endpoint_auth_methods_supported",
    ]
    .iter()
    .find_map(|field| metadata.additional_fields.get(*field))
    .and_then(serde_json::Value::as_array)
    .map(|methods| {
        methods
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect::<Vec<_>>()
    })
    .unwrap_or_default();
    let basic = methods.is_empty() || methods.contains(&"client_secret_basic");
    let mut form = vec![("token", token), ("token_type_hint", hint.to_string())];
    let request = reqwest::Client::new().post(endpoint);
    let request = match &secret.client_secret {
        Some(client_secret) if basic => request.basic_auth(&secret.client_id, Some(client_secret)),
        Some(client_secret) => {
            form.push(("client_id", secret.client_id.clone()));
            form.push(("client_secret", client_secret.clone()));
            request
        }
        None => {
            form.push(("client_id", secret.client_id.clone()));
            request
        }
    };
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let response = request
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| OAuthError::Authorization(format!("revocation: {e}")))?;
    if !response.status().is_success() {
        return Err(OAuthError::Authorization(format!(
            "revocation: HTTP {}",
            response.status()
        )));
    }
    Ok(())
}

/// The value of `name` in `url`'s query.
fn query_value(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The value of parameter `name` in a `WWW-Authenticate` challenge.
pub fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}="))?;
    let rest = &challenge[at + name.len() + 1..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    };
    Some(value.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is one map operation: a panic cannot leave the map half changed.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parameters_are_read_quoted_or_bare() {
        let challenge = r#"Bearer error="insufficient_scope", scope="mcp:basic mcp:write", resource_metadata="http://x/.well-known/oauth-protected-resource""#;
        assert_eq!(
            challenge_param(challenge, "scope").as_deref(),
            Some("mcp:basic mcp:write")
        );
        assert_eq!(
            challenge_param(challenge, "error").as_deref(),
            Some("insufficient_scope")
        );
        assert_eq!(
            challenge_param("Bearer realm=x, scope=a", "scope").as_deref(),
            Some("a")
        );
        assert_eq!(challenge_param("Bearer", "scope"), None);
    }
}
