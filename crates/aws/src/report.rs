//! The storage report's adapters ([`matbakh_app::reports`]): the bucket's object versions from
//! its S3 Inventory (the latest daily report, CSV.gz, streamed chunk by chunk) or, where no
//! inventory exists yet (locally, or a new stack's first day), from listing every version;
//! the CDNs' access logs of the last days (gzipped, streamed the same way); the reports kept as
//! JSON under `reports/` of the reports bucket.

use std::io::Write;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use matbakh_app::ports::{InventorySource, PortError, PortResult, ReportStore, TransferSink, TransferSource};
use matbakh_core::report::InventoryRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::AwsError;

/// The bucket's versions: from the inventory under `inventory` (bucket, prefix) when a report
/// is there, else by listing `bucket`.
#[derive(Clone)]
pub struct BucketInventory {
    client: Client,
    bucket: String,
    inventory: Option<(String, String)>,
}

impl BucketInventory {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>, inventory: Option<(String, String)>) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build();
        BucketInventory { client: Client::from_conf(config), bucket: bucket.into(), inventory }
    }

    /// The newest `manifest.json` under the inventory prefix (its folders are dated, so the
    /// greatest key is the latest).
    async fn latest_manifest(&self, bucket: &str, prefix: &str) -> Result<Option<String>, AwsError> {
        let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
        let mut latest: Option<String> = None;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ListObjectsV2", e))?;
            for key in page.contents().iter().filter_map(|o| o.key()) {
                if key.ends_with("/manifest.json") && latest.as_deref().is_none_or(|l| key > l) {
                    latest = Some(key.to_owned());
                }
            }
        }
        Ok(latest)
    }

    async fn scan_inventory(
        &self,
        bucket: &str,
        manifest_key: &str,
        each: &mut (dyn FnMut(InventoryRow) + Send),
    ) -> Result<(), AwsError> {
        let manifest = self.get(bucket, manifest_key).await?;
        let manifest: Manifest = serde_json::from_slice(&manifest).map_err(|e| AwsError::Service {
            operation: "manifest.json",
            message: e.to_string(),
            retryable: false,
        })?;
        if manifest.file_format != "CSV" {
            return Err(AwsError::Invalid("the inventory is not CSV (the template configures CSV)"));
        }
        let columns = Columns::of(&manifest.file_schema)?;
        for file in &manifest.files {
            GzLines::of_object(&self.client, bucket, &file.key, &mut |line| {
                each(columns.row(line)?);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetObject", e))?;
        let bytes = out.body.collect().await.map_err(|e| AwsError::Service {
            operation: "GetObject",
            message: e.to_string(),
            retryable: true,
        })?;
        Ok(bytes.to_vec())
    }

    async fn scan_listing(&self, each: &mut (dyn FnMut(InventoryRow) + Send)) -> Result<(), AwsError> {
        let mut pages = crate::s3::VersionPages::new(&self.client, &self.bucket, None);
        while let Some(page) = pages.next().await? {
            for v in page.versions() {
                each(InventoryRow {
                    key: v.key().unwrap_or_default().to_owned(),
                    size: v.size().unwrap_or(0).max(0) as u64,
                    last_modified: to_time(v.last_modified()),
                    storage_class: v.storage_class().map_or("STANDARD", |c| c.as_str()).to_owned(),
                    is_latest: v.is_latest().unwrap_or(true),
                    is_delete_marker: false,
                });
            }
            for m in page.delete_markers() {
                each(InventoryRow {
                    key: m.key().unwrap_or_default().to_owned(),
                    size: 0,
                    last_modified: to_time(m.last_modified()),
                    storage_class: "STANDARD".into(),
                    is_latest: m.is_latest().unwrap_or(true),
                    is_delete_marker: true,
                });
            }
        }
        Ok(())
    }
}

fn to_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> OffsetDateTime {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[async_trait]
impl InventorySource for BucketInventory {
    async fn scan(&self, each: &mut (dyn FnMut(InventoryRow) + Send)) -> PortResult<&'static str> {
        if let Some((bucket, prefix)) = &self.inventory
            && let Some(manifest) = self.latest_manifest(bucket, prefix).await?
        {
            tracing::info!(manifest, "reading the inventory");
            self.scan_inventory(bucket, &manifest, each).await?;
            return Ok("inventory");
        }
        self.scan_listing(each).await?;
        Ok("listing")
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    file_format: String,
    file_schema: String,
    files: Vec<ManifestFile>,
}

#[derive(serde::Deserialize)]
struct ManifestFile {
    key: String,
}

/// Where each field is in a row, by the manifest's `fileSchema`.
struct Columns {
    key: usize,
    size: Option<usize>,
    last_modified: Option<usize>,
    storage_class: Option<usize>,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
}

impl Columns {
    fn of(schema: &str) -> Result<Self, AwsError> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let at = |name: &str| names.iter().position(|n| *n == name);
        Ok(Columns {
            key: at("Key").ok_or(AwsError::Invalid("the inventory has no Key column"))?,
            size: at("Size"),
            last_modified: at("LastModifiedDate"),
            storage_class: at("StorageClass"),
            is_latest: at("IsLatest"),
            is_delete_marker: at("IsDeleteMarker"),
        })
    }

    /// One CSV line (fields quoted; keys URL-encoded, so no quote or newline inside).
    fn row(&self, line: &str) -> Result<InventoryRow, AwsError> {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim().trim_matches('"')).collect();
        let field = |i: Option<usize>| i.and_then(|i| fields.get(i).copied()).unwrap_or("");
        let key = matbakh_core::events::decode_key(field(Some(self.key)))
            .map_err(|_| AwsError::Invalid("an inventory key is not UTF-8"))?;
        Ok(InventoryRow {
            key,
            size: field(self.size).parse().unwrap_or(0),
            last_modified: OffsetDateTime::parse(field(self.last_modified), &Rfc3339)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            storage_class: Some(field(self.storage_class)).filter(|c| !c.is_empty()).unwrap_or("STANDARD").to_owned(),
            is_latest: field(self.is_latest) != "false",
            is_delete_marker: field(self.is_delete_marker) == "true",
        })
    }
}

/// Gzipped text in, lines out, holding at most one chunk and one partial line: the inventory's
/// CSV files and the CDNs' access logs, however large, pass through it chunk by chunk.
struct GzLines {
    gunzip: flate2::write::MultiGzDecoder<Vec<u8>>,
}

type LineSink<'a> = dyn FnMut(&str) -> Result<(), AwsError> + Send + 'a;

impl GzLines {
    fn new() -> Self {
        GzLines { gunzip: flate2::write::MultiGzDecoder::new(Vec::new()) }
    }

    fn feed(&mut self, chunk: &[u8], each: &mut LineSink) -> Result<(), AwsError> {
        self.gunzip.write_all(chunk).map_err(gzip_error)?;
        self.emit_complete(each)
    }

    fn finish(mut self, each: &mut LineSink) -> Result<(), AwsError> {
        self.gunzip.flush().map_err(gzip_error)?;
        self.emit_complete(each)?;
        let rest = std::mem::take(self.gunzip.get_mut());
        let line = String::from_utf8_lossy(&rest);
        if !line.trim().is_empty() {
            each(line.trim())?;
        }
        Ok(())
    }

    fn emit_complete(&mut self, each: &mut LineSink) -> Result<(), AwsError> {
        let buffer = self.gunzip.get_mut();
        let Some(end) = buffer.iter().rposition(|b| *b == b'\n') else { return Ok(()) };
        let complete: Vec<u8> = buffer.drain(..=end).collect();
        for line in String::from_utf8_lossy(&complete).lines().filter(|l| !l.trim().is_empty()) {
            each(line)?;
        }
        Ok(())
    }

    /// Every line of the gzipped object `key` of `bucket`, streamed.
    async fn of_object(client: &Client, bucket: &str, key: &str, each: &mut LineSink<'_>) -> Result<(), AwsError> {
        let out =
            client.get_object().bucket(bucket).key(key).send().await.map_err(|e| AwsError::from_sdk("GetObject", e))?;
        let mut body = out.body;
        let mut lines = GzLines::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| AwsError::Service {
            operation: "GetObject",
            message: e.to_string(),
            retryable: true,
        })? {
            lines.feed(&chunk, each)?;
        }
        lines.finish(each)
    }
}

fn gzip_error(e: std::io::Error) -> AwsError {
    AwsError::Service { operation: "gunzip", message: e.to_string(), retryable: false }
}

/// The CDNs' standard access logs in the logs bucket ([`matbakh_core::cdn_log`]): for each CDN
/// its name and where its files are (`cdn-files/` and the distribution's id).
#[derive(Clone)]
pub struct CdnLogs {
    client: Client,
    bucket: String,
    cdns: Vec<CdnLogPlace>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct CdnLogPlace {
    name: String,
    /// The logging prefix and the distribution's id (`cdn-files/E2ABC`).
    place: String,
}

impl CdnLogs {
    /// The logs in `bucket` of the CDNs in `cdns`: `files=cdn-files/E2ABC,web=cdn-web/E3DEF`
    /// (name, the logging prefix, the distribution's id).
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>, cdns: &str) -> Result<Self, String> {
        let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build();
        Ok(CdnLogs { client: Client::from_conf(config), bucket: bucket.into(), cdns: Self::places(cdns)? })
    }

    fn places(cdns: &str) -> Result<Vec<CdnLogPlace>, String> {
        cdns.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|cdn| {
                let (name, place) =
                    cdn.split_once('=').ok_or_else(|| format!("CDN_LOGS: {cdn:?} is not name=prefix/distribution"))?;
                Ok(CdnLogPlace { name: name.to_owned(), place: place.to_owned() })
            })
            .collect()
    }

    async fn scan_day(&self, cdn: &CdnLogPlace, day: time::Date, each: &mut TransferSink<'_>) -> Result<u64, AwsError> {
        use matbakh_core::cdn_log;
        let prefix = cdn_log::day_prefix(&cdn.place, day);
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        let mut files = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ListObjectsV2", e))?;
            for key in page.contents().iter().filter_map(|o| o.key()).filter(|k| k.ends_with(".gz")) {
                // A file names its fields; CloudFront's current ones until it does.
                let mut columns = cdn_log::standard_columns();
                GzLines::of_object(&self.client, &self.bucket, key, &mut |line| {
                    if line.starts_with('#') {
                        if let Some(named) = cdn_log::Columns::of(line) {
                            columns = named;
                        }
                    } else if let Some(request) = columns.request(line) {
                        each(&cdn.name, request);
                    }
                    Ok(())
                })
                .await?;
                files += 1;
            }
        }
        Ok(files)
    }
}

#[async_trait]
impl TransferSource for CdnLogs {
    async fn scan(&self, days: &[time::Date], each: &mut TransferSink<'_>) -> PortResult<u64> {
        let mut files = 0;
        for cdn in &self.cdns {
            for day in days {
                files += self.scan_day(cdn, *day, each).await?;
            }
        }
        Ok(files)
    }
}

/// Reports as `reports/{day}.json` and `reports/latest.json` in a bucket.
#[derive(Clone)]
pub struct ReportBucket {
    client: Client,
    bucket: String,
}

const REPORTS: &str = "reports/";

impl ReportBucket {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build();
        ReportBucket { client: Client::from_conf(config), bucket: bucket.into() }
    }

    async fn put(&self, key: String, json: Vec<u8>) -> Result<(), AwsError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(json.into())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("PutObject", e))
    }
}

#[async_trait]
impl ReportStore for ReportBucket {
    async fn save(&self, day: &str, dated: Vec<u8>, latest: Vec<u8>) -> PortResult<()> {
        self.put(format!("{REPORTS}{day}.json"), dated).await?;
        Ok(self.put(format!("{REPORTS}latest.json"), latest).await?)
    }

    async fn latest(&self) -> PortResult<Option<Vec<u8>>> {
        let out = self.client.get_object().bucket(&self.bucket).key(format!("{REPORTS}latest.json")).send().await;
        match out {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| PortError::Unavailable { operation: "GetObject", message: e.to_string() })?;
                Ok(Some(bytes.to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(AwsError::from_sdk("GetObject", e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzipped_csv_arrives_in_any_chunks_and_gives_every_row() {
        let schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, StorageClass";
        let columns = Columns::of(schema).unwrap();
        let csv = "\"b\",\"users/u-1/f/Men%C3%BC+2026.pdf\",\"v1\",\"true\",\"false\",\"2048\",\"2026-11-01T10:00:00.000Z\",\"GLACIER\"\n\
                   \"b\",\"users/u-1/f/old.pdf\",\"v0\",\"false\",\"true\",\"\",\"2026-10-01T10:00:00.000Z\",\"\"\n\
                   \"b\",\"derived/f/w320.webp\",\"v2\",\"true\",\"false\",\"512\",\"2026-11-02T10:00:00.000Z\",\"STANDARD\"";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(csv.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        for chunk_size in [1, 7, gz.len()] {
            let mut rows = Vec::new();
            let mut lines = GzLines::new();
            let mut each = |line: &str| {
                rows.push(columns.row(line)?);
                Ok(())
            };
            for chunk in gz.chunks(chunk_size) {
                lines.feed(chunk, &mut each).unwrap();
            }
            lines.finish(&mut each).unwrap();
            assert_eq!(rows.len(), 3, "chunks of {chunk_size}");
            assert_eq!(rows[0].key, "users/u-1/f/Menü 2026.pdf");
            assert_eq!((rows[0].size, rows[0].storage_class.as_str(), rows[0].is_latest), (2048, "GLACIER", true));
            assert!(rows[1].is_delete_marker && !rows[1].is_latest);
            assert_eq!(rows[2].last_modified, time::macros::datetime!(2026-11-02 10:00 UTC));
        }
        assert!(Columns::of("Bucket, Size").is_err());
    }

    #[test]
    fn cdn_log_places_are_read_from_the_setting() {
        let places = CdnLogs::places("files=cdn-files/E2ABC, web=cdn-web/E3DEF,").unwrap();
        assert_eq!(places[0], CdnLogPlace { name: "files".into(), place: "cdn-files/E2ABC".into() });
        assert_eq!(places[1], CdnLogPlace { name: "web".into(), place: "cdn-web/E3DEF".into() });
        let local = CdnLogs::places("files=cdn-files/").unwrap();
        assert_eq!(local[0], CdnLogPlace { name: "files".into(), place: "cdn-files/".into() });
        assert!(CdnLogs::places("cdn-files/E2ABC").is_err());
    }
}
