//! The `presign` crate's integration tests, in one test binary (one link, not 3); each
//! module's own comment says what it covers.

mod events;
mod garage;
mod moto;
