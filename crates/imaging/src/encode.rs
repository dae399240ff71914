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
/// (APP2 `ICC_PROFILE` segments, an APP1 EXIF block), PNG (`iCCP`, `eXIf`), WebP (`ICCP`,
/// `EXIF`) and AVIF (an `Exif` item; no profile: `avif-serialize` writes none, so AVIF pixels are
/// converted to sRGB by the caller, see `transform::run`).
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
        OutputFormat::WebP if icc.is_some() || exif.is_some() => {
            webp_chunks(&webp(p, q)?, (p.width, p.height), p.has_alpha(), icc, exif.as_deref())
        }
        OutputFormat::Avif if exif.is_some() => avif_with_exif(p, q, exif.unwrap_or_default()),
        _ => encode(p, format, q),
    }
}

/// An AVIF result with an `Exif` item: ravif's AV1 payloads written again by its own container
/// writer (`avif-serialize`) with the settings ravif uses (BT.601, unassociated alpha, 8 bits)
/// plus the EXIF block. The payloads are the end of ravif's file, alpha before colour, as
/// `avif-serialize` lays out its `mdat`.
fn avif_with_exif(p: &Pixels, q: &Quality, exif: Vec<u8>) -> Result<Vec<u8>, ImageError> {
    let encoded = avif_encoded(p, q)?;
    let (file, color, alpha) = (&encoded.avif_file, encoded.color_byte_size, encoded.alpha_byte_size);
    let start = file.len().checked_sub(color + alpha).ok_or_else(|| ImageError::Encode("AVIF: short file".into()))?;
    let (alpha, color) = file[start..].split_at(alpha);
    let mut container = avif_serialize::Aviffy::new();
    container
        .matrix_coefficients(avif_serialize::constants::MatrixCoefficients::Bt601)
        .premultiplied_alpha(false)
        .set_exif(exif);
    let alpha = (!alpha.is_empty()).then_some(alpha);
    let mut out = Vec::new();
    container
        .write(&mut out, color, alpha, p.width, p.height, 8)
        .map_err(|e| ImageError::Encode(format!("AVIF: {e}")))?;
    Ok(out)
}

/// Whether `format` can carry a colour profile in this encoder (AVIF: `ravif` writes none).
pub fn keeps_profile(format: OutputFormat) -> bool {
    !matches!(format, OutputFormat::Avif)
}

/// A WebP file in the extended format (RIFF `VP8X`) with an `ICCP` chunk before the image and
/// an `EXIF` chunk after it, as the WebP container specification orders them.
fn webp_chunks(
    webp: &[u8],
    (width, height): (u32, u32),
    alpha: bool,
    icc: Option<&[u8]>,
    exif: Option<&[u8]>,
) -> Result<Vec<u8>, ImageError> {
    let bad = || ImageError::Encode("WebP: libwebp wrote an unexpected container".into());
    if webp.len() < 12 || &webp[..4] != b"RIFF" || &webp[8..12] != b"WEBP" {
        return Err(bad());
    }
    // The chunks libwebp wrote, without a VP8X (it is written anew).
    let mut chunks: Vec<([u8; 4], &[u8])> = Vec::new();
    let mut at = 12;
    while at + 8 <= webp.len() {
        let fourcc: [u8; 4] = webp[at..at + 4].try_into().map_err(|_| bad())?;
        let len = u32::from_le_bytes(webp[at + 4..at + 8].try_into().map_err(|_| bad())?) as usize;
        let payload = webp.get(at + 8..at + 8 + len).ok_or_else(bad)?;
        if &fourcc != b"VP8X" {
            chunks.push((fourcc, payload));
        }
        at += 8 + len + (len & 1);
    }
    let flags =
        if icc.is_some() { 0x20 } else { 0 } | if alpha { 0x10 } else { 0 } | if exif.is_some() { 0x08 } else { 0 };
    let mut vp8x = vec![flags, 0, 0, 0];
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let mut all: Vec<([u8; 4], &[u8])> = vec![(*b"VP8X", &vp8x)];
    if let Some(icc) = icc {
        all.push((*b"ICCP", icc));
    }
    all.extend(chunks);
    if let Some(exif) = exif {
        all.push((*b"EXIF", exif));
    }
    let mut out = b"RIFF\0\0\0\0WEBP".to_vec();
    for (fourcc, payload) in all {
        out.extend_from_slice(&fourcc);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        if payload.len() % 2 == 1 {
            out.push(0);
        }
    }
    let riff = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    Ok(out)
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
    avif_encoded(p, q).map(|e| e.avif_file)
}

fn avif_encoded(p: &Pixels, q: &Quality) -> Result<ravif::EncodedImage, ImageError> {
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
    out.map_err(|e| ImageError::Encode(format!("AVIF: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVIF written again with an Exif item holds the very AV1 payloads ravif made: it
    /// decodes to the same pixels (with and without alpha), and carries the copyright.
    #[test]
    fn an_avif_with_exif_is_ravifs_image_plus_the_item() {
        let q = crate::DEFAULT_QUALITY;
        for channels in [3u8, 4] {
            let data: Vec<u8> = (0..32 * 24 * u32::from(channels)).map(|i| (i * 7 % 251) as u8).collect();
            let p = Pixels { width: 32, height: 24, channels, data };
            let plain = encode(&p, OutputFormat::Avif, &q).unwrap();
            let kept = encode_keeping(&p, OutputFormat::Avif, &q, None, Some("(c) Matbakh")).unwrap();
            let limits = crate::ImageLimits::default();
            let (a, b) = (crate::load(&plain, &limits, 0).unwrap(), crate::load(&kept, &limits, 0).unwrap());
            assert_eq!(a.pixels, b.pixels, "{channels} channels");
            assert_eq!(crate::exif::read(&kept).copyright.as_deref(), Some("(c) Matbakh"));
            assert_eq!(crate::exif::read(&plain).copyright, None);
        }
    }
}
