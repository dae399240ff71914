//! DynamoDB: the metadata table (one table, overloaded keys).
//!
//! | item          | pk              | sk        | GSI1 (user's files, newest first)   | GSI2 (by status)        |
//! |---------------|-----------------|-----------|-------------------------------------|-------------------------|
//! | file          | `FILE#{fileId}` | `FILE`    | `USER#{sub}` / `{createdAt}#{id}`   | `STATUS#{s}` / same     |
//! | usage counter | `USER#{sub}`    | `USAGE`   |                                     |                         |
//!
//! The usage counter holds `charged` (stored + reserved bytes), `reserved` and `files`.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::{FileId, ObjectKey, Sha256, UserId};
use matbakh_core::metadata::FileRecord;
use matbakh_core::names::DisplayName;
use matbakh_core::quota::reservation_ceiling;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::AwsError;

/// A user's storage account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Stored plus reserved bytes: what the quota is checked against.
    pub charged: u64,
    /// Bytes reserved by uploads that have not arrived yet.
    pub reserved: u64,
}

#[derive(Clone, Debug)]
pub struct FileTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn file_pk(id: FileId) -> String {
    format!("FILE#{id}")
}

fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

impl FileTable {
    pub fn new(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        FileTable { client: aws_sdk_dynamodb::Client::new(sdk), table: table.into() }
    }

    /// Reserves `record.size` bytes of the owner's quota and writes the PENDING row, in one
    /// transaction: either both happen or neither.
    pub async fn reserve_upload(&self, record: &FileRecord, quota: u64) -> Result<(), AwsError> {
        let ceiling = reservation_ceiling(quota, record.size).map_err(|_| AwsError::QuotaExceeded)?;
        let usage = Update::builder()
            .table_name(&self.table)
            .key("pk", s(user_pk(&record.owner)))
            .key("sk", s("USAGE"))
            .update_expression("ADD charged :size, reserved :size")
            .condition_expression("attribute_not_exists(charged) OR charged <= :ceiling")
            .expression_attribute_values(":size", n(record.size))
            .expression_attribute_values(":ceiling", n(ceiling))
            .build()
            .map_err(|e| AwsError::Config(e.to_string()))?;
        let row = Put::builder()
            .table_name(&self.table)
            .set_item(Some(file_item(record)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| AwsError::Config(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(usage).build())
            .transact_items(TransactWriteItem::builder().put(row).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let reasons: Vec<Option<String>> = err
                    .as_service_error()
                    .and_then(|e| match e {
                        TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
                        _ => None,
                    })
                    .map(|e| e.cancellation_reasons().iter().map(|r| r.code().map(str::to_owned)).collect())
                    .unwrap_or_default();
                let failed = |i: usize| reasons.get(i).and_then(|c| c.as_deref()) == Some("ConditionalCheckFailed");
                if failed(0) {
                    Err(AwsError::QuotaExceeded)
                } else if failed(1) {
                    Err(AwsError::AlreadyExists)
                } else {
                    Err(AwsError::from_sdk("TransactWriteItems", err))
                }
            }
        }
    }

    /// The file row, if there is one.
    pub async fn get_file(&self, id: FileId) -> Result<Option<FileRecord>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(file_pk(id)))
            .key("sk", s("FILE"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetItem", e))?;
        out.item.as_ref().map(parse_file_item).transpose()
    }

    /// The owner's usage counter (zero if they never uploaded).
    pub async fn usage(&self, user: &UserId) -> Result<Usage, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(user_pk(user)))
            .key("sk", s("USAGE"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetItem", e))?;
        let item = out.item.unwrap_or_default();
        Ok(Usage { charged: get_u64(&item, "charged").unwrap_or(0), reserved: get_u64(&item, "reserved").unwrap_or(0) })
    }
}

fn file_item(r: &FileRecord) -> HashMap<String, AttributeValue> {
    let created = iso_millis(r.created_at);
    let sort = format!("{created}#{}", r.file_id);
    let mut item = HashMap::from([
        ("pk".to_owned(), s(file_pk(r.file_id))),
        ("sk".to_owned(), s("FILE")),
        ("fileId".to_owned(), s(r.file_id.to_string())),
        ("owner".to_owned(), s(r.owner.as_str())),
        ("key".to_owned(), s(r.key.as_str())),
        ("filename".to_owned(), s(r.filename.as_str())),
        ("contentType".to_owned(), s(r.content_type.as_str())),
        ("size".to_owned(), n(r.size)),
        ("status".to_owned(), s(r.status.as_str())),
        ("createdAt".to_owned(), s(created)),
        ("gsi1pk".to_owned(), s(user_pk(&r.owner))),
        ("gsi1sk".to_owned(), s(sort.clone())),
        ("gsi2pk".to_owned(), s(format!("STATUS#{}", r.status))),
        ("gsi2sk".to_owned(), s(sort)),
    ]);
    if let Some(sha) = r.sha256 {
        item.insert("sha256".to_owned(), s(sha.to_hex()));
    }
    if let Some(exp) = r.expires_at {
        item.insert("ttl".to_owned(), n(exp.unix_timestamp()));
    }
    item
}

fn get_str<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Result<&'a str, AwsError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| AwsError::Corrupt(format!("missing {name}")))
}

fn get_u64(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn parse_file_item(item: &HashMap<String, AttributeValue>) -> Result<FileRecord, AwsError> {
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
        expires_at: get_u64(item, "ttl").and_then(|t| OffsetDateTime::from_unix_timestamp(t as i64).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use matbakh_core::metadata::FileStatus;
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
        };
        let item = file_item(&record);
        assert_eq!(item["gsi1pk"], s("USER#u-1"));
        assert_eq!(item["gsi2pk"], s("STATUS#PENDING"));
        assert_eq!(parse_file_item(&item).unwrap(), record);
    }
}
