//! Uppy's `signRequest` mode: the client forwards each request it wants to send to S3 and gets
//! it signed, or refused.
//!
//! The platform chooses every key (`users/{sub}/{fileId}/{safeName}`, given back as Uppy's
//! `key` override) and signs only requests about its own keys and sessions:
//! - PutObject → a POST policy, exact when the client sends `size`, else 1 byte to what the
//!   quota still allows;
//! - CreateMultipartUpload (with `size`) → a new key and its PENDING row, reserving that size;
//! - UploadPart → binds the upload id S3 gave to that key (checked with S3) on first use, taking
//!   one of the user's open-upload places; each part is signed for its length in the size's
//!   part plan, so S3 takes no other length and no part beyond the plan;
//! - ListParts, CompleteMultipartUpload, AbortMultipartUpload → only for a bound session.
//!
//! A session ends when the grant does: no part is signed after that and the sweeper aborts the
//! S3 upload. The client completes the upload itself in this mode, so its size is settled (and
//! the session closed) when the object-created event arrives.

use std::collections::BTreeMap;

use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::labels::Labels;
use matbakh_core::limits::MAX_SINGLE_UPLOAD_BYTES;
use matbakh_core::metadata::{FileRecord, FileStatus};
use matbakh_core::multipart::{PartNumber, PartPlan, SessionLimit, SessionState, UploadId, UploadSession};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;

use matbakh_core::audit::AuditAction;

use super::{Multipart, expired, not_found};
use crate::audit::{Access, Client};
use crate::error::Error;
use crate::ports::{MultipartOp, MultipartRequest, PartUpload, PortError, Upload};

/// A request Uppy wants to send to S3, as its `signRequest` callback passes it on.
#[derive(Debug, Clone, Default)]
pub struct SignRequest<'a> {
    pub method: &'a str,
    /// The key Uppy proposes (a new object) or was given (an existing upload).
    pub key: &'a str,
    pub upload_id: Option<UploadId>,
    pub part_number: Option<u64>,
    pub content_type: Option<&'a str>,
    pub filename: Option<&'a str>,
    pub size: Option<u64>,
    /// A new object's visibility, tags and metadata.
    pub labels: Labels,
}

/// What Uppy sends to S3: `url` (with `fields`, a POST policy's form), with `headers` (signed:
/// S3 refuses the request without them), and for a new object the `key` the platform chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub url: String,
    pub key: Option<ObjectKey>,
    pub fields: Option<BTreeMap<String, String>>,
    pub headers: BTreeMap<String, String>,
}

/// The S3 operation a `signRequest` request stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    PutObject,
    CreateMultipartUpload,
    UploadPart(PartNumber),
    ListParts,
    CompleteMultipartUpload,
    AbortMultipartUpload,
}

impl Operation {
    /// What a request with this method, with or without an upload id and a part number, is.
    pub fn of(method: &str, upload_id: bool, part: Option<u64>) -> Result<Operation, Error> {
        Ok(match (method.to_ascii_uppercase().as_str(), upload_id, part) {
            ("PUT", false, None) => Operation::PutObject,
            ("POST", false, None) => Operation::CreateMultipartUpload,
            ("PUT", true, Some(n)) => Operation::UploadPart(PartNumber::new(n)?),
            ("GET", true, None) => Operation::ListParts,
            ("POST", true, None) => Operation::CompleteMultipartUpload,
            ("DELETE", true, None) => Operation::AbortMultipartUpload,
            _ => {
                return Err(Error::bad_field(
                    "method",
                    "method: not a request Uppy makes (with these uploadId/partNumber)",
                ));
            }
        })
    }
}

/// Uppy proposes keys like `{uuid}-{filename}` (its default) or what the app's
/// `generateObjectKey` makes (ours: the name alone); only the name is kept. A name that
/// merely contains a hyphen keeps it.
pub fn proposed_name(key: &str) -> &str {
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

impl Multipart {
    /// Signs what `req` asks, if it is about a new object or one of the caller's sessions.
    pub async fn sign_request(&self, caller: &UserId, client: &Client, req: SignRequest<'_>) -> Result<Signed, Error> {
        let op = Operation::of(req.method, req.upload_id.is_some(), req.part_number)?;
        tracing::Span::current().record("op", tracing::field::debug(op));
        match &req.upload_id {
            None => self.sign_new(caller, client, op, &req).await,
            Some(upload_id) => self.sign_existing(caller, op, &req, upload_id).await,
        }
    }

    /// A new object: the platform picks the key; the grant goes into the caller's trail, as the
    /// other upload routes' do (an authorization sweep found this one wrote none).
    async fn sign_new(
        &self,
        caller: &UserId,
        client: &Client,
        op: Operation,
        req: &SignRequest<'_>,
    ) -> Result<Signed, Error> {
        let now = self.clock.now();
        let filename = DisplayName::parse(req.filename.unwrap_or(proposed_name(req.key)))?;
        let content_type = match req.content_type {
            Some(t) => ContentType::parse(t)?,
            None => ContentType::from_file_name(filename.as_str()).ok_or_else(|| {
                Error::bad_field("contentType", "contentType: is required when the name has no known extension")
            })?,
        };
        self.admit_grant(caller, now).await?;
        let file_id = crate::random::file_id(now)?;
        let mut record = FileRecord {
            expires_at: Some(now + self.limits.upload_session_ttl),
            labels: req.labels.clone(),
            ..FileRecord::upload(file_id, caller.clone(), filename, content_type, now)
        };
        let key = record.key.clone();
        if op == Operation::PutObject {
            let range = match req.size {
                Some(size) => {
                    self.limits.check_single_upload(content_type, size)?;
                    size..=size
                }
                None => {
                    // Without a size, the policy allows what the quota still has room for.
                    let usage = self.usage.usage(caller).await?;
                    let room = self.limits.user_quota_bytes.saturating_sub(usage.charged);
                    if room == 0 {
                        return Err(PortError::QuotaExceeded.into());
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
                ttl: self.limits.upload_url_ttl,
            };
            let post = self.objects.presign_post(&upload).await?;
            record.size = *range.end();
            match req.size {
                Some(_) => self.files.reserve(&record, self.limits.user_quota_bytes).await?,
                None => self.files.put_unreserved(&record).await?,
            }
            self.audit.record(client, Access::ok(caller, AuditAction::Upload, Some(file_id))).await?;
            return Ok(Signed { url: post.url, key: Some(key), fields: Some(post.fields), headers: BTreeMap::new() });
        }
        let size = req
            .size
            .ok_or_else(|| Error::bad_field("size", "size: a multipart upload needs the file's size (in bytes)"))?;
        self.limits.check_multipart_upload(content_type, size)?;
        PartPlan::for_size(size)?;
        record.size = size;
        // The type is signed: S3 stores the one the server chose, which downloads are served with
        // (security review 21: `text/html` for bytes that pass as a PDF).
        let create = MultipartRequest {
            key: &key,
            op: MultipartOp::Create(content_type),
            signed_at: now,
            ttl: self.limits.part_url_ttl,
        };
        let url = self.objects.presign_multipart(&create).await?;
        self.files.reserve(&record, self.limits.user_quota_bytes).await?;
        self.audit.record(client, Access::ok(caller, AuditAction::Upload, Some(file_id))).await?;
        let headers = BTreeMap::from([("content-type".to_owned(), content_type.as_str().to_owned())]);
        Ok(Signed { url: url.url, key: Some(key), fields: None, headers })
    }

    /// An existing upload: only for a key the platform issued to this caller.
    async fn sign_existing(
        &self,
        caller: &UserId,
        op: Operation,
        req: &SignRequest<'_>,
        upload_id: &UploadId,
    ) -> Result<Signed, Error> {
        let now = self.clock.now();
        let key = ObjectKey::from_stored(req.key.to_owned());
        let session = self.bound_session(caller, &key, upload_id, matches!(op, Operation::UploadPart(_))).await?;
        if now >= session.expires_at && op != Operation::AbortMultipartUpload {
            return Err(expired());
        }
        let ttl = self.limits.part_url_ttl.min((session.expires_at - now).unsigned_abs());
        let id = &session.upload_id;
        let request = |op| MultipartRequest { key: &session.key, op, signed_at: now, ttl };
        let url = match op {
            Operation::UploadPart(part) => {
                let len = match session.limit {
                    SessionLimit::Planned(plan) => plan.part_len(part)?,
                    // Not a session this mode started.
                    SessionLimit::Allowance(_) => return Err(not_found()),
                };
                let part = PartUpload {
                    key: &session.key,
                    upload_id: id,
                    part,
                    content_length: Some(len),
                    checksum: None,
                    signed_at: now,
                    ttl,
                };
                self.objects.presign_part(&part).await?
            }
            Operation::ListParts => self.objects.presign_multipart(&request(MultipartOp::ListParts(id))).await?,
            Operation::CompleteMultipartUpload => {
                self.objects.presign_multipart(&request(MultipartOp::Complete(id))).await?
            }
            Operation::AbortMultipartUpload => self.objects.presign_multipart(&request(MultipartOp::Abort(id))).await?,
            Operation::PutObject | Operation::CreateMultipartUpload => {
                return Err(Error::bad_field("uploadId", "uploadId: not expected for this request"));
            }
        };
        Ok(Signed { url: url.url, key: None, fields: None, headers: BTreeMap::new() })
    }

    /// The session for `upload_id` on `key`, which must be the caller's. On the first part
    /// request the upload id is bound to the key the platform issued, once S3 confirms the
    /// upload exists for that key.
    async fn bound_session(
        &self,
        caller: &UserId,
        key: &ObjectKey,
        upload_id: &UploadId,
        may_bind: bool,
    ) -> Result<UploadSession, Error> {
        if let Some(session) = self.uploads.session(upload_id).await? {
            // An upload token's session is completed (and charged) only through the token's
            // endpoint: a Complete URL from here would store its object uncharged.
            let mine = session.owner == *caller && session.token.is_none();
            return if mine && session.key == *key && session.state == SessionState::Open {
                Ok(session)
            } else {
                Err(not_found())
            };
        }
        if !may_bind {
            return Err(not_found());
        }
        let file_id = key.as_str().split('/').nth(2).and_then(|id| FileId::parse(id).ok()).ok_or_else(not_found)?;
        let record = self.files.details(file_id).await?.map(|d| d.record);
        let record = record.filter(|r| r.owner == *caller && r.key == *key).ok_or_else(not_found)?;
        if record.status != FileStatus::Pending {
            return Err(not_found());
        }
        // The key's object arrived (settled, or its version pinned): a key takes one object
        // (DECISIONS 28), so an upload made by posting the presigned CreateMultipartUpload URL
        // again gets no parts signed.
        if record.expires_at.is_none() || record.version_id.is_some() {
            return Err(Error::conflict(
                "upload_settled",
                "this file's upload is complete; a new upload needs a new file",
            ));
        }
        if self.objects.list_parts(key, upload_id).await?.is_none() {
            return Err(not_found());
        }
        let (Some(expires_at), Ok(plan)) = (record.expires_at, PartPlan::for_size(record.size)) else {
            return Err(not_found());
        };
        let session = UploadSession::open(&record, upload_id.clone(), SessionLimit::Planned(plan), expires_at);
        match self.uploads.bind_session(&session, self.limits.max_open_uploads).await {
            Ok(()) => Ok(session),
            // Two parts signed at once: the other request bound it first (or another upload id
            // was bound to this key: then this one has no session and is not found).
            Err(PortError::AlreadyExists) => Box::pin(self.bound_session(caller, key, upload_id, false)).await,
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppy_requests_map_to_operations() {
        assert_eq!(Operation::of("PUT", false, None).unwrap(), Operation::PutObject);
        assert_eq!(Operation::of("post", false, None).unwrap(), Operation::CreateMultipartUpload);
        assert!(matches!(Operation::of("PUT", true, Some(3)).unwrap(), Operation::UploadPart(n) if n.get() == 3));
        assert_eq!(Operation::of("GET", true, None).unwrap(), Operation::ListParts);
        assert_eq!(Operation::of("POST", true, None).unwrap(), Operation::CompleteMultipartUpload);
        assert_eq!(Operation::of("DELETE", true, None).unwrap(), Operation::AbortMultipartUpload);
        for (m, u, p) in [("GET", false, None), ("PUT", true, None), ("PUT", false, Some(1)), ("PATCH", true, None)] {
            assert!(Operation::of(m, u, p).is_err(), "{m} {u} {p:?}");
        }
        assert!(Operation::of("PUT", true, Some(0)).is_err());
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
