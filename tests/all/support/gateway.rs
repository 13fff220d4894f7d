//! A manager with the gateway in front of it, as a program embedding codemode holds it.

use std::sync::Arc;

use async_trait::async_trait;
use codemode::code_mode::CodeMode;
use codemode::config::BindingLevel;
use codemode::executor::{LimitOverrides, ToolDispatcher, ToolError};
use codemode::gateway::Gateway;
use codemode::mcp::McpManager;
use codemode::policy::Permit;
use serde_json::Value;

use super::sandbox::EXECUTOR;

/// A manager with the gateway in front of it, as a program embedding codemode holds it: its
/// registry and state through `Deref`, its tools as a [`ToolDispatcher`] under an open permit
/// (the manager's own call API is private to the crate).
pub struct Managed {
    pub manager: Arc<McpManager>,
    calls: Arc<dyn ToolDispatcher>,
}

impl Managed {
    pub fn new(manager: McpManager) -> Managed {
        Managed::over(Arc::new(manager))
    }

    pub fn over(manager: Arc<McpManager>) -> Managed {
        Managed {
            calls: open_calls(&manager),
            manager,
        }
    }
}

impl std::ops::Deref for Managed {
    type Target = McpManager;

    fn deref(&self) -> &McpManager {
        &self.manager
    }
}

#[async_trait]
impl ToolDispatcher for Managed {
    async fn call(&self, client: &str, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.calls.call(client, tool, args).await
    }
}

/// `manager`'s tools through a gateway, under an open permit, unaudited.
pub fn open_calls(manager: &Arc<McpManager>) -> Arc<dyn ToolDispatcher> {
    let code_mode = CodeMode::new(
        Arc::clone(manager),
        EXECUTOR.clone(),
        LimitOverrides::default(),
        BindingLevel::default(),
    );
    Gateway::new(Arc::clone(manager), code_mode, None).script_calls(Permit::open())
}
