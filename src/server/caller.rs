//! Who is calling: [`Caller`] turns a request's virtual key and filter headers into its
//! [`Permit`]; [`BodyFilters`] are the same filters given in a JSON body.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::Deserialize;

use super::error::ApiError;
use crate::app::App;
use crate::policy::rules::header_list;
use crate::policy::{AuthError, Permit, RequestFilter};

/// The caller's permit: its virtual key's rules, narrowed by the filter headers.
pub struct Caller(pub Permit);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(permit_from_headers(state, &parts.headers)?))
    }
}

/// The permit of a request with `headers`: its key's, narrowed by its filter headers.
///
/// # Errors
/// [`AuthError`] when the key is missing, unknown, disabled or given twice differently.
fn permit_from_headers(state: &App, headers: &HeaderMap) -> Result<Permit, AuthError> {
    let key = presented_key(headers)?;
    let permit = state.keys.authenticate(key.as_deref())?;
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| header_list(v.to_str().unwrap_or_default()))
    };
    let filter = RequestFilter::new(
        header("x-bf-mcp-include-clients"),
        header("x-bf-mcp-exclude-clients"),
        header("x-bf-mcp-include-tools"),
        header("x-bf-mcp-exclude-tools"),
    );
    let user = state
        .trusted_user_header
        .as_deref()
        .and_then(|name| headers.get(name))
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    Ok(permit.narrowed(filter).for_user(user))
}

/// The virtual key a request presents: `Authorization: Bearer`, `x-bf-vk` or `x-api-key`.
///
/// # Errors
/// [`AuthError::Conflict`] when two of them carry different keys.
fn presented_key(headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let bearer = value("authorization").map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    let mut keys = [bearer, value("x-bf-vk"), value("x-api-key")]
        .into_iter()
        .flatten();
    let Some(first) = keys.next() else {
        return Ok(None);
    };
    if keys.any(|other| other != first) {
        return Err(AuthError::Conflict);
    }
    Ok(Some(first.to_string()))
}

/// Request filters in a JSON body (Bifrost's field names); they narrow like the headers.
#[derive(Debug, Default, Deserialize)]
pub struct BodyFilters {
    #[serde(rename = "mcp-include-clients")]
    include_clients: Option<Vec<String>>,
    #[serde(rename = "mcp-exclude-clients")]
    exclude_clients: Option<Vec<String>>,
    #[serde(rename = "mcp-include-tools")]
    include_tools: Option<Vec<String>>,
    #[serde(rename = "mcp-exclude-tools")]
    exclude_tools: Option<Vec<String>>,
}

impl BodyFilters {
    /// `permit` narrowed by these filters.
    pub fn narrow(self, permit: Permit) -> Permit {
        permit.narrowed(RequestFilter::new(
            self.include_clients,
            self.exclude_clients,
            self.include_tools,
            self.exclude_tools,
        ))
    }
}
