//! Multipart upload sessions in the metadata table, whatever mode started them (REST,
//! Uppy's signRequest and Companion modes).
//!
//! A session is `UPLOAD#{uploadId}` / `SESSION`. While open it is in GSI1 under `UPLOADS#{sub}`
//! (the owner's unfinished uploads) and in GSI2 under `SESSIONS#OPEN`, sorted by expiry (the
//! sweeper's), and holds one of the owner's open-upload places (`openUploads` on the usage
//! item, at most `MAX_OPEN_UPLOADS`). Every way a session ends (completed, aborted by its owner,
//! refused at completion, settled by the indexer, swept) is a conditional move out of OPEN that
//! gives the place back in the same transaction, so the count cannot drift.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use matbakh_core::checksum::Integrity;
use matbakh_core::clock::iso_millis;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::multipart::{PartPlan, SessionLimit, SessionState, UploadId, UploadSession};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AwsError;
use crate::dynamo::{cancelled_by_condition, get_str, get_u64, n, query_all, s};
use crate::schema::{self, FileRowUpdate, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, PK};
use crate::table::{FileTable, GSI_STATUS, GSI_USER};

/// The GSI2 partition of open sessions.
const OPEN_SESSIONS: &str = "SESSIONS#OPEN";
/// How long an ended session is kept before DynamoDB's TTL removes it.
const KEEP_ENDED_SESSIONS: time::Duration = time::Duration::days(30);

impl FileTable {
    /// Writes a new open session that reserves no bytes up front (an upload token's), taking
    /// one of the owner's `cap` open-upload places in the same transaction.
    pub async fn put_session(&self, session: &UploadSession, cap: u64) -> Result<(), AwsError> {
        self.open(&session.owner, cap, self.opening(session, cap)?).await
    }

    /// The transaction items that take an open-upload place and write a new open session.
    fn opening(&self, session: &UploadSession, cap: u64) -> Result<Vec<TransactWriteItem>, AwsError> {
        Ok(vec![
            TransactWriteItem::builder().update(self.usage_update(&session.owner, None, Some(cap))?).build(),
            TransactWriteItem::builder().put(self.put_new_item(session_item(session))?).build(),
        ])
    }

    /// Binds an S3 upload the client started from a presigned CreateMultipartUpload (Uppy's
    /// signRequest mode) to the PENDING row of its key: writes the session, takes one of the
    /// owner's open-upload places and records the upload id on the row (so the sweeper aborts
    /// it and settling closes it), in one transaction. A row takes one upload: binding a second
    /// is `AlreadyExists`, as is a row that settled meanwhile.
    pub async fn bind_session(&self, session: &UploadSession, cap: u64) -> Result<(), AwsError> {
        let row = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::file(session.file_id)))
            .file_row_update("SET uploadId = :id")
            .condition_expression(format!(
                "{} AND attribute_not_exists(settled) AND attribute_not_exists(uploadId)",
                schema::ITEM_EXISTS
            ))
            .expression_attribute_values(":id", s(session.upload_id.as_str()))
            .build()?;
        let mut items = self.opening(session, cap)?;
        items.push(TransactWriteItem::builder().update(row).build());
        self.open(&session.owner, cap, items).await
    }

    /// Runs a transaction whose first item takes an open-upload place (see
    /// [`Self::usage_update`]); the others must not find their items as they are.
    pub(crate) async fn open(&self, owner: &UserId, cap: u64, items: Vec<TransactWriteItem>) -> Result<(), AwsError> {
        let Err(err) = crate::dynamo::transact(&self.client, items).await else {
            return Ok(());
        };
        let failed = cancelled_by_condition(&err);
        if failed.iter().skip(1).any(|f| *f) {
            Err(AwsError::AlreadyExists)
        } else if failed.first() == Some(&true) {
            Err(self.usage_refused(owner, Some(cap)).await)
        } else {
            Err(AwsError::from_sdk("TransactWriteItems", err))
        }
    }

    /// The usage update that gives an open-upload place back.
    fn close_place(&self, owner: &UserId) -> Result<Update, AwsError> {
        Ok(Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::usage(owner)))
            .update_expression("ADD openUploads :minus")
            .expression_attribute_values(":minus", n(-1))
            .build()?)
    }

    /// The multipart session, if there is one.
    pub async fn get_session(&self, id: &UploadId) -> Result<Option<UploadSession>, AwsError> {
        self.get_item(schema::session(id)).await?.as_ref().map(parse_session_item).transpose()
    }

    /// The owner's open multipart sessions, newest first.
    pub async fn open_sessions(&self, owner: &UserId) -> Result<Vec<UploadSession>, AwsError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI_USER)
            .key_condition_expression(format!("{} = :pk", schema::GSI1_PK))
            .expression_attribute_values(":pk", s(format!("UPLOADS#{owner}")))
            .scan_index_forward(false);
        query_all(query).await?.iter().map(parse_session_item).collect()
    }

    /// Marks an open session completed (it leaves the owner's list of unfinished uploads).
    /// Answers `false` if it was no longer open.
    pub async fn complete_session(&self, session: &UploadSession, etag: &str) -> Result<bool, AwsError> {
        self.close_session(&session.upload_id, &session.owner, "COMPLETED", Some(etag)).await
    }

    /// Moves an OPEN session to `state` (it leaves the owner's list of unfinished uploads and
    /// the sweeper's index, and gives `owner`'s open-upload place back). Answers `false` if it
    /// was no longer open (or is gone).
    pub(crate) async fn close_session(
        &self,
        id: &UploadId,
        owner: &UserId,
        state: &str,
        etag: Option<&str>,
    ) -> Result<bool, AwsError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::session(id)))
            .condition_expression("#state = :open")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(state))
            .expression_attribute_values(":open", s("OPEN"))
            .expression_attribute_values(":ended", s(schema::ended_sessions(owner)));
        update = match etag {
            Some(etag) => update
                .update_expression(schema::end_session("#state = :to, etag = :etag"))
                .expression_attribute_values(":etag", s(etag)),
            None => update.update_expression(schema::end_session("#state = :to")),
        };
        let items = vec![
            TransactWriteItem::builder().update(update.build()?).build(),
            TransactWriteItem::builder().update(self.close_place(owner)?).build(),
        ];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => Ok(true),
            Err(err) if cancelled_by_condition(&err).first() == Some(&true) => Ok(false),
            Err(err) => Err(AwsError::from_sdk("TransactWriteItems", err)),
        }
    }

    /// Ends an open session the sweeper found expired (its S3 upload already aborted):
    /// COMPLETED if its object `arrived`, else ABORTED. Its row and bytes are the row pass's.
    pub async fn end_expired_session(&self, session: &UploadSession, arrived: bool) -> Result<bool, AwsError> {
        let state = if arrived { "COMPLETED" } else { "ABORTED" };
        self.close_session(&session.upload_id, &session.owner, state, None).await
    }

    /// Open sessions whose time ran out before `cutoff`, soonest first, at most `limit`: for
    /// the sweeper, whatever mode started them.
    pub async fn expired_sessions(&self, cutoff: OffsetDateTime, limit: usize) -> Result<Vec<UploadId>, AwsError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI_STATUS)
            .key_condition_expression(format!("{} = :open AND {} < :cutoff", schema::GSI2_PK, schema::GSI2_SK))
            .expression_attribute_values(":open", s(OPEN_SESSIONS))
            .expression_attribute_values(":cutoff", s(iso_millis(cutoff)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        // One page of at most `limit`: the next run takes the rest.
        let out = query.send().await.map_err(|e| AwsError::from_sdk("Query", e))?;
        out.items()
            .iter()
            .map(|item| {
                let pk = get_str(item, PK)?;
                let id = pk.strip_prefix("UPLOAD#").ok_or_else(|| AwsError::Corrupt(format!("session key {pk}")))?;
                UploadId::parse(id).map_err(|_| AwsError::Corrupt(format!("session key {pk}")))
            })
            .collect()
    }

    /// Aborts an open session: releases its reservation, removes its PENDING file row and
    /// marks it aborted, in one transaction. Answers `false` if it was no longer open.
    pub async fn abort_session(&self, session: &UploadSession) -> Result<bool, AwsError> {
        let size = session.reserved_bytes();
        // An upload token's session reserves nothing until its completion writes the row, and S3
        // may refuse the completion after that: such a row gives back what it holds, the
        // token's share included (review 25: it was deleted and its bytes stayed counted).
        let completion = match size {
            0 => match self.get_item(schema::file(session.file_id)).await? {
                Some(row) if !row.contains_key("settled") => Some(crate::table::parse_pending_row(&row)?),
                _ => None,
            },
            _ => None,
        };
        let (charged, reserved) = completion.as_ref().map_or((size, size), |row| (row.charged, row.reserved));
        let usage = self.release_usage(&session.owner, charged, reserved, true)?;
        // A row whose object arrived and settled is never removed here; and a reservation is
        // given back only with its row (the sweeper may have given both back already and not
        // yet closed the session: released again, the owner's usage would go below what they
        // store). A token's session without a completion's row must still have none.
        let condition = match (size, &completion) {
            (0, None) => schema::ITEM_IS_NEW.to_owned(),
            _ => format!("{} AND attribute_not_exists(settled)", schema::ITEM_EXISTS),
        };
        let row = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(schema::file(session.file_id)))
            .condition_expression(condition)
            .build()?;
        let state = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::session(&session.upload_id)))
            .update_expression(schema::end_session("#state = :aborted"))
            .condition_expression("#state = :open")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":aborted", s("ABORTED"))
            .expression_attribute_values(":ended", s(schema::ended_sessions(&session.owner)))
            .expression_attribute_values(":open", s("OPEN"))
            .build()?;
        let items = vec![
            TransactWriteItem::builder().update(usage).build(),
            TransactWriteItem::builder().delete(row).build(),
            TransactWriteItem::builder().update(state).build(),
        ];
        match crate::dynamo::transact(&self.client, items).await {
            Ok(_) => {}
            Err(err) if cancelled_by_condition(&err).iter().skip(1).any(|f| *f) => return Ok(false),
            Err(err) => return Err(AwsError::from_sdk("TransactWriteItems", err)),
        }
        if let Some(digest) = completion.as_ref().and_then(|row| row.token_digest.as_deref()) {
            self.release_token(digest, reserved).await?;
        }
        Ok(true)
    }
}

pub(crate) fn session_item(x: &UploadSession) -> HashMap<String, AttributeValue> {
    let created = iso_millis(x.created_at);
    let mut item = schema::item(
        schema::session(&x.upload_id),
        [
            ("uploadId".to_owned(), s(x.upload_id.as_str())),
            ("fileId".to_owned(), s(x.file_id.to_string())),
            ("owner".to_owned(), s(x.owner.as_str())),
            ("key".to_owned(), s(x.key.as_str())),
            ("filename".to_owned(), s(x.filename.as_str())),
            ("contentType".to_owned(), s(x.content_type.as_str())),
            ("createdAt".to_owned(), s(created.clone())),
            ("expiresAt".to_owned(), s(iso_millis(x.expires_at))),
            // Long after the sweeper ended it: an open session must never vanish by TTL, or its
            // open-upload place would stay taken.
            ("ttl".to_owned(), n((x.expires_at + KEEP_ENDED_SESSIONS).unix_timestamp())),
            ("state".to_owned(), s(x.state.name())),
        ],
    );
    match x.limit {
        SessionLimit::Planned(plan) => {
            item.insert("size".to_owned(), n(plan.size));
            item.insert("partSize".to_owned(), n(plan.part_size));
            item.insert("partCount".to_owned(), n(plan.part_count));
        }
        SessionLimit::Allowance(max) => {
            item.insert("allowance".to_owned(), n(max));
        }
    }
    if let Some(token) = &x.token {
        item.insert("token".to_owned(), s(token.as_str()));
    }
    if let Some(integrity) = &x.integrity {
        item.insert("checksumAlgorithm".to_owned(), s(integrity.algorithm.as_str()));
        if let Some(full) = &integrity.full_object {
            item.insert("checksum".to_owned(), s(full.value()));
        }
    }
    match &x.state {
        SessionState::Open => {
            item.insert(GSI1_PK.to_owned(), s(format!("UPLOADS#{}", x.owner)));
            item.insert(GSI1_SK.to_owned(), s(format!("{created}#{}", x.upload_id)));
            item.insert(GSI2_PK.to_owned(), s(OPEN_SESSIONS));
            item.insert(GSI2_SK.to_owned(), s(format!("{}#{}", iso_millis(x.expires_at), x.upload_id)));
        }
        SessionState::Completed { etag } => {
            item.insert("etag".to_owned(), s(etag.as_str()));
        }
        SessionState::Aborted => {}
    }
    item
}

fn parse_session_item(item: &HashMap<String, AttributeValue>) -> Result<UploadSession, AwsError> {
    let corrupt = |what: &str| AwsError::Corrupt(format!("session {what}"));
    let time = |name: &str| OffsetDateTime::parse(get_str(item, name)?, &Rfc3339).map_err(|_| corrupt(name));
    let limit = match (get_u64(item, "size"), get_u64(item, "allowance")) {
        (Some(size), None) => {
            let plan = PartPlan::for_size(size).map_err(|_| corrupt("size"))?;
            if Some(plan.part_size) != get_u64(item, "partSize") {
                return Err(corrupt("partSize"));
            }
            SessionLimit::Planned(plan)
        }
        (None, Some(max)) => SessionLimit::Allowance(max),
        _ => return Err(corrupt("size")),
    };
    Ok(UploadSession {
        upload_id: UploadId::parse(get_str(item, "uploadId")?).map_err(|_| corrupt("uploadId"))?,
        file_id: FileId::parse(get_str(item, "fileId")?).map_err(|_| corrupt("fileId"))?,
        owner: UserId::parse(get_str(item, "owner")?).map_err(|_| corrupt("owner"))?,
        key: ObjectKey::from_stored(get_str(item, "key")?.to_owned()),
        filename: DisplayName::from_stored(get_str(item, "filename")?.to_owned()),
        content_type: ContentType::parse(get_str(item, "contentType")?).map_err(|_| corrupt("contentType"))?,
        limit,
        integrity: match item.get("checksumAlgorithm").and_then(|v| v.as_s().ok()) {
            Some(algorithm) => Some(
                Integrity::parse(algorithm, item.get("checksum").and_then(|v| v.as_s().ok()).map(String::as_str))
                    .map_err(|_| corrupt("checksum"))?,
            ),
            None => None,
        },
        token: item.get("token").and_then(|v| v.as_s().ok()).cloned(),
        created_at: time("createdAt")?,
        expires_at: time("expiresAt")?,
        state: match get_str(item, "state")? {
            "OPEN" => SessionState::Open,
            "COMPLETED" => SessionState::Completed { etag: get_str(item, "etag")?.to_owned() },
            "ABORTED" => SessionState::Aborted,
            other => return Err(corrupt(other)),
        },
    })
}
