//! The proxy's side of tracing: the server span opened from the session, the upstream's
//! `traceparent` set from the gateway's own span, and the spans ended in `logging`.
//! Called only when tracing is on.

use std::time::SystemTime;

use opentelemetry::trace::{SpanId, TraceId};
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::config::Upstream;
use crate::ground::{Outcome, Reason};
use crate::ops::trace::{self, RequestEnd, RequestStart, RequestTrace, Tracing};

/// Opens the request's server span, continuing the client's trace.
pub fn start(tracing: &Tracing, session: &Session) -> RequestTrace {
    let req = session.req_header();
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    tracing.request(
        &req.headers,
        RequestStart {
            method: req.method.as_str(),
            protocol_version: match req.version {
                http::Version::HTTP_2 => "2",
                http::Version::HTTP_10 => "1.0",
                _ => "1.1",
            },
            tls,
            at: SystemTime::now(),
        },
    )
}

/// Replaces the client's trace headers with the gateway's: the upstream call's client
/// span becomes the upstream's parent, in the same trace.
pub fn propagate(
    trace: &mut RequestTrace,
    upstream: &Upstream,
    request: &mut RequestHeader,
) -> Result<()> {
    for name in trace::HEADERS {
        request.remove_header(name);
    }
    for (name, value) in trace.upstream(&upstream.host, upstream.address.port()) {
        request.insert_header(name, value)?;
    }
    Ok(())
}

/// Ends the request's spans; returns the ids the access line carries.
pub fn finish(
    trace: RequestTrace,
    route: Option<&str>,
    status: u16,
    outcome: Outcome,
    reason: Reason,
    issuer: Option<&str>,
    error: Option<&Error>,
) -> (TraceId, SpanId) {
    let ids = trace.ids();
    let upstream_error = error.map(|e| e.etype().as_str());
    trace.finish(
        RequestEnd {
            route,
            status,
            decision: outcome.as_str(),
            reason: reason.as_str(),
            issuer,
        },
        upstream_error,
    );
    ids
}
