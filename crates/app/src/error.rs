//! The one error type of the use cases: what the caller asked cannot be done (and why, with a
//! stable code), or a port failed (retryable or not).

use std::borrow::Cow;

use matbakh_core::CoreError;

use crate::ports::PortError;

/// A message for the caller: most are fixed, some name numbers.
pub type Message = Cow<'static, str>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, or not the caller's: one answer for both, so nobody learns what others have.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The capability presented (an upload link) is unknown, expired or revoked.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A request field is missing or wrong.
    #[error("{message}")]
    BadField { field: &'static str, message: String },
    /// The caller may not have it, and may know so (a quarantined file of their own).
    #[error("{message}")]
    Forbidden { code: &'static str, message: Message },
    /// The resource is not in a state that allows it.
    #[error("{message}")]
    Conflict { code: &'static str, message: Message },
    /// It could have been done once, and no longer can.
    #[error("{message}")]
    Gone { code: &'static str, message: Message },
    /// More bytes arrived than were granted; what carried them was undone.
    #[error("{message}")]
    TooLarge { code: &'static str, message: Message },
    /// The caller spent the budget of a costly request ([`crate::throttle`]); the same request
    /// is admitted again after `retry_after`.
    #[error("{message}")]
    TooMany { message: Message, retry_after: std::time::Duration },
    /// A domain rule refused the input (a tag too long, too many tags, ...).
    #[error(transparent)]
    Rule(#[from] CoreError),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl Error {
    pub fn bad_field(field: &'static str, message: impl Into<String>) -> Self {
        Error::BadField { field, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<Message>) -> Self {
        Error::Forbidden { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<Message>) -> Self {
        Error::Conflict { code, message: message.into() }
    }

    pub fn gone(code: &'static str, message: impl Into<Message>) -> Self {
        Error::Gone { code, message: message.into() }
    }

    pub fn too_large(code: &'static str, message: impl Into<Message>) -> Self {
        Error::TooLarge { code, message: message.into() }
    }

    /// Whether the same call may succeed later (a dependency was unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Port(p) if p.is_retryable())
    }
}
