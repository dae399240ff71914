//! The DynamoDB toolkit every repository of the metadata table uses: attribute values,
//! reading items back, paging, batches, and telling a refused condition from a failure. It
//! knows no item kind; the key names are in [`crate::schema`].

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put};

use crate::error::AwsError;
use crate::schema::{self, GSI_USER};
use crate::table::FileTable;

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

/// A conditional write's answer (an update, a put, a delete): done (`true`), its condition not
/// met (`false`), or an error.
pub(crate) fn conditional<T, E, R>(
    out: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    operation: &'static str,
) -> Result<bool, AwsError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match out {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(AwsError::from_sdk(operation, e)),
    }
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

impl FileTable {
    /// A transaction's put of an item that must not exist yet.
    pub(crate) fn put_new_item(&self, item: schema::Item) -> Result<Put, AwsError> {
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(schema::ITEM_IS_NEW)
            .build()?)
    }

    /// Writes an item that must not exist yet (`AlreadyExists` if it does).
    pub(crate) async fn put_new(&self, item: HashMap<String, AttributeValue>) -> Result<(), AwsError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(schema::ITEM_IS_NEW)
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

    /// A query of one GSI1 partition (`gsi1pk = partition`), for a caller to finish.
    pub(crate) fn user_index(
        &self,
        partition: impl Into<String>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(GSI_USER)
            .key_condition_expression(format!("{} = :p", schema::GSI1_PK))
            .expression_attribute_values(":p", s(partition))
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
