-- The schema as codemode first shipped it (databases made before migrations were numbered hold
-- exactly these tables, at user_version 0, so this migration applies to them unchanged).
CREATE TABLE IF NOT EXISTS mcp_clients (
    name TEXT PRIMARY KEY,
    config TEXT,            -- NULL: removed through the API
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS virtual_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT,          -- SHA-256 of the key; NULL: removed through the API
    config TEXT,            -- the value replaced by a placeholder
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    vk TEXT,
    client TEXT NOT NULL,
    tool TEXT NOT NULL,
    arg_bytes INTEGER NOT NULL,
    arg_hash TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error_type TEXT,
    latency_ms REAL NOT NULL,
    execution_id TEXT NOT NULL,
    parent_execution_id TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at_ms);
