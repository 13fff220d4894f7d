//! What crosses the guest boundary, named once.
//!
//! Host and guest exchange UTF-8 JSON through the `codemode` host module (`executor/host.rs`):
//!
//! | direction | message | shape |
//! |---|---|---|
//! | guest → host | a tool request | three buffers: the client's and the tool's name (UTF-8) and the arguments (a JSON object, or empty for none) |
//! | host → guest | a tool response | [`ToolResponse`]: `{"ok": value}` or `{"error": {"type", "message", "limit"?, "allowed"?, "observed"?, "authorize_url"?}}` |
//! | guest → host | the run's outcome | [`GuestOutcome`]: `{"ok", "result", "error": {"type", "message", "line", "traceback", "limit"?}, "oversized_result"?}` |
//! | guest → host | a panic message | UTF-8, just before the guest aborts |
//! | host → guest | the bindings manifest | one line per server, `<python name>\t<client>\t<tools as JSON>`, written by [`codemode_stubs::Catalog::manifest`] |
//!
//! The closed vocabularies are enums: [`ErrorKind`] (the `type` of an error, spelled as the
//! Python exception the script receives) and [`LimitKind`] (the `limit` that fired, spelled as
//! the limit's field). The guest spells them in `sandbox/python/_protocol.py`; a test below
//! keeps the two lists equal.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// The kind of a failure the host reports: the Python exception the script receives, the
/// `error.type` of a run that ended on the host's account, and the `error_type` of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The tool failed upstream (`isError`, a JSON-RPC error), or names nothing.
    ToolError,
    /// The tool did not answer in time (a `ToolError` and a `TimeoutError`).
    ToolTimeoutError,
    /// The tool's server is not connected (a `ToolError` and a `ConnectionError`).
    ToolUnavailableError,
    /// The caller may not use the tool; the server never saw the call.
    PermissionError,
    /// The arguments do not fit the tool.
    TypeError,
    /// A size or count limit fired; `limit` names it.
    LimitExceeded,
    /// The run's wall-clock limit fired.
    TimeoutError,
    /// The run's memory limit fired.
    MemoryError,
    /// The run used up its stack.
    RecursionError,
    /// A call the script started and never collected, stopped with the run (records only).
    Cancelled,
    /// codemode itself failed; never the script's doing.
    InternalError,
    /// The server needs the caller's own OAuth authorization first (a `ToolError`);
    /// `authorize_url` starts it.
    AuthRequiredError,
}

impl ErrorKind {
    /// Every kind but `Cancelled` (which only records carry), in the order `_protocol.py`
    /// lists them.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::ToolError,
        ErrorKind::ToolTimeoutError,
        ErrorKind::ToolUnavailableError,
        ErrorKind::PermissionError,
        ErrorKind::TypeError,
        ErrorKind::LimitExceeded,
        ErrorKind::TimeoutError,
        ErrorKind::MemoryError,
        ErrorKind::RecursionError,
        ErrorKind::InternalError,
        ErrorKind::AuthRequiredError,
    ];

    /// The Python name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ToolError => "ToolError",
            ErrorKind::ToolTimeoutError => "ToolTimeoutError",
            ErrorKind::ToolUnavailableError => "ToolUnavailableError",
            ErrorKind::PermissionError => "PermissionError",
            ErrorKind::TypeError => "TypeError",
            ErrorKind::LimitExceeded => "LimitExceeded",
            ErrorKind::TimeoutError => "TimeoutError",
            ErrorKind::MemoryError => "MemoryError",
            ErrorKind::RecursionError => "RecursionError",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::InternalError => "InternalError",
            ErrorKind::AuthRequiredError => "AuthRequiredError",
        }
    }

    /// The kind named `name`, if it is one.
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .chain([ErrorKind::Cancelled])
            .find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit of one run, by its field name in `limits` (see `docs/limits.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Wall-clock time.
    TimeoutMs,
    /// Linear memory.
    MemoryMb,
    /// Captured stdout and stderr.
    MaxOutputBytes,
    /// The script's result, as JSON.
    MaxResultBytes,
    /// Tool calls started.
    MaxToolCalls,
    /// One tool request.
    MaxToolArgBytes,
    /// One tool result.
    MaxToolResultBytes,
    /// The wasm stack (a server-wide setting).
    WasmStack,
}

impl LimitKind {
    /// Every limit, in the order `_protocol.py` lists them.
    pub const ALL: [LimitKind; 8] = [
        LimitKind::TimeoutMs,
        LimitKind::MemoryMb,
        LimitKind::MaxOutputBytes,
        LimitKind::MaxResultBytes,
        LimitKind::MaxToolCalls,
        LimitKind::MaxToolArgBytes,
        LimitKind::MaxToolResultBytes,
        LimitKind::WasmStack,
    ];

    /// The field name.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::TimeoutMs => "timeout_ms",
            LimitKind::MemoryMb => "memory_mb",
            LimitKind::MaxOutputBytes => "max_output_bytes",
            LimitKind::MaxResultBytes => "max_result_bytes",
            LimitKind::MaxToolCalls => "max_tool_calls",
            LimitKind::MaxToolArgBytes => "max_tool_arg_bytes",
            LimitKind::MaxToolResultBytes => "max_tool_result_bytes",
            LimitKind::WasmStack => "wasm_stack",
        }
    }

    /// The limit named `name`, if it is one.
    pub fn parse(name: &str) -> Option<LimitKind> {
        LimitKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tool response, as the guest reads it from `tool_read`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolResponse {
    /// The tool's value.
    Ok(Value),
    /// Why there is none.
    Error(ToolFailure),
}

/// A failed tool call, as the guest receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolFailure {
    /// The exception the script receives.
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    /// Its message, written for the model.
    pub message: String,
    /// For `LimitExceeded`: the limit, what it allows and what was seen.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitFired>,
    /// For `AuthRequiredError`: where the caller authorizes the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
}

/// A limit that fired on one call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LimitFired {
    /// The limit.
    pub limit: LimitKind,
    /// What it allows.
    pub allowed: u64,
    /// What the call came to.
    pub observed: u64,
}

impl ToolResponse {
    /// A failure of `kind` saying `message`.
    pub fn failure(kind: ErrorKind, message: String) -> ToolResponse {
        ToolResponse::Error(ToolFailure {
            kind,
            message,
            limit: None,
            authorize_url: None,
        })
    }

    /// A `LimitExceeded` failure: `limit` allows `allowed`, the call came to `observed`.
    pub fn limit(message: String, limit: LimitKind, allowed: u64, observed: u64) -> ToolResponse {
        ToolResponse::Error(ToolFailure {
            kind: ErrorKind::LimitExceeded,
            message,
            limit: Some(LimitFired {
                limit,
                allowed,
                observed,
            }),
            authorize_url: None,
        })
    }

    /// The kind of failure, `None` for a value.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            ToolResponse::Ok(_) => None,
            ToolResponse::Error(failure) => Some(failure.kind),
        }
    }
}

/// `{"ok": value}` as bytes, without copying `value` into a [`ToolResponse`] first.
pub fn encode_ok(value: &Value) -> Vec<u8> {
    #[derive(Serialize)]
    struct Answer<'a> {
        ok: &'a Value,
    }
    // A `Value` always serialises.
    serde_json::to_vec(&Answer { ok: value }).unwrap_or_default()
}

/// What the guest's runner reports at the end of a run (see `sandbox/src/runner.rs`). It is
/// written by native code the script cannot reach; still, every fact about limits in it is
/// checked against what the host saw (see `executor/run.rs`).
#[derive(Debug, Deserialize)]
pub struct GuestOutcome {
    /// True when the script ran to the end.
    pub ok: bool,
    /// Its result, as JSON text exactly as the guest wrote it (the host measures it).
    #[serde(default)]
    pub result: Option<Box<RawValue>>,
    /// Why it failed.
    pub error: Option<GuestError>,
    /// Set instead of `result` when the result's JSON passed `max_result_bytes`: the bytes the
    /// guest wrote before it stopped.
    #[serde(default)]
    pub oversized_result: Option<u64>,
}

/// A failed run, as the guest reports it.
#[derive(Debug, Deserialize)]
pub struct GuestError {
    /// The exception's type name: any Python name, not only an [`ErrorKind`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Its message.
    pub message: String,
    /// The script's line, when known.
    pub line: Option<u32>,
    /// The traceback, from the script's frames.
    #[serde(default)]
    pub traceback: String,
    /// The limit a `LimitExceeded` names; a name that is no limit (a script may raise
    /// `LimitExceeded` itself) is none.
    #[serde(default, deserialize_with = "known_limit")]
    pub limit: Option<LimitKind>,
}

fn known_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<LimitKind>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(value.as_str().and_then(LimitKind::parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guest's names: `NAME = "value"` lines of `_protocol.py`, by the list they belong to.
    fn guest_names(list: &str) -> Vec<String> {
        let source = include_str!("../../sandbox/python/_protocol.py");
        let start = format!("{list} = (");
        let Some(body) = source.split(&start).nth(1) else {
            return Vec::new();
        };
        body.split(')')
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|name| name.trim().trim_matches('"').to_string())
            .filter(|name| !name.is_empty())
            .collect()
    }

    #[test]
    fn the_guest_spells_every_kind_and_limit_as_the_host_does() {
        let kinds: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(guest_names("ERROR_KINDS"), kinds);
        let limits: Vec<&str> = LimitKind::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(guest_names("LIMITS"), limits);
    }

    #[test]
    fn responses_have_the_shapes_the_guest_reads() {
        let ok = serde_json::to_value(ToolResponse::Ok(serde_json::json!([1]))).ok();
        assert_eq!(ok, Some(serde_json::json!({"ok": [1]})));
        let limit = ToolResponse::limit("too big".into(), LimitKind::MaxToolArgBytes, 10, 20);
        assert_eq!(
            serde_json::to_value(limit).ok(),
            Some(
                serde_json::json!({"error": {"type": "LimitExceeded", "message": "too big",
                "limit": "max_tool_arg_bytes", "allowed": 10, "observed": 20}})
            )
        );
        let denied = ToolResponse::failure(ErrorKind::PermissionError, "no".into());
        assert_eq!(
            serde_json::to_value(denied).ok(),
            Some(serde_json::json!({"error": {"type": "PermissionError", "message": "no"}}))
        );
    }
}
