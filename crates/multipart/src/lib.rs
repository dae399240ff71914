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
//! Reads and writes: the metadata table (sessions, file rows, usage, upload tokens) and the
//! bucket's multipart API.
//!
//! Each handler decodes the request, calls a use case of [`matbakh_app::multipart`] and
//! encodes its answer; [`router`] runs them on the deployment's table and bucket, [`routes`] on
//! any implementation of the ports (the in-memory ones in `src/tests.rs`).

pub mod companion;
pub mod sign;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use matbakh_api::audit::Client;
use matbakh_api::body::JsonObject;
use matbakh_api::{ApiError, Authenticator, Caller};
use matbakh_app::multipart::{Completed, Multipart, Start};
use matbakh_aws::Services;
use matbakh_core::checksum::Integrity;
use matbakh_core::clock::iso_seconds;
use matbakh_core::multipart::{SessionLimit, UploadSession, UploadedPart};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use matbakh_lambda::metrics::{self, Unit};
use serde_json::{Value, json};

/// What the handlers use: the use cases and who may call them.
pub type Api = matbakh_api::Api<Multipart>;

/// The function on the deployment's table and bucket.
pub fn router(services: Services, auth: Arc<Authenticator>) -> Router {
    routes(Api { cases: services.multipart(), auth })
}

/// The function as its `main` wires it from the environment (the local gateway's in-process
/// mode wires it the same way), with `auth` saying who the caller is.
pub async fn from_env(auth: Arc<Authenticator>) -> Result<Router, String> {
    Ok(router(Services::from_env().await?, auth))
}

/// The function on any implementation of the ports (in memory, in tests).
pub fn routes(api: Api) -> Router {
    matbakh_api::openapi::serve(served(), api)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    matbakh_api::openapi::part(documented())
}

matbakh_api::routes!(Api; create, list_open, show, abort, sign_parts, complete, sign::sign; companion);

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

/// Counts an upload refused at completion for carrying more bytes than granted.
fn count_refusal(operation: &str, e: &matbakh_app::Error) {
    if matches!(e, matbakh_app::Error::TooLarge { .. }) {
        metrics::emit(operation, &[("UploadsRefusedOversize", 1, Unit::Count)]);
    }
}

/// Starts a multipart upload
///
/// Checks type, size and quota like a single upload, starts the S3 multipart upload (with a
/// full-object CRC if asked), plans its parts and reserves the size. Answers the session with
/// its `uploadId`, `partSize` and part count.
#[utoipa::path(post, path = "/v1/uploads/multipart", operation_id = "create_multipart", tag = "multipart",
    request_body(content = Value, description = "`{filename, contentType, size, checksum?, visibility?, tags?, metadata?}`"),
    responses(
        (status = 201, description = "The session"),
        (status = 400, description = "The body is not valid (`field` names what)"),
        (status = 401, description = "No valid token"),
        (status = 409, description = "`quota_exceeded`, or `account_erased` (an erase of the account has not finished)"),
        (status = 413, description = "`too_large` for its type"),
        (status = 415, description = "`type_not_allowed`"),
        (status = 429, description = "`too_many_open_uploads`, or `rate_limited`: over the caller's budget of upload grants (`Retry-After` says when to retry)"),
    ))]
#[tracing::instrument(name = "create_multipart", skip_all, fields(user = %caller.user, file_id = tracing::field::Empty))]
async fn create(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let allowed = ["filename", "contentType", "size", "checksum", "sha256", "visibility", "tags", "metadata"];
    let req = JsonObject::parse(&body, &allowed)?;
    if req.has("sha256") {
        return Err(ApiError::bad_field(
            "sha256",
            "sha256: S3 cannot check a SHA-256 of a multipart object; send checksum {algorithm: CRC64NVME or CRC32C, value}",
        ));
    }
    let start = Start {
        filename: DisplayName::parse(req.str("filename")?)?,
        content_type: ContentType::parse(req.str("contentType")?)?,
        size: req.u64("size")?,
        integrity: match req.opt_object("checksum", &["algorithm", "value"])? {
            Some(c) => Some(Integrity::parse(c.str("algorithm")?, c.opt_str("value")?)?),
            None => None,
        },
        labels: req.labels()?,
    };
    let session = api.cases.start(&caller.user, &client.0, start).await?;
    metrics::emit(
        "create_multipart",
        &[("MultipartUploadsStarted", 1, Unit::Count), ("UploadBytesGranted", session.reserved_bytes(), Unit::Bytes)],
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
    State(api): State<Api>,
    caller: Caller,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = JsonObject::parse(&body, &["partNumbers", "checksums"])?;
    let numbers = req
        .array("partNumbers")?
        .iter()
        .map(|n| n.as_u64().ok_or_else(|| ApiError::bad_field("partNumbers", "partNumbers: must be whole numbers")))
        .collect::<Result<Vec<u64>, ApiError>>()?;
    let (session, parts) =
        api.cases.sign_parts(&caller.user, &raw_id, &numbers, req.opt_string_map("checksums")?).await?;
    let parts: Vec<Value> = parts
        .iter()
        .map(|p| {
            let mut headers = json!({ "content-length": p.size.to_string() });
            if let Some(c) = &p.checksum {
                headers[c.algorithm().header()] = json!(c.value());
            }
            json!({
                "partNumber": p.part.get(),
                "size": p.size,
                "url": p.url.url,
                "headers": headers,
                "expiresAt": iso_seconds(p.url.expires_at),
            })
        })
        .collect();
    Ok(Json(json!({ "uploadId": session.upload_id.as_str(), "parts": parts })))
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
async fn show(State(api): State<Api>, caller: Caller, Path(raw_id): Path<String>) -> Result<Json<Value>, ApiError> {
    let (session, parts) = api.cases.show(&caller.user, &raw_id).await?;
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
async fn list_open(State(api): State<Api>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let sessions = api.cases.list_open(&caller.user).await?;
    let uploads: Vec<Value> = sessions.iter().map(session_json).collect();
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
    State(api): State<Api>,
    caller: Caller,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if !body.is_empty() {
        // `parts` may be sent (Uppy does); the server trusts only what S3 lists.
        JsonObject::parse(&body, &["parts"])?;
    }
    let done =
        api.cases.complete(&caller.user, &raw_id).await.inspect_err(|e| count_refusal("complete_multipart", e))?;
    if let Some(size) = done.size {
        metrics::emit(
            "complete_multipart",
            &[("MultipartUploadsCompleted", 1, Unit::Count), ("UploadBytes", size, Unit::Bytes)],
        );
    }
    Ok(Json(completed_json(&done)))
}

fn completed_json(done: &Completed) -> Value {
    let session = &done.session;
    json!({
        "uploadId": session.upload_id.as_str(),
        "fileId": session.file_id.to_string(),
        "key": session.key.as_str(),
        "etag": done.etag,
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
        (status = 409, description = "`upload_finished`: it was completed (also at S3 directly); it is settled, not aborted"),
    ))]
#[tracing::instrument(name = "abort_upload", skip_all, fields(user = %caller.user))]
async fn abort(State(api): State<Api>, caller: Caller, Path(raw_id): Path<String>) -> Result<StatusCode, ApiError> {
    api.cases.abort(&caller.user, &raw_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests;
