//! `thumbnailer`: makes responsive variants of uploaded images, and quarantines files that are
//! not what they claim to be.
//!
//! Triggered by SQS (the thumbnailer queue, fed by the bucket's SNS topic beside the indexer's),
//! with partial batch responses. For each object created under `users/{sub}/{fileId}/` whose
//! row is PENDING, it sniffs the first bytes:
//! - not on the allow-list, or contradicting the declared type: the row is marked QUARANTINED
//!   with the reason (and its bytes leave the owner's quota), then the object is copied to
//!   `quarantine/{key}` and that version deleted (DECISIONS 13, in that order);
//! - an allowed non-image (PDF, video, ZIP): READY, no variants (DECISIONS 11);
//! - an image: the `imaging` pipeline (bounded decode, orientation, sRGB) writes
//!   `derived/{fileId}/{width}.{avif,webp,jpg}` (immutable, metadata-free) and the row becomes
//!   READY with dimensions, placeholder and the variant list; a broken image becomes FAILED, a
//!   decompression bomb QUARANTINED, a HEIC (no decoder here) READY without variants.
//!
//! With `CLAMD_ADDR` set, every allowed file is first streamed to ClamAV's clamd (`clamd`); a
//! match is quarantined with the signature's name, and the row records `virusScan`.
//!
//! A record fails (and comes back, then goes to the DLQ) only when retrying can help: AWS errors,
//! a scanner that gave no verdict, and malformed messages. Everything about the file itself is
//! recorded on its row instead. When its last delivery fails too, its file is marked FAILED
//! (`unprocessed`, not shared) before the message goes to the DLQ; redriven, it is processed.
//! Redelivered events find the row no longer PENDING and change nothing.
//!
//! The same queue carries `{"copyPublicOriginal": "<fileId>"}` (`core::delivery::
//! copy_public_original_message`, sent by the notifier): a public original copied in parts,
//! whose copy could outlast the files API's request (made public, restored) or a processing
//! beside renders (this function's, for a file public as it becomes READY), is copied here,
//! alone, if the file is still public. Those messages run after every object event of their
//! batch.
//!
//! It reads only the key's accepted version (DECISIONS 28, `matbakh_app::settle`: pinned by
//! whichever of the indexer and this function sees the object first), so bytes written to the
//! key again with a replayed upload URL are never checked, scanned or turned into variants.
//!
//! The rules are `matbakh_app::process`; this crate decodes the events, adapts the imaging
//! pipeline ([`Imaging`]) and clamd ([`clamd::Clamd`]) to its ports, and emits the metrics.
//!
//! Reads: the object (a range first), the file row. Writes: variants, the row, the usage
//! counter (quarantine), `quarantine/` copies and deletes of quarantined versions.

pub mod clamd;

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use matbakh_app::ports::{RenderFailure, RenderedVariant, Renderer, Rendition, VirusScanner};
use matbakh_app::process::{Processed, Processing};
use matbakh_aws::Services;
use matbakh_core::events::{ObjectChange, ObjectEvent, parse_sqs_body};
use matbakh_imaging::{ImageError, ImageLimits, Quality};
use matbakh_lambda::metrics::{self, Unit};
use tracing::Instrument;

/// The image pipeline with this deployment's limits and quality, as the [`Renderer`] port,
/// rendering one image at a time.
#[derive(Debug, Clone, Copy)]
pub struct Imaging {
    pub limits: ImageLimits,
    pub quality: Quality,
    /// Whose turn it is to render: the instance's one turn (`RENDERS`), or a test's own.
    pub renders: &'static tokio::sync::Semaphore,
}

impl Imaging {
    /// The pipeline with `limits` and `quality`, one render at a time in the instance.
    pub fn new(limits: ImageLimits, quality: Quality) -> Self {
        Imaging { limits, quality, renders: &RENDERS }
    }
}

#[async_trait]
impl Renderer for Imaging {
    fn check_size(&self, size: u64) -> Result<(), RenderFailure> {
        match size > self.limits.max_bytes {
            true => Err(failure(ImageError::TooManyBytes { size, limit: self.limits.max_bytes })),
            false => Ok(()),
        }
    }

    /// On a blocking thread (it takes seconds), one at a time ([`RENDERS`]), timed as
    /// `RenderMilliseconds`.
    async fn render(&self, bytes: Vec<u8>) -> Result<Rendition, RenderFailure> {
        let Imaging { limits, quality, renders } = *self;
        let Ok(permit) = renders.acquire().await else {
            return Err(failure(ImageError::Encode("the render queue is closed".into())));
        };
        let started = std::time::Instant::now();
        let rendered = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = permit;
            matbakh_imaging::render(&bytes, &limits, &quality)
        })
        .await
        .unwrap_or_else(|e| Err(ImageError::Encode(format!("the render task ended: {e}"))));
        let millis = started.elapsed().as_millis() as u64;
        metrics::emit("thumbnail", &[("RenderMilliseconds", millis, Unit::Milliseconds)]);
        let r = rendered.map_err(failure)?;
        let variants = r
            .variants
            .into_iter()
            .map(|v| RenderedVariant {
                width: v.width,
                height: v.height,
                extension: v.format.extension(),
                content_type: v.format.content_type(),
                bytes: v.bytes,
            })
            .collect();
        Ok(Rendition { width: r.width, height: r.height, frames: r.frames, placeholder: r.placeholder, variants })
    }
}

/// One render at a time in an instance: one left running when its record's last delivery ran
/// out of time ([`last_delivery`] gives up on it; its blocking thread cannot be stopped) makes
/// the next wait instead of running beside it, in memory sized for one (review 28).
static RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

fn failure(e: ImageError) -> RenderFailure {
    RenderFailure { disposition: e.disposition(), reason: e.to_string() }
}

/// The function's state: the use case, built once.
#[derive(Clone)]
pub struct Thumbnailer {
    pub processing: Processing,
}

impl Thumbnailer {
    /// Processing on this deployment's table and bucket, with `imaging` and, when configured,
    /// a virus scanner.
    pub fn new(services: &Services, imaging: Imaging, scanner: Option<Arc<dyn VirusScanner>>) -> Self {
        let processing = Processing {
            files: Arc::new(services.table.clone()),
            uploads: Arc::new(services.table.clone()),
            objects: Arc::new(services.store.clone()),
            settler: services.settler(),
            renderer: Arc::new(imaging),
            scanner,
            delivery: services.delivery(),
        };
        Thumbnailer { processing }
    }
}

/// Handles one batch; the answer names the records to deliver again (a port failed, or a
/// scanner gave no verdict, or a malformed message: `matbakh_lambda::sqs`).
pub async fn handle(t: &Thumbnailer, event: SqsEvent) -> SqsBatchResponse {
    handle_until(t, event, None).await
}

/// [`handle`] by `stop` (the invocation's deadline less
/// [`matbakh_lambda::sqs::RECORD_TIME_MARGIN`]): no record is started after it, and the batch
/// answers in time for the ones done. A render running then is not cut (its blocking thread
/// would go on beside the next invocation): Lambda's timeout ends it. A record's last delivery
/// is [`last_delivery`].
pub async fn handle_until(
    t: &Thumbnailer,
    mut event: SqsEvent,
    stop: Option<time::OffsetDateTime>,
) -> SqsBatchResponse {
    // Last deliveries first (a stable sort: the rest keep their order): behind the others, one
    // could find the invocation's time used up and be given up without having been tried.
    // Copies of public originals after every object event: one may take what is left of the
    // invocation, and the events behind it would wait out the queue's visibility timeout.
    let copy = |r: &SqsMessage| {
        matches!(matbakh_core::delivery::parse_copy_public_original(r.body.as_deref().unwrap_or_default()), Ok(Some(_)))
    };
    event.records.sort_by_key(|r| (copy(r), matbakh_lambda::sqs::receives(r) < THUMBNAIL_MAX_RECEIVES));
    // The stop is kept here, not by `each_record_until`: a render is not cut, and a last
    // delivery out of time is given up, not just left.
    matbakh_lambda::sqs::each_record(event, "object event", |record| async move {
        let body = record.body.as_deref().unwrap_or_default();
        let left = matbakh_lambda::sqs::time_left(stop);
        let out_of_time = || Err("not started: the invocation is out of time".to_owned());
        // A public original asked for: a copy (no render), cut at the time limit (its parts'
        // upload then aborted by the S3 adapter), its last failure left to the DLQ.
        let copy = matbakh_core::delivery::parse_copy_public_original(body);
        if let Some(id) = copy.map_err(|e| format!("malformed message: {e}"))? {
            if left.is_some_and(|left| left.is_zero()) {
                return out_of_time();
            }
            return match matbakh_lambda::sqs::within(left, t.processing.copy_public_original(id)).await {
                Some(done) => done.map_err(|e| e.to_string()),
                None => Err("cut short at the invocation's time limit".to_owned()),
            };
        }
        let events = parse_sqs_body(body).map_err(|e| format!("malformed message: {e}"))?;
        if matbakh_lambda::sqs::receives(&record) >= THUMBNAIL_MAX_RECEIVES {
            return last_delivery(t, &events, left).await;
        }
        if left.is_some_and(|left| left.is_zero()) {
            return out_of_time();
        }
        handle_events(t, &events).await.map_err(|e| e.to_string())
    })
    .await
}

/// Deliveries of an object event before SQS moves it to the DLQ: the thumbnailer queue's
/// `maxReceiveCount` (template.yaml; a template test compares them).
pub const THUMBNAIL_MAX_RECEIVES: u32 = 5;

/// A record's last delivery ([`THUMBNAIL_MAX_RECEIVES`]): processed within `left` (a render
/// still running then finishes on its thread, its result unused; variants written in part are
/// written again by a redrive, or removed with the file), and if that fails too, its files are given up
/// ([`Processing::give_up`]: FAILED, so their owners are not left with a file forever
/// processing that they cannot delete) before the message goes to the DLQ. Its alarm tells
/// operations, who redrive it once the cause is fixed: the files are then processed again.
async fn last_delivery(
    t: &Thumbnailer,
    events: &[ObjectEvent],
    left: Option<std::time::Duration>,
) -> Result<(), String> {
    let failed = match matbakh_lambda::sqs::within(left, handle_events(t, events)).await {
        Some(done) => done.err().map(|e| e.to_string()),
        None => Some("not processed within the invocation's time limit".to_owned()),
    };
    let Some(why) = failed else { return Ok(()) };
    for event in events.iter().filter(|e| e.change == ObjectChange::Created) {
        let given_up = t.processing.give_up(&event.key).await.map_err(|e| format!("{why}; giving up: {e}"))?;
        if given_up {
            tracing::warn!(error = %why, "given up on its last delivery: FAILED until the event is redriven");
            metrics::emit("thumbnail", &[("FilesGivenUp", 1, Unit::Count)]);
        }
    }
    Err(why)
}

async fn handle_events(t: &Thumbnailer, events: &[ObjectEvent]) -> Result<(), matbakh_app::Error> {
    for event in events.iter().filter(|e| e.change == ObjectChange::Created) {
        let outcome = process(t, &event.key).await?;
        // The plan's PR-3 end to end: READY this long after the object arrived (the queue's
        // wait, the read, the render and the writes; `RenderMilliseconds` is the render alone).
        let now = matbakh_core::clock::Clock::now(&matbakh_core::clock::SystemClock);
        if let (Processed::Ready { .. }, Some(ms)) = (&outcome, event.age_millis(now)) {
            metrics::emit("thumbnail", &[("ReadyAfterMilliseconds", ms, Unit::Milliseconds)]);
        }
        tracing::info!(key_len = event.key.len(), ?outcome, "object processed");
    }
    Ok(())
}

/// Processes the object at `key` and emits its metrics (public for tests and the local tools).
pub async fn process(t: &Thumbnailer, key: &str) -> Result<Processed, matbakh_app::Error> {
    let span = tracing::info_span!(
        "thumbnail",
        file_id = matbakh_core::ids::ObjectKey::file_id_of(key).map(tracing::field::display)
    );
    let outcome = t.processing.process(key).instrument(span).await?;
    let counts: &[(&str, u64, Unit)] = match &outcome {
        Processed::Ready { variants } => {
            &[("ImagesReady", 1, Unit::Count), ("VariantsWritten", *variants as u64, Unit::Count)]
        }
        Processed::Checked => &[("FilesCheckedWithoutVariants", 1, Unit::Count)],
        Processed::Quarantined(_) => &[("FilesQuarantined", 1, Unit::Count)],
        Processed::Failed(_) => &[("ImagesFailed", 1, Unit::Count)],
        Processed::KeptWithoutVariants(_) | Processed::Skipped(_) => &[],
    };
    if !counts.is_empty() {
        metrics::emit("thumbnail", counts);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests;
