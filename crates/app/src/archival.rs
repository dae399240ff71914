//! The archive tier's use cases ([`matbakh_core::archival`] has the rules): the owner asks to
//! archive a file or to restore an archived one; the indexer reports what S3 did (moved it,
//! made a restored copy, let the copy lapse). Whatever reads an original asks [`refusal`]
//! first, so an archived file answers `409 archived` with how to get it back, never a URL that
//! would fail.

use matbakh_core::archival::{
    ARCHIVE_NOW_VALUE, ARCHIVE_TAG, Archival, RestoreTier, TYPE_CLASS_TAG, needs_restore, type_class_tag,
};
use matbakh_core::audit::AuditAction;
use matbakh_core::clock::iso_seconds;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus};
use matbakh_core::throttle::Costly;
use time::OffsetDateTime;

use crate::audit::{Access, Client};
use crate::error::Error;
use crate::files::Files;
use crate::view::{AdministeredView, Shown};

/// Why an original cannot be read now, if it cannot: archived (restore it first), or being
/// restored (with the time S3 promised).
pub fn refusal(d: &FileDetails) -> Option<Error> {
    let id = d.record.file_id;
    match d.record.status {
        FileStatus::Archived => Some(Error::conflict(
            "archived",
            format!(
                "this file is archived; restore it with POST /v1/files/{id}/unarchive {{\"tier\": \"Expedited\" | \
                 \"Standard\" | \"Bulk\"}} (minutes, hours, or half a day), then download it"
            ),
        )),
        FileStatus::Restoring => Some(Error::conflict(
            "restoring",
            match d.archival.restore {
                Some((tier, by)) => {
                    format!("this file is being restored ({} tier); expected by {}", tier.as_str(), iso_seconds(by))
                }
                None => "this file is being restored".to_owned(),
            },
        )),
        _ => None,
    }
}

/// What goes into the owner's trail: their own act, or an administrator's (`admin:{sub}`).
fn acted<'a>(caller: &UserId, d: &'a FileDetails, action: AuditAction, result: &'a str) -> Access<'a> {
    let owner = &d.record.owner;
    let actor = (caller != owner).then(|| format!("admin:{caller}"));
    Access { owner, action, file_id: Some(d.record.file_id), actor, result }
}

impl Files {
    /// The owner (or an administrator) asks to archive a READY file now: its original is tagged for the bucket's
    /// lifecycle, which moves it at its next run (S3 runs lifecycle rules once a day); the row
    /// says when it was asked and becomes ARCHIVED when S3 reports the move. Asking again
    /// changes nothing.
    pub async fn archive(&self, caller: &UserId, client: &Client, id: FileId) -> Result<Shown, Error> {
        let d = self.own_or_administered(caller, id).await?;
        match d.record.status {
            FileStatus::Ready if d.archival.requested_at.is_none() => {}
            FileStatus::Ready | FileStatus::Archived | FileStatus::Restoring => {
                return self.unchanged(caller, client, &d, AuditAction::Archive).await;
            }
            FileStatus::Pending => {
                return Err(Error::conflict("upload_incomplete", "the file has not arrived yet"));
            }
            FileStatus::Failed | FileStatus::Quarantined | FileStatus::Deleted => {
                return Err(Error::conflict("not_archivable", "only a stored (READY) file can be archived"));
            }
        }
        let r = &d.record;
        let class = type_class_tag(r.content_type.class());
        let tags = [(TYPE_CLASS_TAG, class), (ARCHIVE_TAG, ARCHIVE_NOW_VALUE)];
        self.objects.set_tags(&r.key, r.version_id.as_deref(), &tags).await?;
        let archival = Archival { requested_at: Some(self.clock.now()), ..d.archival.clone() };
        if !self.files.set_archival(id, &[FileStatus::Ready], FileStatus::Ready, &archival).await? {
            // The original is tagged all the same (the lifecycle may move it): in the trail.
            self.audit.record(client, acted(caller, &d, AuditAction::Archive, "busy")).await?;
            return Err(Error::conflict("busy", "the file changed meanwhile; try again"));
        }
        self.audit.record(client, acted(caller, &d, AuditAction::Archive, "ok")).await?;
        tracing::info!(by_admin = *caller != d.record.owner, "archive requested");
        self.shown(caller, id).await
    }

    /// The owner (or an administrator) asks for an ARCHIVED file back: S3 makes a readable copy in `tier`'s time;
    /// the row is RESTORING until S3 reports the copy (then READY). Asking while it is being
    /// restored answers the restore under way.
    pub async fn unarchive(
        &self,
        caller: &UserId,
        client: &Client,
        id: FileId,
        tier: RestoreTier,
    ) -> Result<Shown, Error> {
        let d = self.own_or_administered(caller, id).await?;
        match d.record.status {
            FileStatus::Archived => {}
            FileStatus::Restoring => return self.unchanged(caller, client, &d, AuditAction::Unarchive).await,
            _ => return Err(Error::conflict("not_archived", "the file is not archived")),
        }
        let r = &d.record;
        let head = self.objects.head(&r.key, r.version_id.as_deref()).await?.ok_or(Error::NotFound("file"))?;
        let class = head.storage_class.unwrap_or_default();
        let within = tier.expected_within(&class)?;
        // Restores cost money (S3 bills each, an Expedited one most): each user has a budget a
        // day (security review 20), counted only for a restore S3 is asked for.
        let now = self.clock.now();
        let budgets = &self.limits.budgets;
        if tier == RestoreTier::Expedited {
            crate::throttle::admit(&*self.counters, budgets, now, caller, Costly::ExpeditedRestore).await?;
        }
        crate::throttle::admit(&*self.counters, budgets, now, caller, Costly::Restore).await?;
        self.objects.restore(&r.key, r.version_id.as_deref(), tier, self.limits.restored_days).await?;
        let archival = Archival { restore: Some((tier, now + within)), ..d.archival.clone() };
        let recorded = self.files.set_archival(id, &[FileStatus::Archived], FileStatus::Restoring, &archival).await?;
        // S3 was asked for the (billed) restore: in the trail whatever the row says now.
        self.audit.record(client, acted(caller, &d, AuditAction::Unarchive, tier.as_str())).await?;
        if !recorded {
            // S3's restore is under way either way; the row changed meanwhile (a retry, or the
            // copy already there): show what it says now.
            return self.shown(caller, id).await;
        }
        tracing::info!(tier = tier.as_str(), by_admin = *caller != d.record.owner, "restore requested");
        self.shown(caller, id).await
    }

    /// The file as it is now: to its owner the whole view; to an administrator only where it
    /// stands (security review 20: these routes showed them the file's name, metadata, EXIF and
    /// its private variants' URLs).
    async fn shown(&self, caller: &UserId, id: FileId) -> Result<Shown, Error> {
        let d = self.own_or_administered(caller, id).await?;
        self.seen(caller, &d).await
    }

    async fn seen(&self, caller: &UserId, d: &FileDetails) -> Result<Shown, Error> {
        Ok(match *caller == d.record.owner {
            true => Shown::Owner(Box::new(self.view(d).await?)),
            false => Shown::Administrator(AdministeredView::of(d)),
        })
    }

    /// A request that changes nothing (asked again): the file as it is, and an administrator's
    /// request in the owner's trail all the same.
    async fn unchanged(
        &self,
        caller: &UserId,
        client: &Client,
        d: &FileDetails,
        action: AuditAction,
    ) -> Result<Shown, Error> {
        if *caller != d.record.owner {
            self.audit.record(client, acted(caller, d, action, "unchanged")).await?;
        }
        self.seen(caller, d).await
    }

    /// Tags a newly accepted original with its type class, which the lifecycle's archive rules
    /// filter on (the indexer, once the upload settled).
    pub async fn classify(&self, r: &FileRecord) -> Result<(), Error> {
        let tags = [(TYPE_CLASS_TAG, type_class_tag(r.content_type.class()))];
        Ok(self.objects.set_tags(&r.key, r.version_id.as_deref(), &tags).await?)
    }

    /// S3 moved `version` of a file's original to another class (`LifecycleTransition`): if
    /// the file's accepted version now needs a restore to be read, the file is ARCHIVED.
    /// Whether the row changed.
    pub async fn transitioned(&self, id: FileId, version: Option<&str>) -> Result<bool, Error> {
        let Some(d) = self.accepted(id, version).await? else { return Ok(false) };
        let r = &d.record;
        let head = self.objects.head(&r.key, r.version_id.as_deref()).await?;
        if !needs_restore(head.as_ref().and_then(|h| h.storage_class.as_deref())) {
            return Ok(false); // Intelligent-Tiering and the like: read as before
        }
        let archival =
            Archival { archived_at: Some(self.clock.now()), restore: None, restored_until: None, ..d.archival.clone() };
        Ok(self.files.set_archival(id, &[FileStatus::Ready], FileStatus::Archived, &archival).await?)
    }

    /// The restored copy of a file's original is there until `until` (`ObjectRestore:Completed`):
    /// READY again, and a public file's original copied for the CDN again (gone if the file
    /// was deleted and brought back while archived). Whether the row changed.
    pub async fn restore_completed(
        &self,
        id: FileId,
        version: Option<&str>,
        until: Option<OffsetDateTime>,
    ) -> Result<bool, Error> {
        let Some(d) = self.accepted(id, version).await? else { return Ok(false) };
        let archival = Archival { restore: None, restored_until: until, ..d.archival.clone() };
        let from = [FileStatus::Archived, FileStatus::Restoring];
        if !self.files.set_archival(id, &from, FileStatus::Ready, &archival).await? {
            return Ok(false);
        }
        let ready = FileRecord { status: FileStatus::Ready, ..d.record.clone() };
        // Made private (or deleted) while the copies were written from the row read before:
        // they go again, and the CDN forgets them.
        self.delivery.publish_checked(&*self.objects, &*self.files, &ready, d.variants()).await?;
        Ok(true)
    }

    /// The restored copy lapsed (`ObjectRestore:Delete`): ARCHIVED again. Whether the row
    /// changed.
    pub async fn restore_expired(&self, id: FileId, version: Option<&str>) -> Result<bool, Error> {
        let Some(d) = self.accepted(id, version).await? else { return Ok(false) };
        if d.archival.archived_at.is_none() {
            return Ok(false);
        }
        let archival = Archival { restored_until: None, ..d.archival.clone() };
        Ok(self.files.set_archival(id, &[FileStatus::Ready], FileStatus::Archived, &archival).await?)
    }

    /// The file, if `version` is its accepted one (S3's events about other versions, strays of
    /// DECISIONS 28, say nothing about the file).
    async fn accepted(&self, id: FileId, version: Option<&str>) -> Result<Option<FileDetails>, Error> {
        let d = self.files.details(id).await?;
        Ok(d.filter(|d| {
            version.is_none() || d.record.version_id.is_none() || d.record.version_id.as_deref() == version
        }))
    }
}
