//! S3: presigned POST uploads, presigned GET downloads, and object existence checks.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::presigning::PresigningConfig;
use matbakh_core::ids::{ObjectKey, Sha256};
use matbakh_core::post_policy::{PresignedPost, UploadGrant, presign_post};
use matbakh_core::sigv4::Credentials;
use matbakh_core::types::ContentType;
use time::OffsetDateTime;

use crate::error::AwsError;

/// The platform bucket, seen through the narrow set of operations the functions need.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    credentials: SharedCredentialsProvider,
    region: String,
    bucket: String,
    post_url: String,
}

/// A presigned GET.
#[derive(Debug, Clone)]
pub struct PresignedGet {
    pub url: String,
    pub expires_at: OffsetDateTime,
}

impl S3Store {
    /// `public_endpoint` is where browsers reach S3 when it is not AWS (a local server); the
    /// client then uses path-style addressing, as local servers need.
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>, public_endpoint: Option<&str>) -> Result<Self, AwsError> {
        let bucket = bucket.into();
        let region =
            sdk.region().map(|r| r.to_string()).ok_or_else(|| AwsError::Config("AWS_REGION is not set".into()))?;
        let credentials =
            sdk.credentials_provider().ok_or_else(|| AwsError::Config("no AWS credentials provider".into()))?;
        let local = public_endpoint.is_some() || sdk.endpoint_url().is_some();
        let conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(local).build();
        let post_url = match public_endpoint.or(sdk.endpoint_url()) {
            Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com/"),
        };
        Ok(S3Store { client: aws_sdk_s3::Client::from_conf(conf), credentials, region, bucket, post_url })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// A browser form upload of exactly one object: key, type and size pinned by the policy.
    pub async fn presign_upload(
        &self,
        key: &ObjectKey,
        content_type: ContentType,
        size: u64,
        sha256: Option<Sha256>,
        now: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedPost, AwsError> {
        let c = self.credentials.provide_credentials().await.map_err(|e| AwsError::Service {
            operation: "ProvideCredentials",
            message: e.to_string(),
            retryable: true,
        })?;
        let creds = Credentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned(),
            session_token: c.session_token().map(str::to_owned),
        };
        let grant = UploadGrant {
            bucket: &self.bucket,
            key,
            content_type,
            size,
            sha256,
            region: &self.region,
            now,
            expires_in,
        };
        Ok(presign_post(&grant, &creds, self.post_url.clone()))
    }

    /// A GET that answers with the given `Content-Disposition` and `Content-Type`.
    pub async fn presign_download(
        &self,
        key: &ObjectKey,
        content_type: &str,
        disposition: &str,
        now: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedGet, AwsError> {
        let config = PresigningConfig::builder()
            .start_time(SystemTime::from(now))
            .expires_in(expires_in)
            .build()
            .map_err(|e| AwsError::Config(format!("presigning: {e}")))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .response_content_type(content_type)
            .response_content_disposition(disposition)
            .presigned(config)
            .await
            .map_err(|e| AwsError::from_sdk("PresignGetObject", e))?;
        Ok(PresignedGet { url: req.uri().to_owned(), expires_at: now + expires_in })
    }

    /// The object's size, or `None` if there is no such object.
    pub async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, AwsError> {
        match self.client.head_object().bucket(&self.bucket).key(key.as_str()).send().await {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(AwsError::from_sdk("HeadObject", e)),
        }
    }
}
