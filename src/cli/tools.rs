//! `codemode tools`: connect a configuration's clients and print their tools as OpenAI
//! function definitions.

use std::path::Path;

use codemode::mcp::tools::openai_tools;
use serde_json::json;

use super::{Failure, connect_clients};

/// Prints `{"tools": [...]}` for the config file at `path`.
pub async fn print_tools(path: &Path) -> Result<(), Failure> {
    let app = connect_clients(path).await?;
    let tools = openai_tools(&app.manager.tools().await);
    app.shutdown().await;
    let text = serde_json::to_string_pretty(&json!({ "tools": tools }))
        .map_err(|e| Failure::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}
