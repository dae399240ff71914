//! `POST /v1/uploads/sign` (JWT): Uppy's `signRequest` mode. The web app's `signRequest`
//! callback forwards each request Uppy wants to send to S3, `{method, key, uploadId?,
//! partNumber?, contentType?, filename?, size?}`, and gets back `{url, key?, fields?, headers?}`
//! (`headers`: signed, sent with the request; Uppy's own `Content-Type` gives way to them).
//! What is signed, and what refused, is [`matbakh_app::multipart::sign`]'s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use matbakh_api::audit::Client;
use matbakh_api::body::JsonObject;
use matbakh_api::{ApiError, Caller};
use matbakh_app::multipart::sign::SignRequest;
use matbakh_core::multipart::UploadId;
use serde_json::{Value, json};

use crate::Api;

/// Signs a request Uppy wants to send to S3 (`signRequest` mode)
///
/// The server chooses every key and signs only requests about its own keys and sessions:
/// PutObject (a POST policy), CreateMultipartUpload (with `size`, reserved), UploadPart (for its
/// planned length), ListParts, CompleteMultipartUpload and AbortMultipartUpload.
#[utoipa::path(post, path = "/v1/uploads/sign", operation_id = "sign_request", tag = "multipart",
    request_body(content = Value, description = "`{method, key, uploadId?, partNumber?, contentType?, filename?, size?}`"),
    responses(
        (status = 200, description = "`{url, key?, fields?, headers?}`: `headers` are signed and must be sent (CreateMultipartUpload: the `content-type` the server chose)"),
        (status = 400, description = "The request is not one the server signs (`field` names why)"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such key or upload of the caller's"),
        (status = 409, description = "`quota_exceeded`, `account_erased`, or the key already has an upload"),
        (status = 410, description = "`upload_expired`"),
        (status = 429, description = "`too_many_open_uploads`, or `rate_limited`: over the caller's budget of upload grants (`Retry-After` says when to retry)"),
    ))]
#[tracing::instrument(name = "sign_request", skip_all, fields(user = %caller.user, op = tracing::field::Empty))]
pub async fn sign(
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = JsonObject::parse(
        &body,
        &[
            "method",
            "key",
            "uploadId",
            "partNumber",
            "contentType",
            "filename",
            "size",
            "expiresIn",
            "visibility",
            "tags",
            "metadata",
        ],
    )?;
    let request = SignRequest {
        method: req.str("method")?,
        key: req.str("key")?,
        upload_id: req.opt_str("uploadId")?.map(UploadId::parse).transpose()?,
        part_number: req.opt_u64("partNumber")?,
        content_type: req.opt_str("contentType")?,
        filename: req.opt_str("filename")?,
        size: req.opt_u64("size")?,
        labels: req.labels()?,
    };
    let signed = api.cases.sign_request(&caller.user, &client.0, request).await?;
    let mut body = json!({ "url": signed.url });
    if let Some(fields) = signed.fields {
        body["fields"] = json!(fields);
    }
    if let Some(key) = signed.key {
        body["key"] = json!(key.as_str());
    }
    if !signed.headers.is_empty() {
        body["headers"] = json!(signed.headers);
    }
    Ok(Json(body))
}
