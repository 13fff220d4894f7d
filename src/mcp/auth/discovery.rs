//! What codemode learns about a server before it authorizes: the client's settings with their
//! variables resolved, the configured endpoints in place of the discovered ones (each checked),
//! PKCE S256 required, the 2025-03-26 metadata whose issuer names no one, and the parameters of
//! a `WWW-Authenticate` challenge.

use rmcp::transport::auth::AuthorizationMetadata;
use rmcp::transport::{AuthError, AuthorizationManager, WWWAuthenticateParams};

use super::OAuthError;
use crate::config::mcp::check_oauth_url;
use crate::config::{ClientConfig, OAuthConfig, resolve_env};

/// A client's OAuth settings with `env.NAME` references resolved.
pub(super) struct Settings {
    pub(super) url: String,
    pub(super) oauth: OAuthConfig,
}

impl Settings {
    /// An rmcp authorization manager for the server (its metadata requests go through rmcp's
    /// client, which refuses link-local and reserved addresses).
    pub(super) async fn manager(&self) -> Result<AuthorizationManager, OAuthError> {
        AuthorizationManager::new(self.url.as_str())
            .await
            .map_err(|e| OAuthError::Discovery(e.to_string()))
    }

    /// The `scope` a `WWW-Authenticate` challenge of this server asks for.
    pub(super) fn challenge_scope(&self, challenge: &str) -> Option<String> {
        let base = url::Url::parse(&self.url).ok()?;
        WWWAuthenticateParams::parse(challenge, &base).scope
    }

    pub(super) fn resolve(config: &ClientConfig) -> Result<Settings, OAuthError> {
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
    pub(super) fn apply(
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

/// Refuses `metadata` that does not list S256 among its PKCE methods: such a server does not do
/// PKCE as OAuth 2.1 requires, and the spec says the client must not proceed.
pub(super) fn require_s256(metadata: &AuthorizationMetadata) -> Result<(), OAuthError> {
    let s256 = metadata
        .code_challenge_methods_supported
        .as_ref()
        .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
    if s256 {
        return Ok(());
    }
    Err(OAuthError::Discovery(
        "the authorization server does not advertise PKCE with S256 \
         (code_challenge_methods_supported), which OAuth 2.1 requires"
            .into(),
    ))
}

/// An HTTP client for codemode's own OAuth requests outside rmcp's (the 2025-03-26 metadata,
/// revocation): no redirects (a request carrying a token goes where it was sent, or nowhere),
/// and a time limit.
pub(super) fn bounded_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
}

/// `response`'s body, unless it is longer than `limit` bytes (read no further than that).
pub(super) async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > limit {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// The largest metadata document codemode reads.
const MAX_METADATA_BYTES: usize = 256 * 1024;

/// Discovery failed with `error`: for a 2025-03-26 server (its refusal names no
/// protected-resource metadata), the authorization server metadata at the server's origin is
/// taken even when its `issuer` differs from that origin. That revision finds the document by
/// the server's URL, not by an issuer, so there is no issuer to match; a server of a later
/// revision names its authorization server, and a mismatch there stays refused.
pub(super) async fn legacy_metadata(
    url: &str,
    challenge: Option<&str>,
    error: AuthError,
) -> Result<AuthorizationMetadata, OAuthError> {
    let refused = || OAuthError::Discovery(error.to_string());
    let base = url::Url::parse(url).map_err(|_| refused())?;
    let names_metadata = challenge.is_some_and(|c| {
        WWWAuthenticateParams::parse(c, &base)
            .resource_metadata_url
            .is_some()
    });
    if names_metadata || !matches!(error, AuthError::AuthorizationServerMismatch { .. }) {
        return Err(refused());
    }
    let mut origin = base;
    origin.set_path("/.well-known/oauth-authorization-server");
    origin.set_query(None);
    let response = bounded_client()
        .map_err(|_| refused())?
        .get(origin.as_str())
        .send()
        .await
        .map_err(|_| refused())?;
    if !response.status().is_success() {
        return Err(refused());
    }
    let body = read_bounded(response, MAX_METADATA_BYTES)
        .await
        .ok_or_else(refused)?;
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

/// The value of `name` in `url`'s query.
pub(super) fn query_value(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_endpoints_are_used() {
        let settings = Settings {
            url: "https://mcp.example/mcp".into(),
            oauth: OAuthConfig {
                token_url: Some("http://login.example/token".into()),
                ..OAuthConfig::default()
            },
        };
        let mut metadata = AuthorizationMetadata::default();
        metadata.authorization_endpoint = "https://login.example/authorize".into();
        metadata.token_endpoint = "https://login.example/token".into();
        let refused = settings
            .apply(metadata.clone())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some(
                "OAuth discovery: the token endpoint http://login.example/token is refused: \
                 must be https (or http to a loopback host)"
            )
        );
        let loopback = Settings {
            oauth: OAuthConfig {
                token_url: Some("http://127.0.0.1:9/token".into()),
                ..OAuthConfig::default()
            },
            ..settings
        };
        let applied = loopback.apply(metadata).expect("loopback is fine");
        assert_eq!(applied.token_endpoint, "http://127.0.0.1:9/token");
    }
}
