//! The `files-api` crate's integration tests, in one test binary; each module's own comment
//! says what it covers.

mod moto;
mod openapi;
