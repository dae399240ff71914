//! S3: presigned POST uploads, presigned GET downloads, multipart uploads, and object checks.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use matbakh_app::ports::{Download, PartUpload, Upload};
use matbakh_core::checksum::{ChecksumAlgorithm, Integrity};
use matbakh_core::delivery::ServedAs;
use matbakh_core::ids::{ObjectKey, Sha256};
use matbakh_core::multipart::{PartNumber, UploadId, UploadedPart};
use matbakh_core::post_policy::{PresignedPost, UploadGrant, presign_post};
use matbakh_core::sigv4::Credentials;
use time::OffsetDateTime;

use crate::error::AwsError;
use crate::transfer::Version;

/// The platform bucket, seen through the narrow set of operations the functions need.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    credentials: SharedCredentialsProvider,
    region: String,
    bucket: String,
    post_url: String,
    /// Scheme and host of object URLs, and the path before the key (`/bucket` path-style).
    object_base: String,
    object_prefix: String,
    /// Copies of larger objects go in parts (`core::multipart::COPY_IN_PARTS_ABOVE`).
    copy_in_parts_above: u64,
    /// Their part size (`core::multipart::COPY_PART_SIZE`).
    copy_part_size: u64,
}

/// A copy in parts under way ([`S3Store::copy_in_parts`]): dropped before it settled (its caller
/// stopped waiting, at a time limit), its upload is aborted on the runtime, so its parts are not
/// kept (and billed) until the bucket's lifecycle aborts it a day later.
struct OpenUpload {
    store: S3Store,
    key: ObjectKey,
    id: UploadId,
    /// Completed, or its failure aborted by the copy itself.
    settled: bool,
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (store, key, id) = (self.store.clone(), self.key.clone(), self.id.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            match store.abort_multipart(&key, &id).await {
                Ok(()) => tracing::info!(key = key.as_str(), "a copy in parts stopped unfinished was aborted"),
                Err(e) => {
                    tracing::warn!(key = key.as_str(), error = %e, "a copy in parts stopped unfinished was not aborted")
                }
            }
        });
    }
}

/// One object read through: see [`S3Store::read_digest`].
#[derive(Debug, Clone)]
pub struct ObjectDigest {
    pub sha256: Sha256,
    pub prefix: Vec<u8>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub size: u64,
}

/// What HEAD says of an object.
#[derive(Debug, Clone, Default)]
pub struct ObjectHead {
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    /// S3's storage class (`None`: STANDARD).
    pub storage_class: Option<String>,
    /// `x-amz-meta-*`, names lower case.
    pub metadata: std::collections::HashMap<String, String>,
}

/// An object being read in chunks: see [`S3Store::open_object`].
#[derive(Debug)]
pub struct ObjectReader {
    /// As S3 reported it when the read began.
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    body: aws_sdk_s3::primitives::ByteStream,
}

impl ObjectReader {
    /// The next chunk of the body, `None` at the end. A broken connection is retryable.
    pub async fn next_chunk(&mut self) -> Result<Option<impl AsRef<[u8]> + use<>>, AwsError> {
        self.body.next().await.transpose().map_err(|e| AwsError::Service {
            operation: "GetObject",
            message: format!("reading the body: {e}"),
            retryable: true,
        })
    }
}

/// A presigned request (GET of an object, PUT of a part).
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
        let (object_base, object_prefix) = match public_endpoint.or(sdk.endpoint_url()) {
            Some(endpoint) => (endpoint.trim_end_matches('/').to_owned(), format!("/{bucket}")),
            None => (format!("https://{bucket}.s3.{region}.amazonaws.com"), String::new()),
        };
        let post_url =
            if object_prefix.is_empty() { format!("{object_base}/") } else { format!("{object_base}{object_prefix}") };
        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(conf),
            credentials,
            region,
            bucket,
            post_url,
            object_base,
            object_prefix,
            copy_in_parts_above: matbakh_core::multipart::COPY_IN_PARTS_ABOVE,
            copy_part_size: matbakh_core::multipart::COPY_PART_SIZE,
        })
    }

    /// This store copying objects above `above` bytes in parts of `part_size` (at least S3's
    /// 5 MiB): tests copy small objects as a large one is copied.
    pub fn copying_in_parts(mut self, above: u64, part_size: u64) -> Self {
        self.copy_in_parts_above = above.min(matbakh_core::multipart::SINGLE_COPY_MAX_BYTES);
        self.copy_part_size = part_size;
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// A browser form upload of exactly one object: key, type and size range pinned by the policy.
    pub async fn presign_upload(&self, u: &Upload<'_>) -> Result<PresignedPost, AwsError> {
        let creds = self.credentials().await?;
        let grant = UploadGrant {
            bucket: &self.bucket,
            key: u.key,
            content_type: u.content_type,
            size: u.size.clone(),
            sha256: u.sha256,
            region: &self.region,
            now: u.signed_at,
            expires_in: u.ttl,
        };
        Ok(presign_post(&grant, &creds, self.post_url.clone()))
    }

    async fn credentials(&self) -> Result<Credentials, AwsError> {
        let c = self.credentials.provide_credentials().await.map_err(|e| AwsError::Service {
            operation: "ProvideCredentials",
            message: e.to_string(),
            retryable: true,
        })?;
        Ok(Credentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned(),
            session_token: c.session_token().map(str::to_owned),
        })
    }

    /// A presigned URL for an operation on `key`: `query` names the operation (e.g.
    /// `[("uploads", "")]`), `headers` must be sent with exactly these values (they are signed).
    /// Our own SigV4, because the SDK cannot presign multipart create, list, complete and abort,
    /// and hoists checksum headers into the query string, where S3 ignores them.
    pub async fn presign_operation(
        &self,
        method: &str,
        key: &ObjectKey,
        query: Vec<(&str, String)>,
        headers: Vec<(&str, String)>,
        now: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedGet, AwsError> {
        let path = format!("{}/{}", self.object_prefix, key.as_str());
        let req = matbakh_core::sigv4::PresignRequest {
            method,
            base: &self.object_base,
            path: &path,
            query,
            headers,
            region: &self.region,
            now,
            expires_in_secs: expires_in.as_secs(),
        };
        Ok(PresignedGet {
            url: matbakh_core::sigv4::presign_url(&req, &self.credentials().await?),
            expires_at: now + expires_in,
        })
    }

    /// A GET of `version` (the current one if `None`) that answers with the given
    /// `Content-Disposition` and `Content-Type`.
    pub async fn presign_download(&self, d: &Download<'_>) -> Result<PresignedGet, AwsError> {
        let config = presigning(d.signed_at, d.ttl)?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(d.key.as_str())
            .set_version_id(d.version_id.map(str::to_owned))
            .response_content_type(d.content_type)
            .response_content_disposition(d.disposition)
            .presigned(config)
            .await
            .map_err(|e| AwsError::from_sdk("PresignGetObject", e))?;
        Ok(PresignedGet { url: req.uri().to_owned(), expires_at: d.signed_at + d.ttl })
    }

    /// The current version's size and version id (`None` without versioning), or `None` if
    /// there is no such object.
    pub async fn head_version(&self, key: &ObjectKey) -> Result<Option<(u64, Option<String>)>, AwsError> {
        Ok(self.head_object(key, None).await?.map(|h| (h.size, h.version_id)))
    }

    /// The HEAD (size, ETag, version, type, user metadata) of `version`, or of the current
    /// object if `None`; `None` if there is no such object or version (or it is a delete marker).
    pub async fn head_object(&self, key: &ObjectKey, version: Option<&str>) -> Result<Option<ObjectHead>, AwsError> {
        let key = key.as_str();
        let head = self.client.head_object().bucket(&self.bucket).key(key).set_version_id(version.map(str::to_owned));
        match head.send().await {
            Ok(out) => Ok(Some(ObjectHead {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                etag: out.e_tag().map(|t| t.trim_matches('"').to_owned()),
                version_id: out.version_id().map(str::to_owned),
                content_type: out.content_type().map(str::to_owned),
                content_disposition: out.content_disposition().map(str::to_owned),
                metadata: out.metadata().cloned().unwrap_or_default(),
                storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) || gone(e.raw_response()) => Ok(None),
            Err(e) => Err(AwsError::from_sdk("HeadObject", e)),
        }
    }

    /// Writes a derived object that never changes under its key (a transform result, a variant):
    /// its type, its `Content-Disposition` if any, user metadata (what it was made from) and the
    /// immutable cache header.
    pub async fn put_result(
        &self,
        key: &ObjectKey,
        bytes: Vec<u8>,
        content_type: &str,
        disposition: Option<&str>,
        metadata: &[(&str, &str)],
    ) -> Result<(), AwsError> {
        let key = key.as_str();
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_content_disposition(disposition.map(str::to_owned))
            .cache_control("public, max-age=31536000, immutable");
        for (name, value) in metadata {
            put = put.metadata(*name, *value);
        }
        put.body(bytes.into()).send().await.map_err(|e| AwsError::from_sdk("PutObject", e))?;
        Ok(())
    }

    /// A presigned GET of any key of the bucket (a stored result too large to answer inline).
    pub async fn presign_get(
        &self,
        key: &ObjectKey,
        now: OffsetDateTime,
        expires_in: Duration,
    ) -> Result<PresignedGet, AwsError> {
        let key = key.as_str();
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(now, expires_in)?)
            .await
            .map_err(|e| AwsError::from_sdk("PresignGetObject", e))?;
        Ok(PresignedGet { url: req.uri().to_owned(), expires_at: now + expires_in })
    }

    /// Deletes one version for good (or, without a version id, the object itself).
    pub async fn delete_version(&self, key: &ObjectKey, version_id: Option<&str>) -> Result<(), AwsError> {
        let key = key.as_str();
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteObject", e))?;
        Ok(())
    }

    /// The version id of the delete marker that hides `key` now, if one does (a soft delete).
    pub async fn current_delete_marker(&self, key: &ObjectKey) -> Result<Option<String>, AwsError> {
        let key = key.as_str();
        let out = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(key)
            .max_keys(50)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListObjectVersions", e))?;
        Ok(out
            .delete_markers()
            .iter()
            .find(|m| m.key() == Some(key) && m.is_latest() == Some(true))
            .and_then(|m| m.version_id().map(str::to_owned)))
    }

    /// The object's size, or `None` if there is no such object.
    pub async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, AwsError> {
        Ok(self.head_version(key).await?.map(|(size, _)| size))
    }

    /// The first `len` bytes of `version` (the current object if `None`; fewer if it is
    /// shorter), or `None` if it is gone.
    pub async fn get_head(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        len: usize,
    ) -> Result<Option<Vec<u8>>, AwsError> {
        let key = key.as_str();
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .range(format!("bytes=0-{}", len.saturating_sub(1)))
            .send()
            .await;
        match out {
            Ok(out) => Ok(Some(read_body(out.body).await?)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) || gone(e.raw_response()) => Ok(None),
            // An empty object has no byte 0: S3 answers 416.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => Ok(Some(Vec::new())),
            Err(e) => Err(AwsError::from_sdk("GetObject", e)),
        }
    }

    /// The whole of `version` (the current object if `None`) and its version id, or `None` if
    /// it is gone. The caller checks its size first (this reads it all into memory).
    pub async fn get_object(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, AwsError> {
        let Some(reader) = self.open_object(key, version).await? else { return Ok(None) };
        Ok(Some((read_body(reader.body).await?, reader.version_id)))
    }

    /// Opens `version` (the current object if `None`) for reading in chunks, or `None` if it is
    /// gone.
    pub async fn open_object(&self, key: &ObjectKey, version: Option<&str>) -> Result<Option<ObjectReader>, AwsError> {
        open_with(&self.client, &self.bucket, key.as_str(), version).await
    }

    /// Reads `version` (the current object if `None`) once, streaming: its SHA-256, its first
    /// `keep` bytes (for sniffing and EXIF), ETag and version id. `None` if it is gone. Memory
    /// stays at one chunk plus `keep`.
    pub async fn read_digest(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        keep: usize,
    ) -> Result<Option<ObjectDigest>, AwsError> {
        let Some(mut reader) = self.open_object(key, version).await? else { return Ok(None) };
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut prefix = Vec::with_capacity(keep.min(1 << 20));
        let mut size = 0u64;
        while let Some(chunk) = reader.next_chunk().await? {
            let chunk = chunk.as_ref();
            digest.update(chunk);
            size += chunk.len() as u64;
            let room = keep.saturating_sub(prefix.len());
            prefix.extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
        let mut sha = [0u8; 32];
        sha.copy_from_slice(digest.finish().as_ref());
        let ObjectReader { etag, version_id, .. } = reader;
        Ok(Some(ObjectDigest { sha256: Sha256::from_bytes(sha), prefix, etag, version_id, size }))
    }

    /// Writes a derived object (a variant): immutable, cacheable for a year.
    pub async fn put_derived(&self, key: &ObjectKey, bytes: Vec<u8>, content_type: &str) -> Result<(), AwsError> {
        self.put_result(key, bytes, content_type, None, &[]).await
    }

    /// Copies one version of `from` to `to` (same bucket), keeping its metadata: in parts where
    /// it is large ([`Self::copying_in_parts`]).
    pub async fn copy_version(
        &self,
        from: &ObjectKey,
        version_id: Option<&str>,
        to: &ObjectKey,
    ) -> Result<(), AwsError> {
        self.copy(from, version_id, to, None).await
    }

    /// Copies one version of `from` to `to` (same bucket) with new headers: a public copy the
    /// files CDN serves as `served` says, in one CopyObject (at most 5 GiB: a larger original is
    /// [`Self::publish_in_parts`]). An original's copy keeps no GPS position
    /// (`core::location`): one of a type that may hold it is read (a JPEG's head first: one
    /// whose metadata there holds no position is copied) and, with a position, rewritten and
    /// written instead of copied. One larger than
    /// [`matbakh_core::location::REWRITE_MAX_BYTES`], or whose metadata cannot be walked, gets
    /// no public copy (never served with its position; its variants are).
    pub async fn publish(
        &self,
        from: &ObjectKey,
        version_id: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> Result<(), AwsError> {
        if self.may_hold_location(from, version_id, served).await? {
            return self.publish_without_location(from, version_id, to, served).await;
        }
        self.copy_object(from, version_id, to, Some(served)).await
    }

    /// [`Self::publish`] of an original of any size: in parts where it is large
    /// ([`Self::copying_in_parts`]). Apart from `publish` so that a function that never copies
    /// a large original (the files API) links no copy in parts.
    pub async fn publish_in_parts(
        &self,
        from: &ObjectKey,
        version_id: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> Result<(), AwsError> {
        if self.may_hold_location(from, version_id, served).await? {
            return self.publish_without_location(from, version_id, to, served).await;
        }
        self.copy(from, version_id, to, Some(served)).await
    }

    /// Whether the original `from`, served as `served`, may hold a GPS position: of a type that
    /// may, and (for a JPEG) with a head that does not show it holds none.
    async fn may_hold_location(
        &self,
        from: &ObjectKey,
        version_id: Option<&str>,
        served: &ServedAs,
    ) -> Result<bool, AwsError> {
        use matbakh_core::location;
        let kind = served.content_type.as_str();
        if !location::may_carry_location(kind) || ObjectKey::file_id_of(from.as_str()).is_none() {
            return Ok(false);
        }
        if !location::decided_by_head(kind) {
            return Ok(true);
        }
        // A JPEG's head without a position, whose segments reach the image data, decides.
        let mut head = self.get_head(from, version_id, LOCATION_HEAD_BYTES).await?.unwrap_or_default();
        Ok(location::strip_gps(kind, &mut head) != location::Stripped::Nothing)
    }

    /// [`Self::publish`] of an original that may hold a GPS position: read whole, rewritten in
    /// place (same length) and written with the served headers, or copied if it holds none.
    async fn publish_without_location(
        &self,
        from: &ObjectKey,
        version_id: Option<&str>,
        to: &ObjectKey,
        served: &ServedAs,
    ) -> Result<(), AwsError> {
        use matbakh_core::location::{self, Stripped};
        let size = self.head_object(from, version_id).await?.map_or(0, |h| h.size);
        if size > location::REWRITE_MAX_BYTES {
            tracing::warn!(
                key = from.as_str(),
                size,
                "original that may hold a GPS position too large to rewrite: not copied"
            );
            return Ok(());
        }
        let Some((mut bytes, _)) = self.get_object(from, version_id).await? else {
            return Err(AwsError::Invalid("the original to publish is gone"));
        };
        match location::strip_gps(&served.content_type, &mut bytes) {
            Stripped::Nothing => return self.copy_object(from, version_id, to, Some(served)).await,
            Stripped::Unreadable => {
                tracing::warn!(
                    key = from.as_str(),
                    "original whose metadata cannot be read for a GPS position: not copied"
                );
                return Ok(());
            }
            Stripped::Removed => {}
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(to.as_str())
            .content_type(&served.content_type)
            .cache_control(served.cache_control)
            .set_content_disposition(served.disposition.clone())
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutObject", e))?;
        tracing::info!(key = from.as_str(), "public copy of an original written without its GPS position");
        Ok(())
    }

    /// Copies `version_id` of `from` to `to`, its metadata kept or, with `served`, replaced: in
    /// one CopyObject, or in parts above [`Self::copying_in_parts`]' size (S3 copies at most
    /// 5 GiB in one request, and one request copies at one stream's pace).
    async fn copy(
        &self,
        from: &ObjectKey,
        version_id: Option<&str>,
        to: &ObjectKey,
        served: Option<&ServedAs>,
    ) -> Result<(), AwsError> {
        // A source that is gone is left to CopyObject, which answers for it as it always has.
        if let Some(head) = self.head_object(from, version_id).await?
            && head.size > self.copy_in_parts_above
        {
            // Every part from the object HEAD saw: by its ETag (Garage takes no `versionId` in a
            // copy source, and names a version in HEAD's answer all the same).
            let source = self.copy_source(from, version_id);
            return self.copy_in_parts(&source, &head, to, served).await;
        }
        self.copy_object(from, version_id, to, served).await
    }

    /// [`Self::copy`] in one CopyObject (S3 copies at most 5 GiB so).
    async fn copy_object(
        &self,
        from: &ObjectKey,
        version_id: Option<&str>,
        to: &ObjectKey,
        served: Option<&ServedAs>,
    ) -> Result<(), AwsError> {
        // A copy carries no tags (review 27): the source's (the indexer's `type-class`, which
        // only originals under users/ are archived by) would need s3:GetObjectTagging on it and
        // s3:PutObjectTagging on the copy, which no copier has or needs.
        let mut copy = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to.as_str())
            .copy_source(self.copy_source(from, version_id))
            .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace);
        if let Some(served) = served {
            copy = copy
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .content_type(&served.content_type)
                .cache_control(served.cache_control)
                .set_content_disposition(served.disposition.clone());
        }
        copy.send().await.map_err(|e| AwsError::from_sdk("CopyObject", e))?;
        Ok(())
    }

    /// `x-amz-copy-source` of `version_id` of `key` in this bucket.
    fn copy_source(&self, key: &ObjectKey, version_id: Option<&str>) -> String {
        let encoded = percent_encoding::utf8_percent_encode(key.as_str(), KEY_ESCAPES);
        match version_id {
            Some(v) => format!("{}/{encoded}?versionId={v}", self.bucket),
            None => format!("{}/{encoded}", self.bucket),
        }
    }

    /// [`Self::copy`] of the object `head` describes as a multipart upload of ranges of it
    /// (UploadPartCopy, [`COPY_PARTS_IN_FLIGHT`] at a time), its headers as CopyObject would
    /// have set them (no tags). A failed copy is aborted: no parts left behind, nothing at `to`.
    ///
    /// [`COPY_PARTS_IN_FLIGHT`]: matbakh_core::multipart::COPY_PARTS_IN_FLIGHT
    async fn copy_in_parts(
        &self,
        source: &str,
        head: &ObjectHead,
        to: &ObjectKey,
        served: Option<&ServedAs>,
    ) -> Result<(), AwsError> {
        use futures_util::{StreamExt, TryStreamExt};
        use matbakh_core::multipart::{COPY_PARTS_IN_FLIGHT, part_ranges, part_size_for};
        let create = self.client.create_multipart_upload().bucket(&self.bucket).key(to.as_str());
        let create = match served {
            Some(served) => create
                .content_type(&served.content_type)
                .cache_control(served.cache_control)
                .set_content_disposition(served.disposition.clone()),
            None => create
                .set_content_type(head.content_type.clone())
                .set_content_disposition(head.content_disposition.clone())
                .set_metadata(Some(head.metadata.clone()).filter(|m| !m.is_empty())),
        };
        let created = create.send().await.map_err(|e| AwsError::from_sdk("CreateMultipartUpload", e))?;
        let upload_id = created.upload_id().unwrap_or_default();
        let id = UploadId::parse(upload_id)
            .map_err(|_| AwsError::Corrupt(format!("S3 returned an unusable upload id {upload_id:?}")))?;
        let mut open = OpenUpload { store: self.clone(), key: to.clone(), id, settled: false };
        let ranges = part_ranges(head.size, part_size_for(head.size, self.copy_part_size));
        let if_match = head.etag.as_ref().map(|etag| format!("\"{etag}\""));
        let parts: Result<Vec<CompletedPart>, AwsError> = futures_util::stream::iter(ranges.into_iter().zip(1..))
            .map(|((offset, len), number)| {
                let part = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(to.as_str())
                    .upload_id(upload_id)
                    .part_number(number)
                    .copy_source(source)
                    .copy_source_range(format!("bytes={offset}-{}", offset + len - 1))
                    .set_copy_source_if_match(if_match.clone());
                async move {
                    let out = part.send().await.map_err(|e| AwsError::from_sdk("UploadPartCopy", e))?;
                    let etag = out.copy_part_result().and_then(|r| r.e_tag());
                    let etag = etag.ok_or(AwsError::Invalid("S3 copied a part without an ETag"))?;
                    Ok(CompletedPart::builder().part_number(number).e_tag(etag).build())
                }
            })
            .buffered(COPY_PARTS_IN_FLIGHT)
            .try_collect()
            .await;
        let completed = match parts {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(to.as_str())
                .upload_id(upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("CompleteMultipartUpload", e)),
            Err(e) => Err(e),
        };
        open.settled = true;
        if let Err(e) = completed {
            if let Err(aborted) = self.abort_multipart(to, &open.id).await {
                // The bucket's lifecycle aborts it a day later (abort-incomplete-multipart).
                tracing::warn!(key = to.as_str(), error = %aborted, "a failed copy in parts was not aborted");
            }
            return Err(e);
        }
        tracing::info!(key = to.as_str(), size = head.size, "copied in parts");
        Ok(())
    }

    /// Deletes every object under `prefix` for good (all versions where the bucket keeps them).
    /// Answers how many it removed.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, AwsError> {
        delete_under(&self.client, &self.bucket, prefix).await
    }

    /// Whether anything (a version or a delete marker) is under `prefix`: one listing of one entry.
    pub async fn holds_any(&self, prefix: &str) -> Result<bool, AwsError> {
        holds_any(&self.client, &self.bucket, prefix).await
    }

    /// Deletes for good every version of exactly `key` except `keep` (DECISIONS 28: a settled
    /// key holds one accepted object). Delete markers stay: they are the owner's soft delete.
    /// Answers the version ids it removed.
    pub async fn remove_versions_except(&self, key: &ObjectKey, keep: &str) -> Result<Vec<String>, AwsError> {
        let strays: Vec<String> = key_versions(&self.client, &self.bucket, key.as_str())
            .await?
            .into_iter()
            .filter(|v| !v.delete_marker && v.version_id != keep)
            .map(|v| v.version_id)
            .collect();
        for version in &strays {
            self.delete_version(key, Some(version)).await?;
        }
        Ok(strays)
    }

    /// Aborts every incomplete multipart upload under `prefix`; answers their upload ids.
    pub async fn abort_uploads_under(&self, prefix: &str) -> Result<Vec<String>, AwsError> {
        let (mut aborted, mut key_marker, mut id_marker) = (Vec::new(), None, None);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ListMultipartUploads", e))?;
            for u in out.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    match self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(id).send().await
                    {
                        Ok(_) => {}
                        Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchUpload") => {}
                        Err(e) => return Err(AwsError::from_sdk("AbortMultipartUpload", e)),
                    }
                    aborted.push(id.to_owned());
                }
            }
            if out.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            id_marker = out.next_upload_id_marker().map(str::to_owned);
        }
    }

    /// Starts a multipart upload of one object; with `checksum`, S3 keeps a full-object
    /// checksum of that algorithm (each part's checked on arrival, the whole at completion).
    pub async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: &str,
        checksum: Option<ChecksumAlgorithm>,
    ) -> Result<UploadId, AwsError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .set_checksum_algorithm(checksum.map(|a| aws_sdk_s3::types::ChecksumAlgorithm::from(a.as_str())))
            .set_checksum_type(checksum.map(|_| aws_sdk_s3::types::ChecksumType::FullObject))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateMultipartUpload", e))?;
        let id = out.upload_id().unwrap_or_default();
        UploadId::parse(id).map_err(|_| AwsError::Corrupt(format!("S3 returned an unusable upload id {id:?}")))
    }

    /// A PUT URL for one part, signed for exactly `content_length` bytes when it is known and
    /// for the part's `checksum` when the client declared one (S3 then refuses other bytes).
    pub async fn presign_part(&self, p: &PartUpload<'_>) -> Result<PresignedGet, AwsError> {
        let query = vec![("partNumber", p.part.get().to_string()), ("uploadId", p.upload_id.as_str().to_owned())];
        let mut headers = Vec::new();
        if let Some(len) = p.content_length {
            headers.push(("content-length", len.to_string()));
        }
        if let Some(c) = p.checksum {
            headers.push((c.algorithm().header(), c.value().to_owned()));
        }
        self.presign_operation("PUT", p.key, query, headers, p.signed_at, p.ttl).await
    }

    /// Every part S3 holds for the upload (all pages of ListParts); `None` if S3 knows no
    /// such upload (completed or aborted).
    pub async fn list_parts(
        &self,
        key: &ObjectKey,
        upload_id: &UploadId,
    ) -> Result<Option<Vec<UploadedPart>>, AwsError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(upload_id.as_str())
                .set_part_number_marker(marker.take())
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchUpload") => {
                    return Ok(None);
                }
                Err(e) => return Err(AwsError::from_sdk("ListParts", e)),
            };
            for p in out.parts() {
                let number = PartNumber::new(p.part_number().unwrap_or(0).max(0) as u64)
                    .map_err(|_| AwsError::Corrupt("S3 listed a part without a valid number".into()))?;
                let size = p.size().unwrap_or(0).max(0) as u64;
                let checksum = p.checksum_crc64_nvme().or(p.checksum_crc32_c()).map(str::to_owned);
                parts.push(UploadedPart { number, size, etag: p.e_tag().unwrap_or_default().to_owned(), checksum });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) if !next.is_empty() => marker = Some(next.to_owned()),
                _ => return Ok(Some(parts)),
            }
        }
    }

    /// Completes the upload with `parts`, never overwriting an existing object; answers the
    /// object's ETag. With `integrity`, the parts carry their checksums and S3 checks the
    /// combined full-object checksum against the declared one (if any).
    pub async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &UploadId,
        parts: &[UploadedPart],
        integrity: Option<&Integrity>,
    ) -> Result<String, AwsError> {
        let algorithm = integrity.map(|i| i.algorithm);
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        let part = CompletedPart::builder().part_number(p.number.get() as i32).e_tag(&p.etag);
                        match (algorithm, p.checksum.clone()) {
                            (Some(ChecksumAlgorithm::Crc32c), c) => part.set_checksum_crc32_c(c),
                            (Some(ChecksumAlgorithm::Crc64Nvme), c) => part.set_checksum_crc64_nvme(c),
                            (None, _) => part,
                        }
                        .build()
                    })
                    .collect(),
            ))
            .build();
        let mut request = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id.as_str())
            .multipart_upload(completed)
            .if_none_match("*");
        if let Some(expected) = integrity.and_then(|i| i.full_object.as_ref()) {
            request = request.checksum_type(aws_sdk_s3::types::ChecksumType::FullObject);
            request = match expected.algorithm() {
                ChecksumAlgorithm::Crc32c => request.checksum_crc32_c(expected.value()),
                ChecksumAlgorithm::Crc64Nvme => request.checksum_crc64_nvme(expected.value()),
            };
        }
        match request.send().await {
            Ok(out) => Ok(out.e_tag().unwrap_or_default().to_owned()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Err(AwsError::AlreadyExists),
            Err(e)
                if e.as_service_error()
                    .and_then(|s| s.meta().code())
                    .is_some_and(|c| matches!(c, "BadDigest" | "InvalidDigest" | "InvalidRequest"))
                    && integrity.is_some() =>
            {
                Err(AwsError::ChecksumMismatch(
                    e.as_service_error().and_then(|s| s.meta().message()).unwrap_or("checksum mismatch").to_owned(),
                ))
            }
            Err(e) => Err(AwsError::from_sdk("CompleteMultipartUpload", e)),
        }
    }

    /// Aborts the upload; an upload S3 no longer knows is already gone, which is fine.
    pub async fn abort_multipart(&self, key: &ObjectKey, upload_id: &UploadId) -> Result<(), AwsError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(AwsError::from_sdk("AbortMultipartUpload", e)),
        }
    }
}

/// The head of a JPEG original read to find its EXIF and XMP when it is published: both come
/// before the image data, each segment at most 64 KiB.
pub const LOCATION_HEAD_BYTES: usize = 256 << 10;

/// Characters escaped in a `CopySource` key: everything but unreserved characters and `/`.
const KEY_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

async fn read_body(body: aws_sdk_s3::primitives::ByteStream) -> Result<Vec<u8>, AwsError> {
    body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| AwsError::Service {
        operation: "GetObject",
        message: format!("reading the body: {e}"),
        retryable: true,
    })
}

fn presigning(now: OffsetDateTime, expires_in: Duration) -> Result<PresigningConfig, AwsError> {
    PresigningConfig::builder()
        .start_time(SystemTime::from(now))
        .expires_in(expires_in)
        .build()
        .map_err(|e| AwsError::Config(format!("presigning: {e}")))
}

/// Starts reading `version` (the current one if `None`) of `key` in `bucket` through `client`;
/// `None` if there is no such object or version.
pub(crate) async fn open_with(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Option<ObjectReader>, AwsError> {
    match client.get_object().bucket(bucket).key(key).set_version_id(version.map(str::to_owned)).send().await {
        Ok(out) => Ok(Some(ObjectReader {
            size: out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            etag: out.e_tag().map(|t| t.trim_matches('"').to_owned()),
            version_id: out.version_id().map(str::to_owned),
            body: out.body,
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) || gone(e.raw_response()) => Ok(None),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_invalid_object_state()) => Err(AwsError::NotRestored),
        Err(e) => Err(AwsError::from_sdk("GetObject", e)),
    }
}

/// Deletes every object under `prefix` of `bucket` for good (all versions where the bucket keeps
/// them, a DeleteObjects a page). Answers how many it removed.
/// Whether `bucket` holds anything (a version or a delete marker) under `prefix`.
pub(crate) async fn holds_any(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<bool, AwsError> {
    let out = client
        .list_object_versions()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ListObjectVersions", e))?;
    Ok(!out.versions().is_empty() || !out.delete_markers().is_empty())
}

/// The pages of a ListObjectVersions of `bucket` (under `prefix`, if any), one request a page:
/// S3 pages it with two markers, which the SDK's paginators do not follow.
pub(crate) struct VersionPages<'a> {
    client: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    prefix: Option<&'a str>,
    /// The key and version markers of the next page; `None` once the last page was given.
    next: Option<(Option<String>, Option<String>)>,
}

impl<'a> VersionPages<'a> {
    pub(crate) fn new(client: &'a aws_sdk_s3::Client, bucket: &'a str, prefix: Option<&'a str>) -> Self {
        VersionPages { client, bucket, prefix, next: Some((None, None)) }
    }

    pub(crate) async fn next(
        &mut self,
    ) -> Result<Option<aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput>, AwsError> {
        let Some((key_marker, version_marker)) = self.next.take() else { return Ok(None) };
        let page = self
            .client
            .list_object_versions()
            .bucket(self.bucket)
            .set_prefix(self.prefix.map(str::to_owned))
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListObjectVersions", e))?;
        if page.is_truncated() == Some(true) {
            self.next =
                Some((page.next_key_marker().map(str::to_owned), page.next_version_id_marker().map(str::to_owned)));
        }
        Ok(Some(page))
    }
}

pub(crate) async fn delete_under(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<usize, AwsError> {
    let mut removed = 0;
    let mut pages = VersionPages::new(client, bucket, Some(prefix));
    while let Some(out) = pages.next().await? {
        let versions = out.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = out.delete_markers().iter().map(|m| (m.key(), m.version_id()));
        let page: Vec<ObjectIdentifier> = versions
            .chain(markers)
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key?)
                    .set_version_id(version.filter(|v| *v != "null").map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        // One DeleteObjects a page (up to 1,000 versions), not a request a version.
        if !page.is_empty() {
            removed += page.len();
            let delete = Delete::builder()
                .set_objects(Some(page))
                .quiet(true)
                .build()
                .map_err(|e| AwsError::Config(e.to_string()))?;
            let done = client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DeleteObjects", e))?;
            if let Some(e) = done.errors().first() {
                return Err(AwsError::Service {
                    operation: "DeleteObjects",
                    message: format!("{}: {}", e.key().unwrap_or_default(), e.message().unwrap_or_default()),
                    retryable: true,
                });
            }
        }
    }
    Ok(removed)
}

/// Every version and delete marker of exactly `key` in `bucket`, all pages (a listing by prefix
/// also yields longer keys; they are left out).
pub(crate) async fn key_versions(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<Version>, AwsError> {
    let mut out = Vec::new();
    let mut pages = VersionPages::new(client, bucket, Some(key));
    while let Some(page) = pages.next().await? {
        for v in page.versions().iter().filter(|v| v.key() == Some(key)) {
            out.push(Version {
                version_id: v.version_id().unwrap_or("null").to_owned(),
                is_latest: v.is_latest().unwrap_or(false),
                delete_marker: false,
            });
        }
        for m in page.delete_markers().iter().filter(|m| m.key() == Some(key)) {
            out.push(Version {
                version_id: m.version_id().unwrap_or("null").to_owned(),
                is_latest: m.is_latest().unwrap_or(false),
                delete_marker: true,
            });
        }
    }
    Ok(out)
}

/// Whether S3 answered that the object or version is not there: 404 (`NoSuchVersion` has no
/// modelled error), or 405 for a version that is a delete marker.
fn gone(raw: Option<&aws_sdk_s3::config::http::HttpResponse>) -> bool {
    raw.is_some_and(|r| matches!(r.status().as_u16(), 404 | 405))
}

/// The archive tier ([`matbakh_core::archival`]): tags the lifecycle rules filter on, and
/// restores of archived originals.
impl S3Store {
    /// Replaces the tag set of `version` of `key` (a subresource: no new version is written).
    pub async fn set_tags(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        tags: &[(&str, &str)],
    ) -> Result<(), AwsError> {
        use aws_sdk_s3::types::{Tag, Tagging};
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| AwsError::Invalid("tags"))?;
        let tagging = Tagging::builder().set_tag_set(Some(tag_set)).build().map_err(|_| AwsError::Invalid("tags"))?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version.map(str::to_owned))
            .tagging(tagging)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("PutObjectTagging", e))
    }

    /// Asks for a restored copy of the archived `version` of `key`, readable for `days`; one
    /// already under way (`RestoreAlreadyInProgress`) is no error.
    pub async fn restore(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        tier: matbakh_core::archival::RestoreTier,
        days: u32,
    ) -> Result<(), AwsError> {
        use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
        let job = GlacierJobParameters::builder()
            .tier(Tier::from(tier.as_str()))
            .build()
            .map_err(|_| AwsError::Invalid("restore tier"))?;
        let request = RestoreRequest::builder().days(days as i32).glacier_job_parameters(job).build();
        let out = self
            .client
            .restore_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version.map(str::to_owned))
            .restore_request(request)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("RestoreAlreadyInProgress") => Ok(()),
            Err(e) => Err(AwsError::from_sdk("RestoreObject", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::sync::Notify;

    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// An S3 endpoint holding one object of `size` bytes (ETag `abc`) that copies
    /// it in parts, refusing the copy of part `refused` (403) and never answering that of part
    /// `hung`. Answers a store of it (copying in parts of 5 MiB above 5 MiB), the requests it
    /// read, `METHOD path?query` and for a part its source, range and condition, in order, and
    /// what it signals when part `hung` is asked for, and at each abort (DELETE).
    async fn s3(size: u64, refused: Option<u32>, hung: Option<u32>) -> (S3Store, Arc<Mutex<Vec<String>>>, Signals) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let signals = Signals::default();
        let (log, signal) = (seen.clone(), signals.clone());
        let (port, _) = crate::http::tests::server(move |stream, _| {
            let (log, signal) = (log.clone(), signal.clone());
            async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut target = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        stream.read_line(&mut header).await.unwrap();
                        if header == "\r\n" {
                            break;
                        }
                        let (name, value) = header.trim_end().split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            n if n.starts_with("x-amz-copy-source") => target.push_str(&format!(" {n}={}", value.trim())),
                            _ => {}
                        }
                    }
                    stream.read_exact(&mut vec![0; length]).await.unwrap();
                    let part = target.split(['?', '&', ' ']).find_map(|p| p.strip_prefix("partNumber="));
                    let part = part.map(|n| n.parse::<u32>().unwrap());
                    let (status, headers, body) = match (line.split(' ').next().unwrap(), part) {
                        ("HEAD", _) => ("200 OK", format!("content-length: {size}\r\netag: \"abc\"\r\n"), String::new()),
                        ("POST", None) if target.contains("?uploads") => ("200 OK", String::new(), "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>to</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>".to_owned()),
                        ("PUT", Some(n)) if Some(n) == refused => ("403 Forbidden", String::new(), "<Error><Code>AccessDenied</Code><Message>refused</Message></Error>".to_owned()),
                        ("PUT", Some(n)) => ("200 OK", String::new(), format!("<CopyPartResult><ETag>\"e{n}\"</ETag></CopyPartResult>")),
                        ("PUT", None) => ("200 OK", String::new(), "<CopyObjectResult><ETag>\"x\"</ETag></CopyObjectResult>".to_owned()),
                        ("POST", None) => ("200 OK", String::new(), "<CompleteMultipartUploadResult><Key>to</Key><ETag>\"x-3\"</ETag></CompleteMultipartUploadResult>".to_owned()),
                        ("DELETE", None) => ("204 No Content", String::new(), String::new()),
                        _ => ("400 Bad Request", String::new(), "<Error><Code>Unexpected</Code></Error>".to_owned()),
                    };
                    log.lock().unwrap().push(target);
                    if part.is_some() && part == hung {
                        signal.hung.notify_one();
                        return std::future::pending().await;
                    }
                    if line.starts_with("DELETE") {
                        signal.aborted.notify_one();
                    }
                    let length = if line.starts_with("HEAD") { String::new() } else { format!("content-length: {}\r\n", body.len()) };
                    let answer = format!("HTTP/1.1 {status}\r\n{headers}{length}x-amz-request-id: t\r\n\r\n{body}");
                    stream.write_all(answer.as_bytes()).await.unwrap();
                }
            }
        })
        .await;
        let sdk = aws_types::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new("key", "secret", None, None, "test")))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .http_client(crate::http::sdk_http_client())
            .build();
        (S3Store::new(&sdk, "b", None).unwrap().copying_in_parts(5 * MIB, 5 * MIB), seen, signals)
    }

    /// What the fake S3 tells a test: a hung part was asked for, an upload was aborted.
    #[derive(Clone, Default)]
    struct Signals {
        hung: Arc<Notify>,
        aborted: Arc<Notify>,
    }

    fn key(k: &str) -> ObjectKey {
        ObjectKey::from_stored(k.to_owned())
    }

    #[tokio::test]
    async fn an_object_above_the_limit_is_copied_in_ranges_of_the_object_seen() {
        let (store, seen, _) = s3(12 * MIB + 1, None, None).await;
        store.copy_version(&key("users/u/f/a.mp4"), None, &key("quarantine/users/u/f/a.mp4")).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        let parts: Vec<&String> = seen.iter().filter(|r| r.starts_with("PUT")).collect();
        assert_eq!(parts.len(), 3, "{seen:#?}");
        for (n, range) in [(1, "bytes=0-5242879"), (2, "bytes=5242880-10485759"), (3, "bytes=10485760-12582912")] {
            let part = parts.iter().find(|p| p.contains(&format!("partNumber={n}&"))).unwrap();
            assert!(part.contains(&format!("x-amz-copy-source-range={range}")), "{part}");
            assert!(part.contains("x-amz-copy-source=b/users/u/f/a.mp4 "), "{part}");
            assert!(part.contains("x-amz-copy-source-if-match=\"abc\""), "{part}");
        }
        let last = seen.last().unwrap();
        assert!(last.starts_with("POST /b/quarantine/users/u/f/a.mp4?") && last.ends_with("uploadId=u1"), "{seen:#?}");
        assert!(!seen.iter().any(|r| r.starts_with("DELETE")), "{seen:#?}");
    }

    #[tokio::test]
    async fn a_copy_in_parts_that_fails_is_aborted_and_never_completed() {
        let (store, seen, _) = s3(12 * MIB, Some(2), None).await;
        let err = store.copy_version(&key("users/u/f/a.mp4"), None, &key("quarantine/users/u/f/a.mp4")).await;
        assert!(err.is_err());
        let seen = seen.lock().unwrap().clone();
        let last = seen.last().unwrap();
        assert!(
            last.starts_with("DELETE /b/quarantine/users/u/f/a.mp4?") && last.ends_with("uploadId=u1"),
            "{seen:#?}"
        );
        assert!(!seen.iter().any(|r| r.starts_with("POST") && r.contains("uploadId=")), "completed: {seen:#?}");
    }

    #[tokio::test]
    async fn an_object_within_the_limit_is_copied_in_one_request() {
        let (store, seen, _) = s3(5 * MIB, None, None).await;
        store.copy_version(&key("users/u/f/a.mp4"), None, &key("quarantine/users/u/f/a.mp4")).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:#?}");
        assert_eq!(seen[1], "PUT /b/quarantine/users/u/f/a.mp4?x-id=CopyObject x-amz-copy-source=b/users/u/f/a.mp4");
    }

    /// A copy its caller stops waiting for (the thumbnailer's time limit) aborts its upload on
    /// the runtime: its parts are not kept until the bucket's lifecycle removes them a day later.
    #[tokio::test]
    async fn a_copy_in_parts_stopped_unfinished_is_aborted() {
        let (store, seen, signals) = s3(12 * MIB, None, Some(3)).await;
        let (from, to) = (key("users/u/f/a.mp4"), key("quarantine/users/u/f/a.mp4"));
        let copy = store.copy_version(&from, None, &to);
        // Stopped once part 3 is asked for, which never answers: as a time limit would stop it.
        tokio::select! {
            done = copy => panic!("finished: {done:?}"),
            () = signals.hung.notified() => {}
        }
        tokio::time::timeout(Duration::from_secs(10), signals.aborted.notified()).await.expect("no abort");
        let seen = seen.lock().unwrap().clone();
        assert!(seen.iter().any(|r| r.starts_with("DELETE") && r.ends_with("uploadId=u1")), "{seen:#?}");
        assert!(!seen.iter().any(|r| r.starts_with("POST") && r.contains("uploadId=")), "completed: {seen:#?}");
    }
}
