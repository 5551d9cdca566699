//! Integration stories: the real `scopegate` binary on loopback, a JWKS server the tests
//! control and an echo upstream that reports what reached it.

mod harness;

mod agreement;
mod authserver;
mod burst;
#[cfg(feature = "demo")]
mod demo;
mod deploy;
mod discovery;
mod dpop;
mod grpc;
mod hardening_jwks;
mod hardening_limits;
mod hardening_paths;
mod hardening_requests;
mod hardening_upstream;
mod headers;
mod http2;
#[cfg(feature = "demo")]
mod interop;
mod introspection;
mod jwks;
mod lifecycle;
mod logs;
mod metrics;
mod mtls;
mod oidc;
mod paths;
mod policy;
mod prometheus;
mod properties;
mod properties_claims;
mod properties_support;
mod properties_tokens;
mod reload;
mod resource_metadata;
mod responses;
mod routes;
mod shared_store;
mod soak;
mod startup;
mod tls;
mod tokens;
mod traces;
