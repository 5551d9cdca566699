//! pingora's proxy phases. Each phase turns the session into plain values and calls the
//! pure core (`gate`, `headers`); the only logic here is plumbing.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::auth::Authenticator;
use crate::config::Upstream;
use crate::decision::{self, Access, Answer, Decision, Outcome, Reason, Verdict};
use crate::ops::metrics::Metrics;
use crate::policy::reload::PolicyStore;
use crate::proxy::headers::{HeaderPlan, HeaderSink, PlannedName};
use crate::proxy::host::{self, HostRules, TargetHost};
use crate::proxy::path::PathRules;
use crate::proxy::query::{self, QueryRules};
use crate::proxy::upstream::{self, UpstreamTimeouts};

/// Largest request body read and discarded to keep a refused client's connection open.
const MAX_DRAINED_BODY: u64 = 64 * 1024;

/// Everything the proxy phases share.
pub struct Gateway {
    /// The live policy.
    pub policy: Arc<PolicyStore>,
    /// Who is calling.
    pub auth: Authenticator,
    /// The identity header rewrite.
    pub headers: HeaderPlan,
    /// `WWW-Authenticate` realm.
    pub realm: String,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// Metrics.
    pub metrics: Metrics,
    /// Path readings allowed beyond the defaults.
    pub paths: PathRules,
    /// The hosts served and absolute-form targets.
    pub hosts: HostRules,
    /// Query parameters refused or removed.
    pub query: QueryRules,
    /// How long the upstream is waited for.
    pub timeouts: UpstreamTimeouts,
    /// Largest request body forwarded, in bytes.
    pub max_body_bytes: u64,
}

/// Per-request state, from `request_filter` to `logging`.
pub struct RequestCtx {
    started: Instant,
    /// `None` until `request_filter` ran (a request pingora could not parse never gets
    /// there).
    decision: Option<Decision>,
    /// The host as forwarded: an absolute-form target's authority replaces `Host`.
    target_host: TargetHost,
    /// The query to forward, when a parameter was removed.
    rewritten_query: Option<String>,
    /// Request body bytes forwarded so far.
    body_bytes: u64,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            decision: None,
            target_host: TargetHost::Header,
            rewritten_query: None,
            body_bytes: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // One snapshot per request: a reload mid-request does not change its decision.
        let policy = self.policy.snapshot();
        let req = session.req_header();
        if let Err(rejection) = self.check_target(req, ctx) {
            return self.refuse(session, ctx, rejection).await;
        }
        let (method, path) = (req.method.as_str(), req.uri.path());
        let decision = decision::decide_with(&self.paths, method, path, &policy, |_route| {
            let authorization = req.headers.get_all(http::header::AUTHORIZATION);
            self.auth.authenticate(
                authorization.iter().map(HeaderValue::as_bytes),
                req.uri.query(),
            )
        });
        self.metrics
            .decided(decision.verdict.outcome(), ctx.started.elapsed());
        let answer = decision
            .verdict
            .rejection()
            .map(|rejection| rejection.answer(&self.realm));
        ctx.decision = Some(decision);
        match answer {
            None => Ok(false),
            Some(answer) => {
                self.reject(session, answer).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(
            self.upstream.address,
            self.upstream.tls,
            self.upstream.host.clone(),
        );
        self.timeouts.apply(&mut peer);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(decision) = &ctx.decision else {
            return Error::e_explain(ErrorType::InternalError, "forwarding an undecided request");
        };
        let absolute = match &ctx.target_host {
            TargetHost::Header => None,
            TargetHost::Absolute(authority) => Some(authority),
        };
        if decision.rewritten_path.is_some() || ctx.rewritten_query.is_some() || absolute.is_some()
        {
            // Forward exactly the path (and query) the policy was matched on, in
            // origin-form: `set_uri` drops pingora's verbatim absolute-form target.
            let path = decision
                .rewritten_path
                .as_deref()
                .unwrap_or(upstream_request.uri.path());
            let query = ctx
                .rewritten_query
                .as_deref()
                .or(upstream_request.uri.query());
            let target = match query {
                Some(q) if !q.is_empty() => format!("{path}?{q}"),
                _ => path.to_owned(),
            };
            let uri = target
                .parse()
                .or_err(ErrorType::InternalError, "normalized path is a valid URI")?;
            upstream_request.set_uri(uri);
        }
        if let Some(authority) = absolute {
            // RFC 9112 §3.2.2: the target's authority, not the client's Host.
            upstream_request.insert_header(http::header::HOST, authority.as_str())?;
        }
        // Only an allowed request gets here; on public routes no token was verified.
        let identity = match &decision.verdict {
            Verdict::Allow(Access::Authorized(identity)) => Some(&**identity),
            Verdict::Allow(Access::Public) => None,
            Verdict::Deny { .. } => {
                return Error::e_explain(ErrorType::InternalError, "forwarding a denied request");
            }
        };
        self.headers.apply(upstream_request, identity);
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let decision = ctx.decision.as_ref();
        let route = decision.and_then(|d| d.route.as_deref()).unwrap_or("none");
        let (outcome, reason) = match (decision.map(|d| &d.verdict), error) {
            (Some(verdict @ Verdict::Deny { .. }), _) => (Outcome::Deny, verdict.reason()),
            (Some(Verdict::Allow(_)), Some(_)) => (Outcome::Error, Reason::UpstreamError),
            (Some(verdict @ Verdict::Allow(_)), None) => (Outcome::Allow, verdict.reason()),
            // The request never reached `request_filter` (a malformed request line).
            (None, _) => (Outcome::Deny, Reason::InvalidRequest),
        };
        self.metrics.request_done(route, outcome, reason);
        let subject = decision
            .and_then(|d| d.verdict.identity())
            .and_then(|id| id.subject.as_deref());
        let latency_ms = (ctx.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        let req = session.req_header();
        tracing::info!(
            method = %req.method,
            path = req.uri.path(),
            route,
            decision = outcome.as_str(),
            reason = reason.as_str(),
            status,
            latency_ms,
            subject = subject.unwrap_or("-"),
            "request"
        );
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A chunked body declares no length: it is counted as it streams.
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > self.max_body_bytes {
            return Error::e_explain(ErrorType::HTTPStatus(413), "request body over the limit");
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match upstream::classify(e.esource(), e.etype()) {
            Some((fault, rejection)) => {
                self.metrics.upstream_failed(fault);
                let answer = rejection.answer(&self.realm);
                let status = answer.status;
                // Once the upstream's answer has started, the client's connection is
                // all that is left to close.
                if session.response_written().is_none()
                    && self.reject(session, answer).await.is_ok()
                {
                    status
                } else {
                    0
                }
            }
            None if *e.etype() == ErrorType::HTTPStatus(413) => {
                let answer = decision::Rejection::PayloadTooLarge.answer(&self.realm);
                if session.response_written().is_none()
                    && self.reject(session, answer).await.is_ok()
                {
                    413
                } else {
                    0
                }
            }
            // The client's or the gateway's own errors: pingora's answers.
            None => {
                let code = match (e.esource(), e.etype()) {
                    (_, ErrorType::HTTPStatus(code)) => *code,
                    (
                        ErrorSource::Downstream,
                        ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
                    ) => 0,
                    (ErrorSource::Downstream, _) => 400,
                    _ => 500,
                };
                if code > 0 {
                    let _ = session.respond_error(code).await;
                }
                code
            }
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        // pingora's error lines name the request with this: the path only, never the query
        // (which may hold a token).
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // `logging` writes one line per request, errors included.
        false
    }
}

impl Gateway {
    /// The host and query checks that come before the policy.
    fn check_target(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), decision::Rejection> {
        ctx.target_host = host::check(
            &self.hosts,
            req.raw_path(),
            req.headers
                .get_all(http::header::HOST)
                .iter()
                .map(HeaderValue::as_bytes),
            req.version == http::Version::HTTP_11,
            req.uri.authority().map(|a| a.as_str()),
        )?;
        if let Some(q) = req.uri.query() {
            ctx.rewritten_query = query::check(q, &self.query)?;
        }
        let declared = req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return Err(decision::Rejection::PayloadTooLarge);
        }
        Ok(())
    }

    /// Answers a request refused before the policy was asked.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        rejection: decision::Rejection,
    ) -> Result<bool> {
        let answer = rejection.answer(&self.realm);
        ctx.decision = Some(Decision {
            route: None,
            rewritten_path: None,
            verdict: Verdict::Deny {
                rejection,
                identity: None,
            },
        });
        self.metrics.decided(Outcome::Deny, ctx.started.elapsed());
        self.reject(session, answer).await?;
        Ok(true)
    }

    /// Writes a rejection with header and body separately, so the connection stays open
    /// (`respond_error_with_body` would close it).
    async fn reject(&self, session: &mut Session, answer: Answer) -> Result<()> {
        let body = Bytes::from(answer.body);
        let mut resp = ResponseHeader::build(answer.status, Some(5))?;
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        if let Some(challenge) = answer.challenge {
            resp.insert_header(http::header::WWW_AUTHENTICATE, challenge)?;
        }
        if let Some(seconds) = answer.retry_after {
            resp.insert_header(http::header::RETRY_AFTER, seconds.to_string())?;
        }
        // Keep-alive needs the unread request body off the wire first. A small body is
        // drained; a large (or chunked) one is not worth reading for a refusal, so the
        // connection closes after the answer instead.
        if !session.is_body_empty() {
            let small = session
                .req_header()
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .is_some_and(|n| n <= MAX_DRAINED_BODY);
            if !small || session.drain_request_body().await.is_err() {
                session.set_keepalive(None);
            }
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(resp), head_only)
            .await?;
        if !head_only {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}

/// pingora's request header (what the proxy rewrites). Its own methods keep the
/// case-preserving name map in step with the header map.
impl HeaderSink for RequestHeader {
    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.headers.keys()
    }
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
    fn set(&mut self, name: &PlannedName, value: HeaderValue) {
        // The name and value are valid already, so this cannot fail. The shared bytes go to
        // the case map as they are (a `HeaderName` would be copied there).
        let _ = self.insert_header(name.wire.clone(), value);
    }
}
