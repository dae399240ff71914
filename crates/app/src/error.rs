//! The one error type of the use cases: what the caller asked cannot be done (and why, with a
//! stable code), or a port failed (retryable or not).

use matbakh_core::CoreError;

use crate::ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, or not the caller's: one answer for both, so nobody learns what others have.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A request field is missing or wrong.
    #[error("{message}")]
    BadField { field: &'static str, message: String },
    /// The caller may not have it, and may know so (a quarantined file of their own).
    #[error("{message}")]
    Forbidden { code: &'static str, message: &'static str },
    /// The resource is not in a state that allows it.
    #[error("{message}")]
    Conflict { code: &'static str, message: &'static str },
    /// It could have been done once, and no longer can.
    #[error("{message}")]
    Gone { code: &'static str, message: &'static str },
    /// A domain rule refused the input (a tag too long, too many tags, ...).
    #[error(transparent)]
    Rule(#[from] CoreError),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl Error {
    /// Whether the same call may succeed later (a dependency was unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Port(p) if p.is_retryable())
    }
}
