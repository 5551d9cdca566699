//! The demo: the development authorization server refuses what RFC 6749, RFC 7636 and the
//! seed's roles say it must; the backend believes only the gateway's headers; and
//! `scopegate demo` tells the seed's story end to end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use scopegate::demo::authz::AuthServer;
use scopegate::demo::authz::directory::{
    BATCH_CLIENT_ID, BATCH_CLIENT_SECRET, MOBILE_CLIENT_ID, MOBILE_REDIRECT_URI,
    RESOURCE_SERVER_CLIENT_ID, RESOURCE_SERVER_CLIENT_SECRET,
};
use scopegate::demo::backend::TimesheetsBackend;
use scopegate::demo::login::{LoginError, LoginRequest, login, login_opaque};
use scopegate::demo::{API_AUDIENCE, EMAIL_CLAIM, pkce};
use serde_json::Value;

use crate::harness::{free_ports, raw};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn auth_server() -> AuthServer {
    AuthServer::spawn(loopback())
        .await
        .expect("the authorization server starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn login_as(auth: &AuthServer, user: &str, scope: &str) -> LoginRequest {
    LoginRequest {
        authz: auth.issuer(),
        username: user.into(),
        password: user.split('@').next().unwrap().into(),
        scope: scope.into(),
        acr: None,
        otp: None,
    }
}

/// The parameters of an authorization request, S256 challenge included.
fn authorize_params<'a>(scope: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", MOBILE_CLIENT_ID),
        ("redirect_uri", MOBILE_REDIRECT_URI),
        ("scope", scope),
        ("state", "s-123"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// Submits the login form as `user` and returns the redirect's query parameters.
async fn submit_login(
    auth: &AuthServer,
    user: &str,
    params: &[(&str, &str)],
) -> (StatusCode, HashMap<String, String>) {
    let mut form = params.to_vec();
    form.extend([("username", user), ("password", user)]);
    let r = http()
        .post(auth.authorization_endpoint())
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status(), redirect_query(&r))
}

fn redirect_query(r: &reqwest::Response) -> HashMap<String, String> {
    let Some(location) = r.headers().get("location") else {
        return HashMap::new();
    };
    let location = location.to_str().unwrap();
    assert!(location.starts_with(MOBILE_REDIRECT_URI), "{location}");
    let query = location.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            (k.to_owned(), v.into_owned())
        })
        .collect()
}

/// A fresh authorization code for `user`, and the verifier that redeems it.
async fn code_for(auth: &AuthServer, user: &str, scope: &str) -> (String, String) {
    let verifier = pkce::new_verifier();
    let challenge = pkce::s256_challenge(&verifier);
    let (status, query) = submit_login(auth, user, &authorize_params(scope, &challenge)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(query["state"], "s-123");
    (query["code"].clone(), verifier)
}

async fn token_request(auth: &AuthServer, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = http()
        .post(auth.token_endpoint())
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn redeem(auth: &AuthServer, code: &str, verifier: &str) -> (StatusCode, Value) {
    token_request(
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", MOBILE_REDIRECT_URI),
            ("client_id", MOBILE_CLIENT_ID),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(auth: &AuthServer, refresh_token: &str) -> (StatusCode, Value) {
    token_request(
        auth,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", MOBILE_CLIENT_ID),
        ],
    )
    .await
}

/// The token's claims, after checking its signature against the server's JWKS.
async fn verified_claims(auth: &AuthServer, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = http()
        .get(auth.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the kid is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[API_AUDIENCE]);
    validation.set_issuer(&[auth.issuer()]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("the token verifies")
    .claims
}

// ---------------------------------------------------------------------------------------
// The authorization server

#[tokio::test]
async fn a_pkce_login_gets_an_auth0_shaped_rs256_token_that_verifies_with_the_jwks() {
    let auth = auth_server().await;
    let tokens = login(&login_as(
        &auth,
        "alice",
        "read:timesheets create:timesheets",
    ))
    .await
    .unwrap();
    assert_eq!(tokens.scope, "read:timesheets create:timesheets");
    assert_eq!(tokens.expires_in, 3600);
    assert!(tokens.refresh_token.is_some());

    let header = jsonwebtoken::decode_header(&tokens.access_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let c = verified_claims(&auth, &tokens.access_token).await;
    assert_eq!(c["iss"], auth.issuer());
    assert!(auth.issuer().ends_with('/'));
    assert_eq!(
        c["aud"],
        serde_json::json!([API_AUDIENCE, format!("{}userinfo", auth.issuer())])
    );
    assert_eq!(c["sub"], "auth0|alice");
    assert_eq!(c["azp"], MOBILE_CLIENT_ID);
    assert_eq!(c["client_id"], MOBILE_CLIENT_ID);
    assert_eq!(c["scope"], "read:timesheets create:timesheets");
    assert_eq!(
        c["permissions"],
        serde_json::json!(["read:timesheets", "create:timesheets"])
    );
    assert_eq!(c[EMAIL_CLAIM], "alice@exampleco.com");
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn a_wrong_code_verifier_gets_invalid_grant() {
    let auth = auth_server().await;
    let (code, _verifier) = code_for(&auth, "alice", "read:timesheets").await;
    let (status, body) = redeem(&auth, &code, &pkce::new_verifier()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn a_code_works_only_with_its_own_redirect_uri() {
    let auth = auth_server().await;
    let (code, verifier) = code_for(&auth, "alice", "read:timesheets").await;
    let (status, body) = token_request(
        &auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "com.exampleco.timesheets://other"),
            ("client_id", MOBILE_CLIENT_ID),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_reused_code_gets_invalid_grant_and_revokes_the_refresh_token_it_bought() {
    let auth = auth_server().await;
    let (code, verifier) = code_for(&auth, "alice", "read:timesheets").await;
    let (status, first) = redeem(&auth, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    let (status, again) = redeem(&auth, &code, &verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");

    let (status, body) = refresh(&auth, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn the_plain_challenge_method_is_refused_with_invalid_request() {
    let auth = auth_server().await;
    let verifier = pkce::new_verifier();
    for method in ["plain", "S512"] {
        let mut params = authorize_params("read:timesheets", &verifier);
        params.retain(|(k, _)| *k != "code_challenge_method");
        params.push(("code_challenge_method", method));
        let (status, query) = submit_login(&auth, "alice", &params).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{method}");
        assert_eq!(query["error"], "invalid_request", "{method}");
        assert_eq!(query["state"], "s-123");
        assert!(!query.contains_key("code"));
    }
}

#[tokio::test]
async fn a_missing_code_challenge_or_method_is_refused_with_invalid_request() {
    let auth = auth_server().await;
    let challenge = pkce::s256_challenge(&pkce::new_verifier());
    for missing in ["code_challenge", "code_challenge_method"] {
        let mut params = authorize_params("read:timesheets", &challenge);
        params.retain(|(k, _)| *k != missing);
        // Refused already when the login page is asked for, and again if the form is posted.
        let r = http()
            .get(auth.authorization_endpoint())
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "without {missing}");
        assert_eq!(redirect_query(&r)["error"], "invalid_request");
        let (status, query) = submit_login(&auth, "alice", &params).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(query["error"], "invalid_request", "without {missing}");
    }
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirect_uris_get_400_and_never_a_redirect() {
    let auth = auth_server().await;
    let challenge = pkce::s256_challenge(&pkce::new_verifier());
    for (name, value) in [
        ("client_id", "mallory-app"),
        ("client_id", BATCH_CLIENT_ID),
        ("redirect_uri", "https://evil.example/callback"),
        ("redirect_uri", "com.exampleco.timesheets://callback/extra"),
    ] {
        let mut params = authorize_params("read:timesheets", &challenge);
        params.retain(|(k, _)| *k != name);
        params.push((name, value));
        let r = http()
            .get(auth.authorization_endpoint())
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}={value}");
        assert!(r.headers().get("location").is_none());
        let (status, _) = submit_login(&auth, "alice", &params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}={value}");
    }
}

#[tokio::test]
async fn the_login_page_shows_a_form_and_a_wrong_password_gets_it_again() {
    let auth = auth_server().await;
    let challenge = pkce::s256_challenge(&pkce::new_verifier());
    let params = authorize_params("read:timesheets", &challenge);
    let page = http()
        .get(auth.authorization_endpoint())
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/authorize\">"),
        "{html}"
    );
    assert!(html.contains("for demos and tests only"));

    let err = login(&LoginRequest {
        password: "guess".into(),
        ..login_as(&auth, "alice", "read:timesheets")
    })
    .await
    .unwrap_err();
    assert!(matches!(err, LoginError::WrongPassword), "{err}");
}

#[tokio::test]
async fn an_employee_asking_for_approval_gets_a_token_without_it() {
    let auth = auth_server().await;
    let tokens = login(&login_as(
        &auth,
        "alice",
        "read:timesheets approve:timesheets",
    ))
    .await
    .unwrap();
    assert_eq!(tokens.scope, "read:timesheets");
    let c = verified_claims(&auth, &tokens.access_token).await;
    assert_eq!(c["scope"], "read:timesheets");
    assert_eq!(c["permissions"], serde_json::json!(["read:timesheets"]));
}

#[tokio::test]
async fn an_employee_asking_only_for_approval_gets_invalid_scope() {
    let auth = auth_server().await;
    let err = login(&login_as(
        &auth,
        "alice@exampleco.com",
        "approve:timesheets",
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&err, LoginError::Refused { error, .. } if error == "invalid_scope"),
        "{err}"
    );
    // A scope the API does not define is refused too, whoever asks.
    let err = login(&login_as(&auth, "bob", "read:timesheets admin:everything"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LoginError::Refused { error, .. } if error == "invalid_scope"),
        "{err}"
    );
}

#[tokio::test]
async fn a_manager_is_granted_approval() {
    let auth = auth_server().await;
    let tokens = login(&login_as(
        &auth,
        "bob",
        "approve:timesheets read:timesheets",
    ))
    .await
    .unwrap();
    assert_eq!(tokens.scope, "read:timesheets approve:timesheets");
    let c = verified_claims(&auth, &tokens.access_token).await;
    assert_eq!(c["sub"], "auth0|bob");
    assert_eq!(c[EMAIL_CLAIM], "bob@exampleco.com");
}

#[tokio::test]
async fn client_credentials_give_the_batch_client_batch_upload() {
    let auth = auth_server().await;
    // HTTP Basic (client_secret_basic).
    let r = http()
        .post(auth.token_endpoint())
        .basic_auth(BATCH_CLIENT_ID, Some(BATCH_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "batch:upload");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none());
    let c = verified_claims(&auth, body["access_token"].as_str().unwrap()).await;
    assert_eq!(c["sub"], "timesheets-batch@clients");
    assert_eq!(c["aud"], API_AUDIENCE);
    assert_eq!(c["gty"], "client-credentials");
    assert_eq!(c["permissions"], serde_json::json!(["batch:upload"]));

    // Form fields (client_secret_post), asking for the scope by name.
    let (status, body) = token_request(
        &auth,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", BATCH_CLIENT_ID),
            ("client_secret", BATCH_CLIENT_SECRET),
            ("scope", "batch:upload"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (StatusCode::OK, Some("batch:upload"))
    );
}

#[tokio::test]
async fn a_wrong_client_secret_gets_401_invalid_client() {
    let auth = auth_server().await;
    let r = http()
        .post(auth.token_endpoint())
        .basic_auth(BATCH_CLIENT_ID, Some("guess"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn the_batch_client_cannot_get_user_scopes_nor_the_mobile_app_client_credentials() {
    let auth = auth_server().await;
    let (status, body) = token_request(
        &auth,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", BATCH_CLIENT_ID),
            ("client_secret", BATCH_CLIENT_SECRET),
            ("scope", "batch:upload approve:timesheets"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    let (_, body) = token_request(
        &auth,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", MOBILE_CLIENT_ID),
        ],
    )
    .await;
    assert_eq!(body["error"], "unauthorized_client");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_its_family() {
    let auth = auth_server().await;
    let tokens = login(&login_as(
        &auth,
        "bob",
        "read:timesheets approve:timesheets",
    ))
    .await
    .unwrap();
    let first = tokens.refresh_token.unwrap();

    let (status, second) = refresh(&auth, &first).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], "read:timesheets approve:timesheets");
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first, "a refresh token is used once");
    let c = verified_claims(&auth, second["access_token"].as_str().unwrap()).await;
    assert_eq!(c["sub"], "auth0|bob");

    // A narrower scope may be asked for; a wider one may not.
    let (status, body) = token_request(
        &auth,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &second_refresh),
            ("client_id", MOBILE_CLIENT_ID),
            ("scope", "read:timesheets delete:timesheets"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    // Replaying the first token (as a thief would) kills the whole family, the newest too.
    let (status, body) = refresh(&auth, &first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = refresh(&auth, &second_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn malformed_token_requests_get_rfc_6749_json_errors() {
    let auth = auth_server().await;
    for (form, error) in [
        (vec![("code", "x")], "invalid_request"),
        (
            vec![("grant_type", "password"), ("username", "alice")],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", MOBILE_CLIENT_ID),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("client_id", MOBILE_CLIENT_ID),
                ("code", "made-up"),
                ("redirect_uri", MOBILE_REDIRECT_URI),
                ("code_verifier", &"v".repeat(43)),
            ],
            "invalid_grant",
        ),
        (
            vec![("grant_type", "refresh_token"), ("client_id", "nobody")],
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "refresh_token"),
            ],
            "invalid_request",
        ),
    ] {
        let (status, body) = token_request(&auth, &form).await;
        assert_eq!(body["error"], error, "{form:?}: {body}");
        assert!(status.is_client_error(), "{form:?}");
        assert!(body["error_description"].is_string());
    }
    let r = http()
        .post(auth.token_endpoint())
        .header("content-type", "application/json")
        .body("{\"grant_type\":\"client_credentials\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn key_rotation_publishes_old_and_new_keys_and_retire_drops_the_old() {
    let auth = auth_server().await;
    let before = login(&login_as(&auth, "alice", "read:timesheets"))
        .await
        .unwrap();
    let old_kid = jsonwebtoken::decode_header(&before.access_token)
        .unwrap()
        .kid
        .unwrap();

    let r = http()
        .post(format!("{}admin/rotate-key", auth.issuer()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rotation: Value = r.json().await.unwrap();
    let new_kid = rotation["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(rotation["published"], serde_json::json!([new_kid, old_kid]));

    let after = login(&login_as(&auth, "alice", "read:timesheets"))
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&after.access_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    verified_claims(&auth, &before.access_token).await;
    verified_claims(&auth, &after.access_token).await;

    let retired = scopegate::demo::login::rotate_key(&auth.issuer(), true)
        .await
        .unwrap();
    assert_eq!(retired.published, std::slice::from_ref(&retired.kid));
    assert!(retired.retired.contains(&old_kid) && retired.retired.contains(&new_kid));
    let jwks: Value = http()
        .get(auth.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], retired.kid.as_str());
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert_eq!(jwks["keys"][0]["use"], "sig");
}

#[tokio::test]
async fn discovery_metadata_names_the_endpoints_and_only_s256() {
    let auth = auth_server().await;
    let m: Value = http()
        .get(format!("{}.well-known/openid-configuration", auth.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["issuer"], auth.issuer());
    assert_eq!(m["jwks_uri"], auth.jwks_uri());
    assert_eq!(m["token_endpoint"], auth.token_endpoint());
    assert_eq!(m["authorization_endpoint"], auth.authorization_endpoint());
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(m["introspection_endpoint"], auth.introspection_endpoint());
    assert_eq!(m["revocation_endpoint"], auth.revocation_endpoint());
}

// ---------------------------------------------------------------------------------------
// Opaque tokens, introspection (RFC 7662) and revocation (RFC 7009)

/// `POST /introspect` as the client `basic` names (id, secret), or with no authentication.
async fn introspect(
    auth: &AuthServer,
    basic: Option<(&str, &str)>,
    token: &str,
) -> (StatusCode, Value) {
    let mut request = http()
        .post(auth.introspection_endpoint())
        .form(&[("token", token), ("token_type_hint", "access_token")]);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let r = request.send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn introspect_as_gateway(auth: &AuthServer, token: &str) -> Value {
    let (status, answer) = introspect(
        auth,
        Some((RESOURCE_SERVER_CLIENT_ID, RESOURCE_SERVER_CLIENT_SECRET)),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn revoke(auth: &AuthServer, form: &[(&str, &str)]) -> StatusCode {
    http()
        .post(auth.revocation_endpoint())
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn an_opaque_token_is_introspected_with_its_claims_until_revoked() {
    let auth = auth_server().await;
    let tokens = login_opaque(&login_as(
        &auth,
        "bob",
        "read:timesheets approve:timesheets",
    ))
    .await
    .unwrap();
    let token = tokens.access_token;
    assert!(!token.contains('.'), "not a JWT: {token}");
    assert!(token.len() >= 43, "{token}");

    let answer = introspect_as_gateway(&auth, &token).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["scope"], "read:timesheets approve:timesheets");
    assert_eq!(answer["client_id"], MOBILE_CLIENT_ID);
    assert_eq!(answer["sub"], "auth0|bob");
    assert_eq!(answer["iss"], auth.issuer());
    assert_eq!(answer["aud"][0], API_AUDIENCE);
    assert_eq!(answer[EMAIL_CLAIM], "bob@exampleco.com");
    assert!(answer["auth_time"].is_u64());
    let (iat, exp) = (
        answer["iat"].as_u64().unwrap(),
        answer["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);

    // RFC 7009: the mobile app (a public client, by its id) revokes its own token.
    assert_eq!(
        revoke(&auth, &[("token", &token), ("client_id", MOBILE_CLIENT_ID)]).await,
        StatusCode::OK
    );
    assert_eq!(
        introspect_as_gateway(&auth, &token).await,
        serde_json::json!({"active": false})
    );
    // Revoking again, or a token the server never issued, is still 200 (§2.2).
    assert_eq!(
        revoke(&auth, &[("token", &token), ("client_id", MOBILE_CLIENT_ID)]).await,
        StatusCode::OK
    );
    assert_eq!(
        revoke(
            &auth,
            &[("token", "never-issued"), ("client_id", MOBILE_CLIENT_ID)]
        )
        .await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_introspection_endpoint_refuses_bad_client_credentials_and_tells_nothing_of_jwts() {
    let auth = auth_server().await;
    let opaque = login_opaque(&login_as(&auth, "alice", "read:timesheets"))
        .await
        .unwrap()
        .access_token;
    for basic in [
        None,
        Some((RESOURCE_SERVER_CLIENT_ID, "guess")),
        Some(("nobody", RESOURCE_SERVER_CLIENT_SECRET)),
        // Authenticated, but only the resource server may introspect.
        Some((BATCH_CLIENT_ID, BATCH_CLIENT_SECRET)),
    ] {
        let (status, body) = introspect(&auth, basic, &opaque).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{basic:?}: {body}");
        assert_eq!(body["error"], "invalid_client", "{basic:?}");
        assert!(body.get("active").is_none(), "{body}");
    }
    // The resource server is issued no token of its own.
    let (status, body) = token_request(
        &auth,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", RESOURCE_SERVER_CLIENT_ID),
            ("client_secret", RESOURCE_SERVER_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");

    // A JWT, a random string, a made-up value: inactive, nothing more.
    let jwt = login(&login_as(&auth, "alice", "read:timesheets"))
        .await
        .unwrap()
        .access_token;
    for token in [
        jwt.as_str(),
        "KrwR4he3oe2gO9U-mW6DQ9fQjUOoTXi1ouzompbYJmQ",
        "x",
    ] {
        assert_eq!(
            introspect_as_gateway(&auth, token).await,
            serde_json::json!({"active": false})
        );
    }
    assert_eq!(introspect_as_gateway(&auth, &opaque).await["active"], true);
}

#[tokio::test]
async fn the_batch_client_gets_an_opaque_token_that_only_it_or_the_gateway_may_revoke() {
    let auth = auth_server().await;
    let (status, body) = token_request(
        &auth,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", BATCH_CLIENT_ID),
            ("client_secret", BATCH_CLIENT_SECRET),
            ("token_format", "opaque"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let answer = introspect_as_gateway(&auth, &token).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["sub"], format!("{BATCH_CLIENT_ID}@clients"));
    assert_eq!(answer["scope"], "batch:upload");

    // The mobile app did not get this token: it may not revoke it.
    let r = http()
        .post(auth.revocation_endpoint())
        .form(&[("token", token.as_str()), ("client_id", MOBILE_CLIENT_ID)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    // Wrong client credentials: 401, nothing revoked.
    assert_eq!(
        revoke(
            &auth,
            &[
                ("token", &token),
                ("client_id", BATCH_CLIENT_ID),
                ("client_secret", "guess")
            ]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(introspect_as_gateway(&auth, &token).await["active"], true);
    // The resource server may revoke any token.
    let r = http()
        .post(auth.revocation_endpoint())
        .basic_auth(
            RESOURCE_SERVER_CLIENT_ID,
            Some(RESOURCE_SERVER_CLIENT_SECRET),
        )
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(introspect_as_gateway(&auth, &token).await["active"], false);

    let (status, body) = token_request(
        &auth,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", BATCH_CLIENT_ID),
            ("client_secret", BATCH_CLIENT_SECRET),
            ("token_format", "macaroon"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_the_opaque_access_tokens_of_its_grant() {
    let auth = auth_server().await;
    let (code, verifier) = code_for(&auth, "alice", "read:timesheets").await;
    let (status, tokens) = token_request(
        &auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", MOBILE_REDIRECT_URI),
            ("client_id", MOBILE_CLIENT_ID),
            ("code_verifier", &verifier),
            ("token_format", "opaque"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(introspect_as_gateway(&auth, access).await["active"], true);

    let status = revoke(
        &auth,
        &[
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
            ("client_id", MOBILE_CLIENT_ID),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(introspect_as_gateway(&auth, access).await["active"], false);
    let (status, body) = refresh(&auth, refresh_token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn the_demo_servers_refuse_to_bind_anything_but_loopback() {
    let public = SocketAddr::from(([0, 0, 0, 0], 0));
    assert!(AuthServer::bind(public).await.is_err());
    assert!(TimesheetsBackend::bind(public).await.is_err());
}

// ---------------------------------------------------------------------------------------
// The backend

#[tokio::test]
async fn the_backend_answers_401_without_an_identity_header() {
    let backend = TimesheetsBackend::spawn(loopback()).await.unwrap();
    let client = http();
    for (method, path) in [
        ("GET", "/timesheets"),
        ("PUT", "/approvals/7"),
        ("GET", "/approvals"),
    ] {
        let r = client
            .request(method.parse().unwrap(), format!("{}{path}", backend.url()))
            .header("X-Auth-Email", "")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthenticated");
    }
    let health = client
        .get(format!("{}/healthz", backend.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_backend_serves_the_caller_named_by_the_gateway_headers() {
    let backend = TimesheetsBackend::spawn(loopback()).await.unwrap();
    let url = backend.url();
    let client = http();
    let as_alice = |r: reqwest::RequestBuilder| r.header("X-Auth-Email", "alice@exampleco.com");

    let mine: Value = as_alice(client.get(format!("{url}/timesheets")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = mine.as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|e| e["user_id"] == "alice@exampleco.com")
    );

    let created = as_alice(client.post(format!("{url}/timesheets")))
        .json(&serde_json::json!({"date": "2026-11-05T09:00:00Z", "project": "StoreZero", "hours": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["user_id"], "alice@exampleco.com");
    assert_eq!(created["approved"], false);

    let bad = as_alice(client.post(format!("{url}/timesheets")))
        .json(&serde_json::json!({"date": "tomorrow", "project": "X", "hours": 99}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Bob's entry is not Alice's to read: it looks missing.
    let r = as_alice(client.get(format!("{url}/timesheets/9")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = as_alice(client.get(format!("{url}/timesheets/seven")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The subject stands in when there is no email (a client-credentials token).
    let approved: Value = client
        .put(format!("{url}/approvals/7"))
        .header("X-Auth-Subject", "auth0|bob")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved["approved"], true);
    assert_eq!(approved["approved_by"], "auth0|bob");
    let pending: Value = client
        .get(format!("{url}/approvals"))
        .header("X-Auth-Email", "bob@exampleco.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["approved"] == false && e["id"] != 7)
    );
}

// ---------------------------------------------------------------------------------------
// `scopegate demo`, the real binary

/// A running `scopegate demo` on free ports, from a folder without `policies/`, so it uses
/// its built-in policy. Killed on drop.
struct Demo {
    child: Child,
    dir: tempfile::TempDir,
    authz: String,
    gateway: SocketAddr,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
        let [authz, backend, gateway, admin] =
            free_ports::<4>().map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        let child = Command::new(env!("CARGO_BIN_EXE_scopegate"))
            .args(["demo", "--authz-listen", &authz.to_string()])
            .args(["--backend-listen", &backend.to_string()])
            .args(["--listen", &gateway.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .current_dir(dir.path())
            // Its scratch folder (upgrade socket, policy copy) lands in ours.
            .env("TMPDIR", dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("scopegate demo starts");
        let demo = Demo {
            child,
            dir,
            authz: format!("http://{authz}"),
            gateway,
        };
        demo.wait_for("the gateway to be ready", || {
            raw(admin, "GET /readyz HTTP/1.1\r\nHost: demo\r\n\r\n").is_ok_and(|r| r.status == 200)
        });
        demo
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("demo.log")).unwrap_or_default()
    }

    fn wait_for(&self, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; demo log:\n{}", self.log());
    }

    /// `scopegate demo <args> --authz <this demo>`: (status, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
            .arg("demo")
            .args(args)
            .args(["--authz", &self.authz])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn login(&self, user: &str, scope: &str) -> String {
        let (code, stdout, stderr) = self.cli(&["login", "--user", user, "--scope", scope]);
        assert_eq!(code, 0, "{stderr}");
        stdout.trim_end().to_owned()
    }

    /// A request through the gateway: status and JSON body.
    fn call(&self, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: demo\r\n");
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("Content-Length: 0\r\n\r\n");
        let r = raw(self.gateway, &request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; demo log:\n{}", self.log()));
        (
            r.status,
            serde_json::from_str(&r.body).unwrap_or(Value::Null),
        )
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_demo_lets_a_manager_approve_and_stops_an_employee() {
    let demo = Demo::start();
    assert_eq!(demo.call("GET", "/timesheets", None).0, 401);

    let alice = demo.login("alice", "read:timesheets create:timesheets");
    assert_eq!(
        alice.matches('.').count(),
        2,
        "stdout holds the token alone: {alice}"
    );
    let (status, entries) = demo.call("GET", "/timesheets", Some(&alice));
    assert_eq!(status, 200);
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_id"] == "alice@exampleco.com")
    );
    let (status, refusal) = demo.call("PUT", "/approvals/7", Some(&alice));
    assert_eq!(status, 403);
    assert_eq!(
        refusal["error_description"],
        "The access token's claim https://api.exampleco.com/roles does not allow this request"
    );

    // Bob is a Manager, but approving needs a recent sign-in with the one-time code.
    let bob = demo.login("bob", "approve:timesheets");
    let (status, refusal) = demo.call("PUT", "/approvals/7", Some(&bob));
    assert_eq!(status, 401, "{refusal}");
    assert_eq!(refusal["error"], "insufficient_user_authentication");
    assert_eq!(refusal["acr_values"], "mfa");
    let (code, stepped_up, stderr) = demo.cli(&[
        "login",
        "--user",
        "bob",
        "--scope",
        "approve:timesheets",
        "--acr",
        "mfa",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("logged in as bob@exampleco.com with acr mfa"),
        "{stderr}"
    );
    let (status, entry) = demo.call("PUT", "/approvals/7", Some(stepped_up.trim_end()));
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["approved_by"], "bob@exampleco.com");
}

#[test]
fn the_demo_gateway_shows_the_app_where_to_sign_in() {
    let demo = Demo::start();
    let origin = format!("http://{}", demo.gateway);
    let bare = raw(
        demo.gateway,
        "GET /timesheets HTTP/1.1\r\nHost: demo\r\n\r\n",
    )
    .unwrap();
    assert_eq!(bare.status, 401);
    let named = format!(r#"resource_metadata="{origin}/.well-known/oauth-protected-resource""#);
    let challenges: Vec<&str> = bare
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(
        challenges.iter().all(|c| c.ends_with(&named)),
        "{challenges:?}"
    );
    let (status, doc) = demo.call("GET", "/.well-known/oauth-protected-resource", None);
    assert_eq!(status, 200);
    assert_eq!(doc["resource"], origin.as_str());
    assert_eq!(
        doc["authorization_servers"],
        serde_json::json!([format!("{}/", demo.authz)])
    );
    assert!(
        doc["dpop_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "Ed25519"),
        "{doc}"
    );
}

#[test]
fn a_wrong_one_time_code_gets_no_token() {
    let demo = Demo::start();
    let (code, stdout, stderr) = demo.cli(&[
        "login",
        "--user",
        "bob",
        "--scope",
        "approve:timesheets",
        "--acr",
        "mfa",
        "--otp",
        "000000",
    ]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("wrong"), "{stderr}");
}

#[test]
fn demo_login_prints_only_the_token_and_explains_on_stderr() {
    let demo = Demo::start();
    let (code, stdout, stderr) = demo.cli(&[
        "login",
        "--user",
        "alice@exampleco.com",
        "--scope",
        "read:timesheets approve:timesheets",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1);
    let payload = stdout.trim().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["scope"], "read:timesheets");
    assert!(stderr.contains("granted: read:timesheets"), "{stderr}");
    assert!(stderr.contains("not granted"), "{stderr}");

    let (code, stdout, stderr) = demo.cli(&[
        "login",
        "--user",
        "alice",
        "--password",
        "x",
        "--scope",
        "read:timesheets",
    ]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("wrong user name, password or one-time code"),
        "{stderr}"
    );
}

#[test]
fn after_a_key_rotation_new_tokens_pass_the_gateway_and_old_ones_still_do() {
    let demo = Demo::start();
    let old = demo.login("alice", "read:timesheets");
    let (code, stdout, stderr) = demo.cli(&["rotate-key"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("signing with "), "{stdout}");
    let new = demo.login("alice", "read:timesheets");
    // The gateway refetches the JWKS when it meets the new kid (at most once a second).
    demo.wait_for("the new key to be accepted", || {
        demo.call("GET", "/timesheets", Some(&new)).0 == 200
    });
    assert_eq!(demo.call("GET", "/timesheets", Some(&old)).0, 200);
}

#[test]
fn demo_help_says_the_authorization_server_is_for_demos_and_tests_only() {
    let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .args(["demo", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("for demos and tests only"), "{help}");
}

#[test]
fn a_dpop_login_gets_a_bound_token_that_a_thief_without_the_key_cannot_use() {
    let demo = Demo::start();
    let key = demo.dir.path().join("dpop-key.pem");
    let key = key.to_str().unwrap();
    let gateway = format!("http://{}", demo.gateway);
    let (code, stdout, stderr) = demo.cli(&[
        "login",
        "--dpop",
        "--dpop-key",
        key,
        "--gateway",
        &gateway,
        "--user",
        "alice",
        "--scope",
        "read:timesheets",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim_end().to_owned();
    assert!(stderr.contains("DPoP-bound (cnf.jkt "), "{stderr}");
    assert!(stderr.contains("demo dpop-proof GET"), "{stderr}");
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");

    let url = format!("{gateway}/timesheets");
    let proof = || {
        let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
            .args(["demo", "dpop-proof", "GET", &url, "--token", &token])
            .args(["--dpop-key", key])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    };
    let send = |authorization: String, proof: Option<String>| {
        let mut request =
            format!("GET /timesheets HTTP/1.1\r\nHost: demo\r\nAuthorization: {authorization}\r\n");
        if let Some(proof) = proof {
            request.push_str(&format!("DPoP: {proof}\r\n"));
        }
        request.push_str("\r\n");
        raw(demo.gateway, &request).unwrap()
    };
    let fresh = proof();
    assert_eq!(
        send(format!("DPoP {token}"), Some(fresh.clone())).status,
        200
    );
    // The stolen token: as a bearer token, with no proof, with a replayed proof.
    let stolen = send(format!("Bearer {token}"), None);
    assert_eq!(stolen.status, 401);
    assert!(
        stolen
            .header("www-authenticate")
            .unwrap()
            .starts_with("DPoP "),
        "{stolen:?}"
    );
    assert_eq!(send(format!("DPoP {token}"), None).status, 401);
    assert_eq!(send(format!("DPoP {token}"), Some(fresh)).status, 401);
    assert_eq!(send(format!("DPoP {token}"), Some(proof())).status, 200);
}

#[test]
fn an_opaque_token_is_allowed_by_its_scopes_and_refused_once_revoked() {
    let demo = Demo::start();
    let (code, stdout, stderr) = demo.cli(&[
        "login",
        "--opaque",
        "--user",
        "alice",
        "--scope",
        "read:timesheets",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let token = stdout.trim_end().to_owned();
    assert!(!token.contains('.'), "an opaque token, not a JWT: {token}");
    assert!(stderr.contains("granted: read:timesheets"), "{stderr}");

    // The gateway introspects it: read is allowed (with the identity headers the claims
    // make), delete is not among its scopes.
    let (status, entries) = demo.call("GET", "/timesheets", Some(&token));
    assert_eq!(status, 200, "{entries}");
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["user_id"] == "alice@exampleco.com"),
        "{entries}"
    );
    let (status, refusal) = demo.call("DELETE", "/timesheets/7", Some(&token));
    assert_eq!(status, 403, "{refusal}");
    assert_eq!(refusal["scope"], "delete:timesheets");

    let (code, stdout, stderr) = demo.cli(&["revoke", &token]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("revoked"), "{stdout}");
    // The gateway's cached answer lasts at most cache_max_seconds (5 in the demo).
    demo.wait_for("the revoked token to be refused", || {
        demo.call("GET", "/timesheets", Some(&token)).0 == 401
    });
    let (status, refusal) = demo.call("GET", "/timesheets", Some(&token));
    assert_eq!(status, 401);
    assert_eq!(refusal["error"], "invalid_token");
    assert_eq!(
        refusal["error_description"],
        "The access token is not active"
    );
}

#[test]
fn demo_revoke_takes_a_token_that_begins_with_a_hyphen() {
    // One base64url token in 64 begins with `-`: it is still the token, not an option.
    let (_, out) = crate::harness::scopegate(&[
        "demo",
        "revoke",
        "-Uq1bCKOy3mD0ZF1qQ9sWmAxJ0y7VtQnYhGoE2kR8pc",
        "--authz",
        "http://127.0.0.1:1",
    ]);
    assert!(!out.contains("unexpected argument"), "{out}");
}

/// A DPoP proof for the demo's token endpoint, signed by `key` under the header's `alg`
/// name (`Ed25519` for an Ed25519 key, as RFC 9864 names it).
fn token_endpoint_proof(
    auth: &AuthServer,
    key: &jsonwebtoken::EncodingKey,
    sign_as: jsonwebtoken::Algorithm,
    alg: &str,
    jwk: &jsonwebtoken::jwk::Jwk,
) -> String {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let header = serde_json::json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
    let claims = serde_json::json!({
        "jti": format!("token-proof-{alg}"),
        "htm": "POST",
        "htu": auth.token_endpoint(),
        "iat": jsonwebtoken::get_current_timestamp(),
    });
    let message = format!("{}.{}", b64(&header), b64(&claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, sign_as).unwrap();
    format!("{message}.{signature}")
}

#[tokio::test]
async fn the_token_endpoint_takes_every_proof_algorithm_the_gateway_advertises() {
    use jsonwebtoken::Algorithm;
    use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
    scopegate::install_crypto_provider();
    let auth = auth_server().await;
    let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
    )
    .unwrap();
    let es384 = jsonwebtoken::EncodingKey::from_ec_der(p384.to_pkcs8v1().unwrap().as_ref());
    let ed_pem = std::fs::read(crate::harness::fixture("ed25519.pem")).unwrap();
    let ed = jsonwebtoken::EncodingKey::from_ed_pem(&ed_pem).unwrap();
    for (key, sign_as, alg) in [
        (&es384, Algorithm::ES384, "ES384"),
        (&ed, Algorithm::EdDSA, "Ed25519"),
        (&ed, Algorithm::EdDSA, "EdDSA"),
    ] {
        let jwk = Jwk::from_encoding_key(key, sign_as).unwrap();
        let proof = token_endpoint_proof(&auth, key, sign_as, alg, &jwk);
        let (code, verifier) = code_for(&auth, "alice", "read:timesheets").await;
        let r = http()
            .post(auth.token_endpoint())
            .header("DPoP", proof)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", MOBILE_REDIRECT_URI),
                ("client_id", MOBILE_CLIENT_ID),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{alg}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP", "{alg}");
        let c = verified_claims(&auth, body["access_token"].as_str().unwrap()).await;
        assert_eq!(
            c["cnf"]["jkt"],
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "{alg}"
        );
    }
}
