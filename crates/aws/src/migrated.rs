//! The rows a migration run registers in the files table, and what its rollback undoes there:
//! a migrated file's row (marked with its run), the mapping from its legacy path to it, and
//! the earlier copy a run of changed files retired (`supersedes`), which a rollback makes
//! current again.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::metadata::{FileRecord, FileStatus};

use crate::dynamo::{cancelled_by_condition, conditional, get_str, get_u64, n, opt_str, s};
use crate::error::AwsError;
use crate::schema;
use crate::table::{FileTable, accounted_file_item};

/// A legacy path and the file a migration made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMapping {
    pub legacy_path: String,
    pub file_id: FileId,
    pub key: String,
    pub run: String,
}

/// The item that maps `legacy_path` to the file at `key` that `run` registered.
fn mapping_item(legacy_path: &str, file_id: FileId, key: &str, owner: &UserId, run: &str) -> schema::Item {
    schema::item(
        schema::legacy(legacy_path),
        [
            ("legacyPath".to_owned(), s(legacy_path)),
            ("fileId".to_owned(), s(file_id.to_string())),
            ("objectKey".to_owned(), s(key)),
            ("migrationRun".to_owned(), s(run)),
            // The owner's legacy paths are their data: the erase finds them here.
            (schema::GSI1_PK.to_owned(), s(format!("LEGACIES#{owner}"))),
            (schema::GSI1_SK.to_owned(), s(file_id.to_string())),
        ],
    )
}

impl FileTable {
    /// Registers a file a migration run is about to write, as an upload grant would: a PENDING
    /// row (nothing reserved; the object-created event settles it and the thumbnailer makes
    /// its variants), marked with the run; and the mapping from its legacy path to it (issue
    /// 19: old URLs keep working), which a later run of the same path replaces. Answers false if
    /// the row exists already (a retry; the mapping is written again, idempotently).
    pub async fn register_migrated(&self, record: &FileRecord, run: &str, legacy_path: &str) -> Result<bool, AwsError> {
        let mut item = accounted_file_item(record, 0, 0);
        item.insert("migrationRun".to_owned(), s(run));
        let created = match self.put_new(item).await {
            Ok(()) => true,
            Err(AwsError::AlreadyExists) => {
                // The same file (a run of the same plan again), or another key under its id: a
                // rolled back run's row of another owner (file ids do not depend on the owner).
                // That one is not this file's: refused before the mapping is touched.
                let existing = self.get_item(schema::file(record.file_id)).await?;
                if existing.as_ref().and_then(|i| opt_str(i, "key")) != Some(record.key.as_str()) {
                    return Err(AwsError::AlreadyExists);
                }
                false
            }
            Err(e) => return Err(e),
        };
        let mapping = mapping_item(legacy_path, record.file_id, record.key.as_str(), &record.owner, run);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(mapping))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutItem", e))?;
        Ok(created)
    }

    /// The file a legacy path was migrated to (the newest run's), if any.
    pub async fn legacy_file(&self, legacy_path: &str) -> Result<Option<LegacyMapping>, AwsError> {
        let Some(item) = self.get_item(schema::legacy(legacy_path)).await? else { return Ok(None) };
        let corrupt = |what: &str| AwsError::Corrupt(format!("legacy mapping of {legacy_path:?}: {what}"));
        Ok(Some(LegacyMapping {
            legacy_path: get_str(&item, "legacyPath")?.to_owned(),
            file_id: FileId::parse(get_str(&item, "fileId")?).map_err(|_| corrupt("fileId"))?,
            key: get_str(&item, "objectKey")?.to_owned(),
            run: get_str(&item, "migrationRun")?.to_owned(),
        }))
    }

    /// The migration run that registered a file, if one did.
    pub async fn migration_run_of(&self, id: FileId) -> Result<Option<String>, AwsError> {
        Ok(self
            .get_item(schema::file(id))
            .await?
            .and_then(|item| item.get("migrationRun").and_then(|v| v.as_s().ok()).cloned()))
    }

    /// Removes the row a migration registered for the file at `key` (a rollback, once no object
    /// of the key is current: whichever run registered the row, several runs may have written
    /// the key), with its tag and word items, and gives back whatever it still counts in the
    /// owner's usage (stored, reserved, or kept as deleted), in one transaction guarded by what
    /// was read: the indexer may be taking the same removal into account at the same time, and
    /// either order counts the bytes once. Answers `false`, touching nothing, if there is no
    /// such row or no migration registered it (an upload's).
    pub async fn retire_migrated(&self, file_id: FileId, key: &str) -> Result<bool, AwsError> {
        let mut extras_gone = false;
        for _ in 0..3 {
            let Some(item) = self.get_item(schema::file(file_id)).await? else { return Ok(false) };
            let Some(run) = opt_str(&item, "migrationRun").map(str::to_owned) else { return Ok(false) };
            if opt_str(&item, "key") != Some(key) {
                return Ok(false);
            }
            // The search items first: once the row is gone nothing leads to them.
            if !extras_gone {
                self.delete_file_extras(file_id).await?;
                extras_gone = true;
            }
            let status = get_str(&item, "status")?.to_owned();
            let (charged, reserved) = (get_u64(&item, "charged").unwrap_or(0), get_u64(&item, "reserved").unwrap_or(0));
            let row = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(schema::file(file_id)))
                .condition_expression(
                    "#status = :seen AND charged = :charged AND #reserved = :reserved AND migrationRun = :run",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#reserved", "reserved")
                .expression_attribute_values(":seen", s(&status))
                .expression_attribute_values(":charged", n(charged))
                .expression_attribute_values(":reserved", n(reserved))
                .expression_attribute_values(":run", s(&run))
                .build()?;
            let mut items = vec![TransactWriteItem::builder().delete(row).build()];
            if charged > 0 || reserved > 0 {
                let owner = UserId::parse(get_str(&item, "owner")?).map_err(|_| AwsError::Corrupt("owner".into()))?;
                // A soft-deleted row's stored bytes are counted as `deleted` too.
                let deleted = if status == FileStatus::Deleted.as_str() { charged } else { 0 };
                let usage = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(schema::usage(&owner)))
                    .update_expression("ADD charged :c, #reserved :r, deleted :d")
                    .expression_attribute_names("#reserved", "reserved")
                    .expression_attribute_values(":c", AttributeValue::N(format!("-{charged}")))
                    .expression_attribute_values(":r", AttributeValue::N(format!("-{reserved}")))
                    .expression_attribute_values(":d", AttributeValue::N(format!("-{deleted}")))
                    .build()?;
                items.push(TransactWriteItem::builder().update(usage).build());
            }
            match crate::dynamo::transact(&self.client, items).await {
                Ok(_) => return Ok(true),
                // Settled or removed meanwhile: read again.
                Err(err) if cancelled_by_condition(&err).first() == Some(&true) => continue,
                Err(err) => return Err(AwsError::from_sdk("TransactWriteItems", err)),
            }
        }
        Err(AwsError::Service {
            operation: "TransactWriteItems",
            message: "the row kept changing while being rolled back".into(),
            retryable: true,
        })
    }

    /// Brings the file at `key` back where a run of changed files had retired it (its row
    /// DELETED by the indexer when the run's delete marker hid it), before the rollback removes
    /// that marker: the marker's removal then finds a current file, not a purge. It comes back
    /// as an owner's restore brings a file back ([`FileDetails::restored_status`]: READY, or
    /// FAILED, ARCHIVED as it was). Its bytes were kept counted as deleted; if they were given
    /// back meanwhile they are counted again, never refused (a migrated file is counted,
    /// DECISIONS 12's quota governs uploads). Answers `false` if there is no such row or it is
    /// not DELETED.
    ///
    /// [`FileDetails::restored_status`]: matbakh_core::metadata::FileDetails::restored_status
    pub async fn restore_superseded(&self, file_id: FileId, key: &str) -> Result<bool, AwsError> {
        let Some(details) = self.file_details(file_id).await? else { return Ok(false) };
        if details.record.key.as_str() != key || details.record.status != FileStatus::Deleted {
            return Ok(false);
        }
        let record = FileRecord { status: details.restored_status(), ..details.record };
        self.restore(&record, u64::MAX).await
    }

    /// Points `legacy_path`'s mapping, where `run` wrote it (a run being rolled back), back at
    /// `to` (the copy current again; its row says which run registered it), or removes it when
    /// `to` has no migrated row: the redirector then answers as before the run. A mapping a
    /// later run wrote is left alone.
    pub async fn unmap_legacy(&self, legacy_path: &str, run: &str, to: Option<FileId>) -> Result<(), AwsError> {
        let earlier = match to {
            Some(id) => self.get_item(schema::file(id)).await?,
            None => None,
        };
        let back = earlier.as_ref().and_then(|item| {
            let owner = UserId::parse(opt_str(item, "owner")?).ok()?;
            Some(mapping_item(legacy_path, to?, opt_str(item, "key")?, &owner, opt_str(item, "migrationRun")?))
        });
        match back {
            Some(mapping) => conditional(
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(mapping))
                    .condition_expression("migrationRun = :run")
                    .expression_attribute_values(":run", s(run))
                    .send()
                    .await,
                "PutItem",
            ),
            None => conditional(
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::legacy(legacy_path)))
                    .condition_expression("migrationRun = :run")
                    .expression_attribute_values(":run", s(run))
                    .send()
                    .await,
                "DeleteItem",
            ),
        }
        .map(|_| ())
    }
}
