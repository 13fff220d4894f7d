//! `env.NAME` references: a string value `"env.NAME"` is kept as written and read from the
//! environment only when it is used (a client connecting, a key loading), so a missing variable
//! fails that one use, naming the variable, and nothing stored or listed holds a resolved secret.

/// An `env.NAME` reference whose variable is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {0} is not set")]
pub struct MissingVariable(pub String);

/// Reads `value` as written, or the environment variable it names when it is `env.NAME`.
///
/// # Errors
/// [`MissingVariable`] naming the variable that is not set.
pub fn resolve_env(value: &str) -> Result<String, MissingVariable> {
    match value.strip_prefix("env.") {
        Some(name) => std::env::var(name).map_err(|_| MissingVariable(name.to_string())),
        None => Ok(value.to_string()),
    }
}
