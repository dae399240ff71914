//! The metadata table's file rows (one table, overloaded keys; `schema` names its items): the
//! row's codec and its life cycle, from the reservation of an upload through settling,
//! refusal, quarantine, READY/FAILED, soft delete and purge, to the sweeper's release.
//! Beside it: the DynamoDB toolkit (`dynamo`), the owner's account (`usage`), upload tokens
//! (`tokens`), sessions, shares, audit, exports.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::labels::{CustomMetadata, Labels, Tag, Visibility};
use matbakh_core::listing::Cursor;
use matbakh_core::metadata::{ContentFacts, FileRecord, FileStatus, PendingRow, Ready, VariantInfo};
use matbakh_core::multipart::{UploadId, UploadSession};
use matbakh_core::names::DisplayName;
use matbakh_core::quota::{exceeds_grant, reservation_ceiling};
use matbakh_core::types::ContentType;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dynamo::{cancelled_by_condition, conditional, get_str, get_u64, n, opt_str, s};
use crate::error::AwsError;
use crate::schema::{self, FileRowUpdate, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, PK, SK};
use crate::usage::Charge;

pub use matbakh_core::metadata::{Pinned, Settlement};

/// What retiring a row does with the bytes it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// They leave the owner's usage now (quarantine, a delete for good).
    Release,
    /// They stay counted until the versions are purged (a soft delete).
    UntilPurged,
}

pub use crate::schema::{GSI_CONTENT_HASH, GSI_STATUS, GSI_USER};

/// The DynamoDB key of file `id`'s row, for tests that read or remove the raw item (every
/// key name stays in `schema.rs`).
pub fn file_key(id: FileId) -> HashMap<String, AttributeValue> {
    schema::file(id)
}

/// The DynamoDB key of export `id`'s job, likewise for tests.
pub fn export_key(id: &str) -> HashMap<String, AttributeValue> {
    schema::export(id)
}

/// The DynamoDB key of the item naming `user`'s newest export, likewise for tests.
pub fn newest_export_key(user: &UserId) -> HashMap<String, AttributeValue> {
    schema::newest_export(user)
}

/// The DynamoDB key of `user`'s usage counters, likewise for tests.
pub fn usage_key(user: &UserId) -> HashMap<String, AttributeValue> {
    schema::usage(user)
}

pub use crate::migrated::LegacyMapping;

#[derive(Clone, Debug)]
pub struct FileTable {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

pub(crate) use crate::schema::{file_pk, user_pk};

impl FileTable {
    pub fn new(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        FileTable { client: crate::dynamo::client(sdk), table: table.into() }
    }

    /// Reserves `record.size` bytes of the owner's quota and writes the PENDING row, in one
    /// transaction: either both happen or neither.
    pub async fn reserve_upload(&self, record: &FileRecord, quota: u64) -> Result<(), AwsError> {
        self.reserve(record, quota).await
    }

    /// Like [`Self::reserve_upload`], and writes the multipart session in the same transaction,
    /// taking one of the owner's `cap` open-upload places.
    pub async fn reserve_multipart(
        &self,
        record: &FileRecord,
        session: &UploadSession,
        quota: u64,
        cap: u64,
    ) -> Result<(), AwsError> {
        let charge = Charge { size: record.size, quota, reserve: true };
        let usage = self.usage_update(&record.owner, Some(charge), Some(cap))?;
        let mut item = accounted_file_item(record, record.size, record.size);
        // So the sweeper can abort the S3 upload with nothing but the row.
        item.insert("uploadId".to_owned(), s(session.upload_id.as_str()));
        let items = vec![
            TransactWriteItem::builder().update(usage).build(),
            TransactWriteItem::builder().put(self.put_new_item(item)?).build(),
            TransactWriteItem::builder().put(self.put_new_item(crate::sessions::session_item(session))?).build(),
        ];
        self.open(&record.owner, cap, items).await
    }

    async fn reserve(&self, record: &FileRecord, quota: u64) -> Result<(), AwsError> {
        let usage = self.charge_usage(&record.owner, record.size, quota, true)?;
        let row = self.put_new_item(accounted_file_item(record, record.size, record.size))?;
        let items =
            vec![TransactWriteItem::builder().update(usage).build(), TransactWriteItem::builder().put(row).build()];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let failed = cancelled_by_condition(&err);
                if failed.first() == Some(&true) {
                    Err(self.usage_refused(&record.owner, None).await)
                } else if failed.iter().skip(1).any(|f| *f) {
                    Err(AwsError::AlreadyExists)
                } else {
                    Err(AwsError::from_sdk("TransactWriteItems", err))
                }
            }
        }
    }

    /// Writes a PENDING file row without reserving quota: for uploads whose size is not known
    /// when they are granted (an upload token's single POST); the object-created event settles
    /// them.
    pub async fn put_unreserved_file(&self, record: &FileRecord) -> Result<(), AwsError> {
        // Nothing reserved, but an account an erase closed takes no upload all the same (review
        // 25: its file would be deleted by the erase's second pass without a word).
        let open = self.account_not_closed(&record.owner)?;
        let row = self.put_new_item(accounted_file_item(record, 0, 0))?;
        let items = vec![
            TransactWriteItem::builder().condition_check(open).build(),
            TransactWriteItem::builder().put(row).build(),
        ];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => Ok(()),
            Err(err) => match cancelled_by_condition(&err).as_slice() {
                [true, ..] => Err(AwsError::AccountErased),
                [_, true, ..] => Err(AwsError::AlreadyExists),
                _ => Err(AwsError::from_sdk("TransactWriteItems", err)),
            },
        }
    }

    /// Pins `version` as the accepted object of the file at `key` unless another version was
    /// pinned before (DECISIONS 28): a presigned POST or PUT can be replayed until it expires,
    /// so the first version the platform settles or processes is the file, for good, and every
    /// later one is a stray. The indexer and the thumbnailer both pin before they read, so they
    /// agree whichever runs first.
    pub async fn pin_version(&self, file_id: FileId, key: &str, version: &str) -> Result<Pinned, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::file(file_id)))
            .file_row_update("SET versionId = :v")
            .condition_expression("#key = :key AND (attribute_not_exists(versionId) OR versionId = :v)")
            .expression_attribute_names("#key", "key")
            .expression_attribute_values(":key", s(key))
            .expression_attribute_values(":v", s(version))
            .send()
            .await;
        if conditional(out, "UpdateItem")? {
            return Ok(Pinned::This);
        }
        let item = self.get_item(schema::file(file_id)).await?;
        Ok(match item.as_ref().filter(|i| opt_str(i, "key") == Some(key)).and_then(|i| opt_str(i, "versionId")) {
            Some(v) if v == version => Pinned::This,
            Some(v) => Pinned::Other(v.to_owned()),
            None => Pinned::Unknown,
        })
    }

    /// Settles an upload that arrived with `actual` bytes (DECISIONS 12): the row takes the real
    /// size and the owner's usage moves from what the row counted to `actual`, its reservation
    /// released, in one transaction. Refused (nothing written) when the object is larger than
    /// the row granted or the quota has no room for it; the caller then removes the object and
    /// calls [`Self::reject_upload`]. Idempotent: a second event finds the row settled.
    pub async fn settle_upload(
        &self,
        file_id: FileId,
        key: &str,
        actual: u64,
        quota: u64,
    ) -> Result<Settlement, AwsError> {
        let Some(item) = self.get_item(schema::file(file_id)).await? else {
            return Ok(Settlement::Unknown);
        };
        if get_str(&item, "key")? != key {
            return Ok(Settlement::Unknown);
        }
        if item.contains_key("settled") {
            return Ok(Settlement::AlreadySettled);
        }
        let granted = get_u64(&item, "size").ok_or_else(|| AwsError::Corrupt("size".into()))?;
        if let Some(why) = exceeds_grant(granted, actual) {
            return Ok(Settlement::Refused(why));
        }
        let (charged, reserved) = (get_u64(&item, "charged").unwrap_or(0), get_u64(&item, "reserved").unwrap_or(0));
        let owner = UserId::parse(get_str(&item, "owner")?).map_err(|_| AwsError::Corrupt("owner".into()))?;
        // Legacy files a migration brings are counted, never refused: the quota governs new uploads.
        let migrated = item.contains_key("migrationRun");
        let mut usage = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::usage(&owner)))
            .update_expression("ADD charged :delta, #reserved :release")
            .expression_attribute_names("#reserved", "reserved")
            .expression_attribute_values(
                ":delta",
                AttributeValue::N((i128::from(actual) - i128::from(charged)).to_string()),
            )
            .expression_attribute_values(":release", AttributeValue::N(format!("-{reserved}")));
        if actual > charged && !migrated {
            let ceiling = reservation_ceiling(quota, actual - charged).map_err(|_| AwsError::QuotaExceeded)?;
            usage = usage
                .condition_expression("attribute_not_exists(charged) OR charged <= :ceiling")
                .expression_attribute_values(":ceiling", n(ceiling));
        }
        let row = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::file(file_id)))
            .file_row_update(
                "SET #size = :actual, sizeKey = :sizekey, charged = :actual, #reserved = :zero, settled = :t REMOVE pendingUntil",
            )
            .expression_attribute_values(":sizekey", s(crate::files::size_key(actual, file_id)))
            .expression_attribute_names("#size", "size")
            .expression_attribute_names("#reserved", "reserved")
            // The row is there still: the sweeper or an erase may have removed it since it was
            // read, and an update would write a stray row of these attributes alone (a review).
            .condition_expression(format!("{} AND attribute_not_exists(settled)", schema::ITEM_EXISTS))
            .expression_attribute_values(":actual", n(actual))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .build()?;
        let usage = usage.build()?;
        let items =
            vec![TransactWriteItem::builder().update(usage).build(), TransactWriteItem::builder().update(row).build()];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => {
                if let Some(digest) = opt_str(&item, "tokenDigest") {
                    self.release_token(digest, granted - actual).await?;
                }
                self.end_row_session(&item, "COMPLETED").await?;
                Ok(Settlement::Accepted)
            }
            Err(err) => match cancelled_by_condition(&err).as_slice() {
                [_, true] if self.get_item(schema::file(file_id)).await?.is_none() => Ok(Settlement::Unknown),
                [_, true] => Ok(Settlement::AlreadySettled),
                [true, _] => Ok(Settlement::Refused("over the owner's storage quota")),
                _ => Err(AwsError::from_sdk("TransactWriteItems", err)),
            },
        }
    }

    /// Marks a refused upload QUARANTINED with its reason and gives back everything its row
    /// counted in the owner's usage. Idempotent.
    pub async fn reject_upload(&self, file_id: FileId, reason: &str) -> Result<(), AwsError> {
        self.quarantine(file_id, reason).await.map(|_| ())
    }

    /// Marks a file QUARANTINED with `reason` and gives back whatever its row counts in the
    /// owner's usage (stored or reserved). Answers `false` if the row is missing or already
    /// QUARANTINED or DELETED (DECISIONS 13: a system move is not a user delete).
    pub async fn quarantine(&self, file_id: FileId, reason: &str) -> Result<bool, AwsError> {
        self.retire(file_id, FileStatus::Quarantined, Some(reason), None, Hold::Release).await
    }

    /// A soft delete (a delete marker, DECISIONS 14): the row becomes DELETED; its stored bytes
    /// stay counted in the owner's usage (as `deleted`) while its versions are kept, until
    /// [`Self::purge_deleted`] or a [`Self::restore`]. Ignored (`false`) for a row already
    /// QUARANTINED or DELETED, and for an event older than the row's last one (`order`, see
    /// `ObjectEvent::order`).
    pub async fn mark_deleted(&self, file_id: FileId, order: Option<&str>) -> Result<bool, AwsError> {
        self.retire(file_id, FileStatus::Deleted, None, order, Hold::UntilPurged).await
    }

    /// A delete for good of a file that was not soft-deleted first: the row becomes DELETED and
    /// its bytes leave the owner's usage at once. Same conditions as [`Self::mark_deleted`].
    pub async fn mark_removed(&self, file_id: FileId, order: Option<&str>) -> Result<bool, AwsError> {
        self.retire(file_id, FileStatus::Deleted, None, order, Hold::Release).await
    }

    /// The versions of a soft-deleted file are gone for good (the restore window ended, or the
    /// owner's erase): the bytes its row still holds leave the owner's usage. Idempotent;
    /// `false` if the row is not DELETED or holds nothing.
    pub async fn purge_deleted(&self, file_id: FileId) -> Result<bool, AwsError> {
        let Some(item) = self.get_item(schema::file(file_id)).await? else { return Ok(false) };
        let held = get_u64(&item, "charged").unwrap_or(0);
        if get_str(&item, "status")? != FileStatus::Deleted.as_str() || held == 0 {
            return Ok(false);
        }
        let owner = UserId::parse(get_str(&item, "owner")?).map_err(|_| AwsError::Corrupt("owner".into()))?;
        let usage = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::usage(&owner)))
            .update_expression("ADD charged :c, deleted :c")
            .expression_attribute_values(":c", AttributeValue::N(format!("-{held}")))
            .build()?;
        let row = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::file(file_id)))
            .file_row_update("SET charged = :zero")
            .condition_expression("#status = :deleted AND charged = :held")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":deleted", s(FileStatus::Deleted.as_str()))
            .expression_attribute_values(":held", n(held))
            .build()?;
        let items =
            vec![TransactWriteItem::builder().update(usage).build(), TransactWriteItem::builder().update(row).build()];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => Ok(true),
            Err(err) if cancelled_by_condition(&err).get(1) == Some(&true) => Ok(false),
            Err(err) => Err(AwsError::from_sdk("TransactWriteItems", err)),
        }
    }

    /// Moves a row to `to` (QUARANTINED or DELETED), releasing what it counts, in one
    /// transaction guarded by what was read, so a concurrent settlement cannot be counted twice.
    async fn retire(
        &self,
        file_id: FileId,
        to: FileStatus,
        reason: Option<&str>,
        order: Option<&str>,
        hold: Hold,
    ) -> Result<bool, AwsError> {
        for _ in 0..3 {
            let Some(item) = self.get_item(schema::file(file_id)).await? else {
                return Ok(false);
            };
            let status = get_str(&item, "status")?.to_owned();
            if status == FileStatus::Quarantined.as_str() || status == FileStatus::Deleted.as_str() {
                return Ok(false);
            }
            let seen_order = item.get("eventOrder").and_then(|v| v.as_s().ok());
            if let (Some(seen), Some(new)) = (seen_order, order)
                && seen.as_str() > new
            {
                return Ok(false);
            }
            let (charged, reserved) = (get_u64(&item, "charged").unwrap_or(0), get_u64(&item, "reserved").unwrap_or(0));
            let owner = UserId::parse(get_str(&item, "owner")?).map_err(|_| AwsError::Corrupt("owner".into()))?;
            // A soft delete keeps the stored bytes counted (as `deleted`); a reservation goes.
            let (usage, kept) = match hold {
                Hold::Release => (self.release_usage(&owner, charged, reserved, false)?, 0),
                Hold::UntilPurged => {
                    let stored = charged.saturating_sub(reserved);
                    let usage = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(schema::usage(&owner)))
                        .update_expression("ADD charged :r, #reserved :r, deleted :stored")
                        .expression_attribute_names("#reserved", "reserved")
                        .expression_attribute_values(":r", AttributeValue::N(format!("-{reserved}")))
                        .expression_attribute_values(":stored", n(stored))
                        .build()?;
                    (usage, stored)
                }
            };
            let mut sets =
                vec!["#status = :to", schema::SET_GSI2_PK, "charged = :kept", "#reserved = :zero", "settled = :t"];
            let mut row = Update::builder()
                .table_name(&self.table)
                .set_key(Some(schema::file(file_id)))
                .condition_expression("#status = :seen AND charged = :charged AND #reserved = :reserved")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#reserved", "reserved")
                .expression_attribute_values(":to", s(to.as_str()))
                .expression_attribute_values(":g", s(format!("STATUS#{to}")))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":kept", n(kept))
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":seen", s(status))
                .expression_attribute_values(":charged", n(charged))
                .expression_attribute_values(":reserved", n(reserved));
            if let Some(reason) = reason {
                sets.push("#reason = :why");
                row =
                    row.expression_attribute_names("#reason", "reason").expression_attribute_values(":why", s(reason));
            }
            if let Some(order) = order {
                sets.push("eventOrder = :order");
                row = row.expression_attribute_values(":order", s(order));
            }
            if to == FileStatus::Deleted {
                // What a restore brings back (`FileDetails::restored_status`): a failed file
                // stays failed. An owner's delete has noted it already.
                sets.push("deletedFrom = if_not_exists(deletedFrom, :seen)");
            }
            let row = row.file_row_update(format!("SET {} REMOVE pendingUntil", sets.join(", "))).build()?;
            let items = vec![
                TransactWriteItem::builder().update(usage).build(),
                TransactWriteItem::builder().update(row).build(),
            ];
            match crate::dynamo::transact(&self.client, items).await {
                Ok(_) => {
                    // An upload token's reservation goes back to the token too (security review
                    // 21: a refused upload's stayed spent); a settled row's bytes were used.
                    if let Some(digest) = opt_str(&item, "tokenDigest").filter(|_| reserved > 0) {
                        self.release_token(digest, reserved).await?;
                    }
                    self.end_row_session(&item, "ABORTED").await?;
                    return Ok(true);
                }
                // Settled or processed meanwhile: read again and retry with what is there now.
                Err(err) if cancelled_by_condition(&err).get(1) == Some(&true) => continue,
                Err(err) => return Err(AwsError::from_sdk("TransactWriteItems", err)),
            }
        }
        Err(AwsError::Service {
            operation: "TransactWriteItems",
            message: "the row kept changing while being retired".into(),
            retryable: true,
        })
    }

    /// Records what reading the object taught (checksum, EXIF, tokens, duplicate), unless the
    /// row has seen a newer event. Answers `false` if nothing was written (no row, or older).
    pub async fn record_content(
        &self,
        file_id: FileId,
        facts: &ContentFacts,
        order: Option<&str>,
    ) -> Result<bool, AwsError> {
        let mut values: Vec<(&str, &str, AttributeValue)> = vec![
            ("sha256 = :sha", ":sha", s(facts.sha256.to_hex())),
            // `indexed` is one of DynamoDB's reserved words: named through `#indexed`.
            ("#indexed = :indexed", ":indexed", AttributeValue::Bool(true)),
        ];
        if let Some(etag) = &facts.etag {
            values.push(("etag = :etag", ":etag", s(etag)));
        }
        if let Some(t) = &facts.sniffed_type {
            values.push(("sniffedType = :sniffed", ":sniffed", s(t)));
        }
        if !facts.tokens.is_empty() {
            values.push(("tokens = :tokens", ":tokens", AttributeValue::Ss(facts.tokens.clone())));
        }
        if let Some(dup) = facts.duplicate_of {
            values.push(("duplicateOf = :dup", ":dup", s(dup.to_string())));
        }
        if let Some(e) = &facts.exif {
            let mut m = HashMap::from([
                ("orientation".to_owned(), n(e.orientation)),
                ("hadGps".to_owned(), AttributeValue::Bool(e.had_gps)),
            ]);
            if let Some(at) = e.location {
                // Six decimals: about 0.1 m, more than any phone measures.
                let point = HashMap::from([
                    ("lat".to_owned(), AttributeValue::N(format!("{:.6}", at.latitude))),
                    ("lon".to_owned(), AttributeValue::N(format!("{:.6}", at.longitude))),
                ]);
                m.insert("location".to_owned(), AttributeValue::M(point));
            }
            for (name, value) in [
                ("cameraMake", &e.camera_make),
                ("cameraModel", &e.camera_model),
                ("lens", &e.lens),
                ("takenAt", &e.taken_at),
            ] {
                if let Some(v) = value {
                    m.insert(name.to_owned(), s(v));
                }
            }
            values.push(("exif = :exif", ":exif", AttributeValue::M(m)));
        }
        let mut sets: Vec<&str> = values.iter().map(|(set, _, _)| *set).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::file(file_id)))
            .expression_attribute_names("#indexed", "indexed");
        for (_, placeholder, value) in values {
            update = update.expression_attribute_values(placeholder, value);
        }
        let mut condition = schema::ITEM_EXISTS.to_owned();
        if let Some(order) = order {
            sets.push("eventOrder = :order");
            update = update.expression_attribute_values(":order", s(order));
            condition.push_str(" AND (attribute_not_exists(eventOrder) OR eventOrder <= :order)");
        }
        let out =
            update.file_row_update(format!("SET {}", sets.join(", "))).condition_expression(condition).send().await;
        conditional(out, "UpdateItem")
    }

    /// The oldest other live file of `owner` with the same bytes, if any: the content index
    /// holds them under the bytes' hash and the owner, so only `owner`'s copies are read.
    pub async fn find_duplicate(
        &self,
        owner: &UserId,
        sha: &Sha256,
        besides: FileId,
    ) -> Result<Option<FileId>, AwsError> {
        let mut best: Option<(String, FileId)> = None;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI_CONTENT_HASH)
                .key_condition_expression("sha256 = :sha AND #owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":sha", s(sha.to_hex()))
                .expression_attribute_values(":owner", s(owner.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Query", e))?;
            for item in out.items() {
                let live = !matches!(
                    item.get("status").and_then(|v| v.as_s().ok()).map(String::as_str),
                    Some("DELETED" | "QUARANTINED")
                );
                let id = item.get("fileId").and_then(|v| v.as_s().ok()).and_then(|v| FileId::parse(v).ok());
                let created = item.get("createdAt").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                if let (true, Some(id)) = (live, id)
                    && id != besides
                    && best.as_ref().is_none_or(|(c, _)| created < *c)
                {
                    best = Some((created, id));
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(best.map(|(_, id)| id)),
            }
        }
    }

    /// PENDING → READY, with what the thumbnailer made (none for files without variants) and
    /// an optional note. Answers `false` if the row is not PENDING (done before, or refused).
    pub async fn mark_ready(&self, file_id: FileId, ready: &Ready<'_>) -> Result<bool, AwsError> {
        let Ready { image, note, virus_scan } = *ready;
        let mut sets = vec!["#status = :status", schema::SET_GSI2_PK];
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::file(file_id)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(FileStatus::Ready.as_str()))
            .expression_attribute_values(":g", s(format!("STATUS#{}", FileStatus::Ready)))
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()));
        if let Some(img) = image {
            sets.extend(["#width = :w", "#height = :h", "frames = :f", "placeholder = :p", "variants = :v"]);
            update = update
                .expression_attribute_names("#width", "width")
                .expression_attribute_names("#height", "height")
                .expression_attribute_values(":w", n(img.width))
                .expression_attribute_values(":h", n(img.height))
                .expression_attribute_values(":f", n(img.frames))
                .expression_attribute_values(":p", s(&img.placeholder))
                .expression_attribute_values(":v", AttributeValue::L(img.variants.iter().map(variant_item).collect()));
        }
        if let Some(note) = note {
            sets.push("#reason = :why");
            update =
                update.expression_attribute_names("#reason", "reason").expression_attribute_values(":why", s(note));
        }
        if let Some(scan) = virus_scan {
            sets.push("virusScan = :scan");
            update = update.expression_attribute_values(":scan", s(scan));
        }
        let out = update
            .file_row_update(format!("SET {}", sets.join(", ")))
            .condition_expression("#status = :pending")
            .send()
            .await;
        conditional(out, "UpdateItem")
    }

    /// PENDING → FAILED with the reason (the file stays, without variants). Answers `false` if
    /// the row is not PENDING.
    pub async fn mark_failed(&self, file_id: FileId, reason: &str) -> Result<bool, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::file(file_id)))
            .file_row_update(format!("SET #status = :failed, {} = :g, #reason = :why", schema::GSI2_PK))
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_values(":failed", s(FileStatus::Failed.as_str()))
            .expression_attribute_values(":g", s(format!("STATUS#{}", FileStatus::Failed)))
            .expression_attribute_values(":why", s(reason))
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()))
            .send()
            .await;
        conditional(out, "UpdateItem")
    }

    /// A settled PENDING row → FAILED and `unprocessed`, with the reason (processing was given
    /// up). Answers `false` if the row is not PENDING or not settled (a migrated row has no
    /// `pendingUntil` before it settles: `settled` is what says so).
    pub async fn give_up(&self, file_id: FileId, reason: &str) -> Result<bool, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::file(file_id)))
            .file_row_update(format!(
                "SET #status = :failed, {} = :g, #reason = :why, #unprocessed = :yes",
                schema::GSI2_PK
            ))
            .condition_expression("#status = :pending AND attribute_exists(settled)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#reason", "reason")
            // Both are among DynamoDB's reserved words.
            .expression_attribute_names("#unprocessed", "unprocessed")
            .expression_attribute_values(":failed", s(FileStatus::Failed.as_str()))
            .expression_attribute_values(":g", s(format!("STATUS#{}", FileStatus::Failed)))
            .expression_attribute_values(":why", s(reason))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()))
            .send()
            .await;
        conditional(out, "UpdateItem")
    }

    /// An `unprocessed` FAILED row → PENDING (settled, as it was), its reason gone. Answers
    /// `false` if the row is not one.
    pub async fn reopen(&self, file_id: FileId) -> Result<bool, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::file(file_id)))
            .file_row_update(format!("SET #status = :pending, {} = :g REMOVE #reason, #unprocessed", schema::GSI2_PK))
            .condition_expression("#status = :failed AND #unprocessed = :yes")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_names("#unprocessed", "unprocessed")
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()))
            .expression_attribute_values(":g", s(format!("STATUS#{}", FileStatus::Pending)))
            .expression_attribute_values(":failed", s(FileStatus::Failed.as_str()))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        conditional(out, "UpdateItem")
    }

    /// Unsettled PENDING rows whose grant ended before `cutoff`, oldest first, at most `limit`:
    /// uploads that never arrived, or whose event has not been processed. Starts after `after`
    /// (the last row of an earlier page, in the status index); answers with the cursor of the
    /// last row given when the page is full.
    pub async fn expired_pending(
        &self,
        cutoff: OffsetDateTime,
        limit: usize,
        after: Option<&Cursor>,
    ) -> Result<(Vec<PendingRow>, Option<Cursor>), AwsError> {
        let pending = format!("STATUS#{}", FileStatus::Pending);
        let mut rows = Vec::new();
        let mut start = after.map(|c| {
            HashMap::from([
                (PK.to_owned(), s(&c.pk)),
                (SK.to_owned(), s(&c.sk)),
                (GSI2_PK.to_owned(), s(&pending)),
                (GSI2_SK.to_owned(), s(&c.index_sk)),
            ])
        });
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI_STATUS)
                .key_condition_expression(format!("{} = :pending", schema::GSI2_PK))
                .filter_expression("attribute_not_exists(settled) AND pendingUntil < :cutoff")
                .expression_attribute_values(":pending", s(&pending))
                .expression_attribute_values(":cutoff", n(cutoff.unix_timestamp()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Query", e))?;
            for item in out.items() {
                rows.push(parse_pending_row(item)?);
                if rows.len() == limit {
                    let cursor = Cursor {
                        kind: "pending".to_owned(),
                        pk: get_str(item, PK)?.to_owned(),
                        sk: get_str(item, SK)?.to_owned(),
                        index_sk: get_str(item, GSI2_SK)?.to_owned(),
                    };
                    return Ok((rows, Some(cursor)));
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok((rows, None)),
            }
        }
    }

    /// Gives an expired, unfulfilled grant back: its bytes leave the owner's usage and the row
    /// goes, in one transaction, only if the row is still unsettled (an event that arrived
    /// meanwhile wins). Then marks its multipart session aborted, if it had one and it is still
    /// open. Answers whether this call released it.
    pub async fn release_pending(&self, row: &PendingRow) -> Result<bool, AwsError> {
        let usage = self.release_usage(&row.owner, row.charged, row.reserved, false)?;
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(schema::file(row.file_id)))
            .condition_expression(format!("{} AND attribute_not_exists(settled)", schema::ITEM_EXISTS))
            .build()?;
        let items = vec![
            TransactWriteItem::builder().update(usage).build(),
            TransactWriteItem::builder().delete(delete).build(),
        ];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => {}
            Err(err) if cancelled_by_condition(&err).get(1) == Some(&true) => return Ok(false),
            Err(err) => return Err(AwsError::from_sdk("TransactWriteItems", err)),
        }
        if let Some(id) = &row.upload_id {
            self.close_session(id, &row.owner, "ABORTED", None).await?;
        }
        if let Some(digest) = &row.token_digest {
            self.release_token(digest, row.reserved).await?;
        }
        Ok(true)
    }

    /// Ends the multipart session that wrote an unsettled row (its `uploadId`), if it is still
    /// open: the client completed it (signRequest mode) or the row was refused. A settled row's
    /// session ended when it settled.
    async fn end_row_session(&self, row: &HashMap<String, AttributeValue>, state: &str) -> Result<(), AwsError> {
        if let (Some(id), false) = (opt_str(row, "uploadId"), row.contains_key("settled")) {
            let id = UploadId::parse(id).map_err(|_| AwsError::Corrupt("uploadId".into()))?;
            let owner = UserId::parse(get_str(row, "owner")?).map_err(|_| AwsError::Corrupt("owner".into()))?;
            self.close_session(&id, &owner, state, None).await?;
        }
        Ok(())
    }

    /// The file row, if there is one.
    pub async fn get_file(&self, id: FileId) -> Result<Option<FileRecord>, AwsError> {
        self.get_item(schema::file(id)).await?.as_ref().map(parse_file_item).transpose()
    }
}

fn variant_item(v: &VariantInfo) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("width".to_owned(), n(v.width)),
        ("height".to_owned(), n(v.height)),
        ("contentType".to_owned(), s(&v.content_type)),
        ("key".to_owned(), s(v.key.as_str())),
    ]))
}

pub(crate) fn parse_pending_row(item: &HashMap<String, AttributeValue>) -> Result<PendingRow, AwsError> {
    let corrupt = |what: &str| AwsError::Corrupt(format!("pending row {what}"));
    Ok(PendingRow {
        file_id: FileId::parse(get_str(item, "fileId")?).map_err(|_| corrupt("fileId"))?,
        owner: UserId::parse(get_str(item, "owner")?).map_err(|_| corrupt("owner"))?,
        key: ObjectKey::from_stored(get_str(item, "key")?.to_owned()),
        upload_id: match item.get("uploadId").and_then(|v| v.as_s().ok()) {
            Some(id) => Some(UploadId::parse(id).map_err(|_| corrupt("uploadId"))?),
            None => None,
        },
        charged: get_u64(item, "charged").unwrap_or(0),
        reserved: get_u64(item, "reserved").unwrap_or(0),
        token_digest: opt_str(item, "tokenDigest").map(str::to_owned),
    })
}

/// A file row with how many of its bytes the owner's usage counts now (`charged`) and how many
/// of those are only reserved (`reserved`): what settling or rejecting it must move.
pub(crate) fn accounted_file_item(r: &FileRecord, charged: u64, reserved: u64) -> HashMap<String, AttributeValue> {
    let mut item = file_item(r);
    item.insert(schema::REVISION.to_owned(), schema::first_revision());
    item.insert(schema::EDITS.to_owned(), n(0));
    item.insert("charged".to_owned(), n(charged));
    item.insert("reserved".to_owned(), n(reserved));
    item
}

fn file_item(r: &FileRecord) -> HashMap<String, AttributeValue> {
    let created = iso_millis(r.created_at);
    let sort = format!("{created}#{}", r.file_id);
    let mut item = schema::item(
        schema::file(r.file_id),
        [
            ("fileId".to_owned(), s(r.file_id.to_string())),
            ("owner".to_owned(), s(r.owner.as_str())),
            ("key".to_owned(), s(r.key.as_str())),
            ("filename".to_owned(), s(r.filename.as_str())),
            ("contentType".to_owned(), s(r.content_type.as_str())),
            ("size".to_owned(), n(r.size)),
            ("status".to_owned(), s(r.status.as_str())),
            ("createdAt".to_owned(), s(created)),
            (GSI1_PK.to_owned(), s(user_pk(&r.owner))),
            (GSI1_SK.to_owned(), s(sort.clone())),
            (GSI2_PK.to_owned(), s(format!("STATUS#{}", r.status))),
            (GSI2_SK.to_owned(), s(sort)),
        ],
    );
    item.extend(crate::files::sort_keys(r));
    if let Some(sha) = r.sha256 {
        item.insert("sha256".to_owned(), s(sha.to_hex()));
    }
    if let Some(exp) = r.expires_at {
        // Not a DynamoDB TTL: a row that expired unfulfilled still counts in its owner's usage,
        // so the sweeper, not TTL, removes it (DECISIONS 12).
        item.insert("pendingUntil".to_owned(), n(exp.unix_timestamp()));
    }
    // The row holds the tags; their search items are written when the file is indexed.
    item.extend(label_attributes(&r.labels));
    item
}

/// `visibility`, and `tags` and `meta` where there are any: on file rows and upload tokens.
pub(crate) fn label_attributes(labels: &Labels) -> Vec<(String, AttributeValue)> {
    let mut attributes = vec![("visibility".to_owned(), s(labels.visibility.as_str()))];
    if !labels.tags.is_empty() {
        let tags = labels.tags.iter().map(|t| t.as_str().to_owned()).collect();
        attributes.push(("tags".to_owned(), AttributeValue::Ss(tags)));
    }
    if !labels.metadata.is_empty() {
        attributes.push(("meta".to_owned(), metadata_value(&labels.metadata)));
    }
    attributes
}

/// A file's metadata as the `meta` map attribute.
pub(crate) fn metadata_value(metadata: &CustomMetadata) -> AttributeValue {
    AttributeValue::M(metadata.iter().map(|(k, v)| (k.to_owned(), s(v))).collect())
}

/// What [`label_attributes`] wrote (items written before labels existed: private, none).
pub(crate) fn parse_labels(item: &HashMap<String, AttributeValue>) -> Result<Labels, AwsError> {
    let visibility = opt_str(item, "visibility").map(Visibility::parse).transpose();
    let tags = item.get("tags").and_then(|v| v.as_ss().ok());
    let meta = item.get("meta").and_then(|v| v.as_m().ok());
    Ok(Labels {
        visibility: visibility.map_err(|_| AwsError::Corrupt("visibility".into()))?.unwrap_or_default(),
        tags: tags.map(|ts| ts.iter().cloned().map(Tag::from_stored).collect()).unwrap_or_default(),
        metadata: CustomMetadata::from_stored(
            meta.map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone()))).collect())
                .unwrap_or_default(),
        ),
    })
}

pub(crate) fn parse_file_item(item: &HashMap<String, AttributeValue>) -> Result<FileRecord, AwsError> {
    let corrupt = |what: &str| AwsError::Corrupt(what.to_owned());
    Ok(FileRecord {
        file_id: FileId::parse(get_str(item, "fileId")?).map_err(|_| corrupt("fileId"))?,
        owner: UserId::parse(get_str(item, "owner")?).map_err(|_| corrupt("owner"))?,
        key: ObjectKey::from_stored(get_str(item, "key")?.to_owned()),
        filename: DisplayName::from_stored(get_str(item, "filename")?.to_owned()),
        content_type: ContentType::parse(get_str(item, "contentType")?).map_err(|_| corrupt("contentType"))?,
        size: get_u64(item, "size").ok_or_else(|| corrupt("size"))?,
        sha256: item
            .get("sha256")
            .and_then(|v| v.as_s().ok())
            .map(|v| Sha256::parse(v))
            .transpose()
            .map_err(|_| corrupt("sha256"))?,
        status: get_str(item, "status")?.parse().map_err(|e: String| AwsError::Corrupt(e))?,
        created_at: OffsetDateTime::parse(get_str(item, "createdAt")?, &Rfc3339).map_err(|_| corrupt("createdAt"))?,
        expires_at: get_u64(item, "pendingUntil").and_then(|t| OffsetDateTime::from_unix_timestamp(t as i64).ok()),
        version_id: opt_str(item, "versionId").map(str::to_owned),
        labels: parse_labels(item)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use matbakh_core::names::SafeName;

    #[test]
    fn file_rows_round_trip() {
        let owner = UserId::parse("u-1").unwrap();
        let id = FileId::new(1_700_000_000_000, [3; 10]);
        let name = DisplayName::parse("Straße.jpg").unwrap();
        let record = FileRecord {
            file_id: id,
            key: ObjectKey::original(&owner, id, &SafeName::from_display(&name)),
            owner,
            filename: name,
            content_type: ContentType::parse("image/jpeg").unwrap(),
            size: 42,
            sha256: Some(Sha256::of(b"x")),
            status: FileStatus::Pending,
            created_at: time::macros::datetime!(2026-11-27 10:00:00 UTC),
            expires_at: Some(time::macros::datetime!(2026-11-28 10:00:00 UTC)),
            version_id: None,
            labels: Labels::default(),
        };
        let item = file_item(&record);
        assert_eq!(item[schema::GSI1_PK], s("USER#u-1"));
        assert_eq!(item[schema::GSI2_PK], s("STATUS#PENDING"));
        assert_eq!(parse_file_item(&item).unwrap(), record);
        assert!(!item.contains_key("tags") && !item.contains_key("meta"), "no empty sets or maps");

        let tags = [Tag::parse("menu").unwrap(), Tag::parse("dinner").unwrap()];
        let metadata = CustomMetadata::parse([("price", "12.50"), ("lang", "ar")]).unwrap();
        let labelled = FileRecord { labels: Labels::new(Visibility::Public, &tags, metadata).unwrap(), ..record };
        assert_eq!(parse_file_item(&file_item(&labelled)).unwrap(), labelled);
        // Rows written before labels existed read as private, untagged.
        let mut old = file_item(&labelled);
        for attribute in ["visibility", "tags", "meta"] {
            old.remove(attribute);
        }
        assert_eq!(parse_file_item(&old).unwrap().labels, Labels::default());
    }
}
