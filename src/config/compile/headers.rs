//! The identity headers set upstream, the headers stripped, and the RFC 9728 document.

use http::HeaderName;
use serde_saphyr::Spanned;

use super::Problems;
use crate::config::file::*;
use crate::config::settings::*;
use crate::ground::url::is_loopback_url;

/// RFC 9728 §3.1: the metadata lives at the resource's origin, under
/// `/.well-known/oauth-protected-resource` followed by the resource's path, with only a
/// slash right after the host removed (`https://h/` → `…/oauth-protected-resource`,
/// `https://h/a/` → `…/oauth-protected-resource/a/`: RFC 8414's rule of dropping every
/// trailing slash is not this one).
pub(super) fn compile_protected_resource(
    p: &mut Problems,
    spanned: &Spanned<ProtectedResourceFile>,
    issuers: &[IssuerSettings],
) -> Option<ProtectedResource> {
    let r = &spanned.value;
    let uri: http::Uri = match r.resource.value.parse() {
        Ok(u) => u,
        Err(_) => {
            p.at(
                &r.resource,
                format!(
                    "protected_resource.resource: \"{}\" is not a URL",
                    r.resource.value
                ),
            );
            return None;
        }
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        p.at(
            &r.resource,
            "protected_resource.resource: must be an absolute https URL (RFC 9728 §2)",
        );
        return None;
    };
    if scheme != "https" && !(scheme == "http" && is_loopback_url(&r.resource.value)) {
        p.at(
            &r.resource,
            format!(
                "protected_resource.resource: \"{}\" must be an https URL (RFC 9728 §1.2); plain http only on loopback",
                r.resource.value
            ),
        );
        return None;
    }
    if uri.query().is_some() || r.resource.value.contains('#') {
        p.at(
            &r.resource,
            "protected_resource.resource: must have no query or fragment (RFC 9728 §1.2)",
        );
        return None;
    }
    let suffix = match uri.path() {
        "/" => "",
        path => path,
    };
    let path = format!("/.well-known/oauth-protected-resource{suffix}");
    Some(ProtectedResource {
        resource: r.resource.value.clone(),
        resource_path: suffix.to_owned(),
        authorization_servers: r
            .authorization_servers
            .clone()
            .unwrap_or_else(|| issuers.iter().map(|i| i.issuer.to_string()).collect()),
        resource_name: r.resource_name.clone(),
        resource_documentation: r.resource_documentation.clone(),
        url: format!("{scheme}://{authority}{path}"),
        path,
    })
}

pub(super) fn compile_headers(
    p: &mut Problems,
    h: &IdentityHeadersFile,
    strip: &[Spanned<String>],
    forward_authorization: bool,
) -> Option<HeaderSettings> {
    let mut ok = true;
    let mut name = |key: &str, value: Option<&Spanned<String>>, default: &str| {
        let Some(value) = value else {
            return HeaderName::from_bytes(default.as_bytes()).ok();
        };
        match identity_header(&value.value) {
            Ok(n) => Some(n),
            Err(why) => {
                p.at(value, format!("{key}: \"{}\" {why}", value.value));
                ok = false;
                None
            }
        }
    };
    let [
        subject,
        issuer,
        scopes,
        client_id,
        key_thumbprint,
        cert_thumbprint,
        dry_run,
    ] = [
        ("subject", &h.subject, "x-auth-subject"),
        ("issuer", &h.issuer, "x-auth-issuer"),
        ("scopes", &h.scopes, "x-auth-scopes"),
        ("client_id", &h.client_id, "x-auth-client-id"),
        ("key_thumbprint", &h.key_thumbprint, "x-auth-key-thumbprint"),
        (
            "cert_thumbprint",
            &h.cert_thumbprint,
            "x-auth-cert-thumbprint",
        ),
        ("dry_run", &h.dry_run, "x-scopegate-dry-run"),
    ]
    .map(|(key, value, default)| name(&format!("identity_headers.{key}"), value.as_ref(), default));
    let mut claims = Vec::new();
    for (claim, header) in &h.claims {
        if let Some(n) = name("identity_headers.claims", Some(header), "") {
            claims.push((claim.clone(), n));
        }
    }
    let mut stripped = Vec::new();
    for header in strip {
        if let Some(n) = name("strip_headers", Some(header), "") {
            stripped.push(n);
        }
    }
    let (
        Some(subject),
        Some(issuer),
        Some(scopes),
        Some(client_id),
        Some(key_thumbprint),
        Some(cert_thumbprint),
        Some(dry_run),
        true,
    ) = (
        subject,
        issuer,
        scopes,
        client_id,
        key_thumbprint,
        cert_thumbprint,
        dry_run,
        ok,
    )
    else {
        return None;
    };
    Some(HeaderSettings {
        subject,
        issuer,
        scopes,
        client_id,
        key_thumbprint,
        cert_thumbprint,
        dry_run,
        claims,
        strip: stripped,
        forward_authorization,
        drop_underscore_headers: false,
    })
}

/// A header name that may carry identity (or be stripped): a valid name, and not one the
/// request needs to be what it is.
pub(super) fn identity_header(name: &str) -> Result<HeaderName, &'static str> {
    let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| "is not a header name")?;
    if parsed == http::header::AUTHORIZATION || parsed == http::header::HOST {
        return Err("cannot carry identity");
    }
    Ok(parsed)
}
