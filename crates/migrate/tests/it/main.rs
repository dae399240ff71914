//! The `migrate` crate's integration tests, in one test binary (one link, not 5); each
//! module's own comment says what it covers.

mod common;
mod ctime;
mod delta;
mod garage;
mod http;
mod legacy_db;
mod moto;
mod restart;
mod symlinks;
