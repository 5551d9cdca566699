//! The authorization endpoint (RFC 6749 §4.1.1): a login form, then a 303 back to the
//! client's registered redirect URI with a one-time code, or with an error.
//!
//! A request is checked in the order the RFC sets: while the client or its redirect URI is in
//! doubt, the answer is a 400 page and never a redirect (§4.1.2.1), so this server cannot be
//! used to bounce users to an arbitrary site. Only after that do errors travel back to the
//! client. PKCE is required, `S256` only (RFC 9700 §2.1.1).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::claims::{MFA_ACR, SignIn};
use super::directory::{self, Client, ClientKind};
use super::errors::ErrorCode;
use super::{AuthState, CODE_SECONDS, CodeGrant};
use crate::demo::pkce;

/// Longest `state` echoed back; a longer one is refused rather than reflected.
const MAX_STATE_BYTES: usize = 512;

/// Characters left as they are in a query component: RFC 3986's unreserved set.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The authorization request's parameters, as sent; each is checked before use.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// OpenID Connect's `acr_values`: `mfa` asks for the one-time code too; other values
    /// are voluntary claims this server does not offer, so they are ignored.
    acr_values: Option<String>,
}

/// The submitted login form: the request again, from hidden fields, plus credentials. No
/// `Debug`, so the password cannot end up in a log line.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(flatten)]
    request: AuthorizeParams,
    username: Option<String>,
    password: Option<String>,
    /// The one-time code, when `acr_values` asked for `mfa`.
    otp: Option<String>,
}

/// A request that passed every check.
#[derive(Debug)]
struct Checked {
    client: &'static Client,
    redirect_uri: &'static str,
    scopes: Vec<&'static str>,
    state: Option<String>,
    challenge: String,
    /// `Some(MFA_ACR)` when the client asked for a sign-in with the one-time code.
    acr: Option<&'static str>,
}

/// Why a request is refused, and how the refusal travels.
#[derive(Debug)]
enum Refusal {
    /// The client or redirect URI cannot be trusted: a 400 page, never a redirect.
    Page(&'static str),
    /// Back to the client's registered redirect URI with `error` (§4.1.2.1).
    Redirect {
        redirect_uri: &'static str,
        code: ErrorCode,
        description: Cow<'static, str>,
        state: Option<String>,
    },
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Page(why) => {
                let body = page(&format!(
                    "<h1>Bad authorization request</h1><p>{}</p>",
                    escape(why)
                ));
                (StatusCode::BAD_REQUEST, body).into_response()
            }
            Refusal::Redirect {
                redirect_uri,
                code,
                description,
                state,
            } => {
                let mut params = vec![
                    ("error", code.as_str()),
                    ("error_description", description.as_ref()),
                ];
                if let Some(state) = &state {
                    params.push(("state", state));
                }
                redirect(redirect_uri, &params)
            }
        }
    }
}

/// `GET /authorize`: checks the request and shows the login form.
pub async fn show_login(params: Result<Query<AuthorizeParams>, QueryRejection>) -> Response {
    let Ok(Query(params)) = params else {
        return Refusal::Page("the query string cannot be read (a parameter repeated?)")
            .into_response();
    };
    match check(&params) {
        Ok(checked) => login_form(&checked, None, StatusCode::OK),
        Err(refusal) => refusal.into_response(),
    }
}

/// `POST /authorize`: checks the request again (the hidden fields came back from the
/// browser), authenticates the user and redirects with a code for the scopes their roles
/// permit.
pub async fn log_in(
    State(state): State<Arc<AuthState>>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return Refusal::Page("the form cannot be read").into_response();
    };
    let checked = match check(&form.request) {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into_response(),
    };
    let user = match (&form.username, &form.password) {
        (Some(username), Some(password)) => directory::authenticate(username.trim(), password),
        _ => None,
    };
    let Some(user) = user else {
        tracing::info!(client = checked.client.id, "login failed");
        return login_form(
            &checked,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    if checked.acr.is_some() && form.otp.as_deref() != Some(directory::DEMO_ONE_TIME_CODE) {
        tracing::info!(subject = user.subject, "login failed: one-time code");
        return login_form(
            &checked,
            Some("Wrong one-time code."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let granted = user.grantable(&checked.scopes);
    if granted.is_empty() {
        tracing::info!(
            subject = user.subject,
            "login refused: no requested scope is permitted"
        );
        return Refusal::Redirect {
            redirect_uri: checked.redirect_uri,
            code: ErrorCode::InvalidScope,
            description: format!(
                "none of the requested scopes is permitted to {}'s roles",
                user.email
            )
            .into(),
            state: checked.state,
        }
        .into_response();
    }
    let code = crate::demo::random_token();
    tracing::info!(
        client = checked.client.id,
        subject = user.subject,
        scopes = %granted.join(" "),
        "authorization code issued"
    );
    state.codes().insert(
        &code,
        CodeGrant {
            client_id: checked.client.id,
            redirect_uri: checked.redirect_uri,
            challenge: checked.challenge,
            user,
            scopes: granted,
            sign_in: SignIn {
                acr: checked.acr,
                auth_time: crate::demo::unix_now(),
            },
            family: state.new_family(),
            redeemed: false,
        },
        Duration::from_secs(CODE_SECONDS),
    );
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &checked.state {
        params.push(("state", s));
    }
    redirect(checked.redirect_uri, &params)
}

fn check(p: &AuthorizeParams) -> Result<Checked, Refusal> {
    let client = p
        .client_id
        .as_deref()
        .and_then(directory::client)
        .ok_or(Refusal::Page("unknown client_id"))?;
    if !matches!(client.kind, ClientKind::Public { .. }) {
        return Err(Refusal::Page(
            "this client has no redirect URI; it uses client credentials",
        ));
    }
    let redirect_uri = p
        .redirect_uri
        .as_deref()
        .and_then(|uri| client.redirect_uri(uri))
        .ok_or(Refusal::Page(
            "redirect_uri is missing or not registered for this client",
        ))?;
    let refuse = |code, description: &'static str, state: Option<String>| Refusal::Redirect {
        redirect_uri,
        code,
        description: description.into(),
        state,
    };
    if p.state.as_ref().is_some_and(|s| s.len() > MAX_STATE_BYTES) {
        return Err(refuse(ErrorCode::InvalidRequest, "state is too long", None));
    }
    let state = p.state.clone();
    match p.response_type.as_deref() {
        Some("code") => {}
        None => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "response_type is required",
                state,
            ));
        }
        Some(_) => {
            return Err(refuse(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
                state,
            ));
        }
    }
    let Some(challenge) = p.code_challenge.as_deref() else {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "PKCE is required: send code_challenge and code_challenge_method=S256",
            state,
        ));
    };
    match p.code_challenge_method.as_deref() {
        Some("S256") => {}
        // RFC 7636 §4.3: a missing method means `plain`, which a code thief can replay.
        None | Some("plain") => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256; plain is not accepted",
                state,
            ));
        }
        Some(_) => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "unknown code_challenge_method; use S256",
                state,
            ));
        }
    }
    if !pkce::is_valid_s256_challenge(challenge) {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "code_challenge must be 43 base64url characters (a SHA-256 digest)",
            state,
        ));
    }
    let scopes = match p.scope.as_deref().map(directory::parse_scope) {
        Some(Ok(scopes)) => scopes,
        Some(Err(why)) => {
            return Err(Refusal::Redirect {
                redirect_uri,
                code: ErrorCode::InvalidScope,
                description: why.into(),
                state,
            });
        }
        None => {
            return Err(refuse(ErrorCode::InvalidScope, "scope is required", state));
        }
    };
    Ok(Checked {
        client,
        redirect_uri,
        scopes,
        state,
        challenge: challenge.to_owned(),
        acr: p
            .acr_values
            .as_deref()
            .is_some_and(|v| v.split_ascii_whitespace().any(|a| a == MFA_ACR))
            .then_some(MFA_ACR),
    })
}

/// A 303 to `uri` with `params` added to its query.
fn redirect(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut location = uri.to_owned();
    for (i, (name, value)) in params.iter().enumerate() {
        let separator = if i == 0 && !uri.contains('?') {
            '?'
        } else {
            '&'
        };
        location.push(separator);
        location.push_str(name);
        location.push('=');
        location.extend(utf8_percent_encode(value, QUERY_VALUE));
    }
    let Ok(location) = HeaderValue::from_str(&location) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    // The code is a credential: keep it out of caches and of the next page's Referer.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn login_form(checked: &Checked, message: Option<&str>, status: StatusCode) -> Response {
    let scope = checked.scopes.join(" ");
    let hidden = [
        ("response_type", "code"),
        ("client_id", checked.client.id),
        ("redirect_uri", checked.redirect_uri),
        ("scope", scope.as_str()),
        ("state", checked.state.as_deref().unwrap_or_default()),
        ("code_challenge", checked.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("acr_values", checked.acr.unwrap_or_default()),
    ]
    .iter()
    .filter(|(name, value)| !matches!(*name, "state" | "acr_values") || !value.is_empty())
    .map(|(name, value)| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    })
    .collect::<String>();
    let message = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    let body = page(&format!(
        "<h1>Log in to ExampleCo Timesheets</h1>\
         <p><code>{client}</code> asks for: <code>{scopes}</code></p>\
         {message}\
         <form method=\"post\" action=\"/authorize\">{hidden}\
         <label>User <input name=\"username\" autocomplete=\"username\" autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\
         {otp}\
         <button type=\"submit\">Log in</button></form>\
         <p class=\"hint\">Demo users: alice / alice (group Employees), bob / bob (group Managers).</p>",
        otp = if checked.acr.is_some() {
            "<label>One-time code <input name=\"otp\" autocomplete=\"one-time-code\"></label>"
        } else {
            ""
        },
        client = escape(checked.client.id),
        scopes = escape(&scope),
    ));
    (status, body).into_response()
}

fn page(content: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>scopegate demo authorization server</title>\
         <style>body{{font-family:sans-serif;max-width:32em;margin:2em auto}}\
         label{{display:block;margin:.5em 0}}.error{{color:#b00}}.banner,.hint{{color:#666}}</style>\
         </head><body><p class=\"banner\">Development authorization server: for demos and tests only.</p>\
         {content}</body></html>"
    );
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(html),
    )
        .into_response()
}

/// HTML-escapes text for element content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::authz::directory::{MOBILE_CLIENT_ID, MOBILE_REDIRECT_URI};

    fn valid() -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some(MOBILE_CLIENT_ID.into()),
            redirect_uri: Some(MOBILE_REDIRECT_URI.into()),
            scope: Some("read:timesheets".into()),
            state: Some("xyz".into()),
            code_challenge: Some(pkce::s256_challenge(&pkce::new_verifier())),
            code_challenge_method: Some("S256".into()),
            acr_values: None,
        }
    }

    fn error_of(p: AuthorizeParams) -> Option<ErrorCode> {
        match check(&p) {
            Err(Refusal::Redirect { code, .. }) => Some(code),
            _ => None,
        }
    }

    #[test]
    fn a_complete_s256_request_passes() {
        let checked = check(&valid()).unwrap();
        assert_eq!(checked.scopes, ["read:timesheets"]);
        assert_eq!(checked.state.as_deref(), Some("xyz"));
    }

    #[test]
    fn unknown_clients_and_unregistered_redirect_uris_never_redirect() {
        for p in [
            AuthorizeParams {
                client_id: Some("evil".into()),
                ..valid()
            },
            AuthorizeParams {
                client_id: None,
                ..valid()
            },
            AuthorizeParams {
                redirect_uri: Some("https://evil.test/cb".into()),
                ..valid()
            },
            AuthorizeParams {
                redirect_uri: None,
                ..valid()
            },
            AuthorizeParams {
                client_id: Some("timesheets-batch".into()),
                ..valid()
            },
        ] {
            assert!(matches!(check(&p), Err(Refusal::Page(_))), "{p:?}");
        }
    }

    #[test]
    fn plain_or_missing_pkce_is_an_invalid_request() {
        let plain = AuthorizeParams {
            code_challenge_method: Some("plain".into()),
            ..valid()
        };
        let no_method = AuthorizeParams {
            code_challenge_method: None,
            ..valid()
        };
        let no_challenge = AuthorizeParams {
            code_challenge: None,
            ..valid()
        };
        let short = AuthorizeParams {
            code_challenge: Some("abc".into()),
            ..valid()
        };
        for p in [plain, no_method, no_challenge, short] {
            assert_eq!(error_of(p), Some(ErrorCode::InvalidRequest));
        }
    }

    #[test]
    fn other_response_types_and_unknown_scopes_are_refused_by_redirect() {
        let token = AuthorizeParams {
            response_type: Some("token".into()),
            ..valid()
        };
        assert_eq!(error_of(token), Some(ErrorCode::UnsupportedResponseType));
        let openid = AuthorizeParams {
            scope: Some("openid".into()),
            ..valid()
        };
        assert_eq!(error_of(openid), Some(ErrorCode::InvalidScope));
    }

    #[test]
    fn redirects_percent_encode_their_parameters() {
        let r = redirect("app://cb", &[("code", "a b&c"), ("state", "x=y")]);
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()[header::LOCATION],
            "app://cb?code=a%20b%26c&state=x%3Dy"
        );
    }

    #[test]
    fn reflected_text_is_html_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;"
        );
    }
}
