//! The rules a permit is made of: a virtual key's tools per client, and the request filters.
//!
//! Tools are named as in OpenAI tool lists, `<client>-<tool>`; `*` means everything and
//! `<client>-*` every tool of one client. Every check is a hash lookup.

use std::collections::{HashMap, HashSet};

use crate::config::VirtualKeyClient;

/// Which tools of one client a virtual key allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolRule {
    /// Every tool (`["*"]` or `["<client>-*"]`).
    All,
    /// These tools (`[]`: none).
    Names(HashSet<String>),
}

impl ToolRule {
    /// The rule of `tools_to_execute` for `client`: `*` or `<client>-*` allow all; a name may be
    /// given bare (`read_file`) or qualified (`filesystem-read_file`).
    pub fn parse(client: &str, tools_to_execute: &[String]) -> ToolRule {
        let wildcard = format!("{client}-*");
        if tools_to_execute.iter().any(|t| t == "*" || *t == wildcard) {
            return ToolRule::All;
        }
        let prefix = format!("{client}-");
        ToolRule::Names(
            tools_to_execute
                .iter()
                .map(|t| t.strip_prefix(&prefix).unwrap_or(t).to_string())
                .collect(),
        )
    }

    /// Whether `tool` is allowed.
    pub fn allows(&self, tool: &str) -> bool {
        match self {
            ToolRule::All => true,
            ToolRule::Names(names) => names.contains(tool),
        }
    }
}

/// A virtual key's rules: a client it does not list is not allowed.
pub fn key_rules(clients: &[VirtualKeyClient]) -> HashMap<String, ToolRule> {
    clients
        .iter()
        .map(|c| {
            (
                c.mcp_client_name.clone(),
                ToolRule::parse(&c.mcp_client_name, &c.tools_to_execute),
            )
        })
        .collect()
}

/// `<client>-<tool>` names and `<client>-*` patterns, or `*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPatterns {
    all: bool,
    clients: HashSet<String>,
    tools: HashSet<String>,
}

impl ToolPatterns {
    /// Patterns from a list of entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> ToolPatterns {
        let mut patterns = ToolPatterns::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry == "*" {
                patterns.all = true;
            } else if let Some(client) = entry.strip_suffix("-*") {
                patterns.clients.insert(client.to_string());
            } else if !entry.is_empty() {
                patterns.tools.insert(entry.to_string());
            }
        }
        patterns
    }

    /// Whether `client`'s `tool` matches.
    pub fn matches(&self, client: &str, tool: &str) -> bool {
        self.all
            || self.clients.contains(client)
            || (!self.tools.is_empty() && self.tools.contains(&format!("{client}-{tool}")))
    }

    /// Whether some tool of `client` may match.
    fn may_match_client(&self, client: &str) -> bool {
        self.all
            || self.clients.contains(client)
            || self
                .tools
                .iter()
                .any(|t| t.strip_prefix(client).is_some_and(|r| r.starts_with('-')))
    }
}

/// One request's filters (from its headers, or from its body): they only ever narrow. An
/// absent list places no restriction; a present, empty include list allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// `mcp-include-clients`: only these clients (`*`: all).
    pub include_clients: Option<HashSet<String>>,
    /// `mcp-exclude-clients`: not these clients.
    pub exclude_clients: HashSet<String>,
    /// `mcp-include-tools`: only these tools.
    pub include_tools: Option<ToolPatterns>,
    /// `mcp-exclude-tools`: not these tools.
    pub exclude_tools: ToolPatterns,
}

impl RequestFilter {
    /// A filter from the four lists (each absent when not given).
    pub fn new(
        include_clients: Option<Vec<String>>,
        exclude_clients: Option<Vec<String>>,
        include_tools: Option<Vec<String>>,
        exclude_tools: Option<Vec<String>>,
    ) -> RequestFilter {
        let set = |list: Vec<String>| -> HashSet<String> {
            list.into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        RequestFilter {
            include_clients: include_clients.map(set).filter(|s| !s.contains("*")),
            exclude_clients: exclude_clients.map(set).unwrap_or_default(),
            include_tools: include_tools.map(|t| ToolPatterns::parse(&t)),
            exclude_tools: ToolPatterns::parse(&exclude_tools.unwrap_or_default()),
        }
    }

    /// Whether this filter lets `client`'s `tool` through.
    pub fn allows(&self, client: &str, tool: &str) -> bool {
        self.allows_client(client)
            && self
                .include_tools
                .as_ref()
                .is_none_or(|p| p.matches(client, tool))
            && !self.exclude_tools.matches(client, tool)
    }

    /// Whether some tool of `client` may pass.
    pub fn allows_client(&self, client: &str) -> bool {
        self.include_clients
            .as_ref()
            .is_none_or(|c| c.contains(client))
            && !self.exclude_clients.contains(client)
            && self
                .include_tools
                .as_ref()
                .is_none_or(|p| p.may_match_client(client))
    }

    /// Whether it restricts anything.
    pub fn is_open(&self) -> bool {
        *self == RequestFilter::default()
    }
}

/// A comma-separated header value as a list (`a, b` → `["a", "b"]`; empty → `[]`).
pub fn header_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn key_rules_follow_bifrost() {
        assert!(ToolRule::parse("fs", &["*".into()]).allows("x"));
        assert!(ToolRule::parse("fs", &["fs-*".into()]).allows("x"));
        assert!(!ToolRule::parse("fs", &[]).allows("x"));
        let named = ToolRule::parse("fs", &["read".into(), "fs-write".into()]);
        assert!(named.allows("read") && named.allows("write") && !named.allows("delete"));
    }

    #[test]
    fn request_filters_only_narrow() {
        let open = RequestFilter::default();
        assert!(open.allows("a", "t") && open.is_open());
        let clients = RequestFilter::new(list(&["a"]), None, None, None);
        assert!(clients.allows("a", "t") && !clients.allows("b", "t"));
        let none = RequestFilter::new(list(&[]), None, None, None);
        assert!(
            !none.allows("a", "t"),
            "an empty include list allows nothing"
        );
        let star = RequestFilter::new(list(&["*"]), list(&["b"]), None, None);
        assert!(star.allows("a", "t") && !star.allows("b", "t"));
        let tools = RequestFilter::new(None, None, list(&["a-t", "b-*"]), list(&["b-x"]));
        assert!(tools.allows("a", "t") && !tools.allows("a", "u"));
        assert!(tools.allows("b", "y") && !tools.allows("b", "x"));
        assert!(tools.allows_client("a") && !tools.allows_client("c"));
        assert!(!RequestFilter::new(None, None, list(&[]), None).allows("a", "t"));
    }

    #[test]
    fn header_lists_are_comma_separated() {
        assert_eq!(header_list(" a, b ,,c"), ["a", "b", "c"]);
        assert!(header_list("").is_empty());
    }
}
