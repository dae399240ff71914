//! Settings read from the environment, as the SAM template passes them, and the shared
//! AWS SDK configuration built once per process.

use aws_config::{BehaviorVersion, SdkConfig};

use crate::error::AwsError;

/// Names of the resources a function works on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `BUCKET_NAME`: the platform bucket.
    pub bucket: String,
    /// `TABLE_NAME`: the metadata table.
    pub table: String,
    /// `S3_PUBLIC_ENDPOINT`: where browsers reach S3, when it is not AWS's own endpoint.
    pub s3_public_endpoint: Option<String>,
}

impl Settings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AwsError> {
        let required = |name: &str| {
            lookup(name).filter(|v| !v.is_empty()).ok_or_else(|| AwsError::Config(format!("{name} is not set")))
        };
        Ok(Settings {
            bucket: required("BUCKET_NAME")?,
            table: required("TABLE_NAME")?,
            s3_public_endpoint: lookup("S3_PUBLIC_ENDPOINT")
                .or_else(|| lookup("AWS_ENDPOINT_URL_S3"))
                .or_else(|| lookup("AWS_ENDPOINT_URL"))
                .filter(|v| !v.is_empty()),
        })
    }

    pub fn from_env() -> Result<Self, AwsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// The SDK configuration from the environment (region, credentials, endpoint overrides).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}
