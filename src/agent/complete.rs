//! The agent loop for a complete (non-streamed) answer, with Bifrost's semantics.
//!
//! Each round: ask the model; if its answer has no tool calls, or the rounds are used up, that
//! answer is the reply. Otherwise split the calls. None auto-executable: the answer goes back
//! unchanged. All of them: run them in parallel, append the assistant message and one tool
//! message per result, and ask again. Some of them: run those, and reply with one choice whose
//! content reports their results and whose `tool_calls` are the pending ones
//! (`finish_reason: "stop"`), for the app to approve. Usage is summed over every model call.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Agent, Executed, ToolCall, Usage, append_turn, auth_required};
use crate::llm::LlmError;
use crate::llm::route::{Answer, ChatRequest, Served};

impl Agent {
    /// Serves `request` (not streamed) in agent mode: the answer to return, and how its last
    /// model call was served.
    ///
    /// # Errors
    /// A model call's error, as the router gives it; tool failures are results for the model.
    pub async fn complete(
        &self,
        mut request: ChatRequest,
    ) -> Result<(Value, Served), (LlmError, Served)> {
        let started = Instant::now();
        let mut usage = Usage::default();
        let mut round = 0;
        let mut auth = None;
        loop {
            let (mut answer, mut served) = self.ask_complete(&request).await?;
            usage.add(&answer["usage"]);
            served.latency_ms = started.elapsed().as_secs_f64() * 1e3;
            served.mcp_auth_required.clone_from(&auth);
            let message = answer["choices"][0]["message"].clone();
            let calls = ToolCall::all_of(&message);
            if calls.is_empty() || round == self.max_rounds {
                return Ok(finish(answer, &usage, served));
            }
            round += 1;
            let (auto, pending) = self.split(calls).await;
            if auto.is_empty() {
                return Ok(finish(answer, &usage, served));
            }
            let executed = self.run(auto, round).await;
            auth = auth.or(auth_required(&executed));
            served.mcp_auth_required.clone_from(&auth);
            if pending.is_empty() {
                append_turn(&mut request.body, &message["content"], &executed);
                continue;
            }
            answer["choices"] = json!([{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": mixed_content(&executed),
                    "tool_calls": pending.iter().map(ToolCall::to_json).collect::<Vec<_>>(),
                },
                "finish_reason": "stop",
            }]);
            return Ok(finish(answer, &usage, served));
        }
    }

    async fn ask_complete(
        &self,
        request: &ChatRequest,
    ) -> Result<(Value, Served), (LlmError, Served)> {
        match self.ask(request, false).await? {
            Answer::Complete(answer, served) => Ok((answer, served)),
            Answer::Stream(_, served) => Err((
                LlmError::invalid("the provider streamed an answer that was not asked to stream"),
                served,
            )),
        }
    }
}

fn finish(mut answer: Value, usage: &Usage, served: Served) -> (Value, Served) {
    usage.write(&mut answer["usage"]);
    answer["extra_fields"] = json!(served);
    (answer, served)
}

/// Bifrost's report of the calls that ran before some needed approval: their outputs keyed by
/// tool name (by call id where a tool ran more than once).
fn mixed_content(executed: &[Executed]) -> String {
    let mut outputs = Map::new();
    for entry in executed {
        let twice = executed
            .iter()
            .filter(|e| e.call.name == entry.call.name)
            .count()
            > 1;
        let key = if twice {
            &entry.call.id
        } else {
            &entry.call.name
        };
        outputs.insert(key.clone(), Value::String(entry.output.clone()));
    }
    format!(
        "The Output from allowed tools calls is - {}\n\nNow I shall call these tools next...",
        Value::Object(outputs)
    )
}
