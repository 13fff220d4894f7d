//! The LLM request log's table: batched inserts, filtered pages. Pruned with the audit log.

use rusqlite::{ToSql, params};

use super::Database;
use crate::store::StoreError;
use crate::store::audit::{LlmQuery, LlmRecord};

impl Database {
    /// Inserts `records` in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn insert_llm(&self, records: &[LlmRecord]) -> Result<(), StoreError> {
        self.with_mut(|c| {
            let transaction = c.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO llm_log (at_ms, vk, provider, model_requested, model_used, status,
                         prompt_tokens, completion_tokens, latency_ms, stream, request_id,
                         tool_call_ids)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?;
                for r in records {
                    let ids = serde_json::to_string(&r.tool_call_ids).unwrap_or_default();
                    insert.execute(params![
                        r.at_ms,
                        r.vk,
                        r.provider,
                        r.model_requested,
                        r.model_used,
                        r.status,
                        r.prompt_tokens.map(|t| t as i64),
                        r.completion_tokens.map(|t| t as i64),
                        r.latency_ms,
                        r.stream,
                        r.request_id,
                        ids
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
    pub(super) fn query_llm(&self, query: &LlmQuery) -> Result<(Vec<LlmRecord>, u64), StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<Box<dyn ToSql>> = Vec::new();
        for (column, value) in [("vk", &query.vk), ("provider", &query.provider)] {
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
                &format!("SELECT COUNT(*) FROM llm_log {filter}"),
                params.as_slice(),
                |row| row.get(0),
            )?;
            let mut statement = c.prepare(&format!(
                "SELECT at_ms, vk, provider, model_requested, model_used, status, prompt_tokens,
                     completion_tokens, latency_ms, stream, request_id, tool_call_ids
                 FROM llm_log {filter} ORDER BY at_ms DESC, id DESC LIMIT {limit} OFFSET {offset}"
            ))?;
            let rows = statement.query_map(params.as_slice(), |row| {
                let ids: String = row.get(11)?;
                Ok(LlmRecord {
                    at_ms: row.get(0)?,
                    vk: row.get(1)?,
                    provider: row.get(2)?,
                    model_requested: row.get(3)?,
                    model_used: row.get(4)?,
                    status: row.get(5)?,
                    prompt_tokens: row.get::<_, Option<i64>>(6)?.map(|t| t as u64),
                    completion_tokens: row.get::<_, Option<i64>>(7)?.map(|t| t as u64),
                    latency_ms: row.get(8)?,
                    stream: row.get(9)?,
                    request_id: row.get(10)?,
                    tool_call_ids: serde_json::from_str(&ids).unwrap_or_default(),
                })
            })?;
            let records = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((records, total as u64))
        })
    }
}
