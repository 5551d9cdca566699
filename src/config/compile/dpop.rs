//! DPoP: the public URL, proof algorithms, the replay cache and the nonce secret.

use std::path::Path;

use jsonwebtoken::Algorithm;

use super::Problems;
use super::issuers::read_secret;
use super::split_upstream_url;
use crate::config::file::*;
use crate::config::settings::*;
use crate::ground::alg::is_hmac;

/// The DPoP proof algorithms accepted unless configured: every asymmetric one the common
/// issuers' clients sign with (`EdDSA` under both its names, see
/// [`crate::ground::alg::ED25519`]). The demo's token endpoint accepts the same.
pub const DEFAULT_DPOP_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::RS256,
];

pub(super) fn compile_dpop(p: &mut Problems, d: &DpopFile, base: &Path) -> Option<DpopSettings> {
    let mut ok = true;
    let public_url = match &d.public_url {
        None => None,
        Some(url) => match split_upstream_url(&url.value) {
            Ok(_) => Some(url.value.trim_end_matches('/').to_owned()),
            Err(e) => {
                p.at(
                    url,
                    format!(
                        "dpop.public_url: {}",
                        e.replace(
                            "requests keep the path they were checked on",
                            "scheme and authority only"
                        )
                    ),
                );
                ok = false;
                None
            }
        },
    };
    let algorithms = d.algorithms.as_ref().map_or_else(
        || DEFAULT_DPOP_ALGORITHMS.to_vec(),
        |a| a.value.iter().map(|n| n.0).collect(),
    );
    if let Some(a) = &d.algorithms
        && (a.value.is_empty() || a.value.iter().any(|alg| is_hmac(alg.0)))
    {
        p.at(
            a,
            "dpop.algorithms: name at least one, and only asymmetric ones (a proof is signed with the client's private key)",
        );
        ok = false;
    }
    let iat_window = d.iat_window_seconds.as_ref().map_or(60, |w| w.value);
    if let Some(w) = &d.iat_window_seconds
        && w.value == 0
    {
        p.at(w, "dpop.iat_window_seconds: must be at least 1");
        ok = false;
    }
    let replay_cache_entries = d.replay_cache_entries.as_ref().map_or(100_000, |e| e.value);
    if let Some(e) = &d.replay_cache_entries
        && e.value == 0
    {
        p.at(e, "dpop.replay_cache_entries: must be at least 1");
        ok = false;
    }
    let nonce = match &d.nonce {
        None => None,
        Some(n) => {
            let window = n.value.window_seconds.as_ref().map_or(60, |w| w.value);
            if let Some(w) = &n.value.window_seconds
                && w.value == 0
            {
                p.at(w, "dpop.nonce.window_seconds: must be at least 1");
                ok = false;
            }
            match read_secret(p, "dpop.nonce.secret_file", &n.value.secret_file, base) {
                Some(KeySource::Hmac { secret }) => Some((secret, window)),
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    ok.then_some(DpopSettings {
        public_url,
        algorithms,
        iat_window,
        // A few seconds of clock skew, not the whole window: a proof dated far ahead
        // would otherwise stay replayable (and kept) for up to twice the window.
        iat_future_skew: d
            .iat_future_skew_seconds
            .unwrap_or(super::defaults::DPOP_IAT_FUTURE_SKEW_SECONDS)
            .min(iat_window),
        replay_cache_entries: replay_cache_entries as usize,
        nonce,
    })
}
