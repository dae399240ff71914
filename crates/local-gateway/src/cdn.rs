//! The files CDN's public behaviour in the local stack (`FILES_CDN_BASE_URL` is
//! `{gateway}/cdn`): `/cdn/p/{fileId}/...` answers the public copy at `p/{fileId}/...` from the
//! bucket, with the headers it was stored with, as CloudFront's default behaviour does through
//! Origin Access Control (which signs its requests to S3: so does this, with SigV4). Like the deployed bucket policy, nothing outside `p/` is readable
//! unsigned: any other path is 403. (Deployed, `/users*` and `/derived*` take CloudFront signed
//! URLs; locally private files get presigned S3 URLs, which this does not serve.)

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use matbakh_core::sigv4::{Credentials, PresignRequest, presign_url};

/// Where the local stack serves the files CDN.
pub const PREFIX: &str = "/cdn/";

/// The only part of the bucket the public behaviour may read.
const PUBLIC_COPIES: &str = "p/";

/// The headers of S3's answer a CDN passes on to the browser.
const PASSED_ON: [header::HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::ETAG,
    header::LAST_MODIFIED,
    header::ACCEPT_RANGES,
];

/// The bucket as the CDN's origin: path-style GETs at `endpoint`, signed with `credentials`.
pub struct FilesCdn {
    /// The S3 endpoint (`AWS_ENDPOINT_URL` locally).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub credentials: Credentials,
}

impl FilesCdn {
    /// Answers a request for `path` (starting with [`PREFIX`]).
    pub async fn serve(&self, client: &reqwest::Client, method: &Method, path: &str, headers: &HeaderMap) -> Response {
        if method != Method::GET && method != Method::HEAD {
            return refused(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
        }
        let key = &path[PREFIX.len()..];
        // The path as the browser sent it (percent-encoded), so S3 sees the key CloudFront would
        // pass on; no dot segments (S3 would take them literally, a CDN normalises them away).
        if !key.starts_with(PUBLIC_COPIES) || key.split('/').any(|s| s == "." || s == ".." || s.is_empty()) {
            return refused(StatusCode::FORBIDDEN, "AccessDenied");
        }
        // The key as stored: the path's segments decoded (the signature encodes them again).
        let Ok(key) = percent_encoding::percent_decode_str(key).decode_utf8() else {
            return refused(StatusCode::FORBIDDEN, "AccessDenied");
        };
        match self.get(client, method, &key, headers).await {
            Ok(answer) => answer,
            // What S3 answers CloudFront for a key it may not read or that is gone.
            Err(Some(_)) => refused(StatusCode::FORBIDDEN, "AccessDenied"),
            Err(None) => refused(StatusCode::BAD_GATEWAY, "OriginUnreachable"),
        }
    }

    /// `key` (as stored) from the bucket, signed as Origin Access Control signs, with the
    /// conditional and range headers of the browser's request; the answer with the headers a
    /// CDN passes on. `Err(Some(status))`: S3 refused (403) or has no such key (404);
    /// `Err(None)`: no answer.
    pub async fn get(
        &self,
        client: &reqwest::Client,
        method: &Method,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<Response, Option<StatusCode>> {
        let path = format!("/{}/{key}", self.bucket);
        let url = presign_url(
            &PresignRequest {
                method: method.as_str(),
                base: &self.endpoint,
                path: &path,
                query: vec![],
                headers: vec![],
                region: &self.region,
                now: time::OffsetDateTime::now_utc(),
                expires_in_secs: 60,
            },
            &self.credentials,
        );
        let mut req = client.request(method.clone(), &url);
        for name in [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE, header::RANGE] {
            if let Some(v) = headers.get(&name) {
                req = req.header(name, v);
            }
        }
        let answer = req.send().await.map_err(|e| {
            tracing::error!(error = %e, "the bucket did not answer");
            None
        })?;
        let status = answer.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN {
            return Err(Some(status));
        }
        let mut resp = Response::builder().status(status.as_u16());
        for name in PASSED_ON {
            if let Some(v) = answer.headers().get(&name) {
                resp = resp.header(name, v);
            }
        }
        let body = answer.bytes().await.map_err(|_| None)?;
        resp.body(Body::from(body)).map_err(|_| None)
    }
}

fn refused(status: StatusCode, code: &str) -> Response {
    let mut resp = (status, axum::Json(serde_json::json!({ "message": code }))).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    resp
}
