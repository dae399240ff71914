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
//! Uppy picks its own part sizes and sends neither them nor the file's size in this mode, so
//! parts are signed without a length; the server completes the upload itself after summing
//! ListParts, and charges the total to the token's allowance and the user's quota in one
//! transaction, or aborts. What bounds the uncounted parts meanwhile: each session takes one of
//! the user's `MAX_OPEN_UPLOADS` places, signs no part after it expires (with the token, or
//! `UPLOAD_SESSION_TTL_SECONDS`), and the sweeper then aborts its S3 upload. An unknown, expired or revoked token,
//! and a session or key that is not the token's, all answer alike.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use matbakh_api::audit::{self, Client};
use matbakh_api::body::JsonObject;
use matbakh_api::metrics::{self, Unit};
use matbakh_api::{ApiError, Caller, Services};
use matbakh_app::audit::Access;
use matbakh_app::ports::{PartUpload, Upload};
use matbakh_aws::AwsError;
use matbakh_core::audit::AuditAction;
use matbakh_core::clock::iso_seconds;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::limits::MAX_SINGLE_UPLOAD_BYTES;
use matbakh_core::metadata::FileRecord;
use matbakh_core::multipart::{
    Completion, PartNumber, SessionLimit, SessionState, UploadId, UploadSession, UploadedPart, check_parts,
};
use matbakh_core::names::{DisplayName, SafeName};
use matbakh_core::tokens::{
    DEFAULT_UPLOAD_TOKEN_MAX_BYTES, DEFAULT_UPLOAD_TOKEN_TTL, MAX_UPLOAD_TOKEN_TTL, TokenGrant, UploadToken,
    check_distinct_types,
};
use matbakh_core::types::ContentType;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<Services> {
    OpenApiRouter::new()
        .routes(routes!(mint))
        .routes(routes!(revoke))
        .routes(routes!(params))
        .routes(routes!(create))
        .routes(routes!(list_parts, abort))
        .routes(routes!(sign_part))
        .routes(routes!(complete))
}

/// The most a Companion-mode single upload may be, and so reserves while it is under way:
/// Uppy sends no size for it and switches to multipart above 100 MiB by default
/// (`shouldUseMultipart`), so a token's allowance is not held whole by one upload.
pub const MAX_UNSIZED_TOKEN_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

fn invalid_token() -> ApiError {
    ApiError::unauthorized("this upload link is not valid (unknown, expired or revoked)")
}

/// The grant behind a presented token, if it is usable now.
async fn grant(st: &Services, raw: &str) -> Result<TokenGrant, ApiError> {
    let token = UploadToken::parse(raw).map_err(|_| invalid_token())?;
    let grant = st.table.get_token(&token.digest()).await?.ok_or_else(invalid_token)?;
    if !grant.usable(st.clock.now()) {
        return Err(invalid_token());
    }
    tracing::Span::current().record("token", tracing::field::display(&grant.digest[..12]));
    tracing::Span::current().record("user", tracing::field::display(&grant.owner));
    Ok(grant)
}

/// The token's open session `raw_id` for object `key`, or 404.
async fn token_session(
    st: &Services,
    grant: &TokenGrant,
    raw_id: &str,
    key: Option<&String>,
) -> Result<UploadSession, ApiError> {
    let id = UploadId::parse(raw_id).map_err(|_| ApiError::not_found("upload"))?;
    st.table
        .get_session(&id)
        .await?
        .filter(|x| x.token.as_deref() == Some(grant.digest.as_str()) && key.is_some_and(|k| k == x.key.as_str()))
        .ok_or_else(|| ApiError::not_found("upload"))
}

/// Mints an upload token
///
/// A capability for Uppy's Companion mode, bounded in bytes, types and time. Answers
/// `{token, endpoint, expiresAt, maxBytes, types}`; `endpoint` is Uppy's `companionEndpoint`.
#[utoipa::path(post, path = "/v1/upload-tokens", operation_id = "mint_upload_token", tag = "multipart",
    request_body(content = Value, description = "`{maxBytes?, types?: [string], expiresIn?: seconds}`"),
    responses(
        (status = 201, description = "The token"),
        (status = 400, description = "The body is not valid (`field` names what)"),
        (status = 401, description = "No valid token"),
    ))]
#[tracing::instrument(name = "mint_upload_token", skip_all, fields(user = %caller.user))]
async fn mint(State(st): State<Services>, caller: Caller, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = if body.is_empty() { None } else { Some(JsonObject::parse(&body, &["maxBytes", "types", "expiresIn"])?) };
    let max_bytes = match req.as_ref().map(|r| r.opt_u64("maxBytes")).transpose()?.flatten() {
        Some(0) => return Err(ApiError::bad_field("maxBytes", "maxBytes: must be at least 1")),
        Some(n) => n.min(st.limits.user_quota_bytes),
        None => DEFAULT_UPLOAD_TOKEN_MAX_BYTES.min(st.limits.user_quota_bytes),
    };
    let types = match req.as_ref().map(|r| r.opt_array("types")).transpose()?.flatten() {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .map(|t| {
                t.as_str()
                    .ok_or_else(|| ApiError::bad_field("types", "types: must be strings"))
                    .and_then(|t| Ok(ContentType::parse(t)?))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    check_distinct_types(&types)?;
    let ttl = match req.as_ref().map(|r| r.opt_u64("expiresIn")).transpose()?.flatten() {
        None => DEFAULT_UPLOAD_TOKEN_TTL,
        Some(s) if s >= 60 && Duration::from_secs(s) <= MAX_UPLOAD_TOKEN_TTL => Duration::from_secs(s),
        Some(_) => return Err(ApiError::bad_field("expiresIn", "expiresIn: must be 60 seconds to 24 hours")),
    };
    let token = UploadToken::from_random(matbakh_app::random::bytes()?);
    let grant = TokenGrant {
        digest: token.digest(),
        owner: caller.user,
        max_bytes,
        used_bytes: 0,
        types,
        expires_at: st.clock.now() + ttl,
        revoked: false,
    };
    st.table.put_token(&grant).await?;
    tracing::info!(token = &grant.digest[..12], max_bytes, "upload token minted");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token.expose(),
            "endpoint": format!("/v1/uppy/{}", token.expose()),
            "expiresAt": iso_seconds(grant.expires_at),
            "maxBytes": max_bytes,
            "types": grant.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        })),
    ))
}

/// Revokes one of the caller's upload tokens at once
#[utoipa::path(delete, path = "/v1/upload-tokens/{token}", operation_id = "revoke_upload_token", tag = "multipart",
    params(("token" = String, Path, description = "The upload token")),
    responses((status = 204, description = "Revoked"), (status = 401, description = "No valid token"), (status = 404, description = "No such token of the caller's")))]
#[tracing::instrument(name = "revoke_upload_token", skip_all, fields(user = %caller.user))]
async fn revoke(State(st): State<Services>, caller: Caller, Path(raw): Path<String>) -> Result<StatusCode, ApiError> {
    let token = UploadToken::parse(&raw).map_err(|_| ApiError::not_found("upload token"))?;
    if st.table.revoke_token(&token.digest(), &caller.user).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("upload token"))
    }
}

fn filename_and_type(
    grant: &TokenGrant,
    filename: Option<&str>,
    content_type: Option<&str>,
) -> Result<(DisplayName, ContentType), ApiError> {
    let name = DisplayName::parse(filename.ok_or_else(|| ApiError::bad_field("filename", "filename: is required"))?)?;
    let content_type =
        ContentType::parse(content_type.ok_or_else(|| ApiError::bad_field("type", "type: is required"))?)?;
    grant.check_type(content_type)?;
    Ok((name, content_type))
}

/// Single upload: a POST policy for one key, sized 1 byte to what the token and the quota
/// still allow (at most [`MAX_UNSIZED_TOKEN_UPLOAD_BYTES`]: Uppy sends no size). That bound is
/// reserved against the token and the quota until the object arrives, which gives back what it
/// did not use. Uppy reads `url` and `fields`.
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
    ))]
#[tracing::instrument(name = "uppy_params", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn params(
    State(st): State<Services>,
    client: Client,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let grant = grant(&st, &raw).await?;
    let (name, content_type) =
        filename_and_type(&grant, q.get("filename").map(String::as_str), q.get("type").map(String::as_str))?;
    let usage = st.table.usage(&grant.owner).await?;
    let room = st.limits.user_quota_bytes.saturating_sub(usage.charged);
    let max = grant
        .remaining()
        .min(room)
        .min(content_type.max_bytes())
        .min(MAX_SINGLE_UPLOAD_BYTES)
        .min(MAX_UNSIZED_TOKEN_UPLOAD_BYTES);
    if max == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "quota_exceeded",
            "this upload link or your storage has no room left",
        ));
    }
    let now = st.clock.now();
    let file_id = matbakh_app::random::file_id(now)?;
    // The size is not known yet: the row holds the most the policy allows and reserves it
    // against the token and the quota; the object-created event settles both to what arrived.
    let record = FileRecord {
        size: max,
        expires_at: Some(now + st.limits.pending_ttl),
        ..FileRecord::upload(file_id, grant.owner.clone(), name, content_type, now)
    };
    let upload = Upload {
        key: &record.key,
        content_type,
        size: 1..=max,
        sha256: None,
        signed_at: now,
        ttl: st.limits.upload_url_ttl,
    };
    let post = st.store.presign_upload(&upload).await?;
    match st.table.reserve_token_upload(&grant, &record, st.limits.user_quota_bytes).await {
        Ok(()) => {}
        Err(AwsError::QuotaExceeded) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "quota_exceeded",
                "this upload link or your storage has no room left",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    record_upload(&st, &client, &grant.owner, file_id).await?;
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
        (status = 429, description = "`too_many_open_uploads`"),
    ))]
#[tracing::instrument(name = "uppy_create", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn create(
    State(st): State<Services>,
    client: Client,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let grant = grant(&st, &raw).await?;
    let req = JsonObject::parse(&body, &["filename", "type", "metadata"])?;
    let (filename, content_type) = filename_and_type(&grant, req.opt_str("filename")?, req.opt_str("type")?)?;
    let now = st.clock.now();
    let file_id = matbakh_app::random::file_id(now)?;
    let key = ObjectKey::original(&grant.owner, file_id, &SafeName::from_display(&filename));
    let upload_id = st.store.create_multipart(&key, content_type.as_str(), None).await?;
    let session = UploadSession {
        upload_id: upload_id.clone(),
        file_id,
        owner: grant.owner.clone(),
        key: key.clone(),
        filename,
        content_type,
        integrity: None,
        limit: SessionLimit::Allowance(grant.remaining().min(content_type.max_bytes())),
        token: Some(grant.digest.clone()),
        created_at: now,
        expires_at: (now + st.limits.upload_session_ttl).min(grant.expires_at),
        state: SessionState::Open,
    };
    if let Err(e) = st.table.put_session(&session, st.limits.max_open_uploads).await {
        // Nothing may stay behind: the S3 upload goes too.
        if let Err(abort) = st.store.abort_multipart(&key, &upload_id).await {
            tracing::warn!(error = %abort, "could not abort the refused upload; the lifecycle rule will");
        }
        return Err(e.into());
    }
    record_upload(&st, &client, &grant.owner, file_id).await?;
    Ok(Json(json!({ "key": key.as_str(), "uploadId": upload_id.as_str() })))
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
    State(st): State<Services>,
    Path((raw, raw_id, raw_part)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let grant = grant(&st, &raw).await?;
    let part =
        raw_part.parse::<u64>().map_err(|_| ApiError::bad_field("partNumber", "partNumber: must be a number"))?;
    let part = PartNumber::new(part)?;
    let session = token_session(&st, &grant, &raw_id, q.get("key")).await?;
    let now = st.clock.now();
    if session.state != SessionState::Open || now >= session.expires_at {
        return Err(ApiError::new(StatusCode::CONFLICT, "upload_finished", "this upload no longer takes parts"));
    }
    let ttl = st.limits.part_url_ttl.min((session.expires_at - now).unsigned_abs());
    let signed = PartUpload {
        key: &session.key,
        upload_id: &session.upload_id,
        part,
        content_length: None,
        checksum: None,
        signed_at: now,
        ttl,
    };
    let url = st.store.presign_part(&signed).await?;
    Ok(Json(json!({ "url": url.url, "expires": ttl.as_secs() })))
}

/// Uppy: the parts S3 holds, to resume (no login)
#[utoipa::path(get, path = "/v1/uppy/{token}/s3/multipart/{uploadId}", operation_id = "uppy_list_parts", tag = "multipart", security(()),
    params(("token" = String, Path, description = "The upload token (the capability: no login)"), ("uploadId" = String, Path, description = "The S3 upload id"), ("key" = String, Query, description = "The object key")),
    responses((status = 200, description = "`[{PartNumber, Size, ETag}]`"), (status = 404, description = "Not a usable token, or not its upload")))]
#[tracing::instrument(name = "uppy_list_parts", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn list_parts(
    State(st): State<Services>,
    Path((raw, raw_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let grant = grant(&st, &raw).await?;
    let session = token_session(&st, &grant, &raw_id, q.get("key")).await?;
    let parts = st.store.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default();
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
    State(st): State<Services>,
    Path((raw, raw_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let grant = grant(&st, &raw).await?;
    let session = token_session(&st, &grant, &raw_id, q.get("key")).await?;
    let done = |etag: &str| {
        Json(json!({ "location": format!("/v1/files/{}", session.file_id), "key": session.key.as_str(), "etag": etag }))
    };
    match &session.state {
        SessionState::Completed { etag } => return Ok(done(etag)),
        SessionState::Aborted => {
            return Err(ApiError::new(StatusCode::CONFLICT, "upload_finished", "this upload was aborted"));
        }
        SessionState::Open => {}
    }
    // The server trusts what S3 lists, not the parts the client sends.
    let parts: Vec<UploadedPart> = st.store.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default();
    let ready = match check_parts(&session.limit, &parts) {
        Completion::Ready(ready) => ready,
        Completion::Missing(_) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "parts_missing", "no parts, or a gap in the part numbers"));
        }
        Completion::Oversize { received } => {
            return Err(refuse(&st, &session, received, "is more than this upload link allows").await);
        }
    };
    let total: u64 = ready.iter().map(|p| p.size).sum();
    let record = FileRecord {
        size: total,
        key: session.key.clone(),
        ..FileRecord::upload(
            session.file_id,
            session.owner.clone(),
            session.filename.clone(),
            session.content_type,
            session.created_at,
        )
    };
    match st.table.charge_token_upload(&grant, &record, st.limits.user_quota_bytes).await {
        Ok(()) => {}
        Err(AwsError::QuotaExceeded) => {
            return Err(refuse(&st, &session, total, "is more than the upload link or your storage has room for").await);
        }
        Err(e) => return Err(e.into()),
    }
    let etag =
        st.store.complete_multipart(&session.key, &session.upload_id, &ready, session.integrity.as_ref()).await?;
    st.table.complete_session(&session, &etag).await?;
    tracing::info!(size = total, "uppy multipart upload completed");
    metrics::emit(
        "uppy_complete",
        &[("MultipartUploadsCompleted", 1, Unit::Count), ("UploadBytes", total, Unit::Bytes)],
    );
    Ok(done(&etag))
}

/// Aborts an upload that broke its limits and answers why.
async fn refuse(st: &Services, session: &UploadSession, bytes: u64, why: &str) -> ApiError {
    if let Err(e) = crate::abort_upload(st, session).await {
        return e;
    }
    tracing::warn!(bytes, "uppy upload over its limits; aborted");
    metrics::emit("uppy_complete", &[("UploadsRefusedOversize", 1, Unit::Count)]);
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_oversize",
        format!("{bytes} bytes {why}; the upload was aborted"),
    )
}

/// Uppy: aborts a multipart upload (no login)
#[utoipa::path(delete, path = "/v1/uppy/{token}/s3/multipart/{uploadId}", operation_id = "uppy_abort", tag = "multipart", security(()),
    params(("token" = String, Path, description = "The upload token (the capability: no login)"), ("uploadId" = String, Path, description = "The S3 upload id"), ("key" = String, Query, description = "The object key")),
    responses((status = 200, description = "Aborted"), (status = 404, description = "Not a usable token, or not its upload")))]
#[tracing::instrument(name = "uppy_abort", skip_all, fields(token = tracing::field::Empty, user = tracing::field::Empty))]
async fn abort(
    State(st): State<Services>,
    Path((raw, raw_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let grant = grant(&st, &raw).await?;
    let session = token_session(&st, &grant, &raw_id, q.get("key")).await?;
    if session.state == SessionState::Open {
        crate::abort_upload(&st, &session).await?;
    }
    Ok(Json(json!({})))
}

/// An upload granted through a token, in the owner's audit trail.
async fn record_upload(st: &Services, client: &Client, owner: &UserId, file_id: FileId) -> Result<(), ApiError> {
    let access = Access {
        owner,
        action: AuditAction::Upload,
        file_id: Some(file_id),
        actor: Some("upload-token".into()),
        result: "ok",
    };
    audit::record(st, client, access).await
}
