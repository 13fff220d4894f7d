//! What codemode learns about a server before it authorizes: the client's settings with their
//! variables resolved, the configured endpoints in place of the discovered ones (each checked),
//! PKCE S256 required, the 2025-03-26 metadata whose issuer names no one, and the parameters of
//! a `WWW-Authenticate` challenge.

use rmcp::transport::AuthError;
use rmcp::transport::auth::AuthorizationMetadata;

use super::OAuthError;
use crate::config::mcp::check_oauth_url;
use crate::config::{ClientConfig, OAuthConfig, resolve_env};

/// A client's OAuth settings with `env.NAME` references resolved.
pub(super) struct Settings {
    pub(super) url: String,
    pub(super) oauth: OAuthConfig,
}

impl Settings {
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

/// The value of `name` in `url`'s query.
pub(super) fn query_value(url: &str, name: &str) -> Option<String> {
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
