//! Text for the model (stub files, their tree, one tool's docs) and the sandbox's manifest.

use serde_json::{Value, json};

use crate::catalog::{BindingLevel, Catalog, Function, Param, Server};

/// One stub file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubFile {
    /// `servers/<server>.pyi` or `servers/<server>/<tool>.pyi`.
    pub path: String,
    /// Its Python text.
    pub text: String,
}

/// A request for a file or docs that cannot be answered; the message tells the model what
/// exists instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StubError {
    /// No stub file has this name.
    #[error("no stub file {name:?}; the files are: {available}")]
    UnknownFile {
        /// The name asked for.
        name: String,
        /// The files that exist, comma-separated.
        available: String,
    },
    /// A file name that climbs out of `servers/`.
    #[error("file names may not contain '..'")]
    PathEscape,
    /// No server has this name.
    #[error("no server {name:?}; the servers are: {available}")]
    UnknownServer {
        /// The name asked for.
        name: String,
        /// The servers that exist, comma-separated.
        available: String,
    },
    /// The server has no tool of this name.
    #[error("server {server} has no tool {name:?}; its tools are: {available}")]
    UnknownTool {
        /// The server.
        server: String,
        /// The name asked for.
        name: String,
        /// Its tools, comma-separated.
        available: String,
    },
    /// A line range outside the file.
    #[error("startLine {start} is past the end of {path} ({lines} lines)")]
    LineRange {
        /// The file.
        path: String,
        /// The first line asked for.
        start: usize,
        /// Lines in the file.
        lines: usize,
    },
}

impl Catalog {
    /// The stub files of the listed servers.
    pub fn files(&self) -> Vec<StubFile> {
        match self.level {
            BindingLevel::Server => self
                .listed()
                .map(|server| StubFile {
                    path: format!("servers/{}.pyi", server.ident),
                    text: server_file(server),
                })
                .collect(),
            BindingLevel::Tool => self
                .listed()
                .flat_map(|server| {
                    server.functions.iter().map(move |function| StubFile {
                        path: format!("servers/{}/{}.pyi", server.ident, function.ident),
                        text: tool_file(function),
                    })
                })
                .collect(),
        }
    }

    /// The stub files (the answer to `listToolFiles`), compact because a model reads it with
    /// every catalogue: `servers/<name>.pyi` files with their tool counts, or with
    /// `code_mode_binding_level: tool`, each server's folder and its tool files.
    pub fn tree(&self) -> String {
        match self.level {
            BindingLevel::Server => {
                let files: Vec<String> = self
                    .listed()
                    .map(|s| format!("{} ({})", s.ident, s.functions.len()))
                    .collect();
                format!("servers/<name>.pyi (tools):\n{}\n", files.join(", "))
            }
            BindingLevel::Tool => {
                let mut tree = String::from("servers/<server>/<tool>.pyi:\n");
                for server in self.listed() {
                    let tools: Vec<&str> =
                        server.functions.iter().map(|f| f.ident.as_str()).collect();
                    tree.push_str(&format!("{}/: {}\n", server.ident, tools.join(", ")));
                }
                tree
            }
        }
    }

    /// Lines `start..=end` (1-based, clamped) of the stub file `name` (the answer to
    /// `readToolFile`), after a header giving the range and the total. `name` is matched
    /// without case; a `servers/` prefix and a `.pyi` suffix are optional.
    ///
    /// # Errors
    /// [`StubError`] for `..`, an unknown file, or a start past the end.
    pub fn read(
        &self,
        name: &str,
        start: Option<usize>,
        end: Option<usize>,
    ) -> Result<String, StubError> {
        if name.contains("..") {
            return Err(StubError::PathEscape);
        }
        let wanted = normalise(name);
        let files = self.files();
        let Some(file) = files.iter().find(|f| normalise(&f.path) == wanted) else {
            let available: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
            return Err(StubError::UnknownFile {
                name: name.to_string(),
                available: available.join(", "),
            });
        };
        let lines: Vec<&str> = file.text.lines().collect();
        let total = lines.len();
        let first = start.unwrap_or(1).max(1);
        if first > total {
            return Err(StubError::LineRange {
                path: file.path.clone(),
                start: first,
                lines: total,
            });
        }
        let last = end.unwrap_or(total).clamp(first, total);
        let mut text = format!("# {} (lines {first}-{last} of {total})\n", file.path);
        for line in &lines[first - 1..last] {
            text.push_str(line);
            text.push('\n');
        }
        Ok(text)
    }

    /// The full docs of one tool (the answer to `getToolDocs`): its signature, a docstring with
    /// the whole description, every parameter, the return shape and an example call. Names are
    /// matched as Python names or as MCP names, without case.
    ///
    /// # Errors
    /// [`StubError::UnknownServer`] or [`StubError::UnknownTool`], listing what exists.
    pub fn docs(&self, server: &str, tool: &str) -> Result<String, StubError> {
        let found = self
            .listed()
            .find(|s| s.ident.eq_ignore_ascii_case(server) || s.name.eq_ignore_ascii_case(server));
        let Some(server) = found else {
            let available: Vec<&str> = self.listed().map(|s| s.ident.as_str()).collect();
            return Err(StubError::UnknownServer {
                name: server.to_string(),
                available: available.join(", "),
            });
        };
        let found = server
            .functions
            .iter()
            .find(|f| f.ident.eq_ignore_ascii_case(tool) || f.name.eq_ignore_ascii_case(tool));
        let Some(function) = found else {
            let available: Vec<&str> = server.functions.iter().map(|f| f.ident.as_str()).collect();
            return Err(StubError::UnknownTool {
                server: server.ident.clone(),
                name: tool.to_string(),
                available: available.join(", "),
            });
        };
        Ok(docs(server, function))
    }

    /// The manifest the sandbox binds servers from: one line per server (listed or not),
    /// `<python name>\t<client>\t<tools as JSON>`, the JSON mapping each tool's Python name to
    /// `[tool name, [[parameter, its name, required], ...]]` in the stubs' parameter order. It
    /// names only the tools the caller may use: a script learns nothing of the others.
    pub fn manifest(&self) -> String {
        let mut manifest = String::new();
        for server in &self.servers {
            let tools: serde_json::Map<String, Value> = server
                .functions
                .iter()
                .map(|f| {
                    let params: Vec<Value> = f
                        .params
                        .iter()
                        .map(|p| json!([p.ident, p.name, p.required]))
                        .collect();
                    (f.ident.clone(), json!([f.name, params]))
                })
                .collect();
            manifest.push_str(&format!(
                "{}\t{}\t{}\n",
                server.ident,
                server.name,
                Value::Object(tools)
            ));
        }
        manifest
    }
}

/// `servers/filesystem` and `Servers/FileSystem.pyi` name the same file.
fn normalise(name: &str) -> String {
    let name = name.trim().trim_start_matches("./").to_ascii_lowercase();
    let name = name.strip_prefix("servers/").unwrap_or(&name);
    name.strip_suffix(".pyi").unwrap_or(name).to_string()
}

/// One line per tool and nothing else: the file path already names the server, and the
/// executeToolCode description says how to call it. (Annotations use `Any` and `Literal`
/// from `typing`, which is how a type checker reads a `.pyi`.)
fn server_file(server: &Server) -> String {
    server
        .functions
        .iter()
        .map(|function| function.line() + "\n")
        .collect()
}

fn tool_file(function: &Function) -> String {
    function.line() + "\n"
}

fn docs(server: &Server, function: &Function) -> String {
    let mut text = format!("def {}:\n    \"\"\"", function.signature());
    let description = if function.description.is_empty() {
        "(no description)".to_string()
    } else {
        function.description.replace("\"\"\"", "'''")
    };
    text.push_str(&indent(&description));
    text.push('\n');
    if function.ident != function.name {
        text.push_str(&format!("\n    MCP name: {}\n", function.name));
    }
    if !function.params.is_empty() {
        text.push_str("\n    Args:\n");
        for param in &function.params {
            text.push_str(&format!("        {}\n", param_doc(param)));
        }
    }
    text.push_str("\n    Returns:\n        ");
    text.push_str(match &function.returns_detail {
        Some(detail) => detail,
        None => "the tool's result: structured content, else its text (parsed when it is JSON)",
    });
    text.push_str(&format!(
        "\n\n    Example:\n        {}.{}({})\n    \"\"\"\n",
        server.ident,
        function.ident,
        example_arguments(&function.params)
    ));
    text
}

fn param_doc(param: &Param) -> String {
    let mut doc = format!("{} ({}", param.ident, param.detail);
    doc.push_str(if param.required {
        ", required"
    } else {
        ", optional"
    });
    if let Some(default) = &param.default {
        doc.push_str(&format!(", default {default}"));
    }
    doc.push(')');
    if param.ident != param.name {
        doc.push_str(&format!(" [argument {:?}]", param.name));
    }
    if let Some(description) = &param.description {
        doc.push_str(": ");
        doc.push_str(&description.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    doc
}

/// Keyword arguments for the required parameters, with a placeholder of each one's type.
fn example_arguments(params: &[Param]) -> String {
    params
        .iter()
        .filter(|p| p.required)
        .map(|p| format!("{}={}", p.ident, placeholder(&p.annotation)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn placeholder(annotation: &str) -> String {
    if let Some(rest) = annotation.strip_prefix("Literal[") {
        let first = rest.split([',', ']']).next().unwrap_or("None");
        return first.trim().to_string();
    }
    let first = annotation.split(" | ").next().unwrap_or(annotation);
    match first {
        "str" => "\"...\"".into(),
        "int" => "1".into(),
        "float" => "1.0".into(),
        "bool" => "True".into(),
        "None" => "None".into(),
        other if other.starts_with("list") => "[]".into(),
        "dict" => "{}".into(),
        _ => "...".into(),
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 || line.trim().is_empty() {
                line.trim_end().to_string()
            } else {
                format!("    {}", line.trim_end())
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ServerSpec, ToolSpec};

    fn catalog(level: BindingLevel) -> Catalog {
        let tools = vec![
            ToolSpec {
                name: "get-sum".into(),
                title: None,
                description: Some("Returns the sum of two numbers. Both are required.".into()),
                input_schema: json!({"type": "object", "properties": {"a": {"type": "number", "description": "First"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
                output_schema: None,
            },
            ToolSpec {
                name: "weather".into(),
                title: Some("Weather".into()),
                description: None,
                input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}, "units": {"enum": ["c", "f"], "default": "c"}}, "required": ["city"]}),
                output_schema: Some(
                    json!({"type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"]}),
                ),
            },
        ];
        Catalog::build(
            &[
                ServerSpec {
                    name: "every-thing".into(),
                    listed: true,
                    tools,
                },
                ServerSpec {
                    name: "hidden".into(),
                    listed: false,
                    tools: vec![],
                },
            ],
            level,
        )
    }

    #[test]
    fn server_files_list_one_line_per_tool() {
        let files = catalog(BindingLevel::Server).files();
        assert_eq!(files.len(), 1, "unlisted servers have no file");
        assert_eq!(files[0].path, "servers/every_thing.pyi");
        assert_eq!(
            files[0].text,
            "def get_sum(a: float, b: float): ...  # Returns the sum of two numbers.\n\
             def weather(city: str, units: Literal[\"c\", \"f\"] = \"c\") -> dict: ...  # Weather\n"
        );
    }

    #[test]
    fn the_tree_follows_the_binding_level() {
        assert_eq!(
            catalog(BindingLevel::Server).tree(),
            "servers/<name>.pyi (tools):\nevery_thing (2)\n"
        );
        assert_eq!(
            catalog(BindingLevel::Tool).tree(),
            "servers/<server>/<tool>.pyi:\nevery_thing/: get_sum, weather\n"
        );
        let files = catalog(BindingLevel::Tool).files();
        assert_eq!(files[1].path, "servers/every_thing/weather.pyi");
    }

    #[test]
    fn files_are_read_by_loose_names_and_line_ranges() {
        let catalog = catalog(BindingLevel::Server);
        let whole = catalog
            .read("Servers/Every_Thing.pyi", None, None)
            .expect("found");
        assert!(
            whole.starts_with("# servers/every_thing.pyi (lines 1-2 of 2)\n"),
            "{whole}"
        );
        assert_eq!(
            catalog
                .read("every_thing", Some(1), Some(1))
                .expect("found"),
            "# servers/every_thing.pyi (lines 1-1 of 2)\ndef get_sum(a: float, b: float): ...  # Returns the sum of two numbers.\n"
        );
        assert_eq!(
            catalog.read("../etc/passwd", None, None),
            Err(StubError::PathEscape)
        );
        let unknown = catalog.read("nope", None, None).expect_err("unknown");
        assert_eq!(
            unknown.to_string(),
            "no stub file \"nope\"; the files are: servers/every_thing.pyi"
        );
        assert!(matches!(
            catalog.read("every_thing", Some(9), None),
            Err(StubError::LineRange { .. })
        ));
        assert!(
            catalog
                .read("every_thing", Some(2), Some(100))
                .expect("clamped")
                .contains("(lines 2-2 of 2)")
        );
    }

    #[test]
    fn docs_describe_every_parameter_and_the_return_shape() {
        let catalog = catalog(BindingLevel::Server);
        let docs = catalog
            .docs("every-thing", "GET-SUM")
            .expect("found by MCP names");
        assert_eq!(
            docs,
            "def get_sum(a: float, b: float):\n    \"\"\"Returns the sum of two numbers. Both are required.\n\n    MCP name: get-sum\n\n    Args:\n        a (float, required): First\n        b (float, required)\n\n    Returns:\n        the tool's result: structured content, else its text (parsed when it is JSON)\n\n    Example:\n        every_thing.get_sum(a=1.0, b=1.0)\n    \"\"\"\n"
        );
        let weather = catalog.docs("every_thing", "weather").expect("found");
        assert!(
            weather.contains("units (Literal[\"c\", \"f\"], optional, default \"c\")"),
            "{weather}"
        );
        assert!(
            weather.contains("Returns:\n        {temp: float}"),
            "{weather}"
        );
        assert!(
            weather.contains("every_thing.weather(city=\"...\")"),
            "{weather}"
        );
        assert_eq!(
            catalog
                .docs("every_thing", "nope")
                .expect_err("unknown")
                .to_string(),
            "server every_thing has no tool \"nope\"; its tools are: get_sum, weather"
        );
        assert_eq!(
            catalog
                .docs("hidden", "x")
                .expect_err("not listed")
                .to_string(),
            "no server \"hidden\"; the servers are: every_thing"
        );
    }

    #[test]
    fn the_manifest_covers_every_server_with_the_stub_names() {
        let manifest = catalog(BindingLevel::Server).manifest();
        let lines: Vec<&str> = manifest.lines().collect();
        assert_eq!(lines.len(), 2);
        let fields: Vec<&str> = lines[0].splitn(3, '\t').collect();
        assert_eq!(fields[..2], ["every_thing", "every-thing"]);
        let tools: Value = serde_json::from_str(fields[2]).expect("JSON");
        assert_eq!(
            tools["get_sum"],
            json!(["get-sum", [["a", "a", true], ["b", "b", true]]])
        );
        assert_eq!(tools["weather"][1][1], json!(["units", "units", false]));
        assert_eq!(lines[1], "hidden\thidden\t{}");
    }
}
