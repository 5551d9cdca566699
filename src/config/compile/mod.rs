//! `scopegate.yaml` → [`Settings`]: defaults applied, every value checked, files it names
//! read (the HMAC secret), and every problem reported at once with `file:line:column`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::ConfigError;
use super::file::{ConfigFile, ThreadsFile};
use super::settings::{
    DpopMode, HeaderSettings, Http2Settings, Settings, Threads, TlsListener, UpstreamUrl,
};
use crate::config::HostRules;
use crate::config::TokenRules;
use crate::config::UpstreamTimeouts;
use crate::ground::Pos;
use crate::ground::path::PathRules;
use crate::ground::query::QueryRules;

mod defaults;
mod dpop;
mod headers;
mod issuers;
mod store;
mod tracing;

pub use dpop::DEFAULT_DPOP_ALGORITHMS;
use dpop::compile_dpop;
use headers::{compile_headers, compile_protected_resource, identity_header};
use issuers::compile_issuer;
use store::compile_shared_store;

/// Collects problems, each at the position of the value it is about.
struct Problems<'a> {
    file: &'a str,
    found: Vec<ConfigError>,
}

impl Problems<'_> {
    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.found
            .push(ConfigError::at(self.file, Pos::of(spanned), message));
    }

    /// An optional positive number: the default when absent, a problem at its position
    /// when zero.
    fn positive<T: Copy + Default + PartialEq>(
        &mut self,
        value: Option<&Spanned<T>>,
        default: T,
        name: &str,
    ) -> T {
        match value {
            Some(v) if v.value == T::default() => {
                self.at(v, format!("{name}: must be at least 1"));
                default
            }
            Some(v) => v.value,
            None => default,
        }
    }

    fn whole(&mut self, message: impl Into<String>) {
        self.found.push(ConfigError::whole(self.file, message));
    }
}

/// Compiles a parsed file; relative paths are taken from `base`, the file's folder.
pub fn compile(file: ConfigFile, shown: &str, base: &Path) -> Result<Settings, Vec<ConfigError>> {
    let mut p = Problems {
        file: shown,
        found: Vec::new(),
    };
    if file.version.value != 1 {
        p.at(
            &file.version,
            format!(
                "version: unsupported version {} (expected 1)",
                file.version.value
            ),
        );
    }
    let listen = address(&mut p, "listen", file.listen.as_ref(), defaults::LISTEN);
    let admin_listen = address(
        &mut p,
        "admin_listen",
        file.admin_listen.as_ref(),
        defaults::ADMIN_LISTEN,
    );
    let listen_tls = file.listen_tls.as_ref().and_then(|tls| {
        let address = address(&mut p, "listen_tls.address", Some(&tls.value.address), "")?;
        let handshake = p.positive(
            tls.value.handshake_timeout_seconds.as_ref(),
            defaults::TLS_HANDSHAKE_TIMEOUT_SECONDS,
            "listen_tls.handshake_timeout_seconds",
        );
        Some(TlsListener {
            address,
            cert: base.join(&tls.value.cert),
            key: base.join(&tls.value.key),
            client_ca: tls.value.client_ca_file.as_ref().map(|f| base.join(f)),
            handshake_timeout: Duration::from_secs(handshake),
        })
    });
    // The TLS listener's connections are told apart from the plain one's by the address
    // they were accepted on (`proxy::tls::TlsHandshake`): the two may not share a port.
    if let (Some(plain), Some(tls), Some(spanned)) = (listen, &listen_tls, &file.listen_tls)
        && plain.port() == tls.address.port()
    {
        p.at(
            &spanned.value.address,
            format!(
                "listen_tls.address: \"{}\" shares its port with listen ({plain}); give it another",
                tls.address
            ),
        );
    }
    let upstream = match split_upstream_url(&file.upstream.value) {
        Ok(u) => Some(u),
        Err(e) => {
            p.at(&file.upstream, format!("upstream: {e}"));
            None
        }
    };
    let threads = compile_threads(&mut p, file.threads.as_ref());
    if file.issuers.value.is_empty() {
        p.at(&file.issuers, "issuers: at least one issuer is required");
    }
    let mut issuers = Vec::new();
    for (i, issuer) in file.issuers.value.iter().enumerate() {
        let duplicate = file.issuers.value[..i]
            .iter()
            .any(|other| other.value.issuer.value == issuer.value.issuer.value);
        if duplicate {
            p.at(
                &issuer.value.issuer,
                format!(
                    "issuers[{i}].issuer: \"{}\" is configured twice",
                    issuer.value.issuer.value
                ),
            );
        }
        if let Some(settings) = compile_issuer(&mut p, i, issuer, base) {
            issuers.push(settings);
        }
    }
    let headers = compile_headers(
        &mut p,
        &file.identity_headers,
        &file.strip_headers,
        file.forward_authorization.unwrap_or(true),
    )
    .map(|h| HeaderSettings {
        drop_underscore_headers: file.drop_underscore_headers.unwrap_or(false),
        ..h
    });
    let max_bytes = p.positive(
        file.token.max_bytes.as_ref(),
        defaults::TOKEN_MAX_BYTES,
        "token.max_bytes",
    );
    let dpop = compile_dpop(&mut p, &file.dpop, base);
    let shared_store = file
        .shared_store
        .as_ref()
        .and_then(|s| compile_shared_store(&mut p, s, base));
    if file.dpop.public_url.is_none() {
        for (i, issuer) in file.issuers.value.iter().enumerate() {
            if let Some(mode) = &issuer.value.dpop
                && mode.value != DpopMode::Off
            {
                p.at(
                    mode,
                    format!("issuers[{i}].dpop: DPoP needs dpop.public_url (the URL clients address the API with)"),
                );
            }
        }
    }
    let client_cert_header =
        file.insecure_client_cert_header
            .as_ref()
            .and_then(|h| match identity_header(&h.value) {
                Ok(n) => Some(n),
                Err(why) => {
                    p.at(
                        h,
                        format!("insecure_client_cert_header: \"{}\" {why}", h.value),
                    );
                    None
                }
            });
    let cache_entries = file
        .token_cache
        .max_entries
        .as_ref()
        .map_or(defaults::TOKEN_CACHE_ENTRIES, |m| m.value);
    let protected_resource = file
        .protected_resource
        .as_ref()
        .and_then(|r| compile_protected_resource(&mut p, r, &issuers));
    let mut allowed_hosts = Vec::new();
    for host in &file.hosts.allowed {
        let name = host.value.to_ascii_lowercase();
        if name.is_empty()
            || http::uri::Authority::try_from(name.as_str()).is_err()
            || name.contains('@')
        {
            p.at(host, format!("hosts.allowed: \"{}\" is not a host name (expected e.g. api.exampleco.com or api.exampleco.com:8443)", host.value));
        } else {
            allowed_hosts.push(name);
        }
    }
    let defaults = UpstreamTimeouts::default();
    let mut upstream_timeouts = defaults;
    if let Some(t) = &file.upstream_timeouts {
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        upstream_timeouts = UpstreamTimeouts {
            connect: secs(t.value.connect_seconds, defaults.connect),
            read: secs(t.value.read_seconds, defaults.read),
            write: secs(t.value.write_seconds, defaults.write),
            idle: secs(t.value.idle_seconds, defaults.idle),
        };
        let u = &upstream_timeouts;
        if [u.connect, u.read, u.write, u.idle]
            .iter()
            .any(Duration::is_zero)
        {
            p.at(
                t,
                "upstream_timeouts: every timeout must be at least 1 second",
            );
        }
    }
    let client_header_timeout = Duration::from_secs(p.positive(
        file.client_header_timeout_seconds.as_ref(),
        defaults::CLIENT_HEADER_TIMEOUT_SECONDS,
        "client_header_timeout_seconds",
    ));
    let max_connections = p.positive(
        file.max_connections.as_ref(),
        defaults::MAX_CONNECTIONS,
        "max_connections",
    );
    let cache_bytes = file
        .token_cache
        .max_bytes
        .as_ref()
        .map_or(defaults::TOKEN_CACHE_BYTES, |m| m.value);
    for bound in [&file.token_cache.max_bytes, &file.token_cache.max_entries]
        .into_iter()
        .flatten()
    {
        if bound.value == 0 {
            p.at(
                bound,
                "token_cache: bounds must be at least 1 (use enabled: false to turn the cache off)",
            );
        }
    }
    if !p.found.is_empty() {
        return Err(p.found);
    }
    let (Some(listen), Some(admin_listen), Some(upstream), Some(headers), Some(dpop)) =
        (listen, admin_listen, upstream, headers, dpop)
    else {
        p.whole("invalid configuration");
        return Err(p.found);
    };
    let allow_query = file.token.insecure_allow_query_parameter.unwrap_or(false);
    let tracing = tracing::compile_tracing(&mut p, &file.tracing, base, &|name| {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    });
    let http2 = Http2Settings {
        h2c: file.http2.h2c.unwrap_or(false),
        tls: file.http2.tls.unwrap_or(true),
        max_concurrent_streams: p.positive(
            file.http2.max_concurrent_streams.as_ref(),
            defaults::H2_MAX_CONCURRENT_STREAMS,
            "http2.max_concurrent_streams",
        ),
        max_header_list_bytes: p.positive(
            file.http2.max_header_list_bytes.as_ref(),
            defaults::H2_MAX_HEADER_LIST_BYTES,
            "http2.max_header_list_bytes",
        ),
        idle_timeout: Duration::from_secs(p.positive(
            file.http2.idle_timeout_seconds.as_ref(),
            defaults::H2_IDLE_TIMEOUT_SECONDS,
            "http2.idle_timeout_seconds",
        )),
    };
    if !p.found.is_empty() {
        return Err(p.found);
    }
    Ok(Settings {
        listen,
        listen_tls,
        admin_listen,
        upstream,
        upstream_ca_file: file.upstream_ca_file.map(|f| base.join(f)),
        policy: base.join(&file.policy),
        threads,
        grace_period: file
            .grace_period_seconds
            .map_or(defaults::GRACE_PERIOD, Duration::from_secs),
        graceful_shutdown_timeout: file
            .graceful_shutdown_timeout_seconds
            .map_or(defaults::GRACEFUL_SHUTDOWN_TIMEOUT, Duration::from_secs),
        upgrade_socket: file
            .upgrade_socket
            .unwrap_or_else(crate::config::runtime_dir::default_upgrade_socket),
        realm: file.realm.unwrap_or_else(|| defaults::REALM.into()),
        log_format: file.log_format.unwrap_or_default(),
        access_log: file.access_log.unwrap_or(true),
        issuers,
        headers,
        token: TokenRules {
            allow_query,
            max_bytes,
            accept_dpop: dpop.public_url.is_some(),
        },
        dpop,
        client_cert_header,
        token_cache_entries: file
            .token_cache
            .enabled
            .unwrap_or(true)
            .then_some(cache_entries as usize),
        protected_resource,
        token_cache_max_bytes: cache_bytes,
        upstream_timeouts,
        upstream_protocol: file.upstream_protocol.unwrap_or_default(),
        upstream_header_case: file.upstream_header_case.unwrap_or_default(),
        http2,
        client_header_timeout,
        max_connections,
        max_request_body_bytes: file
            .max_request_body_bytes
            .unwrap_or(defaults::MAX_REQUEST_BODY_BYTES),
        shared_store,
        tracing,
        paths: PathRules {
            segment_parameters: file.paths.segment_parameters.unwrap_or_default(),
            allow_double_encoding: file.paths.insecure_allow_double_encoding.unwrap_or(false),
        },
        hosts: HostRules {
            absolute_form: file.hosts.absolute_form.unwrap_or_default(),
            allowed: allowed_hosts,
        },
        query: QueryRules {
            method_override: file.method_override_parameter.unwrap_or_default(),
            token_parameter: allow_query,
        },
    })
}

fn compile_threads(p: &mut Problems, value: Option<&Spanned<ThreadsFile>>) -> Threads {
    let Some(value) = value else {
        return Threads::Fixed(defaults::THREADS);
    };
    match &value.value {
        ThreadsFile::Count(0) => p.at(value, "threads: must be at least 1"),
        ThreadsFile::Count(n) => return Threads::Fixed(*n),
        ThreadsFile::Word(w) if w == "auto" => return Threads::Auto,
        ThreadsFile::Word(w) => p.at(
            value,
            format!("threads: \"{w}\" is neither a number nor auto"),
        ),
    }
    Threads::Fixed(1)
}

fn address(
    p: &mut Problems,
    key: &str,
    value: Option<&Spanned<String>>,
    default: &str,
) -> Option<SocketAddr> {
    let Some(value) = value else {
        return default.parse().ok();
    };
    match value.value.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            p.at(
                value,
                format!(
                    "{key}: \"{}\" is not an address (expected e.g. 0.0.0.0:8080)",
                    value.value
                ),
            );
            None
        }
    }
}

/// Host, port and TLS of an upstream URL, checked for shape only (nothing is resolved).
pub(super) fn split_upstream_url(url: &str) -> Result<UpstreamUrl, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("\"{url}\" is not a URL (expected http://host:port)"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("\"{url}\" must start with http:// or https://")),
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "\"{url}\" must not have a path: requests keep the path they were checked on"
        ));
    }
    let host = uri.host().ok_or_else(|| format!("\"{url}\" has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(UpstreamUrl {
        url: url.to_owned(),
        host,
        port,
        tls,
    })
}
