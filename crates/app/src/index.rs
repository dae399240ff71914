//! Reading a settled object once (streaming): its SHA-256, the type its bytes really are, EXIF
//! for images, the search words of its name, and whether its owner already has the same bytes.
//! Done once per file: a row read before, or quarantined or deleted, is not read again. A row
//! that came with its SHA-256 (a declared checksum, a migrated file) is read all the same: its
//! type, EXIF and search words come from the read.

use std::sync::Arc;

use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::metadata::{ContentFacts, FileStatus};
use matbakh_core::names::search_tokens;
use matbakh_core::sniff::{Sniffed, sniff};
use matbakh_core::types::TypeClass;

use crate::error::Error;
use crate::ports::{ExifReader, FileRepo, ObjectStore};

/// Bytes kept from the start of each object while hashing it, for sniffing and EXIF (a JPEG's
/// EXIF block is at most 64 KiB and comes first).
pub const PREFIX_BYTES: usize = 256 * 1024;

/// What indexing works with.
#[derive(Clone)]
pub struct Indexing {
    pub files: Arc<dyn FileRepo>,
    pub objects: Arc<dyn ObjectStore>,
    pub exif: Arc<dyn ExifReader>,
}

/// What an indexing read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    /// Bytes read (and hashed).
    pub bytes: u64,
    /// The owner already had the same bytes.
    pub duplicate: bool,
}

impl Indexing {
    /// Indexes file `id` at `key` (`order`: the event's, so an older event never overwrites
    /// newer facts); `None` if there was nothing (more) to index.
    pub async fn index(&self, id: FileId, key: &ObjectKey, order: Option<&str>) -> Result<Option<Indexed>, Error> {
        let details = self.files.details(id).await?.filter(|d| d.record.key == *key);
        let Some(details) = details else { return Ok(None) };
        let row = details.record;
        if details.indexed || matches!(row.status, FileStatus::Quarantined | FileStatus::Deleted) {
            return Ok(None);
        }
        let Some(read) = self.objects.read_digest(key, row.version_id.as_deref(), PREFIX_BYTES).await? else {
            return Ok(None);
        };
        let facts = ContentFacts {
            sha256: read.sha256,
            etag: read.etag,
            sniffed_type: match sniff(&read.prefix) {
                Sniffed::Allowed(t) => Some(t.as_str().to_owned()),
                _ => None,
            },
            exif: (row.content_type.class() == TypeClass::Image).then(|| self.exif.read(&read.prefix)),
            tokens: search_tokens(row.filename.as_str()),
            duplicate_of: self.files.find_duplicate(&row.owner, &read.sha256, id).await?,
        };
        if !self.files.record_content(id, &facts, order).await? {
            return Ok(None);
        }
        // The name's search words and the tags, in the owner's indexes (GET /v1/files?q=, ?tag=).
        self.files.index_search(&row).await?;
        let indexed = Indexed { bytes: read.size, duplicate: facts.duplicate_of.is_some() };
        tracing::info!(file_id = %id, bytes = read.size, duplicate = indexed.duplicate, "content indexed");
        Ok(Some(indexed))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use matbakh_core::ids::{FileId, ObjectKey, UserId};
    use matbakh_core::metadata::{ExifFacts, FileDetails, FileRecord, FileStatus};
    use matbakh_core::names::DisplayName;
    use matbakh_core::types::ContentType;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::{InMemory, InMemoryObjects};

    /// Reads a camera make from bytes that start with one (the imaging crate's parser is
    /// tested there).
    struct Make;

    impl ExifReader for Make {
        fn read(&self, prefix: &[u8]) -> ExifFacts {
            let make = prefix.starts_with(b"\xff\xd8").then(|| "TestCam".to_owned());
            ExifFacts { camera_make: make, ..ExifFacts::default() }
        }
    }

    fn photo(repo: &InMemory, objects: &InMemoryObjects, n: u8, bytes: &[u8]) -> (FileId, ObjectKey) {
        let id = FileId::new(1_772_000_000_000 + u64::from(n), [n; 10]);
        let at = datetime!(2026-03-01 12:00 UTC);
        let name = DisplayName::parse(&format!("dish {n}.jpg")).unwrap();
        let mut record = FileRecord::upload(
            id,
            UserId::parse("alice").unwrap(),
            name,
            ContentType::parse("image/jpeg").unwrap(),
            at,
        );
        let version = objects.put_bytes(&record.key, bytes.to_vec());
        (record.size, record.status, record.version_id) = (bytes.len() as u64, FileStatus::Ready, Some(version));
        let key = record.key.clone();
        repo.insert(FileDetails::new(record));
        (id, key)
    }

    #[tokio::test]
    async fn a_file_is_read_once_and_the_same_bytes_again_are_a_duplicate() {
        let (repo, objects) = (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()));
        let indexing = Indexing { files: repo.clone(), objects: objects.clone(), exif: Arc::new(Make) };
        let jpeg = b"\xff\xd8\xff\xe0 a photo".to_vec();
        let (first, first_key) = photo(&repo, &objects, 1, &jpeg);
        let (second, second_key) = photo(&repo, &objects, 2, &jpeg);

        let indexed = indexing.index(first, &first_key, Some("0001")).await.unwrap();
        assert_eq!(indexed, Some(Indexed { bytes: jpeg.len() as u64, duplicate: false }));
        let d = repo.get(first).unwrap();
        assert_eq!(d.record.sha256.map(|s| s.to_hex()), Some(matbakh_core::ids::Sha256::of(&jpeg).to_hex()));
        assert_eq!(d.exif.and_then(|e| e.camera_make).as_deref(), Some("TestCam"));
        assert_eq!(indexing.index(first, &first_key, Some("0002")).await.unwrap(), None, "read once");

        let indexed = indexing.index(second, &second_key, None).await.unwrap();
        assert_eq!(indexed.map(|i| i.duplicate), Some(true));
        assert_eq!(repo.duplicate_of(second), Some(first));
    }

    /// Review 25: a row carrying its SHA-256 before any read (a checksum declared with the
    /// grant, every migrated file) was taken for one read already: no type check, no EXIF, no
    /// search words, ever.
    #[tokio::test]
    async fn a_row_that_came_with_its_sha256_is_read_all_the_same_and_once() {
        let (repo, objects) = (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()));
        let indexing = Indexing { files: repo.clone(), objects: objects.clone(), exif: Arc::new(Make) };
        let jpeg = b"\xff\xd8\xff\xe0 a migrated photo".to_vec();
        let (id, key) = photo(&repo, &objects, 3, &jpeg);
        let mut d = repo.get(id).unwrap();
        d.record.sha256 = Some(matbakh_core::ids::Sha256::of(&jpeg));
        repo.insert(d);

        let indexed = indexing.index(id, &key, None).await.unwrap();
        assert_eq!(indexed, Some(Indexed { bytes: jpeg.len() as u64, duplicate: false }));
        let d = repo.get(id).unwrap();
        assert_eq!(d.exif.and_then(|e| e.camera_make).as_deref(), Some("TestCam"));
        assert!(d.indexed);
        assert_eq!(indexing.index(id, &key, None).await.unwrap(), None, "read once");
    }
}
