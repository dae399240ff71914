//! Settings read from the environment, as the SAM template passes them, and the shared
//! AWS SDK configuration built once per process.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::error::AwsError;
use crate::s3::S3Store;

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

/// The disaster-recovery replica (template-replica.yaml): `REPLICA_BUCKET` in `REPLICA_REGION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSettings {
    pub bucket: String,
    pub region: String,
}

impl ReplicaSettings {
    /// Both set: the replica; both empty or unset: none; one without the other: an error.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, AwsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        match (get("REPLICA_BUCKET"), get("REPLICA_REGION")) {
            (None, None) => Ok(None),
            (Some(bucket), Some(region)) => Ok(Some(ReplicaSettings { bucket, region })),
            _ => Err(AwsError::Config("REPLICA_BUCKET and REPLICA_REGION are set together or not at all".into())),
        }
    }

    /// The replica's bucket, reached like the platform bucket but in the replica's region.
    pub fn store(&self, sdk: &SdkConfig) -> Result<S3Store, AwsError> {
        let sdk = sdk.to_builder().region(Region::new(self.region.clone())).build();
        S3Store::new(&sdk, &self.bucket, None)
    }
}

/// The SDK configuration from the environment (region, credentials, endpoint overrides).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn a_replica_needs_its_bucket_and_its_region() {
        assert_eq!(ReplicaSettings::from_lookup(lookup(&[])).unwrap(), None);
        assert_eq!(
            ReplicaSettings::from_lookup(lookup(&[("REPLICA_BUCKET", ""), ("REPLICA_REGION", "")])).unwrap(),
            None
        );
        let both = [("REPLICA_BUCKET", "dr-files"), ("REPLICA_REGION", "eu-west-1")];
        let replica = ReplicaSettings { bucket: "dr-files".into(), region: "eu-west-1".into() };
        assert_eq!(ReplicaSettings::from_lookup(lookup(&both)).unwrap(), Some(replica));
        for half in [[both[0]], [both[1]]] {
            let err = ReplicaSettings::from_lookup(lookup(&half)).unwrap_err();
            assert!(matches!(err, AwsError::Config(_)), "{err}");
        }
    }
}
