//! OpenTelemetry traces: an OTLP/HTTP collector in the test decodes what the real gateway
//! exports (with the protocol's own protobuf types), and the echo upstream and the test
//! authorization server report the `traceparent` they received.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;

use crate::authserver::{AuthServer, active};
use crate::harness::*;

/// One exported span, flattened for assertions.
#[derive(Debug, Clone)]
struct Recorded {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    /// 2 server, 3 client, 1 internal (OTLP's `SpanKind`).
    kind: i32,
    attributes: BTreeMap<String, String>,
    /// 2 is an error (OTLP's `StatusCode`).
    status: i32,
    trace_state: String,
    resource: BTreeMap<String, String>,
}

/// An OTLP/HTTP receiver on a free port: `POST /v1/traces` with protobuf bodies.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Recorded>>>,
    /// Every request body as received, to search for what must never be exported.
    raw: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn map(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

impl Collector {
    fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let raw: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (into, raw_into) = (spans.clone(), raw.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (spans, raw) = (into.clone(), raw_into.clone());
                async move {
                    raw.lock().unwrap().push(body.to_vec());
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    record(&spans, request);
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let task = rt().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector {
            addr,
            spans,
            raw,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<Recorded> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until a span satisfies `pick`, up to 10 s.
    fn wait_for(&self, what: &str, pick: impl Fn(&Recorded) -> bool) -> Recorded {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(span) = self.spans().into_iter().find(&pick) {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no span {what}; spans: {:#?}",
                self.spans()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The children of `parent`.
    fn children(&self, parent: &Recorded) -> Vec<Recorded> {
        self.spans()
            .into_iter()
            .filter(|s| s.parent == parent.span_id && s.trace_id == parent.trace_id)
            .collect()
    }
}

impl Collector {
    /// An OTLP/gRPC receiver: `TraceService/Export` over HTTP/2 (h2c), each message framed
    /// as gRPC frames it (a flag byte, a 4-byte length) and answered with `grpc-status: 0`.
    fn start_grpc() -> Collector {
        let spans: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let raw: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (into, raw_into) = (spans.clone(), raw.clone());
        let task = rt().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (spans, raw) = (into.clone(), raw_into.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (spans, raw) = (spans.clone(), raw.clone());
                            async move {
                                assert_eq!(
                                    req.uri().path(),
                                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                                );
                                let body = http_body_util::BodyExt::collect(req.into_body())
                                    .await
                                    .unwrap()
                                    .to_bytes();
                                let message = body.slice(5..);
                                raw.lock().unwrap().push(message.to_vec());
                                let request = ExportTraceServiceRequest::decode(message).unwrap();
                                record(&spans, request);
                                let mut answer = vec![0u8, 0, 0, 0, 0];
                                answer
                                    .extend(ExportTraceServiceResponse::default().encode_to_vec());
                                let response = hyper::Response::builder()
                                    .header("content-type", "application/grpc")
                                    .body(GrpcBody(Some(answer.into()), true))
                                    .unwrap();
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Collector {
            addr,
            spans,
            raw,
            task,
        }
    }
}

/// A gRPC answer: one message, then the `grpc-status: 0` trailers.
struct GrpcBody(Option<bytes::Bytes>, bool);

impl http_body::Body for GrpcBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if let Some(data) = self.0.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        if std::mem::take(&mut self.1) {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        std::task::Poll::Ready(None)
    }
}

fn record(spans: &Mutex<Vec<Recorded>>, request: ExportTraceServiceRequest) {
    let mut spans = spans.lock().unwrap();
    for rs in request.resource_spans {
        let resource = rs.resource.map(|r| map(&r.attributes)).unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                spans.push(Recorded {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    kind: s.kind,
                    attributes: map(&s.attributes),
                    status: s.status.map_or(0, |st| st.code),
                    trace_state: s.trace_state,
                    resource: resource.clone(),
                });
            }
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `traceparent`'s parts: trace id, parent id, flags.
fn parts(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
}

/// The `tracing:` section for `collector`, exporting every 100 ms.
fn tracing_section(endpoint: &str, more: &str) -> String {
    format!("tracing:\n  endpoint: \"{endpoint}\"\n  export_interval_ms: 100\n{more}")
}

/// The standard keys and policy, with tracing to `endpoint`.
fn traced(endpoint: &str, more: &str) -> (Gateway, JwksServer, Upstream) {
    Gateway::with_extra(&tracing_section(endpoint, more))
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn an_allowed_request_is_a_server_span_named_by_its_route_with_verification_and_upstream_children()
{
    let collector = Collector::start();
    let (gw, _jwks, upstream) = traced(&collector.endpoint(), "");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));

    let r = gw.call("GET", "/timesheets?page=2", &token);
    assert_eq!(r.status, 200, "{}", gw.log());

    let server = collector.wait_for("GET list-timesheets", |s| s.name == "GET list-timesheets");
    assert_eq!(server.kind, 2, "a server span");
    assert_eq!(server.parent, "", "a new trace: no parent");
    let a = &server.attributes;
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["http.route"], "list-timesheets");
    assert_eq!(a["http.response.status_code"], "200");
    assert_eq!(a["network.protocol.version"], "1.1");
    assert_eq!(a["url.scheme"], "http");
    assert_eq!(a["scopegate.decision"], "allow");
    assert_eq!(a["scopegate.reason"], "authorized");
    assert_eq!(a["scopegate.issuer"], "exampleco");
    assert!(
        !a.values()
            .any(|v| v.contains("page=2") || v.contains("/timesheets"))
    );
    assert_eq!(server.resource["service.name"], "scopegate");
    assert_eq!(
        server.resource["service.version"],
        env!("CARGO_PKG_VERSION")
    );

    // The first request with this token missed the verified-token cache.
    collector.wait_for("verify token", |s| {
        s.name == "verify token" && s.parent == server.span_id
    });
    let upstream_span = collector.wait_for("the upstream call", |s| {
        s.kind == 3 && s.parent == server.span_id
    });
    assert_eq!(upstream_span.name, "GET");
    assert_eq!(upstream_span.attributes["http.response.status_code"], "200");
    assert_eq!(upstream_span.attributes["server.address"], "127.0.0.1");

    // The upstream's parent is the gateway's client span, in the same trace.
    let (trace, parent, flags) = parts(upstream.last().header("traceparent").unwrap());
    assert_eq!(trace, server.trace_id);
    assert_eq!(parent, upstream_span.span_id);
    assert_eq!(flags, "01");

    // The access line names the trace and the server span.
    gw.wait_for(
        || {
            gw.log().contains(&format!(
                "trace_id={} span_id={}",
                server.trace_id, server.span_id
            ))
        },
        "the access line with the trace id",
    );

    // A second request with the same token hits the cache: no verification span.
    let r = gw.call("GET", "/timesheets", &token);
    assert_eq!(r.status, 200);
    let (second, _, _) = parts(upstream.last().header("traceparent").unwrap());
    let second_server = collector.wait_for("the second request", |s| {
        s.trace_id == second && s.kind == 2
    });
    std::thread::sleep(Duration::from_millis(300));
    let names: Vec<String> = collector
        .children(&second_server)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["GET"], "only the upstream call");

    // The key-set refresh is a trace of its own, with its fetch as a client span.
    let refresh = collector.wait_for("jwks refresh", |s| s.name == "jwks refresh");
    assert_eq!(refresh.attributes["scopegate.issuer"], "exampleco");
    collector.wait_for("the key-set fetch", |s| {
        s.parent == refresh.span_id && s.kind == 3
    });
}

#[test]
fn a_refused_request_records_its_status_and_reason_and_never_the_token() {
    let collector = Collector::start();
    let (gw, _jwks, upstream) = traced(&collector.endpoint(), "");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));

    let r = gw.call("DELETE", "/timesheets/7", &token);
    assert_eq!(r.status, 403);
    let denied = collector.wait_for("DELETE delete-timesheet", |s| {
        s.name == "DELETE delete-timesheet"
    });
    assert_eq!(denied.attributes["http.response.status_code"], "403");
    assert_eq!(denied.attributes["scopegate.decision"], "deny");
    assert_eq!(denied.attributes["scopegate.reason"], "insufficient_scope");
    assert_eq!(denied.status, 0, "a refusal is not an error of the gateway");
    assert!(
        collector.children(&denied).iter().all(|s| s.kind != 3),
        "nothing was forwarded"
    );

    // This token's header and claims with another token's signature.
    let other = TestKey::rsa().sign(&claims("write:timesheets"));
    let (signed, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", other.rsplit('.').next().unwrap());
    let r = gw.call("GET", "/timesheets", &forged);
    assert_eq!(r.status, 401);
    let invalid = collector.wait_for("the forged token's request", |s| {
        s.kind == 2 && s.attributes.get("http.response.status_code") == Some(&"401".to_owned())
    });
    assert_eq!(invalid.attributes["scopegate.reason"], "bad_signature");
    let verify = collector.wait_for("its failed verification", |s| {
        s.parent == invalid.span_id && s.name == "verify token"
    });
    assert_eq!(verify.status, 2);
    assert_eq!(upstream.count(), 0);

    std::thread::sleep(Duration::from_millis(300));
    let everything: Vec<u8> = collector.raw.lock().unwrap().concat();
    let signature = token.rsplit('.').next().unwrap();
    for secret in [token.as_str(), forged.as_str(), signature, "auth0|alice"] {
        assert!(
            !everything
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "exported spans hold {secret:?}"
        );
    }
}

#[test]
fn an_opaque_tokens_introspection_is_a_client_span_whose_traceparent_reached_the_authorization_server()
 {
    let collector = Collector::start();
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let auth = AuthServer::start(&jwks.uri());
    let secret = tempfile::tempdir().unwrap();
    let introspection = auth.introspection_in(secret.path());
    let policy = timesheets_policy();
    let tracing = tracing_section(&collector.endpoint(), "");
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.issuer_option("introspection", introspection);
    spec.extra = &tracing;
    let gw = Gateway::start_with_issuer(&spec, &auth.issuer());
    gw.wait_ready();
    auth.activate("opaque-alice", active(&auth.issuer(), "read:timesheets"));

    let r = gw.call("GET", "/timesheets", "opaque-alice");
    assert_eq!(r.status, 200, "{}", gw.log());

    let server = collector.wait_for("the request", |s| s.name == "GET list-timesheets");
    let call = collector.wait_for("the introspection call", |s| {
        s.parent == server.span_id && s.kind == 3 && s.name == "POST"
    });
    assert_eq!(call.attributes["http.response.status_code"], "200");
    assert_eq!(call.attributes["server.address"], "127.0.0.1");
    let sent = auth.traceparents();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (trace, parent, _) = parts(&sent[0]);
    assert_eq!(trace, server.trace_id);
    assert_eq!(
        parent, call.span_id,
        "the server's parent is the client span"
    );

    std::thread::sleep(Duration::from_millis(300));
    let everything: Vec<u8> = collector.raw.lock().unwrap().concat();
    assert!(
        !everything.windows(12).any(|w| w == b"opaque-alice"),
        "the opaque token was exported"
    );
}

/// `GET /timesheets`, allowed, with the client's own `traceparent` and
/// `tracestate: vendor=abc`; the `Authorization` value and the `traceparent` sent.
fn call_with_client_trace(gw: &Gateway) -> (String, String) {
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let auth = format!("Bearer {token}");
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = gw.request(
        "GET",
        "/timesheets",
        &[
            ("authorization", &auth),
            ("traceparent", &traceparent),
            ("tracestate", "vendor=abc"),
        ],
    );
    assert_eq!(r.status, 200);
    (auth, traceparent)
}

#[test]
fn a_client_trace_is_continued_and_a_malformed_traceparent_starts_a_new_one() {
    let collector = Collector::start();
    let (gw, _jwks, upstream) = traced(&collector.endpoint(), "");
    let (auth, _) = call_with_client_trace(&gw);
    let server = collector.wait_for("the continued trace", |s| {
        s.trace_id == CLIENT_TRACE && s.kind == 2
    });
    assert_eq!(server.parent, CLIENT_SPAN);
    assert_eq!(server.trace_state, "vendor=abc");
    let seen = upstream.last();
    let (trace, parent, flags) = parts(seen.header("traceparent").unwrap());
    assert_eq!(trace, CLIENT_TRACE);
    assert_ne!(parent, CLIENT_SPAN, "the gateway's own span is the parent");
    assert_eq!(flags, "01");
    assert_eq!(seen.header("tracestate"), Some("vendor=abc"));
    assert_eq!(
        seen.headers["traceparent"].len(),
        1,
        "the client's header was replaced"
    );

    for malformed in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-zzzz-01",
        "not a traceparent",
    ] {
        let r = gw.request(
            "GET",
            "/timesheets",
            &[("authorization", &auth), ("traceparent", malformed)],
        );
        assert_eq!(r.status, 200, "{malformed}");
        let (trace, _, _) = parts(upstream.last().header("traceparent").unwrap());
        assert_ne!(trace, CLIENT_TRACE);
        assert_ne!(trace, "00000000000000000000000000000000");
        let server = collector.wait_for("the new trace", |s| s.trace_id == trace && s.kind == 2);
        assert_eq!(server.parent, "");
    }
}

#[test]
fn a_sampled_out_trace_exports_nothing_and_still_propagates() {
    let collector = Collector::start();
    let (gw, _jwks, upstream) = traced(&collector.endpoint(), "  sampling_ratio: 0.0\n");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));

    for _ in 0..5 {
        assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
        let (trace, _, flags) = parts(upstream.last().header("traceparent").unwrap());
        assert_eq!(flags, "00", "not sampled");
        assert_ne!(trace, "00000000000000000000000000000000");
    }
    // A client that sampled its trace decides for it (parent-based).
    let auth = format!("Bearer {token}");
    let sampled = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = gw.request(
        "GET",
        "/timesheets",
        &[("authorization", &auth), ("traceparent", &sampled)],
    );
    assert_eq!(r.status, 200);
    collector.wait_for("the client-sampled trace", |s| s.trace_id == CLIENT_TRACE);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        collector.spans().iter().all(|s| s.trace_id == CLIENT_TRACE),
        "{:#?}",
        collector.spans()
    );
}

#[test]
fn a_collector_that_is_down_costs_requests_nothing_and_the_dropped_spans_are_counted() {
    let down = format!("http://127.0.0.1:{}", free_port());
    let (gw, _jwks, _upstream) = traced(&down, "  queue_size: 8\n  export_timeout_ms: 500\n");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    for _ in 0..40 {
        assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    }
    gw.wait_for(
        || gw.metric("scopegate_trace_spans_dropped_total{reason=\"export_failed\"}") > 0.0,
        "export failures counted",
    );
    assert_eq!(gw.metric("scopegate_trace_spans_exported_total"), 0.0);
    gw.wait_for(
        || gw.log().contains("trace export failed"),
        "one warning for the outage",
    );
}

#[test]
fn spans_are_exported_over_grpc_too() {
    let collector = Collector::start_grpc();
    let (gw, _jwks, _upstream) = traced(&collector.endpoint(), "  protocol: grpc\n");
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    let server = collector.wait_for("the request over gRPC", |s| s.name == "GET list-timesheets");
    assert_eq!(server.attributes["scopegate.decision"], "allow");
    assert_eq!(server.resource["service.name"], "scopegate");
    gw.wait_for(
        || gw.metric("scopegate_trace_spans_exported_total") > 0.0,
        "exports counted",
    );
}

#[test]
fn with_tracing_off_the_upstream_sees_the_clients_own_trace_headers_and_the_line_has_no_trace_id() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let (auth, traceparent) = call_with_client_trace(&gw);
    let seen = upstream.last();
    assert_eq!(seen.header("traceparent"), Some(traceparent.as_str()));
    assert_eq!(seen.header("tracestate"), Some("vendor=abc"));
    // A malformed one passes as any header does, and the request is served.
    let r = gw.request(
        "GET",
        "/timesheets",
        &[("authorization", &auth), ("traceparent", "garbage")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(upstream.last().header("traceparent"), Some("garbage"));
    gw.wait_for(
        || gw.log().contains("route=\"list-timesheets\""),
        "the access line",
    );
    assert!(!gw.log().contains("trace_id="));
    assert_eq!(gw.metric("scopegate_trace_spans_exported_total"), 0.0);
}
