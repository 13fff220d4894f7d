//! Observers of what the gateway does: today the audit log of tool executions; metrics and
//! traces join here, fed from the one place every call passes
//! ([`Gateway`](crate::gateway::Gateway)).

pub mod audit;
