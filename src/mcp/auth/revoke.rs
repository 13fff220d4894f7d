//! Revoking an authorization at its server (RFC 7009), when the server offers it.

use super::OAuthError;
use super::credentials::Secret;
use super::discovery::bounded_client;
use crate::config::mcp::check_oauth_url;

/// Revokes `secret`'s refresh token (else its access token) at the authorization server of
/// `config`'s server, when its metadata names a revocation endpoint.
pub(super) async fn revoke_at_server(secret: Secret) -> Result<(), OAuthError> {
    // The endpoint of the authorization server the tokens came from, as it said then.
    let Some(metadata) = secret.metadata.as_ref() else {
        return Ok(());
    };
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
    let request = bounded_client()
        .map_err(|e| OAuthError::Authorization(format!("revocation: {e}")))?
        .post(endpoint);
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
