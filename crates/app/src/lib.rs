//! `matbakh-app`: the platform's use cases, over ports.
//!
//! A use case is what a user or an event asks of the platform (list my files, rename one,
//! delete and restore it, ...), written once against traits ([`ports`]) for what lies outside:
//! the metadata repositories, the object store, the audit trail. No AWS SDK and no HTTP here:
//! the `matbakh-aws` adapters implement the ports, the function crates decode a request, call a
//! use case and encode its answer. [`fakes`] holds in-memory implementations of every port
//! (small; the linker drops them from the functions), so use cases and handlers are tested by
//! a plain `cargo test`, no server needed; the adapters' own tests (moto, Garage) check that
//! they keep the same contract.
//!
//! Reads and writes nothing itself.

pub mod archival;
pub mod archive;
pub mod audit;
pub mod delivery;
pub mod erase;
pub mod error;
pub mod exports;
pub mod fakes;
pub mod files;
pub mod images;
pub mod index;
pub mod live;
pub mod multipart;
pub mod ports;
pub mod process;
pub mod random;
pub mod removal;
pub mod reports;
pub mod settle;
pub mod shares;
pub mod sweep;
pub mod throttle;
pub mod uploads;
pub mod view;

pub use error::Error;
pub use ports::PortError;
