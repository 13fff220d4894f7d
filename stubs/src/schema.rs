//! JSON Schema → Python type annotations.
//!
//! Two renderings of the same walk: [`Types::compact`] for the one-line listing (`dict`,
//! `list[str]`, `Literal["a", "b"]`, `int | None`) and [`Types::detailed`] for the docs, where
//! an object with properties shows its fields (`{name: str, tags?: list[str]}`, `?` marking an
//! optional field). `$ref`s into the same document are followed, with cycles and depth bounded;
//! whatever cannot be expressed is `Any`. Nothing here fails: an odd schema gives `Any`.

use serde_json::{Map, Value};

/// How deep nested schemas are rendered before giving up with `Any` (or `dict`).
const MAX_DEPTH: usize = 6;
/// How deep the docs spell out the fields of nested objects.
const MAX_DETAIL_DEPTH: usize = 3;

/// Renders types of schemas inside one root document (a tool's input or output schema), which
/// `$ref`s point into.
pub struct Types<'a> {
    root: &'a Value,
}

impl<'a> Types<'a> {
    /// Types of schemas within `root`.
    pub fn new(root: &'a Value) -> Self {
        Types { root }
    }

    /// The annotation for the listing: objects are `dict`.
    pub fn compact(&self, schema: &Value) -> String {
        self.render(schema, &mut Vec::new(), 0, None)
    }

    /// The annotation for the docs: objects with properties show their fields.
    pub fn detailed(&self, schema: &Value) -> String {
        self.render(schema, &mut Vec::new(), 0, Some(0))
    }

    /// The schema `schema` stands for once `$ref`s are followed (itself when there is none),
    /// or `None` for a reference that cannot be resolved or loops.
    pub fn resolve(&self, schema: &'a Value) -> Option<&'a Value> {
        let mut seen = Vec::new();
        let mut current = schema;
        while let Some(reference) = current.get("$ref").and_then(Value::as_str) {
            if seen.contains(&reference) {
                return None;
            }
            seen.push(reference);
            current = self.lookup(reference)?;
        }
        Some(current)
    }

    fn lookup(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    /// `detail` is the object nesting level in detailed mode, `None` in compact mode.
    fn render(
        &self,
        schema: &Value,
        refs: &mut Vec<String>,
        depth: usize,
        detail: Option<usize>,
    ) -> String {
        let Some(object) = schema.as_object() else {
            return "Any".into();
        };
        if depth > MAX_DEPTH {
            return "Any".into();
        }
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            let Some(target) = self.lookup(reference) else {
                return "Any".into();
            };
            if refs.iter().any(|r| r == reference) {
                // A recursive type: name what it is without unfolding it again.
                return if is_object(target) { "dict" } else { "Any" }.into();
            }
            refs.push(reference.to_string());
            let rendered = self.render(target, refs, depth + 1, detail);
            refs.pop();
            return rendered;
        }
        let nullable = object.get("nullable") == Some(&Value::Bool(true));
        let base = self.render_object(object, refs, depth, detail);
        if nullable {
            union(vec![base, "None".into()])
        } else {
            base
        }
    }

    fn render_object(
        &self,
        object: &Map<String, Value>,
        refs: &mut Vec<String>,
        depth: usize,
        detail: Option<usize>,
    ) -> String {
        if let Some(value) = object.get("const") {
            return format!("Literal[{}]", literal(value));
        }
        if let Some(Value::Array(values)) = object.get("enum") {
            return enum_type(values);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(members)) = object.get(key) {
                let members = members
                    .iter()
                    .map(|m| self.render(m, refs, depth + 1, detail))
                    .collect();
                return union(members);
            }
        }
        if let Some(Value::Array(members)) = object.get("allOf") {
            return match members.as_slice() {
                [only] => self.render(only, refs, depth + 1, detail),
                _ => "dict".into(),
            };
        }
        match object.get("type") {
            Some(Value::String(kind)) => self.render_type(kind, object, refs, depth, detail),
            Some(Value::Array(kinds)) => union(
                kinds
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|kind| self.render_type(kind, object, refs, depth, detail))
                    .collect(),
            ),
            _ if object.contains_key("properties") => {
                self.render_type("object", object, refs, depth, detail)
            }
            _ if object.contains_key("items") => {
                self.render_type("array", object, refs, depth, detail)
            }
            _ => "Any".into(),
        }
    }

    fn render_type(
        &self,
        kind: &str,
        object: &Map<String, Value>,
        refs: &mut Vec<String>,
        depth: usize,
        detail: Option<usize>,
    ) -> String {
        match kind {
            "string" => "str".into(),
            "integer" => "int".into(),
            "number" => "float".into(),
            "boolean" => "bool".into(),
            "null" => "None".into(),
            "array" => match object.get("items") {
                Some(items @ Value::Object(_)) => {
                    format!("list[{}]", self.render(items, refs, depth + 1, detail))
                }
                _ => "list".into(),
            },
            "object" => match (detail, object.get("properties")) {
                (Some(level), Some(Value::Object(properties)))
                    if level < MAX_DETAIL_DEPTH && !properties.is_empty() =>
                {
                    self.fields(object, properties, refs, depth, level)
                }
                _ => "dict".into(),
            },
            _ => "Any".into(),
        }
    }

    /// `{name: str, tags?: list[str]}`: the fields of an object, `?` marking optional ones.
    fn fields(
        &self,
        object: &Map<String, Value>,
        properties: &Map<String, Value>,
        refs: &mut Vec<String>,
        depth: usize,
        level: usize,
    ) -> String {
        let required = required_names(object);
        let fields: Vec<String> = properties
            .iter()
            .map(|(name, schema)| {
                let mark = if required.contains(&name.as_str()) {
                    ""
                } else {
                    "?"
                };
                let kind = self.render(schema, refs, depth + 1, Some(level + 1));
                format!("{name}{mark}: {kind}")
            })
            .collect();
        format!("{{{}}}", fields.join(", "))
    }
}

fn is_object(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
        || schema.get("properties").is_some()
}

/// The names an object schema lists as `required`.
pub fn required_names(object: &Map<String, Value>) -> Vec<&str> {
    object
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn enum_type(values: &[Value]) -> String {
    let literals: Vec<String> = values
        .iter()
        .filter(|v| !v.is_null())
        .map(literal)
        .collect();
    let mut members = Vec::new();
    if !literals.is_empty() {
        members.push(format!("Literal[{}]", literals.join(", ")));
    }
    if values.iter().any(Value::is_null) {
        members.push("None".into());
    }
    union(members)
}

/// `members` joined with `|`, duplicates dropped, `None` last; `Any` absorbs everything.
fn union(members: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for member in members.into_iter().flat_map(|m| split_union(&m)) {
        if !unique.contains(&member) {
            unique.push(member);
        }
    }
    if unique.is_empty() || unique.iter().any(|m| m == "Any") {
        return "Any".into();
    }
    if let Some(position) = unique.iter().position(|m| m == "None") {
        let none = unique.remove(position);
        unique.push(none);
    }
    unique.join(" | ")
}

/// The top-level members of a rendered union (`|` outside brackets and braces).
fn split_union(rendered: &str) -> Vec<String> {
    let mut members = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = rendered.as_bytes();
    let mut in_string = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            b'[' | b'{' if !in_string => depth += 1,
            b']' | b'}' if !in_string => depth -= 1,
            b'|' if depth == 0 && !in_string => {
                members.push(rendered[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(rendered[start..].trim().to_string());
    members
}

/// `value` as a Python literal: `"text"`, `3`, `True`, `None`, `[1, 2]`, `{"a": 1}`.
pub fn literal(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(literal).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", literal(&Value::String(k.clone())), literal(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compact(schema: Value) -> String {
        Types::new(&schema).compact(&schema)
    }

    fn detailed(schema: Value) -> String {
        Types::new(&schema).detailed(&schema)
    }

    #[test]
    fn scalar_and_container_types() {
        assert_eq!(compact(json!({"type": "string"})), "str");
        assert_eq!(compact(json!({"type": "integer"})), "int");
        assert_eq!(compact(json!({"type": "number"})), "float");
        assert_eq!(compact(json!({"type": "boolean"})), "bool");
        assert_eq!(compact(json!({"type": "null"})), "None");
        assert_eq!(
            compact(json!({"type": "array", "items": {"type": "string"}})),
            "list[str]"
        );
        assert_eq!(compact(json!({"type": "array"})), "list");
        assert_eq!(
            compact(json!({"type": "object", "properties": {"a": {}}})),
            "dict"
        );
        assert_eq!(compact(json!({"properties": {"a": {}}})), "dict");
        assert_eq!(compact(json!({})), "Any");
        assert_eq!(compact(json!(true)), "Any");
        assert_eq!(compact(json!({"type": "weird"})), "Any");
    }

    #[test]
    fn enums_consts_and_unions() {
        assert_eq!(compact(json!({"enum": ["a", "b"]})), r#"Literal["a", "b"]"#);
        assert_eq!(
            compact(json!({"enum": ["a", null]})),
            r#"Literal["a"] | None"#
        );
        assert_eq!(compact(json!({"const": 3})), "Literal[3]");
        assert_eq!(compact(json!({"enum": [true, 1.5]})), "Literal[True, 1.5]");
        assert_eq!(
            compact(json!({"anyOf": [{"type": "null"}, {"type": "string"}, {"type": "integer"}]})),
            "str | int | None"
        );
        assert_eq!(compact(json!({"oneOf": [{"type": "string"}, {}]})), "Any");
        assert_eq!(compact(json!({"type": ["string", "null"]})), "str | None");
        assert_eq!(
            compact(json!({"type": "string", "nullable": true})),
            "str | None"
        );
        assert_eq!(
            compact(json!({"anyOf": [{"type": "string"}, {"type": ["string", "null"]}]})),
            "str | None"
        );
        assert_eq!(compact(json!({"allOf": [{"type": "integer"}]})), "int");
    }

    #[test]
    fn refs_are_followed_and_cycles_end() {
        let schema = json!({
            "type": "object",
            "$defs": {
                "Tag": {"type": "string", "enum": ["x", "y"]},
                "Node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}},
                "A": {"$ref": "#/$defs/B"},
                "B": {"$ref": "#/$defs/A"}
            },
            "properties": {
                "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
                "tree": {"$ref": "#/$defs/Node"},
                "loop": {"$ref": "#/$defs/A"},
                "missing": {"$ref": "#/$defs/Nope"},
                "legacy": {"$ref": "#/definitions/Old"}
            },
            "definitions": {"Old": {"type": "integer"}}
        });
        let types = Types::new(&schema);
        let property = |name: &str| &schema["properties"][name];
        assert_eq!(
            types.compact(property("tags")),
            r#"list[Literal["x", "y"]]"#
        );
        assert_eq!(types.compact(property("tree")), "dict");
        assert_eq!(types.detailed(property("tree")), "{children?: list[dict]}");
        assert_eq!(types.compact(property("loop")), "Any");
        assert_eq!(types.compact(property("missing")), "Any");
        assert_eq!(types.compact(property("legacy")), "int");
        assert!(types.resolve(property("loop")).is_none());
    }

    #[test]
    fn details_show_fields_of_nested_objects() {
        let schema = json!({
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "observations": {"type": "array", "items": {"type": "string"}}},
                "required": ["name"]
            }
        });
        assert_eq!(
            detailed(schema.clone()),
            "list[{name: str, observations?: list[str]}]"
        );
        assert_eq!(compact(schema), "list[dict]");
    }

    #[test]
    fn literals_are_python() {
        assert_eq!(literal(&json!(null)), "None");
        assert_eq!(literal(&json!(false)), "False");
        assert_eq!(literal(&json!("a\"b")), r#""a\"b""#);
        assert_eq!(literal(&json!({"k": [1, true]})), r#"{"k": [1, True]}"#);
    }
}
