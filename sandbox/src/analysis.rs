//! What a script can call, decided from its source before anything runs.
//!
//! Agent mode may run a model's script on its own only if every tool the script can reach may
//! run on its own. This module answers "which tools can this script reach?" with the
//! interpreter's own parser, inside the sandbox, so hostile source never meets a parser on the
//! host. The answer is a set of `(client, tool)` pairs, or *unknown* with the first construct
//! the analysis cannot follow.
//!
//! The analysis is flow-insensitive and errs towards *unknown*:
//!
//! * A name is a *capability* (the `servers` package, a server, the `codemode` module, or one of
//!   its call functions) if it is bound to one anywhere: the prelude's server globals, imports
//!   (`from servers import fs as f`, `import servers.fs as f`, `import codemode as c`) and plain
//!   `name = <capability>` assignments, followed transitively.
//! * A capability may only be used where its effect is known: an attribute read
//!   (`fs.write_file`, `servers.fs`), a literal `getattr(fs, "write_file")`, a call of a call
//!   function with literal client and tool (`call_tool("fs", "write_file", ...)`), or the right
//!   side of a plain assignment outside a class body. Any other use (an argument, an element of a
//!   container, a return value, an attribute write) makes the answer unknown.
//! * Every tool named on a server counts as reachable, wherever it appears, so aliases of tools
//!   (`w = fs.write_file; w()`) need no tracking.
//! * What can reach around the analysis makes the answer unknown: `exec`, `eval`, `compile`,
//!   `globals`, `vars`, `type`, `setattr`, a non-literal `getattr`, private and dunder
//!   attributes (`__dict__`, `__class__`, a tool's `_tool`), frame and module attributes
//!   (`f_globals`, `sys`, `modules`), and imports outside a short allowlist (`sys`,
//!   `importlib`, `_codemode` the bridge, `pickle`, ...).
//!
//! The host does not trust this answer alone: a script that runs on its own runs under a permit
//! narrowed to the tools that may, so a wrong answer fails closed.

use std::collections::{BTreeSet, HashMap, HashSet};

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, ExprContext, Stmt};
use ruff_text_size::{Ranged, TextSize};
use serde::Serialize;

/// The verdict handed to the host (`src/executor/analysis.rs` reads it).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Analysis {
    /// `[client, tool]` pairs the script can reach (complete only when `unknown` is absent).
    tools: BTreeSet<(String, String)>,
    /// The first construct the analysis cannot follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown: Option<Finding>,
    /// The script does not parse: it cannot run, so it reaches nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    syntax_error: Option<Finding>,
}

#[derive(Debug, Serialize)]
struct Finding {
    line: usize,
    reason: String,
}

/// Analyses `code` with the servers of `bindings` (the manifest `codemode_run` takes) bound.
pub(crate) fn analyze(code: &str, bindings: &str) -> Analysis {
    let servers = Servers::from_manifest(bindings);
    let module = match ruff_python_parser::parse_module(code) {
        Ok(parsed) => parsed.into_syntax(),
        Err(error) => {
            return Analysis {
                syntax_error: Some(Finding {
                    line: line_of(code, error.location.start()),
                    reason: error.error.to_string(),
                }),
                ..Analysis::default()
            };
        }
    };
    let mut bindings = Bindings::default();
    bindings.visit_body(&module.body);
    let names = bindings.resolve(&servers);
    let mut checker = Checker {
        code,
        servers: &servers,
        names,
        rebound: bindings.rebound,
        class_depth: 0,
        analysis: Analysis::default(),
    };
    checker.visit_body(&module.body);
    checker.analysis
}

fn line_of(code: &str, offset: TextSize) -> usize {
    let end = usize::from(offset).min(code.len());
    code.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

// -- what the script is given -----------------------------------------------------------------

/// One bound server: its Python name, its client and its tools.
struct Server {
    name: String,
    client: String,
    /// Python identifier → the tool's own name.
    tools: HashMap<String, String>,
    /// The tool's own name → its Python identifier.
    by_name: HashMap<String, String>,
}

impl Server {
    /// The tool `attr` names, exactly as `_Server.__getattr__` in `python/codemode.py` finds it.
    fn tool(&self, attr: &str) -> Option<&str> {
        let known = |n: &str| self.tools.contains_key(n) || self.by_name.contains_key(n);
        let ident = match attr.strip_suffix("_async") {
            Some(stem) if !known(attr) => stem,
            _ => attr,
        };
        let ident = if self.tools.contains_key(ident) {
            ident
        } else {
            self.by_name.get(ident).map_or(ident, String::as_str)
        };
        self.tools.get(ident).map(String::as_str)
    }
}

struct Servers(Vec<Server>);

impl Servers {
    /// Reads the manifest: `<python name>\t<client>\t<tools as JSON>` per line, the JSON mapping
    /// each identifier to `[tool name, parameters]`.
    fn from_manifest(bindings: &str) -> Servers {
        let servers = bindings
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, '\t');
                let (name, client, entry) = (parts.next()?, parts.next()?, parts.next()?);
                let entry: HashMap<String, (String, serde_json::Value)> =
                    serde_json::from_str(entry).ok()?;
                let tools: HashMap<String, String> = entry
                    .into_iter()
                    .map(|(ident, (tool, _))| (ident, tool))
                    .collect();
                let by_name = tools.iter().map(|(i, t)| (t.clone(), i.clone())).collect();
                Some(Server {
                    name: name.to_string(),
                    client: client.to_string(),
                    tools,
                    by_name,
                })
            })
            .collect();
        Servers(servers)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|s| s.name == name)
    }
}

// -- capabilities ---------------------------------------------------------------------------------

/// A value through which a script can reach tools.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Capability {
    /// The `servers` package.
    Package,
    /// A bound server, by index.
    Server(usize),
    /// The `codemode` module.
    Runtime,
    /// `call_tool`, `call_tool_async` or `PendingCall`: start a call by client and tool name.
    CallByName,
}

type Capabilities = HashSet<Capability>;

/// The `codemode` functions that start a call from a client and a tool name.
const CALL_BY_NAME: [&str; 3] = ["call_tool", "call_tool_async", "PendingCall"];

/// What else `codemode` exports (`__all__`): none of it reaches a tool.
const RUNTIME_SAFE: [&str; 7] = [
    "gather",
    "run",
    "ToolError",
    "ToolTimeoutError",
    "ToolUnavailableError",
    "AuthRequiredError",
    "LimitExceeded",
];

/// Modules a script may import and still be analysed: the prelude's, less those that reach the
/// interpreter's internals (`types`, `sys`, `importlib`, `inspect`, `gc`, ...).
const IMPORTABLE: [&str; 42] = [
    "json", "re", "math", "cmath", "collections", "collections.abc", "itertools", "functools",
    "datetime", "base64", "textwrap", "string", "time", "operator", "copy", "heapq", "bisect",
    "dataclasses", "enum", "typing", "decimal", "fractions", "hashlib", "html", "urllib",
    "urllib.parse", "csv", "io", "pprint", "traceback", "ast", "abc", "contextlib", "difflib",
    "struct", "uuid", "random", "statistics", "asyncio", "zlib", "binascii", "unicodedata",
];

/// Builtins that reach around any analysis of names.
const DENIED_BUILTINS: [&str; 10] = [
    "exec",
    "eval",
    "compile",
    "globals",
    "locals",
    "vars",
    "setattr",
    "delattr",
    "type",
    "breakpoint",
];

/// Dunder names a script may read (`super().__init__` is allowed separately: on anything else,
/// `__init__` would re-initialise a call with another tool).
const PLAIN_DUNDERS: [&str; 4] = ["__name__", "__qualname__", "__doc__", "__module__"];

/// Attributes that lead to the interpreter's internals: modules other modules imported, frames,
/// code, and the functions that read attributes or evaluate strings by name.
const DENIED_ATTRIBUTES: [&str; 44] = [
    "sys", "os", "builtins", "modules", "importlib", "types", "inspect", "gc", "marshal",
    "pickle", "copyreg", "posix", "subprocess", "ctypes", "codecs", "tokenize", "linecache",
    "attrgetter", "methodcaller", "get_type_hints", "ForwardRef", "evaluate_forward_ref",
    "walk_stack", "walk_tb", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
    "tb_frame", "tb_next", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "co_code",
    "cell_contents", "gi_yieldfrom", "cr_await", "ag_await", "ag_code", "Formatter", "get_field",
];

/// Why reading `attr` of anything makes the answer unknown, if it does.
fn denied_attribute(attr: &str) -> Option<String> {
    if attr.starts_with('_') && !PLAIN_DUNDERS.contains(&attr) {
        return Some(format!("reads the private attribute `{attr}`"));
    }
    DENIED_ATTRIBUTES
        .contains(&attr)
        .then(|| format!("reads the attribute `{attr}`, which leads to the interpreter's internals"))
}

// -- pass 1: what names are bound to --------------------------------------------------------------

/// Collects every plain binding of a name (`name = value`, imports, `:=`), and every name the
/// script binds at all (so a rebound `getattr` is not taken for the builtin).
#[derive(Default)]
struct Bindings<'a> {
    assigned: Vec<(&'a str, &'a Expr)>,
    imported: Vec<(String, Imported)>,
    rebound: HashSet<String>,
}

/// What an import binds a name to.
enum Imported {
    Is(Capability),
    /// A server, by its Python name (`from servers import fs as f`, `import servers.fs as f`).
    Server(String),
}

impl<'a> Bindings<'a> {
    /// The capabilities of every name, to a fixed point (`b = a` may come before `a = fs`).
    fn resolve(&self, servers: &Servers) -> HashMap<String, Capabilities> {
        let mut names: HashMap<String, Capabilities> = HashMap::new();
        for (index, server) in servers.0.iter().enumerate() {
            names
                .entry(server.name.clone())
                .or_default()
                .insert(Capability::Server(index));
        }
        for (name, imported) in &self.imported {
            let capability = match imported {
                Imported::Is(capability) => Some(*capability),
                Imported::Server(server) => servers.index(server).map(Capability::Server),
            };
            if let Some(capability) = capability {
                names.entry(name.clone()).or_default().insert(capability);
            }
        }
        loop {
            let mut changed = false;
            for (name, value) in &self.assigned {
                let found = capabilities_of(value, &names, servers, &self.rebound);
                if found.is_empty() {
                    continue;
                }
                let entry = names.entry((*name).to_string()).or_default();
                let before = entry.len();
                entry.extend(found);
                changed |= entry.len() != before;
            }
            if !changed {
                return names;
            }
        }
    }

    fn import(&mut self, stmt: &ast::StmtImport) {
        for alias in &stmt.names {
            let module = alias.name.as_str();
            let top = module.split('.').next().unwrap_or(module);
            let (name, imported) = match &alias.asname {
                Some(asname) => {
                    let imported = match module.strip_prefix("servers.") {
                        Some(server) => Some(Imported::Server(server.to_string())),
                        None if module == "servers" => Some(Imported::Is(Capability::Package)),
                        None if module == "codemode" => Some(Imported::Is(Capability::Runtime)),
                        None => None,
                    };
                    (asname.as_str(), imported)
                }
                None => {
                    let imported = match top {
                        "servers" => Some(Imported::Is(Capability::Package)),
                        "codemode" => Some(Imported::Is(Capability::Runtime)),
                        _ => None,
                    };
                    (top, imported)
                }
            };
            self.rebound.insert(name.to_string());
            if let Some(imported) = imported {
                self.imported.push((name.to_string(), imported));
            }
        }
    }

    fn import_from(&mut self, stmt: &ast::StmtImportFrom) {
        let module = stmt.module.as_ref().map_or("", |m| m.as_str());
        for alias in &stmt.names {
            let original = alias.name.as_str();
            let name = alias.asname.as_ref().map_or(original, |a| a.as_str());
            self.rebound.insert(name.to_string());
            let imported = match (module, original) {
                ("codemode", "*") => {
                    for call in CALL_BY_NAME {
                        self.imported
                            .push((call.to_string(), Imported::Is(Capability::CallByName)));
                    }
                    None
                }
                ("servers", "*") => None,
                ("servers", server) => Some(Imported::Server(server.to_string())),
                ("codemode", call) if CALL_BY_NAME.contains(&call) => {
                    Some(Imported::Is(Capability::CallByName))
                }
                _ => None,
            };
            if let Some(imported) = imported {
                self.imported.push((name.to_string(), imported));
            }
        }
    }
}

impl<'a> Visitor<'a> for Bindings<'a> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Assign(assign) => {
                for target in &assign.targets {
                    if let Expr::Name(name) = target {
                        self.assigned.push((name.id.as_str(), &assign.value));
                    }
                }
            }
            Stmt::AnnAssign(assign) => {
                if let (Expr::Name(name), Some(value)) = (&*assign.target, &assign.value) {
                    self.assigned.push((name.id.as_str(), value));
                }
            }
            Stmt::Import(import) => self.import(import),
            Stmt::ImportFrom(import) => self.import_from(import),
            Stmt::FunctionDef(def) => {
                self.rebound.insert(def.name.as_str().to_string());
            }
            Stmt::ClassDef(def) => {
                self.rebound.insert(def.name.as_str().to_string());
            }
            _ => {}
        }
        visitor::walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Named(named) => {
                if let Expr::Name(name) = &*named.target {
                    self.assigned.push((name.id.as_str(), &named.value));
                }
            }
            Expr::Name(name) if name.ctx != ExprContext::Load => {
                self.rebound.insert(name.id.to_string());
            }
            _ => {}
        }
        visitor::walk_expr(self, expr);
    }

    fn visit_parameter(&mut self, parameter: &'a ast::Parameter) {
        self.rebound.insert(parameter.name.as_str().to_string());
        visitor::walk_parameter(self, parameter);
    }

    fn visit_except_handler(&mut self, handler: &'a ast::ExceptHandler) {
        let ast::ExceptHandler::ExceptHandler(handler_) = handler;
        if let Some(name) = &handler_.name {
            self.rebound.insert(name.as_str().to_string());
        }
        visitor::walk_except_handler(self, handler);
    }

    fn visit_pattern(&mut self, pattern: &'a ast::Pattern) {
        let name = match pattern {
            ast::Pattern::MatchAs(p) => p.name.as_ref(),
            ast::Pattern::MatchStar(p) => p.name.as_ref(),
            ast::Pattern::MatchMapping(p) => p.rest.as_ref(),
            _ => None,
        };
        if let Some(name) = name {
            self.rebound.insert(name.as_str().to_string());
        }
        visitor::walk_pattern(self, pattern);
    }
}

/// A literal `getattr(obj, "name"[, default])` or `hasattr(obj, "name")` call, when the builtin
/// is not rebound: `(obj, name, default)`.
fn literal_getattr<'e>(
    call: &'e ast::ExprCall,
    rebound: &HashSet<String>,
) -> Option<(&'e Expr, &'e str, Option<&'e Expr>)> {
    let Expr::Name(func) = &*call.func else {
        return None;
    };
    let id = func.id.as_str();
    if !matches!(id, "getattr" | "hasattr") || rebound.contains(id) {
        return None;
    }
    if !call.arguments.keywords.is_empty() {
        return None;
    }
    match &*call.arguments.args {
        [object, Expr::StringLiteral(name)] => Some((object, name.value.to_str(), None)),
        [object, Expr::StringLiteral(name), default] if id == "getattr" => {
            Some((object, name.value.to_str(), Some(default)))
        }
        _ => None,
    }
}

/// The capabilities `expr` evaluates to, with no side effects (pass 1).
fn capabilities_of(
    expr: &Expr,
    names: &HashMap<String, Capabilities>,
    servers: &Servers,
    rebound: &HashSet<String>,
) -> Capabilities {
    match expr {
        Expr::Name(name) => names.get(name.id.as_str()).cloned().unwrap_or_default(),
        Expr::Attribute(attribute) => {
            let base = capabilities_of(&attribute.value, names, servers, rebound);
            member(&base, attribute.attr.as_str(), servers)
        }
        Expr::Named(named) => capabilities_of(&named.value, names, servers, rebound),
        Expr::Call(call) => match literal_getattr(call, rebound) {
            Some((object, attr, _)) => {
                let base = capabilities_of(object, names, servers, rebound);
                member(&base, attr, servers)
            }
            None => Capabilities::new(),
        },
        _ => Capabilities::new(),
    }
}

/// The capabilities of attribute `attr` of a value with capabilities `base`.
fn member(base: &Capabilities, attr: &str, servers: &Servers) -> Capabilities {
    base.iter()
        .filter_map(|capability| match capability {
            Capability::Package => servers.index(attr).map(Capability::Server),
            Capability::Runtime if CALL_BY_NAME.contains(&attr) => Some(Capability::CallByName),
            _ => None,
        })
        .collect()
}

// -- pass 2: where capabilities are used ------------------------------------------------------

struct Checker<'a> {
    code: &'a str,
    servers: &'a Servers,
    names: HashMap<String, Capabilities>,
    rebound: HashSet<String>,
    class_depth: usize,
    analysis: Analysis,
}

impl Checker<'_> {
    fn unknown(&mut self, at: TextSize, reason: String) {
        if self.analysis.unknown.is_none() {
            self.analysis.unknown = Some(Finding {
                line: line_of(self.code, at),
                reason,
            });
        }
    }

    fn reach(&mut self, client: &str, tool: &str) {
        self.analysis
            .tools
            .insert((client.to_string(), tool.to_string()));
    }

    /// Every tool of server `index` (`from servers.fs import *`).
    fn reach_all(&mut self, index: usize) {
        let server = &self.servers.0[index];
        for tool in server.tools.values() {
            self.analysis
                .tools
                .insert((server.client.clone(), tool.clone()));
        }
    }

    /// Evaluates `expr` where a capability may stand (an attribute's base, a call's function,
    /// the right side of an alias) and returns what it holds.
    fn value(&mut self, expr: &Expr) -> Capabilities {
        match expr {
            Expr::Name(name) => {
                if self.is_builtin_getattr(name) && name.ctx == ExprContext::Load {
                    self.unknown(name.start(), format!("the script uses `{}` as a value", name.id));
                }
                self.check_name(name);
                self.names
                    .get(name.id.as_str())
                    .cloned()
                    .unwrap_or_default()
            }
            Expr::Attribute(attribute) if self.is_super_init(attribute) => {
                self.visit_expr(&attribute.value);
                Capabilities::new()
            }
            Expr::Attribute(attribute) => {
                let base = self.value(&attribute.value);
                self.attribute(&base, attribute.attr.as_str(), expr.start(), attribute.ctx)
            }
            Expr::Named(named) => self.value(&named.value),
            Expr::Call(call) => {
                if let Some((object, attr, default)) = literal_getattr(call, &self.rebound) {
                    let base = self.value(object);
                    if let Some(default) = default {
                        self.visit_expr(default);
                    }
                    return self.attribute(&base, attr, expr.start(), ExprContext::Load);
                }
                self.call(call, expr.start());
                Capabilities::new()
            }
            _ => {
                self.visit_expr(expr);
                Capabilities::new()
            }
        }
    }

    /// Attribute `attr` of a value with capabilities `base`: reaches a tool, yields a
    /// capability, or is something the analysis cannot follow.
    fn attribute(
        &mut self,
        base: &Capabilities,
        attr: &str,
        at: TextSize,
        ctx: ExprContext,
    ) -> Capabilities {
        if let Some(reason) = denied_attribute(attr) {
            self.unknown(at, format!("the script {reason}"));
            return Capabilities::new();
        }
        if ctx != ExprContext::Load {
            if !base.is_empty() {
                let reason = format!("the script changes `{attr}` of a server or of codemode");
                self.unknown(at, reason);
            }
            return Capabilities::new();
        }
        for capability in base {
            match *capability {
                Capability::Server(index) => {
                    let server = &self.servers.0[index];
                    if let Some(tool) = server.tool(attr) {
                        let (client, tool) = (server.client.clone(), tool.to_string());
                        self.reach(&client, &tool);
                    }
                }
                Capability::Runtime
                    if !CALL_BY_NAME.contains(&attr) && !RUNTIME_SAFE.contains(&attr) =>
                {
                    self.unknown(at, format!("the script reads `codemode.{attr}`"));
                }
                _ => {}
            }
        }
        member(base, attr, self.servers)
    }

    /// A call: of a call-by-name function with literal names, of a tool, or of anything else.
    fn call(&mut self, call: &ast::ExprCall, at: TextSize) {
        if let Expr::Name(name) = &*call.func
            && self.is_builtin_getattr(name)
        {
            let reason = format!("the script calls `{}` with a name that is not a literal string", name.id);
            self.unknown(at, reason);
            self.visit_arguments(&call.arguments);
            return;
        }
        let function = self.value(&call.func);
        if function.contains(&Capability::CallByName) {
            self.call_by_name(call, at);
        } else if !function.is_empty() {
            self.unknown(at, "the script calls a server or a module as a function".to_string());
        }
        self.visit_arguments(&call.arguments);
    }

    /// `call_tool("client", "tool", ...)`: reaches that tool if both names are literal.
    fn call_by_name(&mut self, call: &ast::ExprCall, at: TextSize) {
        let literal = |expr: Option<&Expr>| match expr {
            Some(Expr::StringLiteral(s)) => Some(s.value.to_str().to_string()),
            _ => None,
        };
        let keyword = |name: &str| {
            call.arguments
                .keywords
                .iter()
                .find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == name))
                .map(|k| &k.value)
        };
        let args = &call.arguments.args;
        let starred = args.iter().any(Expr::is_starred_expr)
            || call.arguments.keywords.iter().any(|k| k.arg.is_none());
        let client = literal(args.first().or_else(|| keyword("client")));
        let tool = literal(args.get(1).or_else(|| keyword("tool")));
        match (client, tool, starred) {
            (Some(client), Some(tool), false) => self.reach(&client, &tool),
            _ => self.unknown(
                at,
                "the script calls a tool by a name that is not a literal string".to_string(),
            ),
        }
    }

    fn describe(&self, capability: Capability) -> String {
        match capability {
            Capability::Package => "the `servers` package".to_string(),
            Capability::Server(index) => format!("the server `{}`", self.servers.0[index].name),
            Capability::Runtime => "the `codemode` module".to_string(),
            Capability::CallByName => "a function that calls tools by name".to_string(),
        }
    }

    /// `getattr` or `hasattr`, not rebound by the script.
    fn is_builtin_getattr(&self, name: &ast::ExprName) -> bool {
        let id = name.id.as_str();
        matches!(id, "getattr" | "hasattr") && !self.rebound.contains(id)
    }

    /// `super().__init__` (or `super(C, self).__init__`), the one `__init__` a script may name.
    fn is_super_init(&self, attribute: &ast::ExprAttribute) -> bool {
        let Expr::Call(call) = &*attribute.value else {
            return false;
        };
        attribute.attr.as_str() == "__init__"
            && matches!(&*call.func, Expr::Name(f) if f.id.as_str() == "super" && !self.rebound.contains("super"))
    }

    fn check_name(&mut self, name: &ast::ExprName) {
        let id = name.id.as_str();
        if name.ctx != ExprContext::Load {
            return;
        }
        if DENIED_BUILTINS.contains(&id) || (id.starts_with("__") && !PLAIN_DUNDERS.contains(&id))
        {
            self.unknown(name.start(), format!("the script uses `{id}`"));
        }
    }

    fn import(&mut self, stmt: &ast::StmtImport) {
        for alias in &stmt.names {
            let module = alias.name.as_str();
            if module == "servers" || module == "codemode" {
                continue;
            }
            if let Some(server) = module.strip_prefix("servers.") {
                if self.servers.index(server).is_none() {
                    self.unknown(alias.start(), format!("the script imports `{module}`"));
                }
                continue;
            }
            if !IMPORTABLE.contains(&module) {
                self.unknown(
                    alias.start(),
                    format!("the script imports `{module}`, which the analysis does not follow"),
                );
            }
        }
    }

    fn import_from(&mut self, stmt: &ast::StmtImportFrom) {
        let module = stmt.module.as_ref().map_or("", |m| m.as_str());
        if stmt.level > 0 {
            self.unknown(stmt.start(), "the script uses a relative import".to_string());
            return;
        }
        if let Some(server) = module.strip_prefix("servers.") {
            match self.servers.index(server) {
                Some(index) => {
                    for alias in &stmt.names {
                        if alias.name.as_str() == "*" {
                            self.reach_all(index);
                        } else {
                            let base = Capabilities::from([Capability::Server(index)]);
                            self.attribute(&base, alias.name.as_str(), alias.start(), ExprContext::Load);
                        }
                    }
                }
                None => self.unknown(stmt.start(), format!("the script imports from `{module}`")),
            }
            return;
        }
        let base = match module {
            "servers" => Capabilities::from([Capability::Package]),
            "codemode" => Capabilities::from([Capability::Runtime]),
            m if IMPORTABLE.contains(&m) => Capabilities::new(),
            m => {
                self.unknown(
                    stmt.start(),
                    format!("the script imports from `{m}`, which the analysis does not follow"),
                );
                return;
            }
        };
        for alias in &stmt.names {
            let name = alias.name.as_str();
            if name == "*" {
                if module != "servers" {
                    self.unknown(alias.start(), format!("the script imports * from `{module}`"));
                }
                continue;
            }
            self.attribute(&base, name, alias.start(), ExprContext::Load);
        }
    }

    /// A plain `name = value` (or `name: T = value`): the value may be a capability (an alias),
    /// except in a class body, where it would become a class attribute nothing tracks.
    fn alias(&mut self, value: &Expr) {
        let capabilities = self.value(value);
        if !capabilities.is_empty() && self.class_depth > 0 {
            self.unknown(
                value.start(),
                "the script stores a server in a class attribute".to_string(),
            );
        }
    }
}

impl<'a> Visitor<'a> for Checker<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Import(import) => self.import(import),
            Stmt::ImportFrom(import) => self.import_from(import),
            Stmt::Assign(assign) if assign.targets.iter().all(Expr::is_name_expr) => {
                self.alias(&assign.value);
            }
            Stmt::AnnAssign(assign) if assign.target.is_name_expr() => {
                self.visit_annotation(&assign.annotation);
                if let Some(value) = &assign.value {
                    self.alias(value);
                }
            }
            Stmt::ClassDef(_) => {
                self.class_depth += 1;
                visitor::walk_stmt(self, stmt);
                self.class_depth -= 1;
            }
            Stmt::FunctionDef(_) => {
                // A function's body is not a class body, even inside a class.
                let depth = std::mem::take(&mut self.class_depth);
                visitor::walk_stmt(self, stmt);
                self.class_depth = depth;
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(name) if name.ctx != ExprContext::Load => {}
            Expr::Name(_) | Expr::Attribute(_) | Expr::Named(_) | Expr::Call(_) => {
                let capabilities = self.value(expr);
                if let Some(capability) = capabilities.iter().next() {
                    let what = self.describe(*capability);
                    self.unknown(
                        expr.start(),
                        format!(
                            "the script uses {what} as a value (passed, stored, returned or \
                             printed), which the analysis does not follow"
                        ),
                    );
                }
            }
            _ => visitor::walk_expr(self, expr),
        }
    }

    fn visit_pattern_keyword(&mut self, keyword: &'a ast::PatternKeyword) {
        if let Some(reason) = denied_attribute(keyword.attr.as_str()) {
            self.unknown(keyword.attr.start(), format!("the script {reason}"));
        }
        visitor::walk_pattern_keyword(self, keyword);
    }
}
