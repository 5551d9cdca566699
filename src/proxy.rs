//! pingora's proxy phases. Each phase turns the session into plain values and calls the
//! pure core (`gate`, `headers`); the only logic here is plumbing.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::config::Upstream;
use crate::error::Rejection;
use crate::gate::{self, Access, RequestParts};
use crate::headers::{HeaderPlan, HeaderSink, PlannedName};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::policy::reload::PolicyStore;
use crate::token::TokenRules;
use crate::verify::Verifier;

/// Largest request body read and discarded to keep a refused client's connection open.
const MAX_DRAINED_BODY: u64 = 64 * 1024;

/// Everything the proxy phases share.
pub struct Gateway {
    /// The live policy.
    pub policy: Arc<PolicyStore>,
    /// Token verification.
    pub verifier: Arc<Verifier>,
    /// The identity header rewrite.
    pub headers: HeaderPlan,
    /// Token extraction rules.
    pub token_rules: TokenRules,
    /// `WWW-Authenticate` realm.
    pub realm: String,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// Metrics.
    pub metrics: Metrics,
}

/// Per-request state, from `request_filter` to `logging`.
#[derive(Default)]
pub struct RequestCtx {
    route: Option<Arc<str>>,
    outcome: Option<Result<Access, Rejection>>,
    identity: Option<Arc<Identity>>,
    rewritten_path: Option<String>,
    started: Option<Instant>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let started = Instant::now();
        ctx.started = Some(started);
        // One snapshot per request: a reload mid-request does not change its decision.
        let policy = self.policy.snapshot();
        let req = session.req_header();
        let decision = gate::decide(
            RequestParts {
                method: req.method.as_str(),
                path: req.uri.path(),
                query: req.uri.query(),
                authorization: req
                    .headers
                    .get_all(http::header::AUTHORIZATION)
                    .iter()
                    .map(HeaderValue::as_bytes),
            },
            &policy,
            &self.verifier,
            &self.token_rules,
        );
        let duration = match &decision.outcome {
            Ok(_) => &self.metrics.auth_duration_allow,
            Err(_) => &self.metrics.auth_duration_deny,
        };
        duration.observe(started.elapsed().as_secs_f64());
        ctx.route = decision.route;
        ctx.rewritten_path = decision.rewritten_path;
        ctx.identity = decision.identity;
        let rejection = decision.outcome.as_ref().err().cloned();
        ctx.outcome = Some(decision.outcome);
        match rejection {
            None => Ok(false),
            Some(rejection) => {
                self.reject(session, &rejection).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.address,
            self.upstream.tls,
            self.upstream.host.clone(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(path) = &ctx.rewritten_path {
            // Forward exactly the path the policy was matched on.
            let target = match upstream_request.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let uri = target
                .parse()
                .or_err(ErrorType::InternalError, "normalized path is a valid URI")?;
            upstream_request.set_uri(uri);
        } else if upstream_request.uri.scheme().is_some() {
            // Absolute-form targets are sent on in origin-form.
            let origin = upstream_request
                .uri
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            let uri = origin
                .parse()
                .or_err(ErrorType::InternalError, "path is a valid URI")?;
            upstream_request.set_uri(uri);
        }
        // Only an allowed request gets here; on public routes no token was verified.
        let identity = match ctx.outcome {
            Some(Ok(Access::Authorized)) => ctx.identity.as_deref(),
            _ => None,
        };
        self.headers.apply(upstream_request, identity);
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let route = ctx.route.as_deref().unwrap_or("none");
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let (decision, reason) = match (&ctx.outcome, error) {
            (Some(Err(rejection)), _) => ("deny", rejection.reason()),
            (Some(Ok(_)), Some(_)) => {
                self.metrics.upstream_errors.inc();
                ("error", "upstream_error")
            }
            (Some(Ok(access)), None) => ("allow", access.reason()),
            // The request never reached `request_filter` (a malformed request line).
            (None, _) => ("deny", "invalid_request"),
        };
        self.metrics
            .requests
            .with_label_values(&[route, decision, reason])
            .inc();
        let subject = ctx.identity.as_ref().and_then(|id| id.subject.as_deref());
        let latency_ms = ctx
            .started
            .map(|s| (s.elapsed().as_secs_f64() * 1e6).round() / 1e3)
            .unwrap_or_default();
        let req = session.req_header();
        tracing::info!(
            method = %req.method,
            path = req.uri.path(),
            route,
            decision,
            reason,
            status,
            latency_ms,
            subject = subject.unwrap_or("-"),
            "request"
        );
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // `logging` writes one line per request, errors included.
        false
    }
}

impl Gateway {
    /// Writes a rejection with header and body separately, so the connection stays open
    /// (`respond_error_with_body` would close it).
    async fn reject(&self, session: &mut Session, rejection: &Rejection) -> Result<()> {
        let body = Bytes::from(rejection.body());
        let mut resp = ResponseHeader::build(rejection.status(), Some(5))?;
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        if let Some(challenge) = rejection.challenge(&self.realm) {
            resp.insert_header(http::header::WWW_AUTHENTICATE, challenge)?;
        }
        if matches!(rejection, Rejection::KeysUnavailable) {
            resp.insert_header(http::header::RETRY_AFTER, "5")?;
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
