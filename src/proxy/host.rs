//! The request's target host: one `Host`, or the authority of an absolute-form target, and
//! optionally one of the hosts the operator serves.
//!
//! - an HTTP/1.1 request without `Host`, or with more than one, is refused (RFC 9112 §3.2);
//! - an absolute-form target (`GET http://host/path`) names its own host, which wins over
//!   `Host` (RFC 9112 §3.2.2): by default it is forwarded in origin-form with that
//!   authority as `Host`, so the upstream never sees two hosts; [`AbsoluteForm::Reject`]
//!   refuses it instead;
//! - with `hosts.allowed` set, any other host is refused with 421.

use crate::config::{AbsoluteForm, HostRules};
use crate::ground::rejection::Rejection;
use pingora::protocols::http::authority::{RawTargetAuthority, raw_target_authority};

/// The request's host, as the gateway will forward it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    /// Origin-form: the `Host` header stands.
    Header,
    /// Absolute-form: forward `/path?query` with this authority as `Host`.
    Absolute(String),
}

/// Checks the target and `Host` of a request: `http11` is whether it is HTTP/1.1 (HTTP/1.0
/// may omit `Host`; HTTP/2 carries `:authority`, which `uri_authority` holds).
pub fn check<'a>(
    rules: &HostRules,
    raw_target: &[u8],
    hosts: impl IntoIterator<Item = &'a [u8]>,
    http11: bool,
    uri_authority: Option<&str>,
) -> Result<TargetHost, Rejection> {
    let mut hosts = hosts.into_iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Rejection::InvalidRequest(
            "More than one Host header was sent",
        ));
    }
    // RFC 9113 §8.3.1: a `Host` beside `:authority` must name the same entity, or a backend
    // reading `Host` (the HTTP/1.1 one the request becomes) would see another host than the
    // one allowed here.
    if let (false, Some(host), Some(authority)) = (http11, host, uri_authority)
        && !host.eq_ignore_ascii_case(authority.as_bytes())
    {
        return Err(Rejection::InvalidRequest(
            "The Host header and :authority name different hosts",
        ));
    }
    let (target, effective) = match raw_target_authority(raw_target) {
        // Neither origin-form nor absolute-form (`GET foo?access_token=x`): pingora keeps
        // such a target verbatim for the wire but gives the policy `/` to read, so the
        // upstream would act on another path and query than the one decided on.
        RawTargetAuthority::None if !raw_target.starts_with(b"/") => {
            return Err(Rejection::InvalidRequest(
                "The request target must be an absolute path",
            ));
        }
        RawTargetAuthority::None => (
            TargetHost::Header,
            host.or(uri_authority.map(str::as_bytes)),
        ),
        RawTargetAuthority::AmbiguousAuthority => {
            return Err(Rejection::InvalidRequest(
                "The request target has an ambiguous authority",
            ));
        }
        RawTargetAuthority::Absolute { authority, .. } => {
            if rules.absolute_form == AbsoluteForm::Reject {
                return Err(Rejection::InvalidRequest(
                    "The request target must be in origin-form",
                ));
            }
            let authority = std::str::from_utf8(authority)
                .ok()
                .filter(|a| !a.is_empty() && !a.contains('@'))
                .ok_or(Rejection::InvalidRequest(
                    "The request target has an invalid authority",
                ))?;
            (
                TargetHost::Absolute(authority.to_owned()),
                Some(authority.as_bytes()),
            )
        }
    };
    let Some(effective) = effective else {
        if http11 {
            return Err(Rejection::InvalidRequest("The request has no Host header"));
        }
        return if rules.allowed.is_empty() {
            Ok(target)
        } else {
            Err(Rejection::MisdirectedRequest)
        };
    };
    if !rules.allowed.is_empty() && !is_allowed(&rules.allowed, effective) {
        return Err(Rejection::MisdirectedRequest);
    }
    Ok(target)
}

/// Whether `host` (a `Host` value, `name[:port]`) is one of `allowed`: an entry without a
/// port matches the name on any port.
fn is_allowed(allowed: &[String], host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let name = match host.rfind(':') {
        // `[::1]` alone has colons but no port.
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host.as_str(),
    };
    allowed.iter().any(|a| *a == host || *a == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rules: &HostRules, target: &str, hosts: &[&str]) -> Result<TargetHost, u16> {
        check(
            rules,
            target.as_bytes(),
            hosts.iter().map(|h| h.as_bytes()),
            true,
            None,
        )
        .map_err(|r| r.status())
    }

    #[test]
    fn one_host_is_required_on_http11() {
        let rules = HostRules::default();
        assert_eq!(run(&rules, "/a", &["api"]), Ok(TargetHost::Header));
        assert_eq!(run(&rules, "/a", &[]), Err(400));
        assert_eq!(run(&rules, "/a", &["api", "evil"]), Err(400));
        let http10 = check(&rules, b"/a", [], false, None);
        assert_eq!(http10, Ok(TargetHost::Header));
    }

    #[test]
    fn a_target_in_neither_origin_nor_absolute_form_is_refused() {
        let rules = HostRules::default();
        // pingora would forward these bytes as they are while the policy reads `/`.
        assert_eq!(run(&rules, "foo?access_token=x", &["api"]), Err(400));
        assert_eq!(run(&rules, "timesheets", &["api"]), Err(400));
        assert_eq!(run(&rules, "*", &["api"]), Err(400));
        assert_eq!(run(&rules, "/timesheets", &["api"]), Ok(TargetHost::Header));
    }

    #[test]
    fn absolute_form_names_the_host_or_is_refused() {
        let rules = HostRules::default();
        assert_eq!(
            run(&rules, "http://api.test/a?b", &["evil"]),
            Ok(TargetHost::Absolute("api.test".into()))
        );
        assert_eq!(run(&rules, "http://u@api.test/a", &["api"]), Err(400));
        let reject = HostRules {
            absolute_form: AbsoluteForm::Reject,
            ..HostRules::default()
        };
        assert_eq!(run(&reject, "http://api.test/a", &["api.test"]), Err(400));
    }

    #[test]
    fn allowed_hosts_match_by_name_or_name_and_port() {
        let rules = HostRules {
            allowed: vec!["api.test".into(), "other.test:8443".into()],
            ..HostRules::default()
        };
        assert!(run(&rules, "/a", &["API.test:8080"]).is_ok());
        assert!(run(&rules, "/a", &["other.test:8443"]).is_ok());
        assert_eq!(run(&rules, "/a", &["other.test:9000"]), Err(421));
        assert_eq!(run(&rules, "/a", &["evil.test"]), Err(421));
        assert_eq!(run(&rules, "http://evil.test/a", &["api.test"]), Err(421));
    }

    #[test]
    fn an_http2_host_header_must_agree_with_authority() {
        let rules = HostRules::default();
        let h2 = |hosts: &[&str], authority: Option<&str>| {
            check(
                &rules,
                b"/a",
                hosts.iter().map(|h| h.as_bytes()),
                false,
                authority,
            )
        };
        assert!(h2(&["api.example"], Some("api.example")).is_ok());
        assert!(h2(&["API.example"], Some("api.example")).is_ok());
        assert!(h2(&[], Some("api.example")).is_ok());
        assert!(h2(&["evil.example"], Some("api.example")).is_err());
    }
}
