//! DynamoDB: the metadata table (one table, overloaded keys; see `schema` for its items), the
//! file rows' codec and the upload, quota and token operations on it.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::metadata::{ContentFacts, FileRecord, FileStatus, ImageInfo, VariantInfo};
use matbakh_core::multipart::{UploadId, UploadSession};
use matbakh_core::names::DisplayName;
use matbakh_core::quota::{Usage, reservation_ceiling};
use matbakh_core::tokens::TokenGrant;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::AwsError;
use crate::schema::{self, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK};

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
/// [`FileTable::pin_version`]).
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

/// What retiring a row does with the bytes it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// They leave the owner's usage now (quarantine, a delete for good).
    Release,
    /// They stay counted until the versions are purged (a soft delete).
    UntilPurged,
}

pub use crate::schema::{GSI_CONTENT_HASH, GSI_STATUS, GSI_USER};

/// Bytes a usage update adds, within `quota`; `reserve`: they are only reserved yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charge {
    pub size: u64,
    pub quota: u64,
    pub reserve: bool,
}

/// An unsettled PENDING row: what the sweeper needs to give its grant back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub file_id: FileId,
    pub owner: UserId,
    pub key: ObjectKey,
    /// The multipart upload, for rows a REST multipart session reserved.
    pub upload_id: Option<UploadId>,
    /// Bytes the owner's usage counts for the row, and how many of those are only reserved.
    pub charged: u64,
    pub reserved: u64,
    /// The upload token whose allowance the row reserved (a Companion-mode single upload).
    pub token_digest: Option<String>,
}

/// What a READY row records besides its status (see [`FileTable::mark_ready`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ready<'a> {
    /// The image facts and variants, for an image that got them.
    pub image: Option<&'a ImageInfo>,
    /// Why there are no variants, when an image has none.
    pub note: Option<&'a str>,
    /// What the virus scan said (`clean`, or why it did not run), when one is configured.
    pub virus_scan: Option<&'a str>,
}

#[derive(Clone, Debug)]
pub struct FileTable {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Every item a query yields, across all its pages (the SDK's paginator).
pub(crate) async fn query_all(query: QueryFluentBuilder) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
    query
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| AwsError::from_sdk("Query", e))
}

pub(crate) use crate::schema::{file_pk, user_pk};

impl FileTable {
    pub fn new(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        FileTable { client: aws_sdk_dynamodb::Client::new(sdk), table: table.into() }
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
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                let failed = cancelled_by_condition(&err);
                if failed.first() == Some(&true) {
                    Err(AwsError::QuotaExceeded)
                } else if failed.iter().skip(1).any(|f| *f) {
                    Err(AwsError::AlreadyExists)
                } else {
                    Err(AwsError::from_sdk("TransactWriteItems", err))
                }
            }
        }
    }

    /// Stores a new upload token's grant (under its digest, never the token).
    pub async fn put_token(&self, grant: &TokenGrant) -> Result<(), AwsError> {
        let mut item = schema::item(
            schema::token(&grant.digest),
            [
                ("owner".to_owned(), s(grant.owner.as_str())),
                ("maxBytes".to_owned(), n(grant.max_bytes)),
                ("usedBytes".to_owned(), n(grant.used_bytes)),
                ("expiresAt".to_owned(), s(iso_millis(grant.expires_at))),
                ("ttl".to_owned(), n(grant.expires_at.unix_timestamp())),
                ("revoked".to_owned(), AttributeValue::Bool(grant.revoked)),
                // The owner's tokens, for an erase to find.
                (GSI1_PK.to_owned(), s(format!("TOKENS#{}", grant.owner))),
                (GSI1_SK.to_owned(), s(format!("{}#{}", iso_millis(grant.expires_at), grant.digest))),
            ],
        );
        if !grant.types.is_empty() {
            item.insert(
                "types".to_owned(),
                AttributeValue::Ss(grant.types.iter().map(|t| t.as_str().to_owned()).collect()),
            );
        }
        self.put_new(item).await
    }

    /// The grant of the token with this digest, if there is one.
    pub async fn get_token(&self, digest: &str) -> Result<Option<TokenGrant>, AwsError> {
        let Some(item) = self.get_item(schema::token(digest)).await? else {
            return Ok(None);
        };
        let corrupt = |what: &str| AwsError::Corrupt(format!("token {what}"));
        let types = match item.get("types") {
            Some(AttributeValue::Ss(list)) => {
                list.iter().map(|t| ContentType::parse(t).map_err(|_| corrupt("types"))).collect::<Result<_, _>>()?
            }
            _ => Vec::new(),
        };
        Ok(Some(TokenGrant {
            digest: digest.to_owned(),
            owner: UserId::parse(get_str(&item, "owner")?).map_err(|_| corrupt("owner"))?,
            max_bytes: get_u64(&item, "maxBytes").ok_or_else(|| corrupt("maxBytes"))?,
            used_bytes: get_u64(&item, "usedBytes").unwrap_or(0),
            types,
            expires_at: OffsetDateTime::parse(get_str(&item, "expiresAt")?, &Rfc3339)
                .map_err(|_| corrupt("expiresAt"))?,
            revoked: matches!(item.get("revoked"), Some(AttributeValue::Bool(true))),
        }))
    }

    /// Revokes the owner's token at once. Answers `false` if they have no such token.
    pub async fn revoke_token(&self, digest: &str, owner: &UserId) -> Result<bool, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::token(digest)))
            .update_expression("SET revoked = :t")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":owner", s(owner.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(AwsError::from_sdk("UpdateItem", e)),
        }
    }

    /// Charges a finished upload of `record.size` bytes to the token's allowance and the
    /// owner's quota and writes its PENDING file row, in one transaction. `QuotaExceeded` if
    /// either has no room (nothing is written then).
    pub async fn charge_token_upload(
        &self,
        token: &TokenGrant,
        record: &FileRecord,
        quota: u64,
    ) -> Result<(), AwsError> {
        self.charge_token(token, record, quota, false).await
    }

    /// Reserves `record.size` bytes (the most a granted POST policy allows) against the token's
    /// allowance and the owner's quota and writes the PENDING row, in one transaction; the row
    /// names the token, so settling gives back to both what did not arrive
    /// ([`Self::settle_upload`]) and the sweeper everything if nothing did.
    pub async fn reserve_token_upload(
        &self,
        token: &TokenGrant,
        record: &FileRecord,
        quota: u64,
    ) -> Result<(), AwsError> {
        self.charge_token(token, record, quota, true).await
    }

    async fn charge_token(
        &self,
        token: &TokenGrant,
        record: &FileRecord,
        quota: u64,
        reserve: bool,
    ) -> Result<(), AwsError> {
        let token_ceiling = reservation_ceiling(token.max_bytes, record.size).map_err(|_| AwsError::QuotaExceeded)?;
        let allowance = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::token(&token.digest)))
            .update_expression("ADD usedBytes :size")
            .condition_expression("usedBytes <= :ceiling AND revoked = :f")
            .expression_attribute_values(":size", n(record.size))
            .expression_attribute_values(":ceiling", n(token_ceiling))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .build()?;
        let usage = self.charge_usage(&record.owner, record.size, quota, reserve)?;
        let mut item = accounted_file_item(record, record.size, if reserve { record.size } else { 0 });
        if reserve {
            item.insert("tokenDigest".to_owned(), s(&token.digest));
        }
        let row = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let items = vec![
            TransactWriteItem::builder().update(allowance).build(),
            TransactWriteItem::builder().update(usage).build(),
            TransactWriteItem::builder().put(row).build(),
        ];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                let failed = cancelled_by_condition(&err);
                if failed.first() == Some(&true) || failed.get(1) == Some(&true) {
                    Err(AwsError::QuotaExceeded)
                } else if failed.get(2) == Some(&true) {
                    Err(AwsError::AlreadyExists)
                } else {
                    Err(AwsError::from_sdk("TransactWriteItems", err))
                }
            }
        }
    }

    /// Gives `bytes` of an upload token's allowance back (what a reserved upload did not use).
    /// A token that expired meanwhile (and may be gone by TTL) has nothing to give back to.
    pub async fn release_token(&self, digest: &str, bytes: u64) -> Result<(), AwsError> {
        if bytes == 0 {
            return Ok(());
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::token(digest)))
            .update_expression("ADD usedBytes :give")
            .condition_expression("attribute_exists(pk) AND usedBytes >= :bytes")
            .expression_attribute_values(":give", AttributeValue::N(format!("-{bytes}")))
            .expression_attribute_values(":bytes", n(bytes))
            .send()
            .await;
        conditional(out, "UpdateItem").map(|_| ())
    }

    /// Writes a PENDING file row without reserving quota: for uploads whose size is not known
    /// when they are granted (an upload token's single POST); the object-created event settles
    /// them.
    pub async fn put_unreserved_file(&self, record: &FileRecord) -> Result<(), AwsError> {
        self.put_new(accounted_file_item(record, 0, 0)).await
    }

    /// Registers a file a migration run is about to write, as an upload grant would: a PENDING
    /// row (nothing reserved; the object-created event settles it and the thumbnailer makes
    /// its variants), marked with the run. Answers false if the row exists already (a retry).
    pub async fn register_migrated(&self, record: &FileRecord, run: &str) -> Result<bool, AwsError> {
        let mut item = accounted_file_item(record, 0, 0);
        item.insert("migrationRun".to_owned(), s(run));
        match self.put_new(item).await {
            Ok(()) => Ok(true),
            Err(AwsError::AlreadyExists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The migration run that registered a file, if one did.
    pub async fn migration_run_of(&self, id: FileId) -> Result<Option<String>, AwsError> {
        Ok(self
            .get_item(schema::file(id))
            .await?
            .and_then(|item| item.get("migrationRun").and_then(|v| v.as_s().ok()).cloned()))
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
            .update_expression("SET versionId = :v")
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
        if actual > granted {
            return Ok(Settlement::Refused("larger than the upload was granted"));
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
            .update_expression(
                "SET #size = :actual, sizeKey = :sizekey, charged = :actual, #reserved = :zero, settled = :t REMOVE pendingUntil",
            )
            .expression_attribute_values(":sizekey", s(crate::files::size_key(actual, file_id)))
            .expression_attribute_names("#size", "size")
            .expression_attribute_names("#reserved", "reserved")
            .condition_expression("attribute_not_exists(settled)")
            .expression_attribute_values(":actual", n(actual))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .build()?;
        let usage = usage.build()?;
        let items =
            vec![TransactWriteItem::builder().update(usage).build(), TransactWriteItem::builder().update(row).build()];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => {
                if let Some(digest) = opt_str(&item, "tokenDigest") {
                    self.release_token(digest, granted - actual).await?;
                }
                self.end_row_session(&item, "COMPLETED").await?;
                Ok(Settlement::Accepted)
            }
            Err(err) => match cancelled_by_condition(&err).as_slice() {
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
            .update_expression("SET charged = :zero")
            .condition_expression("#status = :deleted AND charged = :held")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":deleted", s(FileStatus::Deleted.as_str()))
            .expression_attribute_values(":held", n(held))
            .build()?;
        let items =
            vec![TransactWriteItem::builder().update(usage).build(), TransactWriteItem::builder().update(row).build()];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
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
            let mut sets = vec!["#status = :to", "gsi2pk = :g", "charged = :kept", "#reserved = :zero", "settled = :t"];
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
            let row = row.update_expression(format!("SET {} REMOVE pendingUntil", sets.join(", "))).build()?;
            let items = vec![
                TransactWriteItem::builder().update(usage).build(),
                TransactWriteItem::builder().update(row).build(),
            ];
            match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => {
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
        let mut values: Vec<(&str, &str, AttributeValue)> = vec![("sha256 = :sha", ":sha", s(facts.sha256.to_hex()))];
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
        let mut update = self.client.update_item().table_name(&self.table).set_key(Some(schema::file(file_id)));
        for (_, placeholder, value) in values {
            update = update.expression_attribute_values(placeholder, value);
        }
        let mut condition = "attribute_exists(pk)".to_owned();
        if let Some(order) = order {
            sets.push("eventOrder = :order");
            update = update.expression_attribute_values(":order", s(order));
            condition.push_str(" AND (attribute_not_exists(eventOrder) OR eventOrder <= :order)");
        }
        let out =
            update.update_expression(format!("SET {}", sets.join(", "))).condition_expression(condition).send().await;
        conditional(out, "UpdateItem")
    }

    /// The oldest other live file of `owner` with the same bytes, if any.
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
                .key_condition_expression("sha256 = :sha")
                .expression_attribute_values(":sha", s(sha.to_hex()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Query", e))?;
            for item in out.items() {
                let live = !matches!(
                    item.get("status").and_then(|v| v.as_s().ok()).map(String::as_str),
                    Some("DELETED" | "QUARANTINED")
                );
                let same_owner =
                    item.get("owner").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(owner.as_str());
                let id = item.get("fileId").and_then(|v| v.as_s().ok()).and_then(|v| FileId::parse(v).ok());
                let created = item.get("createdAt").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                if let (true, true, Some(id)) = (live, same_owner, id)
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
        let mut sets = vec!["#status = :status", "gsi2pk = :g"];
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
            .update_expression(format!("SET {}", sets.join(", ")))
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
            .update_expression("SET #status = :failed, gsi2pk = :g, #reason = :why")
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

    /// A transaction's put of an item that must not exist yet.
    pub(crate) fn put_new_item(&self, item: schema::Item) -> Result<Put, AwsError> {
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()?)
    }

    /// Writes an item that must not exist yet (`AlreadyExists` if it does).
    pub(crate) async fn put_new(&self, item: HashMap<String, AttributeValue>) -> Result<(), AwsError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(AwsError::AlreadyExists)
            }
            Err(e) => Err(AwsError::from_sdk("PutItem", e)),
        }
    }

    /// The update that adds `size` bytes to the owner's usage (and to its reserved part when
    /// `reserve`), on condition the quota still has room.
    pub(crate) fn charge_usage(
        &self,
        owner: &UserId,
        size: u64,
        quota: u64,
        reserve: bool,
    ) -> Result<Update, AwsError> {
        self.usage_update(owner, Some(Charge { size, quota, reserve }), None)
    }

    /// The usage update that takes one of the owner's `cap` open-upload places and, with a
    /// `charge`, adds its bytes within the quota: the one place the quota and the open-upload
    /// cap are enforced.
    pub(crate) fn usage_update(
        &self,
        owner: &UserId,
        charge: Option<Charge>,
        open_cap: Option<u64>,
    ) -> Result<Update, AwsError> {
        let (mut adds, mut conditions) = (Vec::new(), Vec::new());
        let mut update = Update::builder().table_name(&self.table).set_key(Some(schema::usage(owner)));
        if let Some(Charge { size, quota, reserve }) = charge {
            let ceiling = reservation_ceiling(quota, size).map_err(|_| AwsError::QuotaExceeded)?;
            adds.push("charged :size");
            if reserve {
                adds.push("#reserved :size");
                update = update.expression_attribute_names("#reserved", "reserved");
            }
            conditions.push("(attribute_not_exists(charged) OR charged <= :ceiling)");
            update = update
                .expression_attribute_values(":size", n(size))
                .expression_attribute_values(":ceiling", n(ceiling));
        }
        if let Some(cap) = open_cap {
            adds.push("#open :one");
            conditions.push("(attribute_not_exists(#open) OR #open < :cap)");
            update = update
                .expression_attribute_names("#open", "openUploads")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":cap", n(cap));
        }
        Ok(update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .build()?)
    }

    /// The update that gives `charged` bytes (of which `reserved` are only reserved) back to
    /// the owner's usage: an aborted session, a refused upload.
    /// With `place`, an open-upload place goes back too (an aborted session).
    pub(crate) fn release_usage(
        &self,
        owner: &UserId,
        charged: u64,
        reserved: u64,
        place: bool,
    ) -> Result<Update, AwsError> {
        let update = Update::builder();
        let update = match place {
            true => update
                .update_expression("ADD charged :c, #reserved :r, openUploads :minus")
                .expression_attribute_values(":minus", n(-1)),
            false => update.update_expression("ADD charged :c, #reserved :r"),
        };
        Ok(update
            .table_name(&self.table)
            .set_key(Some(schema::usage(owner)))
            .expression_attribute_names("#reserved", "reserved")
            .expression_attribute_values(":c", AttributeValue::N(format!("-{charged}")))
            .expression_attribute_values(":r", AttributeValue::N(format!("-{reserved}")))
            .build()?)
    }

    /// A query of one GSI1 partition (`gsi1pk = partition`), for a caller to finish.
    pub(crate) fn user_index(
        &self,
        partition: impl Into<String>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(GSI_USER)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(partition))
    }

    /// Unsettled PENDING rows whose grant ended before `cutoff`, oldest first, at most `limit`:
    /// uploads that never arrived, or whose event has not been processed.
    pub async fn expired_pending(&self, cutoff: OffsetDateTime, limit: usize) -> Result<Vec<PendingRow>, AwsError> {
        let mut rows = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI_STATUS)
                .key_condition_expression("gsi2pk = :pending")
                .filter_expression("attribute_not_exists(settled) AND pendingUntil < :cutoff")
                .expression_attribute_values(":pending", s(format!("STATUS#{}", FileStatus::Pending)))
                .expression_attribute_values(":cutoff", n(cutoff.unix_timestamp()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Query", e))?;
            for item in out.items() {
                rows.push(parse_pending_row(item)?);
                if rows.len() == limit {
                    return Ok(rows);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(rows),
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
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(settled)")
            .build()?;
        let items = vec![
            TransactWriteItem::builder().update(usage).build(),
            TransactWriteItem::builder().delete(delete).build(),
        ];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
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

    /// The owner's usage counter (zero if they never uploaded).
    pub async fn usage(&self, user: &UserId) -> Result<Usage, AwsError> {
        let item = self.get_item(schema::usage(user)).await?.unwrap_or_default();
        Ok(Usage {
            charged: get_u64(&item, "charged").unwrap_or(0),
            reserved: get_u64(&item, "reserved").unwrap_or(0),
            deleted: get_u64(&item, "deleted").unwrap_or(0),
            open_uploads: get_u64(&item, "openUploads").unwrap_or(0),
        })
    }

    /// One item by its keys, read consistently.
    pub(crate) async fn get_item(&self, key: schema::Item) -> Result<Option<schema::Item>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetItem", e))?;
        Ok(out.item)
    }
}

/// An update's answer: done (`true`), its condition not met (`false`), or an error.
pub(crate) fn conditional<T, R: std::fmt::Debug>(
    out: Result<T, aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>>,
    operation: &'static str,
) -> Result<bool, AwsError> {
    match out {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
        Err(e) => Err(AwsError::from_sdk(operation, e)),
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

/// For each item of a cancelled transaction, whether its condition failed.
pub(crate) fn cancelled_by_condition<R>(
    err: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
) -> Vec<bool> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().iter().map(|r| r.code() == Some("ConditionalCheckFailed")).collect()
        }
        _ => Vec::new(),
    }
}

fn parse_pending_row(item: &HashMap<String, AttributeValue>) -> Result<PendingRow, AwsError> {
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
fn accounted_file_item(r: &FileRecord, charged: u64, reserved: u64) -> HashMap<String, AttributeValue> {
    let mut item = file_item(r);
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
    item
}

/// Puts items, 25 a call (BatchWriteItem), retrying what DynamoDB leaves unprocessed.
pub(crate) async fn batch_put(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
) -> Result<(), AwsError> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let requests = items
        .into_iter()
        .map(|i| {
            PutRequest::builder().set_item(Some(i)).build().map(|p| WriteRequest::builder().put_request(p).build())
        })
        .collect::<Result<Vec<_>, _>>()?;
    batch_write(client, table, requests).await
}

/// Writes (puts or deletes), 25 a call, retrying what DynamoDB leaves unprocessed.
pub(crate) async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
) -> Result<(), AwsError> {
    for chunk in requests.chunks(25) {
        let mut pending = chunk.to_vec();
        let mut delay = std::time::Duration::from_millis(50);
        while !pending.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("BatchWriteItem", e))?;
            pending = out.unprocessed_items().and_then(|m| m.get(table)).cloned().unwrap_or_default();
            if !pending.is_empty() {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
    Ok(())
}

pub(crate) fn get_str<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Result<&'a str, AwsError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| AwsError::Corrupt(format!("missing {name}")))
}

/// A string attribute, if the item has one.
pub(crate) fn opt_str<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// A whole-number attribute, if the item has one.
pub(crate) fn get_u64(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
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
        };
        let item = file_item(&record);
        assert_eq!(item["gsi1pk"], s("USER#u-1"));
        assert_eq!(item["gsi2pk"], s("STATUS#PENDING"));
        assert_eq!(parse_file_item(&item).unwrap(), record);
    }
}
