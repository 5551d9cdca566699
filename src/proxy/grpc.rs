//! gRPC clients get their refusals as gRPC: a trailers-only response (HTTP 200,
//! `content-type: application/grpc`, `grpc-status`, `grpc-message`, no body) carrying the
//! same `WWW-Authenticate` challenges and `DPoP-Nonce` as headers, so a client library
//! reports UNAUTHENTICATED or PERMISSION_DENIED instead of "bad gRPC response", and can
//! still read the RFC 6750/9449/9470 error. gRPC-Web (`application/grpc-web`,
//! `application/grpc-web-text`) the same way, since its trailers-only form is headers too.

use http::HeaderValue;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Which gRPC protocol a request speaks, by its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcKind {
    /// `application/grpc`, `application/grpc+proto`, `application/grpc+json`, …
    Grpc,
    /// `application/grpc-web` (and `+proto`).
    Web,
    /// `application/grpc-web-text` (and `+proto`).
    WebText,
}

impl GrpcKind {
    /// The kind of a request with this `content-type`, if gRPC at all.
    pub fn of(content_type: Option<&HeaderValue>) -> Option<GrpcKind> {
        let value = content_type?.to_str().ok()?;
        let essence = value.split(';').next().unwrap_or(value).trim();
        // `to_str` admits visible ASCII only, so byte 16 is a character boundary.
        let (head, rest) = (essence.get(..16)?, &essence[16..]);
        if !head.eq_ignore_ascii_case("application/grpc") {
            return None;
        }
        // What follows names a sub-type: `+proto`, `-web`, `-web-text`, `-web+proto`, …
        let rest = rest.to_ascii_lowercase();
        let kind = if rest.starts_with("-web-text") {
            GrpcKind::WebText
        } else if rest.starts_with("-web") {
            GrpcKind::Web
        } else if rest.is_empty() || rest.starts_with('+') {
            GrpcKind::Grpc
        } else {
            return None;
        };
        Some(kind)
    }

    /// The `content-type` of the refusal.
    pub fn content_type(self) -> &'static str {
        match self {
            GrpcKind::Grpc => "application/grpc",
            GrpcKind::Web => "application/grpc-web",
            GrpcKind::WebText => "application/grpc-web-text",
        }
    }
}

/// The gRPC spec's percent-encoding of `grpc-message`: every byte outside printable ASCII,
/// and `%` itself.
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// `grpc-message` for a description.
pub fn message(description: &str) -> String {
    utf8_percent_encode(description, GRPC_MESSAGE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(v: &str) -> Option<GrpcKind> {
        GrpcKind::of(Some(&HeaderValue::from_str(v).unwrap()))
    }

    #[test]
    fn grpc_content_types_are_told_apart() {
        assert_eq!(kind("application/grpc"), Some(GrpcKind::Grpc));
        assert_eq!(kind("application/grpc+proto"), Some(GrpcKind::Grpc));
        assert_eq!(
            kind("Application/GRPC+json; charset=utf-8"),
            Some(GrpcKind::Grpc)
        );
        assert_eq!(kind("application/grpc-web"), Some(GrpcKind::Web));
        assert_eq!(kind("application/grpc-web+proto"), Some(GrpcKind::Web));
        assert_eq!(kind("application/grpc-web-text"), Some(GrpcKind::WebText));
        assert_eq!(kind("application/grpcx"), None);
        assert_eq!(kind("application/json"), None);
        assert_eq!(GrpcKind::of(None), None);
    }

    #[test]
    fn grpc_message_is_percent_encoded_as_the_spec_says() {
        assert_eq!(message("100% sure: é\n"), "100%25 sure: %C3%A9%0A");
        assert_eq!(
            message("The access token expired"),
            "The access token expired"
        );
    }
}
