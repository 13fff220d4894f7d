//! Code mode: the model reads Python stubs of the tools and runs one script that calls them.
//!
//! [`CodeMode`] joins the MCP manager's registry, the stubs crate and the executor:
//! - the catalog of stubs is built from the registry and rebuilt only when the registry changes
//!   (the manager's generation moves);
//! - the four meta-tools of [`meta`] answer from it (`listToolFiles`, `readToolFile`,
//!   `getToolDocs`) or run code (`executeToolCode`);
//! - every run binds the servers from the same catalog's manifest, so the names the model read
//!   are the names that run, and each call crosses into the manager.
//!
//! Only code-mode clients (`is_code_mode_client`) are listed to the model; every client the
//! caller may use is bound in the sandbox, so pipelines calling `/v1/code/execute` reach all of
//! them without opting in.

pub mod answer;
pub mod meta;
pub mod tokens;

use std::sync::{Arc, Mutex};

use codemode_stubs::{BindingLevel, Catalog, ServerSpec, ToolSpec};
use serde_json::Value;

use crate::config::{self, BindingLevel as ConfigBindingLevel};
use crate::executor::{ExecuteError, Executor, LimitOverrides, RunResult, ToolDispatcher};
use crate::mcp::{ClientTools, McpManager};

/// Code mode over one manager and one executor.
pub struct CodeMode {
    manager: Arc<McpManager>,
    executor: Executor,
    /// The limits of runs that ask for none (the config's `sandbox` section).
    defaults: LimitOverrides,
    level: BindingLevel,
    /// The catalog and the manager generation it was built at.
    cache: Mutex<Option<(u64, Arc<Catalog>)>>,
}

impl CodeMode {
    /// Code mode over `manager`, running scripts in `executor` with `defaults` as the limits of
    /// runs that ask for none, splitting stubs into files by `level`.
    pub fn new(
        manager: Arc<McpManager>,
        executor: Executor,
        defaults: LimitOverrides,
        level: ConfigBindingLevel,
    ) -> Self {
        let level = match level {
            config::BindingLevel::Server => BindingLevel::Server,
            config::BindingLevel::Tool => BindingLevel::Tool,
        };
        CodeMode {
            manager,
            executor,
            defaults,
            level,
            cache: Mutex::new(None),
        }
    }

    /// The manager whose tools scripts call.
    pub fn manager(&self) -> &Arc<McpManager> {
        &self.manager
    }

    /// The stubs of the registry as it is now.
    pub async fn catalog(&self) -> Arc<Catalog> {
        let generation = self.manager.generation();
        if let Some((built, catalog)) = &*self.cache.lock().unwrap_or_else(|p| p.into_inner())
            && *built == generation
        {
            return Arc::clone(catalog);
        }
        let catalog = Arc::new(Catalog::build(
            &server_specs(&self.manager.tools().await),
            self.level,
        ));
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((generation, Arc::clone(&catalog)));
        catalog
    }

    /// Whether any connected client is a code-mode client (so the meta-tools are offered).
    pub async fn active(&self) -> bool {
        self.catalog().await.listed().next().is_some()
    }

    /// Runs `code` with every server bound, under the limits `requested` asks for (each absent
    /// field takes the configured default).
    ///
    /// # Errors
    /// [`ExecuteError`] when the run cannot start: limits outside the server's policy, code
    /// too large, the sandbox busy or broken.
    pub async fn execute(
        &self,
        code: &str,
        requested: &LimitOverrides,
    ) -> Result<RunResult, ExecuteError> {
        let limits = self
            .executor
            .config()
            .limits
            .resolve(&requested.or(&self.defaults))?;
        let catalog = self.catalog().await;
        let dispatcher: Arc<dyn ToolDispatcher> = Arc::clone(&self.manager) as _;
        self.executor
            .execute_bound(code, &catalog.manifest(), &limits, dispatcher)
            .await
    }
}

/// The registry in the stubs crate's terms.
pub fn server_specs(registry: &[ClientTools]) -> Vec<ServerSpec> {
    registry
        .iter()
        .map(|client| ServerSpec {
            name: client.client.clone(),
            listed: client.code_mode,
            tools: client
                .tools
                .iter()
                .map(|tool| ToolSpec {
                    name: tool.name.to_string(),
                    title: tool.title.clone(),
                    description: tool.description.as_deref().map(str::to_string),
                    input_schema: Value::Object(tool.input_schema.as_ref().clone()),
                    output_schema: tool
                        .output_schema
                        .as_ref()
                        .map(|schema| Value::Object(schema.as_ref().clone())),
                })
                .collect(),
        })
        .collect()
}
