//! `codemode run`: one script in the sandbox; its output, then the run result as JSON.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use codemode::app::{App, StoreChoice};
use codemode::executor::{LimitOverrides, NoTools, RunResult, ToolDispatcher};
use codemode::policy::Permit;
use serde_json::json;

use super::{Failure, load_config};

/// Runs the script at `script` (`-`: stdin) under `requested` limits; with `config`, its
/// clients' tools are callable.
pub async fn run_script(
    script: &Path,
    requested: LimitOverrides,
    config: Option<&Path>,
) -> Result<(), Failure> {
    let code = read_script(script)?;
    let has_config = config.is_some();
    let config = config.map(load_config).transpose()?.unwrap_or_default();
    // Flags win over the file's `sandbox` section, which wins over the built-in defaults.
    let overrides = requested.or(&config.sandbox.limits);
    let app = App::build(&config, StoreChoice::None).await?;
    let executor = app.gateway.code_mode().executor();
    let limits = executor
        .config()
        .limits
        .resolve(&overrides)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    // The operator's own command line: every configured tool, as an open permit allows.
    let tools: Arc<dyn ToolDispatcher> = if has_config {
        app.gateway.script_calls(Permit::open())
    } else {
        Arc::new(NoTools)
    };
    let result = executor
        .execute(&code, &limits, tools)
        .await
        .map_err(|e| Failure::Internal(e.to_string()));
    app.shutdown().await;
    let result = result?;
    print_result(&result);
    match &result.error {
        None => Ok(()),
        Some(error) => {
            let line = error
                .line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            let message = format!("{}: {}{line}", error.kind, error.message);
            Err(if error.limit.is_some() {
                Failure::Limit(message)
            } else {
                Failure::Script(message)
            })
        }
    }
}

pub fn read_script(script: &Path) -> Result<String, Failure> {
    if script.as_os_str() == "-" {
        let mut code = String::new();
        std::io::stdin()
            .read_to_string(&mut code)
            .map_err(|e| Failure::Usage(format!("cannot read the script from stdin: {e}")))?;
        return Ok(code);
    }
    std::fs::read_to_string(script)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", script.display())))
}

/// The script's own output first, then everything else about the run as one JSON document.
fn print_result(result: &RunResult) {
    print!("{}", result.stdout);
    eprint!("{}", result.stderr);
    let summary = json!({
        "ok": result.ok,
        "result": result.result,
        "error": result.error,
        "calls": result.calls,
        "stats": result.stats,
    });
    println!("{summary}");
}
