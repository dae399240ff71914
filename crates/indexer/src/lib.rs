//! `indexer`: reacts to objects arriving in (and leaving) the bucket.
//!
//! Triggered by SQS (the indexer queue, fed by the bucket's SNS topic), with partial batch
//! responses: a record whose handling failed is reported and comes back later (after five
//! failures it goes to the DLQ); the others are done.
//!
//! This first slice settles uploads (DECISIONS 12): when an object under
//! `users/{sub}/{fileId}/` arrives, its row takes the real size and the owner's usage moves
//! from what was reserved or granted to the real bytes. An object larger than its grant, or
//! past the quota (uploads the client completed itself, or sized only by a policy range), is
//! deleted for good and its row QUARANTINED with the reason. Redelivered events change nothing.
//!
//! Reads: the object's HEAD. Writes: the file row, the usage counter, and (for refused
//! uploads) a permanent delete of that object version.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use matbakh_api::Services;
use matbakh_api::metrics::{self, Unit};
use matbakh_aws::AwsError;
use matbakh_aws::table::Settlement;
use matbakh_core::events::{ObjectChange, ObjectEvent, parse_sqs_body};
use matbakh_core::ids::{FileId, ObjectKey};

/// Why one record failed. Either way the record is reported, so it is delivered again and,
/// after five failures, lands in the DLQ with its alarm: nothing is logged and dropped.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The message is not an object event; it will never parse.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A dependency failed; a later delivery may succeed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl IndexError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, IndexError::Aws(e) if e.is_retryable())
    }
}

/// Handles one batch; the answer names the records to deliver again.
pub async fn handle(services: &Services, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("object_event", message_id = %id);
        let _entered = span.enter();
        let result = match parse_sqs_body(record.body.as_deref().unwrap_or_default()) {
            Ok(events) => handle_events(services, &events).await,
            Err(e) => Err(IndexError::Malformed(e.to_string())),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, retryable = e.is_retryable(), "object event failed; it will be delivered again");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

async fn handle_events(services: &Services, events: &[ObjectEvent]) -> Result<(), IndexError> {
    for event in events {
        if event.change == ObjectChange::Created {
            settle(services, event).await?;
        }
    }
    Ok(())
}

/// The file id in `users/{sub}/{fileId}/{name}`, if the key has that shape.
pub fn file_id_of(key: &str) -> Option<FileId> {
    ObjectKey::file_id_of(key)
}

async fn settle(services: &Services, event: &ObjectEvent) -> Result<(), AwsError> {
    let Some(file_id) = file_id_of(&event.key) else {
        tracing::info!(key_shape = "foreign", "object outside the user layout; nothing to settle");
        return Ok(());
    };
    // The object as it is now: a later event may already have replaced or removed it.
    let Some((actual, version)) = services.store.head_version(&event.key).await? else {
        tracing::info!(%file_id, "object already gone");
        return Ok(());
    };
    match services.table.settle_upload(file_id, &event.key, actual, services.limits.user_quota_bytes).await? {
        Settlement::Accepted => {
            tracing::info!(%file_id, actual, "upload settled");
            metrics::emit("settle", &[("UploadsSettled", 1, Unit::Count), ("StoredBytes", actual, Unit::Bytes)]);
        }
        Settlement::AlreadySettled | Settlement::Unknown => {}
        Settlement::Refused(reason) => {
            services.store.delete_version(&event.key, version.as_deref()).await?;
            services.table.reject_upload(file_id, reason).await?;
            // The thumbnailer may have made variants already; they go with the original.
            services.store.delete_prefix(&ObjectKey::derived_prefix(file_id)).await?;
            tracing::warn!(%file_id, actual, reason, "upload refused and removed");
            metrics::emit("settle", &[("UploadsRefused", 1, Unit::Count), ("RefusedBytes", actual, Unit::Bytes)]);
        }
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
