//! The mobile app's DPoP key, from the command line: an ES256 key pair made by
//! `demo login --dpop`, kept in a file (mode 0600) so that `demo dpop-proof` can sign a
//! fresh proof (RFC 9449 §4.2) for each request.

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::DemoError;

const PEM_LABEL: &str = "PRIVATE KEY";

/// Where the key is kept unless `--dpop-key` says otherwise.
pub fn default_path() -> PathBuf {
    std::env::temp_dir().join("scopegate-demo-dpop-key.pem")
}

/// An ES256 DPoP key pair.
pub struct DpopKey {
    encoding: EncodingKey,
    public: Jwk,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey").finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A fresh P-256 key.
    pub fn generate() -> Result<DpopKey, DemoError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| DemoError::Key("cannot generate a P-256 key".into()))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| DemoError::Key("cannot encode the P-256 key".into()))?;
        DpopKey::from_pkcs8(pkcs8.as_ref())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<DpopKey, DemoError> {
        crate::install_crypto_provider();
        let encoding = EncodingKey::from_ec_der(pkcs8);
        let public = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
            .map_err(|e| DemoError::Key(format!("not a P-256 key: {e}")))?;
        Ok(DpopKey {
            encoding,
            public,
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// Reads a key `save` wrote.
    pub fn load(path: &Path) -> Result<DpopKey, DemoError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            DemoError::Key(format!(
                "cannot read the DPoP key {} ({e}); run demo login --dpop first",
                path.display()
            ))
        })?;
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| DemoError::Key(format!("{} is not a PEM key", path.display())))?;
        DpopKey::from_pkcs8(&der)
    }

    /// Writes the private key as PEM, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), DemoError> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.pkcs8);
        let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
        let _ = std::fs::remove_file(path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
            use std::io::Write as _;
            options.open(path)?.write_all(pem.as_bytes())
        };
        write(&options).map_err(|e| DemoError::Key(format!("cannot write {}: {e}", path.display())))
    }

    /// RFC 7638 thumbprint: the `cnf.jkt` of tokens bound to this key.
    pub fn thumbprint(&self) -> String {
        self.public
            .thumbprint(ThumbprintHash::SHA256)
            .unwrap_or_default()
    }

    /// A fresh proof for `method url`; with `token` it carries `ath`, with `nonce` the
    /// server's nonce.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, DemoError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.public.clone());
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut claims = json!({
            "jti": super::random_token(),
            "htm": method,
            "htu": htu,
            "iat": super::unix_now(),
        });
        if let Some(token) = token {
            claims["ath"] = json!(crate::auth::dpop::proof::token_hash(token));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| DemoError::Key(format!("cannot sign the proof: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::dpop::proof::{self, ProofRules, ProofTarget};

    #[test]
    fn a_saved_key_signs_proofs_the_gateway_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let key = DpopKey::generate().unwrap();
        key.save(&path).unwrap();
        let loaded = DpopKey::load(&path).unwrap();
        assert_eq!(loaded.thumbprint(), key.thumbprint());
        let url = "http://127.0.0.1:8080/timesheets";
        let signed = loaded
            .proof("GET", &format!("{url}?x=1"), Some("tok"), None)
            .unwrap();
        let rules = ProofRules {
            algorithms: vec![Algorithm::ES256],
            iat_window: 60,
            iat_future_skew: 5,
        };
        let target = ProofTarget {
            method: "GET",
            htu: url,
            token: Some("tok"),
        };
        let checked = proof::check(&signed, &target, &rules, crate::demo::unix_now()).unwrap();
        assert_eq!(checked.jkt, key.thumbprint());
    }
}
