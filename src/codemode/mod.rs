//! Code mode: the model reads Python stubs of the tools and runs one script that calls them.
//!
//! [`CodeMode`] joins the MCP manager's registry, the stubs crate and the executor:
//! - each caller's [`Stubs`] (the catalog and its manifest) are built from what its permit
//!   allows of the registry, and rebuilt only when the registry changes (the manager's
//!   generation moves);
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use codemode_stubs::{BindingLevel, Catalog, ServerSpec, ToolSpec};
use serde::Serialize;
use serde_json::Value;

use crate::audit::AuditLog;
use crate::config::{self, BindingLevel as ConfigBindingLevel};
use crate::executor::{ExecuteError, Executor, LimitOverrides, RunResult};
use crate::mcp::registry::direct_tools;
use crate::mcp::{ClientTools, McpManager};
use crate::policy::dispatch::new_id;
use crate::policy::{Permit, PermittedCalls};

/// A caller's stubs: the catalog the model reads and the manifest its scripts are bound from,
/// built together once per registry change (the manifest is not rebuilt per run).
pub struct Stubs {
    /// Servers, tools and parameters with their Python names.
    pub catalog: Catalog,
    /// The bindings of every server the caller reaches.
    pub manifest: String,
}

/// Stubs by permit, valid for one manager generation.
type StubsCache = (u64, HashMap<(Option<String>, u64), Arc<Stubs>>);

/// Code mode over one manager and one executor.
pub struct CodeMode {
    manager: Arc<McpManager>,
    executor: Executor,
    /// The limits of runs that ask for none (the config's `sandbox` section).
    defaults: LimitOverrides,
    level: BindingLevel,
    audit: Option<Arc<AuditLog>>,
    cache: Mutex<StubsCache>,
}

/// One script execution: its id (the parent id of its calls in the audit log) and result.
#[derive(Debug, Clone, Serialize)]
pub struct CodeRun {
    /// The execution's id.
    pub execution_id: String,
    /// What the run produced.
    #[serde(flatten)]
    pub result: RunResult,
}

impl CodeMode {
    /// Code mode over `manager`, running scripts in `executor` with `defaults` as the limits of
    /// runs that ask for none, splitting stubs into files by `level`, recording calls in
    /// `audit`.
    pub fn new(
        manager: Arc<McpManager>,
        executor: Executor,
        defaults: LimitOverrides,
        level: ConfigBindingLevel,
        audit: Option<Arc<AuditLog>>,
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
            audit,
            cache: Mutex::new((u64::MAX, HashMap::new())),
        }
    }

    /// The manager whose tools scripts call.
    pub fn manager(&self) -> &Arc<McpManager> {
        &self.manager
    }

    /// The stubs of what `permit` allows in the registry as it is now.
    pub async fn stubs(&self, permit: &Permit) -> Arc<Stubs> {
        let generation = self.manager.generation();
        let key = permit.cache_key();
        if let Some(key) = &key {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.0 == generation
                && let Some(stubs) = cache.1.get(key)
            {
                return Arc::clone(stubs);
            }
        }
        let registry = self.manager.tools().await;
        let catalog = Catalog::build(&server_specs(&registry, permit), self.level);
        let manifest = catalog.manifest();
        let stubs = Arc::new(Stubs { catalog, manifest });
        if let Some(key) = key {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.0 != generation {
                *cache = (generation, HashMap::new());
            }
            cache.1.insert(key, Arc::clone(&stubs));
        }
        stubs
    }

    /// Whether `permit` reaches any code-mode client (so the meta-tools are offered).
    pub async fn active(&self, permit: &Permit) -> bool {
        self.stubs(permit).await.catalog.listed().next().is_some()
    }

    /// The tools a caller with `permit` is offered: its direct tools as `<client>-<tool>`, then
    /// the meta-tools when it reaches a code-mode client. The list behind `GET /v1/mcp/tools`
    /// and `/mcp`'s `tools/list`.
    pub async fn offered_tools(&self, permit: &Permit) -> Vec<rmcp::model::Tool> {
        let mut tools = direct_tools(&permit.view(self.manager.tools().await));
        if self.active(permit).await {
            tools.extend(meta::tools());
        }
        tools
    }

    /// Runs `code` with every server `permit` reaches bound, under the limits `requested` asks
    /// for (each absent field takes the configured default). Each call is checked against
    /// `permit` on the host and recorded with this execution as its parent.
    ///
    /// # Errors
    /// [`ExecuteError`] when the run cannot start: limits outside the server's policy, code
    /// too large, the sandbox busy or broken.
    pub async fn execute(
        &self,
        code: &str,
        requested: &LimitOverrides,
        permit: &Permit,
    ) -> Result<CodeRun, ExecuteError> {
        Ok(self.run(code, requested, permit).await?.0)
    }

    /// [`execute`](Self::execute), also handing back the stubs the run was bound from.
    async fn run(
        &self,
        code: &str,
        requested: &LimitOverrides,
        permit: &Permit,
    ) -> Result<(CodeRun, Arc<Stubs>), ExecuteError> {
        let limits = self
            .executor
            .config()
            .limits
            .resolve(&requested.or(&self.defaults))?;
        let stubs = self.stubs(permit).await;
        let execution_id = new_id();
        let calls = PermittedCalls::new(
            Arc::clone(&self.manager),
            permit.clone(),
            self.audit.clone(),
            Some(execution_id.clone()),
        );
        let result = self
            .executor
            .execute_bound(code, &stubs.manifest, &limits, Arc::new(calls))
            .await?;
        let run = CodeRun {
            execution_id,
            result,
        };
        Ok((run, stubs))
    }
}

/// What `permit` allows of the registry, in the stubs crate's terms: the tools it allows, and
/// the names of the others of the same clients as withheld. Clients it allows nothing of are
/// left out.
pub fn server_specs(registry: &[ClientTools], permit: &Permit) -> Vec<ServerSpec> {
    registry
        .iter()
        .filter_map(|client| {
            let (allowed, withheld): (Vec<_>, Vec<_>) = client
                .tools
                .iter()
                .partition(|tool| permit.allows(&client.client, &tool.name));
            (!allowed.is_empty()).then(|| ServerSpec {
                name: client.client.clone(),
                listed: client.code_mode,
                tools: allowed.into_iter().map(tool_spec).collect(),
                withheld: withheld.iter().map(|t| t.name.to_string()).collect(),
            })
        })
        .collect()
}

fn tool_spec(tool: &rmcp::model::Tool) -> ToolSpec {
    ToolSpec {
        name: tool.name.to_string(),
        title: tool.title.clone(),
        description: tool.description.as_deref().map(str::to_string),
        input_schema: Value::Object(tool.input_schema.as_ref().clone()),
        output_schema: tool
            .output_schema
            .as_ref()
            .map(|schema| Value::Object(schema.as_ref().clone())),
    }
}
