//! The answer of `executeToolCode` for a model: compact, and never the raw tool responses.
//!
//! ```text
//! error: NameError: name 'fs' is not defined (line 2)
//! hint: servers are globals: filesystem, memory
//! output:
//! reading...
//! result: {"files": 3}
//! calls:
//!   filesystem.list_directory ok 3.1 ms 1.2 KB
//! ```
//! Output and result are capped, so one answer cannot flood the model's context; the per-call
//! lines say what ran without repeating what it returned.

use codemode_stubs::Catalog;

use crate::executor::{CallRecord, RunError, RunResult};

/// Most characters of printed output shown to the model (stdout and stderr each).
pub const MAX_OUTPUT_CHARS: usize = 4_000;
/// Most characters of the result's JSON shown to the model.
pub const MAX_RESULT_CHARS: usize = 8_000;

/// The model's view of `result`; `catalog` gives the Python names of servers and tools.
pub fn model_answer(result: &RunResult, catalog: &Catalog) -> String {
    let mut answer = String::new();
    match &result.error {
        None => answer.push_str("ok\n"),
        Some(error) => {
            answer.push_str(&error_line(error));
            if let Some(hint) = hint(error, catalog) {
                answer.push_str(&format!("hint: {hint}\n"));
            }
        }
    }
    for (label, text) in [("output", &result.stdout), ("stderr", &result.stderr)] {
        if !text.is_empty() {
            answer.push_str(&format!("{label}:\n{}", capped(text, MAX_OUTPUT_CHARS)));
            if !answer.ends_with('\n') {
                answer.push('\n');
            }
        }
    }
    if result.error.is_none() {
        let json = result.result.to_string();
        answer.push_str(&format!("result: {}\n", capped(&json, MAX_RESULT_CHARS)));
    }
    if !result.calls.is_empty() {
        answer.push_str("calls:\n");
        for call in &result.calls {
            answer.push_str(&format!("  {}\n", call_line(call, catalog)));
        }
    }
    answer
}

fn error_line(error: &RunError) -> String {
    let line = error
        .line
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    format!("error: {}: {}{line}\n", error.kind, error.message)
}

/// What to do next, for errors where the message alone does not say.
fn hint(error: &RunError, catalog: &Catalog) -> Option<String> {
    let servers = || {
        let names: Vec<&str> = catalog.servers.iter().map(|s| s.ident.as_str()).collect();
        format!("servers are globals: {}", names.join(", "))
    };
    Some(match error.kind.as_str() {
        "NameError" => servers(),
        "ModuleNotFoundError" | "ImportError" if error.message.contains("servers") => servers(),
        "TypeError" if error.message.contains("argument") => {
            "getToolDocs shows a tool's parameters".into()
        }
        "PermissionError" => "that tool is not allowed for this caller".into(),
        "ToolError" => "the tool reported an error; getToolDocs shows its parameters".into(),
        "ToolUnavailableError" => "the server is not connected right now; try again later".into(),
        "TimeoutError" if error.limit.is_some() => {
            "the script ran out of time; run independent calls together with asyncio.gather".into()
        }
        "MemoryError" => "the script ran out of memory; work on smaller pieces".into(),
        "SyntaxError" | "IndentationError" => "the code must be valid Python 3".into(),
        _ => return None,
    })
}

fn call_line(call: &CallRecord, catalog: &Catalog) -> String {
    let server = catalog.servers.iter().find(|s| s.name == call.client);
    let client = server.map_or(call.client.as_str(), |s| s.ident.as_str());
    let tool = server
        .and_then(|s| s.functions.iter().find(|f| f.name == call.tool))
        .map_or(call.tool.as_str(), |f| f.ident.as_str());
    let outcome = match (&call.ok, &call.error_type) {
        (true, _) => "ok".to_string(),
        (false, Some(kind)) => kind.to_string(),
        (false, None) => "failed".to_string(),
    };
    format!(
        "{client}.{tool} {outcome} {:.1} ms {}",
        call.duration_ms,
        size(call.response_bytes)
    )
}

fn size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}

/// `text` cut to `max` characters, saying how much was left out.
fn capped(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}\n[... {} more characters not shown]\n", count - max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::RunStats;
    use codemode_stubs::{BindingLevel, ServerSpec, ToolSpec};
    use serde_json::json;

    fn catalog() -> Catalog {
        let tool = ToolSpec {
            name: "get-sum".into(),
            title: None,
            description: None,
            input_schema: json!({}),
            output_schema: None,
        };
        Catalog::build(
            &[ServerSpec {
                name: "every-thing".into(),
                listed: true,
                tools: vec![tool],
            }],
            BindingLevel::Server,
        )
    }

    fn run(error: Option<RunError>, stdout: &str) -> RunResult {
        RunResult {
            ok: error.is_none(),
            result: json!({"n": 1}),
            stdout: stdout.into(),
            stderr: String::new(),
            error,
            calls: vec![CallRecord {
                client: "every-thing".into(),
                tool: "get-sum".into(),
                ok: true,
                error_type: None,
                started_ms: 0.5,
                duration_ms: 3.125,
                request_bytes: 10,
                response_bytes: 2048,
            }],
            stats: RunStats {
                wall_ms: 1.0,
                peak_memory_bytes: 0,
                output_bytes: 0,
                output_truncated: false,
            },
        }
    }

    #[test]
    fn a_success_shows_output_result_and_one_line_per_call() {
        assert_eq!(
            model_answer(&run(None, "hi\n"), &catalog()),
            "ok\noutput:\nhi\nresult: {\"n\":1}\ncalls:\n  every_thing.get_sum ok 3.1 ms 2.0 KB\n"
        );
    }

    #[test]
    fn an_error_has_its_line_and_a_hint() {
        let error = RunError {
            kind: "NameError".into(),
            message: "name 'fs' is not defined".into(),
            line: Some(2),
            traceback: String::new(),
            limit: None,
        };
        let answer = model_answer(&run(Some(error), ""), &catalog());
        assert!(answer.starts_with(
            "error: NameError: name 'fs' is not defined (line 2)\nhint: servers are globals: every_thing\n"
        ), "{answer}");
        assert!(!answer.contains("result:"), "{answer}");
    }

    #[test]
    fn long_output_is_capped() {
        let answer = model_answer(&run(None, &"x".repeat(MAX_OUTPUT_CHARS + 10)), &catalog());
        assert!(
            answer.contains("[... 10 more characters not shown]"),
            "{answer}"
        );
    }
}
