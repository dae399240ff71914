//! `files-api`: the caller's own files.
//!
//! Triggered by API Gateway (HTTP API, JWT authorizer):
//! - `GET /v1/files`: newest first (or by name or size), paged by an opaque cursor, filtered by
//!   content type, status, tag and upload date, searched by `q=` (word prefixes, case- and
//!   accent-insensitive). Served from DynamoDB indexes, never a scan.
//! - `GET /v1/files/{fileId}`: metadata, variants with URLs, placeholder, EXIF summary.
//! - `PATCH /v1/files/{fileId} {name?, addTags?, removeTags?, visibility?, metadata?}`: made
//!   public, a READY file's original and variants are copied to `p/{fileId}/` for the files
//!   CDN (an original over 1 GiB is copied in parts by the thumbnailer, as its copy could
//!   outlast this request: the notifier asks for it when the row says public); made private (or
//!   deleted), the copies go before the answer and the CDN is told to
//!   forget `/p/{fileId}/*` ([`matbakh_app::delivery`]).
//! - `POST /v1/files/{fileId}/image-urls {presets?, widths?, format?}`: signed transform URLs
//!   and a `srcset` per preset and format ([`matbakh_app::images`]).
//! - `DELETE /v1/files/{fileId}`: soft delete (an S3 delete marker; the row is `DELETED`).
//! - `POST /v1/files/{fileId}/restore`: within the restore window, the marker goes and the row
//!   is `READY` again (counted in usage again).
//! - `POST /v1/files/{fileId}/archive`: tags a READY file's original for the archive tier (the
//!   bucket's lifecycle moves it within a day; the row becomes `ARCHIVED` when S3 says so).
//!   `POST /v1/files/{fileId}/unarchive {tier}`: starts S3's restore of an `ARCHIVED` file (the
//!   row is `RESTORING` with the tier's promised time, `READY` when the copy is there)
//!   ([`matbakh_app::archival`]).
//! - `GET /v1/public/{userId}/files` (no login): a user's public READY (or archived) files with their stable
//!   files-CDN URLs only, for a public page.
//! - `GET /v1/me`: the caller's id and whether they are an administrator (`ADMIN_USERS`).
//! - `GET /v1/me/usage`: bytes used and reserved, quota, file count.
//! - `GET /v1/me/audit`: the caller's audit trail.
//! - `GET /v1/openapi.json`: the whole HTTP API's OpenAPI 3.1 document (no login).
//!
//! Someone else's file answers exactly like a missing one (404) on every route.
//!
//! Reads and writes: the metadata table (file rows, tag and word items, usage); in the bucket,
//! delete markers of `users/*`, the public copies `p/*`, and presigned GETs of variants when
//! no CDN serves them; invalidations at the files CDN (`FILES_DISTRIBUTION_ID`); messages to
//! the thumbnailer's queue (large originals to copy public). At start: the
//! files CDN's signing key (`FILES_CDN_SIGNING_SECRET_ID`, [`matbakh_aws::secrets::cdn_signer`]),
//! the transform signing pairs (`TRANSFORM_SECRET_ID`, or `TRANSFORM_KEYS`/`_SALTS`
//! locally), `TRANSFORM_BASE_URL` and `IMAGE_PRESETS` ([`image_signer`]).
//!
//! Each handler decodes the request, calls a use case of [`matbakh_app::files`] and encodes
//! its answer; [`router`] runs them on the deployment's table and bucket, [`routes`] on any
//! implementation of the ports (the in-memory ones in `src/tests.rs`).

use matbakh_core::archival::RestoreTier;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Json, Router};
use matbakh_api::audit::Client;
use matbakh_api::body::JsonObject;
use matbakh_api::{ApiError, Authenticator, Caller};
use matbakh_app::files::{Change, Files};
use matbakh_app::images::{Images, Signer, Wanted};
use matbakh_app::view::{FileView, Shown};
use matbakh_aws::Services;
use matbakh_core::audit::{DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::imgproxy::{Format, Presets, SigningKeys};
use matbakh_core::listing::{Cursor, ListQuery};
use matbakh_core::names::DisplayName;
use matbakh_lambda::metrics::{self, Unit};
use serde_json::{Value, json};

/// The use cases of the caller's files.
#[derive(Clone)]
pub struct Cases {
    pub files: Files,
    pub images: Images,
}

/// What the handlers use: the use cases and who may call them.
pub type Api = matbakh_api::Api<Cases>;

/// The function on the deployment's table and bucket, signing image URLs with `signer`.
pub fn router(services: Services, auth: Arc<Authenticator>, signer: Signer) -> Router {
    routes(Api { cases: Cases { files: services.files(), images: services.images(signer) }, auth })
}

/// The function as its `main` wires it from the environment (the local gateway's in-process
/// mode wires it the same way): the table and bucket, the files CDN's signing key and the
/// image URL signer, with `auth` saying who the caller is.
pub async fn from_env(auth: Arc<Authenticator>) -> Result<Router, String> {
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let cdn_signer = matbakh_aws::secrets::cdn_signer(&sdk, env).await?;
    let services = Services::from_env().await?.sign_with(cdn_signer);
    let signer = image_signer(&sdk, env).await?;
    Ok(router(services, auth, signer))
}

/// How image URLs are made here: `TRANSFORM_BASE_URL` (required: the CDN's transform path),
/// the signing pairs from the secret `TRANSFORM_SECRET_ID` (deployed) or `TRANSFORM_KEYS` +
/// `TRANSFORM_SALTS` (hex, local), and `IMAGE_PRESETS` (imgproxy's preset syntax; none: only
/// `plain`). A missing or bad one stops the function at start, naming it.
pub async fn image_signer(sdk: &aws_config::SdkConfig, env: impl Fn(&str) -> Option<String>) -> Result<Signer, String> {
    let base_url = env("TRANSFORM_BASE_URL")
        .filter(|u| u.starts_with("http"))
        .ok_or("TRANSFORM_BASE_URL is required: the URL image transforms are served at (https://{FilesDomain}/t)")?;
    let keys = match env("TRANSFORM_SECRET_ID") {
        Some(id) => matbakh_aws::secrets::transform_keys(sdk, &id).await?,
        None => SigningKeys::from_hex(
            &env("TRANSFORM_KEYS").unwrap_or_default(),
            &env("TRANSFORM_SALTS").unwrap_or_default(),
        )
        .map_err(|e| format!("TRANSFORM_KEYS/TRANSFORM_SALTS: {e}"))?,
    };
    if keys.is_empty() {
        return Err("TRANSFORM_SECRET_ID (or, locally, TRANSFORM_KEYS and TRANSFORM_SALTS) is required".into());
    }
    let presets =
        Presets::parse(&env("IMAGE_PRESETS").unwrap_or_default()).map_err(|e| format!("IMAGE_PRESETS: {e}"))?;
    Ok(Signer { base_url: base_url.trim_end_matches('/').to_owned(), keys: Arc::new(keys), presets })
}

/// The function on any implementation of the ports (in memory, in tests).
pub fn routes(api: Api) -> Router {
    matbakh_api::openapi::serve(served(), api)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    matbakh_api::openapi::part(documented())
}

/// The document of the whole HTTP API (`docs/openapi.json`, checked against the routers by
/// `tests/it/openapi.rs`), served here because any function could.
const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

matbakh_api::routes!(
    Api;
    list, show, update, remove, restore, archive, unarchive, image_urls, public_files, me, usage, audit_trail,
    openapi_json
);

/// This API's OpenAPI 3.1 document
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi_json", tag = "files-api", security(()),
    responses((status = 200, description = "The document", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")], OPENAPI_JSON)
}

/// A user's public files (no login)
///
/// The public READY (or archived) files of `userId`, newest first, as a public page shows them: name, type,
/// size in pixels, ThumbHash placeholder, the original's stable files-CDN URL (`url`; absent
/// while an archived file's original has no public copy, until its restore completes) and its
/// variants' (`variants`, `srcset` per type). Nothing private is listed and nothing but
/// stable CDN URLs is handed out. Answers `{files: [PublicFile], nextCursor}`; a page may hold
/// fewer files than others (it is filtered), `nextCursor` goes on.
#[utoipa::path(get, path = "/v1/public/{userId}/files", operation_id = "public_files", tag = "files-api", security(()),
    params(
        ("userId" = String, Path, description = "The user whose public files are listed"),
        ("cursor" = Option<String>, Query, description = "The `nextCursor` of the page before"),
    ),
    responses(
        (status = 200, description = "A page of public files"),
        (status = 400, description = "Not a user id, or another parameter than `cursor`"),
    ))]
#[tracing::instrument(name = "public_files", skip_all)]
async fn public_files(
    State(api): State<Api>,
    Path(raw_user): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let owner = UserId::parse(&raw_user).map_err(|_| ApiError::bad_field("userId", "userId: not a user id"))?;
    let mut cursor = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "cursor" if cursor.is_none() => cursor = Some(Cursor::decode(v)?),
            _ => return Err(ApiError::bad_field("query", format!("{k}: only cursor is a parameter here"))),
        }
    }
    let page = api.cases.files.public_page(&owner, cursor).await?;
    let body = Json(json!({ "files": page.files, "nextCursor": page.next.map(|c| c.encode()) }));
    Ok(body)
}

/// A file id from the path; one that cannot be an id is a file that does not exist.
fn file_id(raw: &str) -> Result<FileId, ApiError> {
    FileId::parse(raw).map_err(|_| ApiError::not_found("file"))
}

/// The caller's files, a page at a time
///
/// Newest first unless sorted otherwise; filtered by type, status, tag and upload date;
/// searched by words (each must start a word of the name, case- and accent-insensitive).
/// Answers `{files: [File], nextCursor}`; a file shows its variants with URLs and a `srcset`
/// per type when it is an image; a public READY file its stable CDN URL (`publicUrl`), and its
/// variants' URLs are stable too.
#[utoipa::path(get, path = "/v1/files", operation_id = "list_files", tag = "files-api",
    params(
        ("limit" = Option<u32>, Query, description = "Files in a page: 1 to 200, 50 by default"),
        ("cursor" = Option<String>, Query, description = "The `nextCursor` of the page before"),
        ("sort" = Option<String>, Query, description = "`date` (default), `name` or `size`"),
        ("order" = Option<String>, Query, description = "`asc` or `desc`"),
        ("contentType" = Option<String>, Query, description = "A type (`image/png`) or a family (`image/`)"),
        ("status" = Option<String>, Query, description = "`pending`, `ready`, `quarantined`, `failed` or `deleted`; all but deleted by default"),
        ("tag" = Option<String>, Query, description = "Only files with this tag"),
        ("from" = Option<String>, Query, description = "Uploaded at or after (a date or an RFC 3339 time)"),
        ("to" = Option<String>, Query, description = "Uploaded before"),
        ("q" = Option<String>, Query, description = "Search words, at most 5"),
    ),
    responses(
        (status = 200, description = "A page of files"),
        (status = 400, description = "A parameter is not valid (`field` names it)"),
        (status = 401, description = "No valid token"),
    ))]
#[tracing::instrument(name = "list_files", skip_all, fields(user = %caller.user))]
async fn list(
    State(api): State<Api>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&pairs)?;
    let page = api.cases.files.list(&caller.user, &q).await?;
    Ok(Json(json!({ "files": page.files, "nextCursor": page.next.map(|c| c.encode()) })))
}

/// One of the caller's files
///
/// Its metadata, variants with URLs, placeholder and EXIF summary; `publicUrl` when it is public.
#[utoipa::path(get, path = "/v1/files/{fileId}", operation_id = "show_file", tag = "files-api",
    params(("fileId" = String, Path, description = "The file's id")),
    responses(
        (status = 200, description = "The file"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such file of the caller's"),
    ))]
#[tracing::instrument(name = "show_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn show(State(api): State<Api>, caller: Caller, Path(raw_id): Path<String>) -> Result<Json<FileView>, ApiError> {
    Ok(Json(api.cases.files.show(&caller.user, file_id(&raw_id)?).await?))
}

/// Changes a file: its name, tags, visibility or metadata
///
/// Body `{name?, addTags?, removeTags?, visibility?, metadata?}`, at least one; removal wins
/// over addition; `visibility` is `private` or `public`; `metadata` (an object of strings)
/// replaces the file's metadata as a whole. Answers the file as it is now.
#[utoipa::path(patch, path = "/v1/files/{fileId}", operation_id = "update_file", tag = "files-api",
    params(("fileId" = String, Path, description = "The file's id")),
    request_body(content = Value, description = "`{name?: string, addTags?: [string], removeTags?: [string], visibility?: \"private\"|\"public\", metadata?: {string: string}}`"),
    responses(
        (status = 200, description = "The changed file"),
        (status = 400, description = "The body is not valid (`field` names what)"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such file of the caller's"),
        (status = 409, description = "`deleted` (restore it first) or `busy` (it kept changing; try again)"),
    ))]
#[tracing::instrument(name = "update_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn update(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Json<FileView>, ApiError> {
    let id = file_id(&raw_id)?;
    let req = JsonObject::parse(&body, &["name", "addTags", "removeTags", "visibility", "metadata"])?;
    let name = req
        .opt_str("name")?
        .map(|n| {
            DisplayName::parse(n)
                .map_err(|_| ApiError::bad_field("name", "name: give 1 to 255 bytes of visible characters"))
        })
        .transpose()?;
    let change = Change {
        name,
        add_tags: req.tags("addTags")?,
        remove_tags: req.tags("removeTags")?,
        visibility: req.visibility()?,
        metadata: req.metadata()?,
    };
    Ok(Json(api.cases.files.update(&caller.user, &client.0, id, &change).await?))
}

/// Deletes a file, restorably
///
/// The object goes behind a delete marker and the file is `DELETED`, restorable for the
/// restore window (`restorableUntil`). A retry answers the same.
#[utoipa::path(delete, path = "/v1/files/{fileId}", operation_id = "delete_file", tag = "files-api",
    params(("fileId" = String, Path, description = "The file's id")),
    responses(
        (status = 200, description = "The deleted file"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such file of the caller's"),
        (status = 409, description = "`upload_incomplete`: not arrived (abort its upload instead), or arrived and still being checked (try again in a few seconds)"),
    ))]
#[tracing::instrument(name = "delete_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn remove(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
) -> Result<Json<FileView>, ApiError> {
    let deleted = api.cases.files.delete(&caller.user, &client.0, file_id(&raw_id)?).await?;
    if deleted.now {
        metrics::emit("delete_file", &[("FilesDeleted", 1, Unit::Count)]);
    }
    Ok(Json(deleted.file))
}

/// Image URLs of one of the caller's images
///
/// Body `{presets?: [name], widths?: [number], format?: "avif"|"webp"|"jpg"|"png"}`; by default
/// the image scaled (`plain`) to 320, 640, 960, 1280 and 1920 px (none wider than the image), in
/// AVIF, WebP and JPEG. Answers `{fileId, expiresAt, images: [{preset, format, srcset,
/// urls: [{width, url}]}]}`: signed transform URLs on the CDN, without expiry for a public
/// file (`expiresAt` null), windowed for a private one.
#[utoipa::path(post, path = "/v1/files/{fileId}/image-urls", operation_id = "image_urls", tag = "files-api",
    params(("fileId" = String, Path, description = "The file's id")),
    request_body(content = Value, description = "`{presets?: [string], widths?: [number], format?: string}`"),
    responses(
        (status = 200, description = "The URLs"),
        (status = 400, description = "The body is not valid (`field` names what: an unknown preset, a width)"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such file of the caller's"),
        (status = 409, description = "`not_an_image`: only stored images have image URLs"),
        (status = 429, description = "`rate_limited`: over the caller's budget of image URLs (`Retry-After` says when to retry)"),
    ))]
#[tracing::instrument(name = "image_urls", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn image_urls(
    State(api): State<Api>,
    caller: Caller,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = file_id(&raw_id)?;
    let mut wanted = Wanted::default();
    if !body.is_empty() {
        let req = JsonObject::parse(&body, &["presets", "widths", "format"])?;
        for v in req.opt_array("presets")?.unwrap_or_default() {
            let name = v.as_str().ok_or_else(|| ApiError::bad_field("presets", "presets: names are strings"))?;
            wanted.presets.push(name.to_owned());
        }
        for v in req.opt_array("widths")?.unwrap_or_default() {
            let width = v.as_u64().and_then(|w| u32::try_from(w).ok());
            wanted.widths.push(width.ok_or_else(|| ApiError::bad_field("widths", "widths: whole numbers of pixels"))?);
        }
        wanted.format = req
            .opt_str("format")?
            .map(|f| Format::parse(f).map_err(|_| ApiError::bad_field("format", "format: avif, webp, jpg or png")))
            .transpose()?;
    }
    let got = api.cases.images.urls(&caller.user, id, &wanted).await?;
    let images: Vec<Value> = got
        .sets
        .iter()
        .map(|set| {
            let urls: Vec<Value> = set.urls.iter().map(|(w, url)| json!({"width": w, "url": url})).collect();
            json!({"preset": set.preset, "format": set.format.extension(), "srcset": set.srcset(), "urls": urls})
        })
        .collect();
    metrics::emit(
        "image_urls",
        &[("ImageUrlsSigned", got.sets.iter().map(|s| s.urls.len() as u64).sum(), Unit::Count)],
    );
    Ok(Json(json!({
        "fileId": id.to_string(),
        "expiresAt": got.expires_at.map(matbakh_core::clock::iso_seconds),
        "images": images,
    })))
}

/// Restores a deleted file
///
/// Within the restore window the file is `READY` again and counts in the usage again.
#[utoipa::path(post, path = "/v1/files/{fileId}/restore", operation_id = "restore_file", tag = "files-api",
    params(("fileId" = String, Path, description = "The file's id")),
    responses(
        (status = 200, description = "The restored file"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such file of the caller's"),
        (status = 409, description = "`not_deleted`, or `quota_exceeded`"),
        (status = 410, description = "`restore_window_passed`"),
    ))]
#[tracing::instrument(name = "restore_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn restore(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
) -> Result<Json<FileView>, ApiError> {
    let file = api.cases.files.restore(&caller.user, &client.0, file_id(&raw_id)?).await?;
    metrics::emit("restore_file", &[("FilesRestored", 1, Unit::Count)]);
    Ok(Json(file))
}

/// Archives a file
///
/// Tags a `READY` file's original for the archive tier: the bucket's lifecycle moves it at its
/// next daily run, and the file is `ARCHIVED` once S3 reports the move (`archive.requestedAt`
/// says it was asked). Its variants stay, so galleries keep showing it; a download then needs
/// `unarchive` first. Asking again answers the file as it is. An administrator (`ADMIN_USERS`)
/// may archive and restore anyone's file; the owner's trail names them (`admin:{sub}`).
#[utoipa::path(post, path = "/v1/files/{fileId}/archive", operation_id = "archive_file", tag = "files-api",
    params(("fileId" = String, Path, description = "The file's id")),
    responses(
        (status = 202, description = "The file, with `archive.requestedAt` (to an administrator acting on another's file: only `fileId`, `status` and `archive`)"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such file of the caller's (an administrator's: of anyone's)"),
        (status = 409, description = "`upload_incomplete`, or `not_archivable` (only a READY file)"),
    ))]
#[tracing::instrument(name = "archive_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn archive(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
) -> Result<(StatusCode, Json<Shown>), ApiError> {
    let file = api.cases.files.archive(&caller.user, &client.0, file_id(&raw_id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(file)))
}

/// Restores an archived file
///
/// Asks S3 for a readable copy of an `ARCHIVED` file's original in `tier`'s time
/// (`Expedited`: within 5 minutes, `Standard`: 5 hours (the default), `Bulk`: 12 hours); the
/// file is `RESTORING` with `archive.restoreExpectedBy`, and `READY` again (for
/// `RESTORED_DAYS`, 7) when the copy is there. Asking while it is restoring answers the file.
#[utoipa::path(post, path = "/v1/files/{fileId}/unarchive", operation_id = "unarchive_file", tag = "files-api",
    params(("fileId" = String, Path, description = "The file's id")),
    request_body(content = Value, description = "`{tier?: \"Expedited\" | \"Standard\" | \"Bulk\"}`"),
    responses(
        (status = 202, description = "The file, `RESTORING` (to an administrator acting on another's file: only `fileId`, `status` and `archive`)"),
        (status = 400, description = "`tier` is not a tier (or one the archive class does not offer)"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such file of the caller's (an administrator's: of anyone's)"),
        (status = 409, description = "`not_archived`"),
    ))]
#[tracing::instrument(name = "unarchive_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn unarchive(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Shown>), ApiError> {
    let id = file_id(&raw_id)?;
    let tier = if body.is_empty() {
        RestoreTier::Standard
    } else {
        let req = JsonObject::parse(&body, &["tier"])?;
        req.opt_str("tier")?.map(RestoreTier::parse).transpose()?.unwrap_or(RestoreTier::Standard)
    };
    let file = api.cases.files.unarchive(&caller.user, &client.0, id, tier).await?;
    Ok((StatusCode::ACCEPTED, Json(file)))
}

/// Who the caller is
///
/// `{userId, admin}`: the caller's id and whether they administer this deployment
/// (`ADMIN_USERS`: the migration dashboard, the storage report, archiving anyone's file), so an
/// app shows what they may use without trying an admin route (a 403 for every other user).
#[utoipa::path(get, path = "/v1/me", operation_id = "me", tag = "files-api",
    responses((status = 200, description = "The caller"), (status = 401, description = "No valid token")))]
#[tracing::instrument(name = "me", skip_all, fields(user = %caller.user))]
async fn me(State(api): State<Api>, caller: Caller) -> Json<Value> {
    Json(json!({"userId": caller.user.as_str(), "admin": api.cases.files.is_admin(&caller.user)}))
}

/// The caller's storage
///
/// `{bytesUsed, bytesReserved, bytesDeleted, openUploads, quotaBytes, files}`.
#[utoipa::path(get, path = "/v1/me/usage", operation_id = "usage", tag = "files-api",
    responses((status = 200, description = "The usage"), (status = 401, description = "No valid token")))]
#[tracing::instrument(name = "usage", skip_all, fields(user = %caller.user))]
async fn usage(State(api): State<Api>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let report = api.cases.files.usage(&caller.user).await?;
    let u = report.usage;
    Ok(Json(json!({
        "bytesUsed": u.charged.saturating_sub(u.reserved),
        "bytesReserved": u.reserved,
        "bytesDeleted": u.deleted,
        "openUploads": u.open_uploads,
        "quotaBytes": report.quota_bytes,
        "files": report.files,
    })))
}

/// The caller's audit trail
///
/// Their own trail, newest first: who did what to which file, and where a request came from
/// (except for a share link's visitors).
#[utoipa::path(get, path = "/v1/me/audit", operation_id = "audit_trail", tag = "files-api",
    params(
        ("limit" = Option<u32>, Query, description = "Records in a page (1 to 200, 50 by default)"),
        ("cursor" = Option<String>, Query, description = "The `nextCursor` of the page before"),
    ),
    responses(
        (status = 200, description = "`{records: [{at, action, actor, fileId, result, ip, userAgent}], nextCursor}`"),
        (status = 400, description = "A parameter is not valid"),
        (status = 401, description = "No valid token"),
    ))]
#[tracing::instrument(name = "audit_trail", skip_all, fields(user = %caller.user))]
async fn audit_trail(
    State(api): State<Api>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let (mut limit, mut after) = (DEFAULT_AUDIT_PAGE, None);
    for (k, v) in &pairs {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_AUDIT_PAGE).contains(n))
                    .ok_or_else(|| ApiError::bad_field("limit", format!("limit: use 1 to {MAX_AUDIT_PAGE}")))?;
            }
            "cursor" => after = Some(audit_cursor(v)?),
            _ => return Err(ApiError::bad_field("query", format!("{k} is not a parameter of the audit trail"))),
        }
    }
    let (items, next) = api.cases.files.audit_trail(&caller.user, limit, after.as_deref()).await?;
    let records: Vec<Value> = items.iter().map(matbakh_core::audit::AuditRecord::shown).collect();
    let next = next.map(|sk| base64_url(sk.as_bytes()));
    Ok(Json(json!({ "records": records, "nextCursor": next })))
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A trail cursor: the sort key of the last record shown (a time and a nonce, nothing else).
fn audit_cursor(raw: &str) -> Result<String, ApiError> {
    use base64::Engine as _;
    let bad = || ApiError::bad_field("cursor", "cursor: not a cursor of this trail");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let sk = String::from_utf8(bytes).map_err(|_| bad())?;
    let ok = sk.len() <= 64 && sk.chars().all(|c| c.is_ascii_alphanumeric() || "-:.#TZ".contains(c));
    if ok { Ok(sk) } else { Err(bad()) }
}

#[cfg(test)]
mod tests;
