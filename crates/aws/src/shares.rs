//! Share rows in the metadata table: `SHARE#{id}` / `SHARE`, in the owner's list through GSI1
//! (`SHARES#{sub}` / `{createdAt}#{id}`), removed by TTL a week after they expire.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::shares::{Share, ShareId, ShareRefusal, is_expired};
use time::OffsetDateTime;

use crate::dynamo::{get_u64, n, opt_str, s};
use crate::error::AwsError;
use crate::schema::{self, GSI1_PK, GSI1_SK};
use crate::table::FileTable;

/// How long an expired share stays in its owner's list before TTL removes it.
pub const SHARE_KEPT_AFTER_EXPIRY: time::Duration = time::Duration::days(7);

fn share_item(x: &Share) -> HashMap<String, AttributeValue> {
    let mut item = schema::item(
        schema::share(&x.id),
        [
            ("shareId".to_owned(), s(x.id.to_string())),
            ("fileId".to_owned(), s(x.file_id.to_string())),
            ("owner".to_owned(), s(x.owner.as_str())),
            ("createdAt".to_owned(), s(iso_millis(x.created_at))),
            ("expiresAt".to_owned(), n(x.expires_at.unix_timestamp())),
            ("downloads".to_owned(), n(x.downloads)),
            ("revoked".to_owned(), AttributeValue::Bool(x.revoked)),
            ("ttl".to_owned(), n((x.expires_at + SHARE_KEPT_AFTER_EXPIRY).unix_timestamp())),
            (GSI1_PK.to_owned(), s(format!("SHARES#{}", x.owner))),
            (GSI1_SK.to_owned(), s(format!("{}#{}", iso_millis(x.created_at), x.id))),
        ],
    );
    if let Some(max) = x.max_downloads {
        item.insert("maxDownloads".to_owned(), n(max));
    }
    item
}

fn parse_share(item: &HashMap<String, AttributeValue>) -> Result<Share, AwsError> {
    let corrupt = |what: &str| AwsError::Corrupt(format!("share {what}"));
    let text = |k: &str| opt_str(item, k).ok_or_else(|| corrupt(k));
    let num = |k: &str| get_u64(item, k);
    let created = text("createdAt")?;
    Ok(Share {
        id: ShareId::parse(text("shareId")?).map_err(|_| corrupt("shareId"))?,
        file_id: FileId::parse(text("fileId")?).map_err(|_| corrupt("fileId"))?,
        owner: UserId::parse(text("owner")?).map_err(|_| corrupt("owner"))?,
        created_at: OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .map_err(|_| corrupt("createdAt"))?,
        expires_at: num("expiresAt")
            .and_then(|t| OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok())
            .ok_or_else(|| corrupt("expiresAt"))?,
        max_downloads: num("maxDownloads"),
        downloads: num("downloads").unwrap_or(0),
        revoked: item.get("revoked").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
    })
}

impl FileTable {
    pub async fn put_share(&self, share: &Share) -> Result<(), AwsError> {
        self.put_new(share_item(share)).await
    }

    pub async fn get_share(&self, id: &ShareId) -> Result<Option<Share>, AwsError> {
        self.get_item(schema::share(id)).await?.as_ref().map(parse_share).transpose()
    }

    /// The owner's shares, newest first (at most `limit`).
    pub async fn list_shares(&self, owner: &UserId, limit: i32) -> Result<Vec<Share>, AwsError> {
        let out = self
            .user_index(format!("SHARES#{owner}"))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Query", e))?;
        out.items().iter().map(parse_share).collect()
    }

    /// Revokes `owner`'s share at once and answers it; `None` if it is not theirs (or does not
    /// exist). Revoking twice is fine.
    pub async fn revoke_share(&self, id: &ShareId, owner: &UserId) -> Result<Option<Share>, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::share(id)))
            .update_expression("SET revoked = :t")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => out.attributes().map(parse_share).transpose(),
            Err(e) if e.as_service_error().is_some_and(|x| x.is_conditional_check_failed_exception()) => Ok(None),
            Err(e) => Err(AwsError::from_sdk("UpdateItem", e)),
        }
    }

    /// Counts one download through the share, if it still allows one at `now`; else why not.
    pub async fn use_share(&self, id: &ShareId, now: OffsetDateTime) -> Result<Result<Share, ShareRefusal>, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::share(id)))
            .update_expression("ADD downloads :one")
            .condition_expression(format!(
                "{} AND revoked = :f AND expiresAt > :now \
                 AND (attribute_not_exists(maxDownloads) OR downloads < maxDownloads)",
                schema::ITEM_EXISTS
            ))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => Ok(Ok(parse_share(out.attributes().ok_or_else(|| AwsError::Corrupt("share".into()))?)?)),
            Err(e) if e.as_service_error().is_some_and(|x| x.is_conditional_check_failed_exception()) => {
                // Why: read it (a refusal is rare; the read costs nothing on the happy path).
                Ok(Err(match self.get_share(id).await? {
                    None => ShareRefusal::Unknown,
                    Some(x) if x.revoked => ShareRefusal::Revoked,
                    Some(x) if is_expired(x.expires_at, now) => ShareRefusal::Expired,
                    Some(_) => ShareRefusal::Exhausted,
                }))
            }
            Err(e) => Err(AwsError::from_sdk("UpdateItem", e)),
        }
    }
}
