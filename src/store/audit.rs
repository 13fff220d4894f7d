//! The audit log's table: batched inserts, filtered pages, retention.

use rusqlite::{ToSql, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// How a recorded tool execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// The tool answered.
    Ok,
    /// The tool failed, reported an error, or could not be reached.
    Error,
    /// The caller's permit refused the call; the server never saw it.
    Denied,
}

impl AuditOutcome {
    /// The name stored and shown: `ok`, `error`, `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Error => "error",
            AuditOutcome::Denied => "denied",
        }
    }

    fn parse(text: &str) -> Option<AuditOutcome> {
        [AuditOutcome::Ok, AuditOutcome::Error, AuditOutcome::Denied]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

/// One tool execution, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the call started, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The caller's virtual key, when it presented one.
    pub vk: Option<String>,
    /// The client called.
    pub client: String,
    /// The tool called.
    pub tool: String,
    /// Bytes of the JSON arguments.
    pub arg_bytes: u64,
    /// SHA-256 of the JSON arguments, hex (the arguments themselves are not kept).
    pub arg_hash: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The error's type (`tool_error`, `tool_timeout`, ...), when it failed.
    pub error_type: Option<String>,
    /// From the start of the call to its answer, in milliseconds.
    pub latency_ms: f64,
    /// This call's id.
    pub execution_id: String,
    /// The script execution that made the call, for calls from code.
    pub parent_execution_id: Option<String>,
}

/// Which records to read: every field narrows; `limit` and `offset` page through the rest,
/// newest first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this virtual key's calls.
    pub vk: Option<String>,
    /// Only calls to this client.
    pub client: Option<String>,
    /// Only calls of this tool.
    pub tool: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only calls from code of this execution.
    pub parent_execution_id: Option<String>,
    /// From this time (milliseconds since the epoch), inclusive.
    pub since: Option<i64>,
    /// Before this time, exclusive.
    pub until: Option<i64>,
    /// Page size (default 100, at most 1,000).
    pub limit: Option<u32>,
    /// Records to skip.
    pub offset: Option<u32>,
}

impl Store {
    /// Inserts `records` in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        self.with_mut(|c| {
            let transaction = c.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO audit_log (at_ms, vk, client, tool, arg_bytes, arg_hash, outcome,
                         error_type, latency_ms, execution_id, parent_execution_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for r in records {
                    insert.execute(params![
                        r.at_ms,
                        r.vk,
                        r.client,
                        r.tool,
                        r.arg_bytes as i64,
                        r.arg_hash,
                        r.outcome.as_str(),
                        r.error_type,
                        r.latency_ms,
                        r.execution_id,
                        r.parent_execution_id
                    ])?;
                }
            }
            transaction.commit()
        })
    }

    /// One page of the records `query` selects, newest first, and how many it selects in all.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn query_audit(&self, query: &LogQuery) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<Box<dyn ToSql>> = Vec::new();
        let text_filters = [
            ("vk", &query.vk),
            ("client", &query.client),
            ("tool", &query.tool),
            ("outcome", &query.outcome),
            ("parent_execution_id", &query.parent_execution_id),
        ];
        for (column, value) in text_filters {
            if let Some(value) = value {
                values.push(Box::new(value.clone()));
                conditions.push(format!("{column} = ?{}", values.len()));
            }
        }
        if let Some(since) = query.since {
            values.push(Box::new(since));
            conditions.push(format!("at_ms >= ?{}", values.len()));
        }
        if let Some(until) = query.until {
            values.push(Box::new(until));
            conditions.push(format!("at_ms < ?{}", values.len()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit = query.limit.unwrap_or(100).min(1_000);
        let offset = query.offset.unwrap_or(0);
        let params: Vec<&dyn ToSql> = values.iter().map(|v| v.as_ref()).collect();
        self.with(|c| {
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM audit_log {filter}"),
                params.as_slice(),
                |row| row.get(0),
            )?;
            let mut statement = c.prepare(&format!(
                "SELECT at_ms, vk, client, tool, arg_bytes, arg_hash, outcome, error_type,
                     latency_ms, execution_id, parent_execution_id
                 FROM audit_log {filter} ORDER BY at_ms DESC, id DESC LIMIT {limit} OFFSET {offset}"
            ))?;
            let rows = statement.query_map(params.as_slice(), |row| {
                Ok(AuditRecord {
                    at_ms: row.get(0)?,
                    vk: row.get(1)?,
                    client: row.get(2)?,
                    tool: row.get(3)?,
                    arg_bytes: row.get::<_, i64>(4)? as u64,
                    arg_hash: row.get(5)?,
                    outcome: {
                        let text: String = row.get(6)?;
                        AuditOutcome::parse(&text).ok_or_else(|| {
                            rusqlite::Error::FromSqlConversionFailure(
                                6,
                                rusqlite::types::Type::Text,
                                format!("unknown audit outcome {text:?}").into(),
                            )
                        })?
                    },
                    error_type: row.get(7)?,
                    latency_ms: row.get(8)?,
                    execution_id: row.get(9)?,
                    parent_execution_id: row.get(10)?,
                })
            })?;
            let records = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((records, total as u64))
        })
    }

    /// Deletes records older than `oldest_ms` and all but the newest `max_records`.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn prune_audit(&self, oldest_ms: i64, max_records: u64) -> Result<usize, StoreError> {
        self.with(|c| {
            let old = c.execute("DELETE FROM audit_log WHERE at_ms < ?1", params![oldest_ms])?;
            let extra = c.execute(
                "DELETE FROM audit_log WHERE id <= (SELECT id FROM audit_log ORDER BY id DESC
                     LIMIT 1 OFFSET ?1)",
                params![max_records as i64],
            )?;
            Ok(old + extra)
        })
    }
}
