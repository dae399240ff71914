//! A run's rows read a page at a time: from the ledger, or, for a run never started, from the
//! manifest `plan` stored beside them (one object instead of a query of every row). No command
//! holds a whole run in memory: a page is at most DynamoDB's 1 MB or one body chunk of lines.

use matbakh_aws::ledger::{Counters, LedgerRow, RunRecord};
use matbakh_aws::s3::ObjectReader;
use matbakh_aws::transfer::Target;
use matbakh_core::migration::{FailureReason, ManifestEntry, RowStatus, RunId, RunState};

use crate::{Context, MigrateError};

pub enum Rows {
    Ledger { run: RunId, after: Option<u64>, ended: bool },
    Manifest { body: Option<Box<ObjectReader>>, carry: Vec<u8>, now: String, seen: u64, total: u64, key: String },
}

impl Rows {
    /// The run's rows from where they are current: the manifest while the run is `Planned`
    /// (its rows are exactly the manifest's then), the ledger afterwards.
    pub async fn open(ctx: &Context, target: &Target, record: &RunRecord) -> Result<Self, MigrateError> {
        if record.state != RunState::Planned {
            return Ok(Self::ledger(&record.id));
        }
        Self::manifest(ctx, target, record).await
    }

    /// The run's manifest as rows as `plan` wrote them (pending, or failed when unreadable then).
    pub async fn manifest(ctx: &Context, target: &Target, record: &RunRecord) -> Result<Self, MigrateError> {
        let body = target
            .open(&record.manifest_key)
            .await?
            .ok_or_else(|| MigrateError::Check(format!("the manifest {} is missing", record.manifest_key)))?;
        Ok(Rows::Manifest {
            body: Some(Box::new(body)),
            carry: Vec::new(),
            now: ctx.now(),
            seen: 0,
            total: record.total_files,
            key: record.manifest_key.clone(),
        })
    }

    pub fn ledger(run: &RunId) -> Self {
        Rows::Ledger { run: run.clone(), after: None, ended: false }
    }

    /// The next page of rows in manifest order; `None` after the last.
    pub async fn next_page(&mut self, ctx: &Context) -> Result<Option<Vec<LedgerRow>>, MigrateError> {
        match self {
            Rows::Ledger { run, after, ended } => {
                if *ended {
                    return Ok(None);
                }
                let (rows, next) = ctx.ledger.rows_page(run, *after, ctx.page_rows).await?;
                *after = next;
                *ended = next.is_none();
                Ok(if rows.is_empty() && *ended { None } else { Some(rows) })
            }
            Rows::Manifest { body, carry, now, seen, total, key } => loop {
                let Some(reader) = body.as_mut() else { return Ok(None) };
                let chunk = reader.next_chunk().await?;
                if chunk.is_none() {
                    *body = None;
                }
                let Some(lines) = whole_lines(carry, chunk.as_ref().map(|c| c.as_ref())) else { continue };
                let rows = manifest_rows(&lines, now)?;
                *seen += rows.len() as u64;
                if body.is_none() && *seen != *total {
                    return Err(MigrateError::Check(format!("the manifest {key} lists {seen} files, the run {total}")));
                }
                if !rows.is_empty() {
                    return Ok(Some(rows));
                }
            },
        }
    }
}

/// Adds `chunk` to `carry` and takes the complete lines out of it (all that is left at the end,
/// `chunk` = `None`); `None` while no line is complete.
pub(crate) fn whole_lines(carry: &mut Vec<u8>, chunk: Option<&[u8]>) -> Option<Vec<u8>> {
    let end = match chunk {
        Some(chunk) => {
            carry.extend_from_slice(chunk);
            carry.iter().rposition(|b| *b == b'\n')? + 1
        }
        None => carry.len(),
    };
    Some(carry.drain(..end).collect())
}

/// The rows `plan` wrote for these manifest lines: pending, or failed when the file could not
/// be read at plan time (its line has no checksum).
fn manifest_rows(lines: &[u8], now: &str) -> Result<Vec<LedgerRow>, MigrateError> {
    let text = std::str::from_utf8(lines).map_err(|_| MigrateError::Check("the manifest is not UTF-8".into()))?;
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let entry: ManifestEntry =
            serde_json::from_str(line).map_err(|e| MigrateError::Check(format!("manifest line: {e}")))?;
        let mut row = LedgerRow::pending(entry, now);
        if row.entry.is_erased() {
            // Its owner erased their account after the plan (`erased::redact`).
            row.status = RowStatus::Failed;
            row.reason = Some(FailureReason::Erased);
            row.message = Some(matbakh_aws::ledger::ERASED_MESSAGE.to_owned());
        } else if row.entry.copied_by.is_some() {
            row.status = RowStatus::Copied;
        } else if row.entry.crc64nvme.is_empty() {
            row.status = RowStatus::Failed;
            row.reason = Some(FailureReason::SourceUnreadable);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Whether a `run` or `enqueue` takes the row: pending, or failed for a reason another
/// attempt may fix.
pub fn is_todo(row: &LedgerRow) -> bool {
    match row.status {
        RowStatus::Pending => true,
        RowStatus::Failed => row.reason.is_some_and(|r| r.retryable()),
        RowStatus::Copied => false,
    }
}

/// What one pass over a run's rows finds: its counters as the rows say (what the run item must
/// say when a session starts) and the work left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub counters: Counters,
    pub todo_files: u64,
    pub todo_bytes: u64,
    pub done_files: u64,
}

impl Tally {
    pub fn add(&mut self, rows: &[LedgerRow]) {
        for r in rows {
            let c = &mut self.counters;
            match r.status {
                RowStatus::Copied => {
                    c.copied.files += 1;
                    c.copied.bytes += r.entry.size;
                    self.done_files += 1;
                }
                RowStatus::Failed => {
                    c.failed_files += 1;
                    if let Some(reason) = r.reason {
                        *c.failures.entry(reason).or_default() += 1;
                    }
                }
                RowStatus::Pending => {}
            }
            if is_todo(r) {
                self.todo_files += 1;
                self.todo_bytes += r.entry.size;
            }
        }
    }

    /// Reads every row once (page by page) and sets the run's counters to what they say.
    pub async fn take(ctx: &Context, target: &Target, record: &RunRecord) -> Result<Tally, MigrateError> {
        let mut tally = Tally::default();
        let mut rows = Rows::open(ctx, target, record).await?;
        while let Some(page) = rows.next_page(ctx).await? {
            tally.add(&page);
        }
        ctx.ledger.reset_counters(&record.id, &tally.counters, &ctx.now()).await?;
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_come_out_whole() {
        let text = b"{\"a\":1}\n{\"b\":22}\n{\"c\":333}";
        for size in [1, 2, 5, 7, 100] {
            let (mut carry, mut out) = (Vec::new(), Vec::new());
            for chunk in text.chunks(size) {
                if let Some(lines) = whole_lines(&mut carry, Some(chunk)) {
                    assert_eq!(lines.last(), Some(&b'\n'), "only whole lines before the end");
                    out.extend(lines);
                }
            }
            out.extend(whole_lines(&mut carry, None).unwrap());
            assert_eq!(out, text, "chunks of {size}");
            assert!(carry.is_empty());
        }
    }
}
