//! `presign`: single-file uploads and downloads, straight between the browser and S3.
//!
//! Triggered by API Gateway (HTTP API, JWT authorizer):
//! - `POST /v1/uploads {filename, contentType, size, sha256?}` checks the type allow-list, the
//!   size limit and the caller's quota, reserves the size and writes a PENDING row (one
//!   DynamoDB transaction), and answers with a presigned POST pinned to one key, type and size.
//! - `GET /v1/files/{fileId}/download[?inline=1]` answers the owner with a short-lived
//!   presigned GET that names the file (RFC 6266).
//!
//! Reads and writes: the metadata table (file rows, usage counters); signs for the bucket
//! but never touches object bytes.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use matbakh_api::audit::{self, Client};
use matbakh_api::body::JsonObject;
use matbakh_api::metrics::{self, Unit};
use matbakh_api::{ApiError, Caller, Services, new_file_id};
use matbakh_app::audit::Access;
use matbakh_core::audit::AuditAction;
use matbakh_core::clock::iso_seconds;
use matbakh_core::ids::{FileId, Sha256};
use matbakh_core::metadata::{FileRecord, FileStatus};
use matbakh_core::names::{DisplayName, content_disposition};
use matbakh_core::types::ContentType;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(services: Services) -> Router {
    let (router, _) = documented().split_for_parts();
    router.fallback(|| async { ApiError::not_found("route") }).with_state(services)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

fn documented() -> OpenApiRouter<Services> {
    OpenApiRouter::new().routes(routes!(create_upload)).routes(routes!(download))
}

/// Grants a single upload
///
/// Checks the type allow-list, the size limit and the caller's quota, reserves the size, and
/// answers `{fileId, key, upload: {url, fields}, expiresAt}`: a presigned POST pinned to one
/// key, type and size (and SHA-256 when given), for the browser to send the file to S3.
#[utoipa::path(post, path = "/v1/uploads", operation_id = "create_upload", tag = "presign",
    request_body(content = Value, description = "`{filename, contentType, size, sha256?}` (sha256: hex)"),
    responses(
        (status = 201, description = "The grant"),
        (status = 400, description = "The body is not valid (`field` names what)"),
        (status = 401, description = "No valid token"),
        (status = 409, description = "`quota_exceeded`"),
        (status = 413, description = "`too_large` for its type"),
        (status = 415, description = "`type_not_allowed`"),
    ))]
#[tracing::instrument(name = "create_upload", skip_all, fields(user = %caller.user, file_id = tracing::field::Empty))]
async fn create_upload(
    State(st): State<Services>,
    caller: Caller,
    client: Client,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = JsonObject::parse(&body, &["filename", "contentType", "size", "sha256"])?;
    let filename = DisplayName::parse(req.str("filename")?)?;
    let content_type = ContentType::parse(req.str("contentType")?)?;
    let size = req.u64("size")?;
    let sha256 = req.opt_str("sha256")?.map(Sha256::parse).transpose()?;
    st.limits.check_single_upload(content_type, size)?;

    let now = st.clock.now();
    let file_id = new_file_id(now)?;
    tracing::Span::current().record("file_id", tracing::field::display(file_id));
    let record = FileRecord {
        size,
        sha256,
        expires_at: Some(now + st.limits.pending_ttl),
        ..FileRecord::upload(file_id, caller.user.clone(), filename, content_type, now)
    };
    let key = record.key.clone();
    // Sign first: if signing fails, nothing has been written.
    let post = st.store.presign_upload(&key, content_type, size..=size, sha256, now, st.limits.upload_url_ttl).await?;
    st.table.reserve_upload(&record, st.limits.user_quota_bytes).await?;
    let access = Access::ok(&caller.user, AuditAction::Upload, Some(file_id));
    audit::record(&st, &client, access).await?;
    tracing::info!(size, content_type = content_type.as_str(), "upload granted");
    metrics::emit("create_upload", &[("UploadsGranted", 1, Unit::Count), ("UploadBytesGranted", size, Unit::Bytes)]);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "fileId": file_id.to_string(),
            "key": key.as_str(),
            "upload": { "url": post.url, "fields": post.fields },
            "expiresAt": iso_seconds(post.expires_at),
        })),
    ))
}

/// A download link for one of the caller's files
///
/// A short-lived presigned GET of the accepted version that names the file (RFC 6266);
/// `inline=1` asks the browser to show it instead of saving it.
#[utoipa::path(get, path = "/v1/files/{fileId}/download", operation_id = "download", tag = "presign",
    params(
        ("fileId" = String, Path, description = "The file's id"),
        ("inline" = Option<String>, Query, description = "`1` to show in the browser, `0` (default) to save"),
    ),
    responses(
        (status = 200, description = "`{url, expiresAt, filename, contentType, size}`"),
        (status = 400, description = "`inline` is not 1 or 0"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "`quarantined`: the file failed its checks"),
        (status = 404, description = "No such file of the caller's"),
        (status = 409, description = "`upload_incomplete`"),
    ))]
#[tracing::instrument(name = "download", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn download(
    State(st): State<Services>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let inline = match query.get("inline").map(String::as_str) {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => return Err(ApiError::bad_field("inline", "inline: must be 1 or 0")),
    };
    let id = FileId::parse(&raw_id).map_err(|_| ApiError::not_found("file"))?;
    // Someone else's file answers exactly like a missing one (the attempt is in the caller's trail).
    let Some(record) = st.table.get_file(id).await?.filter(|r| r.owner == caller.user) else {
        let access = Access { result: "not_found", ..Access::ok(&caller.user, AuditAction::Download, Some(id)) };
        audit::record(&st, &client, access).await?;
        return Err(ApiError::not_found("file"));
    };
    match record.status {
        // A FAILED image is the owner's file all the same, only without variants.
        FileStatus::Ready | FileStatus::Failed => {}
        FileStatus::Deleted => return Err(ApiError::not_found("file")),
        FileStatus::Quarantined => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "quarantined",
                "this file failed its checks and cannot be downloaded",
            ));
        }
        FileStatus::Pending => {
            if st.store.object_size(&record.key).await?.is_none() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "upload_incomplete",
                    "the file has not been uploaded yet",
                ));
            }
        }
    }
    let disposition = content_disposition(&record.filename, record.content_type, inline);
    let now = st.clock.now();
    // Exactly the accepted version (DECISIONS 28): bytes written to the key again with a
    // replayed upload URL are never what a download serves.
    let get = st
        .store
        .presign_download(
            &record.key,
            record.version_id.as_deref(),
            record.content_type.as_str(),
            &disposition,
            now,
            st.limits.download_url_ttl,
        )
        .await?;
    let access = Access::ok(&caller.user, AuditAction::Download, Some(id));
    audit::record(&st, &client, access).await?;
    tracing::info!("download granted");
    metrics::emit("download", &[("DownloadsGranted", 1, Unit::Count)]);
    Ok(Json(json!({
        "url": get.url,
        "expiresAt": iso_seconds(get.expires_at),
        "filename": record.filename.as_str(),
        "contentType": record.content_type.as_str(),
        "size": record.size,
    })))
}
