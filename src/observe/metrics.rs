//! Prometheus metrics, `GET /metrics`: what the gateway did, counted where it happens.
//!
//! Every label value comes from a closed set: outcomes, error kinds and limits are enums;
//! routes are the router's own patterns; statuses are numbers; client and tool names are those
//! of configured clients and their listed tools, and anything else a caller names (an unknown
//! tool, a denied one) is counted as `other`; LLM models are the first [`MAX_MODELS`] a
//! configured provider served, then `other`. So no caller can grow the label space.
//!
//! Counters and histograms are updated as things happen; the gauges of the moment (sandbox
//! slots busy, queue depth, client states) are set when scraped.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::executor::{ErrorKind, RunResult};
use crate::mcp::ClientStatus;
use crate::store::AuditOutcome;

/// Distinct LLM model labels kept per process; later ones are counted as `other`.
pub const MAX_MODELS: usize = 100;

/// The label of whatever is not a configured name.
const OTHER: &str = "other";

/// `client`, `tool`, `outcome` of a tool call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolCall {
    client: String,
    tool: String,
    outcome: &'static str,
}

/// `outcome` (`ok` or the error kind) and `limit` (the limit that fired, or `none`) of an
/// execution.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Execution {
    outcome: String,
    limit: &'static str,
}

/// `outcome` of an execution.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutionOutcome {
    outcome: String,
}

/// `route` and `status` of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRequest {
    route: String,
    status: u16,
}

/// `client` and `state` of a client.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientStateLabels {
    client: String,
    state: &'static str,
}

/// `provider`, `model`, `status` of an LLM request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LlmRequest {
    provider: String,
    model: String,
    status: u16,
}

/// `provider`, `model`, `kind` (`prompt` or `completion`) of LLM tokens.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LlmTokens {
    provider: String,
    model: String,
    kind: &'static str,
}

/// Histograms of seconds, 1 ms to about 65 s.
#[derive(Clone)]
struct Seconds;

impl MetricConstructor<Histogram> for Seconds {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 2.0, 17))
    }
}

/// Every metric codemode exports.
pub struct Metrics {
    registry: Registry,
    tool_calls: Family<ToolCall, Counter>,
    tool_call_seconds: Family<ToolCall, Histogram, Seconds>,
    executions: Family<Execution, Counter>,
    execution_seconds: Family<ExecutionOutcome, Histogram, Seconds>,
    execution_peak_memory_bytes: Histogram,
    sandbox_slots_busy: Gauge,
    sandbox_queue_depth: Gauge,
    client_state: Family<ClientStateLabels, Gauge>,
    http_requests: Family<HttpRequest, Counter>,
    http_request_seconds: Family<HttpRequest, Histogram, Seconds>,
    llm_requests: Family<LlmRequest, Counter>,
    llm_tokens: Family<LlmTokens, Counter>,
    models: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under `codemode_`.
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("codemode"),
            tool_calls: Family::default(),
            tool_call_seconds: Family::new_with_constructor(Seconds),
            executions: Family::default(),
            execution_seconds: Family::new_with_constructor(Seconds),
            execution_peak_memory_bytes: Histogram::new(exponential_buckets(
                1024.0 * 1024.0,
                2.0,
                12,
            )),
            sandbox_slots_busy: Gauge::default(),
            sandbox_queue_depth: Gauge::default(),
            client_state: Family::default(),
            http_requests: Family::default(),
            http_request_seconds: Family::new_with_constructor(Seconds),
            llm_requests: Family::default(),
            llm_tokens: Family::default(),
            models: Mutex::new(HashSet::new()),
        };
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "tool_calls",
            "Tool calls by client, tool and outcome",
            self.tool_calls.clone(),
        );
        registry.register(
            "tool_call_seconds",
            "Tool call latency",
            self.tool_call_seconds.clone(),
        );
        registry.register(
            "executions",
            "Sandbox executions by outcome and the limit that fired",
            self.executions.clone(),
        );
        registry.register(
            "execution_seconds",
            "Sandbox execution wall time by outcome",
            self.execution_seconds.clone(),
        );
        registry.register(
            "execution_peak_memory_bytes",
            "Peak memory of a sandbox execution",
            self.execution_peak_memory_bytes.clone(),
        );
        registry.register(
            "sandbox_slots_busy",
            "Sandbox executions running now",
            self.sandbox_slots_busy.clone(),
        );
        registry.register(
            "sandbox_queue_depth",
            "Sandbox executions waiting for a slot now",
            self.sandbox_queue_depth.clone(),
        );
        registry.register(
            "client_state",
            "1 for each client's current state",
            self.client_state.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            self.http_requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency by route and status",
            self.http_request_seconds.clone(),
        );
        registry.register(
            "llm_requests",
            "LLM requests by provider, model and status",
            self.llm_requests.clone(),
        );
        registry.register(
            "llm_tokens",
            "LLM tokens by provider, model and kind",
            self.llm_tokens.clone(),
        );
    }

    /// A tool call finished: `known` says whether `client` and `tool` name a configured client
    /// and one of its tools (else both are counted as `other`).
    pub fn tool_call(
        &self,
        client: &str,
        tool: &str,
        known: bool,
        outcome: AuditOutcome,
        seconds: f64,
    ) {
        let (client, tool) = if known {
            (client, tool)
        } else {
            (OTHER, OTHER)
        };
        let labels = ToolCall {
            client: client.to_string(),
            tool: tool.to_string(),
            outcome: outcome.as_str(),
        };
        self.tool_calls.get_or_create(&labels).inc();
        self.tool_call_seconds
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// A sandbox execution finished with `run`.
    pub fn execution(&self, run: &RunResult) {
        // A script may raise an exception of any name: those are `ScriptError`, the host's own
        // kinds keep theirs.
        let outcome = match &run.error {
            None => "ok".to_string(),
            Some(error) => ErrorKind::parse(&error.kind)
                .map_or("ScriptError", ErrorKind::as_str)
                .to_string(),
        };
        let limit = run
            .error
            .as_ref()
            .and_then(|error| error.limit)
            .map_or("none", |limit| limit.as_str());
        self.executions
            .get_or_create(&Execution {
                outcome: outcome.clone(),
                limit,
            })
            .inc();
        self.execution_seconds
            .get_or_create(&ExecutionOutcome { outcome })
            .observe(run.stats.wall_ms / 1e3);
        self.execution_peak_memory_bytes
            .observe(run.stats.peak_memory_bytes as f64);
    }

    /// An HTTP request to `route` (the router's pattern, or `unmatched`) was answered with
    /// `status`.
    pub fn http_request(&self, route: &str, status: u16, seconds: f64) {
        let labels = HttpRequest {
            route: route.to_string(),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_request_seconds
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// An LLM request to the configured `provider` for `model` was answered with `status`,
    /// with the tokens the provider reported.
    pub fn llm_request(
        &self,
        provider: &str,
        model: &str,
        status: u16,
        tokens: (Option<u64>, Option<u64>),
    ) {
        let model = self.model_label(model);
        self.llm_requests
            .get_or_create(&LlmRequest {
                provider: provider.to_string(),
                model: model.clone(),
                status,
            })
            .inc();
        for (kind, count) in [("prompt", tokens.0), ("completion", tokens.1)] {
            if let Some(count) = count {
                self.llm_tokens
                    .get_or_create(&LlmTokens {
                        provider: provider.to_string(),
                        model: model.clone(),
                        kind,
                    })
                    .inc_by(count);
            }
        }
    }

    /// `model` while fewer than [`MAX_MODELS`] are known, else `other`.
    fn model_label(&self, model: &str) -> String {
        let mut models = self
            .models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if models.contains(model) {
            return model.to_string();
        }
        if models.len() < MAX_MODELS {
            models.insert(model.to_string());
            return model.to_string();
        }
        OTHER.to_string()
    }

    /// The metrics in the Prometheus text format, with the gauges of the moment set from
    /// `clients` and the sandbox's `(busy, queued)`.
    pub fn render(&self, clients: &[ClientStatus], sandbox: (usize, usize)) -> String {
        self.sandbox_slots_busy.set(gauge(sandbox.0));
        self.sandbox_queue_depth.set(gauge(sandbox.1));
        self.client_state.clear();
        for client in clients {
            self.client_state
                .get_or_create(&ClientStateLabels {
                    client: client.name.clone(),
                    state: client.state.as_str(),
                })
                .set(1);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn gauge(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
