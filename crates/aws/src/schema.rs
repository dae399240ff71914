//! The metadata table's key schema: the one place its key and index attribute names, its
//! indexes and its item partitions are spelled (`template.yaml` declares the same names).
//!
//! | item           | pk                   | sk                     | GSI1 (a user's items, newest first) | GSI2 (by status / expiry)            |
//! |----------------|----------------------|------------------------|-------------------------------------|--------------------------------------|
//! | file           | `FILE#{fileId}`      | `FILE`                 | `USER#{sub}` / `{createdAt}#{id}`   | `STATUS#{s}` / same                  |
//! | tag, word      | `FILE#{fileId}`      | `TAG#{t}`, `WORD#{w}`  | `TAG#{sub}#{t}`, `WORDS#{sub}`      |                                      |
//! | usage counter  | `USER#{sub}`         | `USAGE`                |                                     |                                      |
//! | request budget | `USER#{sub}`         | `BUDGET#{kind}#{start}`|                                     |                                      |
//! | upload session | `UPLOAD#{uploadId}`  | `SESSION`              | `UPLOADS#{sub}` while open          | `SESSIONS#OPEN` / `{expiresAt}#{id}` |
//! | upload token   | `TOKEN#{digest}`     | `TOKEN`                |                                     |                                      |
//! | share link     | `SHARE#{shareId}`    | `SHARE`                | `SHARES#{sub}`                      |                                      |
//! | export job     | `EXPORT#{exportId}`  | `EXPORT`               | `EXPORTS#{sub}`                     |                                      |
//! | newest export  | `USER#{sub}`         | `EXPORT`               |                                     |                                      |
//! | audit record   | `AUDIT#{sub}`        | `{at}#{nonce}`         |                                     |                                      |
//! | legacy mapping | `LEGACY#{path}`      | `LEGACY`               | `LEGACIES#{sub}` / `{fileId}`       |                                      |
//! | erased user    | `ERASED#{pseudonym}` | `ERASED`               |                                     |                                      |
//! | erased path    | `ERASED#{mark}`      | `LEGACY`               |                                     |                                      |
//!
//! The usage counter holds `charged` (stored + reserved bytes), `reserved`, `deleted`,
//! `openUploads` and `files`; while an erase holds the account closed, `closedAt` (and no
//! counters: `usage::FileTable::close_account`). Sessions, tokens, shares, request budgets and audit records expire by DynamoDB TTL
//! (`ttl`); an unsettled file row carries `pendingUntil` instead, which only the sweeper acts on.
//! The migration ledger's table uses the same `pk`/`sk` names (see `ledger`).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::multipart::UploadId;
use matbakh_core::shares::ShareId;

/// The partition key and sort key of every item, in both tables.
pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
/// The keys of the user index (GSI1) and of the status index (GSI2).
pub(crate) const GSI1_PK: &str = "gsi1pk";
pub(crate) const GSI1_SK: &str = "gsi1sk";
pub(crate) const GSI2_PK: &str = "gsi2pk";
pub(crate) const GSI2_SK: &str = "gsi2sk";
/// A condition that the item is there (spelled with [`PK`]).
pub(crate) const ITEM_EXISTS: &str = "attribute_exists(pk)";
/// A condition that no such item is there yet.
pub(crate) const ITEM_IS_NEW: &str = "attribute_not_exists(pk)";
/// An update's assignment of GSI2's partition from `:g` (an item changing status).
pub(crate) const SET_GSI2_PK: &str = "gsi2pk = :g";
/// The update that ends a session with `set` (`#state = :to`, ...): it leaves the open ones'
/// indexes but stays in GSI1 under its owner's [`ended_sessions`] (`:ended`) until its TTL. It
/// names the owner, key and file name, and an erase finds it there (security review 20: it stayed
/// up to 30 days after the erase).
pub(crate) fn end_session(set: &str) -> String {
    format!("SET {set}, gsi1pk = :ended REMOVE gsi2pk, gsi2sk")
}

/// The GSI1 partition of `owner`'s ended upload sessions.
pub(crate) fn ended_sessions(owner: &impl std::fmt::Display) -> String {
    format!("ENDED_UPLOADS#{owner}")
}

/// A file row's revision (`FileDetails::revision`): set when the row is written new and raised
/// by one by every later write of it, so the live messages and webhooks of its changes, which
/// can arrive out of order (a retried delivery), say which is newer. (An owner's change is
/// checked against the owner's changes, `EDITS`, not against it.)
pub(crate) const REVISION: &str = "rev";

/// How many changes its owner made to a file row (`FileDetails::edits`): 0 on a new row.
pub(crate) const EDITS: &str = "edits";

/// What a new file row's revision starts at: the writer's clock in milliseconds. A row removed
/// and written anew under the same id (a rolled back migration run again) then continues above
/// the removed one's (its changes came more than a millisecond apart each), never back at 0.
pub(crate) fn first_revision() -> AttributeValue {
    let ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    AttributeValue::N(ms.to_string())
}

/// How every update of a file row is written, so none forgets its revision: the update's own
/// `SET`/`REMOVE` clauses, and `ADD rev :revisionStep`.
pub(crate) trait FileRowUpdate: Sized {
    fn file_row_update(self, expression: impl Into<String>) -> Self;
}

macro_rules! file_row_update {
    ($($builder:ty),*) => {$(
        impl FileRowUpdate for $builder {
            fn file_row_update(self, expression: impl Into<String>) -> Self {
                self.update_expression(format!("{} ADD {REVISION} :revisionStep", expression.into()))
                    .expression_attribute_values(":revisionStep", AttributeValue::N("1".to_owned()))
            }
        }
    )*};
}

file_row_update!(
    aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    aws_sdk_dynamodb::types::builders::UpdateBuilder
);

/// The index of a user's items, newest first (files; open upload sessions).
pub const GSI_USER: &str = "gsi1-user-files";
/// The index of file rows by status, oldest first (and of open sessions by expiry).
pub const GSI_STATUS: &str = "gsi2-status";
/// The index of file rows by content SHA-256 (dedup).
pub const GSI_CONTENT_HASH: &str = "gsi3-owner-content";

/// The sort key of a file row.
pub(crate) const FILE: &str = "FILE";

/// An item's attributes.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The key attributes of item `pk` / `sk` (start an item with it, or pass it as a key).
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), AttributeValue::S(pk.into())), (SK.to_owned(), AttributeValue::S(sk.into()))])
}

pub(crate) fn file_pk(id: FileId) -> String {
    format!("FILE#{id}")
}

pub(crate) fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

pub(crate) fn session_pk(id: &UploadId) -> String {
    format!("UPLOAD#{id}")
}

pub(crate) fn token_pk(digest: &str) -> String {
    format!("TOKEN#{digest}")
}

pub(crate) fn share_pk(id: &ShareId) -> String {
    format!("SHARE#{id}")
}

pub(crate) fn export_pk(id: &str) -> String {
    format!("EXPORT#{id}")
}

pub(crate) fn audit_pk(user: &UserId) -> String {
    format!("AUDIT#{user}")
}

/// A file's row.
pub(crate) fn file(id: FileId) -> Item {
    key(file_pk(id), FILE)
}

/// Which of a user's exports is their newest (`export::FileTable::put_export`).
pub(crate) fn newest_export(user: &UserId) -> Item {
    key(user_pk(user), "EXPORT")
}

/// The mark of an erased user, under their keyed pseudonym (`core::audit::pseudonym`): what
/// keeps a migration from bringing their files back. Names nobody.
pub(crate) fn erased(stand_in: &UserId) -> Item {
    key(format!("ERASED#{stand_in}"), "ERASED")
}

/// The mark of an erased user's legacy path (`core::audit::erased_path`): what the legacy
/// redirector answers `410` for. Names nobody and no path.
pub(crate) fn erased_path(mark: &str) -> Item {
    key(format!("ERASED#{mark}"), "LEGACY")
}

/// A user's usage counter.
pub(crate) fn usage(user: &UserId) -> Item {
    key(user_pk(user), "USAGE")
}

/// A multipart upload session.
pub(crate) fn session(id: &UploadId) -> Item {
    key(session_pk(id), "SESSION")
}

/// An upload token's grant, by the token's digest.
pub(crate) fn token(digest: &str) -> Item {
    key(token_pk(digest), "TOKEN")
}

/// A share link.
pub(crate) fn share(id: &ShareId) -> Item {
    key(share_pk(id), "SHARE")
}

/// A legacy path's mapping to its migrated file; a path too long for a key (DynamoDB takes
/// 2,048 bytes) is named by its SHA-256.
pub(crate) fn legacy(path: &str) -> Item {
    if path.len() <= 1024 {
        key(format!("LEGACY#{path}"), "LEGACY")
    } else {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, path.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        key(format!("LEGACY#sha256:{hex}"), "LEGACY")
    }
}

/// An export job.
pub(crate) fn export(id: &str) -> Item {
    key(export_pk(id), "EXPORT")
}

/// An item: its key (one of the functions above), then its other attributes.
pub(crate) fn item<const N: usize>(key: Item, attrs: [(String, AttributeValue); N]) -> Item {
    let mut item = key;
    item.extend(attrs);
    item
}
