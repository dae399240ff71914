//! `files-api`: the caller's own files.
//!
//! Triggered by API Gateway (HTTP API, JWT authorizer):
//! - `GET /v1/files`: newest first (or by name or size), paged by an opaque cursor, filtered by
//!   content type, status, tag and upload date, searched by `q=` (word prefixes, case- and
//!   accent-insensitive). Served from DynamoDB indexes, never a scan.
//! - `GET /v1/files/{fileId}`: metadata, variants with URLs, placeholder, EXIF summary.
//! - `PATCH /v1/files/{fileId} {name?, addTags?, removeTags?}`: rename, retag.
//! - `DELETE /v1/files/{fileId}`: soft delete (an S3 delete marker; the row is `DELETED`).
//! - `POST /v1/files/{fileId}/restore`: within the restore window, the marker goes and the row
//!   is `READY` again (counted in usage again).
//! - `GET /v1/me/usage`: bytes used and reserved, quota, file count.
//!
//! Someone else's file answers exactly like a missing one (404) on every route.
//!
//! Reads and writes: the metadata table (file rows, tag and word items, usage); in the bucket,
//! delete markers of `users/*` and presigned GETs of variants when no CDN serves them.
//!
//! Each handler decodes the request, calls a use case of [`matbakh_app::files`] and encodes
//! its answer; [`router`] runs them on the deployment's table and bucket, [`routes`] on any
//! implementation of the ports (the in-memory ones in `src/tests.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use matbakh_api::audit::Client;
use matbakh_api::auth::{AuthState, Authenticator};
use matbakh_api::body::JsonObject;
use matbakh_api::metrics::{self, Unit};
use matbakh_api::{ApiError, Caller, Services};
use matbakh_app::files::{Change, Files};
use matbakh_app::view::FileView;
use matbakh_core::audit::{AuditAction, DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};
use matbakh_core::ids::FileId;
use matbakh_core::listing::{ListQuery, Tag};
use matbakh_core::names::DisplayName;
use serde_json::{Value, json};

/// What the handlers use: the files use cases and who may call them.
#[derive(Clone)]
pub struct Api {
    pub files: Files,
    pub auth: Arc<Authenticator>,
}

impl AuthState for Api {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}

/// The function on the deployment's table and bucket.
pub fn router(services: Services) -> Router {
    routes(Api { files: services.files(), auth: services.auth.clone() })
}

/// The function on any implementation of the ports (in memory, in tests).
pub fn routes(api: Api) -> Router {
    Router::new()
        .route("/v1/files", get(list))
        .route("/v1/files/{fileId}", get(show).patch(update).delete(remove))
        .route("/v1/files/{fileId}/restore", post(restore))
        .route("/v1/me/usage", get(usage))
        .route("/v1/me/audit", get(audit_trail))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(api)
}

/// A file id from the path; one that cannot be an id is a file that does not exist.
fn file_id(raw: &str) -> Result<FileId, ApiError> {
    FileId::parse(raw).map_err(|_| ApiError::not_found("file"))
}

#[tracing::instrument(name = "list_files", skip_all, fields(user = %caller.user))]
async fn list(
    State(api): State<Api>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&pairs)?;
    let page = api.files.list(&caller.user, &q).await?;
    Ok(Json(json!({ "files": page.files, "nextCursor": page.next.map(|c| c.encode()) })))
}

#[tracing::instrument(name = "show_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn show(State(api): State<Api>, caller: Caller, Path(raw_id): Path<String>) -> Result<Json<FileView>, ApiError> {
    Ok(Json(api.files.show(&caller.user, file_id(&raw_id)?).await?))
}

fn tags_of(req: &JsonObject, field: &'static str) -> Result<Vec<Tag>, ApiError> {
    req.opt_array(field)?
        .unwrap_or_default()
        .iter()
        .map(|v| {
            let raw = v.as_str().ok_or_else(|| ApiError::bad_field(field, format!("{field}: tags are strings")))?;
            Tag::parse(raw).map_err(ApiError::from)
        })
        .collect()
}

#[tracing::instrument(name = "update_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn update(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Json<FileView>, ApiError> {
    let id = file_id(&raw_id)?;
    let req = JsonObject::parse(&body, &["name", "addTags", "removeTags"])?;
    let name = req
        .opt_str("name")?
        .map(|n| {
            DisplayName::parse(n)
                .map_err(|_| ApiError::bad_field("name", "name: give 1 to 255 bytes of visible characters"))
        })
        .transpose()?;
    let change = Change { name, add_tags: tags_of(&req, "addTags")?, remove_tags: tags_of(&req, "removeTags")? };
    Ok(Json(api.files.update(&caller.user, &client.0, id, &change).await?))
}

#[tracing::instrument(name = "delete_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn remove(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
) -> Result<Json<FileView>, ApiError> {
    let deleted = api.files.delete(&caller.user, &client.0, file_id(&raw_id)?).await?;
    if deleted.now {
        metrics::emit("delete_file", &[("FilesDeleted", 1, Unit::Count)]);
    }
    Ok(Json(deleted.file))
}

#[tracing::instrument(name = "restore_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn restore(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
) -> Result<Json<FileView>, ApiError> {
    let file = api.files.restore(&caller.user, &client.0, file_id(&raw_id)?).await?;
    metrics::emit("restore_file", &[("FilesRestored", 1, Unit::Count)]);
    Ok(Json(file))
}

#[tracing::instrument(name = "usage", skip_all, fields(user = %caller.user))]
async fn usage(State(api): State<Api>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let report = api.files.usage(&caller.user).await?;
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

/// `GET /v1/me/audit[?limit=N&cursor=C]`: the caller's own trail, newest first; where a
/// request came from, except for a share link's visitors.
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
    let (items, next) = api.files.audit_trail(&caller.user, limit, after.as_deref()).await?;
    let records: Vec<Value> = items
        .iter()
        .map(|r| {
            // Never where a share link's visitor came from (records from before that was no
            // longer stored hold it).
            let shown = r.action != AuditAction::ShareDownload.as_str();
            json!({
                "at": r.at,
                "action": r.action,
                "actor": r.actor,
                "fileId": r.file_id,
                "result": r.result,
                "ip": shown.then_some(&r.ip),
                "userAgent": shown.then_some(&r.user_agent),
            })
        })
        .collect();
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
