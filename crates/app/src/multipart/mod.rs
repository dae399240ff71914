//! Large uploads straight to S3 in parts, in sessions the platform owns, in the three modes
//! Uppy's `@uppy/aws-s3` can drive:
//! - the REST routes (this module): the platform plans the parts, signs each for its exact
//!   length (and checksum) and completes the upload itself;
//! - `signRequest` ([`sign`]): the client sends S3's own requests, the platform signs only those
//!   about keys and sessions it issued;
//! - Companion ([`companion`]): an upload token is the capability; parts are signed without a
//!   length and the total is charged at completion.
//!
//! Every session takes one of its owner's open-upload places until it ends; every way it ends
//! gives the place back. Someone else's session answers like a missing one.

pub mod companion;
pub mod sign;

use std::collections::HashMap;
use std::sync::Arc;

use matbakh_core::audit::AuditAction;
use matbakh_core::checksum::{Checksum, Integrity};
use matbakh_core::clock::Clock;
use matbakh_core::ids::UserId;
use matbakh_core::labels::Labels;
use matbakh_core::limits::Limits;
use matbakh_core::metadata::FileRecord;
use matbakh_core::multipart::{
    Completion, MAX_PARTS_PER_SIGN_REQUEST, PartNumber, PartPlan, SessionLimit, SessionState, UploadId, UploadSession,
    UploadedPart, check_parts,
};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;

use crate::audit::{Access, Client, Trail};
use crate::error::Error;
use crate::ports::{Counters, FileUploads, ObjectUploads, PartUpload, SignedUrl, TokenRepo, UploadRepo, UsageRepo};

/// What the multipart use cases work with.
#[derive(Clone)]
pub struct Multipart {
    pub files: Arc<dyn FileUploads>,
    /// The upload grants' budget per user (a session or a signed new object, in every mode).
    pub counters: Arc<dyn Counters>,
    pub uploads: Arc<dyn UploadRepo>,
    pub tokens: Arc<dyn TokenRepo>,
    pub usage: Arc<dyn UsageRepo>,
    pub objects: Arc<dyn ObjectUploads>,
    pub audit: Trail,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
}

/// A multipart upload the caller asks to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub filename: DisplayName,
    pub content_type: ContentType,
    pub size: u64,
    /// A full-object checksum S3 is to keep (and check, if its value is given).
    pub integrity: Option<Integrity>,
    /// Visibility, tags and metadata.
    pub labels: Labels,
}

/// One signed part: the URL takes exactly `size` bytes (and only with `checksum`, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPart {
    pub part: PartNumber,
    pub size: u64,
    pub checksum: Option<Checksum>,
    pub url: SignedUrl,
}

/// A completed upload: its session and the object's ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub session: UploadSession,
    pub etag: String,
    /// The object's size if this call completed it (`None`: a repeat of an earlier completion).
    pub size: Option<u64>,
}

fn not_found() -> Error {
    Error::NotFound("upload")
}

fn not_open(x: &UploadSession) -> Error {
    Error::conflict("upload_finished", format!("this upload is {}", x.state.name().to_lowercase()))
}

fn expired() -> Error {
    Error::gone("upload_expired", "this upload expired; start a new one")
}

impl Multipart {
    /// Starts an upload of what `s` declares: type and size within the limits, the S3 upload
    /// (with a full-object checksum if asked), its part plan, and the size reserved against
    /// the caller's quota with the PENDING row and the session, in one transaction. A refusal
    /// leaves nothing behind (the S3 upload is aborted too).
    pub async fn start(&self, caller: &UserId, client: &Client, s: Start) -> Result<UploadSession, Error> {
        self.limits.check_multipart_upload(s.content_type, s.size)?;
        let plan = PartPlan::for_size(s.size)?;
        let now = self.clock.now();
        self.admit_grant(caller, now).await?;
        let file_id = crate::random::file_id(now)?;
        tracing::Span::current().record("file_id", tracing::field::display(file_id));
        let mut record = FileRecord {
            size: s.size,
            labels: s.labels,
            ..FileRecord::upload(file_id, caller.clone(), s.filename, s.content_type, now)
        };
        let upload_id = self
            .objects
            .create_multipart(&record.key, s.content_type, s.integrity.as_ref().map(|i| i.algorithm))
            .await?;
        let expires_at = now + self.limits.upload_session_ttl;
        let session = UploadSession {
            integrity: s.integrity,
            ..UploadSession::open(&record, upload_id, SessionLimit::Planned(plan), expires_at)
        };
        record.expires_at = Some(session.expires_at);
        let reserved =
            self.uploads.start_session(&record, &session, self.limits.user_quota_bytes, self.limits.max_open_uploads);
        if let Err(e) = reserved.await {
            self.abort_refused(&session).await;
            return Err(e.into());
        }
        self.audit.record(client, Access::ok(caller, AuditAction::Upload, Some(file_id))).await?;
        tracing::info!(size = s.size, parts = plan.part_count, "multipart upload started");
        Ok(session)
    }

    /// Counts one upload grant of `user` against their budget, or refuses it.
    pub(crate) async fn admit_grant(&self, user: &UserId, now: time::OffsetDateTime) -> Result<(), Error> {
        let kind = matbakh_core::throttle::Costly::UploadGrant;
        crate::throttle::admit(&*self.counters, &self.limits.budgets, now, user, kind).await
    }

    /// A refused session's S3 upload goes too; if that fails, the bucket's lifecycle rule
    /// removes it later.
    async fn abort_refused(&self, session: &UploadSession) {
        if let Err(abort) = self.objects.abort_multipart(&session.key, &session.upload_id).await {
            tracing::warn!(error = %abort, "could not abort the refused upload; the lifecycle rule will");
        }
    }

    /// The caller's session `raw_id` (someone else's is as missing as an unknown one).
    pub async fn own(&self, caller: &UserId, raw_id: &str) -> Result<UploadSession, Error> {
        let id = UploadId::parse(raw_id).map_err(|_| not_found())?;
        self.uploads.session(&id).await?.filter(|x| x.owner == *caller).ok_or_else(not_found)
    }

    /// Signs PUT URLs for parts `numbers` of the caller's session, each for its planned length
    /// and, when the upload keeps a checksum, for the part's declared `checksums`
    /// (`[("1", base64)]`), so no part can carry other bytes than planned.
    pub async fn sign_parts(
        &self,
        caller: &UserId,
        raw_id: &str,
        numbers: &[u64],
        checksums: Option<Vec<(&str, &str)>>,
    ) -> Result<(UploadSession, Vec<SignedPart>), Error> {
        let session = self.own(caller, raw_id).await?;
        let mut checksums = part_checksums(&session, checksums)?;
        if numbers.is_empty() || numbers.len() > MAX_PARTS_PER_SIGN_REQUEST {
            return Err(Error::bad_field(
                "partNumbers",
                format!("partNumbers: ask for 1 to {MAX_PARTS_PER_SIGN_REQUEST} parts at a time"),
            ));
        }
        let SessionLimit::Planned(plan) = session.limit else {
            // Not a session these routes started (an upload token's).
            return Err(not_found());
        };
        let planned = numbers
            .iter()
            .map(|n| {
                let part = PartNumber::new(*n)?;
                Ok((part, plan.part_len(part)?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if session.state != SessionState::Open {
            return Err(not_open(&session));
        }
        let now = self.clock.now();
        if now >= session.expires_at {
            return Err(expired());
        }
        let ttl = self.limits.part_url_ttl.min((session.expires_at - now).unsigned_abs());
        let mut parts = Vec::with_capacity(planned.len());
        for (part, size) in planned {
            let checksum = checksums.remove(&part);
            if let (Some(integrity), None) = (&session.integrity, &checksum) {
                return Err(Error::bad_field(
                    "checksums",
                    format!(
                        "checksums: this upload keeps a {} checksum, so part {part} needs one",
                        integrity.algorithm
                    ),
                ));
            }
            let url = self
                .objects
                .presign_part(&PartUpload {
                    key: &session.key,
                    upload_id: &session.upload_id,
                    part,
                    content_length: Some(size),
                    checksum: checksum.as_ref(),
                    signed_at: now,
                    ttl,
                })
                .await?;
            parts.push(SignedPart { part, size, checksum, url });
        }
        Ok((session, parts))
    }

    /// The caller's session and the parts S3 holds for it (to resume).
    pub async fn show(&self, caller: &UserId, raw_id: &str) -> Result<(UploadSession, Vec<UploadedPart>), Error> {
        let session = self.own(caller, raw_id).await?;
        let parts = match session.state {
            SessionState::Open => self.objects.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default(),
            _ => Vec::new(),
        };
        Ok((session, parts))
    }

    /// The caller's unfinished uploads that can still take parts, newest first.
    pub async fn list_open(&self, caller: &UserId) -> Result<Vec<UploadSession>, Error> {
        let now = self.clock.now();
        let sessions = self.uploads.open_sessions(caller).await?;
        Ok(sessions.into_iter().filter(|x| x.expires_at > now).collect())
    }

    /// Completes the caller's upload from the parts S3 holds (never what the client says),
    /// checked against the plan; never overwriting an object. Parts that hold more bytes than
    /// planned abort it. Idempotent.
    pub async fn complete(&self, caller: &UserId, raw_id: &str) -> Result<Completed, Error> {
        let session = self.own(caller, raw_id).await?;
        tracing::Span::current().record("file_id", tracing::field::display(session.file_id));
        match &session.state {
            SessionState::Completed { etag } => return Ok(Completed { etag: etag.clone(), session, size: None }),
            SessionState::Aborted => return Err(not_open(&session)),
            SessionState::Open => {}
        }
        let SessionLimit::Planned(plan) = session.limit else {
            return Err(not_found());
        };
        let parts = self.objects.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default();
        match check_parts(&session.limit, &parts) {
            Completion::Missing(missing) => Err(Error::conflict(
                "parts_missing",
                format!(
                    "{} of {} parts are missing (first: {})",
                    missing.len(),
                    plan.part_count,
                    missing.first().map(|n| n.get()).unwrap_or(0)
                ),
            )),
            // A plan's parts are all at least S3's minimum; one that is not is the wrong size.
            Completion::Oversize { .. } | Completion::Undersized(_) => {
                let received: u64 = parts.iter().map(|p| p.size).sum();
                self.abort_session(&session).await?;
                tracing::warn!(received, declared = plan.size, "parts do not match the plan; upload aborted");
                Err(Error::too_large(
                    "upload_oversize",
                    format!(
                        "the parts hold {received} bytes in the wrong shape for the declared {}; the upload was aborted",
                        plan.size
                    ),
                ))
            }
            Completion::Ready(parts) => {
                let etag = self
                    .objects
                    .complete_multipart(&session.key, &session.upload_id, &parts, session.integrity.as_ref())
                    .await?;
                self.uploads.complete_session(&session, &etag).await?;
                tracing::info!(size = plan.size, "multipart upload completed");
                Ok(Completed { session, etag, size: Some(plan.size) })
            }
        }
    }

    /// Aborts the caller's upload: frees its parts and releases its reservation. Idempotent;
    /// a completed upload is not undone.
    pub async fn abort(&self, caller: &UserId, raw_id: &str) -> Result<(), Error> {
        let session = self.own(caller, raw_id).await?;
        match session.state {
            SessionState::Aborted => Ok(()),
            SessionState::Completed { .. } => Err(not_open(&session)),
            SessionState::Open => {
                self.abort_session(&session).await?;
                tracing::info!("multipart upload aborted");
                Ok(())
            }
        }
    }

    /// Aborts the upload in S3, then the session (releasing its reservation). In this order, so
    /// a failure leaves the session open and the abort can simply be repeated. S3 answers the
    /// abort of an upload completed meanwhile (a presigned Complete URL, sign mode) as that of
    /// one gone: if the object is at the key, the upload was completed, and the session stays
    /// as it is, reserved, for the bucket event to settle (released here, the object would be
    /// counted against no quota).
    async fn abort_session(&self, session: &UploadSession) -> Result<(), Error> {
        self.objects.abort_multipart(&session.key, &session.upload_id).await?;
        if self.objects.size(&session.key).await?.is_some() {
            return Err(Error::conflict(
                "upload_finished",
                "this upload was completed; it is settled once its object is checked",
            ));
        }
        self.uploads.abort_session(session).await?;
        Ok(())
    }
}

/// The per-part checksums a sign request declares (`{"1": "<base64>", ...}`), in the algorithm
/// the upload was created with: each becomes a signed header of its part's URL.
fn part_checksums(
    session: &UploadSession,
    raw: Option<Vec<(&str, &str)>>,
) -> Result<HashMap<PartNumber, Checksum>, Error> {
    let Some(raw) = raw else { return Ok(HashMap::new()) };
    let Some(integrity) = &session.integrity else {
        return Err(Error::bad_field(
            "checksums",
            "checksums: this upload was created without checksum.algorithm, so its parts cannot carry checksums",
        ));
    };
    raw.into_iter()
        .map(|(n, value)| {
            let part = n.parse::<u64>().ok().and_then(|n| PartNumber::new(n).ok()).ok_or_else(|| {
                Error::bad_field("checksums", format!("checksums: {n:?} is not a part number (1 to 10000)"))
            })?;
            Ok((part, Checksum::parse(integrity.algorithm, value, "checksums")?))
        })
        .collect()
}
