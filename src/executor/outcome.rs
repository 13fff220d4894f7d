//! What an execution produces: [`RunResult`] and its parts.
//!
//! The same structure is printed by `codemode run`, returned by `/v1/code/execute` and condensed
//! for models by the code-mode layer, so it is plain serde data.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::protocol::{ErrorKind, LimitKind};

/// The outcome of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// True when the script ran to the end without an uncaught exception or a limit.
    pub ok: bool,
    /// The script's top-level `result` variable, else the value of its last expression
    /// statement, as JSON (`null` when neither exists or the run failed).
    pub result: Value,
    /// Captured standard output (capped; a marker line notes what was dropped).
    pub stdout: String,
    /// Captured standard error (shares the output cap with stdout).
    pub stderr: String,
    /// Why the run failed, when it did.
    pub error: Option<RunError>,
    /// One record per tool call, in the order the calls were started.
    pub calls: Vec<CallRecord>,
    /// Resource usage.
    pub stats: RunStats,
}

/// A failed run: an uncaught Python exception or a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    /// The exception type: a Python name (`ZeroDivisionError`) or one of the limit errors
    /// `TimeoutError`, `MemoryError`, `RecursionError`, `LimitExceeded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The exception message.
    pub message: String,
    /// Line of the user's script where it was raised, when known.
    pub line: Option<u32>,
    /// The Python traceback, starting at the user's script.
    pub traceback: String,
    /// The limit that ended the run (`timeout_ms`, `memory_mb`, ...), when one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub limit: Option<LimitKind>,
}

/// One tool call made by the script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The client (server) called.
    pub client: String,
    /// The tool called.
    pub tool: String,
    /// True when the tool returned a value.
    pub ok: bool,
    /// The Python exception the script saw, when it failed (`Cancelled` for a call it never
    /// collected).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_type: Option<ErrorKind>,
    /// When the call started, in milliseconds since the execution began.
    pub started_ms: f64,
    /// From the start of the call to its answer, in milliseconds.
    pub duration_ms: f64,
    /// Bytes of the JSON of its arguments.
    pub request_bytes: u64,
    /// Bytes of the JSON response given to the script.
    pub response_bytes: u64,
}

/// Resource usage of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    /// Wall-clock time from instantiation to the end of the run, in milliseconds.
    pub wall_ms: f64,
    /// The most memory the run held at once, in bytes: the guest's linear memory and what the
    /// host held for the run.
    pub peak_memory_bytes: u64,
    /// Bytes the script wrote to stdout and stderr, dropped ones included.
    pub output_bytes: u64,
    /// True when some output was dropped at the cap.
    pub output_truncated: bool,
}
