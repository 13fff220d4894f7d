//! Which tools a script can call, known before it runs.
//!
//! The guest parses the script with the interpreter's own parser and follows every name that
//! can reach a tool (`sandbox/src/analysis.rs` has the rules); hostile source never meets a
//! parser on the host. This module asks it, through the executor, and reads its answer: the
//! `(client, tool)` pairs the script can reach, or the first construct that makes them
//! unknowable. Agent mode auto-runs a script only when the pairs are known and all
//! auto-executable; apps show the answer to a user before they approve a pending script.

use serde::{Deserialize, Serialize};

use crate::executor::RunResult;

/// What a script can call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptAnalysis {
    /// The tools the script can call (complete only when `unknown` is absent).
    pub tools: Vec<ToolRef>,
    /// Why the tools it can call cannot be known: the first construct the analysis cannot
    /// follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<Finding>,
    /// The script does not parse, so it can call nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syntax_error: Option<Finding>,
}

/// One tool by client and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ToolRef {
    /// The client.
    pub client: String,
    /// The tool's own name.
    pub tool: String,
}

/// A place in the script and what is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// 1-based line.
    pub line: usize,
    /// What the analysis found.
    pub reason: String,
}

/// The guest's answer as it crosses the boundary: tools as `[client, tool]` pairs.
#[derive(Deserialize)]
struct GuestAnalysis {
    #[serde(default)]
    tools: Vec<(String, String)>,
    unknown: Option<Finding>,
    syntax_error: Option<Finding>,
}

impl ScriptAnalysis {
    /// The tools the script can call, when they are known.
    pub fn known_tools(&self) -> Option<&[ToolRef]> {
        self.unknown.is_none().then_some(self.tools.as_slice())
    }

    /// Reads the guest's answer from its analysis run. A run that failed (a limit hit while
    /// parsing an enormous script) or an answer that cannot be read leaves the tools unknown.
    pub(crate) fn from_run(run: &RunResult) -> ScriptAnalysis {
        let unknown = |reason: String| ScriptAnalysis {
            unknown: Some(Finding { line: 0, reason }),
            ..ScriptAnalysis::default()
        };
        if let Some(error) = &run.error {
            return unknown(format!(
                "the analysis did not finish: {}: {}",
                error.kind.as_str(),
                error.message
            ));
        }
        match serde_json::from_value::<GuestAnalysis>(run.result.clone()) {
            Ok(guest) => ScriptAnalysis {
                tools: guest
                    .tools
                    .into_iter()
                    .map(|(client, tool)| ToolRef { client, tool })
                    .collect(),
                unknown: guest.unknown,
                syntax_error: guest.syntax_error,
            },
            Err(e) => unknown(format!("the sandbox answered an unreadable analysis: {e}")),
        }
    }
}
