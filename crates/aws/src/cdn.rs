//! CloudFront: invalidating what the files CDN caches of a deleted, changed, erased or no
//! longer public file (the paths come from `matbakh_core::cdn`).

use aws_config::SdkConfig;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};

use crate::error::AwsError;

/// One distribution, whose cached paths can be invalidated.
#[derive(Clone, Debug)]
pub struct Cdn {
    client: aws_sdk_cloudfront::Client,
    distribution_id: String,
}

impl Cdn {
    pub fn new(sdk: &SdkConfig, distribution_id: impl Into<String>) -> Self {
        Cdn { client: aws_sdk_cloudfront::Client::new(sdk), distribution_id: distribution_id.into() }
    }

    /// The files CDN, `FILES_DISTRIBUTION_ID`; empty or unset: none (locally), so nothing is
    /// cached and nothing to invalidate.
    pub fn from_lookup(sdk: &SdkConfig, lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        lookup("FILES_DISTRIBUTION_ID")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(|id| Cdn::new(sdk, id))
    }

    pub fn distribution_id(&self) -> &str {
        &self.distribution_id
    }

    /// One invalidation of `paths` (each starting with `/`, `*` only at the end); answers its
    /// id. `caller_reference` must be new for every invalidation meant (CloudFront answers a
    /// reference it has seen with the invalidation it made for it). Too many invalidations in
    /// progress (CloudFront allows 15 wildcard paths at once) is a retryable error.
    pub async fn invalidate(&self, paths: &[String], caller_reference: &str) -> Result<String, AwsError> {
        let paths = Paths::builder()
            .quantity(i32::try_from(paths.len()).map_err(|_| AwsError::Invalid("too many invalidation paths"))?)
            .set_items(Some(paths.to_vec()))
            .build()
            .map_err(|e| AwsError::Config(e.to_string()))?;
        let batch = InvalidationBatch::builder()
            .paths(paths)
            .caller_reference(caller_reference)
            .build()
            .map_err(|e| AwsError::Config(e.to_string()))?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&self.distribution_id)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateInvalidation", e))?;
        out.invalidation()
            .map(|i| i.id().to_owned())
            .ok_or_else(|| AwsError::Corrupt("CreateInvalidation answered no invalidation".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_distribution_id_is_no_cdn() {
        let sdk = SdkConfig::builder().build();
        for value in [None, Some(""), Some("  ")] {
            assert!(Cdn::from_lookup(&sdk, |_| value.map(str::to_owned)).is_none(), "{value:?}");
        }
        let cdn = Cdn::from_lookup(&sdk, |k| (k == "FILES_DISTRIBUTION_ID").then(|| "E2ABC".into())).unwrap();
        assert_eq!(cdn.distribution_id(), "E2ABC");
    }
}
