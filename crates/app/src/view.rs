//! A file as the platform shows it, in one shape: the files API answers with it and the GDPR
//! export writes it into `metadata.json` (there with the file's path in the archive and without
//! variant URLs, which would expire).

use std::collections::BTreeMap;
use std::time::Duration;

use matbakh_core::clock::iso_seconds;
use matbakh_core::metadata::{ExifFacts, FileDetails};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileView {
    pub file_id: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub status: &'static str,
    /// Rises with every change of the file (`FileDetails::revision`): of two views, or of two
    /// live messages or webhooks about it (they can arrive out of order), the higher is newer.
    pub revision: u64,
    /// When the upload was granted, to the second (RFC 3339).
    pub created_at: String,
    /// `private` (its owner only) or `public` (anyone with its CDN URL).
    pub visibility: &'static str,
    pub tags: Vec<String>,
    /// The uploader's own key/values.
    pub metadata: BTreeMap<String, String>,
    /// Hex SHA-256 of the bytes, once the indexer read them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// An image's size as displayed (after EXIF orientation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Base64 ThumbHash, to paint while the image loads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// A public READY file's original at its stable files-CDN URL (its variants' URLs are
    /// stable too); absent for private files, where no CDN serves them, and for an archived
    /// file whose original has no public copy yet (until its restore completes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<VariantView>>,
    /// The variants as a ready `srcset` per content type (`<source type=... srcset=...>`),
    /// narrowest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcset: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exif: Option<ExifView>,
    /// Why a file has no variants, or why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// The end of the restore window of a deleted file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restorable_until: Option<String>,
    /// Its way to the archive tier and back, once it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveView>,
}

/// Where a file stands with the archive tier ([`matbakh_core::archival`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveView {
    /// When its owner asked to archive it (the bucket's lifecycle moves it within a day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    /// The restore under way: its tier and by when S3 promises it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_tier: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_expected_by: Option<String>,
    /// Until when a restored file can be read (then it is ARCHIVED again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_until: Option<String>,
}

impl ArchiveView {
    fn of(a: &matbakh_core::archival::Archival) -> Option<Self> {
        if *a == Default::default() {
            return None;
        }
        Some(ArchiveView {
            requested_at: a.requested_at.map(iso_seconds),
            archived_at: a.archived_at.map(iso_seconds),
            restore_tier: a.restore.map(|(tier, _)| tier.as_str()),
            restore_expected_by: a.restore.map(|(_, by)| iso_seconds(by)),
            restored_until: a.restored_until.map(iso_seconds),
        })
    }
}

/// A file as an administrator sees it where they act on another's (archive, restore): where it
/// stands, never what it holds (its name, metadata, EXIF, URLs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdministeredView {
    pub file_id: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveView>,
}

impl AdministeredView {
    pub fn of(d: &FileDetails) -> Self {
        AdministeredView {
            file_id: d.record.file_id.to_string(),
            status: d.record.status.as_str(),
            archive: ArchiveView::of(&d.archival),
        }
    }
}

/// A file as the caller of a request its owner or an administrator may make sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Shown {
    Owner(Box<FileView>),
    Administrator(AdministeredView),
}

impl Shown {
    pub fn status(&self) -> &'static str {
        match self {
            Shown::Owner(view) => view.status,
            Shown::Administrator(view) => view.status,
        }
    }
}

/// A public file as anyone may see it (a user's public page): what a page needs to show it, its
/// stable CDN URLs, nothing else (no tags, metadata, hash, EXIF or dates).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicFileView {
    pub file_id: String,
    pub name: String,
    pub content_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// The original's stable URL; absent while an archived file's original has no public copy
    /// (its variants are served meanwhile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub variants: Vec<VariantView>,
    pub srcset: BTreeMap<String, String>,
}

impl PublicFileView {
    /// The public part of `v`, a file served publicly (public, stored, on a CDN).
    pub fn of(v: FileView) -> Self {
        PublicFileView {
            url: v.public_url,
            file_id: v.file_id,
            name: v.name,
            content_type: v.content_type,
            width: v.width,
            height: v.height,
            placeholder: v.placeholder,
            variants: v.variants.unwrap_or_default(),
            srcset: v.srcset.unwrap_or_default(),
        }
    }
}

/// One responsive variant, with a URL a browser can load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantView {
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    pub url: String,
}

/// The EXIF facts shown: the position only where the deployment keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExifView {
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub lens: Option<String>,
    pub taken_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

impl FileView {
    /// The view of `d` without variant URLs (the files use cases add them); a deleted file shows
    /// until when it can be restored (`restore_window` after its delete).
    pub fn of(d: &FileDetails, restore_window: Duration) -> Self {
        let r = &d.record;
        FileView {
            file_id: r.file_id.to_string(),
            name: r.filename.as_str().to_owned(),
            content_type: r.content_type.as_str().to_owned(),
            size: r.size,
            status: r.status.as_str(),
            revision: d.revision,
            created_at: iso_seconds(r.created_at),
            visibility: r.labels.visibility.as_str(),
            tags: r.labels.tags.iter().map(|t| t.as_str().to_owned()).collect(),
            metadata: r.labels.metadata.as_map().clone(),
            sha256: r.sha256.map(|s| s.to_hex()),
            width: d.image.as_ref().map(|i| i.width),
            height: d.image.as_ref().map(|i| i.height),
            placeholder: d.image.as_ref().map(|i| i.placeholder.clone()),
            public_url: None,
            variants: None,
            srcset: None,
            exif: d.exif.as_ref().map(ExifView::of),
            reason: d.reason.clone(),
            deleted_at: d.deleted_at.map(iso_seconds),
            restorable_until: d.deleted_at.map(|at| iso_seconds(at + restore_window)),
            archive: ArchiveView::of(&d.archival),
        }
    }
}

impl FileView {
    /// Sets the variants (with their URLs) and their `srcset` per content type.
    pub fn with_variants(mut self, variants: Vec<VariantView>) -> Self {
        let mut by_type: BTreeMap<String, Vec<&VariantView>> = BTreeMap::new();
        for v in &variants {
            by_type.entry(v.content_type.clone()).or_default().push(v);
        }
        let srcset = by_type
            .into_iter()
            .map(|(content_type, mut list)| {
                list.sort_by_key(|v| v.width);
                let set = list.iter().map(|v| format!("{} {}w", v.url, v.width)).collect::<Vec<_>>().join(", ");
                (content_type, set)
            })
            .collect();
        self.srcset = Some(srcset);
        self.variants = Some(variants);
        self
    }
}

impl ExifView {
    fn of(e: &ExifFacts) -> Self {
        ExifView {
            camera_make: e.camera_make.clone(),
            camera_model: e.camera_model.clone(),
            lens: e.lens.clone(),
            taken_at: e.taken_at.clone(),
            location: e.location.map(|p| Location { lat: p.latitude, lon: p.longitude }),
        }
    }
}
