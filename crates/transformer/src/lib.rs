//! `transformer`: imgproxy-compatible, signed image URLs, computed once and kept in S3.
//!
//! Triggered by HTTP (a Lambda function URL behind CloudFront; the results prefix in S3 is the
//! origin CloudFront tries first, at the key the CloudFront Function in `template.yaml` computed;
//! the signed path then arrives in `x-transform-path`). `GET /{signature}/{options}/{source}`:
//! 1. the URL is parsed and its signature checked (`core::imgproxy`): 400 bad options, 403 bad
//!    or expired signature or a source outside the allow-list;
//! 2. the source's HEAD gives its ETag (404 if it is gone). A source under `users/` is a user's
//!    file, and a key takes exactly one accepted object (DECISIONS 28): its file row (the file id
//!    in `users/{sub}/{fileId}/{name}`) must be READY, name that key and have pinned a version,
//!    and exactly that version is read, never the key's current object (a presigned upload used
//!    again puts another version there until the indexer removes it). No such row, another
//!    state, no pinned version, or a `users/` key that is no file's: 404, nothing stored.
//!    Sources under other allowed prefixes (`TRANSFORM_SOURCE_PREFIXES`; the template sets none)
//!    have no file row: their current object is read, and a new version of one makes a new
//!    result;
//! 3. the output format is the URL's, or chosen from `Accept` (AVIF > WebP > JPEG, PNG for
//!    alpha); the result key is `results/{source key}/{encoder}/{canonical options}.{ext}`;
//! 4. `If-None-Match` with the result's ETag (derived from that key and the source's ETag and
//!    version) is a 304; a stored result made from that very source (its ETag and version id)
//!    is served; otherwise the source is read, transformed (`imaging::transform`: imgproxy's
//!    whole open-source option set), or taken as it is (`raw`, or `skp` naming its format),
//!    stored with the source ETag and version it was made from and the `Content-Disposition`
//!    of `fn`/`att`, and served. A result over
//!    `TRANSFORM_MAX_INLINE_BYTES` (Lambda's 6 MB response limit, less base64) is answered with a
//!    redirect to a short-lived presigned GET of it: never 413.
//!
//! Reads: sources under the allowed prefixes, results, file rows (`TABLE_NAME`, `GetItem` only).
//! Writes: results. Errors are JSON with an `X-Error-Reason` header and `Cache-Control: no-store`.
//!
//! Deployed, the signing key/salt pairs come from the Secrets Manager secret `TRANSFORM_SECRET_ID`
//! (read at start and again every `TRANSFORM_SECRET_REFRESH_SECONDS`, so a rotation reaches running
//! instances); `TRANSFORM_KEYS`/`TRANSFORM_SALTS` in the environment are for local use only.

pub mod memory;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use aws_config::SdkConfig;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use matbakh_aws::AwsError;
use matbakh_aws::s3::{ObjectHead, S3Store};
use matbakh_aws::table::FileTable;
use matbakh_core::clock::{Clock, SystemClock};
use matbakh_core::ids::ObjectKey;
use matbakh_core::imgproxy::{Options, OutputChoice, Presets, SigningKeys, SourcePolicy, TransformUrl, UrlError};
use matbakh_core::limits::setting;
use matbakh_core::metadata::FileStatus;
use matbakh_core::names::{DisplayName, content_disposition};
use matbakh_core::types::ContentType;
use matbakh_imaging::transform::{DEFAULT_MAX_DPR, DEFAULT_MAX_OUTPUT_SIDE, ENCODER_VERSION, Pipeline};
use matbakh_imaging::{DEFAULT_QUALITY, ImageError, ImageLimits, Pixels, Quality};
use matbakh_lambda::metrics::{self, Unit};
use serde_json::json;
use tracing::Instrument;

/// Largest result answered in the response body (`TRANSFORM_MAX_INLINE_BYTES`): Lambda's 6 MB
/// buffered response, less base64's third and the headers. Larger results are redirected.
pub const DEFAULT_MAX_INLINE_BYTES: u64 = 4 * 1024 * 1024;
/// How long a redirect to a large result stays valid (`TRANSFORM_REDIRECT_TTL_SECONDS`).
pub const DEFAULT_REDIRECT_TTL: Duration = Duration::from_secs(300);
/// Key prefixes of the platform bucket that may be transformed (`TRANSFORM_SOURCE_PREFIXES`).
pub const DEFAULT_SOURCE_PREFIXES: &str = "users/";
/// Where users' files live: a source here is read at its file's accepted version only.
const USER_FILES: &str = "users/";
/// How long key/salt pairs read from Secrets Manager are used before the secret is read again
/// (`TRANSFORM_SECRET_REFRESH_SECONDS`): the longest a running instance refuses a new pair.
pub const DEFAULT_SECRET_REFRESH: Duration = Duration::from_secs(300);

/// Settings with named defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_output_side: u32,
    pub max_dpr: f64,
    pub max_inline_bytes: u64,
    pub redirect_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_output_side: DEFAULT_MAX_OUTPUT_SIDE,
            max_dpr: DEFAULT_MAX_DPR,
            max_inline_bytes: DEFAULT_MAX_INLINE_BYTES,
            redirect_ttl: DEFAULT_REDIRECT_TTL,
        }
    }
}

/// A user's file as the transformer may read it: its accepted version, and whether it is
/// public (what a URL without an expiry needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub version: String,
    pub public: bool,
}

/// What the transformer needs of the bucket and the file rows: [`Platform`] in Lambda,
/// [`memory::MemoryStore`] in tests and the benchmark (which measures the origin without S3's
/// latency).
pub trait Store: Send + Sync + 'static {
    fn bucket_name(&self) -> &str;
    /// The HEAD of `version` of `key` (the current object if `None`), `None` if there is none.
    fn head(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Option<ObjectHead>, AwsError>> + Send;
    /// The bytes of `version` of `key` (the current object if `None`), `None` if there are none.
    fn get(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, AwsError>> + Send;
    /// The version of `key` accepted as its file (DECISIONS 28), and whether the file is
    /// public: the file row of the key's file id is READY, names this key and has pinned a
    /// version. `None` otherwise (no such row, another state, nothing pinned, a key that is no
    /// file's).
    fn accepted(&self, key: &ObjectKey) -> impl Future<Output = Result<Option<Accepted>, AwsError>> + Send;
    /// Stores a result with its type, its `Content-Disposition` (`fn`, `att`) and what it was
    /// made from.
    fn put_result(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        content_type: &str,
        disposition: Option<&str>,
        metadata: &[(&str, &str)],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// A short-lived URL that serves `key` (a result too large to answer inline).
    fn presign_get(
        &self,
        key: &ObjectKey,
        now: time::OffsetDateTime,
        ttl: Duration,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
}

/// The platform bucket, and the file rows that say which version of a user's key is the file.
#[derive(Debug, Clone)]
pub struct Platform {
    pub bucket: S3Store,
    pub files: FileTable,
}

impl Platform {
    /// The bucket `BUCKET_NAME` and the table `TABLE_NAME`, both required.
    pub fn from_lookup(sdk: &SdkConfig, env: impl Fn(&str) -> Option<String>) -> Result<Platform, String> {
        let settings = matbakh_aws::Settings::from_lookup(env).map_err(|e| e.to_string())?;
        let bucket =
            S3Store::new(sdk, &settings.bucket, settings.s3_public_endpoint.as_deref()).map_err(|e| e.to_string())?;
        Ok(Platform { bucket, files: FileTable::new(sdk, settings.table) })
    }
}

impl Store for Platform {
    fn bucket_name(&self) -> &str {
        self.bucket.bucket()
    }

    async fn head(&self, key: &ObjectKey, version: Option<&str>) -> Result<Option<ObjectHead>, AwsError> {
        self.bucket.head_object(key, version).await
    }

    async fn get(&self, key: &ObjectKey, version: Option<&str>) -> Result<Option<Vec<u8>>, AwsError> {
        Ok(self.bucket.get_object(key, version).await?.map(|(bytes, _)| bytes))
    }

    async fn accepted(&self, key: &ObjectKey) -> Result<Option<Accepted>, AwsError> {
        let Some(id) = ObjectKey::file_id_of(key.as_str()) else { return Ok(None) };
        let row = self.files.get_file(id).await?.filter(|r| r.status == FileStatus::Ready && r.key == *key);
        Ok(row.and_then(|r| {
            let public = r.labels.visibility == matbakh_core::labels::Visibility::Public;
            Some(Accepted { version: r.version_id?, public })
        }))
    }

    async fn put_result(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        ct: &str,
        disposition: Option<&str>,
        meta: &[(&str, &str)],
    ) -> Result<(), AwsError> {
        self.bucket.put_result(key, bytes, ct, disposition, meta).await
    }

    async fn presign_get(&self, key: &ObjectKey, now: time::OffsetDateTime, ttl: Duration) -> Result<String, AwsError> {
        Ok(self.bucket.presign_get(key, now, ttl).await?.url)
    }
}

/// The key/salt pairs URLs are checked against: fixed (from the environment, local use), or from
/// a Secrets Manager secret, read again once `refresh` has passed since the last read.
pub struct Keys {
    /// The pairs and when they were read (unix seconds; `None` until the first request).
    current: RwLock<(Arc<SigningKeys>, Option<i64>)>,
    secret: Option<(SdkConfig, String, Duration)>,
}

impl Keys {
    pub fn fixed(keys: SigningKeys) -> Keys {
        Keys { current: RwLock::new((Arc::new(keys), None)), secret: None }
    }

    /// The pairs in secret `id`, read now (an error if it cannot be read or holds none).
    pub async fn from_secret(sdk: SdkConfig, id: &str, refresh: Duration) -> Result<Keys, String> {
        let keys = matbakh_aws::secrets::transform_keys(&sdk, id).await?;
        Ok(Keys { current: RwLock::new((Arc::new(keys), None)), secret: Some((sdk, id.to_owned(), refresh)) })
    }

    fn is_empty(&self) -> bool {
        self.current.read().unwrap_or_else(PoisonError::into_inner).0.is_empty()
    }

    /// The pairs to check a request of `now` (unix seconds) with. A secret that cannot be read
    /// again, or holds no pair, leaves the last pairs in use (never none: that would be unsigned).
    pub async fn at(&self, now: i64) -> Arc<SigningKeys> {
        let (keys, read_at) = self.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        let due = |(_, _, refresh): &(SdkConfig, String, Duration)| {
            read_at.is_some_and(|t| now.saturating_sub(t) >= i64::try_from(refresh.as_secs()).unwrap_or(i64::MAX))
        };
        let keys = match &self.secret {
            Some(secret @ (sdk, id, _)) if due(secret) => match matbakh_aws::secrets::transform_keys(sdk, id).await {
                Ok(fresh) => Arc::new(fresh),
                Err(e) => {
                    tracing::error!(error = %e, "reading the signing keys again failed; the last ones stay");
                    keys
                }
            },
            _ if read_at.is_some() => return keys,
            _ => keys,
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (keys.clone(), Some(now));
        keys
    }
}

/// The function's state, built once.
pub struct Transformer<S: Store = Platform> {
    pub store: S,
    /// Empty only when unsigned URLs are allowed (local development).
    pub keys: Keys,
    pub presets: Presets,
    pub sources: SourcePolicy,
    pub limits: ImageLimits,
    pub quality: Quality,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    /// The image `wm` lays over results (`TRANSFORM_WATERMARK_KEY`, read once at start).
    pub watermark: Option<Arc<Pixels>>,
}

impl Transformer<Platform> {
    /// From the environment: `BUCKET_NAME`, `TABLE_NAME` (the file rows), the signing pairs from the secret `TRANSFORM_SECRET_ID`
    /// (deployed) or `TRANSFORM_KEYS` + `TRANSFORM_SALTS` (hex, comma-separated; local use), one
    /// of them required unless `TRANSFORM_ALLOW_UNSIGNED=true`, `TRANSFORM_PRESETS` (unsigned
    /// only), `TRANSFORM_SOURCE_PREFIXES`, `TRANSFORM_WATERMARK_KEY` (an image in the bucket), the
    /// image limits, and the settings above.
    pub async fn from_env() -> Result<Transformer, String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let sdk = matbakh_aws::config::load_sdk_config().await;
        let store = Platform::from_lookup(&sdk, env)?;
        let watermark = match env("TRANSFORM_WATERMARK_KEY") {
            Some(key) => {
                let bytes =
                    Store::get(&store, &ObjectKey::from_stored(key.clone()), None).await.map_err(|e| e.to_string())?;
                Some(bytes.ok_or_else(|| format!("TRANSFORM_WATERMARK_KEY: no object {key}"))?)
            }
            None => None,
        };
        let t = match env("TRANSFORM_SECRET_ID") {
            Some(_) => Transformer::from_secret(store, sdk, env).await?,
            None => Transformer::from_lookup(store, env)?,
        };
        match watermark {
            Some(bytes) => t.with_watermark(&bytes),
            None => Ok(t),
        }
    }
}

impl<S: Store> Transformer<S> {
    /// `store` with the settings and the signing pairs (`TRANSFORM_KEYS`, `TRANSFORM_SALTS`) read
    /// from `env` (see [`Transformer::from_env`]).
    pub fn from_lookup(store: S, env: impl Fn(&str) -> Option<String>) -> Result<Transformer<S>, String> {
        if env("TRANSFORM_SECRET_ID").is_some() {
            return Err(
                "TRANSFORM_SECRET_ID: the signing keys are in Secrets Manager (Transformer::from_secret)".into()
            );
        }
        let keys = SigningKeys::from_hex(
            &env("TRANSFORM_KEYS").unwrap_or_default(),
            &env("TRANSFORM_SALTS").unwrap_or_default(),
        )?;
        Transformer::build(store, Keys::fixed(keys), env)
    }

    /// `store` with the settings read from `env` and the signing pairs from the secret
    /// `TRANSFORM_SECRET_ID` (read through `sdk` now, and again every
    /// `TRANSFORM_SECRET_REFRESH_SECONDS`).
    pub async fn from_secret(
        store: S,
        sdk: SdkConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Transformer<S>, String> {
        let id = env("TRANSFORM_SECRET_ID").ok_or("TRANSFORM_SECRET_ID is required")?;
        if env("TRANSFORM_KEYS").is_some() || env("TRANSFORM_SALTS").is_some() {
            return Err("TRANSFORM_SECRET_ID with TRANSFORM_KEYS/TRANSFORM_SALTS: pick one".into());
        }
        let refresh = setting(&env, "TRANSFORM_SECRET_REFRESH_SECONDS", DEFAULT_SECRET_REFRESH.as_secs())?;
        let keys = Keys::from_secret(sdk, &id, Duration::from_secs(refresh)).await?;
        Transformer::build(store, keys, env)
    }

    fn build(store: S, keys: Keys, env: impl Fn(&str) -> Option<String>) -> Result<Transformer<S>, String> {
        let unsigned = env("TRANSFORM_ALLOW_UNSIGNED").as_deref() == Some("true");
        if keys.is_empty() && !unsigned {
            return Err(
                "TRANSFORM_SECRET_ID (or TRANSFORM_KEYS and TRANSFORM_SALTS) required (TRANSFORM_ALLOW_UNSIGNED=true only locally)"
                    .into(),
            );
        }
        if !keys.is_empty() && unsigned {
            return Err("TRANSFORM_ALLOW_UNSIGNED=true with signing keys: pick one".into());
        }
        let presets = Presets::parse(&env("TRANSFORM_PRESETS").unwrap_or_default())?;
        // The CDN cannot expand presets (its function refuses `pr:` like any unknown option), and a
        // `default` preset would change every result key: behind it, one grammar means none.
        if !presets.is_empty() && !keys.is_empty() {
            return Err("TRANSFORM_PRESETS: presets work only unsigned, without the CDN (which refuses pr:)".into());
        }
        let prefixes = env("TRANSFORM_SOURCE_PREFIXES").unwrap_or_else(|| DEFAULT_SOURCE_PREFIXES.into());
        let bucket = store.bucket_name().to_owned();
        let allowed =
            prefixes.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|p| (bucket.clone(), p.to_owned()));
        let sources = SourcePolicy { default_bucket: bucket.clone(), allowed: allowed.collect() };
        let limits = ImageLimits::from_lookup(&env).map_err(|e| e.to_string())?;
        let d = Settings::default();
        let settings = Settings {
            max_output_side: setting(&env, "TRANSFORM_MAX_OUTPUT_SIDE", d.max_output_side)?,
            max_dpr: setting(&env, "TRANSFORM_MAX_DPR", d.max_dpr)?,
            max_inline_bytes: setting(&env, "TRANSFORM_MAX_INLINE_BYTES", d.max_inline_bytes)?,
            redirect_ttl: Duration::from_secs(setting(
                &env,
                "TRANSFORM_REDIRECT_TTL_SECONDS",
                d.redirect_ttl.as_secs(),
            )?),
        };
        Ok(Transformer {
            store,
            keys,
            presets,
            sources,
            limits,
            quality: DEFAULT_QUALITY,
            settings,
            clock: Arc::new(SystemClock),
            watermark: None,
        })
    }

    /// Uses the image in `bytes` (any format the pipeline reads; PNG keeps its transparency) as
    /// the watermark `wm` lays over results.
    pub fn with_watermark(mut self, bytes: &[u8]) -> Result<Transformer<S>, String> {
        let image = matbakh_imaging::load(bytes, &self.limits, u32::MAX).map_err(|e| format!("the watermark: {e}"))?;
        self.watermark = Some(Arc::new(image.pixels));
        Ok(self)
    }
}

/// Why a request got no image.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("no such source image")]
    SourceMissing,
    #[error("dpr {0} is over the limit of {1}")]
    DprTooLarge(f64, f64),
    #[error("{0}")]
    Image(#[from] ImageError),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl TransformError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            TransformError::Url(e) => (StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST), e.code()),
            TransformError::SourceMissing => (StatusCode::NOT_FOUND, "source_not_found"),
            TransformError::DprTooLarge(..) => (StatusCode::UNPROCESSABLE_ENTITY, "over_limit"),
            TransformError::Image(ImageError::Resize(_) | ImageError::Encode(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "transform_failed")
            }
            TransformError::Image(ImageError::Unsupported(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported"),
            TransformError::Image(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_image"),
            TransformError::Aws(e) if e.is_retryable() => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            TransformError::Aws(_) => (StatusCode::BAD_GATEWAY, "storage_error"),
        }
    }
}

impl IntoResponse for TransformError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "transform failed");
            "something went wrong on our side".to_owned()
        } else {
            tracing::info!(reason = code, error = %self, "refused");
            self.to_string()
        };
        let mut r = (status, axum::Json(json!({ "error": code, "message": message }))).into_response();
        let h = r.headers_mut();
        h.insert("x-error-reason", HeaderValue::from_static(code));
        // Never cached long: the fix (a new signature, a smaller dpr, the source uploaded) must show.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

/// The HTTP surface: every path is a transform URL.
pub fn router<S: Store>(t: Arc<Transformer<S>>) -> Router {
    Router::new().fallback(serve::<S>).with_state(t)
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn serve<S: Store>(
    State(t): State<Arc<Transformer<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({"error": "method_not_allowed", "message": "GET only"})),
        )
            .into_response();
    }
    let started = std::time::Instant::now();
    let span = tracing::info_span!("transform", path_len = uri.path().len(), outcome = tracing::field::Empty);
    // Behind CloudFront the function rewrote the path to the result key it tried in S3 first; the
    // signed path it kept is the request (its signature is checked like any other).
    let path = match headers.get("x-transform-path").and_then(|v| v.to_str().ok()) {
        Some(signed) if uri.path().starts_with("/results/") => signed.to_owned(),
        _ => uri.path().to_owned(),
    };
    let answer = match transform(&t, &path, &headers).instrument(span.clone()).await {
        Ok(answer) => answer,
        Err(e) => return span.in_scope(|| e.into_response()),
    };
    span.record("outcome", answer.outcome.metric());
    metrics::emit(
        "transform",
        &[
            (answer.outcome.metric(), 1, Unit::Count),
            ("Milliseconds", started.elapsed().as_millis() as u64, Unit::Milliseconds),
        ],
    );
    answer.response
}

struct Answer {
    response: Response,
    outcome: Served,
}

/// How a request was answered; counted as the metric of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// `If-None-Match` named the result's ETag: 304.
    NotModified,
    /// A stored result made from this very source.
    Stored,
    /// Transformed now, and stored.
    Computed,
    /// Too large to answer inline: a redirect to a presigned GET.
    Redirected,
}

impl Served {
    fn metric(self) -> &'static str {
        match self {
            Served::NotModified => "NotModified",
            Served::Stored => "Stored",
            Served::Computed => "Computed",
            Served::Redirected => "Redirected",
        }
    }
}

async fn transform<S: Store>(t: &Transformer<S>, path: &str, headers: &HeaderMap) -> Result<Answer, TransformError> {
    let now = t.clock.now();
    let keys = t.keys.at(now.unix_timestamp()).await;
    let url = TransformUrl::parse(path, &keys, &t.presets, &t.sources, now.unix_timestamp())?;
    if url.options.dpr > t.settings.max_dpr {
        return Err(TransformError::DprTooLarge(url.options.dpr, t.settings.max_dpr));
    }
    let source_key = &url.source.key;
    // A user's file is its accepted version, never whatever the key holds now (DECISIONS 28).
    // A URL that never expires is one a public file's image URLs hand out: once the file is
    // private it serves nothing, as for a file that is gone (a private file's URLs expire).
    let version = if source_key.as_str().starts_with(USER_FILES) {
        let accepted = t.store.accepted(source_key).await?.ok_or(TransformError::SourceMissing)?;
        if !url.options.expiring() && !accepted.public {
            return Err(TransformError::SourceMissing);
        }
        Some(accepted.version)
    } else {
        None
    };
    let source = t.store.head(source_key, version.as_deref()).await?.ok_or(TransformError::SourceMissing)?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let output = OutputChoice::new(&url, accept);
    let key = url.result_key(ENCODER_VERSION, output);
    let etag = result_etag(&key, &source);
    if if_none_match(headers, &etag) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        image_headers(r.headers_mut(), &etag, None);
        return Ok(Answer { response: r, outcome: Served::NotModified });
    }
    // What a result records it was made from; a stored result made from anything else is not it.
    let (source_etag, source_version) = (tag(&source), source.version_id.clone().unwrap_or_default());
    let made_from_source = |s: &ObjectHead| {
        let recorded = |name: &str| s.metadata.get(name).map_or("", String::as_str);
        recorded("source-etag") == source_etag && recorded("source-version") == source_version
    };
    if let Some(stored) = t.store.head(&key, None).await?.filter(made_from_source) {
        if stored.size > t.settings.max_inline_bytes {
            return redirect(t, &key, now).await;
        }
        if let Some(bytes) = t.store.get(&key, None).await? {
            let ct = stored.content_type.unwrap_or_else(|| "application/octet-stream".into());
            let disposition = stored.content_disposition.as_deref();
            return Ok(Answer { response: image(bytes, &ct, disposition, &etag, "stored"), outcome: Served::Stored });
        }
    }
    if source.size > t.limits.max_bytes {
        return Err(ImageError::TooManyBytes { size: source.size, limit: t.limits.max_bytes }.into());
    }
    let bytes = t.store.get(source_key, version.as_deref()).await?.ok_or(TransformError::SourceMissing)?;
    let (bytes, ct) = match untouched(&url.options, &bytes, output) {
        // `raw`, or `skp` for this source's format: the source as it is, under its own type.
        Some(detected) => {
            let ct = detected.or(source.content_type.as_deref()).unwrap_or("application/octet-stream").to_owned();
            (bytes, ct)
        }
        None => {
            let (options, limits, quality) = (url.options.clone(), t.limits, t.quality);
            let (side, watermark) = (t.settings.max_output_side, t.watermark.clone());
            let result = tokio::task::spawn_blocking(move || {
                let pipeline =
                    Pipeline { limits: &limits, max_side: side, quality: &quality, watermark: watermark.as_deref() };
                matbakh_imaging::transform::run(&bytes, &options, output, &pipeline)
            })
            .await
            .unwrap_or_else(|e| Err(ImageError::Encode(format!("the transform task ended: {e}"))))?;
            tracing::info!(width = result.width, height = result.height, bytes = result.bytes.len(), "computed");
            (result.bytes, result.format.content_type().to_owned())
        }
    };
    let disposition = disposition(&url, &ct);
    let size = bytes.len() as u64;
    let made_from = [("source-etag", source_etag.as_str()), ("source-version", source_version.as_str())];
    t.store.put_result(&key, bytes.clone(), &ct, disposition.as_deref(), &made_from).await?;
    if size > t.settings.max_inline_bytes {
        return redirect(t, &key, now).await;
    }
    Ok(Answer { response: image(bytes, &ct, disposition.as_deref(), &etag, "computed"), outcome: Served::Computed })
}

/// Whether the source is answered as it is: `raw`, or `skp` naming the source's format while the
/// URL asks for no other format (imgproxy: skipped when the output format is unset or the
/// same). `Some(type)` then, the type read from the bytes where they are an image.
fn untouched(o: &Options, bytes: &[u8], output: OutputChoice) -> Option<Option<&'static str>> {
    use matbakh_imaging::Format as F;
    let detected = matbakh_imaging::format_of(bytes).ok().map(|f| match f {
        F::Jpeg => ("jpg", "image/jpeg"),
        F::Png => ("png", "image/png"),
        F::Gif => ("gif", "image/gif"),
        F::WebP => ("webp", "image/webp"),
        F::Avif => ("avif", "image/avif"),
    });
    if o.raw {
        return Some(detected.map(|(_, ct)| ct));
    }
    let (name, ct) = detected?;
    let skipped = o.skip_processing.iter().any(|s| s.name() == name);
    let same = match output {
        OutputChoice::Explicit(f) => f.extension() == name,
        OutputChoice::Negotiated(_) => true,
    };
    (skipped && same).then_some(Some(ct))
}

/// `Content-Disposition` for `fn` and `att` (RFC 6266 with an ASCII fallback, the extension of
/// the type served): the name given, else the source's file name; `None` when neither is asked.
fn disposition(url: &TransformUrl, content_type: &str) -> Option<String> {
    let o = &url.options;
    if o.filename.is_none() && !o.return_attachment {
        return None;
    }
    let source_name = url.source.key.as_str().rsplit('/').next().unwrap_or_default();
    let stem = |n: &str| n.rsplit_once('.').map_or(n, |(stem, _)| stem).to_owned();
    let name = o.filename.clone().unwrap_or_else(|| stem(source_name));
    let name = DisplayName::parse(&name).unwrap_or_else(|_| DisplayName::from_stored("image".into()));
    let ty = ContentType::parse(content_type).ok()?;
    Some(content_disposition(&name, ty, !o.return_attachment))
}

/// The source's ETag, or its version id, or nothing (then results are never reused).
fn tag(source: &ObjectHead) -> String {
    source.etag.clone().or_else(|| source.version_id.clone()).unwrap_or_default()
}

/// A strong ETag naming the result of `key` made from this version of the source.
fn result_etag(key: &ObjectKey, source: &ObjectHead) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [key.as_str(), "\n", &tag(source), "\n", source.version_id.as_deref().unwrap_or("")] {
        ctx.update(part.as_bytes());
    }
    format!("\"{}\"", hex::encode(&ctx.finish().as_ref()[..16]))
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').map(str::trim).any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
    })
}

fn image_headers(h: &mut HeaderMap, etag: &str, content_type: Option<&str>) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(ct).ok()) {
        h.insert(header::CONTENT_TYPE, ct);
    }
}

fn image(bytes: Vec<u8>, content_type: &str, disposition: Option<&str>, etag: &str, from: &'static str) -> Response {
    let mut r = Response::new(Body::from(bytes));
    image_headers(r.headers_mut(), etag, Some(content_type));
    if let Some(v) = disposition.and_then(|d| HeaderValue::from_str(d).ok()) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r.headers_mut().insert("x-result", HeaderValue::from_static(from));
    r
}

/// A result too large for a buffered Lambda response: a short-lived presigned GET of it.
async fn redirect<S: Store>(
    t: &Transformer<S>,
    key: &ObjectKey,
    now: time::OffsetDateTime,
) -> Result<Answer, TransformError> {
    let signed = t.store.presign_get(key, now, t.settings.redirect_ttl).await?;
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&signed) {
        h.insert(header::LOCATION, v);
    }
    // The presigned URL expires: the redirect itself must not be kept.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(Answer { response: r, outcome: Served::Redirected })
}

#[cfg(test)]
mod tests;
