//! Domain rules of matbakh-files: identifiers, object keys, file names, the type allow-list
//! and its limits, quota arithmetic, the S3 POST policy and SigV4 signing.
//!
//! Pure: no AWS SDK, no network, no file system, no clock reads (time comes in through
//! [`clock::Clock`]). Every function crate calls these rules, so they are tested here once.

pub mod archival;
pub mod audit;
pub mod cdn;
pub mod cdn_log;
pub mod checksum;
pub mod clock;
pub mod container;
pub mod delivery;
pub mod erasure;
pub mod error;
pub mod events;
pub mod exports;
pub mod ids;
pub mod imgproxy;
pub mod labels;
pub mod limits;
pub mod listing;
pub mod live;
pub mod location;
pub mod metadata;
pub mod migration;
pub mod multipart;
pub mod names;
pub mod post_policy;
pub mod quota;
pub mod report;
pub mod shares;
pub mod sigv4;
pub mod sniff;
pub mod throttle;
pub mod tokens;
pub mod types;
pub mod webhooks;
pub mod zip;

pub use error::CoreError;
