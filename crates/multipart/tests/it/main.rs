//! The `multipart` crate's integration tests, in one test binary (one link, not 4); each
//! module's own comment says what it covers.

mod companion;
mod garage;
mod moto;
mod sign;
