//! `multipart`: large uploads straight to S3 in parts, in sessions the server owns.
//!
//! Triggered by API Gateway (HTTP API, JWT authorizer):
//! - `POST /v1/uploads/multipart {filename, contentType, size, checksum?}` checks type, size
//!   and quota like a single upload, starts the S3 multipart upload (with a full-object CRC if
//!   asked), plans its parts, and reserves the size, writes the PENDING file row and the
//!   session in one transaction.
//! - `POST /v1/uploads/{uploadId}/parts {partNumbers, checksums?}` signs one PUT URL per part,
//!   each for its exact length (and checksum), so no part can carry other bytes than planned.
//! - `GET /v1/uploads/{uploadId}` answers the session and the parts S3 holds (for resume).
//! - `POST /v1/uploads/{uploadId}/complete` checks the parts against the plan and completes
//!   the upload itself (never overwriting an object); too many bytes abort it.
//! - `DELETE /v1/uploads/{uploadId}` aborts and releases the reservation.
//! - `GET /v1/uploads` lists the caller's unfinished uploads, newest first.
//!
//! Complete and abort are idempotent. Someone else's upload answers like a missing one.
//! Reads and writes: the metadata table (sessions, file rows, usage) and the bucket's
//! multipart API.

pub mod companion;
pub mod sign;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use matbakh_api::audit::{self, Client};
use matbakh_api::body::JsonObject;
use matbakh_api::metrics::{self, Unit};
use matbakh_api::{ApiError, Caller, Services};
use matbakh_app::audit::Access;
use matbakh_app::ports::PartUpload;
use matbakh_core::audit::AuditAction;
use std::collections::HashMap;

use matbakh_core::checksum::{Checksum, Integrity};
use matbakh_core::clock::iso_seconds;
use matbakh_core::metadata::FileRecord;
use matbakh_core::multipart::{
    Completion, MAX_PARTS_PER_SIGN_REQUEST, PartNumber, PartPlan, SessionLimit, SessionState, UploadId, UploadSession,
    UploadedPart, check_parts,
};
use matbakh_core::names::DisplayName;
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
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list_open))
        .routes(routes!(show, abort))
        .routes(routes!(sign_parts))
        .routes(routes!(complete))
        .routes(routes!(sign::sign))
        .merge(companion::routes())
}

fn session_json(x: &UploadSession) -> Value {
    let mut body = json!({
        "checksum": x.integrity.as_ref().map(|i| json!({
            "algorithm": i.algorithm.as_str(),
            "value": i.full_object.as_ref().map(|c| c.value()),
        })),
        "uploadId": x.upload_id.as_str(),
        "fileId": x.file_id.to_string(),
        "key": x.key.as_str(),
        "filename": x.filename.as_str(),
        "contentType": x.content_type.as_str(),
        "createdAt": iso_seconds(x.created_at),
        "expiresAt": iso_seconds(x.expires_at),
        "state": x.state.name(),
    });
    match x.limit {
        SessionLimit::Planned(plan) => {
            body["size"] = json!(plan.size);
            body["partSize"] = json!(plan.part_size);
            body["partCount"] = json!(plan.part_count);
        }
        SessionLimit::Allowance(max) => body["maxBytes"] = json!(max),
    }
    body
}

fn parts_json(parts: &[UploadedPart]) -> Value {
    parts
        .iter()
        .map(|p| json!({"partNumber": p.number.get(), "size": p.size, "etag": p.etag, "checksum": p.checksum}))
        .collect()
}

/// The caller's session `raw`, or 404 (someone else's session is as missing as an unknown one).
async fn own_session(st: &Services, caller: &Caller, raw: &str) -> Result<UploadSession, ApiError> {
    let id = UploadId::parse(raw).map_err(|_| ApiError::not_found("upload"))?;
    st.table.get_session(&id).await?.filter(|x| x.owner == caller.user).ok_or_else(|| ApiError::not_found("upload"))
}

/// Aborts the upload in S3, then the session (releasing its reservation). In this order, so a
/// failure leaves the session open and the abort can simply be repeated.
pub(crate) async fn abort_upload(st: &Services, session: &UploadSession) -> Result<(), ApiError> {
    st.store.abort_multipart(&session.key, &session.upload_id).await?;
    st.table.abort_session(session).await?;
    Ok(())
}

fn not_open(x: &UploadSession) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "upload_finished", format!("this upload is {}", x.state.name().to_lowercase()))
}

/// Starts a multipart upload
///
/// Checks type, size and quota like a single upload, starts the S3 multipart upload (with a
/// full-object CRC if asked), plans its parts and reserves the size. Answers the session with
/// its `uploadId`, `partSize` and part count.
#[utoipa::path(post, path = "/v1/uploads/multipart", operation_id = "create_multipart", tag = "multipart",
    request_body(content = Value, description = "`{filename, contentType, size, checksum?}`"),
    responses(
        (status = 201, description = "The session"),
        (status = 400, description = "The body is not valid (`field` names what)"),
        (status = 401, description = "No valid token"),
        (status = 409, description = "`quota_exceeded`"),
        (status = 413, description = "`too_large` for its type"),
        (status = 415, description = "`type_not_allowed`"),
        (status = 429, description = "`too_many_open_uploads`"),
    ))]
#[tracing::instrument(name = "create_multipart", skip_all, fields(user = %caller.user, file_id = tracing::field::Empty))]
async fn create(
    State(st): State<Services>,
    caller: Caller,
    client: Client,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = JsonObject::parse(&body, &["filename", "contentType", "size", "checksum", "sha256"])?;
    if req.has("sha256") {
        return Err(ApiError::bad_field(
            "sha256",
            "sha256: S3 cannot check a SHA-256 of a multipart object; send checksum {algorithm: CRC64NVME or CRC32C, value}",
        ));
    }
    let filename = DisplayName::parse(req.str("filename")?)?;
    let content_type = ContentType::parse(req.str("contentType")?)?;
    let size = req.u64("size")?;
    let integrity = match req.opt_object("checksum", &["algorithm", "value"])? {
        Some(c) => Some(Integrity::parse(c.str("algorithm")?, c.opt_str("value")?)?),
        None => None,
    };
    st.limits.check_multipart_upload(content_type, size)?;
    let plan = PartPlan::for_size(size)?;

    let now = st.clock.now();
    let file_id = matbakh_app::random::file_id(now)?;
    tracing::Span::current().record("file_id", tracing::field::display(file_id));
    let mut record =
        FileRecord { size, ..FileRecord::upload(file_id, caller.user.clone(), filename, content_type, now) };
    let key = record.key.clone();
    let upload_id =
        st.store.create_multipart(&key, content_type.as_str(), integrity.as_ref().map(|i| i.algorithm)).await?;
    let session = UploadSession {
        integrity,
        upload_id: upload_id.clone(),
        file_id,
        owner: caller.user.clone(),
        key: key.clone(),
        filename: record.filename.clone(),
        content_type,
        limit: SessionLimit::Planned(plan),
        token: None,
        created_at: now,
        expires_at: now + st.limits.upload_session_ttl,
        state: SessionState::Open,
    };
    record.expires_at = Some(session.expires_at);
    if let Err(e) =
        st.table.reserve_multipart(&record, &session, st.limits.user_quota_bytes, st.limits.max_open_uploads).await
    {
        // Nothing may stay behind: the S3 upload goes too.
        if let Err(abort) = st.store.abort_multipart(&key, &upload_id).await {
            tracing::warn!(error = %abort, "could not abort the refused upload; the lifecycle rule will");
        }
        return Err(e.into());
    }
    let access = Access::ok(&caller.user, AuditAction::Upload, Some(file_id));
    audit::record(&st, &client, access).await?;
    tracing::info!(size, parts = plan.part_count, "multipart upload started");
    metrics::emit(
        "create_multipart",
        &[("MultipartUploadsStarted", 1, Unit::Count), ("UploadBytesGranted", size, Unit::Bytes)],
    );
    Ok((StatusCode::CREATED, Json(session_json(&session))))
}

/// Signs part uploads
///
/// One PUT URL per part, each for its exact planned length (and checksum, when the upload has
/// one), so no part can carry other bytes than planned.
#[utoipa::path(post, path = "/v1/uploads/{uploadId}/parts", operation_id = "sign_parts", tag = "multipart",
    params(("uploadId" = String, Path, description = "The session's upload id")),
    request_body(content = Value, description = "`{partNumbers: [number], checksums?: {\"1\": base64}}`"),
    responses(
        (status = 200, description = "`{parts: [{partNumber, url, headers}]}`"),
        (status = 400, description = "A part number or checksum is not valid"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such upload of the caller's"),
        (status = 410, description = "`upload_expired`"),
    ))]
#[tracing::instrument(name = "sign_parts", skip_all, fields(user = %caller.user))]
async fn sign_parts(
    State(st): State<Services>,
    caller: Caller,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = JsonObject::parse(&body, &["partNumbers", "checksums"])?;
    let session = own_session(&st, &caller, &raw_id).await?;
    let checksums = part_checksums(&session, req.opt_string_map("checksums")?)?;
    let numbers = req.array("partNumbers")?;
    if numbers.is_empty() || numbers.len() > MAX_PARTS_PER_SIGN_REQUEST {
        return Err(ApiError::bad_field(
            "partNumbers",
            format!("partNumbers: ask for 1 to {MAX_PARTS_PER_SIGN_REQUEST} parts at a time"),
        ));
    }
    let mut planned = Vec::with_capacity(numbers.len());
    for n in numbers {
        let n = n.as_u64().ok_or_else(|| ApiError::bad_field("partNumbers", "partNumbers: must be whole numbers"))?;
        let part = PartNumber::new(n)?;
        let len = match session.limit {
            SessionLimit::Planned(plan) => plan.part_len(part)?,
            SessionLimit::Allowance(_) => return Err(ApiError::not_found("upload")),
        };
        planned.push((part, len));
    }
    if session.state != SessionState::Open {
        return Err(not_open(&session));
    }
    let now = st.clock.now();
    if now >= session.expires_at {
        return Err(ApiError::new(StatusCode::GONE, "upload_expired", "this upload expired; start a new one"));
    }
    let ttl = st.limits.part_url_ttl.min((session.expires_at - now).unsigned_abs());
    let mut parts = Vec::with_capacity(planned.len());
    for (part, len) in planned {
        let checksum = checksums.get(&part);
        if let (Some(integrity), None) = (&session.integrity, checksum) {
            return Err(ApiError::bad_field(
                "checksums",
                format!("checksums: this upload keeps a {} checksum, so part {part} needs one", integrity.algorithm),
            ));
        }
        let signed = PartUpload {
            key: &session.key,
            upload_id: &session.upload_id,
            part,
            content_length: Some(len),
            checksum,
            signed_at: now,
            ttl,
        };
        let url = st.store.presign_part(&signed).await?;
        let mut headers = json!({ "content-length": len.to_string() });
        if let Some(c) = checksum {
            headers[c.algorithm().header()] = json!(c.value());
        }
        parts.push(json!({
            "partNumber": part.get(),
            "size": len,
            "url": url.url,
            "headers": headers,
            "expiresAt": iso_seconds(url.expires_at),
        }));
    }
    Ok(Json(json!({ "uploadId": session.upload_id.as_str(), "parts": parts })))
}

/// The per-part checksums a sign request declares (`{"1": "<base64>", ...}`), in the algorithm
/// the upload was created with: each becomes a signed header of its part's URL.
fn part_checksums(
    session: &UploadSession,
    raw: Option<Vec<(&str, &str)>>,
) -> Result<HashMap<PartNumber, Checksum>, ApiError> {
    let Some(raw) = raw else { return Ok(HashMap::new()) };
    let Some(integrity) = &session.integrity else {
        return Err(ApiError::bad_field(
            "checksums",
            "checksums: this upload was created without checksum.algorithm, so its parts cannot carry checksums",
        ));
    };
    raw.into_iter()
        .map(|(n, value)| {
            let part = n.parse::<u64>().ok().and_then(|n| PartNumber::new(n).ok()).ok_or_else(|| {
                ApiError::bad_field("checksums", format!("checksums: {n:?} is not a part number (1 to 10000)"))
            })?;
            Ok((part, Checksum::parse(integrity.algorithm, value, "checksums")?))
        })
        .collect()
}

/// One of the caller's uploads, to resume it
///
/// The session and the parts S3 holds.
#[utoipa::path(get, path = "/v1/uploads/{uploadId}", operation_id = "show_upload", tag = "multipart",
    params(("uploadId" = String, Path, description = "The session's upload id")),
    responses(
        (status = 200, description = "The session and its parts"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such upload of the caller's"),
    ))]
#[tracing::instrument(name = "show_upload", skip_all, fields(user = %caller.user))]
async fn show(State(st): State<Services>, caller: Caller, Path(raw_id): Path<String>) -> Result<Json<Value>, ApiError> {
    let session = own_session(&st, &caller, &raw_id).await?;
    let parts = match session.state {
        SessionState::Open => st.store.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut body = session_json(&session);
    body["parts"] = parts_json(&parts);
    Ok(Json(body))
}

/// The caller's unfinished uploads
///
/// Newest first.
#[utoipa::path(get, path = "/v1/uploads", operation_id = "list_uploads", tag = "multipart",
    responses((status = 200, description = "`{uploads: [Session]}`"), (status = 401, description = "No valid token")))]
#[tracing::instrument(name = "list_uploads", skip_all, fields(user = %caller.user))]
async fn list_open(State(st): State<Services>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let now = st.clock.now();
    let sessions = st.table.open_sessions(&caller.user).await?;
    let uploads: Vec<Value> = sessions.iter().filter(|x| x.expires_at > now).map(session_json).collect();
    Ok(Json(json!({ "uploads": uploads })))
}

/// Completes a multipart upload
///
/// Checks the parts against the plan and completes the upload itself, never overwriting an
/// object; too many bytes abort it. Idempotent.
#[utoipa::path(post, path = "/v1/uploads/{uploadId}/complete", operation_id = "complete_upload", tag = "multipart",
    params(("uploadId" = String, Path, description = "The session's upload id")),
    request_body(content = Value, description = "`{parts?: [{partNumber, etag}]}`, checked against what S3 holds"),
    responses(
        (status = 200, description = "The completed file"),
        (status = 400, description = "The parts are not the plan's"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such upload of the caller's"),
        (status = 409, description = "A part is missing or the session ended"),
        (status = 413, description = "More bytes than granted: the upload was aborted"),
        (status = 422, description = "`checksum_mismatch`"),
    ))]
#[tracing::instrument(name = "complete_upload", skip_all, fields(user = %caller.user, file_id = tracing::field::Empty))]
async fn complete(
    State(st): State<Services>,
    caller: Caller,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if !body.is_empty() {
        // `parts` may be sent (Uppy does); the server trusts only what S3 lists.
        JsonObject::parse(&body, &["parts"])?;
    }
    let session = own_session(&st, &caller, &raw_id).await?;
    tracing::Span::current().record("file_id", tracing::field::display(session.file_id));
    match &session.state {
        SessionState::Completed { etag } => return Ok(Json(completed_json(&session, etag))),
        SessionState::Aborted => return Err(not_open(&session)),
        SessionState::Open => {}
    }
    let parts = st.store.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default();
    let SessionLimit::Planned(plan) = session.limit else {
        return Err(ApiError::not_found("upload"));
    };
    match check_parts(&session.limit, &parts) {
        Completion::Missing(missing) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "parts_missing",
            format!(
                "{} of {} parts are missing (first: {})",
                missing.len(),
                plan.part_count,
                missing.first().map(|n| n.get()).unwrap_or(0)
            ),
        )),
        Completion::Oversize { received } => {
            abort_upload(&st, &session).await?;
            tracing::warn!(received, declared = plan.size, "parts do not match the plan; upload aborted");
            metrics::emit("complete_multipart", &[("UploadsRefusedOversize", 1, Unit::Count)]);
            Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload_oversize",
                format!(
                    "the parts hold {received} bytes in the wrong shape for the declared {}; the upload was aborted",
                    plan.size
                ),
            ))
        }
        Completion::Ready(parts) => {
            let etag = st
                .store
                .complete_multipart(&session.key, &session.upload_id, &parts, session.integrity.as_ref())
                .await?;
            st.table.complete_session(&session, &etag).await?;
            tracing::info!(size = plan.size, "multipart upload completed");
            metrics::emit(
                "complete_multipart",
                &[("MultipartUploadsCompleted", 1, Unit::Count), ("UploadBytes", plan.size, Unit::Bytes)],
            );
            Ok(Json(completed_json(&session, &etag)))
        }
    }
}

fn completed_json(session: &UploadSession, etag: &str) -> Value {
    json!({
        "uploadId": session.upload_id.as_str(),
        "fileId": session.file_id.to_string(),
        "key": session.key.as_str(),
        "etag": etag,
        "location": format!("/v1/files/{}", session.file_id),
    })
}

/// Aborts an upload
///
/// Frees its parts and releases its reservation. Idempotent.
#[utoipa::path(delete, path = "/v1/uploads/{uploadId}", operation_id = "abort_upload", tag = "multipart",
    params(("uploadId" = String, Path, description = "The session's upload id")),
    responses(
        (status = 204, description = "Aborted"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such upload of the caller's"),
    ))]
#[tracing::instrument(name = "abort_upload", skip_all, fields(user = %caller.user))]
async fn abort(State(st): State<Services>, caller: Caller, Path(raw_id): Path<String>) -> Result<StatusCode, ApiError> {
    let session = own_session(&st, &caller, &raw_id).await?;
    match session.state {
        SessionState::Aborted => Ok(StatusCode::NO_CONTENT),
        SessionState::Completed { .. } => Err(not_open(&session)),
        SessionState::Open => {
            abort_upload(&st, &session).await?;
            tracing::info!("multipart upload aborted");
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
