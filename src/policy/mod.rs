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

pub use keys::{Auth, AuthError, KeyError, KeyGrant, KeyRing, KeyRules};
pub use rules::{RequestFilter, ToolRule};

use std::collections::HashSet;
use std::sync::Arc;

use crate::mcp::ClientTools;

/// What one request may call. Cheap to clone.
///
/// A key's part is looked up in the key ring at every check, so removing, disabling, narrowing
/// or re-valuing the key takes effect on the caller's next call, even inside a running script.
#[derive(Debug, Clone, Default)]
pub struct Permit {
    /// The caller's virtual key, when it presented one.
    key: Option<KeyGrant>,
    /// The request's filters.
    filters: Vec<RequestFilter>,
    /// When set, nothing outside these `(client, tool)` pairs (agent mode's auto-executable
    /// tools, for a script it runs without asking).
    only: Option<Arc<HashSet<(String, String)>>>,
    /// The end user behind the key, from a header the operator trusts (per-user OAuth).
    user: Option<String>,
}

impl Permit {
    /// No key restriction: what the clients' configurations allow.
    pub fn open() -> Permit {
        Permit::default()
    }

    /// The permit of the caller holding `grant`.
    pub(crate) fn for_key(grant: KeyGrant) -> Permit {
        Permit {
            key: Some(grant),
            ..Permit::default()
        }
    }

    /// This permit narrowed by `filter`.
    pub fn narrowed(mut self, filter: RequestFilter) -> Permit {
        if !filter.is_open() {
            self.filters.push(filter);
        }
        self
    }

    /// This permit narrowed to `tools`, `(client, tool)` pairs.
    pub fn only(mut self, tools: HashSet<(String, String)>) -> Permit {
        self.only = Some(Arc::new(tools));
        self
    }

    /// The caller's virtual key name.
    pub fn key(&self) -> Option<&str> {
        self.key.as_ref().map(KeyGrant::name)
    }

    /// This permit for the end user `user` behind its key, as a trusted header named them.
    pub fn for_user(mut self, user: Option<String>) -> Permit {
        self.user = user.filter(|u| !u.is_empty());
        self
    }

    /// Who the caller is for per-user OAuth: its virtual key, and the end user behind it when a
    /// trusted header named one (`key#user`); `None` when it presented neither.
    pub fn caller(&self) -> Option<String> {
        match (self.key(), &self.user) {
            (Some(key), Some(user)) => Some(format!("{key}#{user}")),
            (Some(key), None) => Some(key.to_string()),
            (None, Some(user)) => Some(format!("#{user}")),
            (None, None) => None,
        }
    }

    /// Whether `client`'s `tool` may run now (the client's own configuration is checked by the
    /// manager).
    pub fn allows(&self, client: &str, tool: &str) -> bool {
        let rules = self.key.as_ref().map(KeyGrant::current);
        self.allows_with(rules.as_ref(), client, tool)
    }

    /// [`allows`](Self::allows) against `rules`, the key's rules as looked up once (`None`: no
    /// key; `Some(None)`: the key is gone or disabled).
    fn allows_with(&self, rules: Option<&Option<KeyRules>>, client: &str, tool: &str) -> bool {
        let key_allows = match rules {
            None => true,
            Some(None) => false,
            Some(Some(rules)) => rules.allows(client, tool),
        };
        key_allows
            && self.filters.iter().all(|f| f.allows(client, tool))
            && self
                .only
                .as_ref()
                .is_none_or(|only| only.contains(&(client.to_string(), tool.to_string())))
    }

    /// Whether the caller's key lets it use `provider`'s `model` in chat requests.
    pub fn allows_model(&self, provider: &str, model: &str) -> bool {
        match self.key.as_ref().map(KeyGrant::current) {
            None => true,
            Some(None) => false,
            Some(Some(rules)) => rules.allows_model(provider, model),
        }
    }

    /// `registry` with only what this permit allows; clients left with no tools are dropped.
    pub fn view(&self, registry: Vec<ClientTools>) -> Vec<ClientTools> {
        // One look at the key for the whole registry.
        let rules = self.key.as_ref().map(KeyGrant::current);
        registry
            .into_iter()
            .filter_map(|mut client| {
                client
                    .tools
                    .retain(|t| self.allows_with(rules.as_ref(), &client.client, &t.name));
                (!client.tools.is_empty()).then_some(client)
            })
            .collect()
    }

    /// A key under which views of this permit can be cached: `None` when the request carries
    /// filters (they are rare, and their views are rebuilt). It changes when the key's rules
    /// do.
    pub fn cache_key(&self) -> Option<(Option<String>, u64)> {
        if !self.filters.is_empty() || self.only.is_some() {
            return None;
        }
        let version = match &self.key {
            None => 0,
            Some(grant) => grant.current().map_or(u64::MAX, |rules| rules.version),
        };
        Some((self.key().map(str::to_string), version))
    }
}
