//! The confirmation claim (`cnf`, RFC 7800) of a verified token, and the check of a
//! certificate-bound token (RFC 8705 §3) against the connection's client certificate.

use base64::Engine as _;
use http::HeaderValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::claims::Claims;
use crate::auth::identity::{Confirmation, Identity};
use crate::ground::rejection::{Rejection, TokenError};

/// The token's `cnf`. A confirmation method the gateway cannot enforce (`jwk`, `kid`, …)
/// makes the token unacceptable: accepting it as a bearer token would drop the binding its
/// issuer asked for.
pub fn from_claims(claims: &Claims) -> Result<Confirmation, TokenError> {
    let cnf = match claims.get("cnf") {
        None | Some(Value::Null) => return Ok(Confirmation::default()),
        Some(Value::Object(cnf)) => cnf,
        Some(_) => return Err(TokenError::BadClaims),
    };
    let mut confirmation = Confirmation::default();
    for (name, value) in cnf {
        let thumbprint = match value {
            // A SHA-256 thumbprint, base64url: 43 characters.
            Value::String(s) if is_thumbprint(s) => HeaderValue::from_str(s).ok(),
            _ => None,
        }
        .ok_or(TokenError::BadClaims)?;
        match name.as_str() {
            "jkt" => confirmation.jkt = Some(thumbprint),
            "x5t#S256" => confirmation.x5t_s256 = Some(thumbprint),
            _ => return Err(TokenError::BadClaims),
        }
    }
    Ok(confirmation)
}

fn is_thumbprint(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The client certificate a request arrived with, as its SHA-256 thumbprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert(pub [u8; 32]);

impl ClientCert {
    /// The thumbprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> ClientCert {
        ClientCert(Sha256::digest(der).into())
    }

    /// A thumbprint computed already (pingora's TLS digest holds the leaf's SHA-256).
    pub fn from_digest(digest: &[u8]) -> Option<ClientCert> {
        digest.try_into().ok().map(ClientCert)
    }

    /// The certificate a TLS-terminating proxy forwarded in a header: URL-encoded PEM
    /// (nginx `$ssl_client_escaped_cert`, AWS ALB, Traefik) or PEM with its line breaks
    /// turned into spaces.
    pub fn from_header(value: &[u8]) -> Option<ClientCert> {
        let text = percent_encoding::percent_decode(value).decode_utf8().ok()?;
        let body = text
            .trim()
            .strip_prefix("-----BEGIN CERTIFICATE-----")?
            .trim_end()
            .strip_suffix("-----END CERTIFICATE-----")?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        Some(ClientCert::of_der(&der))
    }

    fn base64url(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }
}

/// RFC 8705 §3: a token bound to a certificate passes only with that certificate.
pub fn check_certificate(identity: &Identity, cert: Option<&ClientCert>) -> Result<(), Rejection> {
    let Some(bound) = &identity.confirmation.x5t_s256 else {
        return Ok(());
    };
    match cert {
        Some(cert) if cert.base64url().as_bytes() == bound.as_bytes() => Ok(()),
        _ => Err(Rejection::InvalidToken(TokenError::CertificateMismatch)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    #[test]
    fn cnf_members_are_read_and_unenforceable_ones_refused() {
        assert_eq!(from_claims(&claims(json!({}))), Ok(Confirmation::default()));
        let c = from_claims(&claims(json!({"cnf": {"jkt": JKT}}))).unwrap();
        assert_eq!(c.jkt.unwrap(), JKT);
        let c = from_claims(&claims(json!({"cnf": {"x5t#S256": JKT}}))).unwrap();
        assert_eq!(c.x5t_s256.unwrap(), JKT);
        for bad in [
            json!({"cnf": "x"}),
            json!({"cnf": {"jkt": 7}}),
            json!({"cnf": {"jkt": "short"}}),
            json!({"cnf": {"jkt": format!("{}\n", &JKT[..42])}}),
            json!({"cnf": {"jwk": {"kty": "EC"}}}),
        ] {
            assert_eq!(
                from_claims(&claims(bad.clone())),
                Err(TokenError::BadClaims),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_certificate_bound_token_needs_its_certificate() {
        let der = b"not really DER, but any bytes hash";
        let cert = ClientCert::of_der(der);
        let id = |x5t: &str| {
            Identity::new(None, "i".into(), None, vec![], vec![], 0)
                .unwrap()
                .with_confirmation(Confirmation {
                    jkt: None,
                    x5t_s256: Some(HeaderValue::from_str(x5t).unwrap()),
                })
        };
        let bound = id(&cert.base64url());
        assert_eq!(check_certificate(&bound, Some(&cert)), Ok(()));
        let other = ClientCert::of_der(b"another certificate");
        let mismatch = Err(Rejection::InvalidToken(TokenError::CertificateMismatch));
        assert_eq!(check_certificate(&bound, Some(&other)), mismatch);
        assert_eq!(check_certificate(&bound, None), mismatch);
        let unbound = Identity::new(None, "i".into(), None, vec![], vec![], 0).unwrap();
        assert_eq!(check_certificate(&unbound, None), Ok(()));
    }

    #[test]
    fn forwarded_certificates_are_read_from_escaped_pem() {
        let der = b"certificate bytes";
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        let escaped: String =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert_eq!(
            ClientCert::from_header(escaped.as_bytes()),
            Some(ClientCert::of_der(der))
        );
        assert_eq!(
            ClientCert::from_header(pem.replace('\n', " ").as_bytes()),
            Some(ClientCert::of_der(der))
        );
        assert_eq!(ClientCert::from_header(b"garbage"), None);
    }
}
