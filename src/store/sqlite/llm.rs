//! The LLM request log's table: batched inserts, filtered pages. Pruned with the audit log.

use rusqlite::params;

use super::{Database, Filter, page};
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
        let filter = Filter::new(
            &[("vk", &query.vk), ("provider", &query.provider)],
            query.since,
            query.until,
        );
        let (limit, offset) = page(query.limit, query.offset);
        let params = filter.params();
        self.with(|c| {
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM llm_log {}", filter.clause),
                params.as_slice(),
                |row| row.get(0),
            )?;
            let mut statement = c.prepare(&format!(
                "SELECT at_ms, vk, provider, model_requested, model_used, status, prompt_tokens,
                     completion_tokens, latency_ms, stream, request_id, tool_call_ids
                 FROM llm_log {} ORDER BY at_ms DESC, id DESC LIMIT {limit} OFFSET {offset}",
                filter.clause
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
