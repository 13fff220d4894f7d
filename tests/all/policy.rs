//! Virtual keys, request filters and the permit on every call; the audit log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use axum::http::StatusCode;
use codemode::app::App;
use codemode::config::{ClientConfig, Config};
use codemode::mcp::{InProcessTool, McpManager};
use codemode::server::router;
use codemode::store::Store;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::{EXECUTOR, send, stdio_client};

fn tool_call(name: &str) -> Value {
    json!({"id": "c", "type": "function", "function": {"name": name, "arguments": "{}"}})
}

async fn state(manager: Arc<McpManager>, config: Value, store: Option<Store>) -> Arc<App> {
    let config = Config::parse(&config.to_string()).expect("valid config");
    Arc::new(
        App::assemble(&config, manager, EXECUTOR.clone(), store)
            .await
            .expect("state"),
    )
}

const CLIENTS: [&str; 3] = ["a", "b", "c"];
/// The property test's clients: its own, so no other test's calls move its counters.
const PROP_CLIENTS: [&str; 3] = ["pa", "pb", "pc"];
const TOOLS: [&str; 3] = ["t1", "t2", "t3"];

/// Counts the calls each in-process tool actually received.
static RECEIVED: LazyLock<HashMap<String, AtomicUsize>> = LazyLock::new(|| {
    let mut counters = HashMap::new();
    for client in CLIENTS.into_iter().chain(PROP_CLIENTS) {
        for tool in TOOLS {
            counters.insert(format!("{client}.{tool}"), AtomicUsize::new(0));
        }
    }
    counters
});

fn received(client: &str, tool: &str) -> usize {
    RECEIVED[&format!("{client}.{tool}")].load(Ordering::SeqCst)
}

async fn counting_manager() -> Arc<McpManager> {
    counting_manager_of(&CLIENTS).await
}

/// A manager whose `clients` each have the counted tools `t1`, `t2`, `t3`.
async fn counting_manager_of(clients: &[&'static str]) -> Arc<McpManager> {
    let manager = Arc::new(McpManager::new(Default::default()));
    for &client in clients {
        let tools = TOOLS
            .iter()
            .map(|tool| {
                let key = format!("{client}.{tool}");
                InProcessTool::new(tool, "counts", json!({"type": "object"}), move |_| {
                    let key = key.clone();
                    async move {
                        RECEIVED[&key].fetch_add(1, Ordering::SeqCst);
                        Ok(json!("ran"))
                    }
                })
            })
            .collect();
        manager
            .add_in_process(client, tools)
            .await
            .expect("registered");
    }
    manager
}

/// One random case: per client its `tools_to_execute`, the key's `mcp_configs`, the filters.
#[derive(Debug, Clone)]
struct Case {
    client_tools: Vec<Option<Vec<&'static str>>>,
    key_clients: Vec<Option<Vec<String>>>,
    include_clients: Option<Vec<&'static str>>,
    exclude_tools: Vec<String>,
}

fn tool_list() -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(TOOLS.to_vec(), 0..=3)
}

fn case() -> impl Strategy<Value = Case> {
    let key_entry = prop_oneof![
        Just(None),
        Just(Some(vec!["*".to_string()])),
        tool_list().prop_map(|t| Some(t.into_iter().map(str::to_string).collect())),
    ];
    (
        prop::collection::vec(prop::option::of(tool_list()), 3),
        prop::collection::vec(key_entry, 3),
        prop::option::of(prop::sample::subsequence(PROP_CLIENTS.to_vec(), 0..=3)),
        prop::sample::subsequence(
            PROP_CLIENTS
                .iter()
                .flat_map(|c| TOOLS.iter().map(move |t| format!("{c}-{t}")))
                .collect::<Vec<_>>(),
            0..=2,
        ),
    )
        .prop_map(
            |(client_tools, key_clients, include_clients, exclude_tools)| Case {
                client_tools,
                key_clients,
                include_clients,
                exclude_tools,
            },
        )
}

impl Case {
    /// The model: allowed = client config ∩ key ∩ filters.
    fn allowed(&self, index: usize, tool: &str) -> bool {
        let client = PROP_CLIENTS[index];
        let by_client = self.client_tools[index]
            .as_ref()
            .is_none_or(|t| t.contains(&tool));
        let by_key = self.key_clients[index]
            .as_ref()
            .is_some_and(|t| t.iter().any(|n| n == "*" || n == tool));
        let by_include = self
            .include_clients
            .as_ref()
            .is_none_or(|c| c.contains(&client));
        let by_exclude = !self.exclude_tools.contains(&format!("{client}-{tool}"));
        by_client && by_key && by_include && by_exclude
    }

    fn config(&self) -> Value {
        let mcp_configs: Vec<Value> = PROP_CLIENTS
            .iter()
            .zip(&self.key_clients)
            .filter_map(|(client, tools)| {
                tools
                    .as_ref()
                    .map(|t| json!({"mcp_client_name": client, "tools_to_execute": t}))
            })
            .collect();
        json!({"governance": {"virtual_keys": [{"name": "prop", "value": "secret-key", "mcp_configs": mcp_configs}]}})
    }
}

async fn check(case: Case) {
    let manager = counting_manager_of(&PROP_CLIENTS).await;
    for (client, tools) in PROP_CLIENTS.iter().zip(&case.client_tools) {
        let mut config = ClientConfig::in_process(client).expect("name");
        config.tools_to_execute = tools
            .as_ref()
            .map(|t| t.iter().map(|s| s.to_string()).collect());
        manager.replace(client, config).await.expect("replaced");
    }
    let app = router(state(Arc::clone(&manager), case.config(), None).await);
    let include = case.include_clients.as_ref().map(|c| c.join(","));
    let mut headers = vec![("authorization", "Bearer secret-key")];
    if let Some(include) = &include {
        headers.push(("x-bf-mcp-include-clients", include.as_str()));
    }
    let mut script = String::from("import codemode\nran = []\n");
    for (index, client) in PROP_CLIENTS.iter().enumerate() {
        for tool in TOOLS {
            let before = received(client, tool);
            let mut body = tool_call(&format!("{client}-{tool}"));
            body["mcp-exclude-tools"] = json!(case.exclude_tools);
            let (status, answer) = send(&app, "POST", "/v1/mcp/tool/execute", &headers, body).await;
            let expected = case.allowed(index, tool);
            assert_eq!(
                status == StatusCode::OK,
                expected,
                "{client}-{tool} over HTTP: {answer} in {case:?}"
            );
            assert_eq!(
                received(client, tool) - before,
                usize::from(expected),
                "{client}-{tool} reached the tool"
            );
            script.push_str(&format!(
                "try:\n    codemode.call_tool('{client}', '{tool}')\n    ran.append('{client}-{tool}')\nexcept (PermissionError, codemode.ToolError):\n    pass\n"
            ));
        }
    }
    script.push_str("result = ran\n");
    let before: usize = PROP_CLIENTS
        .iter()
        .flat_map(|c| TOOLS.map(|t| received(c, t)))
        .sum();
    let body = json!({"code": script, "mcp-exclude-tools": case.exclude_tools});
    let (status, run) = send(&app, "POST", "/v1/code/execute", &headers, body).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let mut expected = Vec::new();
    for (index, client) in PROP_CLIENTS.iter().enumerate() {
        for tool in TOOLS.iter().filter(|t| case.allowed(index, t)) {
            expected.push(format!("{client}-{tool}"));
        }
    }
    assert_eq!(run["result"], json!(expected), "from a script in {case:?}");
    let after: usize = PROP_CLIENTS
        .iter()
        .flat_map(|c| TOOLS.map(|t| received(c, t)))
        .sum();
    assert_eq!(
        after - before,
        expected.len(),
        "only allowed calls reached the tools"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// A call runs if and only if client config, key and filters all allow it, over HTTP and
    /// from a script; a refused call never reaches the tool.
    #[test]
    fn a_call_runs_exactly_when_config_key_and_filters_allow_it(case in case()) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        // The counters are shared: cases must not overlap.
        let _serial = PROPERTY.lock().unwrap_or_else(|p| p.into_inner());
        runtime.block_on(check(case));
    }
}

static PROPERTY: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[tokio::test]
async fn keys_are_required_once_one_exists() {
    let manager = counting_manager().await;
    let config = json!({"governance": {"virtual_keys": [
        {"name": "on", "value": "good", "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["*"]}]},
        {"name": "off", "value": "disabled", "is_active": false, "mcp_configs": []}
    ]}});
    let app = router(state(manager, config, None).await);
    let call = tool_call("a-t1");
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, StatusCode, &str); 6] = [
        (&[], StatusCode::UNAUTHORIZED, "a virtual key is required"),
        (
            &[("authorization", "Bearer wrong")],
            StatusCode::UNAUTHORIZED,
            "the virtual key is not valid",
        ),
        (
            &[("x-bf-vk", "disabled")],
            StatusCode::UNAUTHORIZED,
            "the virtual key off is disabled",
        ),
        (
            &[("authorization", "Bearer good"), ("x-bf-vk", "other")],
            StatusCode::BAD_REQUEST,
            "Authorization and x-bf-vk carry different keys",
        ),
        (&[("x-bf-vk", "good")], StatusCode::OK, ""),
        (
            &[("authorization", "Bearer good"), ("x-bf-vk", "good")],
            StatusCode::OK,
            "",
        ),
    ];
    for (headers, status, message) in cases {
        let (got, body) = send(&app, "POST", "/v1/mcp/tool/execute", headers, call.clone()).await;
        assert_eq!(got, status, "{headers:?}: {body}");
        if status != StatusCode::OK {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message)),
                "{body}"
            );
        }
    }
    let (status, _) = send(&app, "GET", "/v1/mcp/tools", &[], Value::Null).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&app, "POST", "/v1/code/execute", &[], json!({"code": "1"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, tools) = send(
        &app,
        "GET",
        "/v1/mcp/tools",
        &[("x-bf-vk", "good")],
        Value::Null,
    )
    .await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names, ["a-t1", "a-t2", "a-t3"]);
}

#[tokio::test]
async fn a_forbidden_call_from_a_script_leaves_the_graph_unchanged() {
    let config = Config::parse(
        &json!({"mcp": {"client_configs": [stdio_client("memory", "server-memory", &[], &[])]}})
            .to_string(),
    )
    .expect("config");
    let manager = Arc::new(McpManager::start(&config.mcp).await);
    let keys = json!({"governance": {"virtual_keys": [{"name": "reader", "value": "r",
        "mcp_configs": [{"mcp_client_name": "memory", "tools_to_execute": ["read_graph"]}]}]}});
    let app = router(state(manager, keys, None).await);
    let code = "import codemode\n\
        entities = [{'name': 'x', 'entityType': 't', 'observations': []}]\n\
        try:\n    codemode.call_tool('memory', 'create_entities', entities=entities)\n    outcome = 'created'\n\
        except PermissionError as e:\n    outcome = str(e)\n\
        result = [outcome, codemode.call_tool('memory', 'read_graph')]";
    let (status, run) = send(
        &app,
        "POST",
        "/v1/code/execute",
        &[("x-bf-vk", "r")],
        json!({"code": code}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(
        run["result"][0],
        "memory.create_entities is not allowed for virtual key reader"
    );
    assert_eq!(run["result"][1], json!({"entities": [], "relations": []}));
}

#[tokio::test]
async fn the_manifest_names_no_tool_the_caller_may_not_use() {
    let app = router(state(counting_manager().await, json!({"governance": {"virtual_keys": [
        {"name": "one", "value": "one-key", "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["t1"]}]}]}}), None).await);
    let code = "try:\n    a.t2()\n    result = 'called'\nexcept AttributeError as e:\n    result = [str(e), dir(a)]";
    let (status, run) = send(
        &app,
        "POST",
        "/v1/code/execute",
        &[("x-bf-vk", "one-key")],
        json!({"code": code}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(
        run["result"],
        json!(["server a has no tool 't2'. Its tools: t1", ["t1"]]),
        "a withheld tool is as unknown as one that does not exist"
    );
}

#[tokio::test]
async fn a_key_sees_only_the_stubs_it_may_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut filesystem = stdio_client(
        "filesystem",
        "server-filesystem",
        &[&dir.path().display().to_string()],
        &[],
    );
    filesystem["is_code_mode_client"] = json!(true);
    let config = Config::parse(&json!({"mcp": {"client_configs": [filesystem]}}).to_string())
        .expect("config");
    let manager = Arc::new(McpManager::start(&config.mcp).await);
    let keys = json!({"governance": {"virtual_keys": [
        {"name": "narrow", "value": "n", "mcp_configs": [{"mcp_client_name": "filesystem", "tools_to_execute": ["list_allowed_directories"]}]},
        {"name": "wide", "value": "w", "mcp_configs": [{"mcp_client_name": "filesystem", "tools_to_execute": ["*"]}]}
    ]}});
    let app = router(state(manager, keys, None).await);
    let meta = |name: &str, arguments: Value| json!({"id": "m", "type": "function", "function": {"name": name, "arguments": arguments.to_string()}});
    let (_, narrow) = send(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        &[("x-bf-vk", "n")],
        meta("listToolFiles", json!({})),
    )
    .await;
    assert_eq!(
        narrow["content"],
        "servers/<name>.pyi (tools):\nfilesystem (1)\n"
    );
    let (_, file) = send(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        &[("x-bf-vk", "n")],
        meta("readToolFile", json!({"fileName": "filesystem"})),
    )
    .await;
    let text = file["content"].as_str().expect("text");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("def list_allowed_directories()"), "{text}");
    let (_, wide) = send(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        &[("x-bf-vk", "w")],
        meta("listToolFiles", json!({})),
    )
    .await;
    assert_eq!(
        wide["content"],
        "servers/<name>.pyi (tools):\nfilesystem (14)\n"
    );
}

/// A service with an audit log after four calls of key `auditor`: `a-t1` (allowed) and `a-t2`
/// (denied) over HTTP, then a script calling `a.t1` (allowed) and `b.t1` (denied); answers the
/// script's execution id.
async fn audited_calls() -> (tempfile::TempDir, axum::Router, String) {
    let db = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&db.path().join("audit.db")).expect("store");
    let manager = counting_manager().await;
    let keys = json!({"governance": {"virtual_keys": [{"name": "auditor", "value": "k",
        "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["t1"]}]}]}});
    let app = router(state(manager, keys, Some(store.clone())).await);
    let key = [("x-bf-vk", "k")];
    send(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        &key,
        tool_call("a-t1"),
    )
    .await;
    send(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        &key,
        tool_call("a-t2"),
    )
    .await;
    let code = "import codemode\ncodemode.call_tool('a', 't1')\ntry:\n    codemode.call_tool('b', 't1')\nexcept PermissionError:\n    pass";
    let (_, run) = send(
        &app,
        "POST",
        "/v1/code/execute",
        &key,
        json!({"code": code}),
    )
    .await;
    let parent = run["execution_id"]
        .as_str()
        .expect("an execution id")
        .to_string();

    (db, app, parent)
}

#[tokio::test]
async fn the_audit_log_records_allowed_and_denied_calls_with_parents() {
    let (_db, app, parent) = audited_calls().await;
    let (status, page) = send(&app, "GET", "/api/logs?vk=auditor", &[], Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 4);
    let rows: Vec<(String, String, String, Value)> = page["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .rev()
        .map(|r| {
            (
                format!(
                    "{}-{}",
                    r["client"].as_str().unwrap_or(""),
                    r["tool"].as_str().unwrap_or("")
                ),
                r["outcome"].as_str().unwrap_or("").into(),
                r["error_type"].as_str().unwrap_or("").into(),
                r["parent_execution_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("a-t1".into(), "ok".into(), "".into(), Value::Null),
            (
                "a-t2".into(),
                "denied".into(),
                "PermissionError".into(),
                Value::Null
            ),
            ("a-t1".into(), "ok".into(), "".into(), json!(parent)),
            (
                "b-t1".into(),
                "denied".into(),
                "PermissionError".into(),
                json!(parent)
            ),
        ]
    );
    let first = &page["logs"][0];
    assert_eq!(first["arg_bytes"], 2, "{{}} is two bytes");
    assert_eq!(first["arg_hash"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn audit_log_queries_filter_by_outcome_and_parent_and_page() {
    let (_db, app, parent) = audited_calls().await;
    let (_, denied) = send(
        &app,
        "GET",
        "/api/logs?outcome=denied&limit=1",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(
        (
            denied["total"].clone(),
            denied["logs"].as_array().map(Vec::len)
        ),
        (json!(2), Some(1))
    );
    let (_, code_calls) = send(
        &app,
        "GET",
        &format!("/api/logs?parent_execution_id={parent}"),
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(code_calls["total"], 2);
}

#[tokio::test]
async fn an_audit_log_query_with_a_bad_time_is_a_400() {
    let (_db, app, _) = audited_calls().await;
    let (status, bad) = send(&app, "GET", "/api/logs?since=yesterday", &[], Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
}

const ROOT: [(&str, &str); 1] = [("authorization", "Bearer root")];
const CI_BOT: [(&str, &str); 1] = [("x-bf-vk", "very-secret-value")];

/// The service with admin token `root` and a store at `path` (reopened: what an earlier
/// service stored is there).
async fn key_service(manager: &Arc<McpManager>, path: &std::path::Path) -> axum::Router {
    let admin = json!({"governance": {"admin_token": "root"}});
    let store = Store::open(path).expect("store");
    router(state(Arc::clone(manager), admin, Some(store)).await)
}

/// Creates key `ci-bot` (`very-secret-value`), allowed `a-t1` only; answers the status and body.
async fn create_ci_bot(app: &axum::Router) -> (StatusCode, Value) {
    let key = json!({"name": "ci-bot", "value": "very-secret-value", "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["t1"]}]});
    send(app, "POST", "/api/governance/virtual-keys", &ROOT, key).await
}

#[tokio::test]
async fn the_admin_token_guards_the_key_api() {
    let db = tempfile::tempdir().expect("temp dir");
    let app = key_service(&counting_manager().await, &db.path().join("keys.db")).await;
    let (status, _) = send(
        &app,
        "GET",
        "/api/governance/virtual-keys",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the admin token guards /api"
    );
}

#[tokio::test]
async fn a_key_is_created_once_and_listed_redacted() {
    let db = tempfile::tempdir().expect("temp dir");
    let app = key_service(&counting_manager().await, &db.path().join("keys.db")).await;
    let (status, body) = create_ci_bot(&app).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!("success")),
        "{body}"
    );
    let (status, _) = create_ci_bot(&app).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = send(
        &app,
        "POST",
        "/api/governance/virtual-keys",
        &ROOT,
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let list = list_keys(&app).await;
    assert_eq!(list["virtual_keys"][0]["value"], "<redacted>");
}

#[tokio::test]
async fn a_key_created_through_the_api_allows_only_its_tools() {
    let db = tempfile::tempdir().expect("temp dir");
    let app = key_service(&counting_manager().await, &db.path().join("keys.db")).await;
    create_ci_bot(&app).await;
    let status = call_as_ci_bot(&app, "a-t1").await;
    assert_eq!(status, StatusCode::OK);
    let status = call_as_ci_bot(&app, "a-t2").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Every key, as the API lists it.
async fn list_keys(app: &axum::Router) -> Value {
    send(
        app,
        "GET",
        "/api/governance/virtual-keys",
        &ROOT,
        Value::Null,
    )
    .await
    .1
}

/// The status of a call of `tool` with key `ci-bot`.
async fn call_as_ci_bot(app: &axum::Router, tool: &str) -> StatusCode {
    send(
        app,
        "POST",
        "/v1/mcp/tool/execute",
        &CI_BOT,
        tool_call(tool),
    )
    .await
    .0
}

/// Disables `ci-bot` through the API.
async fn disable_ci_bot(app: &axum::Router) {
    let edit = json!({"name": "ci-bot", "value": "very-secret-value", "is_active": false});
    let (status, _) = send(
        app,
        "PUT",
        "/api/governance/virtual-keys/ci-bot",
        &ROOT,
        edit,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_disabled_key_is_refused_and_an_unknown_one_is_not_found() {
    let db = tempfile::tempdir().expect("temp dir");
    let app = key_service(&counting_manager().await, &db.path().join("keys.db")).await;
    create_ci_bot(&app).await;
    disable_ci_bot(&app).await;
    let status = call_as_ci_bot(&app, "a-t1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "disabled");
    let (status, _) = send(
        &app,
        "DELETE",
        "/api/governance/virtual-keys/nobody",
        &ROOT,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn keys_are_stored_as_hashes_and_survive_a_restart() {
    let db = tempfile::tempdir().expect("temp dir");
    let path = db.path().join("keys.db");
    let manager = counting_manager().await;
    {
        let app = key_service(&manager, &path).await;
        create_ci_bot(&app).await;
        disable_ci_bot(&app).await;
    }
    let stored = std::fs::read(&path).expect("database");
    let text = String::from_utf8_lossy(&stored);
    assert!(
        !text.contains("very-secret-value"),
        "the key itself is never stored"
    );
    // After a restart the key is back, still disabled.
    let app = key_service(&manager, &path).await;
    let list = list_keys(&app).await;
    assert_eq!(list["virtual_keys"][0]["name"], "ci-bot");
    assert_eq!(list["virtual_keys"][0]["is_active"], false);
}

#[tokio::test]
async fn concurrent_changes_of_one_name_do_not_both_succeed() {
    let db = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&db.path().join("keys.db")).expect("store");
    let manager = Arc::new(McpManager::new(Default::default()));
    let app = router(state(manager, json!({}), Some(store)).await);
    for round in 0..20 {
        let name = format!("twin{round}");
        let key = |value: &str| json!({"name": name, "value": format!("{name}-{value}")});
        let (first, second) = tokio::join!(
            send(&app, "POST", "/api/governance/virtual-keys", &[], key("v1")),
            send(&app, "POST", "/api/governance/virtual-keys", &[], key("v2")),
        );
        let mut statuses = [first.0, second.0];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{round}");
        let client = json!({"name": name, "connection_type": "stdio",
            "stdio_config": {"command": "/nonexistent/server"}});
        let (first, second) = tokio::join!(
            send(&app, "POST", "/api/mcp/client", &[], client.clone()),
            send(&app, "POST", "/api/mcp/client", &[], client.clone()),
        );
        let mut statuses = [first.0, second.0];
        statuses.sort();
        // Added (and failing to start, 502) once; refused as a duplicate once.
        assert_eq!(
            statuses,
            [StatusCode::CONFLICT, StatusCode::BAD_GATEWAY],
            "{round}"
        );
    }
}

#[tokio::test]
async fn a_database_failure_is_a_generic_500_without_the_path() {
    let db = tempfile::tempdir().expect("temp dir");
    let path = db.path().join("broken.db");
    let store = Store::open(&path).expect("store");
    let manager = Arc::new(McpManager::new(Default::default()));
    let app = router(state(manager, json!({}), Some(store)).await);
    rusqlite::Connection::open(&path)
        .and_then(|c| c.execute_batch("DROP TABLE virtual_keys"))
        .expect("break the database");
    let key = json!({"name": "k", "value": "secret-value"});
    let (status, body) = send(&app, "POST", "/api/governance/virtual-keys", &[], key).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["type"], "internal_error");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        !message.contains("broken.db") && !message.contains("virtual_keys"),
        "{message}"
    );
}

/// Runs, as key `runner`, a script that calls `a.t1`, waits at `gate.wait` while the test
/// makes `change` to the key through the API, then calls `a.t1` again; answers the script's
/// result: what each call gave.
async fn script_across_a_key_change(change: (&str, &str, Value)) -> Value {
    let manager = counting_manager().await;
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let gate = {
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        InProcessTool::new("wait", "waits", json!({"type": "object"}), move |_| {
            let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
            async move {
                entered.notify_one();
                release.notified().await;
                Ok(json!("released"))
            }
        })
    };
    manager
        .add_in_process("gate", vec![gate])
        .await
        .expect("registered");
    let keys = json!({"governance": {"admin_token": "root", "virtual_keys": [{"name": "runner",
        "value": "run-key", "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["*"]},
        {"mcp_client_name": "gate", "tools_to_execute": ["*"]}]}]}});
    let app = router(state(manager, keys, None).await);
    let code = "import codemode\nfirst = codemode.call_tool('a', 't1')\ncodemode.call_tool('gate', 'wait')\n\
        try:\n    second = codemode.call_tool('a', 't1')\nexcept PermissionError:\n    second = 'PermissionError'\n\
        result = [first, second]";
    let run = tokio::spawn({
        let app = app.clone();
        async move {
            let key = [("x-bf-vk", "run-key")];
            send(
                &app,
                "POST",
                "/v1/code/execute",
                &key,
                json!({"code": code}),
            )
            .await
        }
    });
    entered.notified().await;
    let (method, path, body) = change;
    let (status, answer) = send(&app, method, path, &ROOT, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    release.notify_one();
    let (status, run) = run.await.expect("the run");
    assert_eq!(status, StatusCode::OK, "{run}");
    assert!(run["ok"].as_bool().unwrap_or(false), "{run}");
    run["result"].clone()
}

#[tokio::test]
async fn a_revoked_key_stops_working_inside_a_running_script() {
    let delete = ("DELETE", "/api/governance/virtual-keys/runner", Value::Null);
    assert_eq!(
        script_across_a_key_change(delete).await,
        json!(["ran", "PermissionError"])
    );
}

#[tokio::test]
async fn a_narrowed_key_is_narrowed_inside_a_running_script() {
    let narrowed = json!({"name": "runner", "value": "run-key", "mcp_configs": [
        {"mcp_client_name": "a", "tools_to_execute": ["t2"]},
        {"mcp_client_name": "gate", "tools_to_execute": ["*"]}]});
    let change = ("PUT", "/api/governance/virtual-keys/runner", narrowed);
    assert_eq!(
        script_across_a_key_change(change).await,
        json!(["ran", "PermissionError"])
    );
}

#[tokio::test]
async fn deleting_the_last_key_does_not_open_the_gateway() {
    let keys = json!({"governance": {"virtual_keys": [{"name": "only", "value": "only-key",
        "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["t1"]}]}]}});
    let app = router(state(counting_manager().await, keys, None).await);
    let (status, _) = send(
        &app,
        "DELETE",
        "/api/governance/virtual-keys/only",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(&app, "POST", "/v1/mcp/tool/execute", &[], tool_call("a-t2")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn a_key_added_through_the_api_makes_keys_required_for_good() {
    let db = tempfile::tempdir().expect("temp dir");
    let path = db.path().join("keys.db");
    let manager = counting_manager().await;
    {
        let app = router(
            state(
                Arc::clone(&manager),
                json!({}),
                Some(Store::open(&path).expect("store")),
            )
            .await,
        );
        let (status, _) = send(&app, "POST", "/v1/mcp/tool/execute", &[], tool_call("a-t1")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "nothing configured: open on this machine"
        );
        let key = json!({"name": "first", "value": "first-key"});
        send(&app, "POST", "/api/governance/virtual-keys", &[], key).await;
        send(
            &app,
            "DELETE",
            "/api/governance/virtual-keys/first",
            &[],
            Value::Null,
        )
        .await;
        let (status, _) = send(&app, "POST", "/v1/mcp/tool/execute", &[], tool_call("a-t1")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the key is gone, the requirement stays"
        );
    }
    // The store remembers that keys were configured.
    let app = router(state(manager, json!({}), Some(Store::open(&path).expect("store"))).await);
    let (status, _) = send(&app, "POST", "/v1/mcp/tool/execute", &[], tool_call("a-t1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_open_gateway_is_open_only_when_the_config_says_so() {
    let keys = |auth: Value| {
        json!({"governance": {"auth": auth, "admin_token": "root", "virtual_keys": [{"name": "k",
            "value": "k-key", "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["t1"]}]}]}})
    };
    let open = router(state(counting_manager().await, keys(json!("open")), None).await);
    let (status, _) = send(
        &open,
        "POST",
        "/v1/mcp/tool/execute",
        &[],
        tool_call("a-t2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "no key: what the clients allow");
    let key = [("x-bf-vk", "k-key")];
    let (status, _) = send(
        &open,
        "POST",
        "/v1/mcp/tool/execute",
        &key,
        tool_call("a-t2"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a key: its own permit");
    let required = router(state(counting_manager().await, keys(json!("required")), None).await);
    let (status, _) = send(
        &required,
        "POST",
        "/v1/mcp/tool/execute",
        &[],
        tool_call("a-t1"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let nothing = json!({"governance": {"auth": "required"}});
    let locked = router(state(counting_manager().await, nothing, None).await);
    let (status, _) = send(
        &locked,
        "POST",
        "/v1/mcp/tool/execute",
        &[],
        tool_call("a-t1"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "required with no key yet: nobody"
    );
}

#[tokio::test]
async fn huge_tool_names_do_not_grow_the_audit_log() {
    let db = tempfile::tempdir().expect("temp dir");
    let path = db.path().join("audit.db");
    let store = Store::open(&path).expect("store");
    let app = router(state(counting_manager().await, json!({}), Some(store)).await);
    let huge = format!("a-{}", "x".repeat(200_000));
    for _ in 0..50 {
        let (status, body) =
            send(&app, "POST", "/v1/mcp/tool/execute", &[], tool_call(&huge)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.len() < 1_000, "the name is not echoed whole");
    }
    let (status, _) = send(&app, "POST", "/v1/mcp/tool/execute", &[], tool_call("a-t1")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, logs) = send(&app, "GET", "/api/logs", &[], Value::Null).await;
    assert_eq!(logs["total"], 1, "only the real call is recorded");
    let written: u64 = std::fs::read_dir(db.path())
        .expect("database files")
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    assert!(written < 1 << 20, "{written} bytes on disk");
}

#[tokio::test]
async fn a_read_only_keys_denied_calls_cannot_flood_the_audit_log() {
    let db = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&db.path().join("audit.db")).expect("store");
    let keys = json!({"governance": {"virtual_keys": [{"name": "reader", "value": "r",
        "mcp_configs": [{"mcp_client_name": "a", "tools_to_execute": ["t1"]}]}]}});
    let app = router(state(counting_manager().await, keys, Some(store)).await);
    // One script makes 500 calls the key may not make: each is refused, and counted.
    let code = "import codemode\nfor _ in range(500):\n    try:\n        \
                codemode.call_tool('b', 't2')\n    except PermissionError:\n        pass";
    let (status, run) = send(
        &app,
        "POST",
        "/v1/code/execute",
        &[("x-bf-vk", "r")],
        json!({"code": code}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let calls = run["calls"].as_array().expect("call records");
    assert_eq!(calls.len(), 500);
    assert!(calls.iter().all(|c| c["error_type"] == "PermissionError"));
    let (_, logs) = send(
        &app,
        "GET",
        "/api/logs?vk=reader&limit=1000",
        &[],
        Value::Null,
    )
    .await;
    let records = logs["logs"].as_array().expect("records");
    let calls: u64 = records.iter().filter_map(|r| r["repeats"].as_u64()).sum();
    assert_eq!(calls, 500, "every refusal is counted: {logs}");
    assert!(
        records.len() <= codemode::observe::audit::DENIED_PER_MINUTE as usize + 5,
        "{} records for one caller's 500 refusals",
        records.len()
    );
}
