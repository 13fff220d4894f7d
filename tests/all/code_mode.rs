//! Code mode end to end: stubs of real servers, the meta-tools, `/v1/code/execute`, and scripts
//! whose calls cross into real MCP servers.

use std::sync::Arc;

use axum::http::StatusCode;
use codemode::config::Config;
use codemode::executor::ToolError;
use codemode::mcp::{InProcessTool, McpManager};
use codemode::server::router;
use serde_json::{Value, json};

use crate::support::python_client;
use crate::support::stdio_client;
use crate::support::{app_state, call};

/// filesystem (on `root`), memory and everything as code-mode clients, time as a direct one.
async fn code_mode_manager(root: &str) -> Arc<McpManager> {
    let mut clients = vec![
        stdio_client("filesystem", "server-filesystem", &[root], &[]),
        stdio_client("memory", "server-memory", &[], &[]),
        stdio_client("everything", "server-everything", &["stdio"], &[]),
    ];
    for client in &mut clients {
        client["is_code_mode_client"] = json!(true);
    }
    clients.push(python_client(
        "time",
        &["-m", "mcp_server_time", "--local-timezone", "UTC"],
    ));
    let config = Config::parse(&json!({"mcp": {"client_configs": clients}}).to_string())
        .expect("valid config");
    let manager = McpManager::start(&config.mcp).await;
    for client in manager.status().await {
        assert!(
            client.last_error.is_none(),
            "{}: {:?}",
            client.name,
            client.last_error
        );
    }
    Arc::new(manager)
}

fn meta_call(name: &str, arguments: Value) -> Value {
    json!({"id": "m1", "type": "function", "function": {"name": name, "arguments": arguments.to_string()}})
}

/// Runs `code` through `/v1/code/execute`; returns the run result.
async fn execute(app: &axum::Router, code: &str) -> Value {
    let (status, body) = call(app, "POST", "/v1/code/execute", json!({"code": code})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn stubs_and_docs_of_every_real_server_compile_in_the_sandbox() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manager = code_mode_manager(&dir.path().display().to_string()).await;
    // Every client listed, so every server's stubs are rendered.
    let registry: Vec<_> = manager
        .tools()
        .await
        .into_iter()
        .map(|mut c| {
            c.code_mode = true;
            c
        })
        .collect();
    let catalog = codemode_stubs::Catalog::build(
        &codemode::code_mode::server_specs(&registry, &codemode::policy::Permit::open()),
        codemode_stubs::BindingLevel::Server,
    );
    let mut sources = serde_json::Map::new();
    for file in catalog.files() {
        // A .pyi is read with typing's names in scope.
        let text = format!("from typing import Any, Literal\n{}", file.text);
        sources.insert(file.path.clone(), json!(text));
    }
    for server in &catalog.servers {
        for function in &server.functions {
            let docs = catalog.docs(&server.ident, &function.ident).expect("docs");
            let path = format!("docs/{}/{}", server.ident, function.ident);
            sources.insert(
                path,
                json!(format!("from typing import Any, Literal\n{docs}")),
            );
        }
    }
    let count = sources.len();
    assert!(count > 40, "{count} sources");
    let code = format!(
        "import json\nsources = json.loads({:?})\nfor path, text in sources.items():\n    \
         exec(compile(text, path, 'exec'), {{}})\nresult = len(sources)",
        Value::Object(sources).to_string()
    );
    let app = router(Arc::new(app_state(manager).await));
    let run = execute(&app, &code).await;
    assert_eq!(run["error"], Value::Null, "{}", run["error"]);
    assert_eq!(run["result"], json!(count));
}

/// The router over [`code_mode_manager`] in a fresh directory (kept alive with it).
async fn code_mode_app() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().expect("temp dir");
    let manager = code_mode_manager(&dir.path().display().to_string()).await;
    (dir, router(Arc::new(app_state(manager).await)))
}

/// The text a meta-tool answered through `/v1/mcp/tool/execute`.
async fn meta_text(app: &axum::Router, name: &str, arguments: Value) -> String {
    let (status, body) = call(
        app,
        "POST",
        "/v1/mcp/tool/execute",
        meta_call(name, arguments),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["content"].as_str().expect("text content").to_string()
}

#[tokio::test]
async fn code_mode_clients_leave_the_direct_list_and_the_meta_tools_join_it() {
    let (_dir, app) = code_mode_app().await;
    let (_, tools) = call(&app, "GET", "/v1/mcp/tools", Value::Null).await;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "time-get_current_time",
            "time-convert_time",
            "listToolFiles",
            "readToolFile",
            "getToolDocs",
            "executeToolCode"
        ]
    );
}

#[tokio::test]
async fn list_tool_files_lists_the_code_mode_servers_only() {
    let (_dir, app) = code_mode_app().await;
    let tree = meta_text(&app, "listToolFiles", json!({})).await;
    assert_eq!(
        tree,
        "servers/<name>.pyi (tools):\neverything (13), filesystem (14), memory (9)\n"
    );
    assert!(
        !tree.contains("time"),
        "direct clients are not listed: {tree}"
    );
}

#[tokio::test]
async fn read_tool_file_reads_stubs_by_any_spelling_and_line_range() {
    let (_dir, app) = code_mode_app().await;
    let read = |file: &str| json!({"fileName": file});
    let stubs = meta_text(&app, "readToolFile", read("SERVERS/Everything.PYI")).await;
    assert!(
        stubs.starts_with("# servers/everything.pyi (lines 1-"),
        "{stubs}"
    );
    assert!(
        stubs.contains("def get_sum(a: float, b: float): ...  # "),
        "{stubs}"
    );
    assert!(
        stubs.contains("def get_structured_content(location: Literal["),
        "{stubs}"
    );
    let range = json!({"fileName": "memory", "startLine": 3, "endLine": 3});
    let one = meta_text(&app, "readToolFile", range).await;
    assert_eq!(one.lines().count(), 2, "{one}");
    assert!(
        one.starts_with("# servers/memory.pyi (lines 3-3 of 9)\ndef "),
        "{one}"
    );
}

#[tokio::test]
async fn read_tool_file_refuses_dot_dot_and_names_the_files_that_exist() {
    let (_dir, app) = code_mode_app().await;
    let read = |file: &str| json!({"fileName": file});
    assert_eq!(
        meta_text(&app, "readToolFile", read("../memory")).await,
        "error: file names may not contain '..'"
    );
    assert!(
        meta_text(&app, "readToolFile", read("time"))
            .await
            .contains(
                "the files are: servers/everything.pyi, servers/filesystem.pyi, servers/memory.pyi"
            )
    );
}

#[tokio::test]
async fn get_tool_docs_documents_a_tool_or_names_the_ones_that_exist() {
    let (_dir, app) = code_mode_app().await;
    let docs = |server: &str, tool: &str| json!({"server": server, "tool": tool});
    let text = meta_text(
        &app,
        "getToolDocs",
        docs("everything", "get-structured-content"),
    )
    .await;
    assert!(text.contains("MCP name: get-structured-content"), "{text}");
    assert!(
        text.contains("Returns:\n        {temperature: float, conditions: str, humidity: float}"),
        "{text}"
    );
    assert!(
        text.contains("everything.get_structured_content(location="),
        "{text}"
    );
    assert!(
        meta_text(&app, "getToolDocs", docs("memory", "forget"))
            .await
            .starts_with(
                "error: server memory has no tool \"forget\"; its tools are: create_entities,"
            )
    );
}

#[tokio::test]
async fn meta_tool_arguments_of_the_wrong_shape_are_invalid_arguments() {
    let (_dir, app) = code_mode_app().await;
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        meta_call("readToolFile", json!({"file": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["type"], "invalid_arguments");
}

#[tokio::test]
async fn one_script_uses_three_real_servers() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("notes.txt"), "hello from disk").expect("write");
    let root = dir.path().display().to_string();
    let manager = code_mode_manager(&root).await;
    let app = router(Arc::new(app_state(manager).await));
    let code = format!(
        "from servers import memory\n\
         text = filesystem.read_text_file(path={path:?})\n\
         memory.create_entities(entities=[{{'name': 'note', 'entityType': 'file', 'observations': [str(text)]}}])\n\
         graph = memory.read_graph()\n\
         total = everything.get_sum(20, 22)\n\
         print('stored', len(graph['entities']))\n\
         result = {{'text': text, 'entities': [e['name'] for e in graph['entities']], 'sum': total}}",
        path = format!("{root}/notes.txt")
    );
    let run = execute(&app, &code).await;
    assert_eq!(run["ok"], true, "{}", run["error"]);
    assert_eq!(run["result"]["entities"], json!(["note"]));
    assert_eq!(run["result"]["sum"], "The sum of 20 and 22 is 42.");
    assert!(
        run["result"]["text"]
            .to_string()
            .contains("hello from disk")
    );
    assert_eq!(run["stdout"], "stored 1\n");
    let calls: Vec<(&str, &str)> = run["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| {
            (
                c["client"].as_str().unwrap_or(""),
                c["tool"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("filesystem", "read_text_file"),
            ("memory", "create_entities"),
            ("memory", "read_graph"),
            ("everything", "get-sum")
        ]
    );
    assert!(run["stats"]["wall_ms"].as_f64().is_some_and(|ms| ms > 0.0));

    // The same through executeToolCode: a compact answer for the model.
    let (status, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        meta_call("executeToolCode", json!({"code": code})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = body["content"].as_str().expect("text");
    assert!(
        answer.starts_with("ok\noutput:\nstored 1\nresult: {"),
        "{answer}"
    );
    for line in [
        "  filesystem.read_text_file ok ",
        "  memory.create_entities ok ",
        "  everything.get_sum ok ",
    ] {
        assert!(answer.contains(line), "{line} in {answer}");
    }
    assert!(
        !answer.contains("Entity with name"),
        "no raw tool responses: {answer}"
    );
}

#[tokio::test]
async fn tool_failures_raise_the_documented_exceptions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manager = code_mode_manager(&dir.path().display().to_string()).await;
    let app = router(Arc::new(app_state(manager).await));
    let code = r#"
import codemode
caught = {}
try:
    filesystem.read_text_file(path="/definitely/not/allowed.txt")
except codemode.ToolError as e:
    caught["isError"] = [type(e).__name__, e.server, e.tool]
try:
    everything.no_such_tool()
except AttributeError as e:
    caught["unknown"] = str(e)
try:
    everything.get_sum(a=1)
except TypeError as e:
    caught["missing"] = str(e)
try:
    everything.get_sum(a="x", b=1)
except codemode.ToolError as e:
    caught["bad_type"] = type(e).__name__
try:
    everything.get_sum(1, 2, 3)
except TypeError as e:
    caught["too_many"] = str(e)
result = caught
"#;
    let run = execute(&app, code).await;
    assert_eq!(run["ok"], true, "{}", run["error"]);
    let caught = &run["result"];
    assert_eq!(
        caught["isError"],
        json!(["ToolError", "filesystem", "read_text_file"])
    );
    let unknown = caught["unknown"].as_str().expect("message");
    assert!(
        unknown.starts_with("server everything has no tool 'no_such_tool'."),
        "{unknown}"
    );
    assert!(
        unknown.contains("Its tools: echo, get_annotated_message"),
        "{unknown}"
    );
    assert_eq!(
        caught["missing"],
        "everything.get_sum() missing required argument 'b'"
    );
    assert_eq!(caught["bad_type"], "ToolError");
    assert_eq!(
        caught["too_many"],
        "everything.get_sum() takes 2 positional arguments but 3 were given"
    );

    // An uncaught error reaches the model with its line and a hint.
    let (_, body) = call(
        &app,
        "POST",
        "/v1/mcp/tool/execute",
        meta_call(
            "executeToolCode",
            json!({"code": "x = 1\nfs.read_text_file(path='a')"}),
        ),
    )
    .await;
    let answer = body["content"].as_str().expect("text");
    assert_eq!(
        answer,
        "error: NameError: name 'fs' is not defined (line 2)\nhint: servers are globals: everything, filesystem, memory, time\n"
    );
}

/// An in-process tool that kills a process and returns once it has exited.
fn killer() -> InProcessTool {
    InProcessTool::new(
        "kill",
        "Kills the process with this id.",
        json!({"type": "object", "properties": {"pid": {"type": "integer"}}, "required": ["pid"]}),
        |arguments: Value| async move {
            let pid = arguments["pid"].as_u64().unwrap_or(0);
            let status = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            if !status.is_ok_and(|s| s.success()) {
                return Err(ToolError::Failed(format!("cannot kill {pid}")));
            }
            // Until the kernel has torn it down (gone, or a zombie), its pipes may still be open.
            let stat = format!("/proc/{pid}/stat");
            while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
                tokio::task::yield_now().await;
            }
            Ok(json!("killed"))
        },
    )
}

#[tokio::test]
async fn an_upstream_killed_mid_script_raises_tool_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manager = code_mode_manager(&dir.path().display().to_string()).await;
    manager
        .add_in_process("chaos", vec![killer()])
        .await
        .expect("registered");
    let pid = manager
        .status()
        .await
        .into_iter()
        .find(|c| c.name == "everything")
        .and_then(|c| c.pid)
        .expect("a stdio pid");
    let app = router(Arc::new(app_state(manager).await));
    let code = format!(
        "import codemode\n\
         first = everything.echo(message='before')\n\
         chaos.kill(pid={pid})\n\
         try:\n    everything.echo(message='after')\n    second = 'answered'\n\
         except codemode.ToolUnavailableError as e:\n    second = [type(e).__name__, isinstance(e, codemode.ToolError), e.server]\n\
         result = [first, second]"
    );
    let run = execute(&app, &code).await;
    assert_eq!(run["ok"], true, "{}", run["error"]);
    assert_eq!(
        run["result"],
        json!(["Echo: before", ["ToolUnavailableError", true, "everything"]])
    );
}

#[tokio::test]
async fn real_calls_fan_out_concurrently() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manager = code_mode_manager(&dir.path().display().to_string()).await;
    let app = router(Arc::new(app_state(manager).await));
    let code = "import asyncio\n\
        async def main():\n    \
            return await asyncio.gather(*[everything.trigger_long_running_operation_async(duration=0.3, steps=1) for _ in range(3)])\n\
        result = asyncio.run(main())";
    let run = execute(&app, code).await;
    assert_eq!(run["ok"], true, "{}", run["error"]);
    assert_eq!(run["result"].as_array().map(Vec::len), Some(3));
    let calls = run["calls"].as_array().expect("calls");
    // Every call started before the first one answered: they were in flight together.
    let first_end =
        calls[0]["started_ms"].as_f64().unwrap() + calls[0]["duration_ms"].as_f64().unwrap();
    for call in calls {
        assert!(
            call["started_ms"].as_f64().unwrap() < first_end,
            "{calls:?}"
        );
    }
}

#[tokio::test]
async fn bad_code_requests_are_refused_with_the_reason() {
    let manager = Arc::new(McpManager::new(Default::default()));
    let app = router(Arc::new(app_state(manager).await));
    let cases = [
        (json!({}), "missing field `code`"),
        (json!({"code": "  "}), "code: must not be empty"),
        (
            json!({"code": "x" .repeat(2 << 20)}),
            "code: the script is 2097152 bytes, over the limit of 1048576",
        ),
        (
            json!({"code": "1", "limits": {"timeout_ms": 10_000_000}}),
            "limits: timeout_ms = 10000000 is above the server's maximum of",
        ),
        (
            json!({"code": "1", "limits": {"cpu": 1}}),
            "limits.cpu: unknown field `cpu`",
        ),
        (
            json!({"code": 1}),
            "code: invalid type: integer `1`, expected a string",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = call(&app, "POST", "/v1/code/execute", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["type"], "invalid_request");
        let text = answer["error"]["message"].as_str().expect("message");
        assert!(
            text.starts_with(message),
            "{text} should start with {message}"
        );
    }
    let (status, answer) = call(
        &app,
        "POST",
        "/v1/code/execute",
        json!({"code": "x".repeat(5 << 20)}),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["type"], "request_too_large");
    let run = execute(&app, "result = 6 * 7").await;
    assert_eq!(run["result"], 42);
    let (_, run) = call(
        &app,
        "POST",
        "/v1/code/execute",
        json!({"code": "1/0", "limits": {"timeout_ms": 5000}}),
    )
    .await;
    assert_eq!(run["ok"], false);
    assert_eq!(run["error"]["type"], "ZeroDivisionError");
}

/// An in-process tool that answers with the arguments it received.
fn echo_arguments() -> InProcessTool {
    InProcessTool::new(
        "convert-units",
        "Converts a value.",
        json!({"type": "object", "properties": {
            "value": {"type": "number"},
            "from": {"type": "string"},
            "to": {"type": "string"},
            "precision": {"type": "integer"}
        }, "required": ["value", "from"]}),
        |arguments: Value| async move { Ok(arguments) },
    )
}

#[tokio::test]
async fn bound_tools_take_stub_names_tool_names_and_positions() {
    let manager = Arc::new(McpManager::new(Default::default()));
    manager
        .add_in_process("units", vec![echo_arguments()])
        .await
        .expect("registered");
    let app = router(Arc::new(app_state(manager).await));
    let code = r#"
import servers.units
a = units.convert_units(1.5, "km", to="mi")
b = getattr(units, "convert-units")(value=2, from_="m", precision=None)
c = units.convert_units(**{"value": 3, "from": "g"})
d = units.convert_units_async(4, "s").result()
try:
    units.convert_units(1, "a", colour="red")
except TypeError as e:
    err = str(e)
result = [a, b, c, d, err, dir(servers.units), repr(units.convert_units)]
"#;
    let run = execute(&app, code).await;
    assert_eq!(run["ok"], true, "{}", run["error"]);
    assert_eq!(
        run["result"],
        json!([
            {"value": 1.5, "from": "km", "to": "mi"},
            {"value": 2, "from": "m"},
            {"value": 3, "from": "g"},
            {"value": 4, "from": "s"},
            "units.convert_units() got an unexpected keyword argument 'colour'; its parameters: value, from_, to, precision",
            ["convert_units"],
            "<tool units.convert_units>"
        ])
    );
}
