//! The thumbnailer in-process, on the in-memory ports and the real image pipeline: corpus
//! photos and hostile files, no servers (`tests/moto.rs` runs the same on real S3 events).

use std::sync::Arc;

use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::ports::{FileGrants, FileLookup, ObjectErasure, Verdict};
use matbakh_app::process::{Processed, Processing};
use matbakh_app::settle::Settler;
use matbakh_core::ids::{FileId, ObjectKey, UserId};
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileRecord, FileStatus};
use matbakh_core::names::DisplayName;
use matbakh_core::types::ContentType;
use matbakh_imaging::{DEFAULT_QUALITY, ImageLimits, Quality};
use testkit::corpus;
use time::macros::datetime;

use super::*;

/// rav1e's fastest speed: what is made matters here, not how small.
const FAST: Quality = Quality { avif_speed: 10, ..DEFAULT_QUALITY };

struct World {
    repo: Arc<InMemory>,
    objects: Arc<InMemoryObjects>,
    thumbnailer: Thumbnailer,
}

fn world() -> World {
    let (repo, objects) = (Arc::new(InMemory::new()), Arc::new(InMemoryObjects::new()));
    let delivery = matbakh_app::fakes::delivery(objects.clone(), Arc::new(matbakh_core::clock::SystemClock));
    let processing = Processing {
        files: repo.clone(),
        uploads: repo.clone(),
        objects: objects.clone(),
        settler: Settler {
            uploads: repo.clone(),
            objects: objects.clone(),
            delivery: delivery.clone(),
            limits: Limits::default(),
        },
        renderer: Arc::new(Imaging::new(ImageLimits::default(), FAST)),
        scanner: None,
        delivery,
    };
    World { repo, objects, thumbnailer: Thumbnailer { processing } }
}

impl World {
    /// `bytes` uploaded as `name` (declared `image/jpeg`) and arrived.
    async fn arrived(&self, name: &str, bytes: Vec<u8>, n: u8) -> (FileId, ObjectKey) {
        let id = FileId::new(1_772_000_000_000, [n; 10]);
        let owner = UserId::parse("alice").unwrap();
        let jpeg = ContentType::parse("image/jpeg").unwrap();
        let record = FileRecord {
            size: bytes.len() as u64,
            ..FileRecord::upload(id, owner, DisplayName::parse(name).unwrap(), jpeg, datetime!(2026-03-01 12:00 UTC))
        };
        self.repo.reserve(&record, u64::MAX / 2).await.unwrap();
        self.objects.put_bytes(&record.key, bytes);
        (id, record.key)
    }
}

#[tokio::test]
async fn a_portrait_photo_gets_upright_variants_in_every_format() {
    let w = world();
    let (name, bytes) = corpus("photos/panasonic-orientation6.jpg");
    let (id, key) = w.arrived(&name, bytes, 1).await;
    let outcome = process(&w.thumbnailer, key.as_str()).await.unwrap();
    let Processed::Ready { variants } = outcome else { panic!("{outcome:?}") };
    let row = w.repo.details(id).await.unwrap().unwrap();
    assert_eq!(row.record.status, FileStatus::Ready);
    let image = row.image.unwrap();
    assert!(image.height > image.width, "upright: {}x{}", image.width, image.height);
    assert_eq!(image.variants.len(), variants);
    for v in &image.variants {
        assert!(v.height > v.width, "{v:?}");
        let bytes = w.objects.bytes(&v.key).unwrap();
        let format = image::guess_format(&bytes).unwrap();
        assert_eq!(format.to_mime_type(), v.content_type, "{}", v.key);
    }
    let types: std::collections::BTreeSet<&str> = image.variants.iter().map(|v| v.content_type.as_str()).collect();
    assert_eq!(types, ["image/avif", "image/jpeg", "image/webp"].into());
}

#[tokio::test]
async fn a_bomb_is_quarantined_and_a_truncated_photo_failed() {
    let w = world();
    let (name, bomb) = corpus("hostile/bomb-header-64250x64250.jpg");
    let (bomb_id, bomb_key) = w.arrived(&name, bomb, 2).await;
    let (name, truncated) = corpus("hostile/truncated.jpg");
    let (truncated_id, truncated_key) = w.arrived(&name, truncated, 3).await;

    let outcome = process(&w.thumbnailer, bomb_key.as_str()).await.unwrap();
    assert!(matches!(&outcome, Processed::Quarantined(why) if why.contains("pixel")), "{outcome:?}");
    assert!(!w.objects.holds_any(bomb_key.as_str()).await.unwrap(), "moved away");
    assert!(w.objects.bytes(&ObjectKey::quarantined(bomb_key.as_str())).is_some());
    assert_eq!(w.repo.details(bomb_id).await.unwrap().unwrap().record.status, FileStatus::Quarantined);

    let outcome = process(&w.thumbnailer, truncated_key.as_str()).await.unwrap();
    assert!(matches!(outcome, Processed::Failed(_)), "{outcome:?}");
    let row = w.repo.details(truncated_id).await.unwrap().unwrap();
    assert_eq!(row.record.status, FileStatus::Failed);
    assert!(w.objects.bytes(&truncated_key).is_some(), "a failed image stays");
}

/// A scanner that never answers (clamd down): every delivery of a file fails.
struct Unreachable;

#[async_trait]
impl VirusScanner for Unreachable {
    async fn scan(
        &self,
        _object: &mut dyn matbakh_app::ports::ObjectStream,
    ) -> matbakh_app::ports::PortResult<Verdict> {
        Err(matbakh_app::ports::PortError::Unavailable { operation: "scan", message: "connection refused".into() })
    }
}

fn status(w: &World, id: FileId) -> (FileStatus, Option<String>, bool) {
    let d = w.repo.get(id).unwrap();
    (d.record.status, d.reason, d.unprocessed)
}

/// Until its last delivery a failing file stays PENDING and comes back; the last one that fails
/// too (or runs out of time) leaves it FAILED and unprocessed, where its owner can delete it,
/// and the message goes to the DLQ; redriven once the cause is fixed, it becomes READY.
#[tokio::test]
async fn a_file_whose_last_delivery_fails_is_given_up_and_a_redrive_processes_it() {
    let mut w = world();
    w.thumbnailer.processing.scanner = Some(Arc::new(Unreachable));
    let (name, bytes) = corpus("photos/panasonic-orientation6.jpg");
    let len = bytes.len();
    let (id, key) = w.arrived(&name, bytes, 4).await;
    w.thumbnailer.processing.settler.settle(id, &key).await.unwrap();
    let batch =
        |receives| testkit::sqs_batch_delivered(&[("m1", testkit::object_created(key.as_str(), len))], receives);
    let failed =
        |r: &SqsBatchResponse| r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect::<Vec<_>>();

    let answer = handle(&w.thumbnailer, batch(THUMBNAIL_MAX_RECEIVES - 1)).await;
    assert_eq!(failed(&answer), ["m1"]);
    assert_eq!(status(&w, id), (FileStatus::Pending, None, false));

    let answer = handle(&w.thumbnailer, batch(THUMBNAIL_MAX_RECEIVES)).await;
    assert_eq!(failed(&answer), ["m1"], "to the DLQ, where its alarm tells operations");
    assert_eq!(status(&w, id), (FileStatus::Failed, Some(matbakh_app::process::GAVE_UP.to_owned()), true));

    // The scanner is back; operations redrive the DLQ (the receive count starts again).
    w.thumbnailer.processing.scanner = None;
    let answer = handle(&w.thumbnailer, batch(1)).await;
    assert_eq!(failed(&answer), Vec::<String>::new());
    assert_eq!(status(&w, id), (FileStatus::Ready, None, false));
    assert!(!w.repo.get(id).unwrap().variants().is_empty());
}

/// Out of time: an earlier delivery is not started (it comes back), the last one is given up.
#[tokio::test]
async fn a_last_delivery_out_of_time_is_given_up() {
    let w = world();
    let (name, bytes) = corpus("photos/panasonic-orientation6.jpg");
    let len = bytes.len();
    let (id, key) = w.arrived(&name, bytes, 5).await;
    // Settled, as the indexer leaves it (a row never settled is the sweeper's).
    w.thumbnailer.processing.settler.settle(id, &key).await.unwrap();
    let batch =
        |receives| testkit::sqs_batch_delivered(&[("m1", testkit::object_created(key.as_str(), len))], receives);
    let past = Some(time::OffsetDateTime::now_utc() - time::Duration::seconds(1));

    let answer = handle_until(&w.thumbnailer, batch(1), past).await;
    assert_eq!(answer.batch_item_failures.len(), 1);
    assert_eq!(status(&w, id), (FileStatus::Pending, None, false));

    let answer = handle_until(&w.thumbnailer, batch(THUMBNAIL_MAX_RECEIVES), past).await;
    assert_eq!(answer.batch_item_failures.len(), 1);
    assert_eq!(status(&w, id).0, FileStatus::Failed);
    assert!(w.objects.keys_under(&ObjectKey::derived_prefix(id)).is_empty(), "nothing was rendered");
}

/// Finds every file clean, noting the order they are scanned in (by their sizes).
#[derive(Default)]
struct ScanOrder(std::sync::Mutex<Vec<u64>>);

#[async_trait]
impl VirusScanner for ScanOrder {
    async fn scan(&self, object: &mut dyn matbakh_app::ports::ObjectStream) -> matbakh_app::ports::PortResult<Verdict> {
        self.0.lock().unwrap().push(object.size());
        Ok(Verdict::Clean)
    }
}

/// A batch's last deliveries are processed before its other records: behind them, a last
/// delivery could find the invocation's time used up and be given up without having been tried
/// (found in session 26).
#[tokio::test]
async fn a_batchs_last_deliveries_go_first() {
    let mut w = world();
    let order = Arc::new(ScanOrder::default());
    w.thumbnailer.processing.scanner = Some(order.clone());
    let mut messages = Vec::new();
    for (n, photo) in [(6, "photos/panasonic-orientation6.jpg"), (7, "photos/ladybird.jpg")] {
        let (name, bytes) = corpus(photo);
        let len = bytes.len();
        let (id, key) = w.arrived(&name, bytes, n).await;
        w.thumbnailer.processing.settler.settle(id, &key).await.unwrap();
        messages.push((format!("m{n}"), testkit::object_created(key.as_str(), len), len as u64));
    }
    let bodies: Vec<(&str, String)> = messages.iter().map(|(id, body, _)| (id.as_str(), body.clone())).collect();
    let mut batch = testkit::sqs_batch_delivered(&bodies, 1);
    batch.records[1].attributes.insert("ApproximateReceiveCount".into(), THUMBNAIL_MAX_RECEIVES.to_string());

    let answer = handle(&w.thumbnailer, batch).await;
    assert!(answer.batch_item_failures.is_empty(), "{:?}", answer.batch_item_failures);
    assert_eq!(*order.0.lock().unwrap(), [messages[1].2, messages[0].2], "the last delivery (m7) first");
}

/// The notifier asks for the copies of large public originals (their copy could outlast
/// whoever made the file public): the message copies the original to its public key, rendering
/// nothing; one for a file made private since copies nothing, and takes back a copy an earlier
/// try left (cut after copying); a message naming no file fails (to the DLQ).
#[tokio::test]
async fn an_original_asked_for_by_the_notifier_is_copied_public() {
    let mut w = world();
    w.thumbnailer.processing.delivery.cdn = Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None));
    let (name, bytes) = corpus("photos/dune.jpg");
    let (public, key) = w.arrived(&name, bytes.clone(), 1).await;
    let (private, private_key) = w.arrived(&name, bytes.clone(), 2).await;
    for id in [public, private] {
        let mut row = w.repo.get(id).unwrap();
        row.record.status = FileStatus::Ready;
        use matbakh_core::labels::Visibility;
        row.record.labels.visibility = if id == public { Visibility::Public } else { Visibility::Private };
        w.repo.insert(row);
    }
    w.objects.put_bytes(&private_key.public_copy().unwrap(), bytes.clone());
    let message = |id| matbakh_core::delivery::copy_public_original_message(id);
    let batch = testkit::sqs_batch(&[
        ("m1", message(public)),
        ("m2", message(private)),
        ("m3", r#"{"copyPublicOriginal":"not-a-file"}"#.to_owned()),
    ]);
    let answer = handle(&w.thumbnailer, batch).await;
    let failed: Vec<_> = answer.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["m3"]);
    assert_eq!(w.objects.bytes(&key.public_copy().unwrap()), Some(bytes), "copied as it was (no position)");
    assert_eq!(w.objects.bytes(&private_key.public_copy().unwrap()), None, "a private file's");
    assert!(w.objects.keys_under(&ObjectKey::derived_prefix(public)).is_empty(), "rendered");
}

/// A copy message waits for the object events of its batch: a copy may take what is left of
/// the invocation, and an event behind it would wait out the queue's visibility timeout.
#[tokio::test]
async fn a_copy_message_runs_after_the_object_events_of_its_batch() {
    let mut w = world();
    w.thumbnailer.processing.delivery.cdn = Some(matbakh_core::delivery::FilesCdn::new("https://files.test", None));
    let (name, bytes) = corpus("photos/dune.jpg");
    let (public, _) = w.arrived(&name, bytes.clone(), 1).await;
    let mut row = w.repo.get(public).unwrap();
    row.record.status = FileStatus::Ready;
    row.record.labels.visibility = matbakh_core::labels::Visibility::Public;
    w.repo.insert(row);
    let (_, key) = w.arrived(&name, bytes.clone(), 2).await;
    let batch = testkit::sqs_batch(&[
        ("m1", matbakh_core::delivery::copy_public_original_message(public)),
        ("m2", testkit::object_created(key.as_str(), bytes.len())),
    ]);
    let logs = testkit::logs::Captured::default();
    let capturing = logs.start();
    let answer = handle(&w.thumbnailer, batch).await;
    drop(capturing);
    assert!(answer.batch_item_failures.is_empty());
    let text = logs.text();
    let at = |what: &str| text.find(what).unwrap_or_else(|| panic!("no {what} in {text}"));
    assert!(at(r#""message_id":"m2""#) < at(r#""message_id":"m1""#), "{text}");
    assert!(at("object processed") < at("public original copied as asked"), "{text}");
}

/// One render at a time (review 28): a render asked for while another runs waits for it (a
/// render left running by a record given up on must not run beside the next one in memory
/// sized for one), and gets the turn when the running one ends. Shown by the turn itself: the
/// turn the running render gives back goes to the waiting one, not back to the pool.
#[tokio::test]
async fn a_render_waits_for_the_one_running() {
    let renders: &'static tokio::sync::Semaphore = Box::leak(Box::new(tokio::sync::Semaphore::new(1)));
    let imaging = Imaging { renders, ..Imaging::new(ImageLimits::default(), FAST) };
    let running = renders.acquire().await.unwrap();
    let (_, bytes) = corpus("photos/dune.jpg");
    let mut waiting = Box::pin(imaging.render(bytes));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    drop(running);
    assert_eq!(renders.available_permits(), 0, "the turn went back to the pool, not to the waiting render");
    let rendered = waiting.await.unwrap();
    assert!(!rendered.variants.is_empty());
    assert_eq!(renders.available_permits(), 1, "the turn is given back");
}
