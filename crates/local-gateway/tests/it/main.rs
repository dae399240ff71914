//! The `local-gateway` crate's integration tests, in one test binary (one link, not 4); each
//! module's own comment says what it covers.

mod dev_stack;
mod gateway;
mod in_process;
mod live;

use local_gateway::Gateway;
use matbakh_api::auth::JwtVerifier;
use matbakh_api::dev_keys::DevKey;

/// A gateway that trusts `key`'s tokens (issuer `iss`, audience `aud`), with no routes and no
/// dev-stack parts: each test sets what it needs (`Gateway { files_cdn: ..., ..bare(&key) }`).
fn bare(key: &DevKey) -> Gateway {
    Gateway {
        routes: vec![],
        verifier: JwtVerifier::new(&key.jwks(), "iss", "aud").unwrap(),
        lambda_endpoint: "http://127.0.0.1:9".into(),
        web_origins: vec![],
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        web: None,
        idp: None,
        files_cdn: None,
        transforms: None,
        legacy_prefix: None,
        live: None,
        in_process: Default::default(),
    }
}
