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

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use matbakh_api::audit::{self, Access, Client};
use matbakh_api::body::JsonObject;
use matbakh_api::metrics::{self, Unit};
use matbakh_api::{ApiError, Caller, Services};
use matbakh_aws::files::FileDetails;
use matbakh_core::audit::{AuditAction, DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};
use matbakh_core::clock::{iso_seconds, window_start};
use matbakh_core::ids::FileId;
use matbakh_core::listing::{ListQuery, Tag, retag};
use matbakh_core::metadata::FileStatus;
use matbakh_core::names::DisplayName;
use serde_json::{Value, json};

pub fn router(services: Services) -> Router {
    Router::new()
        .route("/v1/files", get(list))
        .route("/v1/files/{fileId}", get(show).patch(update).delete(remove))
        .route("/v1/files/{fileId}/restore", post(restore))
        .route("/v1/me/usage", get(usage))
        .route("/v1/me/audit", get(audit_trail))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(services)
}

/// The caller's file, or 404 (missing and someone else's are one answer).
async fn own_file(st: &Services, caller: &Caller, raw_id: &str) -> Result<FileDetails, ApiError> {
    let id = FileId::parse(raw_id).map_err(|_| ApiError::not_found("file"))?;
    st.table
        .file_details(id)
        .await?
        .filter(|d| d.record.owner == caller.user)
        .ok_or_else(|| ApiError::not_found("file"))
}

/// A variant's URL: on the CDN when one serves `derived/*`, else a presigned GET. Signed as of
/// the start of the current `image_url_ttl` window and valid for two, so every listing in a
/// window hands out the same URL (the browser's cache of an immutable variant keeps working)
/// and a URL is good for at least `image_url_ttl` after it is handed out.
async fn variant_url(st: &Services, key: &str) -> Result<String, ApiError> {
    match &st.cdn_base_url {
        Some(base) => Ok(format!("{base}/{key}")),
        None => {
            // S3 takes presigned URLs of at most 7 days, so a window is at most half of that.
            let window = st.limits.image_url_ttl.min(Duration::from_secs(7 * 24 * 3600 / 2));
            let signed_at = window_start(st.clock.now(), window);
            Ok(st.store.presign_get(key, signed_at, window * 2).await?.url)
        }
    }
}

/// A file as the API shows it.
async fn view(st: &Services, d: &FileDetails) -> Result<Value, ApiError> {
    let r = &d.record;
    let mut v = json!({
        "fileId": r.file_id.to_string(),
        "name": r.filename.as_str(),
        "contentType": r.content_type.as_str(),
        "size": r.size,
        "status": r.status.as_str(),
        "createdAt": iso_seconds(r.created_at),
        "tags": d.tags,
    });
    if let Some(img) = &d.image {
        let mut variants = Vec::with_capacity(img.variants.len());
        for x in &img.variants {
            variants.push(json!({
                "width": x.width,
                "height": x.height,
                "contentType": x.content_type,
                "url": variant_url(st, x.key.as_str()).await?,
            }));
        }
        v["width"] = json!(img.width);
        v["height"] = json!(img.height);
        v["placeholder"] = json!(img.placeholder);
        v["variants"] = json!(variants);
    }
    if let Some(e) = &d.exif {
        let mut exif = json!({
            "cameraMake": e.camera_make,
            "cameraModel": e.camera_model,
            "lens": e.lens,
            "takenAt": e.taken_at,
        });
        if let Some(at) = e.location {
            exif["location"] = json!({"lat": at.latitude, "lon": at.longitude});
        }
        v["exif"] = exif;
    }
    if let Some(reason) = &d.reason {
        v["reason"] = json!(reason);
    }
    if let Some(at) = d.deleted_at {
        v["deletedAt"] = json!(iso_seconds(at));
        v["restorableUntil"] = json!(iso_seconds(at + st.limits.restore_window));
    }
    Ok(v)
}

#[tracing::instrument(name = "list_files", skip_all, fields(user = %caller.user))]
async fn list(
    State(st): State<Services>,
    caller: Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::parse(&pairs)?;
    let (files, next) = st.table.list_files(&caller.user, &q).await?;
    let mut out = Vec::with_capacity(files.len());
    for d in &files {
        out.push(view(&st, d).await?);
    }
    tracing::info!(files = out.len(), more = next.is_some(), "listed");
    Ok(Json(json!({ "files": out, "nextCursor": next.map(|c| c.encode()) })))
}

#[tracing::instrument(name = "show_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn show(State(st): State<Services>, caller: Caller, Path(raw_id): Path<String>) -> Result<Json<Value>, ApiError> {
    let d = own_file(&st, &caller, &raw_id).await?;
    Ok(Json(view(&st, &d).await?))
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
    State(st): State<Services>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = JsonObject::parse(&body, &["name", "addTags", "removeTags"])?;
    let name = req
        .opt_str("name")?
        .map(|n| {
            DisplayName::parse(n)
                .map_err(|_| ApiError::bad_field("name", "name: give 1 to 255 bytes of visible characters"))
        })
        .transpose()?;
    let (add, remove) = (tags_of(&req, "addTags")?, tags_of(&req, "removeTags")?);
    if name.is_none() && add.is_empty() && remove.is_empty() {
        return Err(ApiError::bad_field("name", "give a name, addTags or removeTags"));
    }
    // Optimistic: read, change, write if nobody changed it meanwhile; a few tries.
    for _ in 0..3 {
        let before = own_file(&st, &caller, &raw_id).await?;
        if before.record.status == FileStatus::Deleted {
            return Err(ApiError::new(StatusCode::CONFLICT, "deleted", "restore the file before changing it"));
        }
        let current: BTreeSet<Tag> = before.tags.iter().cloned().map(Tag::from_stored).collect();
        let tags = retag(&current, &add, &remove)?;
        if st.table.update_file(&before, name.as_ref(), &tags).await? {
            let access = Access::ok(&caller.user, AuditAction::Update, Some(before.record.file_id));
            audit::record(&st, &client, access).await?;
            let after = own_file(&st, &caller, &raw_id).await?;
            tracing::info!(renamed = name.is_some(), tags = tags.len(), "file updated");
            return Ok(Json(view(&st, &after).await?));
        }
    }
    Err(ApiError::new(StatusCode::CONFLICT, "busy", "the file kept changing; try again"))
}

#[tracing::instrument(name = "delete_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn remove(
    State(st): State<Services>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let d = own_file(&st, &caller, &raw_id).await?;
    let r = &d.record;
    match r.status {
        FileStatus::Deleted => {} // a retry: the marker is there, the row says so
        FileStatus::Pending => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "upload_incomplete",
                "the file has not arrived yet; abort its upload instead",
            ));
        }
        FileStatus::Ready | FileStatus::Failed | FileStatus::Quarantined => {
            // The marker first: once the row says DELETED, the object is already hidden.
            st.store.delete_version(r.key.as_str(), None).await?;
            st.table.note_deleted(r.file_id, st.clock.now()).await?;
            st.table.mark_deleted(r.file_id, None).await?;
            let access = Access::ok(&caller.user, AuditAction::Delete, Some(r.file_id));
            audit::record(&st, &client, access).await?;
            metrics::emit("delete_file", &[("FilesDeleted", 1, Unit::Count)]);
        }
    }
    let after = own_file(&st, &caller, &raw_id).await?;
    tracing::info!("file deleted");
    Ok((StatusCode::OK, Json(view(&st, &after).await?)))
}

#[tracing::instrument(name = "restore_file", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn restore(
    State(st): State<Services>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let d = own_file(&st, &caller, &raw_id).await?;
    let r = &d.record;
    if r.status != FileStatus::Deleted {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_deleted", "the file is not deleted"));
    }
    let window_ends = d.deleted_at.map(|at| at + st.limits.restore_window);
    if window_ends.is_none_or(|end| st.clock.now() >= end) {
        return Err(ApiError::new(StatusCode::GONE, "restore_window_passed", "the file can no longer be restored"));
    }
    // The row first (it checks the quota); then the marker goes. A crash between the two leaves
    // a READY row whose object a retry of DELETE or restore sets right.
    if !st.table.restore(r, st.limits.user_quota_bytes).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_deleted", "the file is not deleted"));
    }
    if let Some(marker) = st.store.current_delete_marker(r.key.as_str()).await? {
        st.store.delete_version(r.key.as_str(), Some(&marker)).await?;
    }
    let access = Access::ok(&caller.user, AuditAction::Restore, Some(r.file_id));
    audit::record(&st, &client, access).await?;
    metrics::emit("restore_file", &[("FilesRestored", 1, Unit::Count)]);
    let after = own_file(&st, &caller, &raw_id).await?;
    tracing::info!("file restored");
    Ok(Json(view(&st, &after).await?))
}

#[tracing::instrument(name = "usage", skip_all, fields(user = %caller.user))]
async fn usage(State(st): State<Services>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let u = st.table.usage(&caller.user).await?;
    let files = st.table.count_files(&caller.user).await?;
    Ok(Json(json!({
        "bytesUsed": u.charged.saturating_sub(u.reserved),
        "bytesReserved": u.reserved,
        "bytesDeleted": u.deleted,
        "openUploads": u.open_uploads,
        "quotaBytes": st.limits.user_quota_bytes,
        "files": files,
    })))
}

/// `GET /v1/me/audit[?limit=N&cursor=C]`: the caller's own trail, newest first; where a
/// request came from, except for a share link's visitors.
#[tracing::instrument(name = "audit_trail", skip_all, fields(user = %caller.user))]
async fn audit_trail(
    State(st): State<Services>,
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
    let (items, next) = st.table.audit_page(&caller.user, limit, after.as_deref()).await?;
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
