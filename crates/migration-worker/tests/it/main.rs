//! The migration worker end to end: the SQS path (enqueue, the handler fed by an in-test pump,
//! visibility heartbeats, poison messages). It shares the migration library tests' fixtures.

#[path = "../../../migrate/tests/it/common/mod.rs"]
mod common;
mod sqs;
