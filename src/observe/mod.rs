//! Observers of what the gateway does: the audit log of tool executions, and Prometheus
//! metrics, fed from the one place every call passes ([`Gateway`](crate::gateway::Gateway)) and
//! from the HTTP layer.

pub mod audit;
pub mod metrics;
