//! OAuth 2.0 error codes and the token endpoint's error response (RFC 6749 §5.2).

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The error codes this server answers with, at the token endpoint (§5.2) or in an
/// authorization redirect (§4.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The code or refresh token is unknown, expired, used, or not this client's.
    InvalidGrant,
    /// This client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not one this server knows.
    UnsupportedGrantType,
    /// `response_type` is not `code`.
    UnsupportedResponseType,
    /// A scope is unknown, or none of the requested ones may be granted.
    InvalidScope,
    /// The DPoP proof sent to the token endpoint is not acceptable (RFC 9449 §5).
    InvalidDpopProof,
    /// Something broke on this side.
    ServerError,
}

impl ErrorCode {
    /// The code as the RFC spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::ServerError => "server_error",
        }
    }
}

/// A refused token request.
#[derive(Debug)]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable explanation; never contains a credential.
    pub description: Cow<'static, str>,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidGrant
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::UnsupportedResponseType
            | ErrorCode::InvalidScope
            | ErrorCode::InvalidDpopProof => StatusCode::BAD_REQUEST,
        };
        let body = serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            // §5.2: a 401 names the client authentication scheme to use.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"scopegate-demo\""),
            );
        }
        response
    }
}
