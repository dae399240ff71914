//! `legacy-redirect`: the old domain's file URLs (`/uploads/*`), after the cutover (issue 19,
//! part 2).
//!
//! Triggered by the legacy CDN (its `/uploads/*` behaviour; the function URL, reached through
//! Origin Access Control only), or locally by the gateway at the same path. For `GET`/`HEAD` of
//! an old URL it decides with [`matbakh_core::migration::redirect::answer`]:
//! - `301` to the file's new URL when its prefix is switched to the platform and the run that
//!   copied it was verified (the files CDN's public copy, or the app's file page);
//! - `410` when the file was deleted or quarantined on the platform since, and for every file
//!   of a user who erased their account on the platform (their paths' keyed marks, whatever
//!   the switch: the legacy store may still hold them);
//! - otherwise the legacy origin's own answer (`LEGACY_ORIGIN`), read through: its status (a
//!   `404` included), body and caching headers, or a `302` to it when the body is larger than a
//!   Lambda answer can carry ([`FALLBACK_MAX_BYTES`](matbakh_core::migration::redirect::FALLBACK_MAX_BYTES)).
//!
//! Reads: the cutover switches and run items of the migration table (kept
//! [`SWITCH_CACHE_SECONDS`](matbakh_core::migration::redirect::SWITCH_CACHE_SECONDS)), the erased
//! paths' marks (keyed with `ERASE_PSEUDONYM_SECRET_ID`), the legacy mapping and the file's row
//! in the files table, the legacy origin. Writes: one counter update a
//! request in the migration table (`LEGACY#SERVED`, per day: what `migrate decommission-check`
//! and `migrate report` read) and an EMF metric line.

pub mod adapters;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use matbakh_aws::table::LegacyMapping;
use matbakh_core::clock::{Clock, iso_millis};
use matbakh_core::ids::FileId;
use matbakh_core::metadata::FileRecord;
use matbakh_core::migration::Switch;
use matbakh_core::migration::redirect::{
    self, Answer, FALLBACK_MAX_BYTES, Migrated, NewHome, REDIRECT_MAX_AGE_SECONDS, SWITCH_CACHE_SECONDS, Served,
    Switches,
};
use matbakh_lambda::metrics::{self, Unit};
use serde_json::json;
use time::OffsetDateTime;
use tracing::Instrument;

/// This crate's errors: a read of the tables or of the legacy origin failed (both retryable by
/// the viewer: the answer is a 5xx, never a made-up 404).
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    #[error("reading the tables: {0}")]
    Tables(#[from] matbakh_aws::AwsError),
    #[error("the legacy origin did not answer: {0}")]
    Origin(String),
}

/// Where the redirector learns what was migrated and switched, and counts what it served.
#[async_trait]
pub trait Migrations: Send + Sync {
    /// Every recorded switch of the legacy source `source`.
    async fn switches(&self, source: &str) -> Result<Switches, RedirectError>;
    /// The file the legacy path became, if a run registered it.
    async fn mapping(&self, path: &str) -> Result<Option<LegacyMapping>, RedirectError>;
    /// Whether the legacy path was a file of a user who erased their account on the platform.
    async fn erased(&self, path: &str) -> Result<bool, RedirectError>;
    async fn file(&self, id: FileId) -> Result<Option<FileRecord>, RedirectError>;
    /// What the redirector needs of run `run`: its legacy source, and whether it passed a full
    /// `verify` and was not rolled back; `None` if there is no such run.
    async fn run(&self, run: &str) -> Result<Option<RunOf>, RedirectError>;
    /// Counts one answer of `source`'s redirector on the day of `at`.
    async fn count(&self, source: &str, at: &str, served: Served, path: &str) -> Result<(), RedirectError>;
}

/// A migration run, as [`Migrations::run`] answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOf {
    /// The legacy source it copied (`file:///legacy`).
    pub source: String,
    /// It passed a full `verify` and was not rolled back.
    pub verified: bool,
}

/// What the legacy origin answered.
#[derive(Debug)]
pub enum Fetched {
    /// Its status, its passed-on headers and its whole body (empty for `HEAD`).
    Answer { status: StatusCode, headers: HeaderMap, body: Bytes },
    /// The body is larger than `max_bytes`: the viewer is sent to `url`.
    TooLarge { url: String },
}

/// The legacy store's web server.
#[async_trait]
pub trait LegacyOrigin: Send + Sync {
    /// `method` of `path_and_query` (as the old URL spelled it, after the URL prefix) with the
    /// viewer's conditional and range headers; bodies above `max_bytes` are not read.
    async fn fetch(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        max_bytes: u64,
    ) -> Result<Fetched, RedirectError>;
}

/// Settings (environment, see `main.rs`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The legacy source as `migrate` runs name it (`file:///srv/legacy`): whose switches count.
    pub source: String,
    /// The old URLs' path prefix ([`redirect::DEFAULT_URL_PREFIX`]).
    pub url_prefix: String,
    pub home: NewHome,
    pub fallback_max_bytes: u64,
    pub switch_cache: std::time::Duration,
}

impl Settings {
    pub fn new(source: String, home: NewHome) -> Self {
        Settings {
            source,
            url_prefix: redirect::DEFAULT_URL_PREFIX.to_owned(),
            home,
            fallback_max_bytes: FALLBACK_MAX_BYTES,
            switch_cache: std::time::Duration::from_secs(SWITCH_CACHE_SECONDS),
        }
    }
}

/// Reads kept for [`Settings::switch_cache`].
#[derive(Default)]
struct Cache {
    switches: Option<(OffsetDateTime, Switches)>,
    runs: HashMap<String, (OffsetDateTime, Option<bool>)>,
}

pub struct Redirector {
    pub settings: Settings,
    pub migrations: Arc<dyn Migrations>,
    pub origin: Arc<dyn LegacyOrigin>,
    pub clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
}

impl Redirector {
    pub fn new(
        settings: Settings,
        migrations: Arc<dyn Migrations>,
        origin: Arc<dyn LegacyOrigin>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Redirector { settings, migrations, origin, clock, cache: Mutex::new(Cache::default()) }
    }

    fn fresh(&self, read_at: OffsetDateTime) -> bool {
        self.clock.now() - read_at < self.settings.switch_cache
    }

    async fn switches(&self) -> Result<Switches, RedirectError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, s)) = &cache.switches
            && self.fresh(*at)
        {
            return Ok(s.clone());
        }
        let s = self.migrations.switches(&self.settings.source).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.switches = Some((self.clock.now(), s.clone()));
        }
        Ok(s)
    }

    /// Whether run `run` is verified; `None` if it copied another legacy source (a mapping is
    /// keyed by the legacy path alone, and a trial run from a staging copy, or a second site
    /// with the same layout, may have written it last: review 26).
    async fn run_verified(&self, run: &str) -> Result<Option<bool>, RedirectError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, v)) = cache.runs.get(run)
            && self.fresh(*at)
        {
            return Ok(*v);
        }
        let v = match self.migrations.run(run).await? {
            Some(r) if r.source != self.settings.source => None,
            Some(r) => Some(r.verified),
            None => Some(false),
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.runs.insert(run.to_owned(), (self.clock.now(), v));
        }
        Ok(v)
    }

    /// What the platform knows of the file `path` became (only asked under a switched prefix).
    async fn migrated(&self, path: &str) -> Result<Option<Migrated>, RedirectError> {
        let Some(mapping) = self.migrations.mapping(path).await? else { return Ok(None) };
        // Another source's file is none of this one's: its old URL is not migrated here.
        let Some(verified) = self.run_verified(&mapping.run).await? else { return Ok(None) };
        let row = self.migrations.file(mapping.file_id).await?;
        Ok(Some(match row {
            Some(r) => Migrated {
                original_may_be_missing: matbakh_core::location::public_copy_may_be_withheld(
                    r.content_type.as_str(),
                    r.size,
                ),
                file_id: r.file_id,
                key: r.key,
                status: Some(r.status),
                visibility: r.labels.visibility,
                verified,
            },
            None => Migrated {
                file_id: mapping.file_id,
                key: matbakh_core::ids::ObjectKey::from_stored(mapping.key),
                status: None,
                visibility: Default::default(),
                verified,
                original_may_be_missing: false,
            },
        }))
    }

    /// The answer to `method` of the old URL `uri`.
    pub async fn serve(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
        if method != Method::GET && method != Method::HEAD {
            return error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "old URLs are read with GET or HEAD");
        }
        let path = match redirect::legacy_path(uri.path(), &self.settings.url_prefix) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_path", &e.to_string()),
        };
        match self.decide(method, uri, headers, &path).await {
            Ok((resp, served)) => {
                let at = iso_millis(self.clock.now());
                if let Err(e) = self.migrations.count(&self.settings.source, &at, served, &path).await {
                    // The answer stands; only the day's counter misses it (the metric line has it).
                    tracing::error!(error = %e, "could not count the answer");
                }
                let (name, bytes) = match served {
                    Served::Fallback { bytes } => ("LegacyFallbacks", bytes),
                    Served::Redirect => ("LegacyRedirects", 0),
                    Served::Gone => ("LegacyGone", 0),
                    Served::LargeRedirect => ("LegacyLargeRedirects", 0),
                };
                metrics::emit(
                    "legacy_redirect",
                    &[(name, 1, Unit::Count), ("LegacyFallbackBytes", bytes, Unit::Bytes)],
                );
                resp
            }
            Err(e) => {
                tracing::error!(error = %e, %path, "no answer");
                let code = match e {
                    RedirectError::Origin(_) => "legacy_origin_unavailable",
                    RedirectError::Tables(_) => "unavailable",
                };
                error(StatusCode::BAD_GATEWAY, code, &e.to_string())
            }
        }
    }

    async fn decide(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        path: &str,
    ) -> Result<(Response, Served), RedirectError> {
        let switches = self.switches().await?;
        // Under a switched prefix the erased mark and the mapping are read at once (one round
        // trip less per redirect); an erased path's mapping is never used.
        let (erased, migrated) = match switches.of(path) {
            Switch::Platform => {
                let (erased, migrated) = tokio::join!(self.migrations.erased(path), self.migrated(path));
                let erased = erased?;
                (erased, if erased { None } else { migrated? })
            }
            Switch::Legacy => (self.migrations.erased(path).await?, None),
        };
        match redirect::answer(path, &switches, erased, migrated.as_ref(), &self.settings.home) {
            Answer::Redirect(url) => {
                tracing::info!(%path, %url, "redirected");
                let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
                let h = resp.headers_mut();
                h.insert(header::LOCATION, value(&url));
                h.insert(header::CACHE_CONTROL, value(&format!("public, max-age={REDIRECT_MAX_AGE_SECONDS}")));
                h.insert("x-legacy-answer", HeaderValue::from_static("redirect"));
                Ok((resp, Served::Redirect))
            }
            Answer::Gone => {
                tracing::info!(%path, "gone from the platform");
                let mut resp = error(StatusCode::GONE, "gone", "this file was deleted");
                resp.headers_mut().insert("x-legacy-answer", HeaderValue::from_static("gone"));
                Ok((resp, Served::Gone))
            }
            Answer::Fallback(reason) => {
                // The legacy file the answer was decided for, in one spelling (review 26: the
                // viewer's own could name another file to the origin, `;parameter` on a Java
                // server, and skip an erased path's 410).
                let spelled = matbakh_core::cdn::edge_path(path);
                let rest = spelled.trim_start_matches('/');
                let pq = match uri.query() {
                    Some(q) => format!("{rest}?{q}"),
                    None => rest.to_owned(),
                };
                let fetched = self.origin.fetch(method, &pq, headers, self.settings.fallback_max_bytes).await?;
                tracing::info!(%path, reason = reason.as_str(), "read from the legacy store");
                let answer = HeaderValue::from_str(&format!("legacy; {}", reason.as_str()))
                    .unwrap_or(HeaderValue::from_static("legacy"));
                Ok(match fetched {
                    Fetched::Answer { status, headers, body } => {
                        let bytes = body.len() as u64;
                        let mut resp = Response::new(Body::from(body));
                        *resp.status_mut() = status;
                        let origin = headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok());
                        let cache = value(&reason.cache_control(origin));
                        *resp.headers_mut() = headers;
                        let h = resp.headers_mut();
                        h.remove(header::EXPIRES);
                        h.insert(header::CACHE_CONTROL, cache);
                        h.insert("x-legacy-answer", answer);
                        (resp, Served::Fallback { bytes })
                    }
                    Fetched::TooLarge { url } => {
                        let mut resp = StatusCode::FOUND.into_response();
                        let h = resp.headers_mut();
                        h.insert(header::LOCATION, value(&url));
                        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                        h.insert("x-legacy-answer", answer);
                        (resp, Served::LargeRedirect)
                    }
                })
            }
        }
    }
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

/// A JSON error body (`{error, message}`), never cached.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = (status, axum::Json(json!({ "error": code, "message": message }))).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Every path is an old URL: one handler, one span per request.
pub fn router(redirector: Arc<Redirector>) -> Router {
    Router::new().fallback(handle).with_state(redirector)
}

async fn handle(State(r): State<Arc<Redirector>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let span = tracing::info_span!("legacy_redirect", method = %method, path = %uri.path());
    async move { r.serve(&method, &uri, &headers).await }.instrument(span).await
}
