//! GDPR export: the job rows (`EXPORT#{id}` / `EXPORT`, in the owner's list through GSI1
//! `EXPORTS#{sub}`, removed by TTL a week after they were made), the item naming each owner's
//! newest (`USER#{sub}` / `EXPORT`, as long-lived), and a writer that streams an
//! object of unknown length into S3 as a multipart upload, one part buffer at a time.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use matbakh_core::clock::iso_millis;
use matbakh_core::exports::{ExportJob, ExportState};
use matbakh_core::ids::UserId;
use time::OffsetDateTime;

use crate::dynamo::{cancelled_by_condition, get_u64, n, opt_str, s};
use crate::error::AwsError;
use crate::schema::{self, GSI1_PK, GSI1_SK};
use crate::table::FileTable;

/// Bytes a part of a streamed object holds (the last one fewer).
pub const EXPORT_PART_BYTES: usize = 8 * 1024 * 1024;
/// How long an export (its row and, by the bucket's lifecycle, its archive) is kept.
pub const EXPORT_KEPT: time::Duration = time::Duration::days(7);

pub(crate) fn parse_job(item: &HashMap<String, AttributeValue>) -> Result<ExportJob, AwsError> {
    let corrupt = |w: &str| AwsError::Corrupt(format!("export {w}"));
    let text = |k: &str| opt_str(item, k).map(str::to_owned);
    let num = |k: &str| get_u64(item, k);
    Ok(ExportJob {
        id: text("exportId").ok_or_else(|| corrupt("exportId"))?,
        owner: UserId::parse(&text("owner").ok_or_else(|| corrupt("owner"))?).map_err(|_| corrupt("owner"))?,
        state: text("state").and_then(|s| ExportState::parse(&s)).ok_or_else(|| corrupt("state"))?,
        created_at: text("createdAt")
            .and_then(|t| OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok())
            .ok_or_else(|| corrupt("createdAt"))?,
        key: text("archiveKey"),
        size: num("archiveSize"),
        files: num("files"),
    })
}

impl FileTable {
    /// Stores `job` as its owner's newest export, unless their newest is no longer `replacing`
    /// (what [`Self::latest_export`] answered; `None`: no export): of two requests that read the
    /// same newest, one makes the new job and the other finds [`AwsError::ConditionFailed`]
    /// (both made one before: both were built). An id taken already is
    /// [`AwsError::AlreadyExists`]; an account an erase holds closed takes none
    /// ([`AwsError::AccountErased`]: the job and its audit record were written again after the
    /// erase removed the user's items, and an archive of the files being erased built). The
    /// owner's newest-export item lives as long as its job (an expired one is replaced whatever
    /// it names); an erase removes it with the user's items.
    pub async fn put_export(&self, job: &ExportJob, replacing: Option<&str>) -> Result<(), AwsError> {
        let ttl = (job.created_at + EXPORT_KEPT).unix_timestamp();
        let newest = schema::item(
            schema::newest_export(&job.owner),
            [("exportId".to_owned(), s(&job.id)), ("ttl".to_owned(), n(ttl))],
        );
        let newest = Put::builder()
            .table_name(&self.table)
            .set_item(Some(newest))
            .condition_expression("attribute_not_exists(pk) OR exportId = :seen OR #ttl < :now")
            // `ttl` is one of DynamoDB's reserved words.
            .expression_attribute_names("#ttl", "ttl")
            // No export id is `-`: without one read, only a missing or expired item is replaced.
            .expression_attribute_values(":seen", s(replacing.unwrap_or("-")))
            .expression_attribute_values(":now", n(job.created_at.unix_timestamp()))
            .build()?;
        let open = self.account_not_closed(&job.owner)?;
        let items = vec![
            TransactWriteItem::builder().put(self.put_new_item(Self::export_item(job, ttl))?).build(),
            TransactWriteItem::builder().put(newest).build(),
            TransactWriteItem::builder().condition_check(open).build(),
        ];
        // Two requests writing the newest-export item at the same moment cancel each other
        // (`TransactionConflict`): sent again, the later finds the other's job and its condition
        // answers (a review: it answered 503).
        let Err(err) = crate::dynamo::transact(&self.client, items).await else { return Ok(()) };
        match cancelled_by_condition(&err).as_slice() {
            [true, ..] => Err(AwsError::AlreadyExists),
            // First: a closed account is the answer whatever else failed with it.
            [_, _, true] => Err(AwsError::AccountErased),
            [_, true, _] => Err(AwsError::ConditionFailed),
            _ => Err(AwsError::from_sdk("TransactWriteItems", err)),
        }
    }

    fn export_item(job: &ExportJob, ttl: i64) -> schema::Item {
        schema::item(
            schema::export(&job.id),
            [
                ("exportId".to_owned(), s(&job.id)),
                ("owner".to_owned(), s(job.owner.as_str())),
                ("state".to_owned(), s(job.state.as_str())),
                ("createdAt".to_owned(), s(iso_millis(job.created_at))),
                ("ttl".to_owned(), n(ttl)),
                (GSI1_PK.to_owned(), s(format!("EXPORTS#{}", job.owner))),
                (GSI1_SK.to_owned(), s(format!("{}#{}", iso_millis(job.created_at), job.id))),
            ],
        )
    }

    pub async fn get_export(&self, id: &str) -> Result<Option<ExportJob>, AwsError> {
        self.get_item(schema::export(id)).await?.as_ref().map(parse_job).transpose()
    }

    /// The owner's newest export, if any: the one their newest-export item names, read
    /// consistently (a job made a moment ago may not be in GSI1 yet); the index for owners
    /// whose newest was made before that item was kept.
    pub async fn latest_export(&self, owner: &UserId) -> Result<Option<ExportJob>, AwsError> {
        let named = self.get_item(schema::newest_export(owner)).await?;
        if let Some(id) = named.as_ref().and_then(|item| opt_str(item, "exportId")) {
            if let Some(job) = self.get_item(schema::export(id)).await? {
                return parse_job(&job).map(Some);
            }
            // It names a job that is gone before its time (deleted by hand, a table restored):
            // it goes too, or no new export could replace it until it expired (a review: every
            // request answered 409 busy for up to EXPORT_KEPT).
            let out = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(schema::newest_export(owner)))
                .condition_expression("exportId = :gone")
                .expression_attribute_values(":gone", s(id))
                .send()
                .await;
            crate::dynamo::conditional(out, "DeleteItem")?;
        }
        let out = self
            .user_index(format!("EXPORTS#{owner}"))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Query", e))?;
        out.items().first().map(parse_job).transpose()
    }

    /// Moves a job to `state` (with the archive's facts once READY).
    pub async fn set_export(
        &self,
        id: &str,
        state: ExportState,
        archive: Option<(&str, u64, u64)>,
    ) -> Result<(), AwsError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::export(id)))
            .condition_expression(schema::ITEM_EXISTS)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state.as_str()));
        let expression = match archive {
            Some((key, size, files)) => {
                update = update
                    .expression_attribute_values(":key", s(key))
                    .expression_attribute_values(":size", n(size))
                    .expression_attribute_values(":files", n(files));
                "SET #state = :state, archiveKey = :key, archiveSize = :size, files = :files"
            }
            None => "SET #state = :state",
        };
        update.update_expression(expression).send().await.map(|_| ()).map_err(|e| AwsError::from_sdk("UpdateItem", e))
    }
}

/// An object written as a stream of bytes of unknown total length (multipart upload, parts of
/// [`EXPORT_PART_BYTES`]). Memory: one part. Dropped without [`StreamedObject::finish`], the
/// upload is left for [`StreamedObject::abort`] or the bucket's lifecycle rule.
pub struct StreamedObject {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<CompletedPart>,
    written: u64,
}

impl StreamedObject {
    pub async fn start(
        store: &crate::S3Store,
        key: &matbakh_core::ids::ObjectKey,
        content_type: &str,
    ) -> Result<Self, AwsError> {
        let out = store
            .client()
            .create_multipart_upload()
            .bucket(store.bucket())
            .key(key.as_str())
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateMultipartUpload", e))?;
        Ok(StreamedObject {
            client: store.client().clone(),
            bucket: store.bucket().to_owned(),
            key: key.to_string(),
            upload_id: out.upload_id().unwrap_or_default().to_owned(),
            buffer: Vec::with_capacity(EXPORT_PART_BYTES),
            parts: Vec::new(),
            written: 0,
        })
    }

    /// Bytes written so far (the offset of the next byte).
    pub fn written(&self) -> u64 {
        self.written
    }

    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), AwsError> {
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = EXPORT_PART_BYTES - self.buffer.len();
            let take = room.min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == EXPORT_PART_BYTES {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<(), AwsError> {
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(EXPORT_PART_BYTES));
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UploadPart", e))?;
        self.parts.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag().map(str::to_owned)).build());
        Ok(())
    }

    /// Sends the last part and completes the object; answers its size.
    pub async fn finish(mut self) -> Result<u64, AwsError> {
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.send_part().await?;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(self.parts)).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CompleteMultipartUpload", e))?;
        Ok(self.written)
    }

    pub async fn abort(self) -> Result<(), AwsError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("AbortMultipartUpload", e))
    }
}
