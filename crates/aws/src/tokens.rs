//! Upload tokens in the metadata table (Uppy's Companion mode): `TOKEN#{digest}` / `TOKEN`,
//! the grant behind a token (owner, allowance, types, expiry) and what it has spent and
//! reserved. Only the token's digest is stored.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::UserId;
use matbakh_core::metadata::FileRecord;
use matbakh_core::quota::reservation_ceiling;
use matbakh_core::tokens::TokenGrant;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dynamo::{cancelled_by_condition, conditional, get_str, get_u64, n, s};
use crate::error::AwsError;
use crate::schema::{self, GSI1_PK, GSI1_SK};
use crate::table::{FileTable, accounted_file_item, label_attributes, parse_labels};

impl FileTable {
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
        item.extend(label_attributes(&grant.labels));
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
            labels: parse_labels(&item)?,
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
        conditional(out, "UpdateItem")
    }

    /// Reserves `record.size` bytes (the most a granted POST policy allows, or what a token's
    /// multipart upload holds when it is completed) against the token's allowance and the
    /// owner's quota and writes the PENDING row, in one transaction; the row names the token, so
    /// settling gives back to both what did not arrive ([`Self::settle_upload`]) and the
    /// sweeper everything if nothing did. `QuotaExceeded` if either has no room, `AlreadyExists`
    /// if the row is there (nothing is written then).
    pub async fn reserve_token_upload(
        &self,
        token: &TokenGrant,
        record: &FileRecord,
        quota: u64,
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
        let usage = self.charge_usage(&record.owner, record.size, quota, true)?;
        let mut item = accounted_file_item(record, record.size, record.size);
        item.insert("tokenDigest".to_owned(), s(&token.digest));
        let row = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(schema::ITEM_IS_NEW)
            .build()?;
        let items = vec![
            TransactWriteItem::builder().update(allowance).build(),
            TransactWriteItem::builder().update(usage).build(),
            TransactWriteItem::builder().put(row).build(),
        ];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => Ok(()),
            Err(err) => {
                let failed = cancelled_by_condition(&err);
                // The row first: a completion asked again finds its own reservation there, and the
                // allowance and quota it took would refuse it a second time.
                if failed.get(2) == Some(&true) {
                    Err(AwsError::AlreadyExists)
                } else if failed.get(1) == Some(&true) {
                    Err(self.usage_refused(&record.owner, None).await)
                } else if failed.first() == Some(&true) {
                    Err(AwsError::QuotaExceeded)
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
            .condition_expression(format!("{} AND usedBytes >= :bytes", schema::ITEM_EXISTS))
            .expression_attribute_values(":give", AttributeValue::N(format!("-{bytes}")))
            .expression_attribute_values(":bytes", n(bytes))
            .send()
            .await;
        conditional(out, "UpdateItem").map(|_| ())
    }
}
