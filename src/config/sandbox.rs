//! The `sandbox` section: the default limits of a run (the fields a request's `limits` takes)
//! and how many executions the service holds at once.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::executor::{DEFAULT_MAX_EXECUTIONS, DEFAULT_MAX_QUEUED, LimitOverrides};

/// Executions in flight the pool may be configured for: each holds a pool slot (address space
/// for its largest memory) and a fiber stack.
pub const MAX_EXECUTIONS: usize = 4_096;

/// The `sandbox` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Default limits of a run; a request's `limits` override them within the maxima.
    #[serde(flatten)]
    pub limits: LimitOverrides,
    /// Executions in flight at once, running or waiting on a tool (default
    /// [`DEFAULT_MAX_EXECUTIONS`]). A script that waits on a tool holds no core, so this is
    /// bounded by memory, not by cores: at most this many times `memory_mb` of linear memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_executions: Option<usize>,
    /// Executions that wait for one of those before new ones are refused as busy (default
    /// [`DEFAULT_MAX_QUEUED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<usize>,
    /// Fields neither of the above claimed: [`check`](Self::check) reports them (serde's
    /// `deny_unknown_fields` does not reach through `flatten`).
    #[serde(flatten, skip_serializing)]
    unknown: BTreeMap<String, IgnoredAny>,
}

impl SandboxConfig {
    /// Executions in flight at once.
    pub fn max_executions(&self) -> usize {
        self.max_executions.unwrap_or(DEFAULT_MAX_EXECUTIONS)
    }

    /// Executions that may wait for one.
    pub fn max_queued(&self) -> usize {
        self.max_queued.unwrap_or(DEFAULT_MAX_QUEUED)
    }

    /// Adds to `problems` an unknown field or a count out of range.
    pub fn check(&self, problems: &mut Vec<ConfigError>) {
        for name in self.unknown.keys() {
            problems.push(ConfigError::at(
                format!("sandbox.{name}"),
                "unknown field; expected a limit (timeout_ms, memory_mb, max_output_bytes, \
                 max_result_bytes, max_tool_calls, max_tool_arg_bytes, max_tool_result_bytes), \
                 max_executions or max_queued",
            ));
        }
        if !(1..=MAX_EXECUTIONS).contains(&self.max_executions()) {
            problems.push(ConfigError::at(
                "sandbox.max_executions",
                format!("must be between 1 and {MAX_EXECUTIONS}"),
            ));
        }
        if self.max_queued() > MAX_EXECUTIONS {
            problems.push(ConfigError::at(
                "sandbox.max_queued",
                format!("must be at most {MAX_EXECUTIONS}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_section_takes_limits_and_counts_and_checks_the_counts() {
        let config = Config::parse(
            r#"{"sandbox": {"timeout_ms": 5000, "max_executions": 200, "max_queued": 0}}"#,
        )
        .expect("valid");
        assert_eq!(config.sandbox.limits.timeout_ms, Some(5000));
        assert_eq!(config.sandbox.max_executions(), 200);
        assert_eq!(config.sandbox.max_queued(), 0);
        let defaults = Config::parse("{}").expect("valid");
        assert_eq!(defaults.sandbox.max_executions(), 64);
        for (text, path) in [
            (
                r#"{"sandbox": {"max_executions": 0}}"#,
                "sandbox.max_executions",
            ),
            (
                r#"{"sandbox": {"max_queued": 100000}}"#,
                "sandbox.max_queued",
            ),
        ] {
            let error = Config::parse(text).expect_err("refused");
            assert_eq!(error.path, path, "{text}");
        }
        let unknown = Config::parse(r#"{"sandbox": {"max_slots": 3}}"#).expect_err("refused");
        assert_eq!(unknown.path, "sandbox.max_slots");
    }
}
