//! The audit log's table: batched inserts, filtered pages, retention.

use rusqlite::params;

use super::{Database, Filter, page};
use crate::executor::ErrorKind;
use crate::store::StoreError;
use crate::store::audit::{AuditOutcome, AuditRecord, LogQuery};

impl Database {
    /// Inserts `records` in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        self.with_mut(|c| {
            let transaction = c.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO audit_log (at_ms, vk, client, tool, arg_bytes, arg_hash, outcome,
                         error_type, latency_ms, execution_id, parent_execution_id, repeats, iteration)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
                        r.error_type.map(ErrorKind::as_str),
                        r.latency_ms,
                        r.execution_id,
                        r.parent_execution_id,
                        r.repeats,
                        r.iteration
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
    pub(super) fn query_audit(
        &self,
        query: &LogQuery,
    ) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        let filter = Filter::new(
            &[
                ("vk", &query.vk),
                ("client", &query.client),
                ("tool", &query.tool),
                ("outcome", &query.outcome),
                ("parent_execution_id", &query.parent_execution_id),
            ],
            query.since,
            query.until,
        );
        let (limit, offset) = page(query.limit, query.offset);
        let params = filter.params();
        self.with(|c| {
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM audit_log {}", filter.clause),
                params.as_slice(),
                |row| row.get(0),
            )?;
            let mut statement = c.prepare(&format!(
                "SELECT at_ms, vk, client, tool, arg_bytes, arg_hash, outcome, error_type,
                     latency_ms, execution_id, parent_execution_id, repeats, iteration
                 FROM audit_log {} ORDER BY at_ms DESC, id DESC LIMIT {limit} OFFSET {offset}",
                filter.clause
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
                        AuditOutcome::parse(&text).ok_or_else(|| unreadable(6, "outcome", &text))?
                    },
                    error_type: {
                        let text: Option<String> = row.get(7)?;
                        text.map(|text| {
                            ErrorKind::parse(&text)
                                .ok_or_else(|| unreadable(7, "error type", &text))
                        })
                        .transpose()?
                    },
                    latency_ms: row.get(8)?,
                    execution_id: row.get(9)?,
                    parent_execution_id: row.get(10)?,
                    repeats: row.get(11)?,
                    iteration: row.get(12)?,
                })
            })?;
            let records = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((records, total as u64))
        })
    }

    /// Deletes records older than `oldest_ms` and all but the newest `max_records`, in the
    /// tool log and the LLM log alike.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub(super) fn prune_audit(
        &self,
        oldest_ms: i64,
        max_records: u64,
    ) -> Result<usize, StoreError> {
        self.with(|c| {
            let old = c.execute("DELETE FROM audit_log WHERE at_ms < ?1", params![oldest_ms])?;
            let extra = c.execute(
                "DELETE FROM audit_log WHERE id <= (SELECT id FROM audit_log ORDER BY id DESC
                     LIMIT 1 OFFSET ?1)",
                params![max_records as i64],
            )?;
            // The LLM request log keeps the same retention.
            let old_llm = c.execute("DELETE FROM llm_log WHERE at_ms < ?1", params![oldest_ms])?;
            let extra_llm = c.execute(
                "DELETE FROM llm_log WHERE id <= (SELECT id FROM llm_log ORDER BY id DESC
                     LIMIT 1 OFFSET ?1)",
                params![max_records as i64],
            )?;
            Ok(old + extra + old_llm + extra_llm)
        })
    }
}

/// A column holding a name codemode does not know.
fn unreadable(column: usize, what: &str, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("unknown {what} {text:?}").into(),
    )
}
