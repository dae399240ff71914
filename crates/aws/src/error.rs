//! The one error type of the adapters, classed retryable or permanent.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The user's quota has no room for the reservation.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The user already has as many open multipart uploads as allowed (`MAX_OPEN_UPLOADS`).
    #[error("too many open uploads")]
    TooManyOpenUploads,
    /// The owner's account is closed by an erase that has not finished (`FileTable::close_account`).
    #[error("the account was erased; its erase has not finished")]
    AccountErased,
    /// A conditional write found the item already there.
    #[error("already exists")]
    AlreadyExists,
    /// A conditional write found the target not as required (S3 412).
    #[error("the target is not as the write required (precondition failed)")]
    ConditionFailed,
    /// S3 found the bytes do not match the checksum the client declared.
    #[error("checksum mismatch: {0}")]
    ChecksumMismatch(String),
    /// S3 reads the object only once it is restored (`InvalidObjectState`: an archive class).
    #[error("the object is archived: it is read once restored")]
    NotRestored,
    /// An AWS call failed.
    #[error("{operation} failed: {message}")]
    Service { operation: &'static str, message: String, retryable: bool },
    /// An item read back does not have the shape we write.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// The request cannot be served as asked (a cursor of another listing): the caller's mistake.
    #[error("{0}")]
    Invalid(&'static str),
    /// A required setting is missing or wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// A server that is not AWS ([`crate::http::Web`]) did not answer: not reached, not in
    /// time, or cut short (naming the URL and the cause).
    #[error("{0}")]
    Unanswered(String),
    /// Its answer's body is larger than the caller takes.
    #[error("{url}: the answer is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

/// A request that could not be built (a required field missing) is a bug of ours, not of AWS.
impl From<aws_sdk_dynamodb::error::BuildError> for AwsError {
    fn from(e: aws_sdk_dynamodb::error::BuildError) -> Self {
        AwsError::Config(e.to_string())
    }
}

impl AwsError {
    /// Whether the same call may succeed later (throttling, timeouts, 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(self, AwsError::Service { retryable: true, .. } | AwsError::Unanswered(_))
    }

    /// Classifies any SDK error by its kind, its error code and its HTTP status: a 429 or a 5xx
    /// (but 501) is retryable whatever its code, or with none (a body that is not the service's,
    /// as a proxy or a local server answers).
    pub fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let retryable = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(e) => {
                matches!(
                    e.err().code(),
                    Some(
                        "ThrottlingException"
                            | "Throttling"
                            | "ProvisionedThroughputExceededException"
                            | "RequestLimitExceeded"
                            | "InternalServerError"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "SlowDown"
                            | "RequestTimeout"
                            | "TooManyInvalidationsInProgress"
                            | "TransactionConflictException"
                            | "KmsThrottled"
                            | "RequestThrottled"
                    )
                ) || passing_status(e.raw())
                    || transaction_may_pass(e.err())
            }
            _ => false,
        };
        let message = match err.as_service_error() {
            Some(e) => format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or("")),
            None => format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)),
        };
        AwsError::Service { operation, message, retryable }
    }
}

/// Whether `err` is a DynamoDB transaction cancelled only for reasons that pass: another
/// transaction on one of its items at the same moment (`TransactionConflict`: the sweeper's
/// releases of one owner's rows all update that owner's usage item), throttling. One cancelled
/// by a condition is the caller's answer, not a failure to try again.
pub(crate) fn transaction_may_pass<E: 'static>(err: &E) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let any: &dyn std::any::Any = err;
    let Some(TransactWriteItemsError::TransactionCanceledException(c)) = any.downcast_ref() else { return false };
    let reasons: Vec<&str> =
        c.cancellation_reasons().iter().filter_map(|r| r.code()).filter(|c| *c != "None").collect();
    !reasons.is_empty()
        && reasons
            .iter()
            .all(|code| matches!(*code, "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"))
}

/// Whether `raw` is an HTTP response whose status says the failure may pass, whatever its code
/// (review 27: `InternalFailure`, `ServiceUnavailableException`, `TooManyRequestsException`
/// were taken as permanent): 429, or a 5xx but 501 (not implemented: it stays). SQS answers its
/// throttling (`KmsThrottled`, `RequestThrottled`) with a 400: those are named by code above.
fn passing_status<R: 'static>(raw: &R) -> bool {
    (raw as &dyn std::any::Any)
        .downcast_ref::<aws_sdk_s3::config::http::HttpResponse>()
        .map(|r| r.status().as_u16())
        .is_some_and(|status| status == 429 || (status >= 500 && status != 501 && status < 600))
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::{ErrorMetadata, SdkError};
    use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsError;
    use aws_smithy_types::body::SdkBody;

    use super::AwsError;

    fn answered(status: u16, code: Option<&str>) -> AwsError {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        AwsError::from_sdk(
            "ListObjectVersions",
            SdkError::service_error(ListObjectVersionsError::generic(meta.build()), raw),
        )
    }

    #[test]
    fn server_errors_are_retryable_with_or_without_a_code_and_client_errors_are_not() {
        assert!(answered(503, Some("SlowDown")).is_retryable());
        assert!(answered(500, None).is_retryable(), "a 5xx whose body S3's parser could not read");
        assert!(!answered(403, Some("AccessDenied")).is_retryable());
        assert!(!answered(400, None).is_retryable());
        // Review 27: by the status, whatever the code.
        assert!(answered(503, Some("ServiceUnavailableException")).is_retryable());
        assert!(answered(500, Some("InternalFailure")).is_retryable());
        assert!(answered(429, Some("TooManyRequestsException")).is_retryable());
        assert!(!answered(501, Some("NotImplemented")).is_retryable());
        // SQS's throttling answers 400, named by its code.
        assert!(answered(400, Some("KmsThrottled")).is_retryable());
    }

    /// Review 27: a transaction cancelled because another touched one of its items at the same
    /// moment may pass; one cancelled by its condition may not.
    #[test]
    fn a_transaction_cancelled_by_a_conflict_is_retryable_and_one_cancelled_by_a_condition_is_not() {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::CancellationReason;
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        let cancelled = |codes: &[&str]| {
            let reasons = codes.iter().map(|c| CancellationReason::builder().code(*c).build()).collect();
            let e = TransactionCanceledException::builder()
                .set_cancellation_reasons(Some(reasons))
                .meta(ErrorMetadata::builder().code("TransactionCanceledException").build())
                .build();
            let raw = HttpResponse::new(400.try_into().unwrap(), SdkBody::empty());
            AwsError::from_sdk(
                "TransactWriteItems",
                SdkError::service_error(TransactWriteItemsError::TransactionCanceledException(e), raw),
            )
        };
        assert!(cancelled(&["None", "TransactionConflict"]).is_retryable());
        assert!(cancelled(&["ThrottlingError", "None"]).is_retryable());
        assert!(!cancelled(&["ConditionalCheckFailed", "TransactionConflict"]).is_retryable());
        assert!(!cancelled(&["ValidationError"]).is_retryable());
    }
}
