//! The owner's use cases on their files: list, show, rename and retag, soft delete, restore,
//! their usage and their audit trail. Someone else's file answers exactly like a missing one.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use matbakh_core::audit::{AuditAction, AuditRecord};
use matbakh_core::clock::Clock;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::labels::{CustomMetadata, Labels, Tag, Visibility, retag};
use matbakh_core::limits::Limits;
use matbakh_core::listing::{Cursor, ListQuery};
use matbakh_core::metadata::{FileDetails, FileRecord, FileStatus};
use matbakh_core::names::DisplayName;
use matbakh_core::quota::Usage;

use crate::audit::{Access, Client, Trail};
use crate::delivery::Delivery;
use crate::error::Error;
use crate::ports::{FileCatalog, ObjectLifecycle, UsageRepo};
use crate::view::{FileView, PublicFileView};

/// How often an update is tried when the file keeps changing under it.
pub const UPDATE_ATTEMPTS: usize = 3;

/// Files of a listed page viewed at once (an archived public file's view is one S3 HEAD).
pub const VIEWS_IN_FLIGHT: usize = 16;

/// What the files use cases work with.
#[derive(Clone)]
pub struct Files {
    pub files: Arc<dyn FileCatalog>,
    pub usage: Arc<dyn UsageRepo>,
    /// The request budgets' counters (restores from the archive tier).
    pub counters: Arc<dyn crate::ports::Counters>,
    pub audit: Trail,
    pub objects: Arc<dyn ObjectLifecycle>,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    /// Variant URLs, and the public copies of public files.
    pub delivery: Delivery,
    /// Who may act on anyone's file where a use case allows it (archiving: `ADMIN_USERS`).
    pub admins: Arc<BTreeSet<String>>,
}

/// A page of the owner's files.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub files: Vec<FileView>,
    pub next: Option<Cursor>,
}

/// A page of a user's public files.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicPage {
    pub files: Vec<PublicFileView>,
    pub next: Option<Cursor>,
}

/// An owner's change of a file: each part optional, at least one given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub name: Option<DisplayName>,
    pub add_tags: Vec<Tag>,
    pub remove_tags: Vec<Tag>,
    pub visibility: Option<Visibility>,
    /// Replaces the file's metadata as a whole.
    pub metadata: Option<CustomMetadata>,
}

impl Change {
    fn is_empty(&self) -> bool {
        let Change { name, add_tags, remove_tags, visibility, metadata } = self;
        name.is_none() && add_tags.is_empty() && remove_tags.is_empty() && visibility.is_none() && metadata.is_none()
    }
}

/// The result of a delete: the file as it is now, and whether this call deleted it (`false`:
/// a retry of a delete that already happened).
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    pub file: FileView,
    pub now: bool,
}

/// A user's storage as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageReport {
    pub usage: Usage,
    pub quota_bytes: u64,
    pub files: u64,
}

impl Files {
    /// The caller's file, or [`Error::NotFound`] (missing and someone else's are one answer).
    pub(crate) async fn own(&self, caller: &UserId, id: FileId) -> Result<FileDetails, Error> {
        self.files.details(id).await?.filter(|d| d.record.owner == *caller).ok_or(Error::NotFound("file"))
    }

    /// Whether `user` administers this deployment (`ADMIN_USERS`).
    pub fn is_admin(&self, user: &UserId) -> bool {
        self.admins.contains(user.as_str())
    }

    /// The caller's file, or anyone's if the caller is an administrator.
    pub(crate) async fn own_or_administered(&self, caller: &UserId, id: FileId) -> Result<FileDetails, Error> {
        if self.is_admin(caller) {
            return self.files.details(id).await?.ok_or(Error::NotFound("file"));
        }
        self.own(caller, id).await
    }

    /// The file as the API shows it, with its variants' URLs.
    pub(crate) async fn view(&self, d: &FileDetails) -> Result<FileView, Error> {
        self.delivery.view(d, self.limits.restore_window).await
    }

    /// Views of `found`, in its order, [`VIEWS_IN_FLIGHT`] at a time: an archived public file's
    /// view asks the bucket whether its public copy is there.
    async fn views<'a>(&self, found: impl Iterator<Item = &'a FileDetails>) -> Result<Vec<FileView>, Error> {
        // The futures made first: a stream of a closure's futures is not `Send` to the compiler
        // (a lifetime it cannot generalise), and the HTTP handlers need it to be.
        let views: Vec<_> = found.map(|d| self.view(d)).collect();
        futures_util::stream::iter(views).buffered(VIEWS_IN_FLIGHT).try_collect().await
    }

    /// A page of the caller's files as `q` asks.
    pub async fn list(&self, caller: &UserId, q: &ListQuery) -> Result<Page, Error> {
        let (found, next) = self.files.list(caller, q).await?;
        let files = self.views(found.iter()).await?;
        tracing::info!(files = files.len(), more = next.is_some(), "listed");
        Ok(Page { files, next })
    }

    /// A page of `owner`'s public stored files (READY, or archived: their public copies stay
    /// in the standard class) as anyone may see them: only files with stable CDN URLs (none
    /// where no CDN serves public copies). Listed from the owner's files and filtered, so a
    /// page may hold fewer than `q.limit`; `next` goes on.
    pub async fn public_page(&self, owner: &UserId, cursor: Option<Cursor>) -> Result<PublicPage, Error> {
        let q = ListQuery { cursor, ..ListQuery::default() };
        let (found, next) = self.files.list(owner, &q).await?;
        let public = found.iter().filter(|d| self.delivery.served_publicly(&d.record).is_some());
        let files: Vec<PublicFileView> = self.views(public).await?.into_iter().map(PublicFileView::of).collect();
        tracing::info!(files = files.len(), more = next.is_some(), "public page listed");
        Ok(PublicPage { files, next })
    }

    pub async fn show(&self, caller: &UserId, id: FileId) -> Result<FileView, Error> {
        let d = self.own(caller, id).await?;
        self.view(&d).await
    }

    /// Renames, retags, makes public or private, replaces the metadata; optimistic: read,
    /// change, write if nobody changed it meanwhile, [`UPDATE_ATTEMPTS`] tries.
    pub async fn update(
        &self,
        caller: &UserId,
        client: &Client,
        id: FileId,
        change: &Change,
    ) -> Result<FileView, Error> {
        if change.is_empty() {
            let message = "give a name, addTags, removeTags, visibility or metadata".into();
            return Err(Error::BadField { field: "body", message });
        }
        for _ in 0..UPDATE_ATTEMPTS {
            let before = self.own(caller, id).await?;
            if before.record.status == FileStatus::Deleted {
                return Err(Error::conflict("deleted", "restore the file before changing it"));
            }
            let r = &before.record;
            let after = FileRecord {
                filename: change.name.clone().unwrap_or_else(|| r.filename.clone()),
                labels: Labels {
                    tags: retag(&r.labels.tags, &change.add_tags, &change.remove_tags)?,
                    visibility: change.visibility.unwrap_or(r.labels.visibility),
                    metadata: change.metadata.clone().unwrap_or_else(|| r.labels.metadata.clone()),
                },
                ..r.clone()
            };
            let (was, is) = (r.labels.visibility, after.labels.visibility);
            // Private at once: the public copies and the results its unexpiring image URLs were
            // served (the CDN forgets them) go before the row says private, so a failure leaves
            // the file public and the retry does it again.
            if is == Visibility::Private && was == Visibility::Public {
                self.delivery.make_private(id, &r.key).await?;
            }
            if self.files.update(&before, &after).await? {
                if is == Visibility::Private && was == Visibility::Public {
                    self.delivery.forget_what_was_stored_meanwhile(id, &r.key).await?;
                }
                // Public once the row says so: a failed copy answers an error and the retry
                // (public already) copies again. An archived file's variants now, its original
                // once a restore completes.
                // From the row as it is now, not the read this change was made from: a READY
                // (with its variants) that landed in between is not in that read (a review: a
                // file made public right after its upload got no copies).
                if is == Visibility::Public
                    && let Some(now) = self.files.details(id).await?
                {
                    self.delivery.publish_checked(&*self.objects, &*self.files, &now.record, now.variants()).await?;
                }
                self.audit.record(client, Access::ok(caller, AuditAction::Update, Some(id))).await?;
                let (renamed, tags, visibility) =
                    (change.name.is_some(), after.labels.tags.len(), after.labels.visibility.as_str());
                tracing::info!(renamed, tags, visibility, "file updated");
                return self.show(caller, id).await;
            }
        }
        Err(Error::conflict("busy", "the file kept changing; try again"))
    }

    /// A soft delete: the object hidden behind a delete marker, the row DELETED and restorable
    /// for the restore window. A retry of a delete answers the deleted file again.
    pub async fn delete(&self, caller: &UserId, client: &Client, id: FileId) -> Result<Deleted, Error> {
        let d = self.own(caller, id).await?;
        let r = &d.record;
        let now = match r.status {
            FileStatus::Deleted => false, // a retry: the marker is there, the row says so
            FileStatus::Pending => {
                return Err(Error::conflict(
                    "upload_incomplete",
                    "the file has not arrived yet; abort its upload instead",
                ));
            }
            // Made READY (or FAILED) by the thumbnailer before the indexer checked the upload
            // against its grant and the quota: deleted now, that check would never run (review
            // 25). It runs within seconds of the upload.
            _ if r.expires_at.is_some() => {
                return Err(Error::conflict(
                    "upload_incomplete",
                    "the upload is still being checked; try again in a few seconds",
                ));
            }
            FileStatus::Ready
            | FileStatus::Failed
            | FileStatus::Quarantined
            | FileStatus::Archived
            | FileStatus::Restoring => {
                // The public copies and the marker first: once the row says DELETED, nothing
                // of the file is served any more.
                if r.labels.visibility == Visibility::Public {
                    self.delivery.unpublish(id).await?;
                }
                self.objects.hide(&r.key).await?;
                self.files.soft_delete(id, self.clock.now(), r.status).await?;
                if r.labels.visibility == Visibility::Public {
                    self.delivery.forget_what_was_stored_meanwhile(id, &r.key).await?;
                }
                self.audit.record(client, Access::ok(caller, AuditAction::Delete, Some(id))).await?;
                true
            }
        };
        tracing::info!(now, "file deleted");
        Ok(Deleted { file: self.show(caller, id).await?, now })
    }

    /// Within the restore window, a deleted file is READY again (counted in usage again).
    pub async fn restore(&self, caller: &UserId, client: &Client, id: FileId) -> Result<FileView, Error> {
        let not_deleted = Error::conflict("not_deleted", "the file is not deleted");
        let d = self.own(caller, id).await?;
        if d.record.status != FileStatus::Deleted {
            return Err(not_deleted);
        }
        let window_ends = d.deleted_at.map(|at| at + self.limits.restore_window);
        if window_ends.is_none_or(|end| self.clock.now() >= end) {
            return Err(Error::gone("restore_window_passed", "the file can no longer be restored"));
        }
        // The row first (it checks the quota); then the marker goes. A crash between the two
        // leaves a READY row whose object a retry of DELETE or restore sets right.
        let back = FileRecord { status: d.restored_status(), ..d.record.clone() };
        if !self.files.restore(&back, self.limits.user_quota_bytes).await? {
            return Err(not_deleted);
        }
        self.objects.unhide(&d.record.key).await?;
        // Its public copies again (an archived original's once it is restored).
        if d.record.labels.visibility == Visibility::Public && back.status != FileStatus::Failed {
            self.delivery.publish_checked(&*self.objects, &*self.files, &back, d.variants()).await?;
        }
        self.audit.record(client, Access::ok(caller, AuditAction::Restore, Some(id))).await?;
        tracing::info!("file restored");
        self.show(caller, id).await
    }

    /// What the caller stores and may still store.
    pub async fn usage(&self, caller: &UserId) -> Result<UsageReport, Error> {
        let usage = self.usage.usage(caller).await?;
        let files = self.files.count_live(caller).await?;
        Ok(UsageReport { usage, quota_bytes: self.limits.user_quota_bytes, files })
    }

    /// A page of the caller's own audit trail, newest first.
    pub async fn audit_trail(
        &self,
        caller: &UserId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<AuditRecord>, Option<String>), Error> {
        Ok(self.audit.log.page(caller, limit, after).await?)
    }
}
