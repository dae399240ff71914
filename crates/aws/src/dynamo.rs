//! The DynamoDB toolkit every repository of the metadata table uses: attribute values,
//! reading items back, paging, batches, and telling a refused condition from a failure. It
//! knows no item kind; the key names are in [`crate::schema`].

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsError, TransactWriteItemsOutput};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use matbakh_core::migration::SplitMix64;
use matbakh_core::migration::backoff::Backoff;

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

/// A client of the metadata tables: the SDK's, whose retries also take a single-item write
/// DynamoDB refused because a transaction was writing the same item at that moment
/// ([`TransactionConflictRetries`]).
pub(crate) fn client(sdk: &aws_types::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk).retry_classifier(TransactionConflictRetries).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// DynamoDB answers a PutItem, UpdateItem, DeleteItem or BatchWriteItem on an item a transaction
/// is writing with `TransactionConflictException`, an HTTP 400 the SDK takes as final: a token's
/// release after a settle while the next upload's grant held the token, the thumbnailer's READY
/// during the indexer's settle of the same row, each failed at once (and a settled row's token
/// release was not made again). It passes once the transaction is done: a transient error, for
/// the SDK's retries with their backoff. moto runs requests one at a time and never answers so.
#[derive(Debug)]
struct TransactionConflictRetries;

impl aws_smithy_runtime_api::client::retries::classifiers::ClassifyRetry for TransactionConflictRetries {
    fn classify_retry(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::InterceptorContext,
    ) -> aws_smithy_runtime_api::client::retries::classifiers::RetryAction {
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        use aws_sdk_dynamodb::operation::{
            batch_write_item::BatchWriteItemError, delete_item::DeleteItemError, put_item::PutItemError,
            update_item::UpdateItemError,
        };
        use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
        let Some(Err(err)) = ctx.output_or_error() else { return RetryAction::NoActionIndicated };
        let Some(err) = err.as_operation_error() else { return RetryAction::NoActionIndicated };
        let code = None
            .or_else(|| err.downcast_ref::<PutItemError>().map(|e| e.code()))
            .or_else(|| err.downcast_ref::<UpdateItemError>().map(|e| e.code()))
            .or_else(|| err.downcast_ref::<DeleteItemError>().map(|e| e.code()))
            .or_else(|| err.downcast_ref::<BatchWriteItemError>().map(|e| e.code()))
            .flatten();
        match code {
            Some("TransactionConflictException") => RetryAction::transient_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "TransactionConflictRetries"
    }
}

/// How a transaction is sent again while only other requests on its items cancel it: 6 sends in
/// all, waiting 12-25, 25-50, 50-100, 100-200 and 200-400 ms between them (775 ms at most; an
/// indexer that gave up would wait for its message's redelivery, 30 minutes, and in a migration
/// burst up to 20 of them settle one user's files, each updating that user's usage item).
pub(crate) const TRANSACTION_RETRIES: Backoff =
    Backoff { base: Duration::from_millis(25), cap: Duration::from_millis(400), max_attempts: 6 };

/// Sends a transaction, and sends it again (after [`TRANSACTION_RETRIES`]' waits) while it is
/// cancelled only because other requests held its items at that moment (`TransactionConflict`,
/// or throttling): DynamoDB cancels a transaction that touches an item another transaction is
/// writing, and a user's uploads granted in parallel (Uppy asks for several at once) each update
/// the user's usage item, so all but one were cancelled and answered 503. Nothing of a cancelled
/// transaction was written, so sending it again is safe; whatever it answers then (a condition
/// that now fails, say) is the caller's to read, as before.
pub(crate) async fn transact(
    client: &aws_sdk_dynamodb::Client,
    items: Vec<TransactWriteItem>,
) -> Result<TransactWriteItemsOutput, SdkError<TransactWriteItemsError, HttpResponse>> {
    let mut seed = [0u8; 8];
    // Without randomness the waits are the same in every instance, only not jittered.
    let _ = aws_lc_rs::rand::fill(&mut seed);
    let mut rng = SplitMix64::new(u64::from_le_bytes(seed));
    let mut sent = 0;
    loop {
        let out = client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
        sent += 1;
        match out {
            Err(e) if e.as_service_error().is_some_and(crate::error::transaction_may_pass) => {
                match TRANSACTION_RETRIES.delay(sent, &mut rng) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(e),
                }
            }
            out => return out,
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, retry::RetryConfig};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// DynamoDB's answer to a transaction another one held an item of (its second).
    const CONFLICT: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;
    /// ... and to one whose first condition failed while the second item was held.
    const REFUSED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, TransactionConflict]","CancellationReasons":[{"Code":"ConditionalCheckFailed","Message":"The conditional request failed"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;

    /// A single-item write's answer while a transaction holds the item.
    const WRITE_CONFLICT: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionConflictException","message":"Transaction is ongoing for the item"}"#;

    /// A DynamoDB endpoint answering its requests with `answers` in turn (400 each), then 200:
    /// a client of it (which retries nothing itself) and how many requests it read.
    async fn dynamodb(answers: Vec<&'static str>) -> (aws_sdk_dynamodb::Client, Arc<AtomicUsize>) {
        let (endpoint, read) = endpoint(answers).await;
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(Credentials::new("key", "secret", None, None, "test"))
            .endpoint_url(endpoint)
            .http_client(crate::http::sdk_http_client())
            .retry_config(RetryConfig::disabled())
            .build();
        (aws_sdk_dynamodb::Client::from_conf(config), read)
    }

    /// The SDK configuration the functions load (standard retries, 3 attempts), for `endpoint`.
    fn sdk(endpoint: String) -> aws_types::SdkConfig {
        aws_types::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "key", "secret", None, None, "test",
            )))
            .endpoint_url(endpoint)
            .http_client(crate::http::sdk_http_client())
            .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(1)))
            .build()
    }

    /// A DynamoDB endpoint answering its requests with `answers` in turn (400 each), then 200:
    /// its URL and how many requests it read.
    async fn endpoint(answers: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
        let read = Arc::new(AtomicUsize::new(0));
        let count = read.clone();
        let (port, _) = crate::http::tests::server(move |stream, _| {
            let (count, answers) = (count.clone(), answers.clone());
            async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some((name, value)) = line.trim_end().split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    stream.read_exact(&mut vec![0; length]).await.unwrap();
                    let (status, body) = match answers.get(count.fetch_add(1, Ordering::SeqCst)) {
                        Some(answer) => ("400 Bad Request", *answer),
                        None => ("200 OK", "{}"),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
                }
            }
        })
        .await;
        (format!("http://127.0.0.1:{port}"), read)
    }

    fn two_puts() -> Vec<TransactWriteItem> {
        ["a", "b"]
            .map(|pk| {
                let item = HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s("X"))]);
                TransactWriteItem::builder()
                    .put(Put::builder().table_name("t").set_item(Some(item)).build().unwrap())
                    .build()
            })
            .into()
    }

    #[tokio::test]
    async fn a_transaction_cancelled_by_others_on_its_items_is_sent_again_until_it_goes_through() {
        let (client, read) = dynamodb(vec![CONFLICT, CONFLICT]).await;
        transact(&client, two_puts()).await.unwrap();
        assert_eq!(read.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_transaction_whose_condition_failed_is_answered_at_once() {
        let (client, read) = dynamodb(vec![REFUSED]).await;
        let err = transact(&client, two_puts()).await.unwrap_err();
        assert_eq!(cancelled_by_condition(&err), [true, false]);
        assert_eq!(read.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_transaction_held_up_at_every_send_fails_as_retryable_after_its_attempts() {
        let (client, read) = dynamodb(vec![CONFLICT; 10]).await;
        let err = transact(&client, two_puts()).await.unwrap_err();
        assert!(AwsError::from_sdk("TransactWriteItems", err).is_retryable());
        assert_eq!(read.load(Ordering::SeqCst), TRANSACTION_RETRIES.max_attempts as usize);
    }

    async fn update(client: &aws_sdk_dynamodb::Client) -> Result<(), AwsError> {
        client
            .update_item()
            .table_name("t")
            .key("pk", s("TOKEN#x"))
            .key("sk", s("TOKEN"))
            .update_expression("ADD usedBytes :give")
            .expression_attribute_values(":give", n(-5))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("UpdateItem", e))
    }

    #[tokio::test]
    async fn a_write_refused_while_a_transaction_holds_its_item_is_sent_again() {
        let (url, read) = endpoint(vec![WRITE_CONFLICT, WRITE_CONFLICT]).await;
        update(&client(&sdk(url))).await.unwrap();
        assert_eq!(read.load(Ordering::SeqCst), 3);

        // The SDK's own client takes it as final.
        let (url, read) = endpoint(vec![WRITE_CONFLICT]).await;
        assert!(update(&aws_sdk_dynamodb::Client::new(&sdk(url))).await.is_err());
        assert_eq!(read.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn other_refusals_of_a_write_are_answered_at_once() {
        let refused = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;
        let (url, read) = endpoint(vec![refused]).await;
        assert!(update(&client(&sdk(url))).await.is_err());
        assert_eq!(read.load(Ordering::SeqCst), 1);
    }
}
