//! The one error type of `core`: every rule violation names the field it is about.

/// A rule violation. All of them are permanent: retrying the same input fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A field is missing, malformed or out of range.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The content type is not on the allow-list.
    #[error("content type {0:?} is not allowed")]
    TypeNotAllowed(String),
    /// The declared size is above the limit for its type.
    #[error("{size} bytes is over the {limit}-byte limit for {content_type}")]
    TooLarge { size: u64, limit: u64, content_type: String },
    /// The upload would take the user over their quota.
    #[error("quota exceeded: {requested} bytes requested, {available} bytes available")]
    QuotaExceeded { requested: u64, available: u64 },
}

impl CoreError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        CoreError::Invalid { field, message: message.into() }
    }
}
