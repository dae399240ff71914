//! `shares`: links that let anyone download one file, for a while, a number of times.
//!
//! Triggered by API Gateway (HTTP API):
//! - `POST /v1/files/{fileId}/shares {expiresIn?, maxDownloads?}` (JWT): a signed, expiring
//!   link to the caller's file.
//! - `GET /v1/shares` (JWT): the caller's links, newest first, with their state and downloads.
//! - `DELETE /v1/shares/{token}` (JWT): revokes the caller's link at once.
//! - `GET /v1/shares/{token}` (no login: `Auth: NONE`): counts a download and redirects to a
//!   presigned GET of the file, valid
//!   [`DEFAULT_SHARE_REDIRECT_TTL`](matbakh_core::shares::DEFAULT_SHARE_REDIRECT_TTL) (a
//!   minute), so a revoked link's last redirects stop working within it. An expired, revoked or
//!   used-up link answers 410; anything else that is not a live link 404, revealing nothing
//!   about the file or its owner. The owner's trail records each use and its outcome, not the
//!   visitor's address.
//!
//! Reads and writes: share rows and file rows in the metadata table; signs GETs of `users/*`.
//! Reads the links' signing key from Secrets Manager at start ([`Links`]).

use std::sync::Arc;

use aws_config::SdkConfig;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use matbakh_api::audit::{self, Client};
use matbakh_api::body::JsonObject;
use matbakh_api::metrics::{self, Unit};
use matbakh_api::{ApiError, Caller, Services, random_bytes};
use matbakh_app::audit::Access;
use matbakh_aws::shares::Share;
use matbakh_core::audit::AuditAction;
use matbakh_core::clock::iso_seconds;
use matbakh_core::ids::FileId;
use matbakh_core::metadata::FileStatus;
use matbakh_core::names::content_disposition;
use matbakh_core::shares::{ShareId, ShareKey, ShareRefusal, is_expired, share_terms};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Links the owner's list shows at most.
pub const SHARES_LISTED: i32 = 100;

pub fn router(services: Services, links: Links) -> Router {
    let (router, _) = documented().split_for_parts();
    router.fallback(|| async { ApiError::not_found("route") }).layer(Extension(Arc::new(links))).with_state(services)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

fn documented() -> OpenApiRouter<Services> {
    OpenApiRouter::new().routes(routes!(create)).routes(routes!(list)).routes(routes!(open, revoke))
}

/// How links are made: typed configuration, read once at start.
#[derive(Debug, Clone)]
pub struct Links {
    /// Signs and opens tokens: the Secrets Manager secret `SHARE_SIGNING_SECRET_ID` names
    /// (Base64 of at least 32 bytes), never an environment variable.
    pub key: ShareKey,
    /// Where the API is reached from outside (`PUBLIC_API_URL`); without it, links are paths on
    /// the API's own origin.
    pub public_api_url: Option<String>,
}

impl Links {
    /// At start: a missing setting, an unreadable secret or a short key stops the function
    /// with the setting's name.
    pub async fn from_env(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let secret_id = lookup("SHARE_SIGNING_SECRET_ID")
            .filter(|v| !v.is_empty())
            .ok_or("SHARE_SIGNING_SECRET_ID is not set: share links cannot be signed")?;
        let secret = matbakh_aws::secrets::secret_string(sdk, &secret_id)
            .await
            .map_err(|e| format!("SHARE_SIGNING_SECRET_ID {secret_id}: {e}"))?;
        let key = ShareKey::parse(&secret).map_err(|e| e.to_string())?;
        let public_api_url =
            lookup("PUBLIC_API_URL").filter(|v| !v.is_empty()).map(|v| v.trim_end_matches('/').to_owned());
        Ok(Links { key, public_api_url })
    }

    fn url(&self, token: &str) -> String {
        format!("{}/v1/shares/{token}", self.public_api_url.as_deref().unwrap_or(""))
    }
}

fn view(st: &Services, links: &Links, x: &Share) -> Result<Value, ApiError> {
    let now = st.clock.now();
    let state = if x.revoked {
        "revoked"
    } else if is_expired(x.expires_at, now) {
        "expired"
    } else if x.max_downloads.is_some_and(|m| x.downloads >= m) {
        "used_up"
    } else {
        "active"
    };
    let token = links.key.token(&x.id, x.expires_at);
    Ok(json!({
        "token": token,
        "url": links.url(&token),
        "fileId": x.file_id.to_string(),
        "createdAt": iso_seconds(x.created_at),
        "expiresAt": iso_seconds(x.expires_at),
        "maxDownloads": x.max_downloads,
        "downloads": x.downloads,
        "state": state,
    }))
}

/// Shares one of the caller's files by link
///
/// A signed link that anyone holding it can use to download the file, until it expires, is
/// revoked or is used up. Answers the share with its `url`.
#[utoipa::path(post, path = "/v1/files/{fileId}/shares", operation_id = "create_share", tag = "shares",
    params(("fileId" = String, Path, description = "The file's id")),
    request_body(content = Value, description = "`{expiresIn?: seconds, maxDownloads?: number}`"),
    responses(
        (status = 201, description = "The share"),
        (status = 400, description = "The body is not valid (`field` names what)"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such file of the caller's"),
        (status = 409, description = "`not_shareable`: the file is not stored and checked"),
    ))]
#[tracing::instrument(name = "create_share", skip_all, fields(user = %caller.user, file_id = %raw_id))]
async fn create(
    State(st): State<Services>,
    Extension(links): Extension<Arc<Links>>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // No body: the default terms.
    let body = if body.is_empty() { Bytes::from_static(b"{}") } else { body };
    let req = JsonObject::parse(&body, &["expiresIn", "maxDownloads"])?;
    let (ttl, max_downloads) = share_terms(req.opt_u64("expiresIn")?, req.opt_u64("maxDownloads")?)?;
    let id = FileId::parse(&raw_id).map_err(|_| ApiError::not_found("file"))?;
    let file =
        st.table.get_file(id).await?.filter(|r| r.owner == caller.user).ok_or_else(|| ApiError::not_found("file"))?;
    if !matches!(file.status, FileStatus::Ready | FileStatus::Failed) {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_shareable", "only a stored, checked file can be shared"));
    }
    let now = st.clock.now();
    let share = Share {
        id: ShareId::from_random(random_bytes()?),
        file_id: id,
        owner: caller.user.clone(),
        created_at: now,
        // Whole seconds: what the token carries.
        expires_at: (now + ttl).replace_nanosecond(0).unwrap_or(now + ttl),
        max_downloads,
        downloads: 0,
        revoked: false,
    };
    st.table.put_share(&share).await?;
    let access = Access::ok(&caller.user, AuditAction::ShareCreate, Some(id));
    audit::record(&st, &client, access).await?;
    tracing::info!(share = %share.id, ttl = ttl.as_secs(), "share created");
    metrics::emit("create_share", &[("SharesCreated", 1, Unit::Count)]);
    Ok((StatusCode::CREATED, Json(view(&st, &links, &share)?)))
}

/// The caller's share links
///
/// Newest first, with their state and downloads.
#[utoipa::path(get, path = "/v1/shares", operation_id = "list_shares", tag = "shares",
    responses((status = 200, description = "`{shares: [Share]}`"), (status = 401, description = "No valid token")))]
#[tracing::instrument(name = "list_shares", skip_all, fields(user = %caller.user))]
async fn list(
    State(st): State<Services>,
    Extension(links): Extension<Arc<Links>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let shares = st.table.list_shares(&caller.user, SHARES_LISTED).await?;
    let views = shares.iter().map(|x| view(&st, &links, x)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "shares": views })))
}

/// Revokes one of the caller's links at once
#[utoipa::path(delete, path = "/v1/shares/{token}", operation_id = "revoke_share", tag = "shares",
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such link of the caller's"),
    ))]
#[tracing::instrument(name = "revoke_share", skip_all, fields(user = %caller.user))]
async fn revoke(
    State(st): State<Services>,
    Extension(links): Extension<Arc<Links>>,
    caller: Caller,
    client: Client,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    // An expired link can still be revoked (it then stays dead if its row outlived the expiry).
    let (id, _) = links.key.open(&token).map_err(|_| ApiError::not_found("share"))?;
    let share = st.table.revoke_share(&id, &caller.user).await?.ok_or_else(|| ApiError::not_found("share"))?;
    let file_id = Some(share.file_id);
    let access = Access::ok(&caller.user, AuditAction::ShareRevoke, file_id);
    audit::record(&st, &client, access).await?;
    tracing::info!(share = %id, "share revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn refused(why: ShareRefusal) -> ApiError {
    match why {
        ShareRefusal::Unknown => ApiError::not_found("share"),
        ShareRefusal::Expired => ApiError::new(StatusCode::GONE, "share_expired", "this link has expired"),
        ShareRefusal::Revoked => ApiError::new(StatusCode::GONE, "share_revoked", "this link was revoked"),
        ShareRefusal::Exhausted => {
            ApiError::new(StatusCode::GONE, "share_used_up", "this link has been used as often as it allows")
        }
        ShareRefusal::FileGone => ApiError::new(StatusCode::GONE, "file_gone", "the shared file was deleted"),
    }
}

/// Opens a share link (no login)
///
/// Counts a download and redirects to a presigned GET of the file, valid a minute. Reveals
/// nothing about the file or its owner to anyone without a live link.
#[utoipa::path(get, path = "/v1/shares/{token}", operation_id = "open_share", tag = "shares", security(()),
    params(("token" = String, Path, description = "The link's token")),
    responses(
        (status = 302, description = "To the file's bytes"),
        (status = 404, description = "Not a live link"),
        (status = 410, description = "`share_expired`, `share_revoked`, `share_used_up` or `file_gone`"),
    ))]
#[tracing::instrument(name = "open_share", skip_all, fields(share = tracing::field::Empty))]
async fn open(
    State(st): State<Services>,
    Extension(links): Extension<Arc<Links>>,
    client: Client,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let now = st.clock.now();
    // A token this platform did not sign names no share: nothing to record, nothing revealed.
    let (id, expires_at) = links.key.open(&token).map_err(refused)?;
    tracing::Span::current().record("share", tracing::field::display(id));
    let share = st.table.get_share(&id).await?.ok_or_else(|| refused(ShareRefusal::Unknown))?;
    // From here on the owner's trail records the attempt, whatever its outcome.
    let outcome =
        if is_expired(expires_at, now) { Err(ShareRefusal::Expired) } else { download(&st, &share, now).await? };
    let result = match outcome {
        Ok(_) => "ok",
        Err(ShareRefusal::Expired) => "expired",
        Err(ShareRefusal::Revoked) => "revoked",
        Err(ShareRefusal::Exhausted) => "used_up",
        Err(ShareRefusal::FileGone) => "file_gone",
        Err(ShareRefusal::Unknown) => "unknown",
    };
    let access = Access {
        owner: &share.owner,
        action: AuditAction::ShareDownload,
        file_id: Some(share.file_id),
        actor: Some(format!("share:{id}")),
        result,
    };
    audit::record(&st, &client, access).await?;
    let url = outcome.map_err(refused)?;
    metrics::emit("open_share", &[("ShareDownloads", 1, Unit::Count)]);
    let location = HeaderValue::from_str(&url).map_err(|e| ApiError::internal(&e))?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
    )
        .into_response())
}

/// Spends one download of a live share of a live file: the presigned GET, or why not. The file
/// is checked first, so a deleted file's link spends nothing.
async fn download(
    st: &Services,
    share: &Share,
    now: time::OffsetDateTime,
) -> Result<Result<String, ShareRefusal>, ApiError> {
    let file = st
        .table
        .get_file(share.file_id)
        .await?
        .filter(|r| r.owner == share.owner && matches!(r.status, FileStatus::Ready | FileStatus::Failed));
    let Some(file) = file else { return Ok(Err(ShareRefusal::FileGone)) };
    let used = match st.table.use_share(&share.id, now).await? {
        Ok(used) => used,
        Err(why) => return Ok(Err(why)),
    };
    let get = st
        .store
        .presign_download(
            &file.key,
            file.version_id.as_deref(),
            file.content_type.as_str(),
            &content_disposition(&file.filename, file.content_type, false),
            now,
            st.limits.share_redirect_ttl,
        )
        .await?;
    tracing::info!(downloads = used.downloads, "share used");
    Ok(Ok(get.url))
}
