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
//! Reads the links' signing key from Secrets Manager at start ([`links_from_env`]).
//!
//! Each handler decodes the request, calls a use case of [`matbakh_app::shares`] and encodes
//! its answer; [`router`] runs them on the deployment's table and bucket, [`routes`] on any
//! implementation of the ports (the in-memory ones in `src/tests.rs`).

use std::sync::Arc;

use aws_config::SdkConfig;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use matbakh_api::audit::Client;
use matbakh_api::body::JsonObject;
use matbakh_api::{ApiError, Authenticator, Caller};
use matbakh_app::shares::{Links, ShareView, Shares};
use matbakh_aws::Services;
use matbakh_core::ids::FileId;
use matbakh_core::shares::{ShareKey, share_terms};
use matbakh_lambda::metrics::{self, Unit};
use serde_json::{Value, json};

/// The links' settings, read once at start: the key from the Secrets Manager secret
/// `SHARE_SIGNING_SECRET_ID` names (never an environment variable) and `PUBLIC_API_URL` (where
/// the API is reached from outside; without it, links are paths on the API's own origin). A
/// missing setting, an unreadable secret or a short key stops the function with the setting's
/// name.
pub async fn links_from_env(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Result<Links, String> {
    let secret_id = lookup("SHARE_SIGNING_SECRET_ID")
        .filter(|v| !v.is_empty())
        .ok_or("SHARE_SIGNING_SECRET_ID is not set: share links cannot be signed")?;
    let secret = matbakh_aws::secrets::secret_string(sdk, &secret_id)
        .await
        .map_err(|e| format!("SHARE_SIGNING_SECRET_ID {secret_id}: {e}"))?;
    let key = ShareKey::parse(&secret).map_err(|e| e.to_string())?;
    let public_api_url = lookup("PUBLIC_API_URL").filter(|v| !v.is_empty()).map(|v| v.trim_end_matches('/').to_owned());
    Ok(Links { key, public_api_url })
}

/// What the handlers use: the use cases and who may call them.
pub type Api = matbakh_api::Api<Shares>;

/// The function on the deployment's table and bucket.
pub fn router(services: Services, auth: Arc<Authenticator>, links: Links) -> Router {
    routes(Api { cases: services.shares(links), auth })
}

/// The function as its `main` wires it from the environment (the local gateway's in-process
/// mode wires it the same way): the table and bucket, the links' key and the files CDN's
/// signing key, with `auth` saying who the caller is.
pub async fn from_env(auth: Arc<Authenticator>) -> Result<Router, String> {
    let sdk = matbakh_aws::config::load_sdk_config().await;
    let links = links_from_env(&sdk, |k| std::env::var(k).ok()).await?;
    let cdn_signer = matbakh_aws::secrets::cdn_signer(&sdk, |k| std::env::var(k).ok()).await?;
    Ok(router(Services::from_env().await?.sign_with(cdn_signer), auth, links))
}

/// The function on any implementation of the ports (in memory, in tests).
pub fn routes(api: Api) -> Router {
    matbakh_api::openapi::serve(served(), api)
}

/// This function's part of the API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    matbakh_api::openapi::part(documented())
}

matbakh_api::routes!(Api; create, list, open, revoke);

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
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ShareView>), ApiError> {
    let body = if body.is_empty() { Bytes::from_static(b"{}") } else { body };
    let req = JsonObject::parse(&body, &["expiresIn", "maxDownloads"])?;
    let (ttl, max_downloads) = share_terms(req.opt_u64("expiresIn")?, req.opt_u64("maxDownloads")?)?;
    let id = FileId::parse(&raw_id).map_err(|_| ApiError::not_found("file"))?;
    let share = api.cases.create(&caller.user, &client.0, id, ttl, max_downloads).await?;
    metrics::emit("create_share", &[("SharesCreated", 1, Unit::Count)]);
    Ok((StatusCode::CREATED, Json(share)))
}

/// The caller's share links
///
/// Newest first, with their state and downloads.
#[utoipa::path(get, path = "/v1/shares", operation_id = "list_shares", tag = "shares",
    responses((status = 200, description = "`{shares: [Share]}`"), (status = 401, description = "No valid token")))]
#[tracing::instrument(name = "list_shares", skip_all, fields(user = %caller.user))]
async fn list(State(api): State<Api>, caller: Caller) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "shares": api.cases.list(&caller.user).await? })))
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
    State(api): State<Api>,
    caller: Caller,
    client: Client,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    api.cases.revoke(&caller.user, &client.0, &token).await?;
    Ok(StatusCode::NO_CONTENT)
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
async fn open(State(api): State<Api>, client: Client, Path(token): Path<String>) -> Result<Response, ApiError> {
    let url = api.cases.open(&client.0, &token).await?;
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

#[cfg(test)]
mod tests;
