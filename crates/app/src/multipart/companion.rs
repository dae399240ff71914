//! Upload tokens and the uploads made with them in Uppy's Companion mode, which sends no
//! login and no file size.
//!
//! A token is a capability of its owner's, bounded in bytes, types and time, revocable at once.
//! Uppy picks its own part sizes and sends neither them nor the file's size in this mode, so
//! parts are signed without a length; the platform completes the upload itself after summing
//! the parts S3 holds, and charges the total to the token's allowance and the owner's quota in
//! one transaction, or aborts. What bounds the uncounted parts meanwhile: each session takes one
//! of the owner's open-upload places, signs no part after it expires (with the token, or
//! `UPLOAD_SESSION_TTL_SECONDS`), and the sweeper then aborts its S3 upload. An unknown, expired
//! or revoked token, and a session or key that is not the token's, all answer alike.

use std::time::Duration;

use matbakh_core::audit::AuditAction;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::labels::Labels;
use matbakh_core::limits::MAX_SINGLE_UPLOAD_BYTES;
use matbakh_core::metadata::{FileRecord, FileStatus};
use matbakh_core::multipart::{
    Completion, PartNumber, PartRefusal, SessionLimit, SessionState, UploadId, UploadSession, UploadedPart, admit_part,
    check_parts,
};
use matbakh_core::names::{DisplayName, SafeName};
use matbakh_core::post_policy::PresignedPost;
use matbakh_core::tokens::{
    DEFAULT_UPLOAD_TOKEN_MAX_BYTES, DEFAULT_UPLOAD_TOKEN_TTL, MAX_UPLOAD_TOKEN_TTL, TokenGrant, UploadToken,
    check_distinct_types,
};
use matbakh_core::types::ContentType;

use super::{Completed, Multipart, not_found};
use crate::audit::{Access, Client};
use crate::error::Error;
use crate::ports::{PartUpload, PortError, SignedUrl, Upload};

/// The most a Companion-mode single upload may be, and so reserves while it is under way:
/// Uppy sends no size for it and switches to multipart above 100 MiB by default
/// (`shouldUseMultipart`), so a token's allowance is not held whole by one upload.
pub const MAX_UNSIZED_TOKEN_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// A token its owner asks for; every bound has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintRequest {
    /// At most the quota; default `DEFAULT_UPLOAD_TOKEN_MAX_BYTES`.
    pub max_bytes: Option<u64>,
    /// Empty: every allowed type.
    pub types: Vec<ContentType>,
    /// Seconds, 60 to `MAX_UPLOAD_TOKEN_TTL`; default `DEFAULT_UPLOAD_TOKEN_TTL`.
    pub expires_in: Option<u64>,
    /// The visibility, tags and metadata of every file uploaded with the token.
    pub labels: Labels,
}

/// A minted token: shown once, stored only as its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub token: UploadToken,
    pub grant: TokenGrant,
}

/// A file Uppy is about to send.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offered<'a> {
    pub filename: Option<&'a str>,
    pub content_type: Option<&'a str>,
}

/// Which session of a token a request is about: Uppy names the upload id and the key.
#[derive(Debug, Clone, Copy)]
pub struct TokenUpload<'a> {
    pub token: &'a str,
    pub upload_id: &'a str,
    pub key: Option<&'a str>,
}

fn invalid_token() -> Error {
    Error::Unauthorized("this upload link is not valid (unknown, expired or revoked)")
}

fn no_room() -> Error {
    Error::conflict("quota_exceeded", "this upload link or your storage has no room left")
}

impl Multipart {
    /// Mints a token for the caller.
    pub async fn mint(&self, caller: &UserId, req: MintRequest) -> Result<Minted, Error> {
        let max_bytes = match req.max_bytes {
            Some(0) => return Err(Error::bad_field("maxBytes", "maxBytes: must be at least 1")),
            Some(n) => n.min(self.limits.user_quota_bytes),
            None => DEFAULT_UPLOAD_TOKEN_MAX_BYTES.min(self.limits.user_quota_bytes),
        };
        check_distinct_types(&req.types)?;
        let ttl = match req.expires_in {
            None => DEFAULT_UPLOAD_TOKEN_TTL,
            Some(s) if s >= 60 && Duration::from_secs(s) <= MAX_UPLOAD_TOKEN_TTL => Duration::from_secs(s),
            Some(_) => return Err(Error::bad_field("expiresIn", "expiresIn: must be 60 seconds to 24 hours")),
        };
        let token = UploadToken::from_random(crate::random::bytes()?);
        let grant = TokenGrant {
            digest: token.digest(),
            owner: caller.clone(),
            max_bytes,
            used_bytes: 0,
            types: req.types,
            expires_at: self.clock.now() + ttl,
            revoked: false,
            labels: req.labels,
        };
        self.tokens.create(&grant).await?;
        tracing::info!(token = &grant.digest[..12], max_bytes, "upload token minted");
        Ok(Minted { token, grant })
    }

    /// Revokes one of the caller's tokens at once.
    pub async fn revoke_token(&self, caller: &UserId, raw: &str) -> Result<(), Error> {
        let token = UploadToken::parse(raw).map_err(|_| Error::NotFound("upload token"))?;
        if self.tokens.revoke(&token.digest(), caller).await? { Ok(()) } else { Err(Error::NotFound("upload token")) }
    }

    /// The grant behind a presented token, if it is usable now.
    async fn grant(&self, raw: &str) -> Result<TokenGrant, Error> {
        let token = UploadToken::parse(raw).map_err(|_| invalid_token())?;
        let grant = self.tokens.get(&token.digest()).await?.ok_or_else(invalid_token)?;
        if !grant.usable(self.clock.now()) {
            return Err(invalid_token());
        }
        tracing::Span::current().record("token", tracing::field::display(&grant.digest[..12]));
        tracing::Span::current().record("user", tracing::field::display(&grant.owner));
        Ok(grant)
    }

    /// The token's session the request names, for the key it names, or 404.
    async fn token_session(&self, grant: &TokenGrant, which: &TokenUpload<'_>) -> Result<UploadSession, Error> {
        let id = UploadId::parse(which.upload_id).map_err(|_| not_found())?;
        let session = self.uploads.session(&id).await?;
        session
            .filter(|x| x.token.as_deref() == Some(grant.digest.as_str()) && which.key == Some(x.key.as_str()))
            .ok_or_else(not_found)
    }

    /// A single upload with a token: a POST policy for one key, sized 1 byte to what the token
    /// and the quota still allow (at most [`MAX_UNSIZED_TOKEN_UPLOAD_BYTES`]: Uppy sends no
    /// size). That bound is reserved against both until the object arrives, which gives back
    /// what it did not use.
    pub async fn token_post(&self, raw: &str, client: &Client, offered: Offered<'_>) -> Result<PresignedPost, Error> {
        let grant = self.grant(raw).await?;
        let (name, content_type) = filename_and_type(&grant, offered)?;
        self.admit_grant(&grant.owner, self.clock.now()).await?;
        let usage = self.usage.usage(&grant.owner).await?;
        let room = self.limits.user_quota_bytes.saturating_sub(usage.charged);
        let max = grant
            .remaining()
            .min(room)
            .min(content_type.max_bytes())
            .min(MAX_SINGLE_UPLOAD_BYTES)
            .min(MAX_UNSIZED_TOKEN_UPLOAD_BYTES);
        if max == 0 {
            return Err(no_room());
        }
        let now = self.clock.now();
        let file_id = crate::random::file_id(now)?;
        // The size is not known yet: the row holds the most the policy allows and reserves it
        // against the token and the quota; the object-created event settles both to what arrived.
        let record = FileRecord {
            size: max,
            expires_at: Some(now + self.limits.pending_ttl),
            labels: grant.labels.clone(),
            ..FileRecord::upload(file_id, grant.owner.clone(), name, content_type, now)
        };
        let upload = Upload {
            key: &record.key,
            content_type,
            size: 1..=max,
            sha256: None,
            signed_at: now,
            ttl: self.limits.upload_url_ttl,
        };
        let post = self.objects.presign_post(&upload).await?;
        match self.tokens.reserve_upload(&grant, &record, self.limits.user_quota_bytes).await {
            Ok(()) => {}
            Err(PortError::QuotaExceeded) => return Err(no_room()),
            Err(e) => return Err(e.into()),
        }
        self.record_token_upload(client, &grant.owner, file_id).await?;
        Ok(post)
    }

    /// Starts a multipart upload with a token: a session that reserves nothing and may take
    /// what the token has left (charged at completion), taking an open-upload place.
    pub async fn token_start(&self, raw: &str, client: &Client, offered: Offered<'_>) -> Result<UploadSession, Error> {
        let grant = self.grant(raw).await?;
        let (filename, content_type) = filename_and_type(&grant, offered)?;
        let now = self.clock.now();
        self.admit_grant(&grant.owner, now).await?;
        let file_id = crate::random::file_id(now)?;
        let key = ObjectKey::original(&grant.owner, file_id, &SafeName::from_display(&filename));
        let upload_id = self.objects.create_multipart(&key, content_type, None).await?;
        let session = UploadSession {
            upload_id,
            file_id,
            owner: grant.owner.clone(),
            key,
            filename,
            content_type,
            integrity: None,
            limit: SessionLimit::Allowance(grant.remaining().min(content_type.max_bytes())),
            token: Some(grant.digest.clone()),
            created_at: now,
            expires_at: (now + self.limits.upload_session_ttl).min(grant.expires_at),
            state: SessionState::Open,
        };
        if let Err(e) = self.uploads.open_session(&session, self.limits.max_open_uploads).await {
            self.abort_refused(&session).await;
            return Err(e.into());
        }
        self.record_token_upload(client, &grant.owner, file_id).await?;
        Ok(session)
    }

    /// Signs one part of a token's upload (without a length: Uppy sends none) and says for how
    /// long the URL works; only a part a completion within the allowance could use, while the
    /// other parts S3 holds leave room ([`admit_part`]).
    pub async fn token_sign_part(
        &self,
        which: TokenUpload<'_>,
        raw_part: &str,
    ) -> Result<(SignedUrl, Duration), Error> {
        let grant = self.grant(which.token).await?;
        let part =
            raw_part.parse::<u64>().map_err(|_| Error::bad_field("partNumber", "partNumber: must be a number"))?;
        let part = PartNumber::new(part)?;
        let session = self.token_session(&grant, &which).await?;
        let now = self.clock.now();
        if session.state != SessionState::Open || now >= session.expires_at {
            return Err(Error::conflict("upload_finished", "this upload no longer takes parts"));
        }
        if let SessionLimit::Allowance(max) = session.limit {
            let parts = self.objects.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default();
            let held = parts.iter().filter(|p| p.number != part).map(|p| p.size).sum();
            match admit_part(max, part, held) {
                Ok(()) => {}
                Err(PartRefusal::BeyondAllowance { most }) => {
                    return Err(Error::bad_field(
                        "partNumber",
                        format!(
                            "partNumber: this upload link allows at most {most} parts (all but the last at least 5 MiB)"
                        ),
                    ));
                }
                Err(PartRefusal::AllowanceHeld { held }) => {
                    return Err(Error::conflict(
                        "upload_full",
                        format!("the parts sent hold {held} bytes, all this upload link allows: complete or abort it"),
                    ));
                }
            }
        }
        let ttl = self.limits.part_url_ttl.min((session.expires_at - now).unsigned_abs());
        let signed = PartUpload {
            key: &session.key,
            upload_id: &session.upload_id,
            part,
            content_length: None,
            checksum: None,
            signed_at: now,
            ttl,
        };
        Ok((self.objects.presign_part(&signed).await?, ttl))
    }

    /// The parts S3 holds for a token's upload (to resume).
    pub async fn token_parts(&self, which: TokenUpload<'_>) -> Result<Vec<UploadedPart>, Error> {
        let grant = self.grant(which.token).await?;
        let session = self.token_session(&grant, &which).await?;
        Ok(self.objects.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default())
    }

    /// Completes a token's upload: sums the parts S3 holds and reserves them against the
    /// token's allowance and the owner's quota with the PENDING row in one transaction (aborting
    /// the upload if either has no room), then completes it at S3; the object's event settles
    /// the row. A completion S3 refused after the reservation is asked again: the row is there
    /// (its reservation stands, and the sweeper gives it back if the object never comes), so S3
    /// is asked again and settling holds the object to that reservation. Idempotent.
    pub async fn token_complete(&self, which: TokenUpload<'_>) -> Result<Completed, Error> {
        let grant = self.grant(which.token).await?;
        let session = self.token_session(&grant, &which).await?;
        match &session.state {
            SessionState::Completed { etag } => return Ok(Completed { etag: etag.clone(), session, size: None }),
            SessionState::Aborted => return Err(Error::conflict("upload_finished", "this upload was aborted")),
            SessionState::Open => {}
        }
        // The platform trusts what S3 lists, not the parts the client sends.
        let parts = self.objects.list_parts(&session.key, &session.upload_id).await?.unwrap_or_default();
        let ready = match check_parts(&session.limit, &parts) {
            Completion::Ready(ready) => ready,
            Completion::Missing(_) => {
                return Err(Error::conflict("parts_missing", "no parts, or a gap in the part numbers"));
            }
            Completion::Oversize { received } => {
                return Err(self.refuse(&session, received, "is more than this upload link allows").await);
            }
            // Refused before anything is counted: S3 would not complete (security review 21).
            Completion::Undersized(part) => {
                return Err(Error::conflict(
                    "part_too_small",
                    format!("part {part} is under 5 MiB: only the last part may be smaller; send it again"),
                ));
            }
        };
        let total: u64 = ready.iter().map(|p| p.size).sum();
        let record = FileRecord {
            size: total,
            key: session.key.clone(),
            labels: grant.labels.clone(),
            expires_at: Some(self.clock.now() + self.limits.pending_ttl),
            ..FileRecord::upload(
                session.file_id,
                session.owner.clone(),
                session.filename.clone(),
                session.content_type,
                session.created_at,
            )
        };
        match self.tokens.reserve_upload(&grant, &record, self.limits.user_quota_bytes).await {
            Ok(()) => {}
            Err(PortError::QuotaExceeded) => {
                let why = "is more than the upload link or your storage has room for";
                return Err(self.refuse(&session, total, why).await);
            }
            // An earlier completion reserved it and S3 refused or failed then: ask S3 again.
            Err(PortError::AlreadyExists) if self.reserved_earlier(&session).await? => {}
            Err(e) => return Err(e.into()),
        }
        let etag = self
            .objects
            .complete_multipart(&session.key, &session.upload_id, &ready, session.integrity.as_ref())
            .await?;
        self.uploads.complete_session(&session, &etag).await?;
        tracing::info!(size = total, "uppy multipart upload completed");
        Ok(Completed { session, etag, size: Some(total) })
    }

    /// Whether `session`'s file already has its PENDING row (an earlier completion's).
    async fn reserved_earlier(&self, session: &UploadSession) -> Result<bool, Error> {
        let row = self.files.details(session.file_id).await?;
        Ok(row.is_some_and(|d| d.record.key == session.key && d.record.status == FileStatus::Pending))
    }

    /// Aborts a token's upload that broke its limits and answers why.
    async fn refuse(&self, session: &UploadSession, bytes: u64, why: &str) -> Error {
        if let Err(e) = self.abort_session(session).await {
            return e;
        }
        tracing::warn!(bytes, "uppy upload over its limits; aborted");
        Error::too_large("upload_oversize", format!("{bytes} bytes {why}; the upload was aborted"))
    }

    /// Aborts a token's upload. Idempotent.
    pub async fn token_abort(&self, which: TokenUpload<'_>) -> Result<(), Error> {
        let grant = self.grant(which.token).await?;
        let session = self.token_session(&grant, &which).await?;
        if session.state == SessionState::Open {
            self.abort_session(&session).await?;
        }
        Ok(())
    }

    /// An upload granted through a token, in the owner's audit trail.
    async fn record_token_upload(&self, client: &Client, owner: &UserId, file_id: FileId) -> Result<(), Error> {
        let access = Access {
            owner,
            action: AuditAction::Upload,
            file_id: Some(file_id),
            actor: Some("upload-token".into()),
            result: "ok",
        };
        Ok(self.audit.record(client, access).await?)
    }
}

fn filename_and_type(grant: &TokenGrant, offered: Offered<'_>) -> Result<(DisplayName, ContentType), Error> {
    let filename = offered.filename.ok_or_else(|| Error::bad_field("filename", "filename: is required"))?;
    let name = DisplayName::parse(filename)?;
    let content_type = offered.content_type.ok_or_else(|| Error::bad_field("type", "type: is required"))?;
    let content_type = ContentType::parse(content_type)?;
    grant.check_type(content_type)?;
    Ok((name, content_type))
}
