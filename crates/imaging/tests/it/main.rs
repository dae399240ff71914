//! The `imaging` crate's integration tests, in one test binary (one link, not 3); each
//! module's own comment says what it covers.

mod avif;
mod common;
mod corpus;
mod hostile;
mod location;
mod no_panic;
