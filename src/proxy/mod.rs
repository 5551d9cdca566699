//! The proxy layer: pingora's proxy phases and what they hand to the pure core.
//!
//! | file | job |
//! |---|---|
//! | [`phases`] | the `ProxyHttp` phases: plumbing only |
//! | [`phase_future`] | the futures of phases that never wait: nothing allocated |
//! | [`read_headers`] | `Host`, `Authorization`, `Content-Length` in one pass |
//! | [`connections`] | the cap on concurrent client connections (taken by [`header_clock`]) |
//! | [`header_clock`] | the deadline on a whole request header |
//! | [`grpc`] | refusals of gRPC and gRPC-Web requests, as gRPC: trailers-only with `grpc-status` |
//! | [`http2`] | h2c on the plain listener and the bounds of every HTTP/2 connection |
//! | [`headers`] | strip client identity headers, set the verified ones |
//! | [`metadata`] | RFC 9728 protected-resource metadata, from the live policy |
//! | [`host`] | one `Host`, absolute-form targets, the hosts served |
//! | [`upstream`] | upstream timeouts, and the answer to an upstream fault |
//! | [`admin`] | `/metrics`, `/healthz`, `/readyz` on their own listener |
//! | [`tls`] | the TLS listener's certificate, reloaded when its files change |
//! | [`traced`] | the request's spans opened, propagated to the upstream and ended |

pub mod admin;
pub mod connections;
pub mod grpc;
pub mod header_clock;
pub mod headers;
pub mod host;
pub mod http2;
pub mod metadata;
pub mod phase_future;
pub mod phases;
pub mod read_headers;
pub mod tls;
pub mod traced;
pub mod upstream;
