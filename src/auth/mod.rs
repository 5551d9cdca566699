//! Who is calling: the credential on the request, its verification, and the identity that
//! comes out of it. Nothing here knows pingora or the policy.
//!
//! | file | job |
//! |---|---|
//! | [`token`] | the bearer token from `Authorization` (RFC 6750 §2.1), syntax |
//! | [`jws`] | signature checks with keys parsed once per key set |
//! | [`claims`] | registered claims (RFC 7519): `iss`, `aud`, `exp`, `nbf`, `iat` |
//! | [`jwks`] | key sets per issuer: fetch, refresh, unknown `kid`, staleness |
//! | [`verify`] | token → [`identity::Identity`], and the verified-token cache |
//! | [`identity`] | the verified caller and its upstream header values |

pub mod claims;
pub mod identity;
pub mod jwks;
pub mod jws;
pub mod token;
pub mod verify;

use std::sync::Arc;

use crate::decision::Rejection;
use identity::{ConditionClaims, Identity};
use token::TokenRules;
use verify::Verifier;

/// The gateway's way to authenticate a caller: the bearer token from the request, verified
/// (or found in the verified-token cache).
pub struct Authenticator {
    /// Token verification.
    pub verifier: Arc<Verifier>,
    /// Where tokens may come from.
    pub rules: TokenRules,
}

impl Authenticator {
    /// The identity behind the request's credentials: its `Authorization` header values
    /// and query string. It keeps the claims `conditions` names, for the policy's claim
    /// conditions.
    pub fn authenticate<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        query: Option<&'a str>,
        conditions: &ConditionClaims,
    ) -> Result<Arc<Identity>, Rejection> {
        let token =
            token::extract(authorization, query, &self.rules)?.ok_or(Rejection::MissingToken)?;
        self.verifier.verify_for(&token, conditions)
    }
}
