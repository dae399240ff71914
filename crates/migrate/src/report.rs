//! `migrate report`: what a run did, from its ledger rows (not the live counters): JSON, a
//! CSV of the failures, and a summary for people.

use std::collections::BTreeMap;

use matbakh_aws::ledger::LedgerRow;
use matbakh_core::migration::RowStatus;
use serde::Serialize;

use crate::mapping::csv_field;
use crate::metadata::{MetadataReport, Mismatch};
use crate::{Context, MigrateError};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub run: String,
    pub state: String,
    pub source: String,
    pub target: String,
    pub rule: String,
    pub created_at: String,
    pub files: u64,
    pub bytes: u64,
    pub copied_files: u64,
    pub copied_bytes: u64,
    pub pending_files: u64,
    pub failed_files: u64,
    pub failures_by_reason: BTreeMap<String, u64>,
    /// Attempts beyond the first, over all files.
    pub retries: u64,
    pub active_seconds: f64,
    pub bytes_per_second: f64,
    /// Rows with both checksums planned (CRC64NVME for S3, SHA-256 for the platform).
    pub rows_with_checksums: u64,
    /// Copied rows: each was sent with its CRC64NVME and accepted by S3 only if it matched.
    pub copied_s3_checked: u64,
    pub checksum_coverage: f64,
    /// `plan --metadata`: files that took their legacy row, and every row and file that did
    /// not meet (counted from the run's `metadata-mismatches.jsonl`, the first of each listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_metadata: Option<MetadataReport>,
}

/// Counts over a run's rows, added a page at a time.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Rows whose file took a legacy database row (`plan --metadata`).
    with_legacy: u64,
    files: u64,
    bytes: u64,
    copied: u64,
    copied_bytes: u64,
    pending: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    retries: u64,
    with_checksums: u64,
}

impl Counts {
    pub fn add(&mut self, rows: &[LedgerRow]) {
        for r in rows {
            self.files += 1;
            self.bytes += r.entry.size;
            self.retries += u64::from(r.attempts.saturating_sub(1));
            self.with_checksums += u64::from(!r.entry.crc64nvme.is_empty() && !r.entry.sha256.is_empty());
            self.with_legacy += u64::from(r.entry.legacy.is_some());
            match r.status {
                RowStatus::Copied => {
                    self.copied += 1;
                    self.copied_bytes += r.entry.size;
                }
                RowStatus::Pending => self.pending += 1,
                RowStatus::Failed => {
                    self.failed += 1;
                    let reason = r.reason.map(|r| r.to_string()).unwrap_or_else(|| "unknown".into());
                    *self.failures.entry(reason).or_default() += 1;
                }
            }
        }
    }

    pub fn report(self, record: &matbakh_aws::ledger::RunRecord) -> Report {
        // A run the Lambda workers copied counts its wall time (as `migrate status` does).
        let active = crate::control::active_seconds(record);
        Report {
            run: record.id.to_string(),
            state: record.state.to_string(),
            source: record.source.clone(),
            target: record.target.clone(),
            rule: record.rule.clone(),
            created_at: record.created_at.clone(),
            files: self.files,
            bytes: self.bytes,
            copied_files: self.copied,
            copied_bytes: self.copied_bytes,
            pending_files: self.pending,
            failed_files: self.failed,
            failures_by_reason: self.failures,
            retries: self.retries,
            active_seconds: active,
            bytes_per_second: if active > 0.0 { self.copied_bytes as f64 / active } else { 0.0 },
            rows_with_checksums: self.with_checksums,
            copied_s3_checked: self.copied,
            checksum_coverage: if self.files == 0 { 1.0 } else { self.with_checksums as f64 / self.files as f64 },
            legacy_metadata: None,
        }
    }
}

/// `seq,source,key,size,reason,attempts,message`, one line per failed row.
pub fn failures_csv(rows: &[LedgerRow]) -> String {
    let mut out = String::from("seq,source,key,size,reason,attempts,message\n");
    for r in rows.iter().filter(|r| r.status == RowStatus::Failed) {
        let fields = [
            r.entry.seq.to_string(),
            csv_field(&r.entry.source),
            csv_field(&r.entry.key),
            r.entry.size.to_string(),
            r.reason.map(|x| x.to_string()).unwrap_or_default(),
            r.attempts.to_string(),
            csv_field(r.message.as_deref().unwrap_or("")),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

pub fn human(r: &Report) -> String {
    let gib = |b: u64| b as f64 / (1024.0 * 1024.0 * 1024.0);
    let mut out = format!(
        "run {} ({})\n  {} -> {} [{}]\n  files: {} planned, {} copied, {} pending, {} failed\n  bytes: {:.3} GiB planned, {:.3} GiB copied\n  time copying: {:.1} s, {:.1} MiB/s, {} retries\n  checksums: {}/{} rows planned with CRC64NVME + SHA-256; {} copies checked by S3 on arrival\n",
        r.run,
        r.state,
        r.source,
        r.target,
        r.rule,
        r.files,
        r.copied_files,
        r.pending_files,
        r.failed_files,
        gib(r.bytes),
        gib(r.copied_bytes),
        r.active_seconds,
        r.bytes_per_second / (1024.0 * 1024.0),
        r.retries,
        r.rows_with_checksums,
        r.files,
        r.copied_s3_checked
    );
    for (reason, n) in &r.failures_by_reason {
        out.push_str(&format!("  failed, {reason}: {n}\n"));
    }
    if let Some(m) = &r.legacy_metadata {
        out.push_str(&format!(
            "  legacy metadata: {} file(s) took their row; {} file(s) without a row, {} row(s) without a file, {} invalid row(s){}\n",
            m.matched_files,
            m.files_without_row,
            m.rows_without_file,
            m.invalid_rows,
            m.mismatches_key.as_deref().map(|k| format!(" (all in {k})")).unwrap_or_default()
        ));
        for l in &m.listed {
            let row = l.row.map(|r| format!(" (row {r})")).unwrap_or_default();
            let why = l.why.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
            out.push_str(&format!(
                "    {}: {}{row}{why}\n",
                l.kind.describe(),
                l.path.as_deref().unwrap_or("(no path)")
            ));
        }
    }
    out
}

/// The report and the failed rows (for the CSV), reading the ledger a page at a time.
pub async fn report(ctx: &Context, id: &str) -> Result<(Report, Vec<LedgerRow>), MigrateError> {
    let record = ctx.run(id).await?;
    let (mut counts, mut failed) = (Counts::default(), Vec::new());
    let mut rows = crate::rows::Rows::ledger(&record.id);
    while let Some(page) = rows.next_page(ctx).await? {
        counts.add(&page);
        failed.extend(page.into_iter().filter(|r| r.status == RowStatus::Failed));
    }
    let with_legacy = counts.with_legacy;
    let mut report = counts.report(&record);
    report.legacy_metadata = legacy_metadata(ctx, &record, with_legacy).await?;
    Ok((report, failed))
}

/// The run's metadata mismatches, counted as they stream from the target bucket; `None` for a
/// run planned without `--metadata`.
async fn legacy_metadata(
    ctx: &Context,
    record: &matbakh_aws::ledger::RunRecord,
    matched_files: u64,
) -> Result<Option<MetadataReport>, MigrateError> {
    let (target, _) = ctx.target(&record.target)?;
    let key = crate::metadata_mismatches_key(&record.id);
    let mut summary = MetadataReport { matched_files, ..MetadataReport::default() };
    let (mut pending, mut unreadable) = (Vec::new(), 0u64);
    let found = target
        .read(&key, None, |chunk| {
            pending.extend_from_slice(chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                match serde_json::from_slice::<Mismatch>(&line[..end]) {
                    Ok(m) => summary.count(&m),
                    Err(_) => unreadable += 1,
                }
            }
        })
        .await?;
    if found.is_none() {
        return Ok(None);
    }
    if unreadable > 0 {
        return Err(MigrateError::Check(format!("{key}: {unreadable} line(s) are not mismatches")));
    }
    summary.mismatches_key = Some(key);
    Ok(Some(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_quotes_or_newlines_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }
}
