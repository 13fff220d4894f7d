//! The audit log: every tool execution, recorded without slowing the call.
//!
//! [`AuditLog::record`] only queues the record (an unbounded channel: it never blocks). One
//! writer task gathers records for up to 100 ms and inserts them in one transaction, so
//! a busy service writes a transaction per window, not per call; it prunes by age and count as
//! it goes.
//! [`AuditLog::flush`] waits until everything queued so far is written: the service calls it at
//! shutdown, so a clean stop loses nothing.
//!
//! What one caller can write is bounded: a call refused by its permit costs the caller nothing,
//! so past [`DENIED_PER_MINUTE`] records a minute, a caller's denied calls are folded into one
//! record per write (the first one's details, `repeats` counting them all). Every call is still
//! counted; a flood of refusals cannot fill the log or push out everyone else's records.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::config::AuditConfig;
use crate::store::{AuditOutcome, AuditRecord, AuditStore, LlmRecord};

enum Message {
    Record(Box<AuditRecord>),
    Llm(Box<LlmRecord>),
    Flush(oneshot::Sender<()>),
}

/// Tool call ids remembered to link an execution to the LLM request that asked for it.
const MAX_LINKS: usize = 10_000;

/// How long the writer gathers records before writing them: under load one transaction per
/// window instead of one per call (a flush writes at once).
const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// Records written between two prunes.
const PRUNE_EVERY: usize = 10_000;
/// Most records taken from the queue for one transaction.
const BATCH: usize = 1_024;
/// Denied calls one caller may have recorded one by one per minute; the rest are folded.
pub const DENIED_PER_MINUTE: u32 = 100;

/// The audit log's queue and writer.
pub struct AuditLog {
    queue: mpsc::UnboundedSender<Message>,
    links: std::sync::Mutex<Links>,
}

/// The most recent tool call ids of LLM answers, and the request each came from.
#[derive(Default)]
struct Links {
    by_call: HashMap<String, String>,
    order: std::collections::VecDeque<String>,
}

impl AuditLog {
    /// Starts the writer into `store`, keeping what `retention` allows. Needs a Tokio runtime.
    pub fn start(store: Arc<dyn AuditStore>, retention: AuditConfig) -> AuditLog {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write(store, retention, receiver));
        AuditLog {
            queue,
            links: std::sync::Mutex::new(Links::default()),
        }
    }

    /// Queues an LLM request's record, and remembers its tool call ids (the most recent
    /// 10,000), so the executions that follow can name it as their parent.
    pub fn record_llm(&self, record: LlmRecord) {
        {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            for id in &record.tool_call_ids {
                if links
                    .by_call
                    .insert(id.clone(), record.request_id.clone())
                    .is_none()
                {
                    links.order.push_back(id.clone());
                }
            }
            while links.order.len() > MAX_LINKS {
                if let Some(oldest) = links.order.pop_front() {
                    links.by_call.remove(&oldest);
                }
            }
        }
        if self.queue.send(Message::Llm(Box::new(record))).is_err() {
            tracing::error!("the audit writer has stopped; a record is lost");
        }
    }

    /// The LLM request whose answer asked for tool call `id`, if it is remembered.
    pub fn llm_request_for(&self, id: &str) -> Option<String> {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        links.by_call.get(id).cloned()
    }

    /// Queues `record`; returns at once.
    pub fn record(&self, record: AuditRecord) {
        if self.queue.send(Message::Record(Box::new(record))).is_err() {
            tracing::error!("the audit writer has stopped; a record is lost");
        }
    }

    /// Waits until every record queued before this call is in the database.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn write(
    store: Arc<dyn AuditStore>,
    retention: AuditConfig,
    mut receiver: mpsc::UnboundedReceiver<Message>,
) {
    let mut since_prune = PRUNE_EVERY;
    let mut denied = DeniedBudget::default();
    let mut messages = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut messages, BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while messages.len() < BATCH && !messages.iter().any(|m| matches!(m, Message::Flush(_))) {
            let room = BATCH - messages.len();
            match tokio::time::timeout_at(deadline, receiver.recv_many(&mut messages, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut records = Vec::with_capacity(messages.len());
        let mut llm = Vec::new();
        let mut waiting = Vec::new();
        for message in messages.drain(..) {
            match message {
                Message::Record(record) => records.extend(denied.admit(*record)),
                Message::Llm(record) => llm.push(*record),
                Message::Flush(done) => waiting.push(done),
            }
        }
        let llm_count = llm.len();
        if llm_count > 0
            && let Err(error) = store.insert_llm(llm).await
        {
            tracing::error!(%error, lost = llm_count, "LLM records not written");
        }
        records.extend(denied.take_folded());
        since_prune += records.len();
        let prune = since_prune >= PRUNE_EVERY;
        if prune {
            since_prune = 0;
        }
        let count = records.len();
        if count > 0
            && let Err(error) = store.insert_audit(records).await
        {
            tracing::error!(%error, lost = count, "audit records not written");
        }
        if prune {
            let age = Duration::from_secs(retention.retention_days.saturating_mul(86_400));
            let oldest =
                now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
            if let Err(error) = store.prune_audit(oldest, retention.max_records).await {
                tracing::warn!(%error, "pruning the audit log failed");
            }
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

/// Bounds the denied calls each caller (its key, or none) has recorded one by one per minute.
#[derive(Default)]
struct DeniedBudget {
    minute: i64,
    written: HashMap<Option<String>, u32>,
    /// Each caller's denied calls past its budget since the last write, as one record.
    folded: HashMap<Option<String>, AuditRecord>,
}

impl DeniedBudget {
    /// `record`, when it is to be written as it is; otherwise it is folded into its caller's
    /// record.
    fn admit(&mut self, record: AuditRecord) -> Option<AuditRecord> {
        if record.outcome != AuditOutcome::Denied {
            return Some(record);
        }
        let minute = record.at_ms.div_euclid(60_000);
        if minute != self.minute {
            self.minute = minute;
            self.written.clear();
        }
        let written = self.written.entry(record.vk.clone()).or_default();
        if *written < DENIED_PER_MINUTE {
            *written += 1;
            return Some(record);
        }
        match self.folded.entry(record.vk.clone()) {
            Entry::Occupied(mut fold) => {
                let fold = fold.get_mut();
                fold.repeats = fold.repeats.saturating_add(record.repeats);
            }
            Entry::Vacant(slot) => {
                slot.insert(record);
            }
        }
        None
    }

    /// The folded records, to be written now.
    fn take_folded(&mut self) -> impl Iterator<Item = AuditRecord> + '_ {
        self.folded.drain().map(|(_, record)| record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LogQuery, Store};

    fn record(at_ms: i64, tool: &str) -> AuditRecord {
        AuditRecord {
            at_ms,
            vk: None,
            client: "c".into(),
            tool: tool.into(),
            arg_bytes: 2,
            arg_hash: "h".into(),
            outcome: crate::store::AuditOutcome::Ok,
            error_type: None,
            latency_ms: 1.0,
            execution_id: format!("id-{tool}"),
            parent_execution_id: None,
            repeats: 1,
            iteration: None,
        }
    }

    fn store() -> (tempfile::TempDir, Arc<dyn AuditStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("audit.db")).expect("store");
        (dir, store.audit)
    }

    #[tokio::test]
    async fn a_flush_writes_everything_queued_before_it() {
        let (_dir, store) = store();
        let log = AuditLog::start(Arc::clone(&store), AuditConfig::default());
        for i in 0..2_500 {
            log.record(record(now_ms(), &format!("t{i}")));
        }
        log.flush().await;
        let (_, total) = store.query_audit(LogQuery::default()).await.expect("query");
        assert_eq!(total, 2_500);
    }

    #[tokio::test]
    async fn retention_drops_old_records_then_the_oldest_beyond_the_count() {
        let (_dir, store) = store();
        let records: Vec<AuditRecord> = (0..10)
            .map(|i| record(1_000 + i, &format!("t{i}")))
            .collect();
        store.insert_audit(records).await.expect("insert");
        assert_eq!(
            store.prune_audit(1_003, 5).await.expect("prune"),
            5,
            "3 too old, then 2 over the count"
        );
        let (kept, total) = store.query_audit(LogQuery::default()).await.expect("query");
        assert_eq!(total, 5);
        let tools: Vec<&str> = kept.iter().map(|r| r.tool.as_str()).collect();
        assert_eq!(tools, ["t9", "t8", "t7", "t6", "t5"], "newest first");
    }

    #[tokio::test]
    async fn a_callers_denied_calls_past_its_budget_are_folded_and_counted() {
        let (_dir, store) = store();
        let log = AuditLog::start(Arc::clone(&store), AuditConfig::default());
        let at = now_ms();
        let denied = |vk: &str, i: u32| AuditRecord {
            vk: Some(vk.to_string()),
            outcome: AuditOutcome::Denied,
            ..record(at, &format!("t{i}"))
        };
        for i in 0..1_000 {
            log.record(denied("flood", i));
        }
        for i in 0..5 {
            log.record(denied("other", i));
            log.record(record(at, &format!("ok{i}")));
        }
        log.flush().await;
        let query = |vk: &str| LogQuery {
            vk: Some(vk.to_string()),
            limit: Some(1_000),
            ..LogQuery::default()
        };
        let (flood, rows) = store.query_audit(query("flood")).await.expect("query");
        let calls: u64 = flood.iter().map(|r| u64::from(r.repeats)).sum();
        assert_eq!(calls, 1_000, "every call is counted");
        assert!(
            rows <= u64::from(DENIED_PER_MINUTE) + 5,
            "{rows} rows for one caller's 1,000 refusals"
        );
        let (other, _) = store.query_audit(query("other")).await.expect("query");
        assert_eq!(other.len(), 5, "another caller's records are its own");
        let (_, total) = store.query_audit(LogQuery::default()).await.expect("query");
        assert_eq!(total, rows + 10);
    }
}
