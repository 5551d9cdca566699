//! Assembles a pingora server from a checked configuration: the proxy, the admin listener,
//! one JWKS refresher per issuer and the policy watcher.

use std::sync::Arc;
use std::time::Duration;

use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::auth::Authenticator;
use crate::auth::jwks::{JwksRefresher, KeyStore};
use crate::config::{KeySource, Settings};
use crate::decision::ChallengeContext;
use crate::ops::access_log::{AccessLog, AccessLogFlush};
use crate::ops::metrics::Metrics;
use crate::ops::trace::Tracing;
use crate::policy::reload::{PolicyStore, PolicyWatcher};
use crate::proxy::admin::Admin;
use crate::proxy::connections::ConnectionCap;
use crate::proxy::header_clock::HeaderDeadline;
use crate::proxy::headers::HeaderPlan;
use crate::proxy::metadata::ResourceMetadata;
use crate::proxy::phases::Gateway;
use crate::proxy::tls::{CertWatcher, ReloadingCert, TlsHandshake};

/// Why the gateway could not start; each line names the file and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct StartError(pub Vec<String>);

/// How the process was started.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Take the listening sockets over from a running scopegate (graceful upgrade).
    pub upgrade: bool,
}

/// The assembled gateway: pingora's server, and the writer of the access log it feeds.
pub struct Process {
    server: Server,
    access_log: AccessLogFlush,
    tracing: Option<Tracing>,
}

impl Process {
    /// Serves until SIGTERM, SIGINT or an upgrade's SIGQUIT; once pingora's runtimes have
    /// stopped (no request is left to log), writes out the queued access lines and returns.
    pub fn run(self) {
        // Not `run_forever`: it exits the process from inside pingora, before the flush.
        self.server.run(RunArgs::default());
        self.access_log.flush();
        if let Some(tracing) = &self.tracing {
            tracing.shutdown();
        }
    }
}

/// Builds the server; the policy is compiled before any listener opens.
pub fn build(settings: &Settings, options: RunOptions) -> Result<Process, StartError> {
    let metrics = Metrics::new();
    let policy = PolicyStore::load(&settings.policy, metrics.clone())
        .map_err(|errors| StartError(errors.iter().map(ToString::to_string).collect()))?;
    let policy = Arc::new(policy);
    let upstream = settings
        .upstream
        .resolve()
        .map_err(|e| StartError(vec![format!("upstream: {e}")]))?;

    let tracing = match &settings.tracing {
        None => None,
        Some(t) => Some(
            Tracing::start(t, metrics.clone())
                .map_err(|e| StartError(vec![format!("tracing: {e}")]))?,
        ),
    };
    let (auth, stores) = Authenticator::from_settings(settings, &metrics);
    let mut sources = Vec::new();
    for (issuer, store) in settings.issuers.iter().zip(&stores) {
        metrics.issuer(&store.label);
        if issuer.introspection.is_some() {
            metrics.introspecting_issuer(&store.label);
        }
        if let KeySource::Jwks { uri } = &issuer.keys {
            let discover = issuer.discovery.then(|| issuer.issuer.to_string());
            sources.push(KeySourceTask {
                store: store.clone(),
                uri: uri.clone(),
                discover,
                insecure_allow_http: issuer.insecure_allow_http,
            });
        }
    }

    let threads = crate::config::cpus::choose(settings.threads);
    tracing::info!(threads = threads.threads, why = %threads.why, "proxy worker threads");
    crate::config::runtime_dir::prepare(&settings.upgrade_socket)
        .map_err(|e| StartError(vec![format!("upgrade_socket: {e}")]))?;
    let mut conf = ServerConf {
        threads: threads.threads,
        grace_period_seconds: Some(settings.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(settings.graceful_shutdown_timeout.as_secs()),
        upgrade_sock: settings.upgrade_socket.display().to_string(),
        ..ServerConf::default()
    };
    conf.pid_file = format!("{}.pid", settings.upgrade_socket.display());
    conf.ca_file = settings
        .upstream_ca_file
        .as_ref()
        .map(|p| p.display().to_string());
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // In an upgrade this blocks until the old process hands its listeners over.
    server.bootstrap();
    if options.upgrade {
        load_keys_before_serving(&sources, &metrics);
    }

    let (access_log, access_log_flush) =
        AccessLog::start(settings.access_log, settings.log_format, metrics.clone());
    let gateway = Gateway {
        policy: policy.clone(),
        auth,
        headers: HeaderPlan::new(&settings.headers),
        metadata: settings.protected_resource.as_ref().map(|r| {
            let dpop_algorithms = match &settings.dpop.public_url {
                Some(_) => crate::auth::jws::advertised_names(&settings.dpop.algorithms),
                None => Vec::new(),
            };
            let dpop_required = settings
                .issuers
                .iter()
                .all(|i| i.dpop == crate::config::DpopMode::Required);
            ResourceMetadata::new(
                r,
                settings.token.allow_query,
                dpop_algorithms,
                dpop_required,
            )
        }),
        challenge: ChallengeContext {
            realm: settings.realm.clone(),
            resource_metadata: settings.protected_resource.as_ref().map(|r| r.url.clone()),
        },
        upstream,
        metrics: metrics.clone(),
        access_log,
        client_cert_header: settings.client_cert_header.clone(),
        paths: settings.paths,
        hosts: settings.hosts.clone(),
        query: settings.query,
        timeouts: settings.upstream_timeouts,
        upstream_h2: settings.upstream_protocol == crate::config::UpstreamProtocol::H2,
        preserve_header_case: settings.upstream_header_case
            == crate::config::UpstreamHeaderCase::Preserve,
        max_body_bytes: settings.max_request_body_bytes,
        tracing: tracing.clone(),
    };
    if let Some(resource) = &settings.protected_resource {
        policy.check_resource_coverage(&resource.resource, &resource.resource_path);
    }
    let mut app = pingora::proxy::http_proxy(&server.configuration, gateway);
    app.server_options = Some(crate::proxy::http2::server_options(&settings.http2));
    app.h2_options = Some(crate::proxy::http2::h2_options(&settings.http2));
    let cap = ConnectionCap::new(settings.max_connections, metrics.clone());
    let mut app = HeaderDeadline::new(app, settings.client_header_timeout, cap, metrics.clone());
    let mut cert_watcher = None;
    let mut tls_address = None;
    if let Some(tls) = &settings.listen_tls {
        let cert = Arc::new(
            ReloadingCert::load(&tls.cert, &tls.key)
                .map_err(|e| StartError(vec![format!("listen_tls: {e}")]))?,
        );
        let mut tls_settings = TlsSettings::intermediate("", "")
            .map_err(|e| StartError(vec![format!("listen_tls: {e}")]))?;
        tls_settings.set_cert_resolver(cert.clone());
        if settings.http2.tls {
            // ALPN offers `h2` first and `http/1.1` beside it.
            tls_settings.enable_h2();
        }
        if let Some(ca) = &tls.client_ca {
            let verifier = crate::proxy::tls::client_verifier(ca)
                .map_err(|e| StartError(vec![format!("listen_tls.client_ca_file: {e}")]))?;
            tls_settings.set_client_cert_verifier(verifier);
        }
        // The handshake happens inside the connection cap and under the header clock, not
        // in pingora's accept loop (fixed 60 s, before any of ours runs): the listener is
        // plain TCP and `TlsHandshake` terminates TLS for its connections.
        app = app.with_tls(TlsHandshake::new(
            tls_settings,
            tls.address,
            tls.handshake_timeout,
            metrics.clone(),
        ));
        tls_address = Some(tls.address);
        cert_watcher = Some(CertWatcher::new(cert));
    }
    let mut proxy = Service::new("scopegate".into(), app);
    proxy.add_tcp(&settings.listen.to_string());
    if let Some(address) = tls_address {
        proxy.add_tcp(&address.to_string());
    }
    server.add_service(proxy);

    let mut admin = Service::new(
        "scopegate admin".into(),
        Admin::new(metrics.clone(), stores),
    );
    admin.add_tcp(&settings.admin_listen.to_string());
    server.add_service(admin);

    for source in sources {
        let refresher = source.refresher(&metrics).with_tracing(tracing.clone());
        server.add_service(background_service("jwks refresher", refresher));
    }
    if let Some(watcher) = cert_watcher {
        server.add_service(background_service("certificate watcher", watcher));
    }
    server.add_service(background_service(
        "policy watcher",
        PolicyWatcher::new(policy).with_tracing(tracing.clone()),
    ));
    Ok(Process {
        server,
        access_log: access_log_flush,
        tracing,
    })
}

/// Where one issuer's keys come from: what its refreshers are made of.
struct KeySourceTask {
    store: Arc<KeyStore>,
    uri: Option<String>,
    discover: Option<String>,
    insecure_allow_http: bool,
}

impl KeySourceTask {
    fn refresher(&self, metrics: &Metrics) -> JwksRefresher {
        JwksRefresher::new(
            self.store.clone(),
            self.uri.clone(),
            self.discover.clone(),
            self.insecure_allow_http,
            metrics.clone(),
        )
    }
}

/// How long a new process in an upgrade waits for its first keys before it serves anyway.
/// Under pingora's 5 s window in which the old process still accepts after the handover.
const UPGRADE_KEY_WAIT: Duration = Duration::from_secs(3);

/// Fetches every issuer's JWKS once before a new process starts accepting in an upgrade.
///
/// The old process keeps accepting for a few seconds after the handover; if the new one
/// accepted before its keys were in, its share of those connections would get 503 (fail
/// closed) although the old process could have served them. If the JWKS server does not
/// answer in time, the new process serves as at a normal start: 503 on protected routes
/// until the background refresher gets the keys.
fn load_keys_before_serving(sources: &[KeySourceTask], metrics: &Metrics) {
    if sources.is_empty() {
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "cannot load keys before serving");
            return;
        }
    };
    // A refresher of its own: reqwest's pooled connections belong to the runtime that
    // opened them, and this one is gone before the server's runtimes start.
    runtime.block_on(async {
        let mut fetches = tokio::task::JoinSet::new();
        for source in sources {
            let refresher = source.refresher(metrics);
            // A failure is logged and counted by `refresh`; readiness below says the rest.
            fetches.spawn(async move { refresher.refresh().await.ok() });
        }
        // Past the deadline the unfinished fetches are dropped with the runtime.
        let _ = tokio::time::timeout(UPGRADE_KEY_WAIT, fetches.join_all()).await;
    });
    if sources.iter().any(|source| !source.store.is_ready()) {
        tracing::warn!(
            waited_ms = UPGRADE_KEY_WAIT.as_millis() as u64,
            "upgrade: serving before every issuer's keys are loaded; protected routes answer 503 until they are"
        );
    }
}
