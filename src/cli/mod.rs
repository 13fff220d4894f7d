//! The subcommands, one file each. Every one that touches tools builds its
//! [`App`](codemode::app::App) from a config and a store choice; none holds logic of its own
//! beyond reading its inputs and printing its outputs.
//!
//! A command ends with `Ok(())` or a [`Failure`], which `main` turns into the documented exit
//! code and exactly one line on stderr.

pub mod analyze;
pub mod check;
pub mod mcp;
pub mod run;
pub mod serve;
pub mod tokens;
pub mod tools;

use std::path::Path;

use codemode::app::{App, AppError, StoreChoice};
use codemode::config::Config;

/// How a command ended, when it did not succeed.
pub enum Failure {
    /// Bad flags, an unreadable input, a configuration that cannot be used (exit 64).
    Usage(String),
    /// The script raised a Python exception (exit 1).
    Script(String),
    /// The script hit a sandbox limit (exit 2).
    Limit(String),
    /// codemode itself failed (exit 70).
    Internal(String),
}

impl Failure {
    /// The exit code documented in the README.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Script(_) => 1,
            Failure::Limit(_) => 2,
            Failure::Usage(_) => 64,
            Failure::Internal(_) => 70,
        }
    }

    /// The line printed on stderr (after `codemode: `).
    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Script(m) | Failure::Limit(m) | Failure::Internal(m) => m,
        }
    }
}

impl From<AppError> for Failure {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Executor(_) => Failure::Internal(error.to_string()),
            AppError::Store(_) | AppError::AdminToken(_) | AppError::Sandbox(_) => {
                Failure::Usage(error.to_string())
            }
        }
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load_config(path: &Path) -> Result<Config, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    Config::parse(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

/// The file at `path`, or the empty configuration when there is none.
pub fn load_optional(path: Option<&Path>) -> Result<Config, Failure> {
    Ok(path.map(load_config).transpose()?.unwrap_or_default())
}

/// The application of the config file at `path`, without a store; a client that cannot
/// connect is reported on stderr and left out of what follows.
pub async fn connect_clients(path: &Path) -> Result<App, Failure> {
    let config = load_config(path)?;
    let app = App::build(&config, StoreChoice::None).await?;
    for client in app.manager.status().await {
        if let Some(error) = client.last_error {
            eprintln!(
                "codemode: warning: client {} is not connected: {error}",
                client.name
            );
        }
    }
    Ok(app)
}
