//! The files API's side of the metadata table: a user's files listed from indexes (never a
//! scan), one file's details, renames and tags, soft delete and restore.
//!
//! | item        | pk              | sk            | GSI1 pk / sk                                    |
//! |-------------|-----------------|---------------|-------------------------------------------------|
//! | tag         | `FILE#{fileId}` | `TAG#{tag}`   | `TAG#{sub}#{tag}` / `{createdAt}#{fileId}`      |
//! | search word | `FILE#{fileId}` | `WORD#{word}` | `WORDS#{sub}` / `{word}#{createdAt}#{fileId}`   |
//!
//! File rows also carry `nameKey` (folded name) and `sizeKey` (zero-padded size), the sort keys
//! of the by-name and by-size indexes, which share GSI1's partition `USER#{sub}`. A file's
//! items all share its `pk`, so one Query finds everything of a file.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update};
use matbakh_core::archival::{Archival, RestoreTier};
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::listing::{Cursor, ListQuery, SortBy};
use matbakh_core::metadata::{ExifFacts, FileDetails, FileRecord, FileStatus, GeoPoint, ImageInfo, VariantInfo};
use matbakh_core::names::{DisplayName, fold, search_tokens};
use time::OffsetDateTime;

use crate::dynamo::{get_u64, n, opt_str, query_all, s};
use crate::error::AwsError;
use crate::schema::{self, FileRowUpdate, GSI1_PK, GSI1_SK, PK, SK};
use crate::table::{FileTable, GSI_USER, file_pk, metadata_value, parse_file_item};

/// Files by folded display name (partition `gsi1pk`, sort `nameKey`).
pub const GSI_NAMES: &str = "gsi4-user-names";
/// Files by size (partition `gsi1pk`, sort `sizeKey`).
pub const GSI_SIZES: &str = "gsi5-user-sizes";

/// The sort keys a file row carries for the by-name and by-size indexes.
pub(crate) fn sort_keys(r: &FileRecord) -> [(String, AttributeValue); 2] {
    [
        ("nameKey".to_owned(), s(name_key(&r.filename, r.file_id))),
        ("sizeKey".to_owned(), s(size_key(r.size, r.file_id))),
    ]
}

fn name_key(name: &DisplayName, id: FileId) -> String {
    format!("{}#{id}", fold(name.as_str()))
}

pub(crate) fn size_key(size: u64, id: FileId) -> String {
    format!("{size:020}#{id}")
}

pub(crate) fn parse_details(item: &HashMap<String, AttributeValue>) -> Result<FileDetails, AwsError> {
    let record = parse_file_item(item)?;
    let variants = item
        .get("variants")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_m().ok())
                .filter_map(|m| {
                    Some(VariantInfo {
                        width: u32::try_from(get_u64(m, "width")?).ok()?,
                        height: u32::try_from(get_u64(m, "height")?).ok()?,
                        content_type: opt_str(m, "contentType")?.to_owned(),
                        key: ObjectKey::from_stored(opt_str(m, "key")?.to_owned()),
                    })
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let image = match (get_u64(item, "width"), get_u64(item, "height")) {
        (Some(w), Some(h)) => Some(ImageInfo {
            width: u32::try_from(w).unwrap_or(0),
            height: u32::try_from(h).unwrap_or(0),
            frames: get_u64(item, "frames").and_then(|f| u32::try_from(f).ok()).unwrap_or(1),
            placeholder: opt_str(item, "placeholder").unwrap_or_default().to_owned(),
            variants,
        }),
        _ => None,
    };
    let exif = item.get("exif").and_then(|v| v.as_m().ok()).map(|m| ExifFacts {
        camera_make: opt_str(m, "cameraMake").map(str::to_owned),
        camera_model: opt_str(m, "cameraModel").map(str::to_owned),
        lens: opt_str(m, "lens").map(str::to_owned),
        taken_at: opt_str(m, "takenAt").map(str::to_owned),
        orientation: get_u64(m, "orientation").and_then(|o| u8::try_from(o).ok()).unwrap_or(1),
        had_gps: m.get("hadGps").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        location: m.get("location").and_then(|v| v.as_m().ok()).and_then(|p| {
            let num = |k: &str| p.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<f64>().ok());
            Some(GeoPoint { latitude: num("lat")?, longitude: num("lon")? })
        }),
    });
    let at = |name: &str| get_u64(item, name).and_then(|t| OffsetDateTime::from_unix_timestamp(t as i64).ok());
    let deleted_at = at("deletedAt");
    let archival = Archival {
        requested_at: at("archiveRequestedAt"),
        archived_at: at("archivedAt"),
        restore: opt_str(item, "restoreTier").and_then(|t| RestoreTier::parse(t).ok()).zip(at("restoreExpectedBy")),
        restored_until: at("restoredUntil"),
    };
    Ok(FileDetails {
        record,
        image,
        reason: opt_str(item, "reason").map(str::to_owned),
        exif,
        deleted_at,
        deleted_from: opt_str(item, "deletedFrom").and_then(|s| s.parse::<FileStatus>().ok()),
        revision: get_u64(item, schema::REVISION).unwrap_or(0),
        edits: get_u64(item, schema::EDITS).unwrap_or(0),
        archival,
        indexed: item.get("indexed").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
        unprocessed: item.get("unprocessed").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
    })
}

/// Which index a listing reads, its partition, and the sort key attribute.
struct Plan {
    index: &'static str,
    kind: &'static str,
    partition: String,
    sort_attr: &'static str,
    /// The index holds tag or word items, not file rows.
    via_items: bool,
}

fn plan_for(owner: &UserId, q: &ListQuery) -> Plan {
    let user = format!("USER#{owner}");
    if let Some(tag) = &q.tag {
        return Plan {
            index: GSI_USER,
            kind: "tag",
            partition: format!("TAG#{owner}#{tag}"),
            sort_attr: schema::GSI1_SK,
            via_items: true,
        };
    }
    if !q.words.is_empty() {
        return Plan {
            index: GSI_USER,
            kind: "words",
            partition: format!("WORDS#{owner}"),
            sort_attr: schema::GSI1_SK,
            via_items: true,
        };
    }
    match q.sort {
        SortBy::Date => {
            Plan { index: GSI_USER, kind: "date", partition: user, sort_attr: schema::GSI1_SK, via_items: false }
        }
        SortBy::Name => {
            Plan { index: GSI_NAMES, kind: "name", partition: user, sort_attr: "nameKey", via_items: false }
        }
        SortBy::Size => {
            Plan { index: GSI_SIZES, kind: "size", partition: user, sort_attr: "sizeKey", via_items: false }
        }
    }
}

/// A tag's item, in the tag's index by upload time.
fn tag_item(r: &FileRecord, tag: &str) -> HashMap<String, AttributeValue> {
    schema::item(
        schema::key(file_pk(r.file_id), format!("TAG#{tag}")),
        [
            (GSI1_PK.to_owned(), s(format!("TAG#{}#{tag}", r.owner))),
            (GSI1_SK.to_owned(), s(format!("{}#{}", iso_millis(r.created_at), r.file_id))),
        ],
    )
}

/// A search word's item, in the owner's word index by word, then upload time.
fn word_item(r: &FileRecord, word: &str) -> HashMap<String, AttributeValue> {
    schema::item(
        schema::key(file_pk(r.file_id), format!("WORD#{word}")),
        [
            (GSI1_PK.to_owned(), s(format!("WORDS#{}", r.owner))),
            (GSI1_SK.to_owned(), s(format!("{word}#{}#{}", iso_millis(r.created_at), r.file_id))),
        ],
    )
}

impl FileTable {
    /// A file with everything the API shows of it.
    pub async fn file_details(&self, id: FileId) -> Result<Option<FileDetails>, AwsError> {
        self.get_item(schema::file(id)).await?.as_ref().map(parse_details).transpose()
    }

    /// Every file of `owner` with its details, oldest first (GSI1 holds the whole rows: no read
    /// a file).
    pub async fn all_files(&self, owner: &UserId) -> Result<Vec<FileDetails>, AwsError> {
        query_all(self.user_index(format!("USER#{owner}"))).await?.iter().map(parse_details).collect()
    }

    /// A page of `owner`'s files as `q` asks, and where the next page starts. Reads one index
    /// (dates, names, sizes, a tag's items or the owner's search words), a page at a time,
    /// until `q.limit` files pass the filters or the index ends.
    pub async fn list_files(
        &self,
        owner: &UserId,
        q: &ListQuery,
    ) -> Result<(Vec<FileDetails>, Option<Cursor>), AwsError> {
        let plan = plan_for(owner, q);
        let mut start = match &q.cursor {
            Some(c) if c.kind != plan.kind => {
                return Err(AwsError::Invalid("cursor: it belongs to another listing"));
            }
            Some(c) => Some(schema::item(
                schema::key(&c.pk, &c.sk),
                [(GSI1_PK.to_owned(), s(&plan.partition)), (plan.sort_attr.to_owned(), s(&c.index_sk))],
            )),
            None => None,
        };
        let mut files: Vec<FileDetails> = Vec::new();
        let mut seen = BTreeSet::new();
        loop {
            let want = q.limit as usize - files.len();
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(plan.index)
                .expression_attribute_names("#p", schema::GSI1_PK)
                .expression_attribute_values(":p", s(&plan.partition))
                .scan_index_forward(!q.descending)
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            let mut condition = "#p = :p".to_owned();
            if plan.kind == "words" {
                // The longest word narrows most; the others are checked on the name.
                let word = q.words.iter().max_by_key(|w| w.len()).cloned().unwrap_or_default();
                condition.push_str(" AND begins_with(#s, :w)");
                query =
                    query.expression_attribute_names("#s", plan.sort_attr).expression_attribute_values(":w", s(word));
            } else if plan.kind != "name" && plan.kind != "size" {
                // Dates: the range is the key condition (`to` is exclusive; the filter checks it).
                match (q.from, q.to) {
                    (Some(f), Some(t)) => {
                        condition.push_str(" AND #s BETWEEN :f AND :t");
                        query = query
                            .expression_attribute_values(":f", s(iso_millis(f)))
                            .expression_attribute_values(":t", s(iso_millis(t)));
                    }
                    (Some(f), None) => {
                        condition.push_str(" AND #s >= :f");
                        query = query.expression_attribute_values(":f", s(iso_millis(f)));
                    }
                    (None, Some(t)) => {
                        condition.push_str(" AND #s < :t");
                        query = query.expression_attribute_values(":t", s(iso_millis(t)));
                    }
                    (None, None) => {}
                }
                if q.from.is_some() || q.to.is_some() {
                    query = query.expression_attribute_names("#s", plan.sort_attr);
                }
            }
            let out =
                query.key_condition_expression(condition).send().await.map_err(|e| AwsError::from_sdk("Query", e))?;
            let rows: Vec<HashMap<String, AttributeValue>> = if plan.via_items {
                let ids: Vec<String> = out
                    .items()
                    .iter()
                    .filter_map(|i| opt_str(i, PK).map(str::to_owned))
                    .filter(|pk| seen.insert(pk.clone()))
                    .collect();
                self.rows_by_pk(&ids).await?
            } else {
                out.items().to_vec()
            };
            for item in &rows {
                let d = parse_details(item)?;
                let r = &d.record;
                // An index item of someone else's file never lists (belt and braces: the
                // partition is the owner's).
                // A tag item left behind by a retag that raced the indexing lists nothing.
                let tagged = q.tag.as_ref().is_none_or(|t| r.labels.tags.contains(t));
                if r.owner == *owner
                    && tagged
                    && q.keeps(r.status, r.content_type.as_str(), r.created_at, r.filename.as_str())
                {
                    files.push(d);
                }
            }
            let last = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
            match last {
                Some(k) if files.len() < q.limit as usize => start = Some(k),
                Some(k) => {
                    let cursor = Cursor {
                        kind: plan.kind.to_owned(),
                        pk: opt_str(&k, PK).unwrap_or_default().to_owned(),
                        sk: opt_str(&k, SK).unwrap_or_default().to_owned(),
                        index_sk: opt_str(&k, plan.sort_attr).unwrap_or_default().to_owned(),
                    };
                    return Ok((files, Some(cursor)));
                }
                None => return Ok((files, None)),
            }
        }
    }

    /// File rows by `pk`, in the order asked (BatchGetItem, 100 a call, consistent).
    async fn rows_by_pk(&self, pks: &[String]) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
        let mut found: HashMap<String, HashMap<String, AttributeValue>> = HashMap::new();
        for chunk in pks.chunks(100) {
            let keys = chunk.iter().map(|pk| schema::key(pk, schema::FILE)).collect::<Vec<_>>();
            let mut request = Some(KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build()?);
            let mut wait = std::time::Duration::from_millis(50);
            let mut rounds = 0;
            while let Some(req) = request.take() {
                rounds += 1;
                if rounds > 5 {
                    // Still throttled after 1.5 s of waits: a retryable failure (503), not the
                    // function's time limit.
                    return Err(AwsError::Service {
                        operation: "BatchGetItem",
                        message: "keys left unprocessed after 5 rounds".into(),
                        retryable: true,
                    });
                }
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("BatchGetItem", e))?;
                for item in out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                    if let Some(pk) = opt_str(item, PK) {
                        found.insert(pk.to_owned(), item.clone());
                    }
                }
                request = out.unprocessed_keys().and_then(|u| u.get(&self.table)).cloned();
                if request.is_some() {
                    // What DynamoDB left unread (throttled): asked again after a wait, as
                    // `dynamo::batch_write` does.
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        Ok(pks.iter().filter_map(|pk| found.remove(pk)).collect())
    }

    /// Writes the owner's changes to a file they saw as `before` (its name, tags, visibility
    /// and metadata as `after` has them), if nobody changed it meanwhile (`false`: it changed
    /// or went away; read it again). Keeps its tag and word items in step, in one transaction.
    pub async fn update_file(&self, before: &FileDetails, after: &FileRecord) -> Result<bool, AwsError> {
        let r = &before.record;
        let name = (after.filename != r.filename).then_some(&after.filename);
        let tags = &after.labels.tags;
        let mut items = Vec::new();
        let mut row = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::file(r.file_id)))
            // Rows written before owner changes were counted have none: those made from a read
            // of no change. New rows start at 0, so a read of a row removed and written anew under
            // the same id (a rolled back migration run again) does not pass for one of the new row.
            .condition_expression(if before.edits == 0 {
                "#owner = :owner AND #status <> :deleted AND (attribute_not_exists(edits) OR edits = :edits)"
            } else {
                "#owner = :owner AND #status <> :deleted AND edits = :edits"
            })
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(r.owner.as_str()))
            .expression_attribute_values(":deleted", s(FileStatus::Deleted.as_str()))
            .expression_attribute_values(":edits", n(before.edits))
            .expression_attribute_values(":nextEdits", n(before.edits + 1));
        let mut sets = vec!["edits = :nextEdits".to_owned(), "visibility = :vis".to_owned()];
        row = row.expression_attribute_values(":vis", s(after.labels.visibility.as_str()));
        let mut removes = Vec::new();
        if after.labels.metadata.is_empty() {
            removes.push("meta");
        } else {
            sets.push("meta = :meta".into());
            row = row.expression_attribute_values(":meta", metadata_value(&after.labels.metadata));
        }
        if let Some(name) = name {
            sets.push("filename = :name, nameKey = :nk".into());
            row = row
                .expression_attribute_values(":name", s(name.as_str()))
                .expression_attribute_values(":nk", s(name_key(name, r.file_id)));
            let (old, new): (BTreeSet<String>, BTreeSet<String>) = (
                search_tokens(r.filename.as_str()).into_iter().collect(),
                search_tokens(name.as_str()).into_iter().collect(),
            );
            for w in old.difference(&new) {
                items.push(delete_item(&self.table, r.file_id, &format!("WORD#{w}"))?);
            }
            for w in new.difference(&old) {
                items.push(put_item(&self.table, word_item(r, w))?);
            }
            if new.is_empty() {
                removes.push("tokens");
            } else {
                sets.push("tokens = :tokens".into());
                row = row.expression_attribute_values(":tokens", AttributeValue::Ss(new.into_iter().collect()));
            }
        }
        let old: BTreeSet<String> = r.labels.tags.iter().map(|t| t.as_str().to_owned()).collect();
        let new: BTreeSet<String> = tags.iter().map(|t| t.as_str().to_owned()).collect();
        for t in old.difference(&new) {
            items.push(delete_item(&self.table, r.file_id, &format!("TAG#{t}"))?);
        }
        for t in new.difference(&old) {
            items.push(put_item(&self.table, tag_item(r, t))?);
        }
        if new.is_empty() {
            removes.push("tags");
        } else {
            sets.push("tags = :tags".into());
            row = row.expression_attribute_values(":tags", AttributeValue::Ss(new.into_iter().collect()));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        items.insert(0, TransactWriteItem::builder().update(row.file_row_update(expression).build()?).build());
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => Ok(true),
            Err(e) if crate::dynamo::cancelled_by_condition(&e).first() == Some(&true) => Ok(false),
            Err(e) => Err(AwsError::from_sdk("TransactWriteItems", e)),
        }
    }

    /// Puts the search items of a file's name words and tags (idempotent; the indexer calls it
    /// when a file arrives, [`Self::update_file`] keeps the tags' items after).
    pub async fn index_search(&self, r: &FileRecord) -> Result<(), AwsError> {
        let mut items: Vec<_> = search_tokens(r.filename.as_str()).iter().map(|w| word_item(r, w)).collect();
        items.extend(r.labels.tags.iter().map(|t| tag_item(r, t.as_str())));
        crate::dynamo::batch_put(&self.client, &self.table, items).await
    }

    /// Marks an owner's soft delete on the row (when, for the restore window); the status
    /// change itself is [`FileTable::mark_deleted`].
    pub async fn note_deleted(&self, id: FileId, at: OffsetDateTime, from: FileStatus) -> Result<(), AwsError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::file(id)))
            .file_row_update(
                "SET deletedAt = if_not_exists(deletedAt, :at), deletedFrom = if_not_exists(deletedFrom, :from)",
            )
            .condition_expression(schema::ITEM_EXISTS)
            .expression_attribute_values(":at", n(at.unix_timestamp()))
            .expression_attribute_values(":from", s(from.as_str()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("UpdateItem", e))
    }

    /// DELETED → `r.status` (READY, or ARCHIVED for a file whose original is in the archive
    /// tier). A soft-deleted row still holds its bytes in the owner's usage (see
    /// [`FileTable::mark_deleted`]): they only stop being `deleted`. A row that holds nothing (a
    /// delete recorded before deleted bytes were kept counted) is charged again, refused above
    /// `quota`. Answers `false` if the row is not DELETED.
    pub async fn restore(&self, r: &FileRecord, quota: u64) -> Result<bool, AwsError> {
        let held =
            self.get_item(schema::file(r.file_id)).await?.and_then(|item| get_u64(&item, "charged")).unwrap_or(0);
        let usage = if held > 0 {
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(schema::usage(&r.owner)))
                .update_expression("ADD deleted :held")
                .expression_attribute_values(":held", AttributeValue::N(format!("-{held}")))
                .build()?
        } else {
            self.charge_usage(&r.owner, r.size, quota, false)?
        };
        let row = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::file(r.file_id)))
            .file_row_update(format!(
                "SET #status = :ready, {} = :g, charged = :size REMOVE deletedAt, deletedFrom",
                schema::GSI2_PK
            ))
            .condition_expression(
                "#status = :deleted AND #owner = :owner AND (charged = :held OR attribute_not_exists(charged))",
            )
            .expression_attribute_values(":held", n(held))
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":ready", s(r.status.as_str()))
            .expression_attribute_values(":g", s(format!("STATUS#{}", r.status)))
            .expression_attribute_values(":size", n(r.size))
            .expression_attribute_values(":deleted", s(FileStatus::Deleted.as_str()))
            .expression_attribute_values(":owner", s(r.owner.as_str()))
            .build()?;
        let items =
            vec![TransactWriteItem::builder().update(usage).build(), TransactWriteItem::builder().update(row).build()];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let failed = crate::dynamo::cancelled_by_condition(&e);
                if failed.first() == Some(&true) {
                    Err(self.usage_refused(&r.owner, None).await)
                } else if failed.get(1) == Some(&true) {
                    Ok(false)
                } else {
                    Err(AwsError::from_sdk("TransactWriteItems", e))
                }
            }
        }
    }

    /// How many of `owner`'s files are not deleted (a count over their index, no items read
    /// back).
    pub async fn count_files(&self, owner: &UserId) -> Result<u64, AwsError> {
        let (mut count, mut start) = (0u64, None);
        loop {
            let out = self
                .user_index(format!("USER#{owner}"))
                .filter_expression("#status <> :deleted")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":deleted", s(FileStatus::Deleted.as_str()))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Query", e))?;
            count += u64::try_from(out.count()).unwrap_or(0);
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(count),
            }
        }
    }
}

fn put_item(table: &str, item: HashMap<String, AttributeValue>) -> Result<TransactWriteItem, AwsError> {
    Ok(TransactWriteItem::builder().put(Put::builder().table_name(table).set_item(Some(item)).build()?).build())
}

fn delete_item(table: &str, id: FileId, sk: &str) -> Result<TransactWriteItem, AwsError> {
    let delete = Delete::builder().table_name(table).set_key(Some(schema::key(file_pk(id), sk))).build()?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

impl FileTable {
    /// A step on the way to the archive tier and back: status `from` -> `to`, with the
    /// archival attributes `a` (absent ones removed), in one conditional update.
    pub async fn set_archival(
        &self,
        id: FileId,
        from: &[FileStatus],
        to: FileStatus,
        a: &Archival,
    ) -> Result<bool, AwsError> {
        let times = [
            ("archiveRequestedAt", a.requested_at),
            ("archivedAt", a.archived_at),
            ("restoreExpectedBy", a.restore.map(|(_, by)| by)),
            ("restoredUntil", a.restored_until),
        ];
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::file(id)))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":g", s(format!("STATUS#{to}")));
        let (mut sets, mut removes) = (vec!["#status = :to".to_owned(), schema::SET_GSI2_PK.to_owned()], Vec::new());
        for (name, value) in times {
            match value {
                Some(t) => {
                    sets.push(format!("{name} = :{name}"));
                    update = update.expression_attribute_values(format!(":{name}"), n(t.unix_timestamp()));
                }
                None => removes.push(name),
            }
        }
        match a.restore {
            Some((tier, _)) => {
                sets.push("restoreTier = :tier".to_owned());
                update = update.expression_attribute_values(":tier", s(tier.as_str()));
            }
            None => removes.push("restoreTier"),
        }
        let mut froms = Vec::with_capacity(from.len());
        for (i, status) in from.iter().enumerate() {
            froms.push(format!(":from{i}"));
            update = update.expression_attribute_values(format!(":from{i}"), s(status.as_str()));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let out = update
            .file_row_update(expression)
            .condition_expression(format!("#status IN ({})", froms.join(", ")))
            .send()
            .await;
        crate::dynamo::conditional(out, "UpdateItem")
    }
}
