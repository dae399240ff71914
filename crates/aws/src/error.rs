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

    /// Classifies any SDK error by its kind and error code.
    pub fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let retryable = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(e) => matches!(
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
                )
            ),
            _ => false,
        };
        let message = match err.as_service_error() {
            Some(e) => format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or("")),
            None => format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)),
        };
        AwsError::Service { operation, message, retryable }
    }
}
