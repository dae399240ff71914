//! What every HTTP function shares: who the caller is ([`auth`]), the JSON error body
//! ([`error`]), strict request-body parsing ([`body`]), and the dev key pair that stands in
//! for the identity provider locally ([`dev_keys`]).

pub mod audit;
pub mod auth;
pub mod body;
pub mod dev_keys;
pub mod error;
pub mod openapi;

pub use auth::{Api, AuthState, Authenticator, Caller};

pub use error::ApiError;
