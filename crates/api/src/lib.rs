//! What every HTTP function shares: who the caller is ([`auth`]), the JSON error body
//! ([`error`]), strict request-body parsing ([`body`]), and the dev key pair that stands in
//! for the identity provider locally ([`dev_keys`]).

pub mod audit;
pub mod auth;
pub mod body;
pub mod dev_keys;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod services;

pub use auth::{Api, AuthState, Authenticator, Caller};

use matbakh_core::ids::FileId;
use time::OffsetDateTime;

/// `N` bytes from the system's secure random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    Ok(matbakh_app::random::bytes()?)
}

/// A fresh file id for a file created at `now` (UUIDv7: time-ordered, 74 random bits).
pub fn new_file_id(now: OffsetDateTime) -> Result<FileId, ApiError> {
    Ok(matbakh_app::random::file_id(now)?)
}
pub use error::ApiError;
pub use services::Services;
