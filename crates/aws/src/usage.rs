//! A user's storage account in the metadata table: `USAGE#{sub}` / `USAGE`, bytes charged
//! (stored + reserved), reserved, deleted-but-kept, and open uploads. Every change is an update
//! inside the transaction that changes what it counts, so the account cannot drift; the quota
//! is a condition of that update ([`matbakh_core::quota::reservation_ceiling`]). An erase closes
//! the account ([`FileTable::close_account`]: the item then holds `closedAt`, which every such
//! update requires absent) until its second pass reopens it.
//!
//! Beside it, the user's request counters of the costly requests' budgets
//! ([`matbakh_core::throttle`]): `USER#{sub}` / `BUDGET#{kind}#{windowStart}`, one conditional
//! ADD per request, forgotten by TTL after their window.

use aws_sdk_dynamodb::types::{AttributeValue, Update};
use matbakh_core::ids::UserId;
use matbakh_core::quota::{Usage, reservation_ceiling};

use crate::dynamo::{get_u64, n};
use crate::error::AwsError;
use crate::schema;
use crate::table::FileTable;

/// The usage item's attribute while an erase holds the account closed: the erase's time.
pub(crate) const CLOSED_AT: &str = "closedAt";

/// Bytes a usage update adds, within `quota`; `reserve`: they are only reserved yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charge {
    pub size: u64,
    pub quota: u64,
    pub reserve: bool,
}

impl FileTable {
    /// The update that adds `size` bytes to the owner's usage (and to its reserved part when
    /// `reserve`), on condition the quota still has room.
    pub(crate) fn charge_usage(
        &self,
        owner: &UserId,
        size: u64,
        quota: u64,
        reserve: bool,
    ) -> Result<Update, AwsError> {
        self.usage_update(owner, Some(Charge { size, quota, reserve }), None)
    }

    /// The usage update that takes one of the owner's `cap` open-upload places and, with a
    /// `charge`, adds its bytes within the quota: the one place the quota, the open-upload cap
    /// and an erase's closing of the account are enforced ([`Self::usage_refused`] says which
    /// refused it).
    pub(crate) fn usage_update(
        &self,
        owner: &UserId,
        charge: Option<Charge>,
        open_cap: Option<u64>,
    ) -> Result<Update, AwsError> {
        let (mut adds, mut conditions) = (Vec::new(), Vec::new());
        let mut update = Update::builder().table_name(&self.table).set_key(Some(schema::usage(owner)));
        if let Some(Charge { size, quota, reserve }) = charge {
            let ceiling = reservation_ceiling(quota, size).map_err(|_| AwsError::QuotaExceeded)?;
            adds.push("charged :size");
            if reserve {
                adds.push("#reserved :size");
                update = update.expression_attribute_names("#reserved", "reserved");
            }
            conditions.push("(attribute_not_exists(charged) OR charged <= :ceiling)");
            update = update
                .expression_attribute_values(":size", n(size))
                .expression_attribute_values(":ceiling", n(ceiling));
        }
        if let Some(cap) = open_cap {
            adds.push("#open :one");
            conditions.push("(attribute_not_exists(#open) OR #open < :cap)");
            update = update
                .expression_attribute_names("#open", "openUploads")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":cap", n(cap));
        }
        conditions.push("attribute_not_exists(#closed)");
        update = update.expression_attribute_names("#closed", CLOSED_AT);
        Ok(update
            .update_expression(format!("ADD {}", adds.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .build()?)
    }

    /// The update that gives `charged` bytes (of which `reserved` are only reserved) back to
    /// the owner's usage: an aborted session, a refused upload.
    /// With `place`, an open-upload place goes back too (an aborted session).
    pub(crate) fn release_usage(
        &self,
        owner: &UserId,
        charged: u64,
        reserved: u64,
        place: bool,
    ) -> Result<Update, AwsError> {
        let update = Update::builder();
        let update = match place {
            true => update
                .update_expression("ADD charged :c, #reserved :r, openUploads :minus")
                .expression_attribute_values(":minus", n(-1)),
            false => update.update_expression("ADD charged :c, #reserved :r"),
        };
        Ok(update
            .table_name(&self.table)
            .set_key(Some(schema::usage(owner)))
            .expression_attribute_names("#reserved", "reserved")
            .expression_attribute_values(":c", AttributeValue::N(format!("-{charged}")))
            .expression_attribute_values(":r", AttributeValue::N(format!("-{reserved}")))
            .build()?)
    }

    /// Why the condition of `owner`'s [`Self::usage_update`] failed: their account closed by an
    /// erase, the open-upload `cap` reached, or else the quota (a failed read is its own error).
    pub(crate) async fn usage_refused(&self, owner: &UserId, cap: Option<u64>) -> AwsError {
        let item = match self.get_item(schema::usage(owner)).await {
            Ok(item) => item.unwrap_or_default(),
            Err(e) => return e,
        };
        if item.contains_key(CLOSED_AT) {
            AwsError::AccountErased
        } else if cap.is_some_and(|cap| get_u64(&item, "openUploads").unwrap_or(0) >= cap) {
            AwsError::TooManyOpenUploads
        } else {
            AwsError::QuotaExceeded
        }
    }

    /// A transaction's check that no erase holds `owner`'s account closed (its usage item has no
    /// `closedAt`): what an unreserved upload's row and an export's job are written with.
    pub(crate) fn account_not_closed(
        &self,
        owner: &UserId,
    ) -> Result<aws_sdk_dynamodb::types::ConditionCheck, AwsError> {
        Ok(aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(schema::usage(owner)))
            .condition_expression("attribute_not_exists(#closed)")
            .expression_attribute_names("#closed", CLOSED_AT)
            .build()?)
    }

    /// Whether `owner` has an account that no erase closed or ended: a usage item, without
    /// `closedAt` (every stored byte is counted there; an erase closes it, and removes it when
    /// done). Read consistently.
    pub async fn account_open(&self, owner: &UserId) -> Result<bool, AwsError> {
        Ok(self.get_item(schema::usage(owner)).await?.is_some_and(|item| !item.contains_key(CLOSED_AT)))
    }

    /// Whether an erase closed `owner`'s account (its usage item holds `closedAt`), read
    /// consistently.
    pub async fn account_closed(&self, owner: &UserId) -> Result<bool, AwsError> {
        Ok(self.get_item(schema::usage(owner)).await?.is_some_and(|item| item.contains_key(CLOSED_AT)))
    }

    /// Closes `owner`'s account for the erase made at `erased_at` (unix seconds): the usage
    /// item is replaced by one that holds only that time, so the counters go and every grant's
    /// usage update is refused until [`Self::reopen_account`]. An account a later erase closed
    /// stays as that one left it (an older erase's second pass neither closes nor reopens it).
    /// Answers whether an open account's counters went.
    pub async fn close_account(&self, owner: &UserId, erased_at: i64) -> Result<bool, AwsError> {
        let item = schema::item(schema::usage(owner), [(CLOSED_AT.to_owned(), n(erased_at))]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#closed) OR #closed <= :at")
            .expression_attribute_names("#closed", CLOSED_AT)
            .expression_attribute_values(":at", n(erased_at))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match put {
            Ok(out) => Ok(out.attributes().is_some_and(|old| !old.contains_key(CLOSED_AT))),
            Err(e) if e.as_service_error().is_some_and(|x| x.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(AwsError::from_sdk("PutItem", e)),
        }
    }

    /// Deletes the usage item [`Self::close_account`] wrote for the erase made at `erased_at`
    /// (with whatever late uploads counted on it since); `false` if it is not that erase's (a
    /// later erase closed it again) or not there.
    pub async fn reopen_account(&self, owner: &UserId, erased_at: i64) -> Result<bool, AwsError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(schema::usage(owner)))
            .condition_expression("#closed = :at")
            .expression_attribute_names("#closed", CLOSED_AT)
            .expression_attribute_values(":at", n(erased_at))
            .send()
            .await;
        crate::dynamo::conditional(deleted, "DeleteItem")
    }

    /// The owner's usage counter (zero if they never uploaded).
    pub async fn usage(&self, user: &UserId) -> Result<Usage, AwsError> {
        let item = self.get_item(schema::usage(user)).await?.unwrap_or_default();
        Ok(Usage {
            charged: get_u64(&item, "charged").unwrap_or(0),
            reserved: get_u64(&item, "reserved").unwrap_or(0),
            deleted: get_u64(&item, "deleted").unwrap_or(0),
            open_uploads: get_u64(&item, "openUploads").unwrap_or(0),
        })
    }
}

impl FileTable {
    /// Adds one request to `user`'s counter `name` if it holds fewer than `limit`: whether it
    /// did. One conditional update, so concurrent instances never admit more than `limit`.
    pub async fn take_request(
        &self,
        user: &UserId,
        name: &str,
        limit: u64,
        until: time::OffsetDateTime,
    ) -> Result<bool, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(schema::key(schema::user_pk(user), format!("BUDGET#{name}"))))
            .update_expression("ADD requests :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(requests) OR requests < :limit")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":ttl", n(until.unix_timestamp()))
            .send()
            .await;
        crate::dynamo::conditional(out, "UpdateItem")
    }
}
