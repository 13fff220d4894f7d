//! Per-execution resource limits, their defaults and the server-wide maxima.
//!
//! A request may ask for its own [`Limits`] through [`LimitOverrides`]; [`LimitPolicy::resolve`]
//! fills the gaps from the server's defaults and refuses anything above the server's maxima
//! (a request never silently gets less than it asked for). `docs/limits.md` documents each limit:
//! its exact meaning, what it does not cover and what happens when it fires.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::protocol::LimitKind;

/// Memory the pre-initialised interpreter already occupies; a smaller memory limit could not
/// even instantiate the snapshot.
pub const MIN_MEMORY_MB: u64 = 64;

/// Limits of one execution. Every field is a hard bound enforced on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock time for the whole run, tool calls and sleeps included.
    pub timeout_ms: u64,
    /// Linear memory of the guest, in MiB, the interpreter's own ~40 MiB included.
    pub memory_mb: u64,
    /// Bytes of stdout and stderr kept together; the rest is counted and dropped.
    pub max_output_bytes: u64,
    /// Bytes of the JSON of the script's result.
    pub max_result_bytes: u64,
    /// Tool calls started by one run.
    pub max_tool_calls: u64,
    /// Bytes of the JSON request of one tool call (client, tool and arguments).
    pub max_tool_arg_bytes: u64,
    /// Bytes of the JSON value one tool call returns to the script.
    pub max_tool_result_bytes: u64,
}

impl Limits {
    /// The defaults a run gets when it asks for nothing.
    pub const DEFAULT: Limits = Limits {
        timeout_ms: 30_000,
        memory_mb: 256,
        max_output_bytes: 1 << 20,
        max_result_bytes: 1 << 20,
        max_tool_calls: 1_000,
        max_tool_arg_bytes: 1 << 20,
        max_tool_result_bytes: 8 << 20,
    };

    /// The largest values a server accepts unless configured otherwise.
    pub const MAXIMUM: Limits = Limits {
        timeout_ms: 300_000,
        memory_mb: 2_048,
        max_output_bytes: 64 << 20,
        max_result_bytes: 64 << 20,
        max_tool_calls: 100_000,
        max_tool_arg_bytes: 64 << 20,
        max_tool_result_bytes: 64 << 20,
    };

    /// The wall-clock budget as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Linear memory in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    fn fields(&self) -> [(LimitKind, u64); 7] {
        [
            (LimitKind::TimeoutMs, self.timeout_ms),
            (LimitKind::MemoryMb, self.memory_mb),
            (LimitKind::MaxOutputBytes, self.max_output_bytes),
            (LimitKind::MaxResultBytes, self.max_result_bytes),
            (LimitKind::MaxToolCalls, self.max_tool_calls),
            (LimitKind::MaxToolArgBytes, self.max_tool_arg_bytes),
            (LimitKind::MaxToolResultBytes, self.max_tool_result_bytes),
        ]
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Limits a caller asks for; absent fields take the server's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// See [`Limits::timeout_ms`].
    pub timeout_ms: Option<u64>,
    /// See [`Limits::memory_mb`].
    pub memory_mb: Option<u64>,
    /// See [`Limits::max_output_bytes`].
    pub max_output_bytes: Option<u64>,
    /// See [`Limits::max_result_bytes`].
    pub max_result_bytes: Option<u64>,
    /// See [`Limits::max_tool_calls`].
    pub max_tool_calls: Option<u64>,
    /// See [`Limits::max_tool_arg_bytes`].
    pub max_tool_arg_bytes: Option<u64>,
    /// See [`Limits::max_tool_result_bytes`].
    pub max_tool_result_bytes: Option<u64>,
}

impl LimitOverrides {
    /// These overrides, each absent one taken from `fallback`.
    pub fn or(&self, fallback: &LimitOverrides) -> LimitOverrides {
        LimitOverrides {
            timeout_ms: self.timeout_ms.or(fallback.timeout_ms),
            memory_mb: self.memory_mb.or(fallback.memory_mb),
            max_output_bytes: self.max_output_bytes.or(fallback.max_output_bytes),
            max_result_bytes: self.max_result_bytes.or(fallback.max_result_bytes),
            max_tool_calls: self.max_tool_calls.or(fallback.max_tool_calls),
            max_tool_arg_bytes: self.max_tool_arg_bytes.or(fallback.max_tool_arg_bytes),
            max_tool_result_bytes: self
                .max_tool_result_bytes
                .or(fallback.max_tool_result_bytes),
        }
    }
}

/// A requested limit the server does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Above the server's maximum.
    #[error("{name} = {requested} is above the server's maximum of {maximum}")]
    AboveMaximum {
        /// The limit.
        name: LimitKind,
        /// What was asked for.
        requested: u64,
        /// The server's maximum.
        maximum: u64,
    },
    /// Below what an execution can run with.
    #[error("{name} = {requested} is below the minimum of {minimum}")]
    BelowMinimum {
        /// The limit.
        name: LimitKind,
        /// What was asked for.
        requested: u64,
        /// The smallest accepted value.
        minimum: u64,
    },
}

/// The server's defaults and maxima.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    /// Limits of a run that asks for none.
    pub defaults: Limits,
    /// The most any run may ask for.
    pub maxima: Limits,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        LimitPolicy {
            defaults: Limits::DEFAULT,
            maxima: Limits::MAXIMUM,
        }
    }
}

impl LimitPolicy {
    /// The limits of a run that asked for `overrides`.
    ///
    /// # Errors
    /// [`LimitError`] naming the first limit that is above the maximum or below its minimum.
    pub fn resolve(&self, overrides: &LimitOverrides) -> Result<Limits, LimitError> {
        let d = &self.defaults;
        let limits = Limits {
            timeout_ms: overrides.timeout_ms.unwrap_or(d.timeout_ms),
            memory_mb: overrides.memory_mb.unwrap_or(d.memory_mb),
            max_output_bytes: overrides.max_output_bytes.unwrap_or(d.max_output_bytes),
            max_result_bytes: overrides.max_result_bytes.unwrap_or(d.max_result_bytes),
            max_tool_calls: overrides.max_tool_calls.unwrap_or(d.max_tool_calls),
            max_tool_arg_bytes: overrides.max_tool_arg_bytes.unwrap_or(d.max_tool_arg_bytes),
            max_tool_result_bytes: overrides
                .max_tool_result_bytes
                .unwrap_or(d.max_tool_result_bytes),
        };
        self.check(&limits)?;
        Ok(limits)
    }

    /// Checks that `limits` lie within this policy.
    ///
    /// # Errors
    /// [`LimitError`] naming the first offending limit.
    pub fn check(&self, limits: &Limits) -> Result<(), LimitError> {
        for ((name, requested), (_, maximum)) in
            limits.fields().into_iter().zip(self.maxima.fields())
        {
            if requested > maximum {
                return Err(LimitError::AboveMaximum {
                    name,
                    requested,
                    maximum,
                });
            }
            let minimum = match name {
                LimitKind::MemoryMb => MIN_MEMORY_MB,
                LimitKind::TimeoutMs | LimitKind::MaxResultBytes => 1,
                _ => 0,
            };
            if requested < minimum {
                return Err(LimitError::BelowMinimum {
                    name,
                    requested,
                    minimum,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_overrides_take_the_defaults() {
        let policy = LimitPolicy::default();
        assert_eq!(
            policy.resolve(&LimitOverrides::default()),
            Ok(Limits::DEFAULT)
        );
    }

    #[test]
    fn an_override_above_the_maximum_is_refused_by_name() {
        let policy = LimitPolicy::default();
        let overrides = LimitOverrides {
            timeout_ms: Some(Limits::MAXIMUM.timeout_ms + 1),
            ..LimitOverrides::default()
        };
        let error = policy.resolve(&overrides).err();
        assert!(matches!(
            error,
            Some(LimitError::AboveMaximum {
                name: LimitKind::TimeoutMs,
                ..
            })
        ));
    }

    #[test]
    fn memory_below_the_interpreter_size_is_refused() {
        let policy = LimitPolicy::default();
        let overrides = LimitOverrides {
            memory_mb: Some(8),
            ..LimitOverrides::default()
        };
        let error = policy.resolve(&overrides).err();
        assert!(matches!(
            error,
            Some(LimitError::BelowMinimum {
                name: LimitKind::MemoryMb,
                ..
            })
        ));
    }
}
