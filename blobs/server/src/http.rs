//! The HTTP side: the public blobs API and its auth, the services listener, the accept loop
//! with its limits and TLS, and the metrics every request feeds.

pub mod api;
pub mod auth;
pub mod error;
pub mod idle;
pub mod metrics;
pub mod range;
pub mod reclaim;
pub mod serve;
pub mod services;
pub mod tls;
pub mod tokens;
