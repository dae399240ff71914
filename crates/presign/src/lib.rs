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
//!
//! Each handler decodes the request, calls a use case of [`matbakh_app::uploads`] and encodes
//! its answer; [`router`] runs them on the deployment's table and bucket, [`routes`] on any
//! implementation of the ports (the in-memory ones in `src/tests.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Json, Router};
use matbakh_api::audit::Client;
use matbakh_api::body::JsonObject;
use matbakh_api::{ApiError, Authenticator, Caller};
use matbakh_app::uploads::{Declared, Uploads};
use matbakh_aws::Services;
use matbakh_core::clock::iso_seconds;
use matbakh_core::ids::{FileId, Sha256};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use matbakh_lambda::metrics::{self, Unit};
use serde_json::{Value, json};

/// What the handlers use: the use cases and who may call them.
pub type Api = matbakh_api::Api<Uploads>;

/// The function on the deployment's table and bucket.
pub fn router(services: Services, auth: Arc<Authenticator>) -> Router {
    routes(Api { cases: services.uploads(), auth })
}

/// The function as its `main` wires it from the environment (the local gateway's in-process
/// mode wires it the same way): the table and bucket and the files CDN's signing key, with
/// `auth` saying who the caller is.
pub async fn from_env(auth: Arc<Authenticator>) -> Result<Router, String> {
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let cdn_signer = matbakh_aws::secrets::cdn_signer(&sdk, |k| std::env::var(k).ok()).await?;
    Ok(router(Services::from_env().await?.sign_with(cdn_signer), auth))
}

/// The function on any implementation of the ports (in memory, in tests).
pub fn routes(api: Api) -> Router {
    matbakh_api::openapi::serve(served(), api)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    matbakh_api::openapi::part(documented())
}

matbakh_api::routes!(Api; create_upload, download);

/// Grants a single upload
///
/// Checks the type allow-list, the size limit and the caller's quota, reserves the size, and
/// answers `{fileId, key, upload: {url, fields}, expiresAt}`: a presigned POST pinned to one
/// key, type and size (and SHA-256 when given), for the browser to send the file to S3.
#[utoipa::path(post, path = "/v1/uploads", operation_id = "create_upload", tag = "presign",
    request_body(content = Value, description = "`{filename, contentType, size, sha256?, visibility?, tags?, metadata?}` (sha256: hex; visibility: `private` (default) or `public`; tags: [string]; metadata: {string: string})"),
    responses(
        (status = 201, description = "The grant"),
        (status = 400, description = "The body is not valid (`field` names what)"),
        (status = 401, description = "No valid token"),
        (status = 409, description = "`quota_exceeded`, or `account_erased` (an erase of the account has not finished)"),
        (status = 413, description = "`too_large` for its type"),
        (status = 415, description = "`type_not_allowed`"),
        (status = 429, description = "`rate_limited`: over the caller's budget of upload grants (`Retry-After` says when to retry)"),
    ))]
#[tracing::instrument(name = "create_upload", skip_all, fields(user = %caller.user, file_id = tracing::field::Empty))]
async fn create_upload(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let allowed = ["filename", "contentType", "size", "sha256", "visibility", "tags", "metadata"];
    let req = JsonObject::parse(&body, &allowed)?;
    let declared = Declared {
        filename: DisplayName::parse(req.str("filename")?)?,
        content_type: ContentType::parse(req.str("contentType")?)?,
        size: req.u64("size")?,
        sha256: req.opt_str("sha256")?.map(Sha256::parse).transpose()?,
        labels: req.labels()?,
    };
    let (size, grant) = (declared.size, api.cases.grant(&caller.user, &client.0, declared).await?);
    metrics::emit("create_upload", &[("UploadsGranted", 1, Unit::Count), ("UploadBytesGranted", size, Unit::Bytes)]);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "fileId": grant.file_id.to_string(),
            "key": grant.key.as_str(),
            "upload": { "url": grant.post.url, "fields": grant.post.fields },
            "expiresAt": iso_seconds(grant.post.expires_at),
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
    State(api): State<Api>,
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
    let d = api.cases.download(&caller.user, &client.0, id, inline).await?;
    metrics::emit("download", &[("DownloadsGranted", 1, Unit::Count)]);
    Ok(Json(json!({
        "url": d.link.url,
        "expiresAt": iso_seconds(d.link.expires_at),
        "filename": d.record.filename.as_str(),
        "contentType": d.record.content_type.as_str(),
        "size": d.record.size,
    })))
}

#[cfg(test)]
mod tests;
