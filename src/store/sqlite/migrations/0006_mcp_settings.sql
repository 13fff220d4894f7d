-- Tool manager settings changed through the API (`max_agent_depth`), by name, as JSON.
CREATE TABLE mcp_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
