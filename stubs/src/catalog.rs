//! The catalog: every server, tool and parameter with its Python name and types.

use serde_json::Value;

use crate::names::unique_identifiers;
use crate::schema::{Types, literal, required_names};

/// One tool as its server lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The tool's MCP name.
    pub name: String,
    /// Its human-readable title, if any.
    pub title: Option<String>,
    /// Its description, if any.
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    pub input_schema: Value,
    /// The JSON Schema of its `structuredContent`, when declared.
    pub output_schema: Option<Value>,
}

/// One server (an MCP client of codemode) and its tools.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpec {
    /// The client's name.
    pub name: String,
    /// Whether its stubs are shown to the model (a code-mode client). Servers that are not
    /// listed are still bound in the sandbox, under the same names.
    pub listed: bool,
    /// Its tools.
    pub tools: Vec<ToolSpec>,
}

/// One stub file per server (`servers/<server>.pyi`) or per tool
/// (`servers/<server>/<tool>.pyi`): Bifrost's `code_mode_binding_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingLevel {
    /// `servers/<server>.pyi`.
    #[default]
    Server,
    /// `servers/<server>/<tool>.pyi`.
    Tool,
}

/// Servers, tools and parameters with their Python names and types.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// The servers, in the order given.
    pub servers: Vec<Server>,
    /// How stubs are split into files.
    pub level: BindingLevel,
}

/// A server in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// The client's name.
    pub name: String,
    /// Its Python name: the script's global and `servers.<ident>`.
    pub ident: String,
    /// Whether the model sees its stubs.
    pub listed: bool,
    /// Its tools, in the order listed.
    pub functions: Vec<Function>,
}

/// A tool in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// The tool's MCP name.
    pub name: String,
    /// Its Python name.
    pub ident: String,
    /// The first sentence of its description, at most 80 characters.
    pub summary: String,
    /// Its whole description (or title).
    pub description: String,
    /// Parameters: required ones first, each group in the schema's order.
    pub params: Vec<Param>,
    /// The annotation of what it returns, when the tool declares an output schema.
    pub returns: Option<String>,
    /// The detailed shape of what it returns, from its output schema.
    pub returns_detail: Option<String>,
}

/// A parameter of a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The argument's name in the tool's schema.
    pub name: String,
    /// Its Python name.
    pub ident: String,
    /// Its annotation in the listing.
    pub annotation: String,
    /// Its type in the docs, with nested fields.
    pub detail: String,
    /// Whether the schema requires it.
    pub required: bool,
    /// Its default as a Python literal, when the schema gives one.
    pub default: Option<String>,
    /// Its description.
    pub description: Option<String>,
}

/// Longest summary in the listing.
const SUMMARY_CHARS: usize = 80;
/// Longest default value written out in a signature; longer ones become `...`.
const DEFAULT_CHARS: usize = 40;

impl Catalog {
    /// Builds the catalog of `servers`.
    pub fn build(servers: &[ServerSpec], level: BindingLevel) -> Catalog {
        let server_idents =
            unique_identifiers(&servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>());
        let servers = servers
            .iter()
            .zip(server_idents)
            .map(|(server, ident)| Server {
                name: server.name.clone(),
                ident,
                listed: server.listed,
                functions: functions(&server.tools),
            })
            .collect();
        Catalog { servers, level }
    }

    /// The servers the model sees.
    pub fn listed(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(|s| s.listed)
    }
}

fn functions(tools: &[ToolSpec]) -> Vec<Function> {
    let idents = unique_identifiers(&tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>());
    tools
        .iter()
        .zip(idents)
        .map(|(tool, ident)| function(tool, ident))
        .collect()
}

fn function(tool: &ToolSpec, ident: String) -> Function {
    let description = tool
        .description
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .or(tool.title.as_deref())
        .unwrap_or_default()
        .trim()
        .to_string();
    let (returns, returns_detail) = match &tool.output_schema {
        Some(schema) => {
            let types = Types::new(schema);
            (Some(types.compact(schema)), Some(types.detailed(schema)))
        }
        None => (None, None),
    };
    Function {
        name: tool.name.clone(),
        ident,
        summary: summary(&description),
        description,
        params: params(&tool.input_schema),
        returns,
        returns_detail,
    }
}

fn params(schema: &Value) -> Vec<Param> {
    let types = Types::new(schema);
    let Some(object) = types.resolve(schema).and_then(Value::as_object) else {
        return Vec::new();
    };
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required = required_names(object);
    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
    let idents = unique_identifiers(&names);
    let mut params: Vec<Param> = properties
        .iter()
        .zip(idents)
        .map(|((name, property), ident)| {
            let is_required = required.contains(&name.as_str());
            let resolved = types.resolve(property).unwrap_or(property);
            Param {
                name: name.clone(),
                ident,
                annotation: types.compact(property),
                detail: types.detailed(property),
                required: is_required,
                default: resolved.get("default").map(literal),
                description: resolved
                    .get("description")
                    .or_else(|| property.get("description"))
                    .and_then(Value::as_str)
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty()),
            }
        })
        .collect();
    // Required first; each group keeps the schema's order (the sort is stable).
    params.sort_by_key(|p| !p.required);
    params
}

/// The first sentence of `description`, whitespace collapsed, cut to [`SUMMARY_CHARS`].
fn summary(description: &str) -> String {
    let flat = description.split_whitespace().collect::<Vec<_>>().join(" ");
    let first = match flat.find(". ") {
        Some(end) => &flat[..=end],
        None => flat.as_str(),
    };
    if first.chars().count() <= SUMMARY_CHARS {
        return first.to_string();
    }
    let cut: String = first.chars().take(SUMMARY_CHARS - 3).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > SUMMARY_CHARS / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}...", cut.trim_end_matches([',', ';', ':', ' ']))
}

impl Param {
    /// The parameter as written in a signature: `path: str`, `head: int | None = None`.
    pub fn signature(&self) -> String {
        if self.required {
            return format!("{}: {}", self.ident, self.annotation);
        }
        match &self.default {
            Some(default) if default.chars().count() <= DEFAULT_CHARS => {
                format!("{}: {} = {default}", self.ident, self.annotation)
            }
            Some(_) => format!("{}: {} = ...", self.ident, self.annotation),
            None if self.annotation == "Any" || self.annotation.ends_with("| None") => {
                format!("{}: {} = None", self.ident, self.annotation)
            }
            None => format!("{}: {} | None = None", self.ident, self.annotation),
        }
    }
}

impl Function {
    /// `name(a: str, b: int | None = None) -> dict`; the return annotation only when the tool
    /// declares an output schema (every other result is "whatever the tool says", and saying
    /// `-> Any` on every line costs tokens in every listing).
    pub fn signature(&self) -> String {
        let params: Vec<String> = self.params.iter().map(Param::signature).collect();
        match &self.returns {
            Some(returns) => format!("{}({}) -> {returns}", self.ident, params.join(", ")),
            None => format!("{}({})", self.ident, params.join(", ")),
        }
    }

    /// The listing line: `def name(...): ...  # Summary.`
    pub fn line(&self) -> String {
        if self.summary.is_empty() {
            format!("def {}: ...", self.signature())
        } else {
            format!("def {}: ...  # {}", self.signature(), self.summary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, description: &str, input_schema: Value) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            title: None,
            description: Some(description.into()),
            input_schema,
            output_schema: None,
        }
    }

    #[test]
    fn the_listing_line_has_required_parameters_first() {
        let read = tool(
            "read_file",
            "Read a file as text. Handles many encodings and more.",
            json!({"type": "object", "properties": {
                "head": {"type": "integer", "description": "First N lines"},
                "path": {"type": "string"},
                "mode": {"type": "string", "enum": ["text", "bytes"], "default": "text"}
            }, "required": ["path"]}),
        );
        let f = function(&read, "read_file".into());
        assert_eq!(
            f.line(),
            r#"def read_file(path: str, head: int | None = None, mode: Literal["text", "bytes"] = "text"): ...  # Read a file as text."#
        );
    }

    #[test]
    fn summaries_are_one_short_sentence() {
        assert_eq!(summary("One.  Two."), "One.");
        assert_eq!(summary("No full stop"), "No full stop");
        assert_eq!(
            summary("Version 1.2 is\nhere. Then"),
            "Version 1.2 is here."
        );
        let long = "word ".repeat(40);
        let cut = summary(&long);
        assert!(cut.chars().count() <= SUMMARY_CHARS, "{cut}");
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn keyword_and_colliding_parameter_names_get_python_names() {
        let f = function(
            &tool(
                "convert",
                "",
                json!({"properties": {"from": {"type": "string"}, "to-unit": {"type": "string"}, "class": {}}, "required": ["from"]}),
            ),
            "convert".into(),
        );
        let idents: Vec<&str> = f.params.iter().map(|p| p.ident.as_str()).collect();
        assert_eq!(idents, ["from_", "to_unit", "class_"]);
        assert_eq!(
            f.line(),
            "def convert(from_: str, to_unit: str | None = None, class_: Any = None): ..."
        );
    }

    #[test]
    fn a_schema_without_properties_gives_no_parameters() {
        for schema in [
            json!({}),
            json!({"type": "object"}),
            json!("nonsense"),
            json!({"properties": 3}),
        ] {
            assert!(params(&schema).is_empty(), "{schema}");
        }
    }

    #[test]
    fn tool_and_server_names_collide_deterministically() {
        let servers = vec![
            ServerSpec {
                name: "my-fs".into(),
                listed: true,
                tools: vec![
                    tool("get-sum", "", json!({})),
                    tool("get_sum", "", json!({})),
                ],
            },
            ServerSpec {
                name: "my_fs".into(),
                listed: false,
                tools: vec![],
            },
        ];
        let catalog = Catalog::build(&servers, BindingLevel::Server);
        assert_eq!(catalog.servers[0].ident, "my_fs_2");
        assert_eq!(catalog.servers[1].ident, "my_fs");
        let idents: Vec<&str> = catalog.servers[0]
            .functions
            .iter()
            .map(|f| f.ident.as_str())
            .collect();
        assert_eq!(idents, ["get_sum_2", "get_sum"]);
    }
}
