//! `exporter`: triggered by the export queue (SQS, `ReportBatchItemFailures`, DLQ after five
//! receives). Each message names one export job (`POST /v1/me/export` made it); the function
//! writes `exports/{sub}/{exportId}.zip`: every stored file of the user under
//! `files/{fileId}/{name}`, byte for byte, and `metadata.json` describing them. Objects are
//! streamed from S3 into the archive's multipart upload (one 8 MiB part in memory), so the
//! size of an account does not matter. A redelivered message of a finished job does nothing;
//! of an unfinished one, starts the archive again.
//!
//! Reads: the user's rows and objects. Writes: the archive, the job row, an audit record.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use matbakh_api::audit::{self, Client};
use matbakh_api::{ApiError, Services};
use matbakh_app::audit::Access;
use matbakh_app::view::FileView;
use matbakh_aws::export::StreamedObject;
use matbakh_core::audit::AuditAction;
use matbakh_core::exports::ExportState;
use matbakh_core::metadata::FileDetails;
use matbakh_core::metadata::FileStatus;
use matbakh_core::names::SafeName;
use matbakh_core::zip;
use serde_json::{Value, json};

/// Works on each record; names those to deliver again.
pub async fn handle(st: &Services, event: SqsEvent) -> SqsBatchResponse {
    matbakh_lambda::sqs::each_record(event, "export", |record| async move {
        let body: Option<Value> = record.body.as_deref().and_then(|b| serde_json::from_str(b).ok());
        match body.as_ref().and_then(|b| b["exportId"].as_str()) {
            Some(export_id) => export(st, export_id).await.map_err(|e| e.message),
            None => Err("not an export message".to_owned()),
        }
    })
    .await
}

/// What the archive says about one file: where it is in the archive, and the file as the
/// files API shows it (without variant URLs, which would expire).
#[derive(serde::Serialize)]
struct Described {
    path: String,
    #[serde(flatten)]
    file: FileView,
}

/// Builds one job's archive.
pub async fn export(st: &Services, export_id: &str) -> Result<(), ApiError> {
    let Some(job) = st.table.get_export(export_id).await? else {
        tracing::warn!(export = export_id, "no such export job (erased?); nothing to do");
        return Ok(());
    };
    if job.state == ExportState::Ready {
        return Ok(());
    }
    st.table.set_export(&job.id, ExportState::Running, None).await?;
    let mut files = st.table.all_files(&job.owner).await?;
    files.retain(|d| matches!(d.record.status, FileStatus::Ready | FileStatus::Failed));
    let key = format!("exports/{}/{}.zip", job.owner, job.id);
    let mut out = StreamedObject::start(&st.store, &key, "application/zip").await?;
    match write_archive(st, &mut out, &files).await {
        Ok(written) => {
            let size = out.finish().await?;
            st.table.set_export(&job.id, ExportState::Ready, Some((&key, size, written))).await?;
            let client = Client(matbakh_app::audit::Client { ip: "-".into(), user_agent: "exporter".into() });
            let result = format!("ok: {written} files, {size} bytes");
            let access = Access { result: &result, ..Access::ok(&job.owner, AuditAction::Export, None) };
            audit::record(st, &client, access).await?;
            tracing::info!(export = %job.id, files = written, bytes = size, "export ready");
            Ok(())
        }
        Err(e) => {
            if let Err(abort) = out.abort().await {
                tracing::warn!(error = %abort, "could not abort the archive's upload; the lifecycle rule will");
            }
            Err(e)
        }
    }
}

/// Writes every file and `metadata.json`, then the central directory; answers how many files.
async fn write_archive(st: &Services, out: &mut StreamedObject, files: &[FileDetails]) -> Result<u64, ApiError> {
    let mut entries = Vec::with_capacity(files.len() + 1);
    let mut described = Vec::with_capacity(files.len());
    for d in files {
        let r = &d.record;
        // Gone since the listing (deleted meanwhile): not in the archive, not described.
        // The accepted version (DECISIONS 28), never bytes written to the key again later.
        let Some(mut reader) = st.store.open_object(r.key.as_str(), r.version_id.as_deref()).await? else { continue };
        let path = format!("files/{}/{}", r.file_id, SafeName::from_display(&r.filename).as_str());
        let offset = out.written();
        out.write(&zip::local_header(&path, r.created_at)).await?;
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
        let mut size = 0u64;
        while let Some(chunk) = reader.next_chunk().await? {
            let chunk = chunk.as_ref();
            crc.update(chunk);
            size += chunk.len() as u64;
            out.write(chunk).await?;
        }
        let crc32 = crc.finalize() as u32;
        out.write(&zip::data_descriptor(crc32, size)).await?;
        entries.push(zip::Entry { name: path.clone(), modified: r.created_at, offset, crc32, size });
        described.push(Described { path, file: FileView::of(d, st.limits.restore_window) });
    }
    let written = described.len() as u64;
    let metadata = serde_json::to_vec_pretty(&json!({ "files": described })).map_err(|e| ApiError::internal(&e))?;
    let now = st.clock.now();
    let offset = out.written();
    out.write(&zip::local_header("metadata.json", now)).await?;
    out.write(&metadata).await?;
    let crc32 = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &metadata) as u32;
    out.write(&zip::data_descriptor(crc32, metadata.len() as u64)).await?;
    entries.push(zip::Entry {
        name: "metadata.json".into(),
        modified: now,
        offset,
        crc32,
        size: metadata.len() as u64,
    });
    let directory_at = out.written();
    out.write(&zip::central_directory(&entries, directory_at)).await?;
    Ok(written)
}
