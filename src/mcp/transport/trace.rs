//! The W3C trace context of a tool call, carried to its upstream server (SEP-414).
//!
//! [`stamp`] puts the current span's `traceparent` (and `tracestate`) into the call's
//! `params._meta`, where every transport carries it (a stdio server reads it there). The HTTP
//! transports also send it as headers, for the HTTP tracing in front of a server. rmcp sends a
//! request from a worker task of its own, where the caller's span is no longer current, so the
//! context rides in the message and [`headers_of`] reads it back at the HTTP client: [`Traced`]
//! is that client for streamable HTTP, and the SSE transport calls [`headers_of`] itself.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, RequestParamsMeta,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;

use crate::observe::telemetry::current_trace_headers;

/// Puts the current span's trace context into `params._meta`, when a span is being traced.
pub fn stamp(params: &mut CallToolRequestParams) {
    let headers = current_trace_headers();
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(traceparent) = value("traceparent") {
        params.set_traceparent(traceparent);
        if let Some(tracestate) = value("tracestate") {
            params.set_tracestate(tracestate);
        }
    }
}

/// The `traceparent` and `tracestate` headers of a tool call that [`stamp`] marked; none for
/// any other message.
pub fn headers_of(message: &ClientJsonRpcMessage) -> HashMap<HeaderName, HeaderValue> {
    let mut headers = HashMap::new();
    let JsonRpcMessage::Request(request) = message else {
        return headers;
    };
    let ClientRequest::CallToolRequest(call) = &request.request else {
        return headers;
    };
    let fields = [
        ("traceparent", call.params.traceparent()),
        ("tracestate", call.params.tracestate()),
    ];
    for (name, value) in fields {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    headers
}

/// A streamable-HTTP client that sends each tool call's trace context as headers.
#[derive(Clone)]
pub struct Traced<C>(pub C);

impl<C: StreamableHttpClient + Sync> StreamableHttpClient for Traced<C> {
    type Error = C::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        mut custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        custom_headers.extend(headers_of(&message));
        self.0
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        mut custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        custom_headers.extend(headers_of(&message));
        self.0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
