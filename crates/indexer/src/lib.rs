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
//! deleted for good and counted, never settled, indexed or served. Settling is the use case
//! [`matbakh_app::settle`]; indexing the content and removals still call the adapters.
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
//! with the image CDN (`IMAGES_DISTRIBUTION_ID`) invalidates them there first (one wildcard path
//! a file; the variants' too when they go and a CDN serves them): a failed invalidation fails
//! the record, and the results wait in the bucket for its redelivery.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use matbakh_api::Services;
use matbakh_api::metrics::{self, Unit};
use matbakh_app::settle::{Settled, Settler};
use matbakh_aws::AwsError;
use matbakh_aws::cdn::Cdn;
use matbakh_core::cdn;
use matbakh_core::events::{ObjectChange, ObjectEvent};
use matbakh_core::ids::{FileId, ObjectKey};
use matbakh_core::metadata::{ContentFacts, ExifFacts, FileStatus, GeoPoint};
use matbakh_core::names::search_tokens;
use matbakh_core::sniff::{Sniffed, sniff};
use matbakh_core::types::TypeClass;

/// Why one record failed: it is reported, so it is delivered again and, after five failures,
/// lands in the DLQ with its alarm (malformed messages too: `matbakh_api::sqs`).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A dependency failed; a later delivery may succeed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Settling failed (a port failed).
    #[error(transparent)]
    Settle(#[from] matbakh_app::Error),
}

impl IndexError {
    pub fn is_retryable(&self) -> bool {
        match self {
            IndexError::Aws(e) => e.is_retryable(),
            IndexError::Settle(e) => e.is_retryable(),
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
    /// Settling arrivals (`matbakh_app::settle`).
    pub settler: Settler,
    /// `STORE_GPS_LOCATION`: keep the EXIF GPS position on the row (else only `hadGps`).
    pub store_gps_location: bool,
    /// The image CDN (`IMAGES_DISTRIBUTION_ID`, [`Cdn::from_lookup`]): what a purge removes is
    /// invalidated there first. None (locally): nothing is cached.
    pub cdn: Option<Cdn>,
}

impl Indexer {
    /// `services` with the setting read from `lookup` (`true` or `false`; absent: the default).
    pub fn new(services: Services, lookup: impl Fn(&str) -> Option<String>) -> Result<Indexer, String> {
        let store_gps_location = match lookup("STORE_GPS_LOCATION").as_deref().map(str::trim) {
            None | Some("") => DEFAULT_STORE_GPS_LOCATION,
            Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(format!("STORE_GPS_LOCATION must be true or false, not {other:?}")),
        };
        Ok(Indexer { settler: services.settler(), services, store_gps_location, cdn: None })
    }
}

/// Handles one batch; the answer names the records to deliver again.
pub async fn handle(ix: &Indexer, event: SqsEvent) -> SqsBatchResponse {
    matbakh_lambda::sqs::for_each_record(event, |events| async move { handle_events(ix, &events).await }).await
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
        }
    }
    Ok(())
}

/// Bytes kept from the start of each object while hashing it, for sniffing and EXIF (a JPEG's
/// EXIF block is at most 64 KiB and comes first).
pub const PREFIX_BYTES: usize = 256 * 1024;

/// Reads a settled object once: SHA-256, the sniffed type, EXIF (images), search tokens of its
/// name, and whether its owner already has the same bytes. Done once per row.
async fn index_content(ix: &Indexer, event: &ObjectEvent) -> Result<(), AwsError> {
    let services = &ix.services;
    let Some(file_id) = file_id_of(&event.key) else { return Ok(()) };
    let Some(row) = services.table.get_file(file_id).await?.filter(|r| r.key.as_str() == event.key) else {
        return Ok(());
    };
    if row.sha256.is_some() || matches!(row.status, FileStatus::Quarantined | FileStatus::Deleted) {
        return Ok(());
    }
    let Some(read) = services.store.read_digest(&event.key, row.version_id.as_deref(), PREFIX_BYTES).await? else {
        return Ok(());
    };
    let exif = (row.content_type.class() == TypeClass::Image).then(|| {
        let e = matbakh_imaging::exif::read(&read.prefix);
        ExifFacts {
            camera_make: e.camera_make,
            camera_model: e.camera_model,
            lens: e.lens,
            taken_at: e.taken_at,
            orientation: e.orientation,
            had_gps: e.has_gps,
            location: e
                .gps
                .filter(|_| ix.store_gps_location)
                .map(|p| GeoPoint { latitude: p.latitude, longitude: p.longitude }),
        }
    });
    let facts = ContentFacts {
        sha256: read.sha256,
        etag: read.etag,
        sniffed_type: match sniff(&read.prefix) {
            Sniffed::Allowed(t) => Some(t.as_str().to_owned()),
            _ => None,
        },
        exif,
        tokens: search_tokens(row.filename.as_str()),
        duplicate_of: services.table.find_duplicate(&row.owner, &read.sha256, file_id).await?,
    };
    if services.table.record_content(file_id, &facts, event.order().as_deref()).await? {
        // The name's search words, in the owner's word index (GET /v1/files?q=).
        services.table.index_words(&row).await?;
        tracing::info!(%file_id, bytes = read.size, duplicate = facts.duplicate_of.is_some(), "content indexed");
        metrics::emit("index", &[("FilesIndexed", 1, Unit::Count), ("BytesHashed", read.size, Unit::Bytes)]);
    }
    Ok(())
}

/// An object left its key (DECISIONS 13-15). The current state decides: if the key still has
/// a current version (an older version was removed, or the delete marker is gone again), nothing
/// changed for the owner. Otherwise the row becomes DELETED and its bytes leave the quota; a
/// permanent delete also removes the variants. Rows QUARANTINED or DELETED by us are left as they
/// are (a system move is not a user delete).
async fn removed(ix: &Indexer, event: &ObjectEvent) -> Result<(), AwsError> {
    let services = &ix.services;
    let Some(file_id) = file_id_of(&event.key) else { return Ok(()) };
    let Some(row) = services.table.get_file(file_id).await?.filter(|r| r.key.as_str() == event.key) else {
        return Ok(());
    };
    let permanent = event.change == ObjectChange::Removed;
    // A version that was never the file (a replayed upload, removed by `accept`) going away
    // changes nothing: the accepted version is still there.
    if let Some(accepted) = row.version_id.as_deref()
        && event.version_id.as_deref().is_none_or(|v| v != accepted)
        && permanent
        && services.store.head_object(&event.key, Some(accepted)).await?.is_some()
    {
        tracing::info!(%file_id, "a version besides the accepted one went; nothing changed");
        return Ok(());
    }
    // Transform results are a cache: a deleted original must not stay visible through them.
    purge_results(ix, &event.key).await?;
    match row.status {
        FileStatus::Quarantined => {
            tracing::info!(%file_id, "removal of a quarantined file (a system move); nothing to do");
        }
        FileStatus::Deleted if permanent => {
            // The retention window ended (or the owner erased it): the bytes the soft delete
            // kept counted leave the usage, and the variants go too.
            if services.table.purge_deleted(file_id).await? {
                tracing::info!(%file_id, "deleted file purged; its bytes left the usage");
            }
            purge_variants(ix, file_id).await?;
        }
        FileStatus::Deleted => {}
        _ => {
            if services.store.head_version(&event.key).await?.is_some() {
                tracing::info!(%file_id, "the key still has a current version; nothing changed");
                return Ok(());
            }
            let order = event.order();
            let marked = if permanent {
                services.table.mark_removed(file_id, order.as_deref()).await?
            } else {
                services.table.mark_deleted(file_id, order.as_deref()).await?
            };
            if marked {
                tracing::info!(%file_id, permanent, "file deleted");
                metrics::emit("remove", &[("FilesDeleted", 1, Unit::Count)]);
            }
            if permanent {
                purge_variants(ix, file_id).await?;
            }
        }
    }
    Ok(())
}

/// Removes the transformer's results made from `key` (`results/{key}/`): after an overwrite
/// the CDN's S3-first origin would otherwise serve them for the new bytes (DECISIONS 18). A new
/// upload has none; the listing finds nothing and costs one request. The image CDN's copies
/// are invalidated (security review 16.4).
async fn purge_results(ix: &Indexer, key: &str) -> Result<(), AwsError> {
    let edge = ObjectKey::file_id_of(key).zip(cdn::file_results(key));
    let removed = purge(ix, &matbakh_core::imgproxy::result_prefix(key), edge).await?;
    if removed > 0 {
        tracing::info!(removed, "transform results of a changed original removed");
        metrics::emit("index", &[("ResultsPurged", removed as u64, Unit::Count)]);
    }
    Ok(())
}

/// Removes the variants of `file` for good; where a CDN serves them (`CDN_BASE_URL`, on the
/// image CDN's distribution), its copies are invalidated.
async fn purge_variants(ix: &Indexer, file: FileId) -> Result<(), AwsError> {
    let edge = ix.services.cdn_base_url.as_deref().map(|base| (file, cdn::file_variants(base, file)));
    purge(ix, &ObjectKey::derived_prefix(file), edge).await.map(|_| ())
}

/// Deletes every object version under `prefix` for good and answers how many. When the CDN may
/// hold copies (`edge`: the file and their path) and there is anything to delete, the path is
/// invalidated first: if that fails, the objects stay, so the redelivered event finds them and
/// invalidates again (deleted first, a retry would find nothing to go by).
async fn purge(ix: &Indexer, prefix: &str, edge: Option<(FileId, String)>) -> Result<usize, AwsError> {
    let store = &ix.services.store;
    if let (Some(cdn), Some((file_id, path))) = (&ix.cdn, edge)
        && store.holds_any(prefix).await?
    {
        let reference = format!("{file_id}-{}", ix.services.clock.now().unix_timestamp_nanos());
        let invalidation = cdn.invalidate(&[path], &reference).await?;
        tracing::info!(%file_id, invalidation, "cached copies invalidated at the CDN");
        metrics::emit("index", &[("EdgeInvalidations", 1, Unit::Count)]);
    }
    store.delete_prefix(prefix).await
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
    let (settled, strays) = ix.settler.settle(file_id, &ObjectKey::from_stored(event.key.clone())).await?;
    if strays > 0 {
        metrics::emit("settle", &[("StrayVersionsRemoved", strays as u64, Unit::Count)]);
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
