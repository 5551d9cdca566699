//! The shared store: its URL, TLS trust, credentials, timeouts and failure mode.

use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::Problems;
use super::defaults;
use crate::config::file::SharedStoreFile;
use crate::config::settings::SharedStoreSettings;
use crate::ground::Secret;

pub(super) fn compile_shared_store(
    p: &mut Problems,
    file: &Spanned<SharedStoreFile>,
    base: &Path,
) -> Option<SharedStoreSettings> {
    let s = &file.value;
    let mut ok = true;
    let address = match split_store_url(&s.url.value) {
        Ok(a) => Some(a),
        Err(e) => {
            p.at(&s.url, format!("shared_store.url: {e}"));
            ok = false;
            None
        }
    };
    let ca_pem = match &s.ca_file {
        None => None,
        Some(f) => {
            let path = base.join(&f.value);
            match std::fs::read(&path) {
                Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
                    Some(pem)
                }
                Ok(_) => {
                    p.at(
                        f,
                        format!(
                            "shared_store.ca_file: {} holds no PEM certificate",
                            path.display()
                        ),
                    );
                    ok = false;
                    None
                }
                Err(e) => {
                    p.at(
                        f,
                        format!("shared_store.ca_file: cannot read {}: {e}", path.display()),
                    );
                    ok = false;
                    None
                }
            }
        }
    };
    if let (Some(f), Some((_, _, false))) = (&s.ca_file, &address) {
        p.at(
            f,
            "shared_store.ca_file: only a rediss:// URL speaks TLS; use rediss:// or remove ca_file",
        );
        ok = false;
    }
    let password = match &s.password_file {
        None => None,
        Some(f) => {
            let path = base.join(&f.value);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let end = bytes
                        .iter()
                        .rposition(|b| !b"\r\n".contains(b))
                        .map_or(0, |i| i + 1);
                    match std::str::from_utf8(&bytes[..end]) {
                        Ok(text) if !text.is_empty() => Some(Secret::new(text.as_bytes())),
                        _ => {
                            p.at(
                                f,
                                format!(
                                    "shared_store.password_file: {} must hold a non-empty UTF-8 password",
                                    path.display()
                                ),
                            );
                            ok = false;
                            None
                        }
                    }
                }
                Err(e) => {
                    p.at(
                        f,
                        format!(
                            "shared_store.password_file: cannot read {}: {e}",
                            path.display()
                        ),
                    );
                    ok = false;
                    None
                }
            }
        }
    };
    let connect_timeout = p.positive(
        s.connect_timeout_ms.as_ref(),
        defaults::STORE_CONNECT_TIMEOUT_MS,
        "shared_store.connect_timeout_ms",
    );
    let command_timeout = p.positive(
        s.command_timeout_ms.as_ref(),
        defaults::STORE_COMMAND_TIMEOUT_MS,
        "shared_store.command_timeout_ms",
    );
    let (host, port, tls) = address?;
    ok.then(|| SharedStoreSettings {
        host,
        port,
        tls,
        ca_pem,
        username: s.username.clone(),
        password,
        database: s.database.unwrap_or(0),
        connect_timeout: Duration::from_millis(connect_timeout),
        command_timeout: Duration::from_millis(command_timeout),
        key_prefix: s
            .key_prefix
            .clone()
            .unwrap_or_else(|| defaults::STORE_KEY_PREFIX.to_owned()),
        on_error: s.on_error.unwrap_or_default(),
    })
}

/// `redis://host[:port]` or `rediss://host[:port]`: host, port (default 6379) and TLS.
/// Credentials in the URL are refused: they would be shown wherever the file is, and the
/// password has its own file.
fn split_store_url(url: &str) -> Result<(String, u16, bool), String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("rediss://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("redis://") {
        (false, rest)
    } else {
        return Err(format!("\"{url}\" must start with redis:// or rediss://"));
    };
    if rest.contains('@') {
        return Err(
            "put no credentials in the URL: name the user in username and the password in password_file"
                .into(),
        );
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(format!(
            "\"{url}\" must be scheme, host and port only (the database is `database`)"
        ));
    }
    let uri: http::uri::Authority = authority
        .parse()
        .map_err(|_| format!("\"{url}\" has no valid host"))?;
    let host = uri.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    Ok((host.to_owned(), uri.port_u16().unwrap_or(6379), tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_scheme_host_and_port() {
        assert_eq!(
            split_store_url("redis://valkey:6380").unwrap(),
            ("valkey".into(), 6380, false)
        );
        assert_eq!(
            split_store_url("rediss://valkey.example/").unwrap(),
            ("valkey.example".into(), 6379, true)
        );
        assert_eq!(
            split_store_url("redis://[::1]:7000").unwrap(),
            ("::1".into(), 7000, false)
        );
        for bad in [
            "http://valkey",
            "redis://user:pw@valkey",
            "redis://valkey/0",
            "redis://",
            "valkey:6379",
        ] {
            assert!(split_store_url(bad).is_err(), "{bad}");
        }
    }
}
