//! `codemode mcp`: codemode as an MCP server on stdin/stdout until the client closes it, with
//! one virtual key's permissions for the whole session.

use std::path::Path;
use std::sync::Arc;

use codemode::app::{App, StoreChoice};
use codemode::server::mcp::McpServer;
use rmcp::ServiceExt;

use super::{Failure, load_optional};

/// Serves `config` (or none) as the caller holding `vk`, keeping runtime changes in `db`.
pub async fn serve_stdio(
    config: Option<&Path>,
    vk: Option<&str>,
    db: &Path,
) -> Result<(), Failure> {
    let config = load_optional(config)?;
    let app = Arc::new(App::build(&config, StoreChoice::Sqlite(db.to_path_buf())).await?);
    let permit = app
        .keys
        .authenticate(vk)
        .map_err(|e| Failure::Usage(format!("--vk: {e}")))?;
    let server = McpServer::with_permit(Arc::clone(&app), permit);
    let outcome = match server.serve(rmcp::transport::stdio()).await {
        Ok(service) => {
            let _ = service.waiting().await;
            Ok(())
        }
        Err(e) => Err(Failure::Internal(format!(
            "the MCP session did not start: {e}"
        ))),
    };
    app.shutdown().await;
    outcome
}
