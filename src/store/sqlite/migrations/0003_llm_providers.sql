-- LLM providers changed through the API, stored as written (key values are env.NAME references).
CREATE TABLE IF NOT EXISTS llm_providers (
    name TEXT PRIMARY KEY,
    config TEXT,            -- NULL: removed through the API
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
