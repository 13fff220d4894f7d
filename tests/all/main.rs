//! Integration tests: one binary, one file per feature, all against the real sandbox.

mod cli;
mod sandbox_cases;
mod sandbox_isolation;
mod sandbox_limits;
mod sandbox_results;
mod sandbox_tools;
mod support;
