//! Encoders for the variants: progressive JPEG (libjpeg-turbo), WebP (libwebp), AVIF (rav1e
//! through ravif). None of them is given any metadata, so variants carry no EXIF, GPS or
//! comments; colours are sRGB already.

use ravif::Img;
use rgb::FromSlice;

use crate::ImageError;
use crate::pixels::Pixels;

/// An output format of the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    Avif,
    WebP,
    Jpeg,
    /// Lossless, for transform results with alpha where neither modern format is accepted.
    Png,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 3] = [OutputFormat::Avif, OutputFormat::WebP, OutputFormat::Jpeg];

    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Avif => "avif",
            OutputFormat::WebP => "webp",
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Png => "png",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Avif => "image/avif",
            OutputFormat::WebP => "image/webp",
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
        }
    }
}

/// Encoder settings, named once. Quality numbers of different encoders do not correspond; the
/// benchmark calibrates them by SSIM against sharp's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub jpeg: u8,
    pub webp: f32,
    /// libwebp's method, 0 (fast) to 6 (small); sharp's default effort is 4.
    pub webp_method: u8,
    pub avif: f32,
    /// rav1e's speed, 1 (slow, small) to 10 (fast).
    pub avif_speed: u8,
}

/// AVIF q70 (8-bit, speed 8) is the lowest quality whose mean SSIM reaches sharp's default AVIF on the
/// corpus (`scripts/bench images`).
pub const DEFAULT_QUALITY: Quality = Quality { jpeg: 80, webp: 80.0, webp_method: 4, avif: 70.0, avif_speed: 8 };

pub fn encode(p: &Pixels, format: OutputFormat, q: &Quality) -> Result<Vec<u8>, ImageError> {
    match format {
        OutputFormat::Jpeg => jpeg(&p.flatten(), q.jpeg),
        OutputFormat::WebP => webp(p, q),
        OutputFormat::Avif => avif(p, q),
        OutputFormat::Png => png(p),
    }
}

fn png(p: &Pixels) -> Result<Vec<u8>, ImageError> {
    png_with(p, None, None)
}

fn png_with(p: &Pixels, icc: Option<&[u8]>, exif: Option<Vec<u8>>) -> Result<Vec<u8>, ImageError> {
    use image::ImageEncoder;
    let color = if p.has_alpha() { image::ExtendedColorType::Rgba8 } else { image::ExtendedColorType::Rgb8 };
    let mut out = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
    let unsupported = |e: image::error::UnsupportedError| ImageError::Encode(format!("PNG: {e}"));
    if let Some(icc) = icc {
        encoder.set_icc_profile(icc.to_vec()).map_err(unsupported)?;
    }
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif).map_err(unsupported)?;
    }
    encoder.write_image(&p.data, p.width, p.height, color).map_err(|e| ImageError::Encode(format!("PNG: {e}")))?;
    Ok(out)
}

/// [`encode`], keeping a colour profile and a copyright where the format carries them: JPEG
/// (APP2 `ICC_PROFILE` segments, an APP1 EXIF block) and PNG (`iCCP`, `eXIf`). WebP and AVIF
/// results get neither (their pixels are then converted to sRGB by the caller, see
/// `transform::run`).
pub fn encode_keeping(
    p: &Pixels,
    format: OutputFormat,
    q: &Quality,
    icc: Option<&[u8]>,
    copyright: Option<&str>,
) -> Result<Vec<u8>, ImageError> {
    let exif = copyright.and_then(crate::exif::copyright_block);
    match format {
        OutputFormat::Jpeg if icc.is_some() || exif.is_some() => {
            let plain = jpeg(&p.flatten(), q.jpeg)?;
            Ok(jpeg_segments(&plain, icc, exif.as_deref()))
        }
        OutputFormat::Png if icc.is_some() || exif.is_some() => png_with(p, icc, exif),
        _ => encode(p, format, q),
    }
}

/// Whether `format` can carry a colour profile in this encoder.
pub fn keeps_profile(format: OutputFormat) -> bool {
    matches!(format, OutputFormat::Jpeg | OutputFormat::Png)
}

/// `jpeg` with an APP1 EXIF segment and the profile in APP2 `ICC_PROFILE` chunks (at most
/// 65,519 bytes each, numbered from 1), right after SOI.
fn jpeg_segments(jpeg: &[u8], icc: Option<&[u8]>, exif: Option<&[u8]>) -> Vec<u8> {
    const MAX_ICC_CHUNK: usize = 65_519;
    let mut out = Vec::with_capacity(jpeg.len() + icc.map_or(0, <[u8]>::len) + 1024);
    out.extend_from_slice(&jpeg[..2]);
    let mut segment = |marker: u8, parts: &[&[u8]]| {
        let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 2;
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        for p in parts {
            out.extend_from_slice(p);
        }
    };
    if let Some(exif) = exif.filter(|e| e.len() + 8 < usize::from(u16::MAX)) {
        segment(0xE1, &[b"Exif\0\0", exif]);
    }
    if let Some(icc) = icc {
        let chunks: Vec<&[u8]> = icc.chunks(MAX_ICC_CHUNK).collect();
        let total = chunks.len().min(255) as u8;
        for (i, chunk) in chunks.iter().take(255).enumerate() {
            segment(0xE2, &[b"ICC_PROFILE\0", &[i as u8 + 1, total], chunk]);
        }
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn jpeg(p: &Pixels, quality: u8) -> Result<Vec<u8>, ImageError> {
    let err = |e: turbojpeg::Error| ImageError::Encode(format!("JPEG: {e}"));
    let mut c = turbojpeg::Compressor::new().map_err(err)?;
    c.set_quality(i32::from(quality)).map_err(err)?;
    c.set_subsamp(turbojpeg::Subsamp::Sub2x2).map_err(err)?;
    c.set_progressive(true).map_err(err)?;
    let image = turbojpeg::Image {
        pixels: p.data.as_slice(),
        width: p.width as usize,
        pitch: p.width as usize * 3,
        height: p.height as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    c.compress_to_vec(image).map_err(err)
}

fn webp(p: &Pixels, q: &Quality) -> Result<Vec<u8>, ImageError> {
    let layout = if p.has_alpha() { webp::PixelLayout::Rgba } else { webp::PixelLayout::Rgb };
    let mut config = webp::WebPConfig::new().map_err(|_| ImageError::Encode("WebP: no config".into()))?;
    config.quality = q.webp;
    config.method = i32::from(q.webp_method);
    let out = webp::Encoder::new(&p.data, layout, p.width, p.height)
        .encode_advanced(&config)
        .map_err(|e| ImageError::Encode(format!("WebP: {e:?}")))?;
    Ok(out.to_vec())
}

/// One AVIF encode at a time per process: a 1920 px rav1e encode holds tens of MB, and the
/// other encoder thread is better spent on WebP and JPEG meanwhile (peak RSS stays bounded).
static AVIF_ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn avif(p: &Pixels, q: &Quality) -> Result<Vec<u8>, ImageError> {
    let _turn = AVIF_ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // 8-bit like the source: ravif's default 10-bit doubles the frame memory for no visible gain.
    let encoder = ravif::Encoder::new()
        .with_quality(q.avif)
        .with_alpha_quality(q.avif)
        .with_speed(q.avif_speed)
        .with_bit_depth(ravif::BitDepth::Eight);
    let (w, h) = (p.width as usize, p.height as usize);
    let out = if p.has_alpha() {
        encoder.encode_rgba(Img::new(p.data.as_rgba(), w, h))
    } else {
        encoder.encode_rgb(Img::new(p.data.as_rgb(), w, h))
    };
    out.map(|e| e.avif_file).map_err(|e| ImageError::Encode(format!("AVIF: {e}")))
}
