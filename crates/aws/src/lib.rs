//! Adapters between the domain and AWS: S3 (presigned uploads and downloads, object checks)
//! and DynamoDB (file metadata, usage counters), configured from the environment.
//!
//! `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`)
//! point the clients at local servers (moto, Garage); S3 then uses path-style addressing. Every
//! client sends its requests through [`http`]'s client (HTTP/1.1, rustls on aws-lc).
//!
//! [`Services`] wires the adapters into the use cases of `matbakh-app` (the composition root
//! every function's `main` starts from).

pub mod audit;
pub mod cdn;
pub mod config;
mod dynamo;
pub mod erase;
pub mod error;
pub mod export;
pub mod files;
pub mod http;
pub mod ledger;
pub mod live;
pub mod migrated;
mod ports;
pub mod queue;
pub mod report;
pub mod s3;
pub(crate) mod schema;
pub mod secrets;
pub mod services;
pub mod sessions;
pub mod shares;
pub mod stream;
pub mod table;
mod tokens;
pub mod transfer;
mod usage;

pub use config::Settings;
pub use error::AwsError;
pub use s3::S3Store;
pub use services::Services;
pub use table::FileTable;
