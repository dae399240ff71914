//! `migrate report`: what a run did, from its ledger rows (not the live counters): JSON, a
//! CSV of the failures, and a summary for people.

use std::collections::BTreeMap;

use matbakh_aws::ledger::LedgerRow;
use matbakh_core::migration::RowStatus;
use serde::Serialize;

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
}

pub fn report_of(record: &matbakh_aws::ledger::RunRecord, rows: &[LedgerRow]) -> Report {
    let count = |s: RowStatus| rows.iter().filter(|r| r.status == s).count() as u64;
    let mut failures = BTreeMap::new();
    for r in rows.iter().filter(|r| r.status == RowStatus::Failed) {
        *failures.entry(r.reason.map(|r| r.to_string()).unwrap_or_else(|| "unknown".into())).or_default() += 1;
    }
    let copied_bytes = rows.iter().filter(|r| r.status == RowStatus::Copied).map(|r| r.entry.size).sum();
    let with_checksums =
        rows.iter().filter(|r| !r.entry.crc64nvme.is_empty() && !r.entry.sha256.is_empty()).count() as u64;
    let active = record.counters.active_ms as f64 / 1000.0;
    let copied = count(RowStatus::Copied);
    Report {
        run: record.id.to_string(),
        state: record.state.to_string(),
        source: record.source.clone(),
        target: record.target.clone(),
        rule: record.rule.clone(),
        created_at: record.created_at.clone(),
        files: rows.len() as u64,
        bytes: rows.iter().map(|r| r.entry.size).sum(),
        copied_files: copied,
        copied_bytes,
        pending_files: count(RowStatus::Pending),
        failed_files: count(RowStatus::Failed),
        failures_by_reason: failures,
        retries: rows.iter().map(|r| u64::from(r.attempts.saturating_sub(1))).sum(),
        active_seconds: active,
        bytes_per_second: if active > 0.0 { copied_bytes as f64 / active } else { 0.0 },
        rows_with_checksums: with_checksums,
        copied_s3_checked: copied,
        checksum_coverage: if rows.is_empty() { 1.0 } else { with_checksums as f64 / rows.len() as f64 },
    }
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_owned() }
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
    out
}

pub async fn report(ctx: &Context, id: &str) -> Result<(Report, Vec<LedgerRow>), MigrateError> {
    let record = ctx.run(id).await?;
    let rows = ctx.ledger.rows(&record.id).await?;
    Ok((report_of(&record, &rows), rows))
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
