//! What a script receives from an MCP tool result.
//!
//! `structuredContent` when the tool gave one; else each content block as a value (text parsed
//! as JSON when it is JSON, else the text; an image or audio block as a small
//! `{type, mime_type, size}` dict rather than its bytes; a resource as its URI and text), and one
//! block alone rather than a list of one. A result flagged `isError` becomes
//! [`ToolError::Failed`] with the text of its blocks.
//!
//! It works on the result's JSON form, so it reads every protocol version's shape the same way.

use serde_json::{Value, json};

use crate::executor::ToolError;

/// The value of a `tools/call` result (as JSON), or the failure it reports.
///
/// # Errors
/// [`ToolError::Failed`] when the result has `isError: true`.
pub fn tool_value(result: &Value) -> Result<Value, ToolError> {
    let blocks = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let text: Vec<String> = blocks.iter().map(block_text).collect();
        let message = if text.is_empty() {
            "the tool reported an error".to_string()
        } else {
            text.join("\n")
        };
        return Err(ToolError::Failed(message));
    }
    if let Some(structured) = result.get("structuredContent") {
        return Ok(structured.clone());
    }
    let mut values: Vec<Value> = blocks.iter().map(block_value).collect();
    Ok(match values.len() {
        0 => Value::Null,
        1 => values.remove(0),
        _ => Value::Array(values),
    })
}

fn block_value(block: &Value) -> Value {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => {
            let text = block
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
        Some(kind @ ("image" | "audio")) => {
            let data = block
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            json!({
                "type": kind,
                "mime_type": block.get("mimeType").cloned().unwrap_or(Value::Null),
                // base64: four characters carry three bytes.
                "size": data.trim_end_matches('=').len() * 3 / 4,
            })
        }
        Some("resource") => {
            let resource = block.get("resource").cloned().unwrap_or(Value::Null);
            json!({
                "type": "resource",
                "uri": resource.get("uri").cloned().unwrap_or(Value::Null),
                "text": resource.get("text").cloned().unwrap_or(Value::Null),
            })
        }
        Some("resource_link") => json!({
            "type": "resource_link",
            "uri": block.get("uri").cloned().unwrap_or(Value::Null),
            "name": block.get("name").cloned().unwrap_or(Value::Null),
        }),
        _ => block.clone(),
    }
}

fn block_text(block: &Value) -> String {
    match block.get("text").and_then(Value::as_str) {
        Some(text) => text.to_string(),
        None => block.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_content_wins() {
        let result =
            json!({"content": [{"type": "text", "text": "x"}], "structuredContent": {"a": 1}});
        assert_eq!(tool_value(&result), Ok(json!({"a": 1})));
    }

    #[test]
    fn json_text_is_parsed_and_plain_text_kept() {
        assert_eq!(
            tool_value(&json!({"content": [{"type": "text", "text": "[1, 2]"}]})),
            Ok(json!([1, 2]))
        );
        assert_eq!(
            tool_value(&json!({"content": [{"type": "text", "text": "Echo: hi"}]})),
            Ok(json!("Echo: hi"))
        );
    }

    #[test]
    fn several_blocks_are_a_list_and_images_a_summary() {
        let result = json!({"content": [
            {"type": "text", "text": "caption"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"}
        ]});
        assert_eq!(
            tool_value(&result),
            Ok(json!(["caption", {"type": "image", "mime_type": "image/png", "size": 3}]))
        );
    }

    #[test]
    fn is_error_is_a_tool_error_with_the_text() {
        let result =
            json!({"isError": true, "content": [{"type": "text", "text": "no such file"}]});
        assert_eq!(
            tool_value(&result),
            Err(ToolError::Failed("no such file".into()))
        );
    }
}
