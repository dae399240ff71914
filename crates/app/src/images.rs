//! Image URLs for the frontend: signed transform URLs (the imgproxy format the transformer and
//! the CDN read) of a file the caller may read, per named preset, width and format, with a
//! ready `srcset` each. A public file's URLs never expire (the CDN caches them for good); a
//! private file's carry an `exp` at the end of a window (`IMAGE_URL_TTL_SECONDS`, windowed like
//! variant URLs, so a page loaded twice in a window asks the CDN for the same URLs).
//!
//! Presets are the deployment's (`IMAGE_PRESETS`, imgproxy's preset syntax, e.g.
//! `card=rt:fill/w:400/h:300/g:sm`); a preset's size is the shape, each width scales it. URLs
//! spell the preset out (the CDN knows no presets), so a preset changed later makes new URLs.

use std::sync::Arc;

use matbakh_core::clock::{Clock, SigningWindow};
use matbakh_core::ids::{FileId, UserId};
use matbakh_core::imgproxy::{DEFAULT_MAX_OUTPUT_SIDE, Format, Options, Presets, SigningKeys, signed_url};
use matbakh_core::labels::Visibility;
use matbakh_core::limits::Limits;
use matbakh_core::metadata::{FileStatus, ImageInfo};
use matbakh_core::types::TypeClass;
use time::OffsetDateTime;

use crate::error::Error;
use crate::ports::FileLookup;

/// Widths asked for when a request names none (a phone to a wide screen).
pub const DEFAULT_IMAGE_WIDTHS: [u32; 5] = [320, 640, 960, 1280, 1920];
/// The most widths one request may ask for.
pub const MAX_IMAGE_WIDTHS: usize = 10;
/// The widest image URL: the transformer's default largest side.
pub const MAX_IMAGE_WIDTH: u32 = DEFAULT_MAX_OUTPUT_SIDE;
/// Formats a request gets when it names none, best first (a `<picture>` offers them in turn).
pub const DEFAULT_IMAGE_FORMATS: [Format; 3] = [Format::Avif, Format::WebP, Format::Jpeg];
/// The preset of a request that names none: the image scaled to each width.
pub const PLAIN: &str = "plain";

/// Where transform URLs point and how they are signed.
#[derive(Clone)]
pub struct Signer {
    /// The CDN's transform path (e.g. `https://files.matbakh.app/t`).
    pub base_url: String,
    pub keys: Arc<SigningKeys>,
    pub presets: Presets,
}

/// What image URLs work with.
#[derive(Clone)]
pub struct Images {
    pub files: Arc<dyn FileLookup>,
    /// The image URLs' budget per user.
    pub counters: Arc<dyn crate::ports::Counters>,
    pub signer: Signer,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
}

/// What the caller asks for; each part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub presets: Vec<String>,
    pub widths: Vec<u32>,
    pub format: Option<Format>,
}

/// The URLs of one preset in one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    pub preset: String,
    pub format: Format,
    /// `(width, url)`, narrowest first.
    pub urls: Vec<(u32, String)>,
}

impl ImageSet {
    /// `url 320w, url 640w, ...`, for `<img srcset>` or `<source srcset>`.
    pub fn srcset(&self) -> String {
        self.urls.iter().map(|(w, url)| format!("{url} {w}w")).collect::<Vec<_>>().join(", ")
    }
}

/// The answer: the sets, and until when the URLs work (`None`: a public file's, for good).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrls {
    pub sets: Vec<ImageSet>,
    pub expires_at: Option<OffsetDateTime>,
}

impl Images {
    /// Signed transform URLs of the caller's image `id`. Someone else's file answers like a
    /// missing one; a file that is not a stored image is `409 not_an_image`.
    pub async fn urls(&self, caller: &UserId, id: FileId, wanted: &Wanted) -> Result<ImageUrls, Error> {
        let widths = self.widths(&wanted.widths)?;
        let presets = self.presets(&wanted.presets)?;
        let kind = matbakh_core::throttle::Costly::ImageUrls;
        crate::throttle::admit(&*self.counters, &self.limits.budgets, self.clock.now(), caller, kind).await?;
        let Some(d) = self.files.details(id).await?.filter(|d| d.record.owner == *caller) else {
            return Err(Error::NotFound("file"));
        };
        if let Some(refused) = crate::archival::refusal(&d) {
            return Err(refused);
        }
        let r = &d.record;
        if r.status != FileStatus::Ready || r.content_type.class() != TypeClass::Image {
            return Err(Error::conflict("not_an_image", "only a stored image has image URLs"));
        }
        let expires_at = match r.labels.visibility {
            Visibility::Public => None,
            Visibility::Private => {
                // Windowed: every request within a window gets the same URLs.
                Some(SigningWindow::at(self.clock.now(), self.limits.image_url_ttl).expires())
            }
        };
        // No wider than the image: a transform never enlarges unless asked.
        let widest = d.image.as_ref().map_or(MAX_IMAGE_WIDTH, |i| i.width.max(1));
        let mut fitting: Vec<u32> = widths.iter().copied().filter(|w| *w <= widest).collect();
        if fitting.is_empty() {
            // Every width asked is wider than the image: the image at its own width.
            fitting.push(widest);
        }
        let formats = wanted.format.map_or(DEFAULT_IMAGE_FORMATS.to_vec(), |f| vec![f]);
        let mut sets = Vec::new();
        for (name, shape) in &presets {
            // No taller than the transformer makes either: a tall image's wide renditions would
            // fail every time, each asking the transformer (and its whole source) again.
            let limit = widest_output(shape, d.image.as_ref());
            let mut within: Vec<u32> = fitting.iter().copied().filter(|w| *w <= limit).collect();
            if within.is_empty() {
                within.push(limit.min(widest));
            }
            for format in &formats {
                let mut urls = Vec::with_capacity(within.len());
                for w in &within {
                    let mut o = scaled(shape, *w);
                    o.expires = expires_at.map(OffsetDateTime::unix_timestamp);
                    let url = signed_url(&self.signer.base_url, &self.signer.keys, &o, r.key.as_str(), *format)
                        .ok_or_else(|| Error::Port(crate::PortError::Failed("no transform signing key".into())))?;
                    urls.push((*w, url));
                }
                sets.push(ImageSet { preset: name.clone(), format: *format, urls });
            }
        }
        Ok(ImageUrls { sets, expires_at })
    }

    fn widths(&self, asked: &[u32]) -> Result<Vec<u32>, Error> {
        if asked.len() > MAX_IMAGE_WIDTHS {
            return Err(Error::bad_field("widths", format!("widths: at most {MAX_IMAGE_WIDTHS}")));
        }
        if let Some(w) = asked.iter().find(|w| **w == 0 || **w > MAX_IMAGE_WIDTH) {
            return Err(Error::bad_field("widths", format!("widths: {w} is not 1 to {MAX_IMAGE_WIDTH}")));
        }
        let mut widths = if asked.is_empty() { DEFAULT_IMAGE_WIDTHS.to_vec() } else { asked.to_vec() };
        widths.sort_unstable();
        widths.dedup();
        Ok(widths)
    }

    /// The presets asked for (or [`PLAIN`]) with their options.
    fn presets(&self, asked: &[String]) -> Result<Vec<(String, Options)>, Error> {
        if asked.is_empty() {
            return Ok(vec![(PLAIN.to_owned(), Options::default())]);
        }
        let mut out: Vec<(String, Options)> = Vec::new();
        for name in asked {
            if out.iter().any(|(n, _)| n == name) {
                continue;
            }
            let options = match name.as_str() {
                PLAIN => Options::default(),
                _ => self.signer.presets.options(name).map_err(|_| {
                    let known = self.signer.presets.names().join(", ");
                    Error::bad_field("presets", format!("presets: no preset {name:?} (there are: {PLAIN}, {known})"))
                })?,
            };
            out.push((name.clone(), options));
        }
        Ok(out)
    }
}

/// The widest `shape` can be asked at so that no side of its result is longer than the
/// transformer makes ([`DEFAULT_MAX_OUTPUT_SIDE`], at the preset's `dpr`): a preset with a width
/// and a height keeps its aspect; one with a width only takes the image's (`image`, as
/// displayed).
fn widest_output(shape: &Options, image: Option<&ImageInfo>) -> u32 {
    let most = f64::from(DEFAULT_MAX_OUTPUT_SIDE) / shape.dpr.max(1.0);
    let aspect = match (shape.width, shape.height, image) {
        (w, h, _) if w > 0 && h > 0 => f64::from(h) / f64::from(w),
        (_, 0, Some(i)) => f64::from(i.height) / f64::from(i.width.max(1)),
        _ => 0.0,
    };
    let by_height = if aspect > 0.0 { most / aspect } else { most };
    most.min(by_height).floor().max(1.0) as u32
}

/// `shape` at width `w`: a preset with a width and a height keeps its aspect; one with a width
/// only, or none, takes `w` as its width.
fn scaled(shape: &Options, w: u32) -> Options {
    let (sw, sh) = (u64::from(shape.width), u64::from(shape.height));
    let height = if sw > 0 && sh > 0 { ((sh * u64::from(w) + sw / 2) / sw).max(1) as u32 } else { shape.height };
    Options { width: w, height, ..shape.clone() }
}

#[cfg(test)]
mod tests {
    use matbakh_core::clock::FixedClock;
    use matbakh_core::imgproxy::{SourcePolicy, TransformUrl};
    use matbakh_core::labels::Labels;
    use matbakh_core::metadata::{FileDetails, FileRecord, ImageInfo};
    use matbakh_core::names::DisplayName;
    use matbakh_core::types::ContentType;
    use time::macros::datetime;

    use super::*;
    use crate::fakes::InMemory;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:10 UTC);
    const BASE: &str = "https://files.example/t";

    fn keys() -> SigningKeys {
        SigningKeys::from_hex("6b6579", "73616c74").unwrap()
    }

    fn images(repo: Arc<InMemory>) -> Images {
        let presets = Presets::parse("card=rt:fill/w:400/h:300/g:sm,hero=rt:fill/w:1600/h:900").unwrap();
        Images {
            files: repo.clone(),
            counters: repo,
            signer: Signer { base_url: BASE.into(), keys: Arc::new(keys()), presets },
            limits: Limits::default(),
            clock: Arc::new(FixedClock(NOW)),
        }
    }

    /// A READY image of alice's, 1000 px wide, with `visibility`.
    fn photo(repo: &InMemory, n: u8, visibility: Visibility, content_type: &str) -> FileId {
        let id = FileId::new(1_772_000_000_000, [n; 10]);
        let owner = UserId::parse("alice").unwrap();
        let mut record = FileRecord::upload(
            id,
            owner,
            DisplayName::parse("dish.jpg").unwrap(),
            ContentType::parse(content_type).unwrap(),
            NOW,
        );
        record.status = FileStatus::Ready;
        record.labels = Labels { visibility, ..Labels::default() };
        let image = ImageInfo { width: 1000, height: 750, frames: 1, placeholder: String::new(), variants: vec![] };
        repo.insert(FileDetails { image: Some(image), ..FileDetails::new(record) });
        id
    }

    /// What the transformer reads from `url` at `now`.
    fn read(url: &str, now: i64) -> Result<TransformUrl, matbakh_core::imgproxy::UrlError> {
        let policy = SourcePolicy { default_bucket: "files".into(), allowed: vec![("files".into(), "users/".into())] };
        TransformUrl::parse(url.strip_prefix(BASE).unwrap(), &keys(), &Presets::default(), &policy, now)
    }

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    /// Security review 20 (edge 3): a tall image (a menu scan, 1200 x 6000) had URLs whose
    /// result would be taller than the transformer makes (960 wide: 4800 tall), each failing
    /// with `no-store` and asking the transformer (and the whole source) again. Now no URL is
    /// taller than it makes; a preset none of whose widths fit gets the widest that does.
    #[tokio::test]
    async fn a_tall_images_urls_are_never_taller_than_the_transformer_makes() {
        let repo = Arc::new(InMemory::new());
        let id = photo(&repo, 1, Visibility::Public, "image/jpeg");
        let mut d = repo.get(id).unwrap();
        d.image.as_mut().unwrap().width = 1200;
        d.image.as_mut().unwrap().height = 6000;
        repo.insert(d);
        let tall = |w: u32| f64::from(w) * 6000.0 / 1200.0;
        let wanted = Wanted { presets: vec![], widths: vec![], format: Some(Format::WebP) };
        let got = images(repo.clone()).urls(&alice(), id, &wanted).await.unwrap();
        let widths: Vec<u32> = got.sets[0].urls.iter().map(|(w, _)| *w).collect();
        assert_eq!(widths, [320, 640], "960 would be 4800 tall");
        assert!(widths.iter().all(|w| tall(*w) <= f64::from(DEFAULT_MAX_OUTPUT_SIDE)));
        let narrow = Wanted { widths: vec![1000, 1200], ..wanted };
        let got = images(repo.clone()).urls(&alice(), id, &narrow).await.unwrap();
        assert_eq!(got.sets[0].urls.len(), 1);
        let (w, url) = &got.sets[0].urls[0];
        assert_eq!(*w, 819, "the widest that fits: 819 x 4095");
        assert_eq!(read(url, NOW.unix_timestamp()).unwrap().options.width, 819);
        // A preset of its own shape keeps it: the card (4:3) is never too tall.
        let card = Wanted { presets: vec!["card".into()], widths: vec![640, 960], format: Some(Format::WebP) };
        let got = images(repo).urls(&alice(), id, &card).await.unwrap();
        assert_eq!(got.sets[0].urls.iter().map(|(w, _)| *w).collect::<Vec<_>>(), [640, 960]);
    }

    #[tokio::test]
    async fn a_private_images_urls_scale_the_preset_expire_with_the_window_and_read_back() {
        let repo = Arc::new(InMemory::new());
        let id = photo(&repo, 1, Visibility::Private, "image/jpeg");
        let wanted = Wanted { presets: vec!["card".into()], widths: vec![640, 320, 4000], format: Some(Format::WebP) };
        let got = images(repo.clone()).urls(&alice(), id, &wanted).await.unwrap();
        let window = Limits::default().image_url_ttl;
        let expires = SigningWindow::at(NOW, window).expires();
        assert_eq!(got.expires_at, Some(expires));
        assert_eq!(got.sets.len(), 1);
        let set = &got.sets[0];
        assert_eq!((set.preset.as_str(), set.format), ("card", Format::WebP));
        let widths: Vec<u32> = set.urls.iter().map(|(w, _)| *w).collect();
        assert_eq!(widths, [320, 640], "none wider than the image");
        for (w, url) in &set.urls {
            let t = read(url, NOW.unix_timestamp()).unwrap();
            assert_eq!((t.options.width, t.options.height), (*w, w * 3 / 4), "{url}");
            assert_eq!((t.options.expires, t.options.format), (Some(expires.unix_timestamp()), Some(Format::WebP)));
            assert_eq!(t.source.key.as_str(), repo.get(id).unwrap().record.key.as_str());
            assert!(read(url, expires.unix_timestamp() + 1).is_err(), "expired after its window");
        }
        assert_eq!(set.srcset(), format!("{} 320w, {} 640w", set.urls[0].1, set.urls[1].1));
        // Asked again within the window: the same URLs (a browser's cache keeps working).
        let later =
            Images { clock: Arc::new(FixedClock(NOW + std::time::Duration::from_secs(60))), ..images(repo.clone()) };
        assert_eq!(later.urls(&alice(), id, &wanted).await.unwrap(), got);
    }

    #[tokio::test]
    async fn a_public_images_urls_never_expire_and_default_to_every_format_and_width() {
        let repo = Arc::new(InMemory::new());
        let id = photo(&repo, 2, Visibility::Public, "image/png");
        let got = images(repo).urls(&alice(), id, &Wanted::default()).await.unwrap();
        assert_eq!(got.expires_at, None);
        let formats: Vec<Format> = got.sets.iter().map(|s| s.format).collect();
        assert_eq!(formats, DEFAULT_IMAGE_FORMATS);
        for set in &got.sets {
            assert_eq!(set.preset, PLAIN);
            assert_eq!(set.urls.iter().map(|(w, _)| *w).collect::<Vec<_>>(), [320, 640, 960]);
            for (w, url) in &set.urls {
                let t = read(url, i64::MAX / 2).unwrap();
                assert_eq!((t.options.width, t.options.height, t.options.expires), (*w, 0, None));
            }
        }
    }

    #[tokio::test]
    async fn only_the_owners_stored_images_get_urls_and_bad_asks_name_their_field() {
        let repo = Arc::new(InMemory::new());
        let id = photo(&repo, 3, Visibility::Public, "image/jpeg");
        let pdf = photo(&repo, 4, Visibility::Public, "application/pdf");
        let images = images(repo);
        let any = Wanted::default();
        assert!(matches!(images.urls(&UserId::parse("mallory").unwrap(), id, &any).await, Err(Error::NotFound(_))));
        assert!(matches!(images.urls(&alice(), pdf, &any).await, Err(Error::Conflict { code: "not_an_image", .. })));
        for (wanted, field) in [
            (Wanted { presets: vec!["poster".into()], ..any.clone() }, "presets"),
            (Wanted { widths: vec![0], ..any.clone() }, "widths"),
            (Wanted { widths: vec![MAX_IMAGE_WIDTH + 1], ..any.clone() }, "widths"),
            (Wanted { widths: (1..=11).collect(), ..any.clone() }, "widths"),
        ] {
            let err = images.urls(&alice(), id, &wanted).await.unwrap_err();
            assert!(matches!(err, Error::BadField { field: f, .. } if f == field), "{wanted:?}: {err:?}");
        }
    }
}
