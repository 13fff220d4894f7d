//! Code mode: the model reads Python stubs of the tools and runs one script that calls them.
//!
//! [`CodeMode`] joins the MCP manager's registry, the stubs crate and the executor:
//! - each caller's [`Stubs`] (the catalog and its manifest) are built from what its permit
//!   allows of the registry, and rebuilt only when the registry changes (the manager's
//!   generation moves);
//! - three meta-tools of [`meta`] answer from it (`listToolFiles`, `readToolFile`,
//!   `getToolDocs`); the fourth (`executeToolCode`) runs code through the
//!   [`Gateway`](crate::gateway::Gateway);
//! - every run binds the servers from the same catalog's manifest, so the names the model read
//!   are the names that run; its calls go to the dispatcher the gateway hands over, which
//!   checks each one against the caller's permit.
//!
//! Only code-mode clients (`is_code_mode_client`) are listed to the model; every client the
//! caller may use is bound in the sandbox, so pipelines calling `/v1/code/execute` reach all of
//! them without opting in.

pub mod analysis;
pub mod answer;
pub mod meta;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use codemode_stubs::{Catalog, ServerSpec, StubFile, ToolSpec};
use serde::Serialize;
use serde_json::Value;

use crate::config::BindingLevel;
use crate::executor::{ExecuteError, Executor, LimitOverrides, RunResult, ToolDispatcher};
use crate::mcp::{ClientTools, McpManager};
use crate::policy::Permit;
use analysis::ScriptAnalysis;

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
    /// Code mode over `manager`'s registry, running scripts in `executor` with `defaults` as
    /// the limits of runs that ask for none, splitting stubs into files by `level`.
    pub fn new(
        manager: Arc<McpManager>,
        executor: Executor,
        defaults: LimitOverrides,
        level: BindingLevel,
    ) -> Self {
        CodeMode {
            manager,
            executor,
            defaults,
            level,
            cache: Mutex::new((u64::MAX, HashMap::new())),
        }
    }

    /// The executor scripts run in.
    pub fn executor(&self) -> &Executor {
        &self.executor
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

    /// Every stub file a script run with `permit` can use: all the servers it reaches, the
    /// code-mode ones and the others alike (scripts bind them all). What the web UI's
    /// playground shows beside its editor.
    pub async fn script_files(&self, permit: &Permit) -> Vec<StubFile> {
        let registry = self.manager.tools().await;
        let mut specs = server_specs(&registry, permit);
        for spec in &mut specs {
            spec.listed = true;
        }
        Catalog::build(&specs, self.level).files()
    }

    /// Whether `permit` reaches any code-mode client (so the meta-tools are offered).
    pub async fn active(&self, permit: &Permit) -> bool {
        self.stubs(permit).await.catalog.listed().next().is_some()
    }

    /// Runs `code` with every server `permit` reaches bound, under the limits `requested` asks
    /// for (each absent field takes the configured default); the script's calls go to
    /// `calls`. Hands back the stubs the run was bound from, for the answer to the model.
    ///
    /// # Errors
    /// [`ExecuteError`] when the run cannot start: limits outside the server's policy, code
    /// too large, the sandbox busy or broken.
    pub async fn run(
        &self,
        code: &str,
        requested: &LimitOverrides,
        permit: &Permit,
        calls: Arc<dyn ToolDispatcher>,
    ) -> Result<(RunResult, Arc<Stubs>), ExecuteError> {
        let limits = self
            .executor
            .config()
            .limits
            .resolve(&requested.or(&self.defaults))?;
        let stubs = self.stubs(permit).await;
        let result = self
            .executor
            .execute_bound(code, &stubs.manifest, &limits, calls)
            .await?;
        Ok((result, stubs))
    }

    /// The tools `code` can call with the servers `permit` reaches bound, found by the guest's
    /// parser without running anything.
    ///
    /// # Errors
    /// [`ExecuteError`] when the analysis cannot start: code too large, the sandbox busy.
    pub async fn analyze(
        &self,
        permit: &Permit,
        code: &str,
    ) -> Result<ScriptAnalysis, ExecuteError> {
        let stubs = self.stubs(permit).await;
        let run = self.executor.analyze(code, &stubs.manifest).await?;
        Ok(ScriptAnalysis::from_run(&run))
    }
}

/// What `permit` allows of the registry, in the stubs crate's terms. Tools it does not allow
/// are left out entirely (no stub, no name in the manifest: a caller learns nothing of them),
/// and so are clients it allows nothing of.
pub fn server_specs(registry: &[ClientTools], permit: &Permit) -> Vec<ServerSpec> {
    // `view` looks the caller's key up once for the whole registry.
    permit
        .view(registry.to_vec())
        .iter()
        .map(|client| ServerSpec {
            name: client.client.clone(),
            listed: client.code_mode,
            tools: client.tools.iter().map(tool_spec).collect(),
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
