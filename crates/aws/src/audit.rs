//! Audit records in the metadata table: `AUDIT#{sub}` / `{at}#{random}`, newest last, removed
//! by TTL after the retention. A user's trail is one partition: reading it needs no index.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use matbakh_core::audit::{AuditEntry, AuditRecord};
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::UserId;

use crate::dynamo::{n, opt_str, s};
use crate::error::AwsError;
use crate::schema::{self, SK, audit_pk};
use crate::table::FileTable;

fn record_of(item: &HashMap<String, AttributeValue>) -> AuditRecord {
    let text = |k: &str| opt_str(item, k).map(str::to_owned);
    AuditRecord {
        at: text("at").unwrap_or_default(),
        action: text("action").unwrap_or_default(),
        actor: text("actor").unwrap_or_default(),
        file_id: text("fileId"),
        result: text("result").unwrap_or_default(),
        ip: text("ip").unwrap_or_default(),
        user_agent: text("userAgent").unwrap_or_default(),
    }
}

impl FileTable {
    /// Writes one record, kept for `retention`. `nonce` keeps two records of one millisecond apart.
    pub async fn put_audit(&self, e: &AuditEntry, retention: Duration, nonce: u64) -> Result<(), AwsError> {
        let mut item = schema::item(
            schema::key(audit_pk(&e.user), format!("{}#{nonce:016x}", iso_millis(e.at))),
            [
                ("action".to_owned(), s(e.action.as_str())),
                ("actor".to_owned(), s(&e.actor)),
                ("result".to_owned(), s(&e.result)),
                ("ip".to_owned(), s(&e.ip)),
                ("userAgent".to_owned(), s(&e.user_agent)),
                ("at".to_owned(), s(iso_millis(e.at))),
                ("ttl".to_owned(), n((e.at + retention).unix_timestamp())),
            ],
        );
        if let Some(f) = e.file_id {
            item.insert("fileId".to_owned(), s(f.to_string()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("PutItem", e))
    }

    /// A page of `user`'s trail, newest first, after the record whose sort key is `after`;
    /// with the sort key to continue from while more follow.
    pub async fn audit_page(
        &self,
        user: &UserId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<AuditRecord>, Option<String>), AwsError> {
        let pk = audit_pk(user);
        let start = after.map(|sk| schema::key(pk.clone(), sk));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Query", e))?;
        let next = out.last_evaluated_key().and_then(|k| k.get(SK)).and_then(|v| v.as_s().ok()).cloned();
        Ok((out.items().iter().map(record_of).collect(), next))
    }
}
