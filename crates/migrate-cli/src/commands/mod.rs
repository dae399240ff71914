//! One module per `migrate` command: its arguments where it has many, and what it prints.

pub mod control;
pub mod cutover;
pub mod enqueue;
pub mod plan;
pub mod report;
pub mod run;
pub mod verify;
