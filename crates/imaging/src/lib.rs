//! `imaging`: responsive variants of an uploaded photo, pure (bytes in, bytes out; no I/O).
//!
//! [`render`] sniffs the real format, reads the header and checks it against [`ImageLimits`]
//! before any pixel is allocated, reads EXIF, decodes once (JPEG at the smallest DCT scale that
//! still covers the largest variant), converts an embedded ICC profile to sRGB, applies the EXIF
//! orientation, and from that one decode makes every width of [`VARIANT_WIDTHS`] that is not an
//! upscale nor taller than [`MAX_VARIANT_HEIGHT`], each as AVIF, WebP and progressive JPEG
//! with no metadata, plus a ThumbHash placeholder. Every failure is an [`ImageError`] with a reason and a [`Disposition`]; no
//! input panics (a property test and a fuzz target hold it to that).

mod avif;
pub mod decode;
pub mod encode;
pub mod exif;
pub mod pixels;
pub mod probe;
pub mod transform;

use base64::Engine;
use matbakh_core::sniff::{Sniffed, sniff};
use matbakh_core::types::MAX_IMAGE_BYTES;

pub use encode::{DEFAULT_QUALITY, OutputFormat, Quality};
pub use exif::ExifSummary;
pub use matbakh_core::metadata::Disposition;
pub use pixels::Pixels;
pub use probe::{Format, Probe};

/// Variant widths in pixels; none is made wider than the (oriented) source.
pub const VARIANT_WIDTHS: [u32; 4] = [320, 640, 1280, 1920];
/// The tallest variant made: a tall image (a long screenshot) gets the widths whose height fits.
/// WebP takes no side over 16,383 px, and an AVIF encode's time grows with its pixels.
pub const MAX_VARIANT_HEIGHT: u32 = 4096;
/// Largest source accepted, in pixels (`MAX_SOURCE_PIXELS`): 50 MP covers phone and most
/// camera photos; a decompression bomb declares far more.
pub const DEFAULT_MAX_SOURCE_PIXELS: u64 = 50_000_000;
/// Most frames an animation may have (`MAX_ANIMATION_FRAMES`).
pub const DEFAULT_MAX_FRAMES: u32 = 500;
/// The largest colour profile read, decompressed: qcms takes none of 4 MiB or more. A PNG whose
/// compressed profile inflates past it is refused (a few MB of zeros inflate to gigabytes).
pub const MAX_ICC_BYTES: usize = 4 << 20;
/// Largest source file, in bytes (the allow-list's image limit).
pub const DEFAULT_MAX_SOURCE_BYTES: u64 = MAX_IMAGE_BYTES;
/// Encoder threads per render: a 2 GB Lambda has two vCPUs, and each AVIF encoder of a 1920 px
/// variant holds tens of MB, so more threads would only add memory.
pub const ENCODER_THREADS: usize = 2;
/// The placeholder's longest side before hashing (ThumbHash takes at most 100).
const PLACEHOLDER_SIDE: u32 = 100;

/// What a source may be before the pipeline refuses to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_pixels: u64,
    pub max_frames: u32,
    pub max_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_pixels: DEFAULT_MAX_SOURCE_PIXELS,
            max_frames: DEFAULT_MAX_FRAMES,
            max_bytes: DEFAULT_MAX_SOURCE_BYTES,
        }
    }
}

/// A setting that is not a whole number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {value:?} is not a whole number")]
pub struct BadSetting {
    pub name: &'static str,
    pub value: String,
}

impl ImageLimits {
    /// Defaults, overridden by `MAX_SOURCE_PIXELS`, `MAX_ANIMATION_FRAMES`, `MAX_SOURCE_BYTES`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BadSetting> {
        let number = |name: &'static str, default: u64| -> Result<u64, BadSetting> {
            match lookup(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| BadSetting { name, value: v }),
            }
        };
        let d = ImageLimits::default();
        Ok(ImageLimits {
            max_pixels: number("MAX_SOURCE_PIXELS", d.max_pixels)?,
            max_frames: u32::try_from(number("MAX_ANIMATION_FRAMES", u64::from(d.max_frames))?)
                .map_err(|_| BadSetting { name: "MAX_ANIMATION_FRAMES", value: "too large".into() })?,
            max_bytes: number("MAX_SOURCE_BYTES", d.max_bytes)?,
        })
    }

    /// Bytes a decoder may allocate: the largest allowed frame in RGBA, with room for one copy.
    fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(8)
    }
}

/// Why an image got no variants. The message is the reason stored on the file's row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("not an image: {0}")]
    NotAnImage(&'static str),
    #[error("no decoder for {0} here; kept without variants")]
    Unsupported(&'static str),
    #[error("{size} bytes is over the {limit}-byte limit for images")]
    TooManyBytes { size: u64, limit: u64 },
    #[error("declares {width}x{height} pixels, over the {limit}-pixel limit")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("has {frames} frames, over the {limit}-frame limit")]
    TooManyFrames { frames: u32, limit: u32 },
    #[error("the result would be {width}x{height} pixels, over the {limit}-pixel side limit")]
    TooLargeOutput { width: u32, height: u32, limit: u32 },
    #[error("malformed header: {0}")]
    Malformed(String),
    #[error("truncated: the image data ends early")]
    Truncated,
    #[error("cannot be decoded: {0}")]
    Corrupt(String),
    #[error("resize failed: {0}")]
    Resize(String),
    #[error("encoding failed: {0}")]
    Encode(String),
}

impl ImageError {
    pub fn disposition(&self) -> Disposition {
        match self {
            ImageError::NotAnImage(_)
            | ImageError::TooManyBytes { .. }
            | ImageError::TooManyPixels { .. }
            | ImageError::TooManyFrames { .. }
            | ImageError::Malformed(_) => Disposition::Quarantine,
            ImageError::Unsupported(_) => Disposition::KeepWithoutVariants,
            ImageError::Truncated
            | ImageError::Corrupt(_)
            | ImageError::Resize(_)
            | ImageError::Encode(_)
            | ImageError::TooLargeOutput { .. } => Disposition::Fail,
        }
    }
}

/// One encoded variant.
#[derive(Clone, PartialEq, Eq)]
pub struct Variant {
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Variant({}x{} {:?}, {} bytes)", self.width, self.height, self.format, self.bytes.len())
    }
}

/// Everything [`render`] made of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub format: Format,
    /// The source's size as displayed (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub has_alpha: bool,
    pub exif: ExifSummary,
    /// Base64 ThumbHash of the image.
    pub placeholder: String,
    /// Narrowest first; per width: AVIF, WebP, JPEG.
    pub variants: Vec<Variant>,
}

/// The format the leading bytes say, if it is one this crate decodes.
pub fn format_of(bytes: &[u8]) -> Result<Format, ImageError> {
    match sniff(bytes) {
        Sniffed::Allowed(t) => match t.as_str() {
            "image/jpeg" => Ok(Format::Jpeg),
            "image/png" => Ok(Format::Png),
            "image/gif" => Ok(Format::Gif),
            "image/webp" => Ok(Format::WebP),
            "image/avif" => Ok(Format::Avif),
            "image/heic" | "image/heif" => Err(ImageError::Unsupported("HEIC")),
            other => Err(ImageError::NotAnImage(if other.starts_with("video/") { "a video" } else { "a document" })),
        },
        other => Err(ImageError::NotAnImage(other.describe())),
    }
}

/// Reads and checks the header: the cheap part, safe on any input.
pub fn inspect(bytes: &[u8], limits: &ImageLimits) -> Result<Probe, ImageError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooManyBytes { size: bytes.len() as u64, limit: limits.max_bytes });
    }
    let probe = probe::probe(format_of(bytes)?, bytes)?;
    if probe.pixels() > limits.max_pixels || probe.largest_frame_pixels > limits.max_pixels {
        return Err(ImageError::TooManyPixels { width: probe.width, height: probe.height, limit: limits.max_pixels });
    }
    if probe.frames > limits.max_frames {
        return Err(ImageError::TooManyFrames { frames: probe.frames, limit: limits.max_frames });
    }
    Ok(probe)
}

/// The widths to make for a source of `width` x `height` pixels (as displayed): every standard
/// width that is not an upscale and whose variant is no taller than [`MAX_VARIANT_HEIGHT`];
/// else one variant, as wide as the source or as fits that height.
pub fn widths_for(width: u32, height: u32) -> Vec<u32> {
    let fits = |w: u32| scaled_height(width, height, w) <= MAX_VARIANT_HEIGHT;
    let widths: Vec<u32> = VARIANT_WIDTHS.iter().copied().filter(|&w| w <= width && fits(w)).collect();
    if !widths.is_empty() {
        return widths;
    }
    let fitting = u64::from(width) * u64::from(MAX_VARIANT_HEIGHT) / u64::from(height.max(1));
    vec![width.min(u32::try_from(fitting).unwrap_or(u32::MAX)).max(1)]
}

fn scaled_height(width: u32, height: u32, to_width: u32) -> u32 {
    ((u64::from(height) * u64::from(to_width) + u64::from(width) / 2) / u64::from(width)).max(1) as u32
}

/// A source checked, decoded once, in sRGB and upright: what every variant is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub probe: Probe,
    pub exif: ExifSummary,
    /// At least as wide as the widest variant (JPEG may decode smaller than stored).
    pub pixels: Pixels,
    /// The displayed size of the whole source (after orientation, before any decode scaling).
    pub width: u32,
    pub height: u32,
    /// The colour profile still to apply ([`load_deferred`] only; [`load`] has applied it).
    pub icc: Option<Vec<u8>>,
}

impl Source {
    /// The pixels resized to `width` (aspect kept): what a variant of that width is made from.
    pub fn resized_to(&self, width: u32) -> Result<Pixels, ImageError> {
        self.pixels.resize(width, scaled_height(self.pixels.width, self.pixels.height, width))
    }
}

/// Checks, decodes (large enough for a variant `min_width` wide) and orients one source: the
/// decode entry point the fuzz target and the property test drive.
pub fn load(bytes: &[u8], limits: &ImageLimits, min_width: u32) -> Result<Source, ImageError> {
    load_oriented(bytes, limits, min_width, true)
}

/// [`load`], applying the EXIF orientation only if `auto_rotate` (imgproxy's `ar:0` keeps the
/// pixels as stored).
pub fn load_oriented(
    bytes: &[u8],
    limits: &ImageLimits,
    min_width: u32,
    auto_rotate: bool,
) -> Result<Source, ImageError> {
    let Source { probe, exif, pixels, width, height, icc } = load_deferred(bytes, limits, min_width, auto_rotate)?;
    Ok(Source { probe, exif, pixels: pixels.to_srgb(icc.as_deref()), width, height, icc: None })
}

/// [`load_oriented`] without the conversion to sRGB: the profile is left in `icc` for the caller
/// to apply once the pixels are cut and resized (far fewer pixels to convert, as libvips does).
pub fn load_deferred(
    bytes: &[u8],
    limits: &ImageLimits,
    min_width: u32,
    auto_rotate: bool,
) -> Result<Source, ImageError> {
    read_header(bytes, limits, auto_rotate)?.decode(bytes, limits, min_width)
}

/// What is known before decoding: the header (checked against the limits), EXIF, and the size
/// as displayed. The transformer plans its geometry from it, then decodes just large enough.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub probe: Probe,
    /// Orientation 1 when `auto_rotate` was false.
    pub exif: ExifSummary,
    pub width: u32,
    pub height: u32,
}

/// Reads and checks the header and EXIF of `bytes` (no pixel decoded).
pub fn read_header(bytes: &[u8], limits: &ImageLimits, auto_rotate: bool) -> Result<Header, ImageError> {
    let probe = inspect(bytes, limits)?;
    let mut exif = exif::read(bytes);
    if !auto_rotate {
        exif.orientation = 1;
    }
    let (width, height) = if exif.orientation >= 5 { (probe.height, probe.width) } else { (probe.width, probe.height) };
    Ok(Header { probe, exif, width, height })
}

impl Header {
    /// Decodes (at least `min_width` wide as displayed, where the format can decode smaller) and
    /// orients; the colour profile is left in [`Source::icc`].
    pub fn decode(self, bytes: &[u8], limits: &ImageLimits, min_width: u32) -> Result<Source, ImageError> {
        let Header { probe, exif, width, height } = self;
        let transposed = exif.orientation >= 5;
        // The stored side that becomes the displayed width must cover the widest variant.
        let need = min_width.min(width);
        let min_stored = if transposed { (0, need) } else { (need, 0) };
        let (decoded, icc) = decode::decode(bytes, &probe, min_stored, limits.max_alloc())?;
        let pixels = decoded.orient(exif.orientation);
        Ok(Source { probe, exif, pixels, width, height, icc })
    }
}

/// The whole pipeline for one source; see the crate documentation.
pub fn render(bytes: &[u8], limits: &ImageLimits, quality: &Quality) -> Result<Rendered, ImageError> {
    render_formats(bytes, limits, quality, &OutputFormat::ALL)
}

/// [`render`] for some output formats only (the benchmark times format groups separately).
pub fn render_formats(
    bytes: &[u8],
    limits: &ImageLimits,
    quality: &Quality,
    formats: &[OutputFormat],
) -> Result<Rendered, ImageError> {
    let widest = VARIANT_WIDTHS[VARIANT_WIDTHS.len() - 1];
    let Source { probe, exif, pixels: source, width, height, .. } = load(bytes, limits, widest)?;
    let widths = widths_for(width, height);
    // Every size is resized once from the one decode; then the encodes (AVIF of the widest first:
    // it dominates) are shared by ENCODER_THREADS workers, so two cores stay busy while at most
    // two encoders hold their working memory at once.
    let sized: Vec<Pixels> = widths
        .iter()
        .map(|&w| {
            let h = scaled_height(width, height, w);
            if (w, h) == (source.width, source.height) { Ok(source.clone()) } else { source.resize(w, h) }
        })
        .collect::<Result<_, _>>()?;
    let mut jobs: Vec<(usize, OutputFormat)> =
        (0..sized.len()).flat_map(|i| formats.iter().map(move |&f| (i, f))).collect();
    jobs.sort_by_key(|&(i, f)| std::cmp::Reverse((f == OutputFormat::Avif, sized[i].width)));
    let next = std::sync::atomic::AtomicUsize::new(0);
    // One encode failed: the render fails, so the other worker takes no more jobs.
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..ENCODER_THREADS.min(jobs.len()).max(1))
            .map(|_| {
                scope.spawn(|| -> Result<Vec<(usize, Variant)>, ImageError> {
                    let mut done = Vec::new();
                    loop {
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            return Ok(done);
                        }
                        let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(i, format)) = jobs.get(j) else { return Ok(done) };
                        let p = &sized[i];
                        let bytes = encode::encode(p, format, quality)
                            .inspect_err(|_| failed.store(true, std::sync::atomic::Ordering::Relaxed))?;
                        done.push((j, Variant { width: p.width, height: p.height, format, bytes }));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(ImageError::Encode("an encoder thread panicked".into()))))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut variants: Vec<Variant> = results.into_iter().flatten().map(|(_, v)| v).collect();
    // Narrowest first; per width in the order of `formats`.
    let rank = |f: OutputFormat| formats.iter().position(|x| *x == f).unwrap_or(usize::MAX);
    variants.sort_by_key(|v| (v.width, rank(v.format)));
    Ok(Rendered {
        format: probe.format,
        width,
        height,
        frames: probe.frames,
        has_alpha: source.has_alpha(),
        exif,
        placeholder: placeholder(&source)?,
        variants,
    })
}

/// A ThumbHash (about 25 bytes, Base64) the web app paints while the image loads.
pub fn placeholder(p: &Pixels) -> Result<String, ImageError> {
    let scale = f64::from(PLACEHOLDER_SIDE) / f64::from(p.width.max(p.height));
    let (w, h) = if scale < 1.0 {
        (((f64::from(p.width) * scale).round() as u32).max(1), ((f64::from(p.height) * scale).round() as u32).max(1))
    } else {
        (p.width, p.height)
    };
    let small = if (w, h) == (p.width, p.height) { p.clone() } else { p.resize(w, h)? }.to_rgba();
    let hash = thumbhash::rgba_to_thumb_hash(w as usize, h as usize, &small.data);
    Ok(base64::engine::general_purpose::STANDARD.encode(hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_never_upscale() {
        assert_eq!(widths_for(5640, 3172), vec![320, 640, 1280, 1920]);
        assert_eq!(widths_for(1280, 800), vec![320, 640, 1280]);
        assert_eq!(widths_for(428, 640), vec![320]);
        assert_eq!(widths_for(100, 80), vec![100]);
    }

    #[test]
    fn heights_keep_the_aspect_ratio() {
        assert_eq!(scaled_height(5640, 3172, 1920), 1080);
        assert_eq!(scaled_height(428, 640, 320), 479 - 1 + 1); // 478.5 rounds to 479
        assert_eq!(scaled_height(10_000, 1, 320), 1);
    }

    #[test]
    fn refusals_say_what_happens_to_the_file() {
        assert_eq!(ImageError::Truncated.disposition(), Disposition::Fail);
        assert_eq!(ImageError::NotAnImage("BMP image").disposition(), Disposition::Quarantine);
        assert_eq!(ImageError::Unsupported("HEIC").disposition(), Disposition::KeepWithoutVariants);
        let bomb = ImageError::TooManyPixels { width: 64250, height: 64250, limit: DEFAULT_MAX_SOURCE_PIXELS };
        assert_eq!(bomb.to_string(), "declares 64250x64250 pixels, over the 50000000-pixel limit");
    }
}
