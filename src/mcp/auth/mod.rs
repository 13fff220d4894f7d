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

mod credentials;
mod discovery;
mod revoke;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::auth::{AuthorizationMetadata, OAuthClientConfig};
use rmcp::transport::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationRequest, AuthorizationSession,
};

use crate::config::{ClientConfig, MissingVariable};
use crate::store::{StoreError, TokenStore};
use credentials::{Credentials, Registration, Secret};
use discovery::{Settings, legacy_metadata, query_value, require_s256};
use revoke::revoke_at_server;

/// The subject of a client's own authorization (the operator's).
pub const OPERATOR: &str = "";

/// Authorizations asked for in a row because the server wanted more scope, before codemode
/// stops asking (the client then needs the operator).
pub const MAX_STEP_UPS: u32 = 2;

/// The most authorizations waiting for their callback at once.
const MAX_FLOWS: usize = 10_000;

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
        let stored = self.secret(&config.name, subject).await?;
        self.client_with(config, subject, stored).await
    }

    /// [`http_client`](Self::http_client) when `subject` holds a token for `config`'s server,
    /// else `None` (nothing to connect with).
    ///
    /// # Errors
    /// As [`http_client`](Self::http_client).
    pub async fn authorized_client(
        &self,
        config: &ClientConfig,
        subject: &str,
    ) -> Result<Option<AuthClient<reqwest::Client>>, OAuthError> {
        match self.secret(&config.name, subject).await? {
            Some(stored) if stored.credentials.is_some() => {
                Ok(Some(self.client_with(config, subject, Some(stored)).await?))
            }
            _ => Ok(None),
        }
    }

    async fn client_with(
        &self,
        config: &ClientConfig,
        subject: &str,
        stored: Option<Secret>,
    ) -> Result<AuthClient<reqwest::Client>, OAuthError> {
        let settings = Settings::resolve(config)?;
        let mut manager = self
            .manager(&settings, &config.name, subject, stored.as_ref())
            .await?;
        if let Some(secret) = stored.filter(|s| s.credentials.is_some()) {
            // The endpoints the tokens came from, never rediscovered: a server that later names
            // another authorization server does not get them.
            let metadata = match secret.metadata.clone() {
                Some(metadata) => metadata,
                None => discover(&manager, &settings, None).await?,
            };
            manager.set_metadata(metadata);
            let client = OAuthClientConfig::new(secret.client_id, self.redirect_uri.clone());
            let client = match secret.client_secret {
                Some(client_secret) => client.with_client_secret(client_secret),
                None => client,
            };
            manager.configure_client(client)?;
        }
        let http = crate::mcp::transport::http::client()
            .map_err(|e| OAuthError::Authorization(e.to_string()))?;
        Ok(AuthClient::new(http, manager))
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
        // One authorization at a time per (client, subject): asking again answers the same URL,
        // so repeated calls neither register again nor use up the step-ups.
        if let Some(url) = self.live_flow(&config.name, subject) {
            return Ok(url);
        }
        let settings = Settings::resolve(config)?;
        if step_up {
            self.count_step_up(&config.name, subject, &settings, challenge)?;
        }
        let stored = self.secret(&config.name, subject).await?;
        let mut manager = self
            .manager(&settings, &config.name, subject, stored.as_ref())
            .await?;
        let metadata = discover(&manager, &settings, challenge).await?;
        let supports_cimd = metadata
            .additional_fields
            .get("client_id_metadata_document_supported")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        // A registration made with this authorization server is used again.
        let registered = stored
            .as_ref()
            .filter(|s| s.metadata.as_ref().map(|m| &m.issuer) == Some(&metadata.issuer))
            .map(Secret::registration);
        manager.set_metadata(metadata.clone());
        let scopes = self
            .scopes(&manager, &settings, &config.name, subject, step_up)
            .await?;
        let request = AuthorizationRequest::new(self.redirect_uri.clone())
            .with_client_name("codemode")
            .with_scopes(scopes.clone());
        let (request, registration) = self
            .register(
                &mut manager,
                &settings,
                request,
                &scopes,
                supports_cimd,
                registered,
            )
            .await?;
        let credentials = self.credentials(&config.name, subject, registration, Some(metadata));
        manager.set_credential_store(credentials);
        let session = AuthorizationSession::new(manager, request)
            .await
            .map_err(|(_, e)| OAuthError::Authorization(e.to_string()))?;
        self.remember(&config.name, subject, session)
    }

    /// The scopes to ask for: the configured ones, else the challenge's, else what the
    /// authorization server supports, else none. A step-up adds those already granted: the
    /// server asked for more, not for other.
    async fn scopes(
        &self,
        manager: &AuthorizationManager,
        settings: &Settings,
        client: &str,
        subject: &str,
        step_up: bool,
    ) -> Result<Vec<String>, OAuthError> {
        let mut scopes = settings.oauth.scopes.clone();
        if scopes.is_empty() || step_up {
            scopes.extend(manager.select_scopes(None, &[]));
        }
        if step_up && let Some(token) = self.tokens.token(client, subject).await? {
            scopes.extend(token.scopes);
        }
        let mut seen = std::collections::HashSet::new();
        scopes.retain(|scope| seen.insert(scope.clone()));
        Ok(scopes)
    }

    /// The URL of the authorization of `client` for `subject` still waiting for its callback.
    fn live_flow(&self, client: &str, subject: &str) -> Option<String> {
        lock(&self.flows)
            .values()
            .find(|flow| {
                flow.client == client
                    && flow.subject == subject
                    && flow.started.elapsed() < FLOW_LIFETIME
            })
            .map(|flow| flow.session.get_authorization_url().to_string())
    }

    /// How codemode identifies itself to the authorization server, in the spec's order: the
    /// configured client id; its Client ID Metadata Document when the server supports them;
    /// else a dynamic registration, made here so that its secret is kept.
    async fn register(
        &self,
        manager: &mut AuthorizationManager,
        settings: &Settings,
        request: AuthorizationRequest,
        scopes: &[String],
        supports_cimd: bool,
        registered: Option<Registration>,
    ) -> Result<(AuthorizationRequest, Option<Registration>), OAuthError> {
        let configured = &settings.oauth.client_id;
        let registration = match (configured, &self.client_metadata_url, registered) {
            (Some(client_id), _, _) => Registration {
                client_id: client_id.clone(),
                client_secret: settings.oauth.client_secret.clone(),
            },
            (None, Some(url), _) if supports_cimd => {
                return Ok((request.with_client_metadata_url(url.clone()), None));
            }
            (None, _, Some(registered)) => registered,
            (None, _, None) => {
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                let registered = manager
                    .register_client("codemode", &self.redirect_uri, &scopes)
                    .await
                    .map_err(|e| OAuthError::Registration(e.to_string()))?;
                Registration {
                    client_id: registered.client_id,
                    client_secret: registered.client_secret,
                }
            }
        };
        let mut request = request.with_preregistered_client(registration.client_id.clone());
        if let Some(secret) = &registration.client_secret {
            request = request.with_client_secret(secret.clone());
        }
        Ok((request, Some(registration)))
    }

    /// Keeps `session` until its callback comes back (forgetting expired ones); answers the URL
    /// that starts it.
    fn remember(
        &self,
        client: &str,
        subject: &str,
        session: AuthorizationSession,
    ) -> Result<String, OAuthError> {
        let url = session.get_authorization_url().to_string();
        let state = query_value(&url, "state").ok_or_else(|| {
            OAuthError::Authorization("the authorization URL has no state".into())
        })?;
        let mut flows = lock(&self.flows);
        flows.retain(|_, flow| flow.started.elapsed() < FLOW_LIFETIME);
        if flows.len() >= MAX_FLOWS {
            return Err(OAuthError::Authorization(format!(
                "{MAX_FLOWS} authorizations are already waiting for their callback; try again later"
            )));
        }
        flows.insert(
            state,
            Flow {
                client: client.to_string(),
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
        let exchanged = flow
            .session
            .handle_callback_with_issuer(code, state, issuer)
            .await;
        if let Err(error) = exchanged {
            // A callback naming the wrong issuer is not the authorization server's: the real
            // one may still come back, so its flow stays (rmcp keeps its state for it too).
            if matches!(
                error,
                AuthError::AuthorizationServerMismatch { .. }
                    | AuthError::AuthorizationServerMissingIssuer { .. }
            ) {
                lock(&self.flows).insert(state.to_string(), flow);
            }
            return Err(OAuthError::Exchange(error.to_string()));
        }
        tracing::info!(client = %flow.client, per_user = !flow.subject.is_empty(), "authorized");
        Ok(Authorized {
            client: flow.client,
            subject: flow.subject,
        })
    }

    /// Forgets the authorization of `client` for `subject`, then revokes its tokens at the
    /// authorization server they came from, when it offers revocation (RFC 7009; a failure
    /// there is logged: codemode holds the tokens no more). Answers whether there was one.
    ///
    /// # Errors
    /// [`OAuthError::Store`] when the store fails.
    pub async fn revoke(&self, client: &str, subject: &str) -> Result<bool, OAuthError> {
        let secret = self.secret(client, subject).await?;
        if !self.forget(client, subject).await? {
            return Ok(false);
        }
        if let Some(secret) = secret
            && let Err(error) = revoke_at_server(secret).await
        {
            tracing::warn!(client, %error, "the authorization server did not revoke the token");
        }
        Ok(true)
    }

    /// Forgets the token of `client` for `subject`, after any refresh of it in flight (which
    /// would save it again).
    async fn forget(&self, client: &str, subject: &str) -> Result<bool, OAuthError> {
        let refreshing = self.refresh_lock(client, subject);
        let _refresh = refreshing.lock().await;
        Ok(self.tokens.forget_token(client, subject).await?)
    }

    /// Forgets every token of the caller `key` (its virtual key was removed: a key made later
    /// with its name must not inherit its upstream accounts), its end users' included.
    ///
    /// # Errors
    /// [`OAuthError::Store`] when the store fails.
    pub async fn forget_caller(&self, key: &str) -> Result<(), OAuthError> {
        let users = format!("{key}#");
        for token in self.tokens.tokens().await? {
            if token.subject == key || token.subject.starts_with(&users) {
                self.forget(&token.client, &token.subject).await?;
            }
        }
        Ok(())
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

    /// Forgets every flow in progress and every token of `client` (removed, or pointed at
    /// another server).
    ///
    /// # Errors
    /// [`OAuthError::Store`] when the store fails.
    pub async fn forget_client(&self, client: &str) -> Result<(), OAuthError> {
        lock(&self.flows).retain(|_, flow| flow.client != client);
        for token in self.tokens.tokens().await? {
            if token.client == client {
                self.forget(client, &token.subject).await?;
            }
        }
        Ok(())
    }

    fn count_step_up(
        &self,
        client: &str,
        subject: &str,
        settings: &Settings,
        challenge: Option<&str>,
    ) -> Result<(), OAuthError> {
        let mut step_ups = lock(&self.step_ups);
        let count = step_ups
            .entry((client.to_string(), subject.to_string()))
            .or_insert(0);
        *count += 1;
        if *count > MAX_STEP_UPS {
            let scope = challenge
                .and_then(|c| settings.challenge_scope(c))
                .unwrap_or_default();
            return Err(OAuthError::StepUpLimit { scope });
        }
        Ok(())
    }

    /// A manager for `settings`' server whose credentials are those of (client, subject), as
    /// `stored`.
    async fn manager(
        &self,
        settings: &Settings,
        client: &str,
        subject: &str,
        stored: Option<&Secret>,
    ) -> Result<AuthorizationManager, OAuthError> {
        let mut manager = settings.manager().await?;
        let registration = stored.map(Secret::registration);
        let metadata = stored.and_then(|s| s.metadata.clone());
        manager.set_credential_store(self.credentials(client, subject, registration, metadata));
        Ok(manager)
    }

    fn credentials(
        &self,
        client: &str,
        subject: &str,
        registration: Option<Registration>,
        metadata: Option<AuthorizationMetadata>,
    ) -> Credentials {
        Credentials {
            tokens: Arc::clone(&self.tokens),
            client: client.to_string(),
            subject: subject.to_string(),
            registration,
            metadata,
            refreshing: self.refresh_lock(client, subject),
        }
    }

    /// The lock held across a refresh of (client, subject)'s token and its save.
    fn refresh_lock(&self, client: &str, subject: &str) -> RefreshLock {
        let key = (client.to_string(), subject.to_string());
        Arc::clone(lock(&self.refreshing).entry(key).or_default())
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

/// The authorization server's metadata for `settings`' server, found from `challenge` (or the
/// well-known locations), with the configured endpoints in place and PKCE S256 required (the
/// 2025-03-26 default endpoints come with no metadata to read).
async fn discover(
    manager: &AuthorizationManager,
    settings: &Settings,
    challenge: Option<&str>,
) -> Result<AuthorizationMetadata, OAuthError> {
    let (metadata, published) = match manager.resolve_metadata_from_challenge(challenge).await {
        Ok(resolution) => (resolution.metadata, resolution.source.is_discovered()),
        Err(error) => (
            legacy_metadata(&settings.url, challenge, error).await?,
            true,
        ),
    };
    if published {
        require_s256(&metadata)?;
    }
    settings.apply(metadata)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section is one map operation: a panic cannot leave the map half changed.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
