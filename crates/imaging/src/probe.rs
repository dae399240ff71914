//! Image headers read without decoding: the format, the dimensions, the frame count, and the
//! pieces of metadata the pipeline needs (EXIF, ICC). Checked against the limits before any
//! decoder allocates a pixel (DECISIONS 10): a 1 KB file declaring 64250x64250 pixels stops here.

use crate::ImageError;

/// The image formats this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    Avif,
}

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub format: Format,
    /// As stored, before EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// 1 for a still image.
    pub frames: u32,
    /// The largest frame of an animation, in pixels (the canvas for a still image).
    pub largest_frame_pixels: u64,
    /// The ICC profile, if the file embeds one (JPEG APP2, reassembled from its chunks).
    pub icc: Option<Vec<u8>>,
}

impl Probe {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 2).map(|x| u32::from(u16::from_be_bytes([x[0], x[1]])))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 2).map(|x| u32::from(u16::from_le_bytes([x[0], x[1]])))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 3).map(|x| u32::from(x[0]) | u32::from(x[1]) << 8 | u32::from(x[2]) << 16)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

fn malformed(what: &str) -> ImageError {
    ImageError::Malformed(what.to_owned())
}

/// Reads the header of `bytes` as `format`.
pub fn probe(format: Format, bytes: &[u8]) -> Result<Probe, ImageError> {
    let probe = match format {
        Format::Jpeg => jpeg(bytes)?,
        Format::Png => png(bytes)?,
        Format::Gif => gif(bytes)?,
        Format::WebP => webp(bytes)?,
        Format::Avif => {
            let (width, height, _) = crate::avif::probe(bytes)?;
            Probe { format, width, height, frames: 1, largest_frame_pixels: pixels(width, height), icc: None }
        }
    };
    if probe.width == 0 || probe.height == 0 {
        return Err(malformed("the header declares an empty image"));
    }
    Ok(probe)
}

fn jpeg(b: &[u8]) -> Result<Probe, ImageError> {
    use matbakh_core::container::{JPEG_EOI, JPEG_SOS, jpeg_segments};
    let mut size = None;
    let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut scan = None;
    for segment in jpeg_segments(b) {
        if !segment.whole {
            return Err(malformed("JPEG segment cut short"));
        }
        let body = &b[segment.data.clone()];
        match segment.marker {
            JPEG_EOI => return Err(malformed("JPEG ends before its image data")),
            0xC0..=0xCF if !matches!(segment.marker, 0xC4 | 0xC8 | 0xCC) => {
                let height = be16(body, 1).ok_or_else(|| malformed("JPEG frame header cut short"))?;
                let width = be16(body, 3).ok_or_else(|| malformed("JPEG frame header cut short"))?;
                size = Some((width, height));
            }
            0xE2 if body.starts_with(b"ICC_PROFILE\0") && body.len() > 14 => icc_chunks.push((body[12], &body[14..])),
            JPEG_SOS => scan = Some(segment.end),
            _ => {}
        }
    }
    let at = scan.ok_or_else(|| malformed("JPEG marker expected"))?;
    let (width, height) = size.ok_or_else(|| malformed("JPEG without a frame header"))?;
    // The entropy-coded data must end in an end-of-image marker: a cut-off file does not, and
    // libjpeg would "decode" it with a grey lower part.
    if !b[at..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(ImageError::Truncated);
    }
    icc_chunks.sort_by_key(|(seq, _)| *seq);
    let icc = (!icc_chunks.is_empty()).then(|| icc_chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect());
    Ok(Probe { format: Format::Jpeg, width, height, frames: 1, largest_frame_pixels: pixels(width, height), icc })
}

fn pixels(w: u32, h: u32) -> u64 {
    u64::from(w) * u64::from(h)
}

fn png(b: &[u8]) -> Result<Probe, ImageError> {
    if b.get(12..16) != Some(b"IHDR") {
        return Err(malformed("PNG without IHDR"));
    }
    let dim = |at| b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]));
    let (width, height) = (dim(16).ok_or_else(|| malformed("PNG header cut short"))?, dim(20).unwrap_or(0));
    // An animated PNG says how many frames it has in acTL, before the first image data. Every
    // colour profile (iCCP) is inflated with a bound: the decoder would inflate it with none.
    // A chunk cut short is read as far as it goes, and is the last.
    let (mut frames, mut data_seen) = (1, false);
    for chunk in matbakh_core::container::png_chunks(b) {
        match &chunk.kind {
            b"acTL" if !data_seen => frames = dim(chunk.data.start).unwrap_or(1).max(1),
            b"iCCP" => png_profile_fits(&b[chunk.data])?,
            b"IDAT" => data_seen = true,
            _ => {}
        }
    }
    Ok(Probe { format: Format::Png, width, height, frames, largest_frame_pixels: pixels(width, height), icc: None })
}

/// Refuses an iCCP chunk (`name\0`, method, zlib data) whose profile inflates past
/// [`crate::MAX_ICC_BYTES`]. A profile that does not inflate at all is left to the decoder,
/// which ignores it.
fn png_profile_fits(body: &[u8]) -> Result<(), ImageError> {
    let Some(name_end) = body.iter().position(|&c| c == 0) else { return Ok(()) };
    let compressed = body.get(name_end + 2..).unwrap_or_default();
    match fdeflate::decompress_to_vec_bounded(compressed, crate::MAX_ICC_BYTES) {
        Err(fdeflate::BoundedDecompressionError::OutputTooLarge { .. }) => {
            Err(malformed(&format!("PNG colour profile inflates past {} MiB", crate::MAX_ICC_BYTES >> 20)))
        }
        _ => Ok(()),
    }
}

fn gif(b: &[u8]) -> Result<Probe, ImageError> {
    let width = le16(b, 6).ok_or_else(|| malformed("GIF header cut short"))?;
    let height = le16(b, 8).ok_or_else(|| malformed("GIF header cut short"))?;
    let flags = *b.get(10).ok_or_else(|| malformed("GIF header cut short"))?;
    let mut at = 13;
    if flags & 0x80 != 0 {
        at += 3 << ((flags & 0x07) + 1);
    }
    let mut frames = 0u32;
    let mut largest = 0;
    // Walk the blocks (no decoding): count image descriptors, note the largest frame.
    let skip_sub_blocks = |mut at: usize| -> usize {
        while let Some(&n) = b.get(at) {
            at += 1;
            if n == 0 {
                break;
            }
            at += n as usize;
        }
        at
    };
    while let Some(&block) = b.get(at) {
        match block {
            0x21 => at = skip_sub_blocks(at + 2),
            0x2C => {
                let (w, h) = (le16(b, at + 5).unwrap_or(0), le16(b, at + 7).unwrap_or(0));
                largest = largest.max(pixels(w, h));
                frames = frames.saturating_add(1);
                let local = *b.get(at + 9).unwrap_or(&0);
                at += 10;
                if local & 0x80 != 0 {
                    at += 3 << ((local & 0x07) + 1);
                }
                at = skip_sub_blocks(at + 1); // after the LZW minimum code size
            }
            _ => break, // 0x3B trailer, or garbage: stop counting
        }
    }
    if frames == 0 {
        return Err(malformed("GIF without an image"));
    }
    Ok(Probe {
        format: Format::Gif,
        width,
        height,
        frames,
        largest_frame_pixels: largest.max(pixels(width, height)),
        icc: None,
    })
}

fn webp(b: &[u8]) -> Result<Probe, ImageError> {
    let chunk = b.get(12..16).ok_or_else(|| malformed("WebP header cut short"))?;
    let cut = || malformed("WebP header cut short");
    let (width, height, frames) = match chunk {
        b"VP8 " | b"VP8L" => {
            let (w, h) = bitstream_size(chunk, b.get(20..).unwrap_or_default())?.ok_or_else(cut)?;
            (w, h, 1)
        }
        b"VP8X" => {
            let (width, height) = (le24(b, 24).ok_or_else(cut)? + 1, le24(b, 27).ok_or_else(cut)? + 1);
            (width, height, extended_frames(b.get(12..).unwrap_or_default(), (width, height))?)
        }
        _ => return Err(malformed("WebP of an unknown kind")),
    };
    Ok(Probe { format: Format::WebP, width, height, frames, largest_frame_pixels: pixels(width, height), icc: None })
}

/// The chunks of `b` (kind, data), as far as they are whole.
fn riff_chunks(b: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    matbakh_core::container::riff_chunks(b, 0..b.len())
        .take_while(|chunk| chunk.whole)
        .map(move |chunk| (&b[chunk.start..chunk.start + 4], &b[chunk.data]))
}

/// The size a VP8 or VP8L bitstream (a chunk's data) says it decodes to; `None` for another
/// chunk, or one cut short.
fn bitstream_size(kind: &[u8], data: &[u8]) -> Result<Option<(u32, u32)>, ImageError> {
    match kind {
        b"VP8 " => {
            if data.get(3..6).is_some_and(|code| code != [0x9D, 0x01, 0x2A]) {
                return Err(malformed("VP8 frame without its start code"));
            }
            Ok(le16(data, 6).zip(le16(data, 8)).map(|(w, h)| (w & 0x3FFF, h & 0x3FFF)))
        }
        b"VP8L" => {
            if data.first().is_some_and(|&s| s != 0x2F) {
                return Err(malformed("VP8L without its signature"));
            }
            Ok(le32(data, 1).map(|bits| ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)))
        }
        _ => Ok(None),
    }
}

/// An extended WebP's frames (`chunks` from its VP8X chunk on), checking what the decoder will
/// allocate: the still image's bitstream must be its canvas's size, each animation frame must
/// lie on the canvas and its bitstream be the frame's size (the decoder allocates what the
/// bitstream says before it compares).
fn extended_frames(chunks: &[u8], canvas: (u32, u32)) -> Result<u32, ImageError> {
    let disagrees = || malformed("WebP bitstream size disagrees with its canvas");
    let mut frames = 0;
    for (kind, data) in riff_chunks(chunks) {
        if kind == b"ANMF" {
            frames += 1;
            let at = |i| le24(data, i).ok_or_else(|| malformed("WebP frame header cut short"));
            let (x, y, w, h) = (at(0)? * 2, at(3)? * 2, at(6)? + 1, at(9)? + 1);
            if x + w > canvas.0 || y + h > canvas.1 {
                return Err(disagrees());
            }
            for (kind, data) in riff_chunks(data.get(16..).unwrap_or_default()) {
                if bitstream_size(kind, data)?.is_some_and(|size| size != (w, h)) {
                    return Err(disagrees());
                }
            }
        } else if bitstream_size(kind, data)?.is_some_and(|size| size != canvas) {
            return Err(disagrees());
        }
    }
    Ok(frames.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_frame_header_gives_the_size_without_decoding() {
        // SOI, SOF0 (8 bit, 3000x4000, 3 components), SOS, data, EOI
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8, 0x0F, 0xA0, 0x0B, 0xB8, 3];
        b.extend([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        b.extend([0xFF, 0xDA, 0, 2, 0x12, 0x34, 0xFF, 0xD9]);
        let p = probe(Format::Jpeg, &b).unwrap();
        assert_eq!((p.width, p.height, p.frames), (3000, 4000, 1));
        // Without its end marker it is truncated.
        assert!(matches!(probe(Format::Jpeg, &b[..b.len() - 2]), Err(ImageError::Truncated)));
        // Cut inside the frame header: malformed, no panic.
        for n in 0..b.len() - 2 {
            assert!(probe(Format::Jpeg, &b[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn webp_and_gif_headers_are_read_to_the_bit() {
        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        vp8l.extend(((639u32) | (427u32 << 14)).to_le_bytes());
        let p = probe(Format::WebP, &vp8l).unwrap();
        assert_eq!((p.width, p.height), (640, 428));
        let gif = b"GIF89a\x10\x00\x08\x00\x00\x00\x00\x2c\0\0\0\0\x10\0\x08\0\0\x02\x02\x44\x01\0\x3b";
        let p = probe(Format::Gif, gif).unwrap();
        assert_eq!((p.width, p.height, p.frames), (16, 8, 1));
    }
}
