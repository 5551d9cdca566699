//! What the mobile app does, from the command line: PKCE login as a demo user (RFC 7636,
//! `S256`), with the code read from the redirect's `Location` rather than followed;
//! revoking a token when its user signs out (RFC 7009); and asking the demo authorization
//! server to rotate its key.

use std::time::Duration;

use base64::Engine as _;
use percent_encoding::percent_decode_str;
use reqwest::StatusCode;
use serde::Deserialize;

use super::authz::directory::{MOBILE_CLIENT_ID, MOBILE_REDIRECT_URI};
use super::authz::keys::Rotation;
use super::cli::{DpopProofArgs, LoginArgs, RevokeArgs, RotateKeyArgs};
use super::dpop_key::{self, DpopKey};
use super::{DemoError, EMAIL_CLAIM, pkce};

/// Why a login or key rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The server could not be reached, or its answer could not be read.
    #[error("cannot talk to the authorization server at {url}")]
    Http {
        /// The endpoint.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The login form said no.
    #[error("wrong user name, password or one-time code")]
    WrongPassword,
    /// The server refused with an OAuth error.
    #[error("refused: {error}: {description}")]
    Refused {
        /// The OAuth error code, e.g. `invalid_scope`.
        error: String,
        /// The server's explanation.
        description: String,
    },
    /// The server answered something this client does not expect.
    #[error("unexpected answer from the authorization server: {0}")]
    Unexpected(String),
}

/// Who logs in, where, asking for what.
#[derive(Clone)]
pub struct LoginRequest {
    /// The authorization server's base URL, e.g. `http://127.0.0.1:9400`.
    pub authz: String,
    /// `alice`, `alice@exampleco.com`, …
    pub username: String,
    /// The user's password.
    pub password: String,
    /// Space-separated scopes.
    pub scope: String,
    /// `acr_values` to ask for, e.g. `mfa`.
    pub acr: Option<String>,
    /// The one-time code, sent when `acr` is given.
    pub otp: Option<String>,
}

/// A login whose token is bound to `key` (RFC 9449 §5): the token request carries a proof.
pub async fn login_dpop(request: &LoginRequest, key: &DpopKey) -> Result<Tokens, LoginError> {
    login_with(request, Some(key), false).await
}

/// A login whose access token is opaque: the token request carries the demo server's
/// `token_format=opaque`.
pub async fn login_opaque(request: &LoginRequest) -> Result<Tokens, LoginError> {
    login_with(request, None, true).await
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("authz", &self.authz)
            .field("username", &self.username)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The token response of a successful login.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if one was issued.
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Logs in through `GET` then `POST /authorize` and redeems the code at `/oauth/token`
/// with the PKCE verifier.
pub async fn login(request: &LoginRequest) -> Result<Tokens, LoginError> {
    login_with(request, None, false).await
}

async fn login_with(
    request: &LoginRequest,
    key: Option<&DpopKey>,
    opaque: bool,
) -> Result<Tokens, LoginError> {
    let http = client()?;
    let base = request.authz.trim_end_matches('/');
    let authorize = format!("{base}/authorize");
    let verifier = pkce::new_verifier();
    let challenge = pkce::s256_challenge(&verifier);
    let state = super::random_token();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", MOBILE_CLIENT_ID),
        ("redirect_uri", MOBILE_REDIRECT_URI),
        ("scope", request.scope.as_str()),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if let Some(acr) = &request.acr {
        params.push(("acr_values", acr.as_str()));
    }

    // The page the app would show in a browser tab; a refusal may already come back here.
    let page = send(http.get(&authorize).query(&params), &authorize).await?;
    match page.status() {
        StatusCode::OK => {}
        StatusCode::SEE_OTHER => {
            callback(&page)?;
            return Err(LoginError::Unexpected("a redirect without a code".into()));
        }
        status => return Err(unexpected(status, page).await),
    }

    let mut form = params.to_vec();
    form.push(("username", request.username.as_str()));
    form.push(("password", request.password.as_str()));
    if let (Some(_), Some(otp)) = (&request.acr, &request.otp) {
        form.push(("otp", otp.as_str()));
    }
    let answer = send(http.post(&authorize).form(&form), &authorize).await?;
    let code = match answer.status() {
        StatusCode::SEE_OTHER => callback(&answer)?,
        StatusCode::UNAUTHORIZED => return Err(LoginError::WrongPassword),
        status => return Err(unexpected(status, answer).await),
    };
    if code.state.as_deref() != Some(state.as_str()) {
        return Err(LoginError::Unexpected(
            "the redirect's state is not ours".into(),
        ));
    }

    let token_url = format!("{base}/oauth/token");
    let mut exchange = vec![
        ("grant_type", "authorization_code"),
        ("code", code.code.as_str()),
        ("redirect_uri", MOBILE_REDIRECT_URI),
        ("client_id", MOBILE_CLIENT_ID),
        ("code_verifier", verifier.as_str()),
    ];
    if opaque {
        exchange.push(("token_format", "opaque"));
    }
    let mut post = http.post(&token_url).form(&exchange);
    if let Some(key) = key {
        let proof = key
            .proof("POST", &token_url, None, None)
            .map_err(|e| LoginError::Unexpected(e.to_string()))?;
        post = post.header("DPoP", proof);
    }
    let response = send(post, &token_url).await?;
    read_json(response, &token_url).await
}

/// Revokes `token` at the server at `authz` as the mobile app (a public client: its
/// `client_id` alone). The server answers 200 for an unknown token too (RFC 7009 §2.2).
pub async fn revoke(authz: &str, token: &str) -> Result<(), LoginError> {
    let url = format!("{}/revoke", authz.trim_end_matches('/'));
    let form = [("token", token), ("client_id", MOBILE_CLIENT_ID)];
    let response = send(client()?.post(&url).form(&form), &url).await?;
    if response.status() == StatusCode::OK {
        return Ok(());
    }
    read_json::<serde_json::Value>(response, &url)
        .await
        .and_then(|_| {
            Err(LoginError::Unexpected(
                "the revocation endpoint did not answer 200".into(),
            ))
        })
}

/// Asks the server at `authz` to sign with a new key; `retire` drops the older ones.
pub async fn rotate_key(authz: &str, retire: bool) -> Result<Rotation, LoginError> {
    let url = format!("{}/admin/rotate-key", authz.trim_end_matches('/'));
    let request = client()?.post(&url).query(&[("retire", retire)]);
    let response = send(request, &url).await?;
    read_json(response, &url).await
}

/// `scopegate demo login`: the access token alone on stdout, a note for people on stderr.
pub(crate) fn run_login(args: &LoginArgs) -> Result<(), DemoError> {
    let request = LoginRequest {
        authz: args.authz.clone(),
        username: args.user.clone(),
        password: args
            .password
            .clone()
            .unwrap_or_else(|| args.user.split('@').next().unwrap_or_default().to_owned()),
        scope: args.scope.clone(),
        acr: args.acr.clone(),
        otp: args.acr.as_ref().map(|_| args.otp.clone()),
    };
    let key = if args.dpop {
        Some(DpopKey::generate()?)
    } else {
        None
    };
    let tokens = match &key {
        Some(key) => block_on(login_dpop(&request, key))??,
        None if args.opaque => block_on(login_opaque(&request))??,
        None => block_on(login(&request))??,
    };
    println!("{}", tokens.access_token);
    let who = email_of(&tokens.access_token).unwrap_or_else(|| args.user.clone());
    let with = match &args.acr {
        Some(acr) => format!(" with acr {acr}"),
        None => String::new(),
    };
    eprintln!(
        "logged in as {who}{with}; granted: {}; expires in {} s",
        tokens.scope, tokens.expires_in
    );
    let granted: Vec<&str> = tokens.scope.split(' ').collect();
    let refused: Vec<&str> = args
        .scope
        .split_whitespace()
        .filter(|s| !granted.contains(s))
        .collect();
    if !refused.is_empty() {
        eprintln!("not granted (beyond {who}'s roles): {}", refused.join(" "));
    }
    if args.opaque {
        eprintln!(
            "opaque: the gateway asks the authorization server about it; demo revoke ends it"
        );
    }
    if let Some(key) = key {
        let path = args.dpop_key.clone().unwrap_or_else(dpop_key::default_path);
        key.save(&path)?;
        let me = std::env::args()
            .next()
            .filter(|p| !p.is_empty() && !p.contains(char::is_whitespace))
            .unwrap_or_else(|| "scopegate".into());
        let key_flag = match &args.dpop_key {
            Some(p) => format!(" --dpop-key {}", p.display()),
            None => String::new(),
        };
        let url = format!("{}/timesheets", args.gateway.trim_end_matches('/'));
        eprintln!(
            "DPoP-bound (cnf.jkt {}); the key is in {}. Each request needs a fresh proof:",
            key.thumbprint(),
            path.display()
        );
        eprintln!(
            "  curl -i {url} -H \"Authorization: DPoP $TOKEN\" -H \"DPoP: $({me} demo dpop-proof GET {url} --token $TOKEN{key_flag})\""
        );
    }
    Ok(())
}

/// `scopegate demo dpop-proof`: the proof alone on stdout.
pub(crate) fn run_dpop_proof(args: &DpopProofArgs) -> Result<(), DemoError> {
    let path = args.dpop_key.clone().unwrap_or_else(dpop_key::default_path);
    let key = DpopKey::load(&path)?;
    let proof = key.proof(
        &args.method.to_ascii_uppercase(),
        &args.url,
        args.token.as_deref(),
        args.nonce.as_deref(),
    )?;
    println!("{proof}");
    Ok(())
}

/// `scopegate demo revoke`: one line saying it is done.
pub(crate) fn run_revoke(args: &RevokeArgs) -> Result<(), DemoError> {
    block_on(revoke(&args.authz, &args.token))??;
    println!(
        "revoked; the demo gateway refuses it within {} s, when its cached answer expires",
        super::launch::INTROSPECTION_CACHE_SECONDS
    );
    Ok(())
}

/// `scopegate demo rotate-key`.
pub(crate) fn run_rotate_key(args: &RotateKeyArgs) -> Result<(), DemoError> {
    let rotation = block_on(rotate_key(&args.authz, args.retire))??;
    println!("signing with {}", rotation.kid);
    println!("published: {}", rotation.published.join(", "));
    if !rotation.retired.is_empty() {
        println!("retired: {}", rotation.retired.join(", "));
    }
    Ok(())
}

fn block_on<F: Future>(future: F) -> Result<F::Output, DemoError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    Ok(runtime.block_on(future))
}

fn client() -> Result<reqwest::Client, LoginError> {
    reqwest::Client::builder()
        // The redirect goes to the app's private-use scheme: read it, never follow it.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|source| LoginError::Http {
            url: String::new(),
            source,
        })
}

async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<reqwest::Response, LoginError> {
    request.send().await.map_err(|source| LoginError::Http {
        url: url.to_owned(),
        source: source.without_url(),
    })
}

/// A JSON answer, or the OAuth error it carries.
async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    url: &str,
) -> Result<T, LoginError> {
    let status = response.status();
    let body = response.bytes().await.map_err(|source| LoginError::Http {
        url: url.to_owned(),
        source: source.without_url(),
    })?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| LoginError::Unexpected(format!("{status}: {e}")));
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => Err(LoginError::Refused {
            error: e.error,
            description: e.error_description,
        }),
        Err(_) => Err(LoginError::Unexpected(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ))),
    }
}

async fn unexpected(status: StatusCode, response: reqwest::Response) -> LoginError {
    let body = response.text().await.unwrap_or_default();
    LoginError::Unexpected(format!(
        "{status}: {}",
        body.chars().take(200).collect::<String>()
    ))
}

/// What came back to the redirect URI.
#[derive(Debug)]
struct Callback {
    code: String,
    state: Option<String>,
}

/// Reads the code from a redirect's `Location`, or the error it carries instead.
fn callback(response: &reqwest::Response) -> Result<Callback, LoginError> {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| LoginError::Unexpected("a redirect without a Location".into()))?;
    let query = location.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let v = v.replace('+', " ");
            (k == name).then(|| percent_decode_str(&v).decode_utf8_lossy().into_owned())
        })
    };
    if let Some(error) = param("error") {
        return Err(LoginError::Refused {
            error,
            description: param("error_description").unwrap_or_default(),
        });
    }
    let code = param("code")
        .ok_or_else(|| LoginError::Unexpected("the redirect carries no code".into()))?;
    Ok(Callback {
        code,
        state: param("state"),
    })
}

/// The email claim of a token this client just received (for the human note only; the
/// signature is the gateway's business).
fn email_of(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get(EMAIL_CLAIM)?.as_str().map(str::to_owned)
}
