//! `migrate verify`: an independent pass over the ledger. For every copied row the target's
//! stored full-object CRC64NVME and size are compared with the manifest (HEAD with checksum
//! mode); `--deep` reads the object back and hashes it (CRC64NVME and SHA-256); `--sample N`
//! checks N random rows (seeded). Rows not copied are reported too: a run is verified only
//! when every file is there, as planned. A full pass (not `--sample`) is recorded on the run
//! (`verifiedAt`, how, outcome, counts): what a cutover and a decommission check ask of it.

use matbakh_aws::ledger::LedgerRow;
use matbakh_aws::transfer::Target;
use matbakh_core::migration::{FailureReason, RowStatus, SplitMix64};
use serde::Serialize;

use crate::{Context, MigrateError, crc64_base64};

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub deep: bool,
    pub sample: Option<usize>,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub seq: u64,
    pub key: String,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub run: String,
    pub deep: bool,
    pub rows: u64,
    pub checked: u64,
    pub matched: u64,
    pub mismatches: Vec<Problem>,
    pub not_copied: Vec<Problem>,
    /// Copied files checked against the files table (with `TABLE_NAME`): each must have its row.
    pub rows_checked: u64,
    /// Copied files that get no row by design (outside the user layout, type off the allow-list).
    pub unregistered: u64,
    /// Files of users who erased their account (not copied, or removed by the erase since):
    /// no problem, gone for good (`migrate::erased`).
    pub erased: u64,
}

impl Verified {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.not_copied.is_empty()
    }
}

async fn check(target: &Target, row: &LedgerRow, deep: bool) -> Result<Option<String>, MigrateError> {
    let e = &row.entry;
    let head = target.head(&e.key, row.version_id.as_deref()).await?;
    let Some(head) = head else {
        return Ok(Some(match &row.version_id {
            Some(v) => format!("version {v} is gone"),
            None => "the object is gone".into(),
        }));
    };
    if head.size != e.size {
        return Ok(Some(format!("size {} in S3, {} planned", head.size, e.size)));
    }
    match head.crc64nvme.as_deref() {
        // Some S3-compatible servers keep no full-object checksum (s3s-fs for multipart
        // objects); only reading the bytes back can tell then.
        None if !deep => return Ok(Some("S3 stores no CRC64NVME for it (verify --deep reads it back)".into())),
        None => {}
        Some(c) if c != e.crc64nvme => return Ok(Some(format!("CRC64NVME {c} in S3, {} planned", e.crc64nvme))),
        Some(_) => {}
    }
    if deep {
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
        let mut sha = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let read = target
            .read(&e.key, row.version_id.as_deref(), |chunk| {
                crc.update(chunk);
                sha.update(chunk);
            })
            .await?;
        if read.is_none() {
            return Ok(Some("the object vanished while read".into()));
        }
        let (crc, sha) = (crc64_base64(crc.finalize()), hex::encode(sha.finish().as_ref()));
        if crc != e.crc64nvme {
            return Ok(Some(format!("bytes read back hash to CRC64NVME {crc}, {} planned", e.crc64nvme)));
        }
        if sha != e.sha256 {
            return Ok(Some(format!("bytes read back hash to SHA-256 {sha}, {} planned", e.sha256)));
        }
    }
    Ok(None)
}

/// What checking the copied rows found so far.
#[derive(Default)]
struct Findings {
    mismatches: Vec<Problem>,
    /// Copied files whose row in the files table was checked.
    rows_checked: u64,
    /// Copied files outside `users/{sub}/{fileId}/`, which have no row to check.
    unregistered: u64,
}

/// Checks one page's copied rows against the target (32 at once) and the files table.
async fn check_page(
    ctx: &Context,
    target: &matbakh_aws::transfer::Target,
    to_check: &[LedgerRow],
    deep: bool,
    found: &mut Findings,
) -> Result<(), MigrateError> {
    for chunk in to_check.chunks(32) {
        let mut tasks = tokio::task::JoinSet::new();
        for row in chunk.iter().cloned() {
            let target = target.clone();
            tasks.spawn(async move { (check(&target, &row, deep).await, row) });
        }
        while let Some(done) = tasks.join_next().await {
            let (result, row) = done.map_err(|e| MigrateError::Check(format!("verify task: {e}")))?;
            if let Some(problem) = result? {
                found.mismatches.push(Problem { seq: row.entry.seq, key: row.entry.key.clone(), problem });
            }
        }
    }
    // Reconciliation with the files table: every registrable copied file has its row, and the
    // pipeline did not reject it.
    let Some(files) = ctx.files.as_ref().map(|r| &r.table) else { return Ok(()) };
    for row in to_check {
        let Some(record) = crate::copy::file_record(&row.entry) else {
            found.unregistered += 1;
            continue;
        };
        found.rows_checked += 1;
        let problem = match files.get_file(record.file_id).await? {
            None => Some("no row in the files table".to_owned()),
            Some(r) if r.key.as_str() != row.entry.key => Some(format!("the files table row is for {}", r.key)),
            Some(r) if r.status == matbakh_core::metadata::FileStatus::Quarantined => {
                Some("the processing pipeline quarantined it".to_owned())
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            found.mismatches.push(Problem { seq: row.entry.seq, key: row.entry.key.clone(), problem });
        }
    }
    Ok(())
}

pub async fn verify(ctx: &Context, id: &str, opts: &VerifyOptions) -> Result<Verified, MigrateError> {
    let record = ctx.run(id).await?;
    let (target, _) = ctx.target(&record.target)?;
    // A page of rows at a time; `--sample` picks positions among the run's files up front.
    let sample = opts.sample.map(|n| SplitMix64::new(opts.seed).sample(record.total_files as usize, n));
    let (mut total, mut checked, mut erased, mut not_copied) = (0u64, 0u64, 0u64, Vec::new());
    let mut found = Findings::default();
    let mut rows = crate::rows::Rows::ledger(&record.id);
    while let Some(page) = rows.next_page(ctx).await? {
        let first = total as usize;
        total += page.len() as u64;
        let mut to_check = Vec::new();
        for (i, row) in page.into_iter().enumerate() {
            if sample.as_ref().is_some_and(|s| s.binary_search(&(first + i)).is_err()) {
                continue;
            }
            if row.status == RowStatus::Copied {
                to_check.push(row);
            } else if row.reason == Some(FailureReason::Erased) {
                erased += 1;
            } else {
                let why = match (&row.reason, &row.message) {
                    (Some(r), Some(m)) => format!("{} ({r}: {m})", row.status.as_str()),
                    _ => row.status.as_str().to_owned(),
                };
                not_copied.push(Problem { seq: row.entry.seq, key: row.entry.key.clone(), problem: why });
            }
        }
        checked += to_check.len() as u64;
        check_page(ctx, &target, &to_check, opts.deep, &mut found).await?;
    }
    let Findings { mut mismatches, rows_checked, unregistered } = found;
    mismatches.sort_by_key(|p| p.seq);
    if opts.sample.is_none() {
        let problems = (mismatches.len() + not_copied.len()) as u64;
        let outcome = matbakh_aws::ledger::Verification {
            at: ctx.now(),
            deep: opts.deep,
            passed: problems == 0,
            checked,
            problems,
        };
        ctx.ledger.set_verification(&record.id, &outcome).await?;
    }
    Ok(Verified {
        run: record.id.to_string(),
        deep: opts.deep,
        rows: total,
        checked,
        matched: checked - mismatches.len() as u64,
        mismatches,
        not_copied,
        rows_checked,
        unregistered,
        erased,
    })
}
