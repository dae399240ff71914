//! Upload tokens and the Companion-shaped routes Uppy's `@uppy/aws-s3` (v6) calls in
//! `companionEndpoint` mode, which sends no `Authorization` header and no file size.
//!
//! - `POST /v1/upload-tokens {maxBytes?, types?, expiresIn?}` (JWT): mints a token and answers
//!   `{token, endpoint, expiresAt, maxBytes, types}`; `endpoint` is what the web app gives
//!   Uppy as `companionEndpoint`. `DELETE /v1/upload-tokens/{token}` revokes it at once.
//! - Under `/v1/uppy/{token}` (no login; the token is the capability), for the token's owner
//!   only: `GET /s3/params` (single upload: a POST policy whose size range is the token's
//!   remaining allowance), `POST /s3/multipart`, `GET /s3/multipart/{uploadId}/{partNumber}`,
//!   `GET /s3/multipart/{uploadId}` (parts), `POST /s3/multipart/{uploadId}/complete`,
//!   `DELETE /s3/multipart/{uploadId}`.
//!
//! What a token allows and how its uploads are bounded is [`matbakh_app::multipart::companion`]'s.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use matbakh_api::audit::Client;
use matbakh_api::body::JsonObject;
use matbakh_api::{ApiError, Caller};
use matbakh_app::multipart::companion::{MintRequest, Offered, TokenUpload};
use matbakh_core::clock::iso_seconds;
use matbakh_core::types::ContentType;
use matbakh_lambda::metrics::{self, Unit};
use serde_json::{Value, json};

use crate::Api;

matbakh_api::routes!(Api; mint, revoke, params, create, list_parts, abort, sign_part, complete);

/// The session a request names: its token, its upload id and (in the query) its key.
fn which<'a>(token: &'a str, upload_id: &'a str, q: &'a HashMap<String, String>) -> TokenUpload<'a> {
    TokenUpload { token, upload_id, key: q.get("key").map(String::as_str) }
}

/// Mints an upload token
///
/// A capability for Uppy's Companion mode, bounded in bytes, types and time. Answers
/// `{token, endpoint, expiresAt, maxBytes, types}`; `endpoint` is Uppy's `companionEndpoint`.
#[utoipa::path(post, path = "/v1/upload-tokens", operation_id = "mint_upload_token", tag = "multipart",
    request_body(content = Value, description = "`{maxBytes?, types?: [string], expiresIn?: seconds, visibility?, tags?, metadata?}` (the visibility, tags and metadata of every file uploaded with it)"),
    responses(
        (status = 201, description = "The token"),
        (status = 400, description = "The body is not valid (`field` names what)"),
        (status = 401, description = "No valid token"),
    ))]
#[tracing::instrument(name = "mint_upload_token", skip_all, fields(user = %caller.user))]
async fn mint(State(api): State<Api>, caller: Caller, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut request = MintRequest::default();
    if !body.is_empty() {
        let req = JsonObject::parse(&body, &["maxBytes", "types", "expiresIn", "visibility", "tags", "metadata"])?;
        request.max_bytes = req.opt_u64("maxBytes")?;
        request.labels = req.labels()?;
        request.expires_in = req.opt_u64("expiresIn")?;
        if let Some(list) = req.opt_array("types")? {
            request.types = list
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or_else(|| ApiError::bad_field("types", "types: must be strings"))
                        .and_then(|t| Ok(ContentType::parse(t)?))
                })
                .collect::<Result<Vec<_>, _>>()?;
        }
    }
    let minted = api.cases.mint(&caller.user, request).await?;
    let (token, grant) = (minted.token.expose(), &minted.grant);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "endpoint": format!("/v1/uppy/{token}"),
            "expiresAt": iso_seconds(grant.expires_at),
            "maxBytes": grant.max_bytes,
            "types": grant.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        })),
    ))
}

/// Revokes one of the caller's upload tokens at once
#[utoipa::path(delete, path = "/v1/upload-tokens/{token}", operation_id = "revoke_upload_token", tag = "multipart",
    params(("token" = String, Path, description = "The upload token")),
    responses((status = 204, description = "Revoked"), (status = 401, description = "No valid token"), (status = 404, description = "No such token of the caller's")))]
#[tracing::instrument(name = "revoke_upload_token", skip_all, fields(user = %caller.user))]
async fn revoke(State(api): State<Api>, caller: Caller, Path(raw): Path<String>) -> Result<StatusCode, ApiError> {
    api.cases.revoke_token(&caller.user, &raw).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Uppy: a single upload's POST policy (no login)
///
/// Sized 1 byte to what the token and the quota still allow; Uppy reads `url` and `fields`.
#[utoipa::path(get, path = "/v1/uppy/{token}/s3/params", operation_id = "uppy_params", tag = "multipart", security(()),
    params(("token" = String, Path, description = "The upload token (the capability: no login)"),
        ("filename" = String, Query, description = "The file's name"),
        ("type" = String, Query, description = "The file's content type")),
    responses(
        (status = 200, description = "`{method, url, fields}`"),
        (status = 400, description = "A parameter is not valid"),
        (status = 404, description = "Not a usable token, or not its upload"),
        (status = 409, description = "`quota_exceeded` or the token's allowance is spent"),
        (status = 429, description = "`rate_limited`: over the token owner's budget of upload grants (`Retry-After` says when to retry)"),
    ))]
#[tracing::instrument(name = "uppy_params", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn params(
    State(api): State<Api>,
    client: Client,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let offered =
        Offered { filename: q.get("filename").map(String::as_str), content_type: q.get("type").map(String::as_str) };
    let post = api.cases.token_post(&raw, &client.0, offered).await?;
    Ok(Json(json!({ "method": "POST", "url": post.url, "fields": post.fields, "headers": {} })))
}

/// Uppy: starts a multipart upload (no login)
#[utoipa::path(post, path = "/v1/uppy/{token}/s3/multipart", operation_id = "uppy_create", tag = "multipart", security(()),
    params(("token" = String, Path, description = "The upload token (the capability: no login)")),
    request_body(content = Value, description = "`{filename, type, metadata?}`"),
    responses(
        (status = 200, description = "`{key, uploadId}`"),
        (status = 400, description = "The body is not valid"),
        (status = 404, description = "Not a usable token, or not its upload"),
        (status = 429, description = "`too_many_open_uploads`, or `rate_limited`: over the caller's budget of upload grants (`Retry-After` says when to retry)"),
    ))]
#[tracing::instrument(name = "uppy_create", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn create(
    State(api): State<Api>,
    client: Client,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = JsonObject::parse(&body, &["filename", "type", "metadata"])?;
    let offered = Offered { filename: req.opt_str("filename")?, content_type: req.opt_str("type")? };
    let session = api.cases.token_start(&raw, &client.0, offered).await?;
    Ok(Json(json!({ "key": session.key.as_str(), "uploadId": session.upload_id.as_str() })))
}

/// Uppy: signs one part (no login)
#[utoipa::path(get, path = "/v1/uppy/{token}/s3/multipart/{uploadId}/{partNumber}", operation_id = "uppy_sign_part", tag = "multipart", security(()),
    params(("token" = String, Path, description = "The upload token (the capability: no login)"), ("uploadId" = String, Path, description = "The S3 upload id"),
        ("partNumber" = u32, Path, description = "1 to 10000"),
        ("key" = String, Query, description = "The object key the upload was created for")),
    responses(
        (status = 200, description = "`{url, expires}`"),
        (status = 400, description = "A parameter is not valid"),
        (status = 404, description = "Not a usable token, or not its upload"),
        (status = 409, description = "The session ended"),
    ))]
#[tracing::instrument(name = "uppy_sign_part", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn sign_part(
    State(api): State<Api>,
    Path((raw, raw_id, raw_part)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (url, ttl) = api.cases.token_sign_part(which(&raw, &raw_id, &q), &raw_part).await?;
    Ok(Json(json!({ "url": url.url, "expires": ttl.as_secs() })))
}

/// Uppy: the parts S3 holds, to resume (no login)
#[utoipa::path(get, path = "/v1/uppy/{token}/s3/multipart/{uploadId}", operation_id = "uppy_list_parts", tag = "multipart", security(()),
    params(("token" = String, Path, description = "The upload token (the capability: no login)"), ("uploadId" = String, Path, description = "The S3 upload id"), ("key" = String, Query, description = "The object key")),
    responses((status = 200, description = "`[{PartNumber, Size, ETag}]`"), (status = 404, description = "Not a usable token, or not its upload")))]
#[tracing::instrument(name = "uppy_list_parts", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn list_parts(
    State(api): State<Api>,
    Path((raw, raw_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let parts = api.cases.token_parts(which(&raw, &raw_id, &q)).await?;
    Ok(Json(parts.iter().map(|p| json!({"PartNumber": p.number.get(), "Size": p.size, "ETag": p.etag})).collect()))
}

/// Uppy: completes a multipart upload (no login)
///
/// The server sums the parts S3 holds and charges them to the token's allowance and the
/// quota in one transaction, or aborts the upload.
#[utoipa::path(post, path = "/v1/uppy/{token}/s3/multipart/{uploadId}/complete", operation_id = "uppy_complete", tag = "multipart", security(()),
    params(("token" = String, Path, description = "The upload token (the capability: no login)"), ("uploadId" = String, Path, description = "The S3 upload id"), ("key" = String, Query, description = "The object key")),
    request_body(content = Value, description = "`{parts: [{PartNumber, ETag}]}`"),
    responses(
        (status = 200, description = "`{location}`"),
        (status = 400, description = "The parts are not valid"),
        (status = 404, description = "Not a usable token, or not its upload"),
        (status = 409, description = "The session ended, or the parts are not what S3 holds"),
        (status = 413, description = "More bytes than the token or quota allows: aborted"),
    ))]
#[tracing::instrument(name = "uppy_complete", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn complete(
    State(api): State<Api>,
    Path((raw, raw_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let done = api
        .cases
        .token_complete(which(&raw, &raw_id, &q))
        .await
        .inspect_err(|e| crate::count_refusal("uppy_complete", e))?;
    if let Some(size) = done.size {
        metrics::emit(
            "uppy_complete",
            &[("MultipartUploadsCompleted", 1, Unit::Count), ("UploadBytes", size, Unit::Bytes)],
        );
    }
    let session = &done.session;
    Ok(Json(json!({
        "location": format!("/v1/files/{}", session.file_id),
        "key": session.key.as_str(),
        "etag": done.etag,
    })))
}

/// Uppy: aborts a multipart upload (no login)
#[utoipa::path(delete, path = "/v1/uppy/{token}/s3/multipart/{uploadId}", operation_id = "uppy_abort", tag = "multipart", security(()),
    params(("token" = String, Path, description = "The upload token (the capability: no login)"), ("uploadId" = String, Path, description = "The S3 upload id"), ("key" = String, Query, description = "The object key")),
    responses((status = 200, description = "Aborted"), (status = 404, description = "Not a usable token, or not its upload")))]
#[tracing::instrument(name = "uppy_abort", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn abort(
    State(api): State<Api>,
    Path((raw, raw_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    api.cases.token_abort(which(&raw, &raw_id, &q)).await?;
    Ok(Json(json!({})))
}
