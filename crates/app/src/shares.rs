//! Share links: an owner makes a signed, expiring link to one of their files, lists and revokes
//! their links; anyone holding a live link downloads the file through it, a number of times.
//! A token this platform did not sign names nothing and reveals nothing.

use std::sync::Arc;
use std::time::Duration;

use matbakh_core::audit::AuditAction;
use matbakh_core::clock::{Clock, iso_seconds};
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileDetails, FileStatus};
use matbakh_core::names::content_disposition;
use matbakh_core::shares::{Share, ShareId, ShareKey, ShareRefusal, is_expired};
use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{Access, Client, Trail};
use crate::error::Error;
use crate::ports::{Download, FileLookup, ShareRepo};

/// Links an owner's list shows at most.
pub const SHARES_LISTED: usize = 100;

/// How links are made.
#[derive(Debug, Clone)]
pub struct Links {
    /// Signs and opens tokens.
    pub key: ShareKey,
    /// Where the API is reached from outside; without it, links are paths on the API's origin.
    pub public_api_url: Option<String>,
}

impl Links {
    fn url(&self, token: &str) -> String {
        format!("{}/v1/shares/{token}", self.public_api_url.as_deref().unwrap_or(""))
    }
}

/// What the share use cases work with.
#[derive(Clone)]
pub struct Shares {
    pub shares: Arc<dyn ShareRepo>,
    pub files: Arc<dyn FileLookup>,
    pub audit: Trail,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    /// Download URLs: the files CDN's signed URLs, or presigned S3 ones.
    pub delivery: crate::delivery::Delivery,
    pub links: Links,
}

/// A link as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareView {
    pub token: String,
    pub url: String,
    pub file_id: String,
    pub created_at: String,
    pub expires_at: String,
    pub max_downloads: Option<u64>,
    pub downloads: u64,
    /// `active`, `revoked`, `expired` or `used_up`.
    pub state: &'static str,
}

/// Why a link did not download, as its visitor is told: `NotFound` for anything that is not a
/// live link of this platform, `Gone` with the reason otherwise.
fn refused(why: ShareRefusal) -> Error {
    let gone = Error::gone;
    match why {
        ShareRefusal::Unknown => Error::NotFound("share"),
        ShareRefusal::Expired => gone("share_expired", "this link has expired"),
        ShareRefusal::Revoked => gone("share_revoked", "this link was revoked"),
        ShareRefusal::Exhausted => gone("share_used_up", "this link has been used as often as it allows"),
        ShareRefusal::FileGone => gone("file_gone", "the shared file was deleted"),
    }
}

/// What the owner's trail says of a visit.
fn outcome_of(why: Option<ShareRefusal>) -> &'static str {
    match why {
        None => "ok",
        Some(ShareRefusal::Expired) => "expired",
        Some(ShareRefusal::Revoked) => "revoked",
        Some(ShareRefusal::Exhausted) => "used_up",
        Some(ShareRefusal::FileGone) => "file_gone",
        Some(ShareRefusal::Unknown) => "unknown",
    }
}

/// Whether a file can be shared and downloaded through a link: stored and checked (a FAILED
/// file whose processing was given up was never checked).
fn shareable(d: &FileDetails) -> bool {
    matches!(d.record.status, FileStatus::Ready | FileStatus::Failed) && !d.unprocessed
}

impl Shares {
    fn view(&self, x: &Share) -> ShareView {
        let now = self.clock.now();
        let state = if x.revoked {
            "revoked"
        } else if is_expired(x.expires_at, now) {
            "expired"
        } else if x.max_downloads.is_some_and(|m| x.downloads >= m) {
            "used_up"
        } else {
            "active"
        };
        let token = self.links.key.token(&x.id, x.expires_at);
        ShareView {
            url: self.links.url(&token),
            token,
            file_id: x.file_id.to_string(),
            created_at: iso_seconds(x.created_at),
            expires_at: iso_seconds(x.expires_at),
            max_downloads: x.max_downloads,
            downloads: x.downloads,
            state,
        }
    }

    /// A new link to the caller's file `file_id`, valid `ttl` (to the second) and at most
    /// `max_downloads` times (checked terms: `core::shares::share_terms`).
    pub async fn create(
        &self,
        caller: &UserId,
        client: &Client,
        file_id: FileId,
        ttl: Duration,
        max_downloads: Option<u64>,
    ) -> Result<ShareView, Error> {
        let file = self.files.details(file_id).await?.filter(|d| d.record.owner == *caller);
        let file = file.ok_or(Error::NotFound("file"))?;
        if !shareable(&file) {
            return Err(Error::conflict("not_shareable", "only a stored, checked file can be shared"));
        }
        let now = self.clock.now();
        let share = Share {
            id: ShareId::from_random(crate::random::bytes()?),
            file_id,
            owner: caller.clone(),
            created_at: now,
            expires_at: (now + ttl).replace_nanosecond(0).unwrap_or(now + ttl),
            max_downloads,
            downloads: 0,
            revoked: false,
        };
        self.shares.create(&share).await?;
        self.audit.record(client, Access::ok(caller, AuditAction::ShareCreate, Some(file_id))).await?;
        tracing::info!(share = %share.id, ttl = ttl.as_secs(), "share created");
        Ok(self.view(&share))
    }

    /// The caller's links, newest first (at most [`SHARES_LISTED`]).
    pub async fn list(&self, caller: &UserId) -> Result<Vec<ShareView>, Error> {
        let shares = self.shares.list(caller, SHARES_LISTED).await?;
        Ok(shares.iter().map(|x| self.view(x)).collect())
    }

    /// Revokes the caller's link `token` at once.
    pub async fn revoke(&self, caller: &UserId, client: &Client, token: &str) -> Result<(), Error> {
        let (id, _) = self.links.key.open(token).map_err(|_| Error::NotFound("share"))?;
        let share = self.shares.revoke(&id, caller).await?.ok_or(Error::NotFound("share"))?;
        self.audit.record(client, Access::ok(caller, AuditAction::ShareRevoke, Some(share.file_id))).await?;
        tracing::info!(share = %id, "share revoked");
        Ok(())
    }

    /// A visitor opens `token`: one download is counted and the answer is a URL of the file's
    /// bytes, valid `share_redirect_ttl` (so a revoked link's last redirects stop within it).
    /// The owner's trail records each use of a real link and its outcome, not the visitor.
    pub async fn open(&self, client: &Client, token: &str) -> Result<String, Error> {
        let now = self.clock.now();
        // A token this platform did not sign names no share: nothing to record, nothing revealed.
        let (id, expires_at) = self.links.key.open(token).map_err(refused)?;
        tracing::Span::current().record("share", tracing::field::display(id));
        let share = self.shares.get(&id).await?.ok_or_else(|| refused(ShareRefusal::Unknown))?;
        // From here on the owner's trail records the attempt, whatever its outcome.
        let outcome =
            if is_expired(expires_at, now) { Err(ShareRefusal::Expired) } else { self.download(&share, now).await? };
        let access = Access {
            owner: &share.owner,
            action: AuditAction::ShareDownload,
            file_id: Some(share.file_id),
            actor: Some(format!("share:{id}")),
            result: outcome_of(outcome.as_ref().err().copied()),
        };
        self.audit.record(client, access).await?;
        outcome.map_err(refused)
    }

    /// Spends one download of a live share of a live file: the URL, or why not. The file is
    /// checked first, so a deleted file's link spends nothing.
    async fn download(&self, share: &Share, now: OffsetDateTime) -> Result<Result<String, ShareRefusal>, Error> {
        let file = self.files.details(share.file_id).await?.filter(|d| d.record.owner == share.owner);
        if file.as_ref().is_some_and(|d| crate::archival::refusal(d).is_some()) {
            return Err(Error::conflict("archived", "the shared file is archived; its owner can restore it"));
        }
        let Some(file) = file.filter(shareable).map(|d| d.record) else {
            return Ok(Err(ShareRefusal::FileGone));
        };
        let used = match self.shares.use_once(&share.id, now).await? {
            Ok(used) => used,
            Err(why) => return Ok(Err(why)),
        };
        let disposition = content_disposition(&file.filename, file.content_type, false);
        let signed = self
            .delivery
            .download(&Download {
                key: &file.key,
                version_id: file.version_id.as_deref(),
                content_type: file.content_type.as_str(),
                disposition: &disposition,
                signed_at: now,
                ttl: self.limits.share_redirect_ttl,
            })
            .await?;
        tracing::info!(downloads = used.downloads, "share used");
        Ok(Ok(signed.url))
    }
}
