//! Issuers: key sets (JWKS or an HMAC secret), audiences, algorithms, introspection and
//! the secrets they read.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_saphyr::Spanned;

use super::Problems;
use crate::config::file::*;
use crate::config::settings::*;
use crate::ground::Secret;
use crate::ground::alg::is_hmac;
use crate::ground::url::fetch_url_problem;

pub(super) fn compile_issuer(
    p: &mut Problems,
    i: usize,
    spanned: &Spanned<IssuerFile>,
    base: &Path,
) -> Option<IssuerSettings> {
    let at = format!("issuers[{i}]");
    let issuer = &spanned.value;
    let mut ok = true;
    if issuer.audiences.value.is_empty() {
        p.at(
            &issuer.audiences,
            format!("{at}.audiences: at least one audience is required"),
        );
        ok = false;
    }
    let algorithms = issuer.algorithms.as_ref().map_or_else(
        || vec![Algorithm::RS256],
        |a| a.value.iter().map(|n| n.0).collect(),
    );
    if let Some(a) = &issuer.algorithms
        && a.value.is_empty()
    {
        p.at(
            a,
            format!("{at}.algorithms: at least one algorithm is required"),
        );
        ok = false;
    }
    let hmac = algorithms.iter().any(|a| is_hmac(*a));
    let insecure_http = issuer.insecure_allow_http.unwrap_or(false);
    if let Some(old) = &issuer.insecure_allow_http_jwks_uri {
        p.at(
            old,
            format!("{at}.insecure_allow_http_jwks_uri: renamed insecure_allow_http, which covers every URL fetched for the issuer (metadata, jwks_uri, introspection endpoint)"),
        );
        ok = false;
    }
    // One rule for every URL the gateway fetches from for this issuer.
    let fetch_url = |p: &mut Problems, key: &str, url: &Spanned<String>| match fetch_url_problem(
        &url.value,
        insecure_http,
    ) {
        None => true,
        Some(why) => {
            p.at(url, format!("{at}.{key}: {why}"));
            false
        }
    };
    let keys = match (&issuer.hmac_secret_file, hmac, &issuer.jwks_uri) {
        (None, true, _) => {
            let where_ = issuer.algorithms.as_ref();
            let message = format!(
                "{at}.algorithms: HS256/HS384/HS512 need hmac_secret_file (a JWKS never supplies HMAC secrets)"
            );
            match where_ {
                Some(a) => p.at(a, message),
                None => p.at(spanned, message),
            }
            None
        }
        (Some(file), false, _) => {
            p.at(
                file,
                format!("{at}.hmac_secret_file: set, but no HS* algorithm is allowed"),
            );
            None
        }
        (Some(file), true, _) => read_secret(p, &format!("{at}.hmac_secret_file"), file, base),
        (None, false, None) => Some(KeySource::Jwks { uri: None }),
        (None, false, Some(uri)) => fetch_url(p, "jwks_uri", uri).then(|| KeySource::Jwks {
            uri: Some(uri.value.clone()),
        }),
    };
    let scope_claims = issuer.scope_claims.as_ref().map_or_else(
        || DEFAULT_SCOPE_CLAIMS.map(String::from).to_vec(),
        |c| c.value.clone(),
    );
    if let Some(c) = &issuer.scope_claims
        && c.value.is_empty()
    {
        p.at(c, format!("{at}.scope_claims: name at least one claim"));
        ok = false;
    }
    let jwks = compile_jwks(p, &at, issuer.jwks.as_ref());
    if let Some(endpoint) = issuer
        .introspection
        .as_ref()
        .and_then(|i| i.value.endpoint.as_ref())
        && is_url(&endpoint.value)
        && !fetch_url(p, "introspection.endpoint", endpoint)
    {
        ok = false;
    }
    let introspection = issuer
        .introspection
        .as_ref()
        .map(|i| compile_introspection(p, &at, i, base));
    if let Some(None) = introspection {
        ok = false;
    }
    let introspection = introspection.flatten();
    // Metadata is discovered by the key set's refresher; a shared-secret issuer has none, so
    // its introspection endpoint would never be found.
    if let (Some(KeySource::Hmac { .. }), Some(i), Some(file)) =
        (&keys, &introspection, &issuer.introspection)
        && i.endpoint.is_none()
    {
        p.at(
            file,
            format!("{at}.introspection.endpoint: required with hmac_secret_file (an HMAC issuer's metadata is not discovered)"),
        );
        ok = false;
    }
    let discovery = matches!(keys, Some(KeySource::Jwks { uri: None }))
        || introspection.as_ref().is_some_and(|i| i.endpoint.is_none());
    if discovery && !is_url(&issuer.issuer.value) {
        p.at(
            &issuer.issuer,
            format!(
                "{at}.issuer: \"{}\" is not an http(s) URL, so its metadata cannot be discovered; set jwks_uri (and introspection.endpoint)",
                issuer.issuer.value
            ),
        );
        ok = false;
    } else if discovery && !fetch_url(p, "issuer", &issuer.issuer) {
        // Its metadata is read from the issuer's own URL.
        ok = false;
    }
    let (Some(keys), Some(jwks), true) = (keys, jwks, ok) else {
        return None;
    };
    Some(IssuerSettings {
        issuer: Arc::from(issuer.issuer.value.as_str()),
        label: issuer
            .name
            .clone()
            .unwrap_or_else(|| issuer.issuer.value.clone()),
        audiences: issuer.audiences.value.clone(),
        keys,
        discovery,
        introspection,
        algorithms,
        leeway: Duration::from_secs(issuer.leeway_seconds.unwrap_or(30)),
        scope_claims,
        jwks,
        dpop: issuer.dpop.as_ref().map_or(DpopMode::Off, |d| d.value),
        insecure_allow_http: insecure_http,
    })
}

pub(super) fn read_secret(
    p: &mut Problems,
    at: &str,
    file: &Spanned<std::path::PathBuf>,
    base: &Path,
) -> Option<KeySource> {
    let path = base.join(&file.value);
    let secret = match std::fs::read(&path) {
        Ok(s) => s,
        Err(e) => {
            p.at(file, format!("{at}: cannot read {}: {e}", path.display()));
            return None;
        }
    };
    let secret = trim_newline(&secret);
    if secret.len() < super::defaults::MIN_HMAC_SECRET {
        p.at(
            file,
            format!(
                "{at}: {} holds {} bytes; a secret needs at least {}",
                path.display(),
                secret.len(),
                super::defaults::MIN_HMAC_SECRET
            ),
        );
        return None;
    }
    Some(KeySource::Hmac {
        secret: Secret::new(secret),
    })
}

fn trim_newline(secret: &[u8]) -> &[u8] {
    let end = secret
        .iter()
        .rposition(|b| !b"\r\n".contains(b))
        .map_or(0, |i| i + 1);
    &secret[..end]
}

fn compile_jwks(
    p: &mut Problems,
    at: &str,
    jwks: Option<&Spanned<JwksFile>>,
) -> Option<JwksTiming> {
    let defaults = JwksTiming::default();
    let Some(spanned) = jwks else {
        return Some(defaults);
    };
    let j = &spanned.value;
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let timing = JwksTiming {
        refresh: secs(j.refresh_seconds, defaults.refresh),
        min_refresh: secs(j.min_refresh_seconds, defaults.min_refresh),
        max_refresh: secs(j.max_refresh_seconds, defaults.max_refresh),
        unknown_kid_refetch: secs(j.unknown_kid_refetch_seconds, defaults.unknown_kid_refetch),
        max_staleness: secs(j.max_staleness_seconds, defaults.max_staleness),
        fetch_timeout: secs(j.fetch_timeout_seconds, defaults.fetch_timeout),
        unknown_kid_wait: j
            .unknown_kid_wait_ms
            .map_or(defaults.unknown_kid_wait, Duration::from_millis),
    };
    let mut ok = true;
    if timing.min_refresh.is_zero() || timing.min_refresh > timing.max_refresh {
        p.at(
            spanned,
            format!("{at}.jwks: need 0 < min_refresh_seconds <= max_refresh_seconds"),
        );
        ok = false;
    }
    if timing.fetch_timeout.is_zero() {
        p.at(
            spanned,
            format!("{at}.jwks.fetch_timeout_seconds: must be at least 1"),
        );
        ok = false;
    }
    ok.then_some(timing)
}

fn is_url(value: &str) -> bool {
    value.starts_with("http://") || value.starts_with("https://")
}

fn compile_introspection(
    p: &mut Problems,
    at: &str,
    spanned: &Spanned<IntrospectionFile>,
    base: &Path,
) -> Option<IntrospectionSettings> {
    let i = &spanned.value;
    let mut ok = true;
    if let Some(endpoint) = &i.endpoint
        && !is_url(&endpoint.value)
    {
        p.at(
            endpoint,
            format!(
                "{at}.introspection.endpoint: \"{}\" is not an http(s) URL",
                endpoint.value
            ),
        );
        ok = false;
    }
    let timeout = i.timeout_ms.as_ref().map_or(2000, |t| t.value);
    if let Some(t) = &i.timeout_ms
        && t.value == 0
    {
        p.at(
            t,
            format!("{at}.introspection.timeout_ms: must be at least 1"),
        );
        ok = false;
    }
    let path = base.join(&i.client_secret_file.value);
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Some(s.trim_end_matches(['\r', '\n']).to_owned()),
        Ok(_) => {
            p.at(
                &i.client_secret_file,
                format!(
                    "{at}.introspection.client_secret_file: {} is empty",
                    path.display()
                ),
            );
            None
        }
        Err(e) => {
            p.at(
                &i.client_secret_file,
                format!(
                    "{at}.introspection.client_secret_file: cannot read {}: {e}",
                    path.display()
                ),
            );
            None
        }
    };
    let cache_max_bytes = i.cache_max_bytes.as_ref().map_or(32 << 20, |b| b.value);
    if let Some(b) = &i.cache_max_bytes
        && b.value < 64 << 10
    {
        p.at(
            b,
            format!("{at}.introspection.cache_max_bytes: at least 65536 (64 KiB)"),
        );
        ok = false;
    }
    let (Some(client_secret), true) = (secret, ok) else {
        return None;
    };
    Some(IntrospectionSettings {
        endpoint: i.endpoint.as_ref().map(|e| e.value.clone()),
        client_id: i.client_id.clone(),
        client_secret: Secret::new(client_secret),
        auth_method: i.auth_method.unwrap_or_default(),
        timeout: Duration::from_millis(timeout),
        cache_max: Duration::from_secs(i.cache_max_seconds.unwrap_or(120)),
        inactive_cache: Duration::from_secs(i.inactive_cache_seconds.unwrap_or(10)),
        cache_max_bytes,
    })
}
