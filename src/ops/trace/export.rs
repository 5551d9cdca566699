//! The way finished spans leave the process: the SDK's batch processor (a thread of its
//! own, never the request thread) behind a bounded gate that counts what it drops, and the
//! OTLP exporter behind a counter of what the collector took.
//!
//! The SDK's processor drops spans when its queue is full, but keeps the count to itself;
//! the gate below admits at most `queue_size` spans not yet handed to the exporter, so the
//! SDK's queue of the same size never overflows and every drop is one the gate counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};

use crate::config::{OtlpProtocol, TracingSettings};
use crate::ops::metrics::Metrics;

/// The batch processor and what keeps the gRPC exporter's channel running.
pub(super) struct Pipeline {
    pub(super) processor: GatedProcessor,
    pub(super) runtime: Option<GrpcRuntime>,
}

/// Builds the exporter for `settings` and the gated batch processor around it.
pub(super) fn pipeline(settings: &TracingSettings, metrics: Metrics) -> Result<Pipeline, String> {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(settings.queue_size)
        .with_max_export_batch_size(settings.queue_size.min(512))
        .with_scheduled_delay(settings.export_interval)
        .build();
    let headers: HashMap<String, String> = settings
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.expose_str()?.to_owned())))
        .collect();
    let (processor, runtime) = match settings.protocol {
        OtlpProtocol::HttpProtobuf => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(&settings.endpoint)
                .with_timeout(settings.export_timeout)
                .with_headers(headers)
                .build()
                .map_err(|e| e.to_string())?;
            let counted = Counted::new(exporter, in_flight.clone(), metrics.clone());
            (BatchSpanProcessor::new(counted, batch), None)
        }
        OtlpProtocol::Grpc => {
            // tonic's channel spawns its connection task on the runtime it is built in;
            // the batch thread then only waits on it.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("scopegate-otlp")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let mut map = http::HeaderMap::new();
            for (name, value) in &headers {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    http::HeaderValue::from_str(value),
                ) {
                    map.insert(name, value);
                }
            }
            let metadata =
                opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map);
            let exporter = {
                let _entered = runtime.enter();
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(&settings.endpoint)
                    .with_timeout(settings.export_timeout)
                    .with_metadata(metadata)
                    .build()
                    .map_err(|e| e.to_string())?
            };
            let counted = Counted::new(exporter, in_flight.clone(), metrics.clone());
            (
                BatchSpanProcessor::new(counted, batch),
                Some(GrpcRuntime(Some(runtime))),
            )
        }
    };
    Ok(Pipeline {
        processor: GatedProcessor {
            inner: processor,
            in_flight,
            limit: settings.queue_size,
            metrics,
        },
        runtime,
    })
}

/// The runtime the gRPC channel's tasks run on; shut down without waiting, as it may be
/// dropped inside another runtime.
pub(super) struct GrpcRuntime(Option<tokio::runtime::Runtime>);

impl Drop for GrpcRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Admits a finished span to the batch processor only while fewer than `limit` wait for
/// export; the rest are dropped and counted, so a slow or absent collector never grows
/// memory or delays a request.
#[derive(Debug)]
pub(super) struct GatedProcessor {
    inner: BatchSpanProcessor,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
    metrics: Metrics,
}

impl SpanProcessor for GatedProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            self.metrics.span_dropped_queue_full();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, counting each batch as exported or dropped, and releasing its spans from
/// the gate as it takes them.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    in_flight: Arc<AtomicUsize>,
    metrics: Metrics,
    /// Whether the last export failed: one warning per outage, not one per batch.
    failing: AtomicBool,
}

impl<E> Counted<E> {
    fn new(inner: E, in_flight: Arc<AtomicUsize>, metrics: Metrics) -> Counted<E> {
        Counted {
            inner,
            in_flight,
            metrics,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        self.in_flight.fetch_sub(spans, Ordering::AcqRel);
        let result = self.inner.export(batch).await;
        self.metrics.spans_exported(spans as u64, result.is_ok());
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("trace export recovered");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "trace export failed; spans are dropped (scopegate_trace_spans_dropped_total) until the collector answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}
