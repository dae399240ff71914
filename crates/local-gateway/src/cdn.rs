//! The files CDN's public behaviour in the local stack (`FILES_CDN_BASE_URL` is
//! `{gateway}/cdn`): `/cdn/p/{fileId}/...` answers the public copy at `p/{fileId}/...` from the
//! bucket, with the headers it was stored with, as CloudFront's default behaviour does through
//! Origin Access Control (which signs its requests to S3: so does this, with SigV4). Like the deployed bucket policy, nothing outside `p/` is readable
//! unsigned: any other path is 403. (Deployed, `/users*` and `/derived*` take CloudFront signed
//! URLs; locally private files get presigned S3 URLs, which this does not serve.)
//!
//! With an [`AccessLog`], it logs its requests (and the transforms') as CloudFront's standard
//! logging does ([`matbakh_core::cdn_log`]): gzipped files under `cdn-files/` of the logs bucket,
//! written every [`LOG_FLUSH_SECONDS`], which the reporter reads for the CDN transfer. There is
//! no edge cache here: every request is logged as a `Miss` (or an `Error`).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use axum::body::{Body, HttpBody};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use matbakh_core::cdn_log;
use matbakh_core::sigv4::{Credentials, PresignRequest, presign_url};
use time::OffsetDateTime;

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
    /// Where its requests are logged, if anywhere.
    pub access_log: Option<AccessLog>,
}

/// How often the local CDN writes its logged requests to the logs bucket (CloudFront: several
/// times an hour).
pub const LOG_FLUSH_SECONDS: u64 = 5;

/// Requests logged and not yet written, as log lines by the hour they fall in.
pub struct AccessLog {
    /// The logs bucket.
    pub bucket: String,
    /// The distribution's logging prefix (`cdn-files/`).
    pub prefix: String,
    pending: Mutex<BTreeMap<i64, String>>,
}

impl AccessLog {
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        AccessLog { bucket: bucket.into(), prefix: prefix.into(), pending: Mutex::default() }
    }

    /// Logs the answer `resp` to `method` `path` (as CloudFront sees it: `/p/...`, `/t/...`).
    pub fn record(&self, method: &Method, host: &str, path: &str, resp: &Response, started: std::time::Instant) {
        let at = OffsetDateTime::now_utc();
        let status = resp.status();
        let bytes = resp.body().size_hint().exact().or_else(|| {
            resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
        });
        let entry = cdn_log::Entry {
            at,
            method: method.as_str(),
            host,
            path,
            status: status.as_u16(),
            bytes: bytes.unwrap_or(0),
            result: if status.is_client_error() || status.is_server_error() { "Error" } else { "Miss" },
            content_type: resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or(""),
            millis: started.elapsed().as_millis() as u64,
        };
        let hour = at.unix_timestamp() - at.unix_timestamp().rem_euclid(3600);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.entry(hour).or_insert_with(cdn_log::header).push_str(&cdn_log::line(&entry));
    }

    fn take(&self) -> BTreeMap<i64, String> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Whether `key` has a `.`, `..` or empty segment (S3 takes them literally, a CDN normalises
/// them away, an HTTP client resolves them).
fn has_dot_segment(key: &str) -> bool {
    key.split('/').any(|s| s == "." || s == ".." || s.is_empty())
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
        if !key.starts_with(PUBLIC_COPIES) || has_dot_segment(key) {
            return refused(StatusCode::FORBIDDEN, "AccessDenied");
        }
        // The key as stored: the path's segments decoded (the signature encodes them again),
        // checked again once decoded: `%2E%2E` or `%2F..%2F` are dot segments too, which the
        // HTTP client would resolve before S3 sees them (security review 20, edge 6).
        let Ok(key) = percent_encoding::percent_decode_str(key).decode_utf8() else {
            return refused(StatusCode::FORBIDDEN, "AccessDenied");
        };
        if has_dot_segment(&key) {
            return refused(StatusCode::FORBIDDEN, "AccessDenied");
        }
        match self.get(client, method, &key, headers).await {
            Ok(answer) => answer,
            // What S3 answers CloudFront for a key it may not read or that is gone.
            Err(Some(_)) => refused(StatusCode::FORBIDDEN, "AccessDenied"),
            Err(None) => refused(StatusCode::BAD_GATEWAY, "OriginUnreachable"),
        }
    }

    /// Writes the requests logged since the last call, one gzipped file per hour they fall in;
    /// how many files were written. What the bucket refuses stays unwritten (and is said).
    pub async fn flush_log(&self, client: &reqwest::Client) -> usize {
        let Some(log) = &self.access_log else { return 0 };
        let mut written = 0;
        for (hour, text) in log.take() {
            let Ok(hour) = OffsetDateTime::from_unix_timestamp(hour) else { continue };
            let unique = format!("{:x}", OffsetDateTime::now_utc().unix_timestamp_nanos());
            // Locally the distribution has no id: the place is the logging prefix alone.
            let key = cdn_log::file_key(&log.prefix, hour, &unique);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let body = std::io::Write::write_all(&mut gz, text.as_bytes()).and_then(|()| gz.finish());
            let Ok(body) = body else { continue };
            let url = self.signed_url(&Method::PUT, &log.bucket, &key);
            match client.put(&url).body(body).send().await {
                Ok(r) if r.status().is_success() => written += 1,
                Ok(r) => tracing::error!(status = %r.status(), key, "the logs bucket refused a CDN log file"),
                Err(e) => tracing::error!(error = %e, key, "the logs bucket did not answer"),
            }
        }
        written
    }

    /// A presigned URL for `method` on `key` of `bucket`, signed as Origin Access Control signs.
    fn signed_url(&self, method: &Method, bucket: &str, key: &str) -> String {
        let path = format!("/{bucket}/{key}");
        presign_url(
            &PresignRequest {
                method: method.as_str(),
                base: &self.endpoint,
                path: &path,
                query: vec![],
                headers: vec![],
                region: &self.region,
                now: OffsetDateTime::now_utc(),
                expires_in_secs: 60,
            },
            &self.credentials,
        )
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
        let url = self.signed_url(method, &self.bucket, key);
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
