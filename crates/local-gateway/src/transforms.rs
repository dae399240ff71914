//! The files CDN's transform behaviour (`/t/*`) in the local stack (DECISIONS 32): what the
//! CloudFront Function and the origin group do deployed, with the Rust canonicaliser the
//! function is held equal to (`tests/imgproxy/result-keys.json`).
//!
//! 1. The signature and `exp` are checked with the key/salt pairs (`TRANSFORM_KEYS` and
//!    `TRANSFORM_SALTS`, which `scripts/dev` copies from the transformer's secret as
//!    `scripts/transform-keys` copies them into the CloudFront KeyValueStore); a refusal is the
//!    edge's (status, `x-error-reason`, `no-store`) and reaches no origin.
//! 2. `Accept` is reduced to avif | webp | jpeg and the URL mapped to its result key.
//! 3. The stored result is served from the bucket if there is one (the origin group's first
//!    member); otherwise the transformer is invoked with the result key as its path (spelled as
//!    the function spells it, `core::cdn::edge_path`) and the signed path in `x-transform-path`
//!    (its second member, on S3's 403 or 404).

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use matbakh_core::imgproxy::{
    AcceptClass, ENCODER_VERSION, OutputChoice, Presets, SigningKeys, SourcePolicy, TransformUrl,
};

use crate::cdn::FilesCdn;

/// Where transform sources may come from: the transformer's default `TRANSFORM_SOURCE_PREFIXES`,
/// as the function's `SOURCES`.
const SOURCES: &str = "users/";

/// The edge's mapping, with the pairs the edge would hold.
pub struct EdgeMapping {
    pub keys: SigningKeys,
    /// The files bucket (the one `s3://` sources may name).
    pub bucket: String,
}

/// What the edge made of a request.
#[derive(Debug, PartialEq)]
pub enum Mapped {
    /// Refused at the edge: status and reason.
    Refused(StatusCode, &'static str),
    /// The result key and the reduced `Accept`.
    Key { key: String, accept: &'static str },
}

impl EdgeMapping {
    /// The result key of the signed transform `path` (after `/t`, query removed) for `accept`,
    /// at `now` (unix seconds), or the edge's refusal.
    pub fn map(&self, path: &str, accept: &str, now: i64) -> Mapped {
        let sources = SourcePolicy {
            default_bucket: self.bucket.clone(),
            allowed: vec![(self.bucket.clone(), SOURCES.to_owned())],
        };
        if self.keys.is_empty() {
            return Mapped::Refused(StatusCode::SERVICE_UNAVAILABLE, "no_keys");
        }
        // The CDN knows no presets: `pr:` is refused like any unknown option.
        match TransformUrl::parse(path, &self.keys, &Presets::default(), &sources, now) {
            Err(e) => Mapped::Refused(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST), e.code()),
            Ok(url) => {
                let class = AcceptClass::from_accept(accept);
                let accept = match class {
                    AcceptClass::Avif => "image/avif",
                    AcceptClass::WebP => "image/webp",
                    AcceptClass::Legacy => "image/jpeg",
                };
                let key = url.result_key(ENCODER_VERSION, OutputChoice::new(&url, accept));
                Mapped::Key { key: key.as_str().to_owned(), accept }
            }
        }
    }
}

/// The edge's refusal: no body an origin made, never cached.
pub fn refusal(status: StatusCode, reason: &'static str) -> http::Response<axum::body::Body> {
    let mut resp = http::Response::new(axum::body::Body::from(
        serde_json::json!({ "error": reason, "message": "refused at the edge" }).to_string(),
    ));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-error-reason", HeaderValue::from_static(reason));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The stored result at `key` from the bucket, if there is one (`None`: the transformer's turn).
pub async fn stored(
    cdn: &FilesCdn,
    client: &reqwest::Client,
    method: &Method,
    key: &str,
    headers: &HeaderMap,
) -> Option<http::Response<axum::body::Body>> {
    match cdn.get(client, method, key, headers).await {
        Ok(mut resp) => {
            resp.headers_mut().insert("x-cache", HeaderValue::from_static("stored result"));
            Some(resp)
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared vectors, as the local edge maps them: the same keys and refusals as the
    /// transformer and the CloudFront Function.
    #[test]
    fn the_shared_vectors_map_here_as_at_the_edge() {
        let file = &format!("{}/../../tests/imgproxy/result-keys.json", std::env::var("CARGO_MANIFEST_DIR").unwrap());
        let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let keys = SigningKeys::from_hex(doc["keys"].as_str().unwrap(), doc["salts"].as_str().unwrap()).unwrap();
        let edge = EdgeMapping { keys, bucket: "files".into() };
        let now = doc["now"].as_i64().unwrap();
        for v in doc["vectors"].as_array().unwrap() {
            let path = v["path"].as_str().unwrap();
            let got = edge.map(path, v["accept"].as_str().unwrap_or(""), now);
            match (v["key"].as_str(), got) {
                (Some(want), Mapped::Key { key, .. }) => assert_eq!(key, want, "{path}"),
                (None, Mapped::Refused(status, reason)) => assert_eq!(
                    (u64::from(status.as_u16()), reason),
                    (v["status"].as_u64().unwrap(), v["error"].as_str().unwrap()),
                    "{path}"
                ),
                (want, got) => panic!("{path}: wanted {want:?}, got {got:?}"),
            }
        }
        let none = EdgeMapping { keys: SigningKeys::from_hex("", "").unwrap(), bucket: "files".into() };
        assert_eq!(
            none.map("/x/w:1/plain/users/a.jpg", "", now),
            Mapped::Refused(StatusCode::SERVICE_UNAVAILABLE, "no_keys")
        );
    }

    #[test]
    fn origin_paths_encode_like_the_function() {
        use matbakh_core::cdn::edge_path;
        assert_eq!(
            edge_path("results/users/u/f/a b.jpg/e2/rt:fill,w:3.webp"),
            "/results/users/u/f/a%20b.jpg/e2/rt%3Afill%2Cw%3A3.webp"
        );
        assert_eq!(edge_path("results/u/(x)!*'.jpg/e2/_.avif"), "/results/u/%28x%29%21%2A%27.jpg/e2/_.avif");
    }
}
