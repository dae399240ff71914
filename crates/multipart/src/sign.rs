//! `POST /v1/uploads/sign` (JWT): Uppy's `signRequest` mode. The web app's `signRequest`
//! callback forwards each request Uppy wants to send to S3, `{method, key, uploadId?,
//! partNumber?, contentType?, filename?, size?}`, and gets back `{url, key?, fields?}`.
//!
//! The server chooses every key (`users/{sub}/{fileId}/{safeName}`, returned as Uppy's `key`
//! override) and signs only requests about its own keys and sessions:
//! - PutObject → a POST policy (`fields`), exact when the app sends `size`, else 1 byte to
//!   what the quota still allows;
//! - CreateMultipartUpload (with `size`, which the web app adds from the file) → a new key and
//!   its PENDING row, reserving that size against the quota;
//! - UploadPart → binds the upload id S3 gave to that key (checked with S3) on first use, taking
//!   one of the user's `MAX_OPEN_UPLOADS` places; each part is signed for its length in the
//!   size's part plan (`core::multipart::PartPlan`, which the web app's `getChunkSize` follows),
//!   so S3 takes no other length and no part beyond the plan;
//! - ListParts, CompleteMultipartUpload, AbortMultipartUpload → only for a bound session.
//!
//! A session ends when the grant does (`UPLOAD_SESSION_TTL_SECONDS` from creation): no part is
//! signed after that and the sweeper aborts the S3 upload. The client completes the upload
//! itself in this mode, so its size is settled (and the session closed) when the object-created
//! event arrives.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use matbakh_api::body::JsonObject;
use matbakh_api::{ApiError, Caller, Services};
use matbakh_app::ports::{PartUpload, Upload};
use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::limits::MAX_SINGLE_UPLOAD_BYTES;
use matbakh_core::metadata::{FileRecord, FileStatus};
use matbakh_core::multipart::{PartNumber, PartPlan, SessionLimit, SessionState, UploadId, UploadSession};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use serde_json::{Value, json};

/// The S3 operation a `signRequest` request stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    PutObject,
    CreateMultipartUpload,
    UploadPart(PartNumber),
    ListParts,
    CompleteMultipartUpload,
    AbortMultipartUpload,
}

fn operation(method: &str, upload_id: bool, part: Option<u64>) -> Result<Operation, ApiError> {
    Ok(match (method, upload_id, part) {
        ("PUT", false, None) => Operation::PutObject,
        ("POST", false, None) => Operation::CreateMultipartUpload,
        ("PUT", true, Some(n)) => Operation::UploadPart(PartNumber::new(n)?),
        ("GET", true, None) => Operation::ListParts,
        ("POST", true, None) => Operation::CompleteMultipartUpload,
        ("DELETE", true, None) => Operation::AbortMultipartUpload,
        _ => {
            return Err(ApiError::bad_field(
                "method",
                "method: not a request Uppy makes (with these uploadId/partNumber)",
            ));
        }
    })
}

/// Uppy proposes keys like `{uuid}-{filename}` (its default) or what the app's
/// `generateObjectKey` makes (ours: the name alone); only the name is kept. A name that
/// merely contains a hyphen keeps it.
fn proposed_name(key: &str) -> &str {
    let last = key.rsplit('/').next().unwrap_or(key);
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.char_indices()
                .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
    };
    match (last.get(..36), last.get(36..)) {
        (Some(id), Some(rest)) if is_uuid(id) && rest.len() > 1 && rest.starts_with('-') => &rest[1..],
        _ => last,
    }
}

/// Signs a request Uppy wants to send to S3 (`signRequest` mode)
///
/// The server chooses every key and signs only requests about its own keys and sessions:
/// PutObject (a POST policy), CreateMultipartUpload (with `size`, reserved), UploadPart (for its
/// planned length), ListParts, CompleteMultipartUpload and AbortMultipartUpload.
#[utoipa::path(post, path = "/v1/uploads/sign", operation_id = "sign_request", tag = "multipart",
    request_body(content = Value, description = "`{method, key, uploadId?, partNumber?, contentType?, filename?, size?}`"),
    responses(
        (status = 200, description = "`{url, key?, fields?}`"),
        (status = 400, description = "The request is not one the server signs (`field` names why)"),
        (status = 401, description = "No valid token"),
        (status = 404, description = "No such key or upload of the caller's"),
        (status = 409, description = "`quota_exceeded`, or the key already has an upload"),
        (status = 410, description = "`upload_expired`"),
        (status = 429, description = "`too_many_open_uploads`"),
    ))]
#[tracing::instrument(name = "sign_request", skip_all, fields(user = %caller.user, op = tracing::field::Empty))]
pub async fn sign(State(st): State<Services>, caller: Caller, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req = JsonObject::parse(
        &body,
        &["method", "key", "uploadId", "partNumber", "contentType", "filename", "size", "expiresIn"],
    )?;
    let method = req.str("method")?.to_ascii_uppercase();
    let key = req.str("key")?;
    let upload_id = req.opt_str("uploadId")?.map(UploadId::parse).transpose()?;
    let op = operation(&method, upload_id.is_some(), req.opt_u64("partNumber")?)?;
    tracing::Span::current().record("op", tracing::field::debug(op));
    let now = st.clock.now();
    let ttl = st.limits.part_url_ttl;

    let Some(upload_id) = upload_id else {
        // A new object: the server picks the key.
        let filename = DisplayName::parse(req.opt_str("filename")?.unwrap_or(proposed_name(key)))?;
        let content_type = match req.opt_str("contentType")? {
            Some(t) => ContentType::parse(t)?,
            None => ContentType::from_file_name(filename.as_str()).ok_or_else(|| {
                ApiError::bad_field("contentType", "contentType: is required when the name has no known extension")
            })?,
        };
        let file_id = matbakh_app::random::file_id(now)?;
        let mut record = FileRecord {
            expires_at: Some(now + st.limits.upload_session_ttl),
            ..FileRecord::upload(file_id, caller.user.clone(), filename, content_type, now)
        };
        let key = record.key.clone();
        return match op {
            Operation::PutObject => {
                let declared = req.opt_u64("size")?;
                let range = match declared {
                    Some(size) => {
                        st.limits.check_single_upload(content_type, size)?;
                        size..=size
                    }
                    None => {
                        // Without a size, the policy allows what the quota still has room for.
                        let usage = st.table.usage(&caller.user).await?;
                        let room = st.limits.user_quota_bytes.saturating_sub(usage.charged);
                        if room == 0 {
                            return Err(ApiError::from(matbakh_aws::AwsError::QuotaExceeded));
                        }
                        1..=room.min(content_type.max_bytes()).min(MAX_SINGLE_UPLOAD_BYTES)
                    }
                };
                let upload = Upload {
                    key: &key,
                    content_type,
                    size: range.clone(),
                    sha256: None,
                    signed_at: now,
                    ttl: st.limits.upload_url_ttl,
                };
                let post = st.store.presign_upload(&upload).await?;
                record.size = *range.end();
                match declared {
                    Some(_) => st.table.reserve_upload(&record, st.limits.user_quota_bytes).await?,
                    None => st.table.put_unreserved_file(&record).await?,
                }
                Ok(Json(json!({ "url": post.url, "fields": post.fields, "key": key.as_str() })))
            }
            _ => {
                let size = req.opt_u64("size")?.ok_or_else(|| {
                    ApiError::bad_field("size", "size: a multipart upload needs the file's size (in bytes)")
                })?;
                st.limits.check_multipart_upload(content_type, size)?;
                PartPlan::for_size(size)?;
                record.size = size;
                let url = st
                    .store
                    .presign_operation("POST", &key, vec![("uploads", String::new())], vec![], now, ttl)
                    .await?;
                st.table.reserve_upload(&record, st.limits.user_quota_bytes).await?;
                Ok(Json(json!({ "url": url.url, "key": key.as_str() })))
            }
        };
    };

    // An existing upload: only for a key the server issued to this caller.
    let key = ObjectKey::from_stored(key.to_owned());
    let session = bound_session(&st, &caller, &key, &upload_id, matches!(op, Operation::UploadPart(_))).await?;
    if now >= session.expires_at && op != Operation::AbortMultipartUpload {
        return Err(ApiError::new(StatusCode::GONE, "upload_expired", "this upload expired; start a new one"));
    }
    let ttl = ttl.min((session.expires_at - now).unsigned_abs());
    let id = || ("uploadId", session.upload_id.as_str().to_owned());
    let url = match op {
        Operation::UploadPart(n) => {
            let len = match session.limit {
                SessionLimit::Planned(plan) => plan.part_len(n)?,
                // Not a session this route started.
                SessionLimit::Allowance(_) => return Err(ApiError::not_found("upload")),
            };
            let part = PartUpload {
                key: &session.key,
                upload_id: &session.upload_id,
                part: n,
                content_length: Some(len),
                checksum: None,
                signed_at: now,
                ttl,
            };
            st.store.presign_part(&part).await?
        }
        Operation::ListParts => st.store.presign_operation("GET", &session.key, vec![id()], vec![], now, ttl).await?,
        Operation::CompleteMultipartUpload => {
            st.store.presign_operation("POST", &session.key, vec![id()], vec![], now, ttl).await?
        }
        Operation::AbortMultipartUpload => {
            st.store.presign_operation("DELETE", &session.key, vec![id()], vec![], now, ttl).await?
        }
        Operation::PutObject | Operation::CreateMultipartUpload => {
            return Err(ApiError::bad_field("uploadId", "uploadId: not expected for this request"));
        }
    };
    Ok(Json(json!({ "url": url.url })))
}

/// The session for `upload_id` on `key`, which must be the caller's. On the first part
/// request the upload id is bound to the key the server issued, once S3 confirms the upload
/// exists for that key.
async fn bound_session(
    st: &Services,
    caller: &Caller,
    key: &ObjectKey,
    upload_id: &UploadId,
    may_bind: bool,
) -> Result<UploadSession, ApiError> {
    let missing = || ApiError::not_found("upload");
    if let Some(session) = st.table.get_session(upload_id).await? {
        return if session.owner == caller.user && &session.key == key && session.state == SessionState::Open {
            Ok(session)
        } else {
            Err(missing())
        };
    }
    if !may_bind {
        return Err(missing());
    }
    let file_id = key.as_str().split('/').nth(2).and_then(|id| FileId::parse(id).ok()).ok_or_else(missing)?;
    let record =
        st.table.get_file(file_id).await?.filter(|r| r.owner == caller.user && &r.key == key).ok_or_else(missing)?;
    if record.status != FileStatus::Pending {
        return Err(missing());
    }
    // The key's object arrived (settled, or its version pinned): a key takes one object
    // (DECISIONS 28), so an upload made by posting the presigned CreateMultipartUpload URL again
    // gets no parts signed.
    if record.expires_at.is_none() || record.version_id.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "upload_settled",
            "this file's upload is complete; a new upload needs a new file",
        ));
    }
    if st.store.list_parts(key, upload_id).await?.is_none() {
        return Err(missing());
    }
    let (Some(expires_at), Ok(plan)) = (record.expires_at, PartPlan::for_size(record.size)) else {
        return Err(missing());
    };
    let session = UploadSession {
        upload_id: upload_id.clone(),
        file_id,
        owner: caller.user.clone(),
        key: key.clone(),
        filename: record.filename,
        content_type: record.content_type,
        integrity: None,
        limit: SessionLimit::Planned(plan),
        token: None,
        created_at: record.created_at,
        expires_at,
        state: SessionState::Open,
    };
    match st.table.bind_session(&session, st.limits.max_open_uploads).await {
        Ok(()) => Ok(session),
        // Two parts signed at once: the other request bound it first (or another upload id
        // was bound to this key: then this one has no session and is not found).
        Err(matbakh_aws::AwsError::AlreadyExists) => Box::pin(bound_session(st, caller, key, upload_id, false)).await,
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppy_requests_map_to_operations() {
        assert_eq!(operation("PUT", false, None).unwrap(), Operation::PutObject);
        assert_eq!(operation("POST", false, None).unwrap(), Operation::CreateMultipartUpload);
        assert!(matches!(operation("PUT", true, Some(3)).unwrap(), Operation::UploadPart(n) if n.get() == 3));
        assert_eq!(operation("GET", true, None).unwrap(), Operation::ListParts);
        assert_eq!(operation("POST", true, None).unwrap(), Operation::CompleteMultipartUpload);
        assert_eq!(operation("DELETE", true, None).unwrap(), Operation::AbortMultipartUpload);
        for (m, u, p) in [("GET", false, None), ("PUT", true, None), ("PUT", false, Some(1)), ("PATCH", true, None)] {
            assert!(operation(m, u, p).is_err(), "{m} {u} {p:?}");
        }
        assert!(operation("PUT", true, Some(0)).is_err());
    }

    #[test]
    fn proposed_keys_give_their_file_name() {
        assert_eq!(proposed_name("0f8fad5b-d9cb-469f-a165-70867728950e-holiday video.mov"), "holiday video.mov");
        assert_eq!(proposed_name("prefix/0f8fad5b-d9cb-469f-a165-70867728950e-x-ray.jpg"), "x-ray.jpg");
        assert_eq!(proposed_name("dune-44194a3f.jpg"), "dune-44194a3f.jpg");
        assert_eq!(proposed_name("0f8fad5b-d9cb-469f-a165-70867728950e-"), "0f8fad5b-d9cb-469f-a165-70867728950e-");
        assert_eq!(proposed_name("plain.jpg"), "plain.jpg");
    }
}
