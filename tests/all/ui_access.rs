//! Who reaches the web UI and the management API from a browser, over real sockets: the login's
//! cookie, CSRF and same-origin checks on changes, loopback only without an admin token (a
//! rebound `Host` refused), no open redirect; and the API details the UI relies on (a bad field
//! named in the error, a key listing sent back keeps its value, the playground's key choice).

use reqwest::redirect::Policy;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::support::browser::serve;
use crate::support::stdio_client;

const ADMIN_TOKEN: &str = "an-admin-token-for-the-access-test";

/// A request sent, its answer awaited (and read as JSON).
trait Answer {
    async fn answer(self) -> Response;
    async fn json_answer(self) -> Value;
}

impl Answer for RequestBuilder {
    async fn answer(self) -> Response {
        self.send().await.expect("answer")
    }

    async fn json_answer(self) -> Value {
        self.answer().await.json().await.expect("json")
    }
}

/// `pairs` as an HTML form's body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// Logs in; answers the `Cookie` header value and the page's CSRF token.
async fn login(base: &str) -> (String, String) {
    let response = client()
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", ADMIN_TOKEN), ("next", "/keys")]))
        .answer()
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/keys");
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().expect("pair").to_string();
    let page = client()
        .get(format!("{base}/keys"))
        .header("cookie", &cookie)
        .answer()
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let csrf = html
        .split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries its CSRF token")
        .to_string();
    assert_eq!(csrf.len(), 64);
    (cookie, csrf)
}

async fn error_type(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn key(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value, "mcp_configs": []})
}

#[tokio::test]
async fn a_session_changes_nothing_without_its_csrf_token_or_from_another_origin() {
    let (base, _app, _dir) = serve(json!({"governance": {"admin_token": ADMIN_TOKEN}})).await;
    let (cookie, csrf) = login(&base).await;
    let keys = format!("{base}/api/governance/virtual-keys");

    // Reading needs only the session; a made-up cookie is nobody.
    let read = client().get(&keys).header("cookie", &cookie).answer().await;
    assert_eq!(read.status(), 200);
    let forged = client()
        .get(&keys)
        .header("cookie", "codemode_session=00")
        .answer()
        .await;
    assert_eq!(error_type(forged).await, (401, "unauthorized".into()));

    // A change needs the CSRF token too, and from a browser, this origin.
    let without = client()
        .post(&keys)
        .header("cookie", &cookie)
        .json(&key("a", "value-a"))
        .answer()
        .await;
    assert_eq!(error_type(without).await, (403, "forbidden".into()));
    let wrong = client()
        .post(&keys)
        .header("cookie", &cookie)
        .header("x-csrf-token", "0".repeat(64))
        .json(&key("a", "value-a"))
        .answer()
        .await;
    assert_eq!(error_type(wrong).await, (403, "forbidden".into()));
    let elsewhere = client()
        .post(&keys)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", "http://evil.example")
        .json(&key("a", "value-a"))
        .answer()
        .await;
    assert_eq!(error_type(elsewhere).await, (403, "forbidden".into()));
    let listed: Value = client()
        .get(&keys)
        .header("cookie", &cookie)
        .json_answer()
        .await;
    assert_eq!(listed["virtual_keys"], json!([]), "nothing was created");
    let made = client()
        .post(&keys)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", &base)
        .json(&key("a", "value-a"))
        .answer()
        .await;
    assert_eq!(made.status(), 200);

    // The admin token itself still works without a session, as before.
    let scripted = client()
        .post(&keys)
        .bearer_auth(ADMIN_TOKEN)
        .json(&key("b", "value-b"))
        .answer()
        .await;
    assert_eq!(scripted.status(), 200);

    // After logging out the cookie opens nothing.
    let out = client()
        .post(format!("{base}/logout"))
        .header("cookie", &cookie)
        .answer()
        .await;
    assert_eq!(out.status(), 303);
    let after = client().get(&keys).header("cookie", &cookie).answer().await;
    assert_eq!(after.status(), 401);
    let page = client()
        .get(format!("{base}/logs"))
        .header("cookie", &cookie)
        .answer()
        .await;
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login?next=/logs");
}

#[tokio::test]
async fn a_wrong_login_is_refused_and_a_login_never_redirects_elsewhere() {
    let (base, _app, _dir) = serve(json!({"governance": {"admin_token": ADMIN_TOKEN}})).await;
    let wrong = client()
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", "nope"), ("next", "/keys")]))
        .answer()
        .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(
        wrong
            .text()
            .await
            .expect("html")
            .contains("not the admin token")
    );
    for next in ["https://evil.example/", "//evil.example", "/api/logs"] {
        let response = client()
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("token", ADMIN_TOKEN), ("next", next)]))
            .answer()
            .await;
        assert_eq!(response.headers()["location"], "/mcp-clients", "{next}");
    }
    // A login posted by another site's page is refused.
    let cross = client()
        .post(format!("{base}/login"))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", ADMIN_TOKEN)]))
        .answer()
        .await;
    assert_eq!(cross.status(), 403);
}

#[tokio::test]
async fn without_an_admin_token_the_ui_answers_on_loopback_only() {
    // Loopback listener: open to localhost, refused to a rebound name.
    let (base, _app, _dir) = serve(json!({})).await;
    let page = client().get(format!("{base}/playground")).answer().await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("text")
            .contains("script-src 'self'")
    );
    let rebound = client()
        .get(format!("{base}/playground"))
        .header("host", "evil.example")
        .answer()
        .await;
    assert_eq!(error_type(rebound).await, (403, "forbidden".into()));
    // A page of that rebound name calling the API is refused too; a script without a browser's
    // headers is not (the API stays open without an admin token, as before).
    let from_page = client()
        .get(format!("{base}/api/mcp/clients"))
        .header("host", "evil.example")
        .header("sec-fetch-site", "same-origin")
        .answer()
        .await;
    assert_eq!(from_page.status(), 403);
    let scripted = client()
        .get(format!("{base}/api/mcp/clients"))
        .answer()
        .await;
    assert_eq!(scripted.status(), 200);

    // A listener on every interface: the UI is closed, and says how to open it.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let config =
        codemode::config::Config::parse(r#"{"governance": {"auth": "open"}}"#).expect("config");
    let app = std::sync::Arc::new(
        codemode::app::App::build(&config, codemode::app::StoreChoice::None)
            .await
            .expect("app"),
    );
    tokio::spawn(codemode::server::serve(
        listener,
        app,
        std::future::pending(),
    ));
    let open = client()
        .get(format!("http://127.0.0.1:{port}/mcp-clients"))
        .answer()
        .await;
    let status = open.status().as_u16();
    let body: Value = open.json().await.expect("json");
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("admin_token"),
        "{body}"
    );
}

#[tokio::test]
async fn the_api_names_a_bad_field_keeps_redacted_secrets_and_runs_the_playground_as_a_key() {
    let everything = stdio_client("everything", "server-everything", &["stdio"], &[]);
    let (base, app, _dir) = serve(json!({"mcp": {"client_configs": [everything]}})).await;
    let http = client();

    let bad = http
        .post(format!("{base}/api/mcp/client"))
        .json(&json!({"name": "ok", "connection_type": "stdio", "stdio_config": {"command": ""}}))
        .answer()
        .await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["field"], "stdio_config.command", "{body}");

    // A client's listing (a literal header redacted) sent back whole keeps the header's value.
    let remote = json!({"name": "remote", "connection_type": "http",
        "connection_string": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "Bearer s3cret"}});
    let added = http
        .post(format!("{base}/api/mcp/client"))
        .json(&remote)
        .answer()
        .await;
    assert_eq!(
        added.status(),
        502,
        "it cannot connect, and stays configured"
    );
    let clients: Value = http
        .get(format!("{base}/api/mcp/clients"))
        .json_answer()
        .await;
    let listed = clients
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "remote"))
        .expect("listed");
    let mut config = listed["config"].clone();
    assert_eq!(config["headers"]["Authorization"], "<redacted>");
    config["tool_execution_timeout"] = json!(5);
    let edited = http
        .put(format!("{base}/api/mcp/client/remote"))
        .json(&config)
        .answer()
        .await;
    assert_eq!(edited.status(), 502);
    let kept = app.manager.config("remote").await.expect("configured");
    assert_eq!(kept.headers["Authorization"], "Bearer s3cret");
    assert_eq!(kept.tool_execution_timeout, Some(5));

    // A key, listed (value redacted), edited and sent back: its value still works, and the
    // placeholder never becomes one.
    let keys = format!("{base}/api/governance/virtual-keys");
    let rules = json!([{"mcp_client_name": "everything", "tools_to_execute": ["echo"]}]);
    let made = http
        .post(&keys)
        .json(&json!({"name": "k", "value": "the-real-value", "mcp_configs": rules}))
        .answer()
        .await;
    assert_eq!(made.status(), 200);
    let listed: Value = http.get(&keys).json_answer().await;
    let mut listed_key = listed["virtual_keys"][0].clone();
    assert_eq!(listed_key["value"], "<redacted>");
    listed_key["description"] = json!("edited");
    let edited = http
        .put(format!("{keys}/k"))
        .json(&listed_key)
        .answer()
        .await;
    assert_eq!(edited.status(), 200);
    let tools_with = |key: &'static str| {
        let http = http.clone();
        let url = format!("{base}/v1/mcp/tools");
        async move { http.get(url).bearer_auth(key).answer().await.status() }
    };
    assert_eq!(tools_with("the-real-value").await, 200);
    assert_eq!(tools_with("<redacted>").await, 401);
    let fresh = http
        .post(&keys)
        .json(&json!({"name": "other", "value": "<redacted>"}))
        .answer()
        .await;
    assert_eq!(fresh.status(), 400);

    // The playground acts as the named key: its stubs and its calls only.
    let stubs: Value = http
        .get(format!("{base}/api/playground/stubs?key=k"))
        .json_answer()
        .await;
    let text = stubs["files"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("def echo("), "{stubs}");
    assert!(!text.contains("get_sum"), "{stubs}");
    let run: Value = http
        .post(format!("{base}/api/playground/execute"))
        .json(&json!({"key": "k", "code": "from servers import everything\nresult = everything.echo(message='x')"}))
        .json_answer().await;
    assert_eq!(run["ok"], true, "{run}");
    assert_eq!(run["calls"][0]["tool"], "echo");
    let logs: Value = http
        .get(format!("{base}/api/logs?vk=k"))
        .json_answer()
        .await;
    assert_eq!(logs["total"], 1, "{logs}");
    // Keys are required now: without one the playground says to pick one.
    let keyless = http
        .post(format!("{base}/api/playground/execute"))
        .json(&json!({"code": "print(1)"}))
        .answer()
        .await;
    assert_eq!(keyless.status(), 400);
    let unknown = http
        .get(format!("{base}/api/playground/stubs?key=nobody"))
        .answer()
        .await;
    assert_eq!(unknown.status(), 400);
}
