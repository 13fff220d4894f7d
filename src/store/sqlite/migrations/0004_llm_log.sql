-- LLM requests through /v1/chat/completions: who, which provider and model, how it ended, tokens
-- and latency; never the content.
CREATE TABLE IF NOT EXISTS llm_log (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    vk TEXT,
    provider TEXT NOT NULL,
    model_requested TEXT NOT NULL,
    model_used TEXT,
    status INTEGER NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_ms REAL NOT NULL,
    stream INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    tool_call_ids TEXT NOT NULL   -- JSON list: the tool calls the answer asked for
);
CREATE INDEX IF NOT EXISTS llm_log_at ON llm_log (at_ms);
