//! Encoders for the variants: progressive JPEG (libjpeg-turbo), WebP (libwebp), AVIF (rav1e
//! through ravif). None of them is given any metadata, so variants carry no EXIF, GPS or
//! comments; colours are sRGB already.

use ravif::Img;
use rgb::FromSlice;

use matbakh_core::container::{self, Part};

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

/// [`encode`], keeping a colour profile and an EXIF block (a transform's copyright, see
/// [`crate::exif::copyright_block`]): JPEG (APP2 `ICC_PROFILE` segments, an APP1 EXIF block),
/// PNG (`iCCP`, `eXIf`), WebP (`ICCP`, `EXIF`) and AVIF (a `colr`/`prof` property, an `Exif`
/// item).
pub fn encode_keeping(
    p: &Pixels,
    format: OutputFormat,
    q: &Quality,
    icc: Option<&[u8]>,
    exif: Option<Vec<u8>>,
) -> Result<Vec<u8>, ImageError> {
    match format {
        OutputFormat::Jpeg if icc.is_some() || exif.is_some() => {
            let plain = jpeg(&p.flatten(), q.jpeg)?;
            Ok(jpeg_segments(&plain, icc, exif.as_deref()))
        }
        OutputFormat::Png if icc.is_some() || exif.is_some() => png_with(p, icc, exif),
        OutputFormat::WebP if icc.is_some() || exif.is_some() => {
            webp_chunks(&webp(p, q)?, (p.width, p.height), p.has_alpha(), icc, exif.as_deref())
        }
        OutputFormat::Avif if icc.is_some() || exif.is_some() => {
            let file = match exif {
                Some(exif) => avif_with_exif(p, q, exif)?,
                None => avif(p, q)?,
            };
            match icc {
                Some(icc) => avif_with_profile(&file, icc),
                None => Ok(file),
            }
        }
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

/// The boxes in `b[from..to]` if they fill it, each whole with a 32-bit size (`avif-serialize`
/// writes no other; the sizes are grown in place below).
fn iso_boxes(b: &[u8], from: usize, to: usize) -> Option<Vec<Part>> {
    container::all_whole(container::iso_boxes(b, from..to))
        .filter(|boxes| boxes.iter().all(|x| x.data.start == x.start + 8 && read_be(b, x.start, 4) != Some(0)))
}

fn child(boxes: &[Part], kind: &[u8; 4]) -> Option<Part> {
    boxes.iter().find(|b| &b.kind == kind).cloned()
}

/// The big-endian number of `width` bytes at `at`.
fn read_be(b: &[u8], at: usize, width: usize) -> Option<u64> {
    b.get(at..at + width).map(|f| f.iter().fold(0u64, |v, byte| (v << 8) | u64::from(*byte)))
}

fn add_be(b: &mut [u8], at: usize, width: usize, delta: u64) -> Option<()> {
    let v = read_be(b, at, width)?.checked_add(delta)?;
    let field = b.get_mut(at..at + width)?;
    for (i, byte) in field.iter_mut().rev().enumerate() {
        *byte = (v >> (8 * i)) as u8;
    }
    Some(())
}

/// An AVIF (as `avif-serialize` lays it out: `ftyp`, `meta`, `mdat`) with the ICC profile as a
/// `colr` property of type `prof` on the primary item: the box appended to `ipco`, its index to
/// the item's `ipma` entry, the enclosing sizes grown and `iloc`'s offsets into `mdat` moved by
/// the bytes inserted before it (ISO/IEC 23008-12).
fn avif_with_profile(file: &[u8], icc: &[u8]) -> Result<Vec<u8>, ImageError> {
    with_profile(file, icc).ok_or_else(|| ImageError::Encode("AVIF: the container is not the expected one".into()))
}

fn with_profile(file: &[u8], icc: &[u8]) -> Option<Vec<u8>> {
    let top = iso_boxes(file, 0, file.len())?;
    let meta = child(&top, b"meta")?;
    // meta is a full box: version and flags before its children.
    let in_meta = iso_boxes(file, meta.start + 12, meta.end)?;
    let pitm = child(&in_meta, b"pitm")?;
    let primary = read_be(file, pitm.start + 12, 2)?;
    let (iloc, iprp) = (child(&in_meta, b"iloc")?, child(&in_meta, b"iprp")?);
    let in_iprp = iso_boxes(file, iprp.start + 8, iprp.end)?;
    let (ipco, ipma) = (child(&in_iprp, b"ipco")?, child(&in_iprp, b"ipma")?);
    if ipma.start < ipco.end || iprp.end > top.iter().find(|b| &b.kind == b"mdat")?.start {
        return None;
    }
    let index = iso_boxes(file, ipco.start + 8, ipco.end)?.len() + 1;
    let mut colr = ((12 + icc.len()) as u32).to_be_bytes().to_vec();
    colr.extend_from_slice(b"colrprof");
    colr.extend_from_slice(icc);
    // ipma: version, flags (bit 0: 15-bit indices), entries of item id, count, associations.
    let (version, wide) = (file[ipma.start + 8], file[ipma.start + 11] & 1 == 1);
    let association: Vec<u8> =
        if wide { (index as u16).to_be_bytes().to_vec() } else { vec![u8::try_from(index).ok().filter(|i| *i < 128)?] };
    let id_len = if version < 1 { 2 } else { 4 };
    let entries = read_be(file, ipma.start + 12, 4)?;
    let (mut at, mut insert_at) = (ipma.start + 16, None);
    for _ in 0..entries {
        let id = read_be(file, at, id_len)?;
        let count = usize::from(*file.get(at + id_len)?);
        let end = at + id_len + 1 + count * if wide { 2 } else { 1 };
        if id == primary {
            insert_at = Some((at + id_len, end));
        }
        at = end;
    }
    let (count_at, association_at) = insert_at?;
    let grown = (colr.len() + association.len()) as u64;
    let mut out = file.to_vec();
    for (b, by) in [(&meta, grown), (&iprp, grown), (&ipco, colr.len() as u64), (&ipma, association.len() as u64)] {
        add_be(&mut out, b.start, 4, by)?;
    }
    out[count_at] = out[count_at].checked_add(1)?;
    move_iloc_offsets(&mut out, &iloc, grown)?;
    out.splice(association_at..association_at, association);
    out.splice(ipco.end..ipco.end, colr);
    Some(out)
}

/// Adds `delta` to every file offset `iloc` holds (construction method 0).
fn move_iloc_offsets(b: &mut [u8], iloc: &Part, delta: u64) -> Option<()> {
    let version = b[iloc.start + 8];
    let (offset_size, length_size) = (usize::from(b[iloc.start + 12] >> 4), usize::from(b[iloc.start + 12] & 15));
    let (base_size, index_size) = (usize::from(b[iloc.start + 13] >> 4), usize::from(b[iloc.start + 13] & 15));
    let mut at = iloc.start + 14;
    let (count, id_len) = if version < 2 { (read_be(b, at, 2)?, 2) } else { (read_be(b, at, 4)?, 4) };
    at += id_len;
    for _ in 0..count {
        at += id_len;
        let method = if version == 1 || version == 2 {
            at += 2;
            read_be(b, at - 2, 2)? & 15
        } else {
            0
        };
        at += 2; // data_reference_index
        let base_at = at;
        at += base_size;
        let extents = read_be(b, at, 2)?;
        at += 2;
        if method == 0 && base_size > 0 {
            add_be(b, base_at, base_size, delta)?;
        }
        for _ in 0..extents {
            if (version == 1 || version == 2) && index_size > 0 {
                at += index_size;
            }
            if method == 0 && base_size == 0 && offset_size > 0 {
                add_be(b, at, offset_size, delta)?;
            }
            at += offset_size + length_size;
        }
    }
    (at <= iloc.end).then_some(())
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
    for chunk in container::riff_chunks(webp, 12..webp.len()) {
        if !chunk.whole {
            return Err(bad());
        }
        if &chunk.kind != b"VP8X" {
            chunks.push((chunk.kind, &webp[chunk.data]));
        }
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
            let kept =
                encode_keeping(&p, OutputFormat::Avif, &q, None, crate::exif::copyright_block("(c) Matbakh")).unwrap();
            let limits = crate::ImageLimits::default();
            let (a, b) = (crate::load(&plain, &limits, 0).unwrap(), crate::load(&kept, &limits, 0).unwrap());
            assert_eq!(a.pixels, b.pixels, "{channels} channels");
            assert_eq!(crate::exif::read(&kept).copyright.as_deref(), Some("(c) Matbakh"));
            assert_eq!(crate::exif::read(&plain).copyright, None);
        }
    }

    /// `scp:0` in AVIF: the profile as a `colr`/`prof` property of the primary item, the
    /// container still whole (it decodes to the same pixels, with and without the Exif item).
    #[test]
    fn an_avif_carries_the_profile_on_its_primary_item() {
        let q = crate::DEFAULT_QUALITY;
        let icc = b"a stand-in ICC profile: the container does not read it".to_vec();
        let p =
            Pixels { width: 16, height: 16, channels: 4, data: (0..16 * 16 * 4).map(|i| (i % 253) as u8).collect() };
        let limits = crate::ImageLimits::default();
        let plain = crate::load(&encode(&p, OutputFormat::Avif, &q).unwrap(), &limits, 0).unwrap().pixels;
        for copyright in [None, Some("(c) Matbakh")] {
            let kept = encode_keeping(
                &p,
                OutputFormat::Avif,
                &q,
                Some(&icc),
                copyright.and_then(crate::exif::copyright_block),
            )
            .unwrap();
            assert_eq!(crate::load(&kept, &limits, 0).unwrap().pixels, plain, "decodes alike ({copyright:?})");
            let mut colr = b"colrprof".to_vec();
            colr.extend_from_slice(&icc);
            assert!(kept.windows(colr.len()).any(|w| w == colr.as_slice()), "the colr box");
            assert_eq!(crate::exif::read(&kept).copyright.as_deref(), copyright);
            // The primary item's ipma entry names the new property: one more association.
            let top = iso_boxes(&kept, 0, kept.len()).unwrap();
            let meta = child(&top, b"meta").unwrap();
            let in_meta = iso_boxes(&kept, meta.start + 12, meta.end).unwrap();
            let iprp = child(&in_meta, b"iprp").unwrap();
            let in_iprp = iso_boxes(&kept, iprp.start + 8, iprp.end).unwrap();
            let props =
                iso_boxes(&kept, child(&in_iprp, b"ipco").unwrap().start + 8, child(&in_iprp, b"ipco").unwrap().end)
                    .unwrap();
            assert_eq!(&props.last().unwrap().kind, b"colr");
            let ipma = child(&in_iprp, b"ipma").unwrap();
            let first_entry = &kept[ipma.start + 16..];
            let count = usize::from(first_entry[2]);
            assert_eq!(
                (first_entry[..2].to_vec(), first_entry[2 + count]),
                (vec![0, 1], props.len() as u8),
                "item 1's last association is the colr box"
            );
        }
    }
}
