//! OpenTelemetry traces: W3C Trace Context in and out, one server span per request, child
//! spans where a request spends time, background spans for fetches and reloads, and the
//! OTLP export (`export`).
//!
//! Off (no endpoint configured) means no [`Tracing`] at all: the proxy holds `None`, opens
//! no span and leaves `traceparent` to pass through like any header. Code below the proxy
//! (verification, introspection, fetches) finds the tracer in the OpenTelemetry
//! [`Context`] its future runs in, so it needs no parameter and, when nothing attached a
//! tracer, creates nothing.
//!
//! What is recorded: route ids, methods, statuses, decisions, reason labels, issuer names,
//! authorization-server host names. Never a token, a claim value, a path or a query.

mod export;

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

pub use opentelemetry::context::FutureExt;

use crate::config::TracingSettings;
use crate::ops::metrics::Metrics;

/// The tracer a request's or a background task's [`Context`] carries, for the code below
/// the proxy to open child spans with.
#[derive(Clone)]
struct ActiveTracer(SdkTracer);

/// A running trace pipeline: tracer, batch export, and what it needs to stay up.
#[derive(Clone)]
pub struct Tracing {
    inner: Arc<Inner>,
}

struct Inner {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    _runtime: Option<export::GrpcRuntime>,
}

impl Tracing {
    /// Starts the exporter for `settings`; drops and failed exports count in `metrics`.
    pub fn start(settings: &TracingSettings, metrics: Metrics) -> Result<Tracing, String> {
        let pipeline = export::pipeline(settings, metrics)?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_attributes(
                settings
                    .resource
                    .iter()
                    .map(|(key, value)| KeyValue::new(*key, value.clone())),
            )
            .build();
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sampling_ratio,
        )));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(pipeline.processor)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer_with_scope(
            &provider,
            opentelemetry::InstrumentationScope::builder("scopegate")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        Ok(Tracing {
            inner: Arc::new(Inner {
                tracer,
                provider,
                _runtime: pipeline.runtime,
            }),
        })
    }

    /// Exports what is queued and stops the exporter: at the end of the process.
    pub fn shutdown(&self) {
        if let Err(e) = self.inner.provider.shutdown() {
            tracing::warn!(error = %e, "trace export did not finish");
        }
    }

    /// The server span of a request with `headers`, continuing the client's trace when
    /// its `traceparent` is valid (a malformed one starts a new trace, per the W3C spec).
    pub fn request(&self, headers: &http::HeaderMap, start: RequestStart) -> RequestTrace {
        let parent = TraceContextPropagator::new().extract(&HeaderReader(headers));
        let parent = if parent.span().span_context().is_valid() {
            parent
        } else {
            Context::new()
        };
        let tracer = &self.inner.tracer;
        let span = tracer
            .span_builder(start.method.to_owned())
            .with_kind(SpanKind::Server)
            .with_start_time(start.at)
            .with_attributes([
                KeyValue::new("http.request.method", start.method.to_owned()),
                KeyValue::new("network.protocol.version", start.protocol_version),
                KeyValue::new("url.scheme", if start.tls { "https" } else { "http" }),
            ])
            .start_with_context(tracer, &parent);
        RequestTrace {
            cx: parent
                .with_span(span)
                .with_value(ActiveTracer(tracer.clone())),
            method: start.method.to_owned(),
            upstream: None,
        }
    }

    /// A root span of its own trace for background work (a key-set refresh, a policy
    /// reload); fetches made while its context is attached become its children.
    pub fn background(
        &self,
        name: &'static str,
        attributes: &[(&'static str, &str)],
    ) -> BackgroundSpan {
        let tracer = &self.inner.tracer;
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_attributes(
                attributes
                    .iter()
                    .map(|(key, value)| KeyValue::new(*key, value.to_string())),
            )
            .start_with_context(tracer, &Context::new());
        BackgroundSpan {
            cx: Context::new()
                .with_span(span)
                .with_value(ActiveTracer(tracer.clone())),
        }
    }
}

/// What a server span starts with.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart<'a> {
    /// The request method.
    pub method: &'a str,
    /// `1.0`, `1.1` or `2`.
    pub protocol_version: &'static str,
    /// Whether the client spoke TLS to the gateway.
    pub tls: bool,
    /// When the request's header was read.
    pub at: SystemTime,
}

/// How a request ended, for its server span.
#[derive(Debug, Clone, Copy)]
pub struct RequestEnd<'a> {
    /// The matched route id, if any.
    pub route: Option<&'a str>,
    /// Status sent to the client; 0 if none was.
    pub status: u16,
    /// `allow`, `deny`, `error`, `served`.
    pub decision: &'static str,
    /// The reason label.
    pub reason: &'static str,
    /// The configured name of the issuer whose token was accepted.
    pub issuer: Option<&'a str>,
}

/// One request's trace: its server span, and the upstream call's client span once it
/// starts.
pub struct RequestTrace {
    cx: Context,
    method: String,
    upstream: Option<Context>,
}

impl RequestTrace {
    /// The context to run the request's own work in (verification, introspection), so
    /// their spans become children of the server span.
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// The trace and server span ids, for the access line.
    pub fn ids(&self) -> (TraceId, SpanId) {
        let span = self.cx.span();
        let sc = span.span_context();
        (sc.trace_id(), sc.span_id())
    }

    /// Opens the upstream call's client span (once) and returns the `traceparent` and
    /// `tracestate` the upstream is sent: the client span as its parent.
    pub fn upstream(&mut self, address: &str, port: u16) -> Vec<(&'static str, String)> {
        let cx = self.upstream.get_or_insert_with(|| {
            let tracer = &self.cx.get::<ActiveTracer>().expect("set in request").0;
            let span = tracer
                .span_builder(self.method.clone())
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("http.request.method", self.method.clone()),
                    KeyValue::new("server.address", address.to_owned()),
                    KeyValue::new("server.port", i64::from(port)),
                ])
                .start_with_context(tracer, &self.cx);
            self.cx.with_span(span)
        });
        let mut headers = HeaderWriter::default();
        TraceContextPropagator::new().inject_context(cx, &mut headers);
        headers.0
    }

    /// Ends the spans: the route names the server span (`GET get-timesheet`; the method
    /// alone when no route matched, never the path), and the outcome becomes attributes.
    pub fn finish(self, end: RequestEnd, upstream_error: Option<&str>) {
        if let Some(cx) = &self.upstream {
            let span = cx.span();
            if end.status > 0 {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(end.status),
                ));
            }
            if let Some(error) = upstream_error {
                span.set_attribute(KeyValue::new("error.type", error.to_owned()));
                span.set_status(Status::error(error.to_owned()));
            }
            span.end();
        }
        let span = self.cx.span();
        if let Some(route) = end.route {
            span.update_name(format!("{} {route}", self.method));
            span.set_attribute(KeyValue::new("http.route", route.to_owned()));
        }
        let mut attributes = vec![
            KeyValue::new("scopegate.decision", end.decision),
            KeyValue::new("scopegate.reason", end.reason),
        ];
        if end.status > 0 {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(end.status),
            ));
        }
        if let Some(issuer) = end.issuer {
            attributes.push(KeyValue::new("scopegate.issuer", issuer.to_owned()));
        }
        // A server span is an error only for a 5xx: a refusal is the gateway working.
        if end.status >= 500 {
            attributes.push(KeyValue::new("error.type", end.status.to_string()));
            span.set_status(Status::error(end.reason));
        }
        span.set_attributes(attributes);
        span.end();
    }
}

/// A background task's root span.
pub struct BackgroundSpan {
    cx: Context,
}

impl BackgroundSpan {
    /// The context to run the task in.
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// Ends the span, an error with `error` when the task failed.
    pub fn end(self, error: Option<&str>) {
        let span = self.cx.span();
        if let Some(error) = error {
            span.set_status(Status::error(error.to_owned()));
        }
        span.end();
    }
}

/// The tracer of the context the current future runs in, when tracing is on.
fn current_tracer() -> Option<(Context, SdkTracer)> {
    Context::map_current(|cx| {
        let tracer = cx.get::<ActiveTracer>()?.0.clone();
        Some((cx.clone(), tracer))
    })
}

/// A client span around one HTTP call to an authorization server, whose `traceparent`
/// the server receives.
pub struct ClientSpan {
    cx: Context,
}

impl ClientSpan {
    /// Opens a client span under the current context; `None` when tracing is off.
    pub fn start(method: &str, host: Option<&str>, port: Option<u16>) -> Option<ClientSpan> {
        let (parent, tracer) = current_tracer()?;
        let mut attributes = vec![KeyValue::new("http.request.method", method.to_owned())];
        if let Some(host) = host {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = tracer
            .span_builder(method.to_owned())
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        Some(ClientSpan {
            cx: parent.with_span(span),
        })
    }

    /// Sets `traceparent` (and `tracestate`) on the outgoing request.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        let mut written = HeaderWriter::default();
        TraceContextPropagator::new().inject_context(&self.cx, &mut written);
        for (name, value) in written.0 {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }

    /// Ends the span with the answer's status, or the failure's kind.
    pub fn end(self, status: Option<u16>, error: Option<&str>) {
        let span = self.cx.span();
        if let Some(status) = status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(error) = error {
            span.set_attribute(KeyValue::new("error.type", error.to_owned()));
            span.set_status(Status::error(error.to_owned()));
        }
        span.end();
    }
}

/// An internal span under the current context, ended when dropped: work that costs time
/// on the request path (a signature check on a cache miss, a wait for a key refetch).
pub struct InternalSpan {
    cx: Context,
}

impl InternalSpan {
    /// Opens it; `None` when tracing is off.
    pub fn start(name: &'static str) -> Option<InternalSpan> {
        let (parent, tracer) = current_tracer()?;
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .start_with_context(&tracer, &parent);
        Some(InternalSpan {
            cx: parent.with_span(span),
        })
    }

    /// Marks it failed with a reason label (never a token or a claim).
    pub fn fail(&self, reason: &'static str) {
        self.cx.span().set_status(Status::error(reason));
    }
}

impl Drop for InternalSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// Reads `traceparent` and `tracestate` off a request's headers.
struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Collects the headers the propagator writes.
#[derive(Default)]
struct HeaderWriter(Vec<(&'static str, String)>);

impl Injector for HeaderWriter {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((name, value));
    }
}

/// The W3C Trace Context headers: removed from a request and set again from the gateway's
/// span when tracing is on.
pub const HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The server span context's ids, as the access line writes them.
pub fn hex_ids(ids: (TraceId, SpanId)) -> (String, String) {
    (format!("{:032x}", ids.0), format!("{:016x}", ids.1))
}

/// A `traceparent` value read as the gateway reads it; `None` when malformed.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut map = http::HeaderMap::new();
    map.insert("traceparent", http::HeaderValue::from_str(value).ok()?);
    let cx = TraceContextPropagator::new().extract(&HeaderReader(&map));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The names of the spans, for documentation and tests.
pub mod names {
    /// A token's signature and claims checked on a verified-token cache miss.
    pub const VERIFY: &str = "verify token";
    /// A request waiting for the key-set refetch its unknown `kid` caused.
    pub const KEY_WAIT: &str = "wait for key set";
    /// One issuer's key-set refresh (discovery, then the key set), a trace of its own.
    pub const JWKS_REFRESH: &str = "jwks refresh";
    /// A policy reload, a trace of its own.
    pub const POLICY_RELOAD: &str = "policy reload";
}
