//! The web UI: `/mcp-clients`, `/logs`, `/keys`, `/playground` (`/` goes to the first), the
//! login page, and the assets under `/ui/`.
//!
//! The pages are plain HTML, CSS and JavaScript modules from `ui/` in the repository, built
//! into the binary with `include_str!`: no build step, no CDN, nothing fetched from elsewhere.
//! Each page is the shell `ui/page.html` around its own fragment; its script reads and changes
//! everything through the management API (`/api/*`), the same one scripts use, so the UI can
//! do nothing the API does not check. [`access`] decides who may see a page, [`session`] keeps
//! the logins.

pub mod access;
pub mod session;

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use self::access::{Admin, Listener};
use super::ApiError;
use crate::app::App;

/// One page of the UI.
struct Page {
    path: &'static str,
    title: &'static str,
    /// Its script, `/ui/<script>.js`.
    script: &'static str,
    body: &'static str,
}

const PAGES: [Page; 4] = [
    Page {
        path: "/mcp-clients",
        title: "MCP clients",
        script: "clients",
        body: include_str!("../../../ui/clients.html"),
    },
    Page {
        path: "/logs",
        title: "Logs",
        script: "logs",
        body: include_str!("../../../ui/logs.html"),
    },
    Page {
        path: "/keys",
        title: "Virtual keys",
        script: "keys",
        body: include_str!("../../../ui/keys.html"),
    },
    Page {
        path: "/playground",
        title: "Playground",
        script: "playground",
        body: include_str!("../../../ui/playground.html"),
    },
];

const SHELL: &str = include_str!("../../../ui/page.html");
const LOGIN: &str = include_str!("../../../ui/login.html");

/// The files under `/ui/`: name, content type, text.
const ASSETS: [(&str, &str, &str); 7] = [
    ("app.css", "text/css", include_str!("../../../ui/app.css")),
    (
        "common.js",
        "text/javascript",
        include_str!("../../../ui/common.js"),
    ),
    (
        "clients.js",
        "text/javascript",
        include_str!("../../../ui/clients.js"),
    ),
    (
        "logs.js",
        "text/javascript",
        include_str!("../../../ui/logs.js"),
    ),
    (
        "keys.js",
        "text/javascript",
        include_str!("../../../ui/keys.js"),
    ),
    (
        "playground.js",
        "text/javascript",
        include_str!("../../../ui/playground.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../../ui/icon.svg"),
    ),
];

/// Every page answers with these: scripts and styles from this origin only, no framing, no
/// referrer to the sites an operator follows links to. (`same-origin`, not `no-referrer`: under
/// `no-referrer` a browser sends `Origin: null` with the login form, which the same-origin check
/// must refuse.)
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
];

/// The UI's routes.
pub fn routes(state: Arc<App>) -> Router<Arc<App>> {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::to("/mcp-clients") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/ui/{file}", get(asset));
    for (index, page) in PAGES.iter().enumerate() {
        router = router.route(
            page.path,
            get(move |state, request| show(state, request, index)),
        );
    }
    router
        .layer(middleware::map_response(secure))
        .with_state(state)
}

async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// `GET` one of [`PAGES`].
async fn show(State(state): State<Arc<App>>, request: Request, index: usize) -> Response {
    let page = &PAGES[index];
    let listener = request.extensions().get::<Listener>().copied();
    match access::page(&state, request.method(), request.headers(), listener) {
        Ok(Some(admin)) => Html(render(page, &admin)).into_response(),
        Ok(None) => Redirect::to(&format!("/login?next={}", page.path)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The shell around `page`, for `admin`.
fn render(page: &Page, admin: &Admin) -> String {
    let nav: String = PAGES
        .iter()
        .map(|p| {
            let current = if p.path == page.path {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(r#"<a href="{}"{current}>{}</a>"#, p.path, p.title)
        })
        .collect();
    let (csrf, account, notice) = match admin {
        Admin::Session(session) => (
            session.csrf.as_str(),
            r#"<form method="post" action="/logout"><button type="submit" class="link">Log out</button></form>"#,
            "",
        ),
        Admin::Open => (
            "",
            "",
            r#"<p class="notice" role="note">No admin token is configured: this UI is open to anyone who can reach this loopback address. Set <code>governance.admin_token</code> to require a login.</p>"#,
        ),
    };
    SHELL
        .replace("{{title}}", page.title)
        .replace("{{script}}", page.script)
        .replace("{{nav}}", &nav)
        .replace("{{account}}", account)
        .replace("{{notice}}", notice)
        .replace("{{csrf}}", csrf)
        .replace("{{body}}", page.body)
}

/// `GET /ui/{file}`.
async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, text)) => (
            [(CONTENT_TYPE, *content_type), (CACHE_CONTROL, "no-cache")],
            *text,
        )
            .into_response(),
        None => ApiError::NotFound(format!("no UI file {file}")).into_response(),
    }
}

/// Where the login sends the browser afterwards.
#[derive(Deserialize)]
struct NextPage {
    next: Option<String>,
}

/// One of the pages, else the first: never another site (an open redirect).
fn next_page(next: Option<&str>) -> &'static str {
    PAGES
        .iter()
        .map(|p| p.path)
        .find(|path| Some(*path) == next)
        .unwrap_or(PAGES[0].path)
}

/// `GET /login`.
async fn login_page(State(state): State<Arc<App>>, Query(next): Query<NextPage>) -> Response {
    let next = next_page(next.next.as_deref());
    if state.admin_token.is_none() {
        return Redirect::to(next).into_response();
    }
    Html(login_html(next, "")).into_response()
}

fn login_html(next: &str, error: &str) -> String {
    LOGIN.replace("{{next}}", next).replace("{{error}}", error)
}

/// The login form.
#[derive(Deserialize)]
struct Login {
    token: String,
    next: Option<String>,
}

/// `POST /login`: the admin token for a session cookie.
async fn login(
    State(state): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    Form(form): Form<Login>,
) -> Response {
    let next = next_page(form.next.as_deref());
    if let Err(error) = access::same_origin(&method, &headers) {
        return error.into_response();
    }
    if state.admin_token.is_none() {
        return Redirect::to(next).into_response();
    }
    if !access::is_admin_token(&state, &form.token) {
        tracing::warn!("UI login refused: wrong admin token");
        let error =
            r#"<p class="error" role="alert" id="login-error">That is not the admin token.</p>"#;
        return (StatusCode::UNAUTHORIZED, Html(login_html(next, error))).into_response();
    }
    let (id, _) = match state.ui_sessions.start() {
        Ok(started) => started,
        Err(error) => return ApiError::Internal(Box::new(error)).into_response(),
    };
    let mut cookie = session_cookie(id);
    cookie.set_max_age(cookie::time::Duration::seconds(
        session::LIFETIME.as_secs().try_into().unwrap_or(i64::MAX),
    ));
    with_cookie(Redirect::to(next), &cookie)
}

/// `POST /logout`: ends the session and clears its cookie.
async fn logout(State(state): State<Arc<App>>, method: Method, headers: HeaderMap) -> Response {
    if let Err(error) = access::same_origin(&method, &headers) {
        return error.into_response();
    }
    if let Some(id) = access::session_id(&headers) {
        state.ui_sessions.end(&id);
    }
    let mut cookie = session_cookie(String::new());
    cookie.make_removal();
    with_cookie(Redirect::to("/login"), &cookie)
}

/// The session cookie carrying `id`: HttpOnly, SameSite=Strict, for the whole site.
fn session_cookie(id: String) -> Cookie<'static> {
    Cookie::build((session::COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build()
}

fn with_cookie(response: impl IntoResponse, cookie: &Cookie<'_>) -> Response {
    let mut response = response.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

/// Lets a request to `/api/*` through only for an admin: see [`access::api`].
pub async fn require_admin(
    State(state): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let listener = request.extensions().get::<Listener>().copied();
    match access::api(&state, request.method(), request.headers(), listener) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}
