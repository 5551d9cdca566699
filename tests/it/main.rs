//! Integration stories: the real `scopegate` binary on loopback, a JWKS server the tests
//! control and an echo upstream that reports what reached it.

mod harness;

mod burst;
mod headers;
mod paths;
mod responses;
mod routes;
mod startup;
mod tokens;
mod jwks;
mod lifecycle;
mod metrics;
mod reload;
mod oidc;
mod tls;
