//! Upstream OAuth against servers that lie or misbehave: each refusal names its step, and
//! nothing is stored. The hostile resource and authorization servers are this file's own, on
//! loopback: they answer MCP with a 401 and serve whatever metadata a case gives them.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use codemode::config::Config;
use codemode::mcp::McpManager;
use serde_json::{Value, json};

use crate::support::{app_state, call};

/// What a hostile server serves: its protected-resource metadata and its authorization
/// server's metadata, as raw bodies.
struct Documents {
    resource: String,
    authorization_server: String,
}

/// Serves `documents(base)` on a loopback port; answers the base URL.
async fn hostile(documents: impl Fn(&str) -> Documents) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let served = Arc::new(documents(&base));
    let challenge =
        format!("Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\"");
    let json = |body: String| ([(header::CONTENT_TYPE, "application/json")], body);
    let (prm, asm) = (Arc::clone(&served), Arc::clone(&served));
    let sse_challenge = challenge.clone();
    let app = Router::new()
        .route(
            "/sse",
            get(move || {
                let challenge = sse_challenge.clone();
                async move {
                    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)])
                        .into_response()
                }
            }),
        )
        .route(
            "/mcp",
            post(move || {
                let challenge = challenge.clone();
                async move {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, challenge)],
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(move || async move { json(prm.resource.clone()) }),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { json(asm.authorization_server.clone()) }),
        )
        .route(
            "/register",
            post(|| async {
                let registered = json!({"client_id": "c", "redirect_uris": ["http://localhost/api/oauth/callback"]});
                (StatusCode::CREATED, axum::Json(registered))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Honest documents for a server at `base`.
fn honest(base: &str) -> (Value, Value) {
    (
        json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}),
        json!({"issuer": base, "authorization_endpoint": format!("{base}/authorize"),
               "token_endpoint": format!("{base}/token"),
               "registration_endpoint": format!("{base}/register"),
               "response_types_supported": ["code"],
               "code_challenge_methods_supported": ["S256"]}),
    )
}

fn documents(resource: Value, authorization_server: Value) -> Documents {
    Documents {
        resource: resource.to_string(),
        authorization_server: authorization_server.to_string(),
    }
}

/// A manager with one OAuth client of the server at `base`, after its first attempt.
async fn connect(base: &str) -> Arc<McpManager> {
    connect_over(base, "http", "mcp").await
}

async fn connect_over(base: &str, transport: &str, path: &str) -> Arc<McpManager> {
    let config = Config::parse(
        &json!({"mcp": {"client_configs": [{"name": "hostile", "connection_type": transport,
            "connection_string": format!("{base}/{path}"), "auth_type": "oauth"}]}})
        .to_string(),
    )
    .expect("config");
    Arc::new(McpManager::start(&config.mcp).await)
}

#[tokio::test]
async fn a_legacy_sse_server_asking_for_oauth_waits_for_authorization() {
    let base = hostile(|base| {
        let (mut resource, server) = honest(base);
        resource["resource"] = json!(base);
        documents(resource, server)
    })
    .await;
    let manager = connect_over(&base, "sse", "sse").await;
    let status = manager.status().await.remove(0);
    let state = serde_json::to_value(status.state).expect("state");
    assert_eq!(state, "pending_authorization", "{status:?}");
    let url = status.authorize_url.expect("url");
    assert!(url.starts_with(&format!("{base}/authorize?")), "{url}");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
}

/// The client's state and last error; asserts nothing was stored.
async fn refused(manager: &Arc<McpManager>) -> (String, String) {
    let status = manager.status().await.remove(0);
    let tokens = manager.oauth().tokens().tokens().await.expect("tokens");
    assert!(tokens.is_empty(), "stored: {tokens:?}");
    let state = serde_json::to_value(status.state).expect("state");
    (
        state.as_str().unwrap_or_default().to_string(),
        status.last_error.unwrap_or_default(),
    )
}

#[tokio::test]
async fn metadata_for_another_resource_is_refused_at_discovery() {
    let base = hostile(|base| {
        let (mut resource, server) = honest(base);
        resource["resource"] = json!("http://127.0.0.1:9/someone-else");
        documents(resource, server)
    })
    .await;
    let (state, error) = refused(&connect(&base).await).await;
    assert_eq!(state, "error");
    assert!(error.starts_with("OAuth discovery failed"), "{error}");
}

#[tokio::test]
async fn an_authorization_server_naming_another_issuer_is_refused_at_discovery() {
    let base = hostile(|base| {
        let (resource, mut server) = honest(base);
        server["issuer"] = json!("https://issuer.example");
        documents(resource, server)
    })
    .await;
    let (state, error) = refused(&connect(&base).await).await;
    assert_eq!(state, "error");
    assert!(error.starts_with("OAuth discovery failed"), "{error}");
    assert!(error.contains("issuer"), "{error}");
}

#[tokio::test]
async fn an_endpoint_over_plain_http_off_loopback_is_refused() {
    let base = hostile(|base| {
        let (resource, mut server) = honest(base);
        server["authorization_endpoint"] = json!("http://login.example/authorize");
        documents(resource, server)
    })
    .await;
    let (state, error) = refused(&connect(&base).await).await;
    assert_eq!(state, "error");
    assert!(
        error.contains("authorization endpoint http://login.example/authorize is refused"),
        "{error}"
    );
}

#[tokio::test]
async fn malformed_and_oversized_metadata_are_refused_at_discovery() {
    let malformed = hostile(|base| Documents {
        resource: honest(base).0.to_string(),
        authorization_server: "{\"issuer\": ".into(),
    })
    .await;
    let oversized = hostile(|base| {
        let (mut resource, server) = honest(base);
        resource["padding"] = json!("x".repeat(2 * 1024 * 1024));
        documents(resource, server)
    })
    .await;
    for base in [malformed, oversized] {
        let (state, error) = refused(&connect(&base).await).await;
        assert_eq!(state, "error");
        assert!(error.starts_with("OAuth discovery failed"), "{error}");
    }
}

#[tokio::test]
async fn an_authorization_server_without_s256_is_refused() {
    let plain_only = hostile(|base| {
        let (resource, mut server) = honest(base);
        server["code_challenge_methods_supported"] = json!(["plain"]);
        documents(resource, server)
    })
    .await;
    let silent = hostile(|base| {
        let (resource, mut server) = honest(base);
        server
            .as_object_mut()
            .map(|s| s.remove("code_challenge_methods_supported"));
        documents(resource, server)
    })
    .await;
    for base in [plain_only, silent] {
        let (state, error) = refused(&connect(&base).await).await;
        assert_eq!(state, "error");
        assert!(error.starts_with("OAuth discovery failed"), "{error}");
        assert!(error.contains("S256"), "{error}");
    }
}

#[tokio::test]
async fn a_callback_with_a_state_codemode_did_not_issue_stores_nothing() {
    let base = hostile(|base| {
        let (resource, server) = honest(base);
        documents(resource, server)
    })
    .await;
    let manager = connect(&base).await;
    let status = manager.status().await.remove(0);
    let authorize_url = status
        .authorize_url
        .clone()
        .unwrap_or_else(|| panic!("pending: {status:?}"));
    let app = codemode::server::router(Arc::new(app_state(Arc::clone(&manager)).await));
    let (code, _) = call(
        &app,
        "GET",
        "/api/oauth/callback?code=stolen&state=forged",
        Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let after = manager.status().await.remove(0);
    assert_eq!(after.authorize_url.as_deref(), Some(authorize_url.as_str()));
    assert!(
        manager
            .oauth()
            .tokens()
            .tokens()
            .await
            .expect("tokens")
            .is_empty()
    );
    // The authorization server's own refusal ends the flow it names, and stores nothing.
    let state = url::Url::parse(&authorize_url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let (code, _) = call(
        &app,
        "GET",
        &format!("/api/oauth/callback?error=access_denied&state={state}"),
        Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = call(
        &app,
        "GET",
        &format!("/api/oauth/callback?code=late&state={state}"),
        Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "a used state is refused");
    assert!(
        manager
            .oauth()
            .tokens()
            .tokens()
            .await
            .expect("tokens")
            .is_empty()
    );
}
