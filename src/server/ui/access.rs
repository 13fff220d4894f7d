//! Who may use the web UI and the management API, and from where.
//!
//! - **The admin token**, as `Authorization: Bearer`, opens `/api/*` (scripts, curl).
//! - **A UI session** (the cookie a login with the admin token sets) opens the pages and
//!   `/api/*`; a state-changing request must also carry the session's CSRF token in
//!   [`CSRF_HEADER`]. The cookie is `SameSite=Strict` as well, so a link from another site
//!   does not carry it.
//! - **No admin token configured**: the API stays open as before, but the pages only answer on
//!   a loopback listener and to a loopback `Host`, and so does every request a browser makes to
//!   the API. A page of another site cannot reach it then: its `Host` (after a DNS rebinding)
//!   is not a loopback name, and its `Origin` is not this service's.
//! - **From a browser, any state-changing request** must come from this service's own origin
//!   (`Origin` equal to `Host`), whoever is logged in.

use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method, Uri};

use super::session::{COOKIE as SESSION_COOKIE, CSRF_HEADER, Session};
use crate::app::App;
use crate::policy::keys::hash_key;
use crate::server::ApiError;

/// The address codemode listens on, as a request extension: [`serve`](crate::server::serve)
/// adds it. A router called without a socket has none, and is treated as not on loopback.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    /// Whether it is a loopback address.
    pub loopback: bool,
}

/// Who a page is shown to.
#[derive(Debug)]
pub enum Admin {
    /// A browser logged in with the admin token.
    Session(Session),
    /// Anyone on this machine's loopback: no admin token is configured.
    Open,
}

/// Whether `host` names this machine only: `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request to `/api/*` comes from an admin.
///
/// # Errors
/// [`ApiError::Forbidden`] for a browser request from elsewhere, [`ApiError::Unauthorized`]
/// without the admin token or a session (with its CSRF token when the request changes state).
pub fn api(
    state: &App,
    method: &Method,
    headers: &HeaderMap,
    listener: Option<Listener>,
) -> Result<(), ApiError> {
    same_origin(method, headers)?;
    if state.admin_token.is_none() {
        let from_browser = headers.contains_key(ORIGIN) || headers.contains_key("sec-fetch-site");
        if from_browser {
            on_loopback(headers, listener)?;
        }
        return Ok(());
    }
    if bearer_is_admin(state, headers) {
        return Ok(());
    }
    let Some(session) = session(state, headers) else {
        return Err(ApiError::Unauthorized(
            "the management API needs Authorization: Bearer <admin token>".into(),
        ));
    };
    if !is_safe(method) {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !session.csrf_matches(presented) {
            return Err(ApiError::Forbidden(format!(
                "a change made from the web UI needs its {CSRF_HEADER} header; reload the page"
            )));
        }
    }
    Ok(())
}

/// Whether a page may be shown: `Ok(Some(admin))` when it may, `Ok(None)` when the browser
/// must log in first.
///
/// # Errors
/// [`ApiError::Forbidden`] when no admin token is configured and the request does not come
/// over loopback, or a state-changing request comes from another origin.
pub fn page(
    state: &App,
    method: &Method,
    headers: &HeaderMap,
    listener: Option<Listener>,
) -> Result<Option<Admin>, ApiError> {
    same_origin(method, headers)?;
    if state.admin_token.is_none() {
        on_loopback(headers, listener)?;
        return Ok(Some(Admin::Open));
    }
    Ok(session(state, headers).map(Admin::Session))
}

/// The session a request's cookie names, when it is live.
pub fn session(state: &App, headers: &HeaderMap) -> Option<Session> {
    session_id(headers).and_then(|id| state.ui_sessions.get(&id))
}

/// The session id in a request's cookie.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// Whether `token` is the admin token.
pub fn is_admin_token(state: &App, token: &str) -> bool {
    state.admin_token.as_ref() == Some(&hash_key(token.trim()))
}

fn bearer_is_admin(state: &App, headers: &HeaderMap) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| is_admin_token(state, token))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A state-changing request that names an origin must name this one.
///
/// # Errors
/// [`ApiError::Forbidden`] when it names another.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if is_safe(method) {
        return Ok(());
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin_authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.parse::<Uri>().ok())
        .and_then(|uri| uri.authority().cloned());
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    match (origin_authority, host) {
        (Some(origin), Some(host)) if origin.as_str().eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "a cross-origin request may not change codemode".into(),
        )),
    }
}

/// The request came to a loopback listener, addressed to a loopback name.
fn on_loopback(headers: &HeaderMap, listener: Option<Listener>) -> Result<(), ApiError> {
    let host_is_loopback = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .is_some_and(|authority| is_loopback(authority.host()));
    if listener.is_some_and(|l| l.loopback) && host_is_loopback {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "with no governance.admin_token the web UI is open on a loopback address only: \
             open it at http://localhost:<port>, or set an admin token to log in from elsewhere"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.com",
            "0.0.0.0",
            "10.0.0.1",
            "localhost.evil.com",
            "",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn a_change_from_another_origin_is_refused() {
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(same_origin(&Method::POST, &same).is_ok());
        for origin in ["http://evil.example", "null", "http://127.0.0.1:9090"] {
            let other = headers(&[("host", "127.0.0.1:8080"), ("origin", origin)]);
            assert!(same_origin(&Method::POST, &other).is_err(), "{origin}");
            assert!(same_origin(&Method::GET, &other).is_ok(), "{origin}");
        }
        let no_origin = headers(&[("host", "127.0.0.1:8080")]);
        assert!(same_origin(&Method::DELETE, &no_origin).is_ok());
    }

    #[test]
    fn loopback_needs_both_the_listener_and_the_host() {
        let local = headers(&[("host", "localhost:8080")]);
        let rebound = headers(&[("host", "evil.example:8080")]);
        let on = Some(Listener { loopback: true });
        let off = Some(Listener { loopback: false });
        assert!(on_loopback(&local, on).is_ok());
        assert!(on_loopback(&rebound, on).is_err());
        assert!(on_loopback(&local, off).is_err());
        assert!(on_loopback(&local, None).is_err());
    }
}
