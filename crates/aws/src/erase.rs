//! GDPR erase: everything of one user, in the bucket and the metadata table. Every step is
//! idempotent (deleting what is already gone is no error), so a failed erase is safe to retry
//! and a second one finds nothing left.
//!
//! Order: objects first (their keys come from the file rows), then the rows, the usage counter
//! and the audit trail last; the erase itself is then recorded under a one-way pseudonym.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use matbakh_core::ids::{FileId, UserId};

use crate::error::AwsError;
use crate::table::{FileTable, GSI_USER, s};

/// What an erase removed (a second erase reports zeros).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Object versions and delete markers of the user's originals.
    pub object_versions: usize,
    /// Variants (every version), transform results and quarantined copies.
    pub derived_objects: usize,
    pub uploads_aborted: usize,
    pub files: usize,
    /// Every item of the table that held the user's data (files with their tags and search
    /// words, shares, upload sessions and tokens, the usage counter, the audit trail).
    pub items: usize,
}

type Key = (String, String);

impl FileTable {
    /// The ids of every file row of `owner`, whatever its status.
    pub async fn all_file_ids(&self, owner: &UserId) -> Result<Vec<FileId>, AwsError> {
        let keys = self.keys_where(Some(GSI_USER), "gsi1pk", &format!("USER#{owner}")).await?;
        Ok(keys.iter().filter_map(|(pk, _)| pk.strip_prefix("FILE#")).filter_map(|id| FileId::parse(id).ok()).collect())
    }

    /// The open multipart uploads of `owner` (key, upload id) that sessions know of.
    pub async fn upload_ids_of(&self, owner: &UserId, files: &[FileId]) -> Result<Vec<(String, String)>, AwsError> {
        let mut out = Vec::new();
        for s in self.open_sessions(owner).await? {
            out.push((s.key.as_str().to_owned(), s.upload_id.as_str().to_owned()));
        }
        for id in files {
            if let Some(item) = self.get_item(format!("FILE#{id}"), "FILE").await?
                && let (Some(key), Some(upload)) = (text(&item, "key"), text(&item, "uploadId"))
            {
                out.push((key, upload));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Deletes every item that holds `owner`'s data (their files' items, the sessions of
    /// `uploads`, shares, open sessions, tokens, usage, audit trail); answers how many.
    pub async fn erase_items(&self, owner: &UserId, files: &[FileId], uploads: &[String]) -> Result<usize, AwsError> {
        let mut keys: Vec<Key> = Vec::new();
        for id in files {
            // The file row and its tag and word items share its pk.
            keys.extend(self.keys_where(None, "pk", &format!("FILE#{id}")).await?);
        }
        for upload in uploads {
            if self.get_item(format!("UPLOAD#{upload}"), "SESSION").await?.is_some() {
                keys.push((format!("UPLOAD#{upload}"), "SESSION".into()));
            }
        }
        let partitions = [
            format!("SHARES#{owner}"),
            format!("UPLOADS#{owner}"),
            format!("TOKENS#{owner}"),
            format!("EXPORTS#{owner}"),
        ];
        for partition in partitions {
            keys.extend(self.keys_where(Some(GSI_USER), "gsi1pk", &partition).await?);
        }
        if self.get_item(format!("USER#{owner}"), "USAGE").await?.is_some() {
            keys.push((format!("USER#{owner}"), "USAGE".into()));
        }
        keys.extend(self.keys_where(None, "pk", &format!("AUDIT#{owner}")).await?);
        keys.sort();
        keys.dedup();
        let requests = keys
            .iter()
            .map(|(pk, sk)| {
                DeleteRequest::builder()
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::table::batch_write(&self.client, &self.table, requests).await?;
        Ok(keys.len())
    }

    /// The table keys (pk, sk) of every item whose `attr` is `value`, in the table or an index.
    async fn keys_where(&self, index: Option<&str>, attr: &str, value: &str) -> Result<Vec<Key>, AwsError> {
        let (mut keys, mut start) = (Vec::new(), None);
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression("#a = :v")
                .expression_attribute_names("#a", attr)
                .expression_attribute_values(":v", s(value))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("Query", e))?;
            keys.extend(out.items().iter().filter_map(|i| Some((text(i, "pk")?, text(i, "sk")?))));
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(keys),
            }
        }
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}
