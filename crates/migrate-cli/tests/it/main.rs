//! The `migrate` command's tests: the real binary, killed and rerun, and its answers to bad
//! input. They share the migration library tests' fixtures (a legacy tree, a bucket, a ledger).

#[path = "../../../migrate/tests/it/common/mod.rs"]
mod common;
mod kill;
