//! The thumbnailer in-process, on the in-memory ports and the real image pipeline: corpus
//! photos and hostile files, no servers (`tests/moto.rs` runs the same on real S3 events).

use std::sync::Arc;

use matbakh_app::fakes::{InMemory, InMemoryObjects};
use matbakh_app::ports::{FileGrants, FileLookup, ObjectErasure};
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
        renderer: Arc::new(Imaging { limits: ImageLimits::default(), quality: FAST }),
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
