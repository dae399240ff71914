//! The metadata model: what the platform knows about each file.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::ids::{FileId, ObjectKey, Sha256, UserId};
use crate::labels::Labels;
use crate::names::{DisplayName, SafeName};
use crate::types::ContentType;

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// An upload was granted; the object may not exist yet.
    Pending,
    /// The object exists and passed the checks.
    Ready,
    /// The bytes are not what was declared, or not allowed; moved to `quarantine/`.
    Quarantined,
    /// An allowed image that could not be processed (broken, or the pipeline failed); kept,
    /// without variants, with the reason.
    Failed,
    /// Soft-deleted by its owner.
    Deleted,
    /// The original is in the archive class ([`crate::archival`]): its variants still show,
    /// its bytes need a restore first.
    Archived,
    /// A restore of the archived original is under way.
    Restoring,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "PENDING",
            FileStatus::Ready => "READY",
            FileStatus::Quarantined => "QUARANTINED",
            FileStatus::Failed => "FAILED",
            FileStatus::Deleted => "DELETED",
            FileStatus::Archived => "ARCHIVED",
            FileStatus::Restoring => "RESTORING",
        }
    }
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PENDING" => Ok(FileStatus::Pending),
            "READY" => Ok(FileStatus::Ready),
            "QUARANTINED" => Ok(FileStatus::Quarantined),
            "FAILED" => Ok(FileStatus::Failed),
            "DELETED" => Ok(FileStatus::Deleted),
            "ARCHIVED" => Ok(FileStatus::Archived),
            "RESTORING" => Ok(FileStatus::Restoring),
            other => Err(format!("unknown file status {other:?}")),
        }
    }
}

/// One file's metadata row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub file_id: FileId,
    pub owner: UserId,
    pub key: ObjectKey,
    pub filename: DisplayName,
    pub content_type: ContentType,
    pub size: u64,
    pub sha256: Option<Sha256>,
    pub status: FileStatus,
    pub created_at: OffsetDateTime,
    /// When a PENDING row's grant lapses (the sweeper then releases it); `None` once settled.
    pub expires_at: Option<OffsetDateTime>,
    /// The S3 version accepted as this file (DECISIONS 28), once the object arrived; every
    /// read of the file reads exactly it. `None` before, and in a bucket without versioning.
    pub version_id: Option<String>,
    /// Who may read it, its tags, its owner's key/values.
    pub labels: Labels,
}

impl FileRecord {
    /// A new upload's row: PENDING, at `users/{owner}/{fileId}/{safe name}`, private, no tags
    /// or metadata, nothing granted and no grant running yet (callers set `size`,
    /// `expires_at`, `sha256` and the `labels` the uploader gave).
    pub fn upload(
        file_id: FileId,
        owner: UserId,
        filename: DisplayName,
        content_type: ContentType,
        created_at: OffsetDateTime,
    ) -> Self {
        FileRecord {
            key: ObjectKey::original(&owner, file_id, &SafeName::from_display(&filename)),
            file_id,
            owner,
            filename,
            content_type,
            size: 0,
            sha256: None,
            status: FileStatus::Pending,
            created_at,
            expires_at: None,
            version_id: None,
            labels: Labels::default(),
        }
    }
}

/// One responsive variant of an image, as the metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantInfo {
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    pub key: ObjectKey,
}

/// What the platform does with a file the image pipeline refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Not what it claims, or built to hurt a decoder: moved to `quarantine/`.
    Quarantine,
    /// An image that could not be processed (broken, or our encoder failed): kept, no variants.
    Fail,
    /// An allowed image type this pipeline has no decoder for (HEIC): kept, no variants.
    KeepWithoutVariants,
}

/// What a READY row records besides its status (the thumbnailer's verdict).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready<'a> {
    /// The image facts and variants, for an image that got them.
    pub image: Option<&'a ImageInfo>,
    /// Why there are no variants, when an image has none.
    pub note: Option<&'a str>,
    /// What the virus scan said (`clean`, or why it did not run), when one is configured.
    pub virus_scan: Option<&'a str>,
}

/// What the thumbnailer learnt about an image and made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// As displayed (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// Base64 ThumbHash.
    pub placeholder: String,
    pub variants: Vec<VariantInfo>,
}

/// A position in decimal degrees (WGS 84; north and east positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

/// The EXIF facts the platform keeps. The GPS position only where the deployment opted in
/// (`STORE_GPS_LOCATION`); otherwise only that the file had one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifFacts {
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub lens: Option<String>,
    pub taken_at: Option<String>,
    pub orientation: u8,
    pub had_gps: bool,
    pub location: Option<GeoPoint>,
}

/// What the indexer learnt by reading an object once.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentFacts {
    pub sha256: Sha256,
    pub etag: Option<String>,
    /// The type the bytes really are (`core::sniff`), when recognised.
    pub sniffed_type: Option<String>,
    pub exif: Option<ExifFacts>,
    pub tokens: Vec<String>,
    /// An older live file of the same owner with the same bytes.
    pub duplicate_of: Option<FileId>,
}

/// A file as the API shows it: the row and what processing and its owner added.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDetails {
    pub record: FileRecord,
    pub image: Option<ImageInfo>,
    /// Why a file has no variants, or why it was refused.
    pub reason: Option<String>,
    pub exif: Option<ExifFacts>,
    pub deleted_at: Option<OffsetDateTime>,
    /// The status a delete took it from, the owner's or a delete marker's (what a restore may
    /// bring back: [`Self::restored_status`]).
    pub deleted_from: Option<FileStatus>,
    /// Raised by every write of the row (it starts at the writer's clock in milliseconds, so a
    /// row written anew under the same id continues above the removed one): the order of a
    /// file's changes, which live messages and webhooks carry (`data.revision`: they can
    /// arrive out of order). 0 for a row written before revisions were kept.
    pub revision: u64,
    /// How many changes its owner made (name, tags, visibility, metadata): an owner's change
    /// is written only over the one it was made from (optimistic concurrency). Not
    /// [`Self::revision`]: processing's writes in the seconds after an upload would make an
    /// owner's change meanwhile fail every attempt.
    pub edits: u64,
    /// Its way to the archive tier and back.
    pub archival: crate::archival::Archival,
    /// The indexer read its object (hash, type, EXIF, search words); a row may carry its
    /// SHA-256 before that (a declared checksum, a migrated file).
    pub indexed: bool,
    /// FAILED because its processing never finished (the thumbnailer gave up on its last
    /// delivery): its bytes were neither checked nor rendered, so it is not shared. Processing
    /// it again (the event redriven from the DLQ) takes it back to PENDING first.
    pub unprocessed: bool,
}

impl FileDetails {
    /// A file of which nothing is known yet but its row: no image facts, EXIF, reason.
    pub fn new(record: FileRecord) -> Self {
        FileDetails {
            record,
            image: None,
            reason: None,
            exif: None,
            deleted_at: None,
            deleted_from: None,
            revision: 0,
            edits: 0,
            archival: Default::default(),
            indexed: false,
            unprocessed: false,
        }
    }

    /// The image's variants: none for a file that is not an image or not processed yet.
    pub fn variants(&self) -> &[VariantInfo] {
        self.image.as_ref().map_or(&[], |i| &i.variants)
    }

    /// The status a restore of this deleted file brings back: a file that had failed is failed
    /// again (READY, it would be served and published), an archived original stays archived (a
    /// restored copy may have lapsed meanwhile); anything else is READY.
    pub fn restored_status(&self) -> FileStatus {
        match (self.deleted_from, self.archival.archived_at) {
            (Some(FileStatus::Failed), _) => FileStatus::Failed,
            (_, Some(_)) => FileStatus::Archived,
            _ => FileStatus::Ready,
        }
    }
}

/// An unsettled PENDING row: what the sweeper needs to give its grant back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub file_id: FileId,
    pub owner: UserId,
    pub key: ObjectKey,
    /// The multipart upload, for rows a REST multipart session reserved.
    pub upload_id: Option<crate::multipart::UploadId>,
    /// Bytes the owner's usage counts for the row, and how many of those are only reserved.
    pub charged: u64,
    pub reserved: u64,
    /// The upload token whose allowance the row reserved (a Companion-mode single upload).
    pub token_digest: Option<String>,
}

/// What settling an arrived upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Size and usage now count the real bytes.
    Accepted,
    /// An earlier delivery of the same event settled it.
    AlreadySettled,
    /// The object may not stay; the reason is for the row and the log.
    Refused(&'static str),
    /// No row was granted for this key (not uploaded through the API).
    Unknown,
}

/// Whether a version of a file's key is the file's accepted object (see
/// the files repository's `pin_version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// The version asked about is the accepted one (pinned now, or before).
    This,
    /// Another version was accepted before: the one asked about is a stray (a replayed
    /// upload), never to be served.
    Other(String),
    /// No row was granted for this key.
    Unknown,
}
