//! The `local-gateway` crate's integration tests, in one test binary (one link, not 4); each
//! module's own comment says what it covers.

mod dev_stack;
mod gateway;
mod in_process;
mod live;
