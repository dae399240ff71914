//! S3 as a migration target: checksummed, conditional writes (single and multipart), HEAD with
//! the stored full-object checksum, versions for rollback. Payload signing is off: every
//! body carries a CRC64NVME that S3 checks on arrival, so a SigV4 SHA-256 of the same bytes
//! would only spend CPU (what the AWS CLI and SDK transfer managers do over HTTPS too).

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};

use crate::error::AwsError;

/// A bucket the migration writes to.
#[derive(Clone, Debug)]
pub struct Target {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// The storage class objects are written in (`None`: the bucket's default, Standard).
    storage_class: Option<aws_sdk_s3::types::StorageClass>,
}

/// What the key must hold for a write to go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Nothing (`If-None-Match: *`).
    Absent,
    /// The object with this ETag (`If-Match`).
    Matches(String),
}

/// A version the write created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version_id: Option<String>,
    pub etag: String,
}

/// An object's HEAD, with the full-object checksum S3 stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHead {
    pub size: u64,
    pub etag: String,
    pub version_id: Option<String>,
    pub crc64nvme: Option<String>,
    pub metadata: HashMap<String, String>,
}

/// One entry of a key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
}

/// One part sent: number, ETag, CRC64NVME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPart {
    pub number: i32,
    pub etag: String,
    pub crc64nvme: String,
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Maps the errors a checked write can meet: a failed condition, a checksum S3 refused.
fn write_error<E>(operation: &'static str, e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let c = code(&e).map(str::to_owned);
    let message = e.as_service_error().and_then(|s| s.message()).unwrap_or("").to_owned();
    match c.as_deref() {
        Some("PreconditionFailed") => AwsError::ConditionFailed,
        Some("BadDigest" | "InvalidDigest" | "XAmzContentChecksumMismatch" | "InvalidChecksum") => {
            AwsError::ChecksumMismatch(message)
        }
        Some("InvalidRequest") if message.to_ascii_lowercase().contains("checksum") => {
            AwsError::ChecksumMismatch(message)
        }
        _ if status(&e) == Some(412) => AwsError::ConditionFailed,
        _ => AwsError::from_sdk(operation, e),
    }
}

impl Target {
    /// A client for `bucket`; path-style when the endpoint is local. `retries` = false leaves
    /// retrying to the caller, which counts attempts and backs off with jitter.
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>, retries: bool) -> Self {
        let mut conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some());
        if !retries {
            conf = conf.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
        }
        Target { client: aws_sdk_s3::Client::from_conf(conf.build()), bucket: bucket.into(), storage_class: None }
    }

    /// Objects written from now on go to `class` (`DEEP_ARCHIVE`, ...; `None`: Standard).
    pub fn with_storage_class(mut self, class: Option<&str>) -> Self {
        self.storage_class = class.map(aws_sdk_s3::types::StorageClass::from);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Whether the bucket keeps versions (a server without versioning says NotImplemented).
    pub async fn versioning_enabled(&self) -> Result<bool, AwsError> {
        match self.client.get_bucket_versioning().bucket(&self.bucket).send().await {
            Ok(out) => Ok(out.status() == Some(&BucketVersioningStatus::Enabled)),
            Err(e) if code(&e) == Some("NotImplemented") => Ok(false),
            Err(e) => Err(AwsError::from_sdk("GetBucketVersioning", e)),
        }
    }

    /// The object (a given version, or the current one), or `None` if there is none.
    pub async fn head(&self, key: &str, version_id: Option<&str>) -> Result<Option<TargetHead>, AwsError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        match out {
            Ok(out) => Ok(Some(TargetHead {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                etag: out.e_tag().unwrap_or_default().to_owned(),
                version_id: out.version_id().map(str::to_owned),
                crc64nvme: out.checksum_crc64_nvme().map(str::to_owned),
                metadata: out.metadata().cloned().unwrap_or_default(),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            // A HEAD of a delete marker version answers 405; a current delete marker 404.
            Err(e) if status(&e) == Some(405) => Ok(None),
            Err(e) => Err(AwsError::from_sdk("HeadObject", e)),
        }
    }

    /// Writes one object whose bytes S3 checks against `crc64nvme`, only under `condition`.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        crc64nvme: &str,
        content_type: &str,
        metadata: &[(&str, &str)],
        condition: &WriteCondition,
    ) -> Result<Written, AwsError> {
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(crc64nvme)
            .set_storage_class(self.storage_class.clone())
            .body(ByteStream::from(body));
        for (k, v) in metadata {
            put = put.metadata(*k, *v);
        }
        put = match condition {
            WriteCondition::Absent => put.if_none_match("*"),
            WriteCondition::Matches(etag) => put.if_match(etag),
        };
        match put.customize().disable_payload_signing().send().await {
            Ok(out) => Ok(Written {
                version_id: out.version_id().map(str::to_owned),
                etag: out.e_tag().unwrap_or_default().to_owned(),
            }),
            Err(e) => Err(write_error("PutObject", e)),
        }
    }

    /// Starts a multipart upload whose full-object CRC64NVME S3 will check at completion.
    pub async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
        metadata: &[(&str, &str)],
    ) -> Result<String, AwsError> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
            .set_storage_class(self.storage_class.clone());
        for (k, v) in metadata {
            create = create.metadata(*k, *v);
        }
        let out = create.send().await.map_err(|e| AwsError::from_sdk("CreateMultipartUpload", e))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Corrupt("CreateMultipartUpload without an id".into()))
    }

    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
        crc64nvme: &str,
    ) -> Result<SentPart, AwsError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(crc64nvme)
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| write_error("UploadPart", e))?;
        Ok(SentPart { number, etag: out.e_tag().unwrap_or_default().to_owned(), crc64nvme: crc64nvme.to_owned() })
    }

    /// Completes the upload under `condition`; S3 checks the parts' combined CRC64NVME
    /// against `crc64nvme` (the whole file's, from the manifest).
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[SentPart],
        crc64nvme: &str,
        condition: &WriteCondition,
    ) -> Result<Written, AwsError> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number)
                            .e_tag(&p.etag)
                            .checksum_crc64_nvme(&p.crc64nvme)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let mut complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .checksum_type(ChecksumType::FullObject)
            .checksum_crc64_nvme(crc64nvme);
        complete = match condition {
            WriteCondition::Absent => complete.if_none_match("*"),
            WriteCondition::Matches(etag) => complete.if_match(etag),
        };
        match complete.send().await {
            Ok(out) => Ok(Written {
                version_id: out.version_id().map(str::to_owned),
                etag: out.e_tag().unwrap_or_default().to_owned(),
            }),
            Err(e) => Err(write_error("CompleteMultipartUpload", e)),
        }
    }

    /// The parts S3 holds for an upload (number, ETag, CRC64NVME) with their sizes, in order;
    /// `None` if the upload is gone (completed or aborted).
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Option<Vec<(SentPart, u64)>>, AwsError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(e) if code(&e) == Some("NoSuchUpload") => return Ok(None),
                Err(e) => return Err(AwsError::from_sdk("ListParts", e)),
            };
            for p in out.parts() {
                parts.push((
                    SentPart {
                        number: p.part_number().unwrap_or(0),
                        etag: p.e_tag().unwrap_or_default().to_owned(),
                        crc64nvme: p.checksum_crc64_nvme().unwrap_or_default().to_owned(),
                    },
                    p.size().unwrap_or(0).max(0) as u64,
                ));
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) if !next.is_empty() => marker = Some(next.to_owned()),
                _ => {
                    parts.sort_by_key(|(p, _)| p.number);
                    return Ok(Some(parts));
                }
            }
        }
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), AwsError> {
        match self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload_id).send().await {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(AwsError::from_sdk("AbortMultipartUpload", e)),
        }
    }

    /// Deletes every version and delete marker under `prefix` for good; answers how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, AwsError> {
        crate::s3::delete_under(&self.client, &self.bucket, prefix).await
    }

    /// Whether anything (a version or a delete marker) is under `prefix`.
    pub async fn holds_any(&self, prefix: &str) -> Result<bool, AwsError> {
        crate::s3::holds_any(&self.client, &self.bucket, prefix).await
    }

    /// Every version and delete marker of exactly `key`: the versions newest first, then the
    /// markers newest first (`is_latest` says which is current).
    pub async fn versions(&self, key: &str) -> Result<Vec<Version>, AwsError> {
        crate::s3::key_versions(&self.client, &self.bucket, key).await
    }

    /// Hides the key's current object behind a delete marker (the platform's soft delete); the
    /// marker's version (none in an unversioned bucket, where the object is gone for good).
    pub async fn hide(&self, key: &str) -> Result<Option<String>, AwsError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|out| out.version_id().map(str::to_owned))
            .map_err(|e| AwsError::from_sdk("DeleteObject", e))
    }

    /// Removes one version for good (the previous one becomes current again).
    pub async fn delete_version(&self, key: &str, version_id: &str) -> Result<(), AwsError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("DeleteObject", e))
    }

    /// Streams an object version's bytes to `sink` in the chunks S3 sends; `None` if gone.
    pub async fn read(
        &self,
        key: &str,
        version_id: Option<&str>,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<Option<u64>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await;
        let mut body = match out {
            Ok(out) => out.body,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(AwsError::from_sdk("GetObject", e)),
        };
        let mut total = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| AwsError::Service {
            operation: "GetObject",
            message: format!("reading the body: {e}"),
            retryable: true,
        })? {
            total += chunk.len() as u64;
            sink(&chunk);
        }
        Ok(Some(total))
    }

    /// An object's body to read chunk by chunk (the manifest, line by line); `None` if gone.
    pub async fn open(&self, key: &str) -> Result<Option<crate::s3::ObjectReader>, AwsError> {
        crate::s3::open_with(&self.client, &self.bucket, key, None).await
    }

    /// A plain object (the manifest) from a local file, streamed (never read whole); S3 checks
    /// the bytes against `crc64nvme`.
    pub async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        crc64nvme: &str,
        content_type: &str,
    ) -> Result<(), AwsError> {
        let body =
            ByteStream::from_path(path).await.map_err(|e| AwsError::Config(format!("{}: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(crc64nvme)
            .body(body)
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("PutObject", e))
    }
}
