//! Building a GDPR export's archive (the exporter): `exports/{sub}/{exportId}.zip` holds every
//! stored file of the user (READY or FAILED, and a deleted one while it can be restored) under
//! `files/{fileId}/{name}`, byte for byte, at its accepted version (DECISIONS 28),
//! `metadata.json` describing them as the files API shows them (and the files whose bytes it
//! cannot hold: archived ones, which need a restore, and quarantined ones, refused), and
//! `audit.json`, the user's audit trail as `GET /v1/me/audit` shows it. Objects are streamed
//! from the store into the archive ([`ObjectSink`]), so the size of an account does not matter.
//!
//! A job already READY is left alone (a redelivered message); an unfinished one is built again
//! from the start. A job that no longer exists (erased meanwhile) needs nothing. A build stops
//! at its deadline (the exporter's: before Lambda's timeout would kill it mid-write), aborting
//! its upload; the delivery that fails for the last time marks the job FAILED
//! ([`Archiver::give_up`]), so its owner sees it at once and may ask again.

use std::sync::Arc;

use matbakh_core::audit::AuditAction;
use matbakh_core::clock::Clock;
use matbakh_core::exports::{EXPORT_STALE_AFTER, ExportState};
use matbakh_core::ids::{ObjectKey, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileDetails, FileStatus};
use matbakh_core::names::SafeName;
use matbakh_core::zip;
use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::{Access, Client, Trail};
use crate::error::Error;
use crate::ports::{Archive, ExportRepo, FileRepo, ObjectSink, ObjectStore, PortError};
use crate::view::FileView;

/// Audit records an export reads in one request.
const AUDIT_PAGE: u32 = 100;

/// What building archives works with.
#[derive(Clone)]
pub struct Archiver {
    pub exports: Arc<dyn ExportRepo>,
    pub files: Arc<dyn FileRepo>,
    pub objects: Arc<dyn ObjectStore>,
    pub audit: Trail,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// The archive is written and the job READY.
    Ready(Archive),
    /// An earlier delivery finished it.
    AlreadyReady,
    /// No such job (erased since it was queued).
    NoSuchJob,
    /// The job is FAILED (given up on, never queued, or older than
    /// [`EXPORT_STALE_AFTER`]): nothing is built.
    Failed,
}

/// A build past its deadline (the upload is aborted), with how far it got.
fn out_of_time(got: String) -> Error {
    Error::conflict("export_out_of_time", format!("the archive was not finished in time ({got})"))
}

/// What the archive says about one file: where it is in the archive (`null` for a file in the
/// archive tier, whose bytes need a restore first), and the file as the files API shows it
/// (without variant URLs, which would expire).
#[derive(Serialize)]
struct Described {
    path: Option<String>,
    #[serde(flatten)]
    file: FileView,
}

impl Archiver {
    /// Builds the archive of job `export_id`, by `deadline` if one is given (checked before
    /// each file: past it, the upload is aborted and the build fails as `export_out_of_time`).
    pub async fn build(&self, export_id: &str, deadline: Option<OffsetDateTime>) -> Result<Built, Error> {
        let Some(job) = self.exports.get(export_id).await? else { return Ok(Built::NoSuchJob) };
        match job.state {
            ExportState::Ready => return Ok(Built::AlreadyReady),
            // Given up on, or never queued (its message may come all the same: a send that
            // timed out after SQS took it): its owner asks again, and that job is built.
            ExportState::Failed => return Ok(Built::Failed),
            ExportState::Pending | ExportState::Running => {}
        }
        // Taken for dead: a new request may have started another build (review 28).
        if self.clock.now() - job.created_at >= EXPORT_STALE_AFTER {
            self.give_up(&job.id, "not built before it was taken for dead").await?;
            return Ok(Built::Failed);
        }
        self.exports.set_state(&job.id, ExportState::Running, None).await?;
        let mut files = self.files.all(&job.owner).await?;
        // Everything the platform holds of the user's (review 24: deleted files kept for their
        // restore window, and quarantined ones, were left out); not an upload still on its way.
        files.retain(|d| d.record.status != FileStatus::Pending);
        let key = ObjectKey::export_archive(&job.owner, &job.id);
        let mut out = self.objects.create(&key, "application/zip").await?;
        let written = match self.write_archive(out.as_mut(), &job.owner, &files, deadline).await {
            Ok(written) => written,
            Err(e) => {
                if let Err(abort) = out.abort().await {
                    tracing::warn!(error = %abort, "could not abort the archive's upload; the lifecycle rule will");
                }
                return Err(e);
            }
        };
        let size = out.finish().await?;
        let archive = Archive { key, size, files: written };
        self.exports.set_state(&job.id, ExportState::Ready, Some(&archive)).await?;
        let client = Client { ip: "-".into(), user_agent: "exporter".into() };
        let result = format!("ok: {written} files, {size} bytes");
        let access = Access { result: &result, ..Access::ok(&job.owner, AuditAction::Export, None) };
        self.audit.record(&client, access).await?;
        tracing::info!(export = %job.id, files = written, bytes = size, "export ready");
        Ok(Built::Ready(archive))
    }

    /// Marks job `export_id` FAILED (the last delivery of its message failed too, `why`), unless
    /// it is READY or gone; answers whether it did, and records it in its owner's audit trail.
    pub async fn give_up(&self, export_id: &str, why: &str) -> Result<bool, Error> {
        let Some(job) = self.exports.get(export_id).await? else { return Ok(false) };
        if matches!(job.state, ExportState::Ready | ExportState::Failed) {
            return Ok(false);
        }
        self.exports.set_state(&job.id, ExportState::Failed, None).await?;
        let client = Client { ip: "-".into(), user_agent: "exporter".into() };
        let result = format!("failed: {why}");
        let access = Access { result: &result, ..Access::ok(&job.owner, AuditAction::Export, None) };
        self.audit.record(&client, access).await?;
        tracing::warn!(export = %job.id, why, "export failed for good");
        Ok(true)
    }

    /// Writes every file of `owner`'s that is still there, `metadata.json` and `audit.json`,
    /// then the central directory; answers how many files.
    async fn write_archive(
        &self,
        out: &mut dyn ObjectSink,
        owner: &UserId,
        files: &[FileDetails],
        deadline: Option<OffsetDateTime>,
    ) -> Result<u64, Error> {
        let mut entries = Vec::with_capacity(files.len() + 1);
        let mut described = Vec::with_capacity(files.len());
        let now = self.clock.now();
        for d in files {
            if deadline.is_some_and(|at| self.clock.now() >= at) {
                return Err(out_of_time(format!("{} of {} files written", entries.len(), files.len())));
            }
            let r = &d.record;
            // Described without a path, each still the user's data:
            // - an archived original, which cannot be read before a restore (hours): its owner
            //   restores it and exports again. Deleted while archived too (review 28: S3 refused
            //   its version and every build failed), and one whose move S3 made without telling
            //   the row (`NotRestored`, below);
            // - a quarantined file, refused (what it holds may harm);
            // - one whose object is gone (a quarantined file's version once moved, a deleted
            //   file's version expired before its row was purged, or deleted since the listing).
            let shown = || Described { path: None, file: FileView::of(d, self.limits.restore_window) };
            if crate::archival::refusal(d).is_some()
                || r.status == FileStatus::Quarantined
                || d.archival.unreadable_at(now)
            {
                described.push(shown());
                continue;
            }
            let mut reader = match self.objects.open(&r.key, r.version_id.as_deref()).await {
                Ok(Some(reader)) => reader,
                Ok(None) | Err(PortError::NotRestored) => {
                    described.push(shown());
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let path = format!("files/{}/{}", r.file_id, SafeName::from_display(&r.filename).as_str());
            let mut entry = EntryWriter::start(out, path.clone(), r.created_at).await?;
            while let Some(chunk) = reader.next_chunk().await? {
                entry.write(out, &chunk).await?;
            }
            entry.finish(out, &mut entries).await?;
            described.push(Described { path: Some(path), file: FileView::of(d, self.limits.restore_window) });
        }
        let written = described.iter().filter(|d| d.path.is_some()).count() as u64;
        let metadata = serde_json::json!({ "files": described });
        self.write_json(out, &mut entries, "metadata.json", &metadata).await?;
        self.write_trail(out, &mut entries, owner, deadline).await?;
        let directory_at = out.written();
        out.write(&zip::central_directory(&entries, directory_at)).await?;
        Ok(written)
    }

    /// Writes `audit.json`, `{"records": [...]}` with `owner`'s whole trail newest first as it is
    /// shown, a page at a time (review 28: held whole, twice, a year of a leaked share link's
    /// hits could run the exporter out of memory), and adds it to `entries`.
    async fn write_trail(
        &self,
        out: &mut dyn ObjectSink,
        entries: &mut Vec<zip::Entry>,
        owner: &UserId,
        deadline: Option<OffsetDateTime>,
    ) -> Result<(), Error> {
        let mut entry = EntryWriter::start(out, "audit.json".into(), self.clock.now()).await?;
        let mut chunk = b"{\"records\": [".to_vec();
        let (mut after, mut first) = (None, true);
        loop {
            if deadline.is_some_and(|at| self.clock.now() >= at) {
                return Err(out_of_time("every file written, not the audit trail".to_owned()));
            }
            let (page, next) = self.audit.log.page(owner, AUDIT_PAGE, after.as_deref()).await?;
            for record in &page {
                chunk.extend_from_slice(if first { b"\n  " } else { b",\n  " });
                first = false;
                serde_json::to_writer(&mut chunk, &record.shown())
                    .map_err(|e| PortError::Failed(format!("audit.json: {e}")))?;
            }
            if next.is_none() {
                chunk.extend_from_slice(b"\n]}\n");
            }
            entry.write(out, &chunk).await?;
            chunk.clear();
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        entry.finish(out, entries).await
    }

    /// Writes `value` as the archive's entry `name` (pretty JSON) and adds it to `entries`.
    async fn write_json(
        &self,
        out: &mut dyn ObjectSink,
        entries: &mut Vec<zip::Entry>,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| PortError::Failed(format!("{name}: {e}")))?;
        let mut entry = EntryWriter::start(out, name.into(), self.clock.now()).await?;
        entry.write(out, &bytes).await?;
        entry.finish(out, entries).await
    }
}

/// One archive entry being written: its local header is out, its bytes are checksummed and
/// counted as they go, and [`Self::finish`] closes it with its data descriptor and lists it for
/// the central directory. (The files, `metadata.json` and `audit.json` each wrote this
/// themselves.)
struct EntryWriter {
    name: String,
    modified: OffsetDateTime,
    offset: u64,
    crc: crc_fast::Digest,
    size: u64,
}

impl EntryWriter {
    async fn start(out: &mut dyn ObjectSink, name: String, modified: OffsetDateTime) -> Result<Self, Error> {
        let offset = out.written();
        out.write(&zip::local_header(&name, modified)).await?;
        let crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
        Ok(EntryWriter { name, modified, offset, crc, size: 0 })
    }

    async fn write(&mut self, out: &mut dyn ObjectSink, bytes: &[u8]) -> Result<(), Error> {
        self.crc.update(bytes);
        self.size += bytes.len() as u64;
        Ok(out.write(bytes).await?)
    }

    async fn finish(self, out: &mut dyn ObjectSink, entries: &mut Vec<zip::Entry>) -> Result<(), Error> {
        let crc32 = self.crc.finalize() as u32;
        out.write(&zip::data_descriptor(crc32, self.size)).await?;
        let EntryWriter { name, modified, offset, size, .. } = self;
        entries.push(zip::Entry { name, modified, offset, crc32, size });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use matbakh_core::clock::FixedClock;
    use matbakh_core::exports::ExportJob;
    use matbakh_core::ids::{FileId, Sha256, UserId};
    use matbakh_core::metadata::FileRecord;
    use matbakh_core::names::DisplayName;
    use matbakh_core::types::ContentType;
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::{InMemory, InMemoryObjects};

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    struct World {
        repo: Arc<InMemory>,
        objects: Arc<InMemoryObjects>,
        archiver: Archiver,
    }

    fn world() -> World {
        let (repo, objects) = (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()));
        let archiver = Archiver {
            exports: repo.clone(),
            files: repo.clone(),
            objects: objects.clone(),
            audit: crate::fakes::trail(repo.clone(), Arc::new(FixedClock(NOW))),
            limits: Limits::default(),
            clock: Arc::new(FixedClock(NOW)),
        };
        World { repo, objects, archiver }
    }

    impl World {
        /// A file of `owner` in `status` holding `bytes` at its accepted version.
        fn file(&self, owner: &str, n: u8, name: &str, status: FileStatus, bytes: &[u8]) -> FileId {
            let id = FileId::new(1_772_000_000_000 + u64::from(n), [n; 10]);
            let owner = UserId::parse(owner).unwrap();
            let pdf = ContentType::parse("application/pdf").unwrap();
            let mut record = FileRecord::upload(id, owner, DisplayName::parse(name).unwrap(), pdf, NOW);
            let version = self.objects.put_bytes(&record.key, bytes.to_vec());
            (record.status, record.size, record.version_id) = (status, bytes.len() as u64, Some(version));
            self.repo.insert(FileDetails::new(record));
            id
        }

        fn job(&self, owner: &str, id: &str) {
            let owner = UserId::parse(owner).unwrap();
            let job = ExportJob {
                id: id.into(),
                owner,
                state: ExportState::Pending,
                created_at: NOW,
                key: None,
                size: None,
                files: None,
            };
            self.repo.set_export(job);
        }
    }

    /// Every entry of a ZIP as Python's zipfile reads it (an independent reader; `testzip`
    /// checks each entry's CRC-32): name -> bytes. Info-ZIP's `unzip -t` (what a Linux user
    /// opens it with) must find it whole too: it warned of every non-ASCII name, and failed,
    /// while the local headers did not say the descriptors' sizes are 8 bytes (review 28).
    fn entries_of(zip: &[u8]) -> BTreeMap<String, Vec<u8>> {
        // One file per call: tests run side by side in one process.
        static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("archive-test-{}-{n}.zip", std::process::id()));
        std::fs::write(&path, zip).unwrap();
        let script = "import json, sys, zipfile\n\
                      z = zipfile.ZipFile(sys.argv[1])\n\
                      assert z.testzip() is None, z.testzip()\n\
                      print(json.dumps({n: z.read(n).hex() for n in z.namelist()}))";
        let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&path).output().unwrap();
        let unzip =
            std::process::Command::new("unzip").arg("-t").arg(&path).output().expect("unzip: scripts/test installs it");
        assert!(unzip.status.success(), "unzip -t: {}", String::from_utf8_lossy(&unzip.stdout));
        std::fs::remove_file(&path).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let read: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
        let decode = |hex: String| -> Vec<u8> {
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
        };
        read.into_iter().map(|(name, b)| (name, decode(b))).collect()
    }

    #[tokio::test]
    async fn the_archive_holds_every_stored_file_of_the_owner_byte_for_byte_and_describes_them() {
        let w = world();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let menu = w.file("alice", 1, "menu.pdf", FileStatus::Ready, &big);
        let broken = w.file("alice", 2, "Straße 1.pdf", FileStatus::Failed, b"%PDF-broken");
        let gone = w.file("alice", 3, "gone.pdf", FileStatus::Deleted, b"%PDF-gone");
        w.file("alice", 4, "coming.pdf", FileStatus::Pending, b"%PDF-pending");
        w.file("bob", 5, "bobs.pdf", FileStatus::Ready, b"%PDF-bob");
        let refused = w.file("alice", 6, "refused.pdf", FileStatus::Quarantined, b"%PDF-harm");
        let client = Client { ip: "192.0.2.7".into(), user_agent: "browser".into() };
        let alice = UserId::parse("alice").unwrap();
        let access = Access::ok(&alice, AuditAction::Download, Some(menu));
        w.archiver.audit.record(&client, access).await.unwrap();
        // The menu's key written again after it was accepted (a replayed upload URL).
        let menu_key = w.repo.get(menu).unwrap().record.key;
        w.objects.put_bytes(&menu_key, b"%PDF-replayed".to_vec());
        w.job("alice", "exp1");

        let Built::Ready(archive) = w.archiver.build("exp1", None).await.unwrap() else { panic!("not built") };
        let zip = w.objects.bytes(&archive.key).unwrap();
        assert_eq!(
            (archive.key.as_str(), archive.size, archive.files),
            ("exports/alice/exp1.zip", zip.len() as u64, 3)
        );
        let entries = entries_of(&zip);
        let (menu_path, broken_path) = (format!("files/{menu}/menu.pdf"), format!("files/{broken}/Straße 1.pdf"));
        let gone_path = format!("files/{gone}/gone.pdf");
        let names: Vec<&str> = entries.keys().map(String::as_str).collect();
        let mut want = [menu_path.as_str(), broken_path.as_str(), gone_path.as_str(), "audit.json", "metadata.json"];
        want.sort();
        assert_eq!(names, want);
        assert_eq!(Sha256::of(&entries[&menu_path]), Sha256::of(&big), "the accepted version, byte for byte");
        assert_eq!(entries[&broken_path], b"%PDF-broken");
        // Review 24: a deleted file is the user's data while it can be restored.
        assert_eq!(entries[&gone_path], b"%PDF-gone");
        let metadata: serde_json::Value = serde_json::from_slice(&entries["metadata.json"]).unwrap();
        let described = metadata["files"].as_array().unwrap();
        let by_id = |id: FileId| described.iter().find(|d| d["fileId"] == id.to_string().as_str()).unwrap();
        assert_eq!(described.len(), 4, "not the pending upload, not Bob's");
        assert_eq!(by_id(menu)["path"].as_str(), Some(menu_path.as_str()));
        assert_eq!(by_id(broken)["status"], "FAILED");
        assert_eq!(
            (&by_id(gone)["status"], by_id(gone)["path"].as_str()),
            (&serde_json::json!("DELETED"), Some(gone_path.as_str()))
        );
        // A quarantined file is described, its bytes not put in the archive.
        assert_eq!(
            (&by_id(refused)["status"], &by_id(refused)["path"]),
            (&serde_json::json!("QUARANTINED"), &serde_json::Value::Null)
        );
        assert_eq!(
            (by_id(menu)["visibility"].as_str(), &by_id(menu)["metadata"]),
            (Some("private"), &serde_json::json!({}))
        );
        // Her audit trail, as the API shows it.
        let audit: serde_json::Value = serde_json::from_slice(&entries["audit.json"]).unwrap();
        let records = audit["records"].as_array().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (&records[0]["action"], &records[0]["ip"]),
            (&serde_json::json!("download"), &serde_json::json!("192.0.2.7"))
        );

        let job = w.repo.get_export("exp1").unwrap();
        assert_eq!((job.state, job.size, job.files), (ExportState::Ready, Some(archive.size), Some(3)));
        let trail: Vec<String> = w.repo.audit_entries().iter().map(|e| e.result.clone()).collect();
        assert_eq!(trail.last(), Some(&format!("ok: 3 files, {} bytes", archive.size)));

        // Redelivered: nothing is built again.
        assert_eq!(w.archiver.build("exp1", None).await.unwrap(), Built::AlreadyReady);
        assert_eq!(w.objects.versions(&archive.key).len(), 1);
        assert_eq!(w.archiver.build("exp2", None).await.unwrap(), Built::NoSuchJob);
    }

    /// Review 28: a file deleted while archived had S3 refuse its version and every build fail
    /// (the owner had no export for the 30 days of its restore window); so did one S3 moved
    /// without its row being told. Each is described without a path now, as is a row whose
    /// object is gone (it was left out), and the rest is exported.
    #[tokio::test]
    async fn archived_and_vanished_originals_are_described_and_the_rest_exported() {
        let w = world();
        let menu = w.file("alice", 1, "menu.pdf", FileStatus::Ready, b"%PDF-menu");
        let cold = w.file("alice", 2, "cold.pdf", FileStatus::Deleted, b"%PDF-cold");
        let moved = w.file("alice", 3, "moved.pdf", FileStatus::Ready, b"%PDF-moved");
        let vanished = w.file("alice", 4, "vanished.pdf", FileStatus::Ready, b"%PDF-vanished");
        let warm = w.file("alice", 5, "warm.pdf", FileStatus::Deleted, b"%PDF-warm");
        for (id, until) in [(cold, None), (warm, Some(NOW + time::Duration::days(1)))] {
            let mut d = w.repo.get(id).unwrap();
            (d.deleted_from, d.archival.archived_at, d.archival.restored_until) =
                (Some(FileStatus::Archived), Some(NOW - time::Duration::days(9)), until);
            w.repo.insert(d);
        }
        for id in [cold, moved, warm] {
            let r = w.repo.get(id).unwrap().record;
            let version = r.version_id.unwrap();
            w.objects.transition(&r.key, &version, "GLACIER");
            if id == warm {
                w.objects.restored(&r.key, &version);
            }
        }
        let r = w.repo.get(vanished).unwrap().record;
        w.objects.delete_version(&r.key, r.version_id.as_deref()).await.unwrap();
        w.job("alice", "exp1");

        let Built::Ready(archive) = w.archiver.build("exp1", None).await.unwrap() else { panic!("not built") };
        let entries = entries_of(&w.objects.bytes(&archive.key).unwrap());
        assert_eq!(archive.files, 2);
        assert_eq!(entries[&format!("files/{menu}/menu.pdf")], b"%PDF-menu");
        assert_eq!(entries[&format!("files/{warm}/warm.pdf")], b"%PDF-warm", "its restored copy is read");
        let metadata: serde_json::Value = serde_json::from_slice(&entries["metadata.json"]).unwrap();
        let described = metadata["files"].as_array().unwrap();
        assert_eq!(described.len(), 5);
        for id in [cold, moved, vanished] {
            let d = described.iter().find(|d| d["fileId"] == id.to_string().as_str()).unwrap();
            assert_eq!(d["path"], serde_json::Value::Null, "{d}");
        }
    }

    /// Review 28: a job FAILED (given up on, or never queued while its message came all the
    /// same) or taken for dead is not built: its owner's new job may be building beside it. A
    /// build out of time before its audit trail stops too (the trail came after the last check).
    #[tokio::test]
    async fn failed_and_dead_jobs_are_not_built_and_the_trail_keeps_the_deadline() {
        let w = world();
        w.file("alice", 1, "menu.pdf", FileStatus::Ready, b"%PDF-menu");
        for (id, state, age) in [("failed", ExportState::Failed, 0), ("dead", ExportState::Running, 3)] {
            w.job("alice", id);
            let mut job = w.repo.get_export(id).unwrap();
            (job.state, job.created_at) = (state, NOW - time::Duration::hours(age));
            w.repo.set_export(job);
            assert_eq!(w.archiver.build(id, None).await.unwrap(), Built::Failed, "{id}");
            assert_eq!(w.repo.get_export(id).unwrap().state, ExportState::Failed);
            assert!(w.objects.keys_under("exports/").is_empty(), "{id}: nothing written");
        }

        let empty = world();
        empty.job("alice", "exp1");
        let err = empty.archiver.build("exp1", Some(NOW)).await.unwrap_err();
        assert!(err.to_string().contains("not the audit trail"), "{err}");
        assert!(empty.objects.keys_under("exports/").is_empty());
    }

    /// The trail is written a page at a time (review 28): pages join into one JSON document,
    /// every record in it once, newest first.
    #[tokio::test]
    async fn a_trail_of_many_pages_is_one_json_document() {
        let w = world();
        let alice = UserId::parse("alice").unwrap();
        for n in 0..(2 * AUDIT_PAGE + 7) {
            let client = Client { ip: format!("192.0.2.{}", n % 250), user_agent: format!("agent {n}") };
            w.archiver.audit.record(&client, Access::ok(&alice, AuditAction::Download, None)).await.unwrap();
        }
        w.job("alice", "exp1");
        let Built::Ready(archive) = w.archiver.build("exp1", None).await.unwrap() else { panic!("not built") };
        let entries = entries_of(&w.objects.bytes(&archive.key).unwrap());
        let audit: serde_json::Value = serde_json::from_slice(&entries["audit.json"]).unwrap();
        let agents: Vec<&str> =
            audit["records"].as_array().unwrap().iter().map(|r| r["userAgent"].as_str().unwrap()).collect();
        let want: Vec<String> = (0..(2 * AUDIT_PAGE + 7)).rev().map(|n| format!("agent {n}")).collect();
        assert_eq!(agents, want);
    }

    /// An account too large for one invocation: the build stops at its deadline instead of
    /// being killed mid-write (its upload aborted, nothing stored), and the delivery that fails
    /// for the last time marks the job FAILED, so its owner is told at once instead of waiting
    /// an hour for the job to go stale (security review 20: nothing ever set FAILED).
    #[tokio::test]
    async fn a_build_past_its_deadline_stores_nothing_and_giving_up_marks_the_job_failed() {
        let w = world();
        w.file("alice", 1, "menu.pdf", FileStatus::Ready, b"%PDF-menu");
        w.job("alice", "exp1");
        let err = w.archiver.build("exp1", Some(NOW)).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { code: "export_out_of_time", .. }), "{err:?}");
        assert!(err.to_string().contains("0 of 1 files"), "{err}");
        assert!(w.objects.versions(&ObjectKey::export_archive(&UserId::parse("alice").unwrap(), "exp1")).is_empty());
        assert_eq!(w.repo.get_export("exp1").unwrap().state, ExportState::Running);

        assert!(w.archiver.give_up("exp1", &err.to_string()).await.unwrap());
        let job = w.repo.get_export("exp1").unwrap();
        assert_eq!((job.state, job.key), (ExportState::Failed, None));
        let trail: Vec<String> = w.repo.audit_entries().iter().map(|e| e.result.clone()).collect();
        assert_eq!(trail.len(), 1);
        assert!(trail[0].starts_with("failed: the archive was not finished in time"), "{trail:?}");
        // Once, and never over a finished job or one that is gone.
        assert!(!w.archiver.give_up("exp1", "again").await.unwrap());
        w.job("alice", "exp2");
        assert!(matches!(w.archiver.build("exp2", Some(NOW + time::Duration::minutes(1))).await, Ok(Built::Ready(_))));
        assert!(!w.archiver.give_up("exp2", "late").await.unwrap());
        assert_eq!(w.repo.get_export("exp2").unwrap().state, ExportState::Ready);
        assert!(!w.archiver.give_up("exp3", "erased").await.unwrap());
    }
}
