//! `indexer`: reacts to objects arriving in (and leaving) the bucket.
//!
//! Triggered by SQS (the indexer queue, fed by the bucket's SNS topic), with partial batch
//! responses: a record whose handling failed is reported and comes back later (after five
//! failures it goes to the DLQ); the others are done.
//!
//! It settles uploads (DECISIONS 12): when an object under
//! `users/{sub}/{fileId}/` arrives, its row takes the real size and the owner's usage moves
//! from what was reserved or granted to the real bytes. An object larger than its grant, or
//! past the quota (uploads the client completed itself, or sized only by a policy range), is
//! deleted for good and its row QUARANTINED with the reason. Redelivered events change nothing.
//! A key takes exactly one accepted object (DECISIONS 28): the first version seen is pinned on
//! the row, and any other version that appears on the key later (a replayed upload URL) is
//! deleted for good and counted, never settled, indexed or served. Each step is a use case:
//! [`matbakh_app::settle`], [`matbakh_app::index`] and [`matbakh_app::removal`]; this crate
//! decodes the events, calls them and counts what they did.
//!
//! Reads: the object's HEAD and its versions. Writes: the file row, the usage counter, and (for refused
//! uploads) a permanent delete of that object version.
//!
//! Then it reads each new object once (streaming): SHA-256, the sniffed type, EXIF for images
//! (camera, lens, taken-at, orientation; the GPS position only noted as present, unless the
//! deployment sets `STORE_GPS_LOCATION=true`), search tokens
//! of the name, and `duplicateOf` when the owner already has the same bytes. Removal events
//! make the row DELETED and give the bytes back (DECISIONS 13-15); events are ordered by S3's
//! sequencer (else event time), so an older event never overwrites newer state. Any change to
//! an original (a new version, a delete) removes the transformer's results made from it, and
//! with the files CDN (`FILES_DISTRIBUTION_ID`, whose `/t/*` behaviour serves them) invalidates
//! them there first (one wildcard path a file; the variants' and public copies' too when they
//! go): a failed invalidation fails the record, and the results wait in the bucket for its
//! redelivery. The archive tier's events move the row between READY, ARCHIVED and RESTORING
//! ([`matbakh_app::archival`]); a completed restore of a public file copies its original to
//! `p/` again (it is gone if the file was deleted and brought back while archived).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use matbakh_app::index::Indexing;
use matbakh_app::ports::ExifReader;
use matbakh_app::removal::{Removal, Removals, Removed};
use matbakh_app::settle::Settled;
use matbakh_aws::Services;
use matbakh_core::events::{ObjectChange, ObjectEvent};
use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::metadata::{ExifFacts, GeoPoint};
use matbakh_lambda::metrics::{self, Unit};

/// Why one record failed: it is reported, so it is delivered again and, after five failures,
/// lands in the DLQ with its alarm (malformed messages too: `matbakh_lambda::sqs`).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A use case failed: a dependency (retryable, a later delivery may succeed) or not.
    #[error(transparent)]
    App(#[from] matbakh_app::Error),
}

impl IndexError {
    pub fn is_retryable(&self) -> bool {
        match self {
            IndexError::App(e) => e.is_retryable(),
        }
    }
}

/// Whether photo positions are kept, by default: no. A position is personal data that says
/// where someone lives; a deployment whose users want a map view opts in.
pub const DEFAULT_STORE_GPS_LOCATION: bool = false;

/// The function's state: the shared services plus its settings.
#[derive(Clone)]
pub struct Indexer {
    pub services: Services,
    /// `STORE_GPS_LOCATION`: keep the EXIF GPS position on the row (else only `hadGps`).
    pub store_gps_location: bool,
}

impl Indexer {
    /// Removals and cache purges on this deployment's table, bucket and files CDN (the
    /// services' `FILES_DISTRIBUTION_ID`: what a purge removes is invalidated there first).
    pub fn removals(&self) -> Removals {
        Removals {
            files: std::sync::Arc::new(self.services.table.clone()),
            objects: std::sync::Arc::new(self.services.store.clone()),
            cdn: self
                .services
                .files_edge
                .clone()
                .map(|c| std::sync::Arc::new(c) as std::sync::Arc<dyn matbakh_app::ports::EdgeCache>),
            delivery: self.services.delivery(),
            clock: self.services.clock.clone(),
        }
    }

    /// Reading settled objects on this deployment's table and bucket.
    pub fn indexing(&self) -> Indexing {
        Indexing {
            files: std::sync::Arc::new(self.services.table.clone()),
            objects: std::sync::Arc::new(self.services.store.clone()),
            exif: std::sync::Arc::new(Exif { store_gps_location: self.store_gps_location }),
        }
    }

    /// `services` with the setting read from `lookup` (`true` or `false`; absent: the default).
    pub fn new(services: Services, lookup: impl Fn(&str) -> Option<String>) -> Result<Indexer, String> {
        let store_gps_location = match lookup("STORE_GPS_LOCATION").as_deref().map(str::trim) {
            None | Some("") => DEFAULT_STORE_GPS_LOCATION,
            Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(format!("STORE_GPS_LOCATION must be true or false, not {other:?}")),
        };
        Ok(Indexer { services, store_gps_location })
    }
}

/// Handles one batch; the answer names the records to deliver again.
pub async fn handle(ix: &Indexer, event: SqsEvent) -> SqsBatchResponse {
    handle_until(ix, event, None).await
}

/// [`handle`] by `stop` (the invocation's deadline less
/// [`matbakh_lambda::sqs::RECORD_TIME_MARGIN`]): a record not done by then is delivered again,
/// and the batch answers in time for the ones that were.
pub async fn handle_until(ix: &Indexer, event: SqsEvent, stop: Option<time::OffsetDateTime>) -> SqsBatchResponse {
    matbakh_lambda::sqs::for_each_record_until(event, stop, |events, _| async move { handle_events(ix, &events).await })
        .await
}

async fn handle_events(ix: &Indexer, events: &[ObjectEvent]) -> Result<(), IndexError> {
    for event in events {
        match event.change {
            ObjectChange::Created => {
                settle(ix, event).await?;
                index_content(ix, event).await?;
                purge_results(ix, &event.key).await?;
            }
            ObjectChange::DeleteMarkerCreated | ObjectChange::Removed => removed(ix, event).await?,
            ObjectChange::Transitioned | ObjectChange::RestoreCompleted | ObjectChange::RestoreExpired => {
                archive_tier(ix, event).await?
            }
            // The owner's unarchive asked for it; the row says RESTORING already.
            ObjectChange::RestoreStarted => {}
        }
    }
    Ok(())
}

pub use matbakh_app::index::PREFIX_BYTES;

/// EXIF through the imaging crate's parser; the GPS position only where the deployment keeps
/// it (`STORE_GPS_LOCATION`), else only that there was one.
struct Exif {
    store_gps_location: bool,
}

impl ExifReader for Exif {
    fn read(&self, prefix: &[u8]) -> ExifFacts {
        let e = matbakh_imaging::exif::read(prefix);
        ExifFacts {
            camera_make: e.camera_make,
            camera_model: e.camera_model,
            lens: e.lens,
            taken_at: e.taken_at,
            orientation: e.orientation,
            had_gps: e.has_gps,
            location: e
                .gps
                .filter(|_| self.store_gps_location)
                .map(|p| GeoPoint { latitude: p.latitude, longitude: p.longitude }),
        }
    }
}

/// Reads a settled object once (see [`matbakh_app::index`]) and counts it.
async fn index_content(ix: &Indexer, event: &ObjectEvent) -> Result<(), IndexError> {
    let Some(file_id) = file_id_of(&event.key) else { return Ok(()) };
    let key = ObjectKey::from_stored(event.key.clone());
    if let Some(indexed) = ix.indexing().index(file_id, &key, event.order().as_deref()).await? {
        metrics::emit("index", &[("FilesIndexed", 1, Unit::Count), ("BytesHashed", indexed.bytes, Unit::Bytes)]);
    }
    Ok(())
}

/// An object left its key (DECISIONS 13-15): see [`matbakh_app::removal`].
async fn removed(ix: &Indexer, event: &ObjectEvent) -> Result<(), IndexError> {
    let Some(file_id) = file_id_of(&event.key) else { return Ok(()) };
    let key = ObjectKey::from_stored(event.key.clone());
    let order = event.order();
    let removal = Removal {
        key: &key,
        version_id: event.version_id.as_deref(),
        permanent: event.change == ObjectChange::Removed,
        order: order.as_deref(),
    };
    let done = ix.removals().removed(file_id, removal).await?;
    if done.file_deleted {
        metrics::emit("remove", &[("FilesDeleted", 1, Unit::Count)]);
    }
    count_purged(&done);
    Ok(())
}

/// Removes the transformer's results made from a changed original (DECISIONS 18).
async fn purge_results(ix: &Indexer, key: &str) -> Result<(), IndexError> {
    count_purged(&ix.removals().changed(&ObjectKey::from_stored(key.to_owned())).await?);
    Ok(())
}

fn count_purged(done: &Removed) {
    if done.results > 0 {
        metrics::emit("index", &[("ResultsPurged", done.results as u64, Unit::Count)]);
    }
    if done.invalidations > 0 {
        metrics::emit("index", &[("EdgeInvalidations", done.invalidations as u64, Unit::Count)]);
    }
}

/// The file id in `users/{sub}/{fileId}/{name}`, if the key has that shape.
pub fn file_id_of(key: &str) -> Option<FileId> {
    ObjectKey::file_id_of(key)
}

/// Settles the object that arrived (see [`matbakh_app::settle`]) and counts what it did.
async fn settle(ix: &Indexer, event: &ObjectEvent) -> Result<(), IndexError> {
    let Some(file_id) = file_id_of(&event.key) else {
        tracing::info!(key_shape = "foreign", "object outside the user layout; nothing to settle");
        return Ok(());
    };
    let (settled, strays) = ix.services.settler().settle(file_id, &ObjectKey::from_stored(event.key.clone())).await?;
    if strays > 0 {
        metrics::emit("settle", &[("StrayVersionsRemoved", strays as u64, Unit::Count)]);
    }
    if matches!(settled, Settled::Accepted { .. } | Settled::Already) {
        classify(ix, file_id).await?;
    }
    match settled {
        Settled::Accepted { size } => {
            metrics::emit("settle", &[("UploadsSettled", 1, Unit::Count), ("StoredBytes", size, Unit::Bytes)]);
        }
        Settled::Refused { size, .. } => {
            metrics::emit("settle", &[("UploadsRefused", 1, Unit::Count), ("RefusedBytes", size, Unit::Bytes)]);
        }
        Settled::Already | Settled::Nothing => {}
    }
    Ok(())
}

/// Tags an accepted original with its type class for the archive tier's lifecycle rules
/// (again on a redelivery: a failure after settling is retried).
async fn classify(ix: &Indexer, file_id: FileId) -> Result<(), IndexError> {
    let files = ix.services.files();
    if let Some(d) = files.files.details(file_id).await.map_err(matbakh_app::Error::from)? {
        files.classify(&d.record).await?;
    }
    Ok(())
}

/// S3 moved an original to the archive class, made a restored copy, or let one lapse: see
/// [`matbakh_app::archival`].
async fn archive_tier(ix: &Indexer, event: &ObjectEvent) -> Result<(), IndexError> {
    let Some(file_id) = file_id_of(&event.key) else { return Ok(()) };
    let files = ix.services.files();
    let version = event.version_id.as_deref();
    let (changed, metric) = match event.change {
        ObjectChange::Transitioned => (files.transitioned(file_id, version).await?, "FilesArchived"),
        ObjectChange::RestoreCompleted => {
            (files.restore_completed(file_id, version, event.restored_until).await?, "FilesUnarchived")
        }
        _ => (files.restore_expired(file_id, version).await?, "RestoredCopiesLapsed"),
    };
    if changed {
        metrics::emit("archive", &[(metric, 1, Unit::Count)]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_user_layout_keys_have_file_ids() {
        let id = FileId::new(1_700_000_000_000, [1; 10]);
        assert_eq!(file_id_of(&format!("users/u/{id}/a b.jpg")), Some(id));
        assert_eq!(file_id_of(&format!("users/u/{id}/dir/a.jpg")), Some(id));
        for key in [
            format!("users/u/{id}/"),
            format!("derived/{id}/w320.webp"),
            "users/u/not-an-id/a.jpg".into(),
            "users".into(),
        ] {
            assert_eq!(file_id_of(&key), None, "{key}");
        }
    }
}
