//! GDPR erase, the table's part (`matbakh_app::erase` is the whole): every item of one user.
//! Deleting what is already gone is no error, so a second erase finds nothing left.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use futures_util::{StreamExt, TryStreamExt};
use matbakh_app::erase::ERASE_IN_FLIGHT;
use matbakh_core::ids::{FileId, UserId};

use crate::dynamo::{opt_str, query_all, s};
use crate::error::AwsError;
use crate::schema::{self, PK, SK};
use crate::table::{FileTable, GSI_USER, file_pk};

type Key = (String, String);

impl FileTable {
    /// The ids of every file row of `owner`, whatever its status.
    pub async fn all_file_ids(&self, owner: &UserId) -> Result<Vec<FileId>, AwsError> {
        let items = self.items_where(Some(GSI_USER), schema::GSI1_PK, &format!("USER#{owner}")).await?;
        Ok(items
            .iter()
            .filter_map(|i| opt_str(i, PK)?.strip_prefix("FILE#"))
            .filter_map(|id| FileId::parse(id).ok())
            .collect())
    }

    /// Deletes every item of `files` (each file's row with its tag and word items, and the
    /// upload session a multipart row names). Answers how many. The files are read
    /// [`ERASE_IN_FLIGHT`] at a time: an account of thousands of files fits in the erase's time.
    pub async fn erase_file_items(&self, files: &[FileId]) -> Result<usize, AwsError> {
        let reads = futures_util::stream::iter(files.iter().copied())
            .map(|id| async move { self.items_where(None, PK, &file_pk(id)).await })
            .buffer_unordered(ERASE_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?;
        let mut keys: Vec<Key> = Vec::new();
        let mut sessions: Vec<String> = Vec::new();
        for item in reads.iter().flatten() {
            keys.extend(key_of(item));
            sessions.extend(opt_str(item, "uploadId").map(str::to_owned));
        }
        keys.extend(self.existing_sessions(sessions).await?);
        self.delete_keys(keys).await
    }

    /// Deletes a file's tag and word items, not its row (a migration's rollback retires the row
    /// with its usage: [`FileTable::retire_migrated`]). Answers how many.
    pub(crate) async fn delete_file_extras(&self, id: FileId) -> Result<usize, AwsError> {
        let items = self.items_where(None, PK, &file_pk(id)).await?;
        self.delete_keys(items.iter().filter_map(key_of).filter(|(_, sk)| sk != schema::FILE).collect()).await
    }

    /// Deletes every other item that holds `owner`'s data (their files' are
    /// [`Self::erase_file_items`]'): the sessions of `uploads` (those the bucket still had
    /// open), shares, open sessions, tokens, exports, legacy path mappings, request budgets'
    /// counters (their TTL may take days), audit trail. Answers how many. Not the usage item:
    /// the erase closes it first and reopens (deletes) it last ([`FileTable::close_account`]).
    pub async fn erase_items(&self, owner: &UserId, uploads: &[String]) -> Result<usize, AwsError> {
        let mut keys = self.existing_sessions(uploads.to_vec()).await?;
        let partitions = [
            format!("SHARES#{owner}"),
            format!("UPLOADS#{owner}"),
            schema::ended_sessions(owner),
            format!("TOKENS#{owner}"),
            format!("EXPORTS#{owner}"),
            format!("LEGACIES#{owner}"),
        ];
        for partition in partitions {
            keys.extend(self.items_where(Some(GSI_USER), schema::GSI1_PK, &partition).await?.iter().filter_map(key_of));
        }
        keys.extend(self.items_where(None, PK, &format!("AUDIT#{owner}")).await?.iter().filter_map(key_of));
        let counters = self.items_where(None, PK, &schema::user_pk(owner)).await?;
        keys.extend(counters.iter().filter_map(key_of).filter(|(_, sk)| sk != "USAGE"));
        self.delete_keys(keys).await
    }

    /// The keys of the upload sessions among `uploads` the table still holds.
    async fn existing_sessions(&self, mut uploads: Vec<String>) -> Result<Vec<Key>, AwsError> {
        uploads.sort();
        uploads.dedup();
        let found = futures_util::stream::iter(uploads)
            .map(|upload| async move {
                let key = (format!("UPLOAD#{upload}"), "SESSION".to_owned());
                Ok::<_, AwsError>(self.get_item(schema::key(&key.0, &key.1)).await?.map(|_| key))
            })
            .buffer_unordered(ERASE_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn delete_keys(&self, mut keys: Vec<Key>) -> Result<usize, AwsError> {
        keys.sort();
        keys.dedup();
        let requests = keys
            .iter()
            .map(|(pk, sk)| {
                DeleteRequest::builder()
                    .set_key(Some(schema::key(pk, sk)))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::dynamo::batch_write(&self.client, &self.table, requests).await?;
        Ok(keys.len())
    }

    /// The legacy paths of `owner`'s migrated files (their mappings).
    pub async fn legacy_paths(&self, owner: &UserId) -> Result<Vec<String>, AwsError> {
        let items = self.items_where(Some(GSI_USER), schema::GSI1_PK, &format!("LEGACIES#{owner}")).await?;
        Ok(items.iter().filter_map(|i| opt_str(i, "legacyPath").map(str::to_owned)).collect())
    }

    /// Marks the user whose keyed pseudonym is `stand_in` as erased, and their legacy paths by
    /// their marks (`core::audit::erased_path`), at `at`; kept for good: a migration run of any
    /// later day and the legacy redirector check them. Names nobody.
    pub async fn mark_erased(&self, stand_in: &UserId, path_marks: &[String], at: &str) -> Result<(), AwsError> {
        let keys = std::iter::once(schema::erased(stand_in)).chain(path_marks.iter().map(|m| schema::erased_path(m)));
        self.put_marks(keys, at).await
    }

    /// Marks legacy paths as an erased user's by their marks (`core::audit::erased_path`): those
    /// a migration finds of a user erased before (their files never copied, or copied before
    /// the erase and found since), so the redirector answers `410` for them too.
    pub async fn mark_paths_erased(&self, path_marks: &[String], at: &str) -> Result<(), AwsError> {
        // One write a path (a batch refuses the same key twice).
        let unique: std::collections::BTreeSet<&String> = path_marks.iter().collect();
        self.put_marks(unique.into_iter().map(|m| schema::erased_path(m)), at).await
    }

    async fn put_marks(
        &self,
        keys: impl Iterator<Item = HashMap<String, AttributeValue>>,
        at: &str,
    ) -> Result<(), AwsError> {
        let requests = keys
            .map(|key| {
                PutRequest::builder()
                    .set_item(Some(schema::item(key, [("erasedAt".to_owned(), s(at))])))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::dynamo::batch_write(&self.client, &self.table, requests).await
    }

    /// Whether the user whose keyed pseudonym is `stand_in` erased their account.
    pub async fn was_erased(&self, stand_in: &UserId) -> Result<bool, AwsError> {
        Ok(self.get_item(schema::erased(stand_in)).await?.is_some())
    }

    /// Whether the legacy path whose mark is `mark` was an erased user's.
    pub async fn legacy_path_erased(&self, mark: &str) -> Result<bool, AwsError> {
        Ok(self.get_item(schema::erased_path(mark)).await?.is_some())
    }

    /// Every item whose `attr` is `value` (in the table or an index), with its keys, the upload
    /// session it names and the legacy path it maps, if any.
    async fn items_where(
        &self,
        index: Option<&str>,
        attr: &str,
        value: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, AwsError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression("#a = :v")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":v", s(value))
            .projection_expression("pk, sk, uploadId, legacyPath");
        query_all(query).await
    }
}

fn key_of(item: &HashMap<String, AttributeValue>) -> Option<Key> {
    Some((opt_str(item, PK)?.to_owned(), opt_str(item, SK)?.to_owned()))
}
