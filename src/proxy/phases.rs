//! pingora's proxy phases. Each phase turns the session into plain values and calls the
//! pure core (`gate`, `headers`); the only logic here is plumbing.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::server::Session as HttpSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::auth::cnf::ClientCert;
use crate::auth::dpop::DpopRequest;
use crate::auth::token::Credential;
use crate::auth::{AtOnce, Authenticator, Sender, Waiting};
use crate::config::{HostRules, Upstream, UpstreamTimeouts};
use crate::decision::{self, Access, Decision, Routed, Verdict};
use crate::ground::clock::unix_time;
use crate::ground::path::PathRules;
use crate::ground::query::{self, QueryRules};
use crate::ground::{Answer, ChallengeContext, Outcome, Reason, Rejection};
use crate::ops::access_line::AccessEntry;
use crate::ops::access_log::AccessLog;
use crate::ops::metrics::Metrics;
use crate::ops::trace::{FutureExt as _, RequestTrace, Tracing};
use crate::policy::Policy;
use crate::policy::reload::PolicyStore;
use crate::proxy::grpc::{self, GrpcKind};
use crate::proxy::header_clock::HeaderClock;
use crate::proxy::headers::{HeaderPlan, HeaderSink, PlannedName};
use crate::proxy::host::{self, TargetHost};
use crate::proxy::metadata::ResourceMetadata;
use crate::proxy::phase_future::{Phase, done, finished, proceed};
use crate::proxy::read_headers;
use crate::proxy::upstream;

/// Longest a refused gRPC call's messages are read off after its answer.
const GRPC_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// What every challenge names (realm, resource metadata).
    pub challenge: ChallengeContext,
    /// The RFC 9728 document, when configured.
    pub metadata: Option<ResourceMetadata>,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// Metrics.
    pub metrics: Metrics,
    /// One line per request, written off the request thread.
    pub access_log: AccessLog,
    /// The header a TLS-terminating proxy forwards the client certificate in, if trusted.
    pub client_cert_header: Option<HeaderName>,
    /// Path readings allowed beyond the defaults.
    pub paths: PathRules,
    /// The hosts served and absolute-form targets.
    pub hosts: HostRules,
    /// Query parameters refused or removed.
    pub query: QueryRules,
    /// How long the upstream is waited for.
    pub timeouts: UpstreamTimeouts,
    /// Speak HTTP/2 to the upstream (h2 by ALPN over TLS, h2c otherwise).
    pub upstream_h2: bool,
    /// Write header names to the upstream as the client spelled them
    /// (`upstream_header_case: preserve`).
    pub preserve_header_case: bool,
    /// Largest request body forwarded, in bytes.
    pub max_body_bytes: u64,
    /// OpenTelemetry; `None`: off, and no span is ever made.
    pub tracing: Option<Tracing>,
}

/// Per-request state, from `request_filter` to `logging`.
pub struct RequestCtx {
    /// When the request's header was in: the start of its latency.
    started: Instant,
    /// The wall clock at `started`, read once: the request's checks (`exp`, …) use its
    /// second, and its access line's timestamp is it plus the latency.
    started_unix: Duration,
    stage: Stage,
    /// The host as forwarded: an absolute-form target's authority replaces `Host`.
    target_host: TargetHost,
    /// The query to forward, when a parameter was removed.
    rewritten_query: Option<String>,
    /// Request body bytes forwarded so far.
    body_bytes: u64,
    /// The request's spans, when tracing is on; boxed, so that the context allocated for
    /// every request stays small when it is off.
    trace: Option<Box<RequestTrace>>,
}

/// How far a request got.
enum Stage {
    /// Not past `request_filter` (a request pingora could not parse never gets there).
    Received,
    /// Answered by the gateway itself, with no decision to make (its own documents).
    Served(Reason),
    /// Decided.
    Decided(Decision),
}

/// What `request_filter` found without waiting.
enum Admission {
    /// Decided: forward it.
    Forward,
    /// Decided: refuse it with this answer.
    Answer(Answer),
    /// Refused before the policy was asked (host, query, declared body size).
    Refuse(Rejection),
    /// A request for the RFC 9728 document: this one.
    Metadata(Bytes),
    /// The caller must be verified, introspected or prove possession: the policy snapshot
    /// the request is decided against, and where authentication left off.
    Wait(Arc<Policy>, Waiting),
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Box<RequestCtx>;

    // Boxed: pingora keeps the context in each request's future, which it moves a few times
    // per request (memcpy); a pointer moves for less than the allocation costs.
    fn new_ctx(&self) -> Box<RequestCtx> {
        Box::new(RequestCtx {
            started: Instant::now(),
            started_unix: unix_time(),
            stage: Stage::Received,
            target_host: TargetHost::Header,
            rewritten_query: None,
            body_bytes: 0,
            trace: None,
        })
    }

    // Decided in the call when nothing waits (no route, a public route, a cached token):
    // then an allowed request's future holds nothing and allocates nothing. What waits
    // (verification, introspection, a proof), and every answer the gateway writes itself,
    // is boxed.
    fn request_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        session: &'life1 mut Session,
        ctx: &'life2 mut Box<RequestCtx>,
    ) -> Phase<'async_trait, Result<bool>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        match self.admit(session, ctx) {
            Admission::Forward => proceed(),
            Admission::Answer(answer) => Box::pin(async move {
                self.reject(session, answer).await?;
                Ok(true)
            }),
            Admission::Refuse(rejection) => Box::pin(self.refuse(session, ctx, rejection)),
            Admission::Metadata(document) => Box::pin(async move {
                self.serve_metadata(session, document).await?;
                Ok(true)
            }),
            Admission::Wait(policy, waiting) => {
                Box::pin(self.decide_later(session, ctx, policy, waiting))
            }
        }
    }

    fn upstream_peer<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _ctx: &'life2 mut Box<RequestCtx>,
    ) -> Phase<'async_trait, Result<Box<HttpPeer>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        // Never waits either: the peer is made in the call.
        let mut peer = HttpPeer::new(
            self.upstream.address,
            self.upstream.tls,
            self.upstream.host.clone(),
        );
        upstream::apply_timeouts(&self.timeouts, &mut peer);
        if self.upstream_h2 {
            peer.options.alpn = pingora::protocols::ALPN::H2;
        }
        Box::pin(std::future::ready(Ok(Box::new(peer))))
    }

    // The three phases below never wait: their work is done in the call (see
    // `phase_future`), so no future is allocated for them on any request.
    fn upstream_request_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        session: &'life1 mut Session,
        upstream_request: &'life2 mut RequestHeader,
        ctx: &'life3 mut Box<RequestCtx>,
    ) -> Phase<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        finished(self.forward_as_decided(session, upstream_request, ctx))
    }

    fn logging<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        session: &'life1 mut Session,
        error: Option<&'life2 Error>,
        ctx: &'life3 mut Box<RequestCtx>,
    ) -> Phase<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        self.log_request(session, error, ctx);
        done()
    }

    fn request_body_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        session: &'life1 mut Session,
        body: &'life2 mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &'life3 mut Box<RequestCtx>,
    ) -> Phase<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        finished(self.count_body(session, body, end_of_stream, ctx))
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Box<RequestCtx>,
    ) -> FailToProxy {
        let code = match upstream::classify(e.esource(), e.etype()) {
            Some((fault, rejection)) => {
                self.metrics.upstream_failed(fault);
                let answer = rejection.answer(&self.challenge);
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
                let answer = Rejection::PayloadTooLarge.answer(&self.challenge);
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

    fn request_summary(&self, session: &Session, _ctx: &Box<RequestCtx>) -> String {
        // pingora's error lines name the request with this: the path only, never the query
        // (which may hold a token).
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }

    fn suppress_error_log(
        &self,
        _session: &Session,
        _ctx: &Box<RequestCtx>,
        _error: &Error,
    ) -> bool {
        // `logging` writes one line per request, errors included.
        false
    }
}

impl Gateway {
    /// `upstream_request_filter`: the request as decided (path, query, host), the
    /// identity headers, the trace context.
    fn forward_as_decided(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Stage::Decided(decision) = &ctx.stage else {
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
            // A dry-run refusal is forwarded as the request would be without the rule: with
            // the identity of a token that verified, without one otherwise.
            Verdict::Allow(Access::DryRun { identity, .. }) => identity.as_deref(),
            Verdict::Deny { .. } => {
                return Error::e_explain(ErrorType::InternalError, "forwarding a denied request");
            }
        };
        let dry_run = decision.verdict.dry_run_rejection().map(Rejection::reason);
        if self.preserve_header_case || !upstream_request.raw_path_is_utf8() {
            self.headers.apply(upstream_request, identity);
            if let Some(reason) = dry_run {
                self.headers.mark_dry_run(upstream_request, reason);
            }
        } else {
            in_one_map(upstream_request, |headers| {
                self.headers.apply(headers, identity);
                if let Some(reason) = dry_run {
                    self.headers.mark_dry_run(headers, reason);
                }
            });
        }
        if let Some(trace) = &mut ctx.trace {
            crate::proxy::traced::propagate(trace, &self.upstream, upstream_request)?;
        }
        Ok(())
    }

    /// `logging`: the request's metrics, its span ended, its access line.
    fn log_request(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(clock) = HeaderClock::of(session.as_downstream().stream()) {
            clock.request_done();
        }
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let decision = match &ctx.stage {
            Stage::Decided(decision) => Some(decision),
            Stage::Received | Stage::Served(_) => None,
        };
        let matched_route = decision.and_then(|d| d.route.as_ref());
        let matched = matched_route.map(|r| &**r);
        let route = matched.unwrap_or("none");
        let (outcome, reason) = match (&ctx.stage, error) {
            (Stage::Decided(d), _) if matches!(d.verdict, Verdict::Deny { .. }) => {
                (Outcome::Deny, d.verdict.reason())
            }
            (Stage::Decided(_), Some(_)) => (Outcome::Error, Reason::UpstreamError),
            (Stage::Decided(d), None) => (d.verdict.outcome(), d.verdict.reason()),
            (Stage::Served(reason), _) => (Outcome::Served, *reason),
            // The request never reached `request_filter` (a malformed request line).
            (Stage::Received, _) => (Outcome::Deny, Reason::InvalidRequest),
        };
        self.metrics.request_done(matched_route, outcome, reason);
        self.metrics
            .request_protocol(session.req_header().version == http::Version::HTTP_2);
        let subject = decision
            .and_then(|d| d.verdict.identity())
            .and_then(|id| id.subject.as_deref());
        let trace = ctx.trace.take().map(|trace| {
            let issuer = decision
                .and_then(|d| d.verdict.identity())
                .and_then(|id| self.auth.verifier.issuer_label(&id.issuer));
            crate::proxy::traced::finish(*trace, matched, status, outcome, reason, issuer, error)
        });
        let req = session.req_header();
        let latency = ctx.started.elapsed();
        self.access_log.write(&AccessEntry {
            method: req.method.as_str(),
            path: req.uri.path(),
            route,
            decision: outcome,
            reason,
            status,
            latency,
            // The start's wall clock plus the monotonic latency: no second reading.
            at: UNIX_EPOCH + ctx.started_unix + latency,
            subject,
            protocol: protocol_name(req.version),
            trace,
        });
    }

    /// `request_body_filter`: the body counted against its limit as it streams.
    fn count_body(
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

    /// `request_filter`'s work up to what it has to wait for: the header's clock stopped,
    /// the trace begun, the target checked, and the decision made when its caller needs no
    /// waiting (a cached token, no token, or no token needed).
    fn admit(&self, session: &Session, ctx: &mut RequestCtx) -> Admission {
        if let Some(clock) = HeaderClock::of(session.as_downstream().stream()) {
            clock.header_read();
        }
        if let Some(tracing) = &self.tracing {
            ctx.trace = Some(Box::new(crate::proxy::traced::start(tracing, session)));
        }
        // One snapshot per request: a reload mid-request does not change its decision.
        let policy = self.policy.snapshot();
        let req = session.req_header();
        let read = read_headers::read(&req.headers);
        if let Err(rejection) = self.check_target(req, &read, ctx) {
            return Admission::Refuse(rejection);
        }
        if let Some(metadata) = self.metadata_request(req) {
            ctx.stage = Stage::Served(Reason::ResourceMetadata);
            return Admission::Metadata(metadata.document(&policy));
        }
        let (credential, routed) = self.route(req, &read, &policy);
        let now = ctx.started_unix.as_secs();
        let decision = match routed {
            Routed::Decided(decision) => decision,
            Routed::Protected(protected) => {
                let conditions = policy.condition_claims();
                match self
                    .auth
                    .at_once(&credential, protected.auth(), conditions, now, ctx.started)
                {
                    AtOnce::Done(caller) => protected.conclude(caller, now),
                    AtOnce::Wait(waiting) => return Admission::Wait(policy, waiting),
                }
            }
        };
        match self.settle(decision, &credential, ctx) {
            None => Admission::Forward,
            Some(answer) => Admission::Answer(answer),
        }
    }

    /// The rest of `request_filter` for a caller who must be verified, introspected or
    /// prove possession of the token. The request is read again (what `admit` read borrowed
    /// the session, which an answer needs mutably) and its route found again in the same
    /// policy snapshot; both are pure, and cost little beside a signature check.
    /// Authentication resumes where `admit` left it, so nothing is counted twice.
    async fn decide_later(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        policy: Arc<Policy>,
        waiting: Waiting,
    ) -> Result<bool> {
        let client_cert = self.client_cert(session);
        let req = session.req_header();
        let read = read_headers::read(&req.headers);
        let (credential, routed) = self.route(req, &read, &policy);
        let now = ctx.started_unix.as_secs();
        let decision = match routed {
            // Not reached: the same snapshot routed the same request to a protected route.
            Routed::Decided(decision) => decision,
            Routed::Protected(protected) => {
                // Built only for a protected route (a public one never reads the proof);
                // the DPoP header itself is read only by a proof check.
                let sender = Sender {
                    dpop: DpopRequest {
                        method: req.method.as_str(),
                        path: req.uri.path(),
                        headers: &req.headers,
                    },
                    client_cert,
                };
                let conditions = policy.condition_claims();
                let resumed = self.auth.resume(
                    &credential,
                    waiting,
                    protected.auth(),
                    conditions,
                    sender,
                    now,
                );
                let caller = match &ctx.trace {
                    None => resumed.await,
                    // Verification and introspection open their spans under the server span.
                    Some(trace) => resumed.with_context(trace.context()).await,
                };
                protected.conclude(caller, now)
            }
        };
        match self.settle(decision, &credential, ctx) {
            None => Ok(false),
            Some(answer) => {
                self.reject(session, answer).await?;
                Ok(true)
            }
        }
    }

    /// The request's credential (read once from the headers `read` found), and its route
    /// in `policy`.
    fn route<'r, 'p>(
        &self,
        req: &'r RequestHeader,
        read: &read_headers::Read<'r>,
        policy: &'p Policy,
    ) -> (Result<Option<Credential<'r>>, Rejection>, Routed<'p>) {
        let credential = self
            .auth
            .credential(read.authorization.values(), req.uri.query());
        let (method, path) = (req.method.as_str(), req.uri.path());
        (
            credential,
            decision::route(&self.paths, method, path, policy),
        )
    }

    /// A decision made: counted, kept for the later phases, and the answer to write if it
    /// refuses.
    fn settle(
        &self,
        decision: Decision,
        credential: &Result<Option<Credential<'_>>, Rejection>,
        ctx: &mut RequestCtx,
    ) -> Option<Answer> {
        self.metrics
            .decided(decision.verdict.outcome(), ctx.started.elapsed());
        let answer = self.answer(&decision, credential);
        ctx.stage = Stage::Decided(decision);
        answer
    }

    /// What a refused request gets: the challenge offers DPoP as the matched route allows
    /// it, and names the scheme the credential came with.
    fn answer(
        &self,
        decision: &Decision,
        credential: &Result<Option<Credential<'_>>, Rejection>,
    ) -> Option<Answer> {
        let rejection = decision.verdict.rejection()?;
        let offer = decision
            .route
            .as_ref()
            .and_then(|_| self.auth.dpop.offer(decision.auth.dpop));
        let used_dpop = matches!(credential, Ok(Some(c)) if c.is_dpop());
        Some(rejection.answer_with(&self.challenge, offer, used_dpop))
    }

    /// The RFC 9728 document, when `req` asks for it.
    fn metadata_request(&self, req: &RequestHeader) -> Option<&ResourceMetadata> {
        self.metadata
            .as_ref()
            .filter(|metadata| req.uri.path() == metadata.path())
    }

    /// The connection's client certificate (RFC 8705), or the one a trusted proxy
    /// forwarded.
    fn client_cert(&self, session: &Session) -> Option<ClientCert> {
        let from_tls = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|tls| ClientCert::from_digest(&tls.cert_digest));
        from_tls.or_else(|| {
            let name = self.client_cert_header.as_ref()?;
            let value = session.req_header().headers.get(name)?;
            ClientCert::from_header(value.as_bytes())
        })
    }

    /// The host and query checks that come before the policy.
    fn check_target(
        &self,
        req: &RequestHeader,
        read: &read_headers::Read<'_>,
        ctx: &mut RequestCtx,
    ) -> Result<(), Rejection> {
        ctx.target_host = host::check(
            &self.hosts,
            req.raw_path(),
            read.host.values(),
            req.version == http::Version::HTTP_11,
            req.uri.authority().map(|a| a.as_str()),
        )?;
        if let Some(q) = req.uri.query() {
            ctx.rewritten_query = query::check(q, &self.query)?;
        }
        let declared = read
            .content_length
            .first()
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body_bytes) {
            return Err(Rejection::PayloadTooLarge);
        }
        Ok(())
    }

    /// Answers a request refused before the policy was asked.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        rejection: Rejection,
    ) -> Result<bool> {
        let answer = rejection.answer(&self.challenge);
        ctx.stage = Stage::Decided(Decision {
            route: None,
            rewritten_path: None,
            auth: Default::default(),
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
        let grpc = GrpcKind::of(session.req_header().headers.get(http::header::CONTENT_TYPE));
        if let Some(kind) = grpc {
            return self.reject_grpc(session, answer, kind).await;
        }
        let mut resp = ResponseHeader::build(answer.status, Some(5))?;
        challenges(&mut resp, &answer)?;
        let body = Bytes::from(answer.body);
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        if let Some(seconds) = answer.retry_after {
            resp.insert_header(http::header::RETRY_AFTER, seconds.to_string())?;
        }
        self.write_answer(session, resp, body).await
    }

    /// A refusal as gRPC: trailers-only, `grpc-status` and `grpc-message` in the one header
    /// block, the challenges beside them.
    async fn reject_grpc(
        &self,
        session: &mut Session,
        answer: Answer,
        kind: GrpcKind,
    ) -> Result<()> {
        let mut resp = ResponseHeader::build(200, Some(8))?;
        resp.insert_header(http::header::CONTENT_TYPE, kind.content_type())?;
        resp.insert_header("grpc-status", answer.grpc_status.to_string())?;
        resp.insert_header("grpc-message", grpc::message(&answer.description))?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        if session.req_header().version != http::Version::HTTP_2 {
            // gRPC-Web over HTTP/1.1: an empty body, delimited.
            resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
        }
        challenges(&mut resp, &answer)?;
        match session.as_downstream_mut() {
            // Headers with END_STREAM: the trailers-only form (gRPC over HTTP/2,
            // §Responses). pingora's session-level write drops the end flag on HTTP/2 and
            // ends the stream with an empty DATA frame, which clients read as a response
            // without a status: the HTTP/2 session is written to directly.
            HttpSession::H2(h2) => h2.write_response_header(Box::new(resp), true)?,
            _ => session.write_response_header(Box::new(resp), true).await?,
        }
        // The call's messages are read off after the answer (a stream dropped unread is reset,
        // which clients report as "stream removed" instead of the status), for a moment
        // only: a client-streaming call may never end its body.
        if !session.is_body_empty() {
            let drained = tokio::time::timeout(GRPC_DRAIN, session.drain_request_body()).await;
            if !matches!(drained, Ok(Ok(()))) {
                session.set_keepalive(None);
            }
        }
        Ok(())
    }

    /// Serves the protected-resource metadata (RFC 9728 §3.2): `GET` or `HEAD` only.
    async fn serve_metadata(&self, session: &mut Session, document: Bytes) -> Result<()> {
        let method = &session.req_header().method;
        if method != http::Method::GET && method != http::Method::HEAD {
            let mut resp = ResponseHeader::build(405, Some(3))?;
            resp.insert_header(http::header::ALLOW, "GET, HEAD")?;
            resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
            return self.write_answer(session, resp, Bytes::new()).await;
        }
        let mut resp = ResponseHeader::build(200, Some(4))?;
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        resp.insert_header(http::header::CONTENT_LENGTH, document.len().to_string())?;
        // Short-lived: it follows policy reloads.
        resp.insert_header(http::header::CACHE_CONTROL, "max-age=60")?;
        self.write_answer(session, resp, document).await
    }

    /// Writes an answer of the gateway's own, keeping the connection open where it can.
    async fn write_answer(
        &self,
        session: &mut Session,
        resp: ResponseHeader,
        body: Bytes,
    ) -> Result<()> {
        // Keep-alive needs the unread request body off the wire first. A small body is
        // drained; a large (or chunked) one is not worth reading for an answer the gateway
        // writes itself, so the connection closes after the answer instead.
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

/// A refusal's `WWW-Authenticate` challenges and `DPoP-Nonce`, on an HTTP or a gRPC answer
/// alike.
fn challenges(resp: &mut ResponseHeader, answer: &Answer) -> Result<()> {
    for challenge in [&answer.challenge, &answer.dpop_challenge]
        .into_iter()
        .flatten()
    {
        resp.append_header(http::header::WWW_AUTHENTICATE, challenge.as_str())?;
    }
    if let Some(nonce) = &answer.dpop_nonce {
        resp.insert_header("dpop-nonce", nonce.as_str())?;
    }
    Ok(())
}

/// The access line's name of a request's protocol.
fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
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
    fn reserve(&mut self, _additional: usize) {
        // pingora's request header has no `reserve`: its two maps grow insert by insert.
    }
}

/// Runs `rewrite` on the request's header map alone, as an `http::HeaderMap` (which can
/// reserve room), and drops pingora's case-preserving name map: the upstream then reads
/// every name in lower case. The request's other parts move, nothing is copied. Only for an
/// origin-form target that is valid UTF-8 (pingora's raw target is not carried over).
fn in_one_map(req: &mut RequestHeader, rewrite: impl FnOnce(&mut http::HeaderMap)) {
    let end_stream = req.send_end_stream();
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, empty));
    rewrite(&mut parts.headers);
    *req = RequestHeader::from(parts);
    if let Some(end_stream) = end_stream {
        req.set_send_end_stream(end_stream);
    }
}
