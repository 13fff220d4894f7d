//! Policy: who may run which tool. The only place that decides it.
//!
//! A request's caller is identified by its virtual key ([`keys`]); its [`Permit`] is the key's
//! rules narrowed by the request's filters ([`rules`]). Policy only decides: every tool call,
//! from any entry point, goes through the [`Gateway`](crate::gateway::Gateway), which asks the
//! permit on the host before the manager is asked. Tool lists and code-mode stubs are filtered
//! with the same permit, so a caller sees exactly what it may call.
//!
//! allowed = client configuration (checked by the manager) ∩ virtual key ∩ request filters.

pub mod keys;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;

pub use keys::{AuthError, KeyError, KeyRing};
pub use rules::{RequestFilter, ToolRule};

use crate::mcp::ClientTools;

/// What one request may call. Cheap to clone; every check is O(1).
#[derive(Debug, Clone, Default)]
pub struct Permit {
    /// The virtual key's name, when the caller presented one.
    key: Option<String>,
    /// The key's rules and their version; `None` when no virtual keys are configured.
    rules: Option<(Arc<HashMap<String, ToolRule>>, u64)>,
    /// The request's filters.
    filters: Vec<RequestFilter>,
}

impl Permit {
    /// No key restriction: what the clients' configurations allow (no virtual keys exist).
    pub fn open() -> Permit {
        Permit::default()
    }

    /// The permit of virtual key `name` with `rules` (`version` changes when they do).
    pub fn for_key(name: &str, rules: Arc<HashMap<String, ToolRule>>, version: u64) -> Permit {
        Permit {
            key: Some(name.to_string()),
            rules: Some((rules, version)),
            filters: Vec::new(),
        }
    }

    /// This permit narrowed by `filter`.
    pub fn narrowed(mut self, filter: RequestFilter) -> Permit {
        if !filter.is_open() {
            self.filters.push(filter);
        }
        self
    }

    /// The caller's virtual key name.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Whether `client`'s `tool` may run (the client's own configuration is checked by the
    /// manager).
    pub fn allows(&self, client: &str, tool: &str) -> bool {
        self.rules
            .as_ref()
            .is_none_or(|(rules, _)| rules.get(client).is_some_and(|r| r.allows(tool)))
            && self.filters.iter().all(|f| f.allows(client, tool))
    }

    /// `registry` with only what this permit allows; clients left with no tools are dropped.
    pub fn view(&self, registry: Vec<ClientTools>) -> Vec<ClientTools> {
        registry
            .into_iter()
            .filter_map(|mut client| {
                client
                    .tools
                    .retain(|t| self.allows(&client.client, &t.name));
                (!client.tools.is_empty()).then_some(client)
            })
            .collect()
    }

    /// A key under which views of this permit can be cached: `None` when the request carries
    /// filters (they are rare, and their views are rebuilt).
    pub fn cache_key(&self) -> Option<(Option<String>, u64)> {
        if !self.filters.is_empty() {
            return None;
        }
        Some((self.key.clone(), self.rules.as_ref().map_or(0, |(_, v)| *v)))
    }
}
