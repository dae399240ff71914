//! The `transformer` crate's integration tests, in one test binary (one link, not 2); each
//! module's own comment says what it covers.

mod moto;
mod options;
mod result_keys;
