//! The audit log's records and queries, as every store keeps them.

use serde::{Deserialize, Serialize};

use crate::executor::ErrorKind;

/// How a recorded tool execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// The tool answered.
    Ok,
    /// The tool failed, reported an error, or could not be reached.
    Error,
    /// The caller's permit refused the call; the server never saw it.
    Denied,
}

impl AuditOutcome {
    /// The name stored and shown: `ok`, `error`, `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Error => "error",
            AuditOutcome::Denied => "denied",
        }
    }

    /// The outcome named `text`.
    pub fn parse(text: &str) -> Option<AuditOutcome> {
        [AuditOutcome::Ok, AuditOutcome::Error, AuditOutcome::Denied]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

/// One tool execution, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the call started, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The caller's virtual key, when it presented one.
    pub vk: Option<String>,
    /// The client called.
    pub client: String,
    /// The tool called.
    pub tool: String,
    /// Bytes of the JSON arguments.
    pub arg_bytes: u64,
    /// SHA-256 of the JSON arguments, hex (the arguments themselves are not kept).
    pub arg_hash: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The Python exception the caller received (`ToolError`, `PermissionError`, ...), when
    /// it failed.
    pub error_type: Option<ErrorKind>,
    /// From the start of the call to its answer, in milliseconds.
    pub latency_ms: f64,
    /// This call's id.
    pub execution_id: String,
    /// The script execution that made the call, for calls from code.
    pub parent_execution_id: Option<String>,
    /// How many calls this record stands for: 1, or more when a caller's denied calls past its
    /// budget were folded into one record (the first one's details, the count of all).
    #[serde(default = "one")]
    pub repeats: u32,
    /// For a call agent mode ran on its own: the model turn of the chat request (its
    /// `parent_execution_id`) that asked for it, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u32>,
}

fn one() -> u32 {
    1
}

/// Which records to read: every field narrows; `limit` and `offset` page through the rest,
/// newest first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this virtual key's calls.
    pub vk: Option<String>,
    /// Only calls to this client.
    pub client: Option<String>,
    /// Only calls of this tool.
    pub tool: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only calls from code of this execution.
    pub parent_execution_id: Option<String>,
    /// From this time (milliseconds since the epoch), inclusive.
    pub since: Option<i64>,
    /// Before this time, exclusive.
    pub until: Option<i64>,
    /// Page size (default 100, at most 1,000).
    pub limit: Option<u32>,
    /// Records to skip.
    pub offset: Option<u32>,
}

/// One LLM request through `/v1/chat/completions`, as recorded: never its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRecord {
    /// When it arrived, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The caller's virtual key, when it presented one.
    pub vk: Option<String>,
    /// The provider that answered, or whose error it is.
    pub provider: String,
    /// The `model` asked for.
    pub model_requested: String,
    /// The `<provider>/<model>` that answered, when one did.
    pub model_used: Option<String>,
    /// The HTTP status the caller got.
    pub status: u16,
    /// Input tokens, when the provider reported them (not for streams).
    pub prompt_tokens: Option<u64>,
    /// Output tokens, likewise.
    pub completion_tokens: Option<u64>,
    /// From arrival to the answer (its first byte, for a stream), in milliseconds.
    pub latency_ms: f64,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// This request's id; tool executions of the tool calls it answered with name it as their
    /// `parent_execution_id`.
    pub request_id: String,
    /// The ids of the tool calls the answer asked for.
    pub tool_call_ids: Vec<String>,
}

/// Which LLM records to read, newest first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmQuery {
    /// Only this virtual key's requests.
    pub vk: Option<String>,
    /// Only requests answered by (or failed at) this provider.
    pub provider: Option<String>,
    /// From this time (milliseconds since the epoch), inclusive.
    pub since: Option<i64>,
    /// Before this time, exclusive.
    pub until: Option<i64>,
    /// Page size (default 100, at most 1,000).
    pub limit: Option<u32>,
    /// Records to skip.
    pub offset: Option<u32>,
}
