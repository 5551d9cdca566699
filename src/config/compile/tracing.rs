//! `tracing:`: the OTLP exporter, each key falling back to its standard `OTEL_*` variable,
//! so a pod can be pointed at a collector without editing the file.

use std::path::Path;
use std::time::Duration;

use super::Problems;
use crate::config::file::TracingFile;
use crate::config::settings::{OtlpProtocol, TracingSettings};
use crate::ground::Secret;

/// Most spans waiting for export unless configured: the SDK's own default.
const DEFAULT_QUEUE_SIZE: usize = 2048;
/// Longest one export may take unless configured, in milliseconds.
const DEFAULT_EXPORT_TIMEOUT_MS: u64 = 10_000;

/// Time between exports unless configured, in milliseconds: the SDK's default.
const DEFAULT_EXPORT_INTERVAL_MS: u64 = 5_000;

/// The downward-API variables the resource's Kubernetes attributes come from.
pub const POD_NAME_VAR: &str = "K8S_POD_NAME";
/// See [`POD_NAME_VAR`].
pub const NAMESPACE_VAR: &str = "K8S_NAMESPACE_NAME";

/// Reads an environment variable (set and non-empty); a parameter so tests need not touch
/// the process environment.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The exporter's settings, or `None` when no endpoint is configured anywhere (tracing
/// off) or `OTEL_SDK_DISABLED=true`.
pub(super) fn compile_tracing(
    p: &mut Problems,
    t: &TracingFile,
    base: &Path,
    env: Env,
) -> Option<TracingSettings> {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    let protocol = match &t.protocol {
        Some(value) => match parse_protocol(&value.value) {
            Some(protocol) => protocol,
            None => {
                p.at(
                    value,
                    format!(
                        "tracing.protocol: unknown protocol {:?} (expected http/protobuf or grpc)",
                        value.value
                    ),
                );
                OtlpProtocol::HttpProtobuf
            }
        },
        None => env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .and_then(|v| parse_protocol(&v))
            .unwrap_or(OtlpProtocol::HttpProtobuf),
    };
    // The per-signal variable is the traces URL as it is; the general one is a base.
    let endpoint = match &t.endpoint {
        Some(value) => {
            if !(value.value.starts_with("http://") || value.value.starts_with("https://")) {
                p.at(
                    value,
                    "tracing.endpoint: an http:// or https:// URL, e.g. http://otel-collector:4318",
                );
                return None;
            }
            signal_url(&value.value, protocol)
        }
        None => match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url,
            None => signal_url(&env("OTEL_EXPORTER_OTLP_ENDPOINT")?, protocol),
        },
    };
    let headers = match &t.headers_file {
        Some(file) => {
            let path = base.join(&file.value);
            match std::fs::read_to_string(&path) {
                Ok(text) => parse_headers(&text),
                Err(e) => {
                    p.at(
                        file,
                        format!("tracing.headers_file: cannot read {}: {e}", path.display()),
                    );
                    Vec::new()
                }
            }
        }
        None => env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|v| parse_headers(&v))
            .unwrap_or_default(),
    };
    let sampling_ratio = match &t.sampling_ratio {
        Some(r) if !(0.0..=1.0).contains(&r.value) => {
            p.at(r, "tracing.sampling_ratio: a number from 0.0 to 1.0");
            1.0
        }
        Some(r) => r.value,
        None => 1.0,
    };
    let queue_size = p.positive(
        t.queue_size.as_ref(),
        DEFAULT_QUEUE_SIZE,
        "tracing.queue_size",
    );
    let export_timeout = Duration::from_millis(p.positive(
        t.export_timeout_ms.as_ref(),
        DEFAULT_EXPORT_TIMEOUT_MS,
        "tracing.export_timeout_ms",
    ));
    let export_interval = Duration::from_millis(p.positive(
        t.export_interval_ms.as_ref(),
        DEFAULT_EXPORT_INTERVAL_MS,
        "tracing.export_interval_ms",
    ));
    let service_name = t
        .service_name
        .clone()
        .or_else(|| env("OTEL_SERVICE_NAME"))
        .unwrap_or_else(|| "scopegate".into());
    let mut resource = vec![
        ("service.name", service_name),
        ("service.version", env!("CARGO_PKG_VERSION").to_owned()),
    ];
    if let Some(pod) = env(POD_NAME_VAR) {
        resource.push(("k8s.pod.name", pod));
    }
    if let Some(namespace) = env(NAMESPACE_VAR) {
        resource.push(("k8s.namespace.name", namespace));
    }
    Some(TracingSettings {
        endpoint,
        protocol,
        headers,
        sampling_ratio,
        queue_size,
        export_timeout,
        export_interval,
        resource,
    })
}

fn parse_protocol(name: &str) -> Option<OtlpProtocol> {
    match name {
        "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
        "grpc" => Some(OtlpProtocol::Grpc),
        _ => None,
    }
}

/// The traces URL of a base endpoint: OTLP/HTTP puts each signal at its own path.
fn signal_url(base: &str, protocol: OtlpProtocol) -> String {
    match protocol {
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
        OtlpProtocol::Grpc => base.to_owned(),
    }
}

/// `name=value` pairs separated by commas or newlines, values percent-decoded (the
/// `OTEL_EXPORTER_OTLP_HEADERS` format); blank lines and `#` comments are skipped.
fn parse_headers(text: &str) -> Vec<(String, Secret)> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !pair.starts_with('#'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = percent_encoding::percent_decode_str(value.trim()).collect::<Vec<u8>>();
            Some((name.trim().to_ascii_lowercase(), Secret::new(value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn compile(yaml: &str, vars: &[(&str, &str)]) -> Result<Option<TracingSettings>, String> {
        let file: TracingFile = serde_saphyr::from_str(yaml).unwrap();
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut p = Problems {
            file: "scopegate.yaml",
            found: Vec::new(),
        };
        let settings = compile_tracing(&mut p, &file, Path::new("."), &|name| {
            vars.get(name).cloned()
        });
        match p.found.first() {
            Some(problem) => Err(problem.to_string()),
            None => Ok(settings),
        }
    }

    #[test]
    fn no_endpoint_anywhere_means_tracing_is_off() {
        assert!(compile("{}", &[]).unwrap().is_none());
        assert!(compile("sampling_ratio: 0.5", &[]).unwrap().is_none());
    }

    #[test]
    fn the_standard_variables_turn_it_on_and_the_file_wins_over_them() {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_SERVICE_NAME", "edge-gateway"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc%3D1,tenant=t1"),
            ("K8S_POD_NAME", "scopegate-7d9f"),
            ("K8S_NAMESPACE_NAME", "timesheets"),
        ];
        let t = compile("{}", &env).unwrap().unwrap();
        assert_eq!(t.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(t.sampling_ratio, 1.0);
        assert_eq!(t.headers.len(), 2);
        assert_eq!(t.headers[0].0, "x-api-key");
        assert_eq!(t.headers[0].1.expose(), b"abc=1");
        let resource: HashMap<_, _> = t.resource.into_iter().collect();
        assert_eq!(resource["service.name"], "edge-gateway");
        assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(resource["k8s.pod.name"], "scopegate-7d9f");
        assert_eq!(resource["k8s.namespace.name"], "timesheets");

        let t = compile(
            "endpoint: http://other:4317\nprotocol: grpc\nservice_name: gw",
            &env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.endpoint, "http://other:4317");
        assert_eq!(t.protocol, OtlpProtocol::Grpc);
        assert_eq!(t.resource[0], ("service.name", "gw".to_owned()));
    }

    #[test]
    fn the_traces_variable_is_taken_as_it_is_and_sdk_disabled_turns_it_off() {
        let t = compile(
            "{}",
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.endpoint, "http://c:4318/custom");
        let off = compile("endpoint: http://c:4318", &[("OTEL_SDK_DISABLED", "true")]).unwrap();
        assert!(off.is_none());
    }

    #[test]
    fn bad_values_are_reported_where_they_are() {
        let e = compile("endpoint: c:4318", &[]).unwrap_err();
        assert!(e.contains("tracing.endpoint"), "{e}");
        let e = compile("endpoint: http://c\nprotocol: http/json", &[]).unwrap_err();
        assert!(e.contains("unknown protocol \"http/json\""), "{e}");
        let e = compile("endpoint: http://c\nsampling_ratio: 1.5", &[]).unwrap_err();
        assert!(e.contains("tracing.sampling_ratio"), "{e}");
        let e = compile("endpoint: http://c\nqueue_size: 0", &[]).unwrap_err();
        assert!(e.contains("tracing.queue_size: must be at least 1"), "{e}");
    }

    #[test]
    fn a_headers_file_takes_lines_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("otlp-headers"),
            "# Grafana Cloud\nauthorization=Basic%20dXNlcjprZXk=\n\n",
        )
        .unwrap();
        let file: TracingFile =
            serde_saphyr::from_str("endpoint: https://otlp.example\nheaders_file: otlp-headers")
                .unwrap();
        let mut p = Problems {
            file: "scopegate.yaml",
            found: Vec::new(),
        };
        let t = compile_tracing(&mut p, &file, dir.path(), &|_| None).unwrap();
        assert!(p.found.is_empty());
        assert_eq!(t.headers.len(), 1);
        assert_eq!(t.headers[0].1.expose(), b"Basic dXNlcjprZXk=");
        assert!(!format!("{t:?}").contains("dXNlcjprZXk"));
    }
}
