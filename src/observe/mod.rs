//! Observers of what the gateway does: the audit log of tool executions, Prometheus metrics,
//! and logs and traces ([`telemetry`]), fed from the one place every call passes
//! ([`Gateway`](crate::gateway::Gateway)) and from the HTTP layer.

pub mod audit;
pub mod metrics;
pub mod telemetry;
