//! Where a photo was taken, taken out of the copies anyone may fetch: the public copy of an
//! original keeps everything but its GPS position (variants carry no metadata at all).
//!
//! [`strip_gps`] rewrites the bytes in place and keeps their length: an EXIF block's GPS
//! directory has its entries and the values they point at zeroed and is left empty, so no
//! offset in the file moves and every other tag (orientation, camera, colour profile) stays as
//! it was. An XMP packet naming a GPS field is blanked (spaces: XMP's own padding) for the same
//! reason. Where each format keeps them:
//! - JPEG: APP1 segments, before the image data, so the head of a file tells
//!   ([`decided_by_head`]) when its segments reach the image data within it;
//! - PNG: the `eXIf` chunk, XMP in an `iTXt` chunk (a compressed one is blanked unread), and
//!   ImageMagick's hex "Raw profile type exif/app1/xmp" text chunks (blanked whole); each changed
//!   chunk gets its CRC again;
//! - WebP: the `EXIF` and `XMP ` chunks, after the image data;
//! - the HEIF family (HEIC, HEIF, AVIF): the `Exif` item and XMP's `mime` item, found through the
//!   `meta` box's item information and locations, anywhere in the file (or in `idat`).
//!
//! The chunks and boxes are walked by [`crate::container`]; a part that is not whole makes the
//! file unreadable here.

use crate::container::{self, Part, Segment, be_uint};

/// The largest original with a GPS position whose public copy is rewritten without it (in
/// memory: the files API has 256 MB); a larger one gets no public copy of its original.
pub const REWRITE_MAX_BYTES: u64 = 48 << 20;

/// Whether originals of `content_type` can carry a position in their metadata (GIF, PDF and
/// video cannot in any field this platform writes or reads).
pub fn may_carry_location(content_type: &str) -> bool {
    matches!(content_type, "image/jpeg" | "image/png" | "image/webp" | "image/avif" | "image/heic" | "image/heif")
}

/// Whether the head of a file of `content_type` tells whether it carries a position (a JPEG's
/// metadata comes before its image data); the others are read whole (WebP's EXIF follows the
/// image, a HEIF item may lie anywhere).
pub fn decided_by_head(content_type: &str) -> bool {
    content_type == "image/jpeg"
}

/// Whether publishing may leave out the public copy of an original of `content_type` and `size`
/// (one too large to rewrite without a position it may hold): its public URL is then handed
/// out only once the copy is seen.
pub fn public_copy_may_be_withheld(content_type: &str, size: u64) -> bool {
    may_carry_location(content_type) && size > REWRITE_MAX_BYTES
}

/// What [`strip_gps`] found in a whole file (or a JPEG's head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stripped {
    /// No position (nor metadata that might hold one): the bytes are unchanged.
    Nothing,
    /// A position (or metadata that might hold one) was removed.
    Removed,
    /// The file's structure could not be walked (malformed, or a HEIF item put together from
    /// other items; a JPEG head whose metadata goes on past it): whether it holds a position is
    /// not known, so it must not be published (a head: the whole file decides).
    Unreadable,
}

/// Removes the GPS position from the whole file `bytes` of `content_type` (see the module
/// comment); types that carry none are [`Stripped::Nothing`].
pub fn strip_gps(content_type: &str, bytes: &mut [u8]) -> Stripped {
    let changed = match content_type {
        "image/jpeg" => strip_jpeg_gps(bytes),
        "image/png" => strip_png_gps(bytes),
        "image/webp" => strip_webp_gps(bytes),
        "image/avif" | "image/heic" | "image/heif" => strip_heif_gps(bytes),
        _ => Some(false),
    };
    match changed {
        Some(true) => Stripped::Removed,
        Some(false) => Stripped::Nothing,
        None => Stripped::Unreadable,
    }
}

/// EXIF's tag for the GPS directory's offset, in the first directory (IFD0).
const GPS_INFO: u16 = 0x8825;

/// JPEG (see the module comment); `None` if its segments end, or stop making sense, before the
/// image data (given a file's head: the metadata goes on past it).
fn strip_jpeg_gps(bytes: &mut [u8]) -> Option<bool> {
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return None;
    }
    // The segments before the image data (a JPEG's metadata is all there), read first.
    let segments: Vec<Segment> = container::jpeg_segments(bytes).collect();
    let mut changed = false;
    for segment in &segments {
        if segment.marker == 0xE1 {
            let body = &mut bytes[segment.data.clone()];
            if let Some(tiff) = body.strip_prefix(b"Exif\0\0").map(|t| t.len()) {
                let start = body.len() - tiff;
                changed |= zero_gps_directory(&mut body[start..]);
            } else if body.starts_with(b"http://ns.adobe.com/xap/1.0/") {
                let header = b"http://ns.adobe.com/xap/1.0/\0".len().min(body.len());
                changed |= blank_xmp(&mut body[header..]);
            }
        }
    }
    segments
        .last()
        .filter(|s| s.whole && matches!(s.marker, container::JPEG_SOS | container::JPEG_EOI))
        .map(|_| changed)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Zeroes the GPS directory of the TIFF structure `tiff` (EXIF's body) and what its entries
/// point at, leaving it with no entries; `true` if it had any.
fn zero_gps_directory(tiff: &mut [u8]) -> bool {
    let big_endian = match tiff.get(..4) {
        Some([b'I', b'I', 42, 0]) => false,
        Some([b'M', b'M', 0, 42]) => true,
        _ => return false,
    };
    let u16_at = |t: &[u8], at: usize| {
        t.get(at..at + 2)
            .map(|b| if big_endian { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) })
    };
    let u32_at = |t: &[u8], at: usize| {
        t.get(at..at + 4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
        })
    };
    let Some(ifd0) = u32_at(tiff, 4).map(|o| o as usize) else { return false };
    let Some(entries) = u16_at(tiff, ifd0) else { return false };
    let gps = (0..usize::from(entries))
        .map(|i| ifd0 + 2 + 12 * i)
        .find(|&e| u16_at(tiff, e) == Some(GPS_INFO))
        .and_then(|e| u32_at(tiff, e + 8))
        .map(|o| o as usize);
    let Some(gps) = gps else { return false };
    let Some(count) = u16_at(tiff, gps).map(usize::from).filter(|&n| n > 0) else { return false };
    for i in 0..count {
        let e = gps + 2 + 12 * i;
        let (Some(kind), Some(n)) = (u16_at(tiff, e + 2), u32_at(tiff, e + 4)) else { break };
        let size = type_size(kind).saturating_mul(n as usize);
        if size > 4
            && let Some(offset) = u32_at(tiff, e + 8).map(|o| o as usize)
            && let Some(value) = tiff.get_mut(offset..offset.saturating_add(size))
        {
            value.fill(0);
        }
        if let Some(entry) = tiff.get_mut(e..e + 12) {
            entry.fill(0);
        }
    }
    // No entries (the next-directory offset after them reads 0: the zeroed first entry).
    if let Some(n) = tiff.get_mut(gps..gps + 2) {
        n.fill(0);
    }
    true
}

/// Bytes of one value of TIFF type `kind` (unknown types: none read).
fn type_size(kind: u16) -> usize {
    match kind {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 => 4,
        5 | 10 | 12 => 8,
        _ => 0,
    }
}

/// An EXIF block as PNG, WebP and HEIF store it: a TIFF structure, after "Exif\0\0" in files
/// that copy JPEG's form.
fn strip_exif_block(block: &mut [u8]) -> bool {
    let start = if block.starts_with(b"Exif\0\0") { 6 } else { 0 };
    zero_gps_directory(&mut block[start..])
}

/// Blanks an XMP packet that names a GPS field (`true` if it did).
fn blank_xmp(packet: &mut [u8]) -> bool {
    let naming = contains(packet, b"GPS");
    if naming {
        packet.fill(b' ');
    }
    naming
}

/// PNG (see the module comment); `None` if its chunks do not add up.
fn strip_png_gps(bytes: &mut [u8]) -> Option<bool> {
    if !bytes.starts_with(container::PNG_SIGNATURE) {
        return None;
    }
    let chunks = container::all_whole(container::png_chunks(bytes))?;
    if chunks.last().map(|c| &c.kind) != Some(b"IEND") {
        return None;
    }
    let mut changed = false;
    for chunk in chunks {
        // Its type and data: what the CRC covers.
        let typed = chunk.start + 4..chunk.data.end;
        let touched = match &chunk.kind {
            b"eXIf" => strip_exif_block(&mut bytes[chunk.data]),
            b"iTXt" => blank_png_xmp(&mut bytes[chunk.data]),
            b"tEXt" | b"zTXt" => blank_raw_profile(&mut bytes[typed.clone()]),
            _ => false,
        };
        if touched {
            let sum = crc32fast::hash(&bytes[typed.clone()]);
            bytes[typed.end..chunk.end].copy_from_slice(&sum.to_be_bytes());
            changed = true;
        }
    }
    Some(changed)
}

/// An `iTXt` chunk's data holding XMP (keyword "XML:com.adobe.xmp"): one naming a GPS field,
/// or a compressed one (unread), becomes an uncompressed chunk of spaces, the same length.
fn blank_png_xmp(data: &mut [u8]) -> bool {
    let Some(k) = data.iter().position(|&b| b == 0) else { return false };
    if &data[..k] != b"XML:com.adobe.xmp" {
        return false;
    }
    // Compression flag and method, language and translated keyword (both ended by a NUL), text.
    let rest = &mut data[k + 1..];
    if rest.len() < 4 || (rest[0] == 0 && !contains(rest, b"GPS")) {
        return false;
    }
    rest[..4].fill(0);
    rest[4..].fill(b' ');
    true
}

/// A `tEXt` or `zTXt` chunk (`chunk`: its type and data) holding ImageMagick's hex copy of an
/// EXIF block or an XMP packet ("Raw profile type exif", "app1", "xmp"): its text becomes
/// spaces, and a compressed one a `tEXt`, the same length.
fn blank_raw_profile(chunk: &mut [u8]) -> bool {
    let (kind, data) = chunk.split_at_mut(4);
    let Some(k) = data.iter().position(|&b| b == 0) else { return false };
    let keyword = data[..k].to_ascii_lowercase();
    let profile = keyword.strip_prefix(b"raw profile type ".as_slice());
    if !matches!(profile, Some(b"exif" | b"app1" | b"xmp"))
        || (kind[..] == b"tEXt"[..] && data[k + 1..].iter().all(|&b| b == b' '))
    {
        return false;
    }
    kind.copy_from_slice(b"tEXt");
    data[k + 1..].fill(b' ');
    true
}

/// WebP (a RIFF file of chunks, see the module comment); `None` if its chunks do not add up.
fn strip_webp_gps(bytes: &mut [u8]) -> Option<bool> {
    if bytes.get(..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WEBP") {
        return None;
    }
    let mut changed = false;
    for chunk in container::all_whole(container::riff_chunks(bytes, 12..bytes.len()))? {
        match &chunk.kind {
            b"EXIF" => changed |= strip_exif_block(&mut bytes[chunk.data]),
            b"XMP " => changed |= blank_xmp(&mut bytes[chunk.data]),
            _ => {}
        }
    }
    Some(changed)
}

/// The boxes of an ISOBMFF file (HEIF) in `bytes[range]`, if each is whole.
fn boxes(bytes: &[u8], range: std::ops::Range<usize>) -> Option<Vec<Part>> {
    container::all_whole(container::iso_boxes(bytes, range))
}

/// What an item of a HEIF file holds, as far as positions go.
#[derive(Clone, Copy, PartialEq)]
enum Item {
    Exif,
    /// An XMP packet, encoded (deflated) when `true`.
    Xmp(bool),
}

/// Where an item's bytes lie in a HEIF file: `(construction method, data reference, base
/// offset, extents (offset, length))`.
type Location = (u8, u64, u64, Vec<(u64, u64)>);

/// The HEIF family (see the module comment); `None` if its boxes or item tables do not add up.
fn strip_heif_gps(bytes: &mut [u8]) -> Option<bool> {
    let top = boxes(bytes, 0..bytes.len())?;
    let Some(meta) = top.into_iter().find(|b| &b.kind == b"meta").map(|b| b.data) else {
        // No item metadata (an image sequence): nowhere for an Exif item.
        return Some(false);
    };
    let children = boxes(bytes, meta.start.checked_add(4)?..meta.end)?;
    let child = |name: &[u8; 4]| children.iter().find(|b| &b.kind == name).map(|b| b.data.clone());
    let items = match child(b"iinf") {
        Some(iinf) => item_kinds(bytes, iinf)?,
        None => Vec::new(),
    };
    if items.is_empty() {
        return Some(false);
    }
    let locations = item_locations(bytes, child(b"iloc")?)?;
    let idat = child(b"idat");
    let mut changed = false;
    for (id, item) in items {
        let (method, reference, base, extents) = locations.iter().find(|(i, _)| *i == id).map(|(_, l)| l.clone())?;
        if reference != 0 {
            // In another file: not in these bytes.
            continue;
        }
        let source = match method {
            0 => 0..bytes.len(),
            1 => idat.clone()?,
            _ => return None,
        };
        let mut ranges = Vec::with_capacity(extents.len());
        for (offset, length) in extents {
            let start = source.start.checked_add(usize::try_from(base.checked_add(offset)?).ok()?)?;
            let end = match length {
                0 => source.end,
                n => start.checked_add(usize::try_from(n).ok()?)?,
            };
            if start > end || end > source.end {
                return None;
            }
            ranges.push(start..end);
        }
        let mut data: Vec<u8> = ranges.iter().flat_map(|r| bytes[r.clone()].iter().copied()).collect();
        let touched = match item {
            Item::Exif => {
                // A 4-byte offset from its end to the TIFF header.
                let skip = usize::try_from(be_uint(&data, 0, 4)?).ok()?.checked_add(4)?;
                strip_exif_block(data.get_mut(skip..)?)
            }
            Item::Xmp(false) => blank_xmp(&mut data),
            Item::Xmp(true) => {
                data.fill(0);
                true
            }
        };
        if touched {
            let mut from = 0;
            for r in ranges {
                let n = r.len();
                bytes[r].copy_from_slice(&data[from..from + n]);
                from += n;
            }
            changed = true;
        }
    }
    Some(changed)
}

/// The items of `iinf` that may hold a position, by item id.
fn item_kinds(bytes: &[u8], iinf: std::ops::Range<usize>) -> Option<Vec<(u32, Item)>> {
    let version = *bytes.get(iinf.start)?;
    let first = iinf.start + 4 + if version == 0 { 2 } else { 4 };
    let mut out = Vec::new();
    for Part { kind, data: infe, .. } in boxes(bytes, first.min(iinf.end)..iinf.end)? {
        let version = *bytes.get(infe.start)?;
        if &kind != b"infe" || version < 2 {
            continue;
        }
        let (id, at) = match version {
            2 => (be_uint(bytes, infe.start + 4, 2)?, infe.start + 6),
            _ => (be_uint(bytes, infe.start + 4, 4)?, infe.start + 8),
        };
        let id = u32::try_from(id).ok()?;
        let body = bytes.get(at + 2..infe.end)?;
        let (item_type, strings) = body.split_at_checked(4)?;
        let mut strings = strings.split(|&b| b == 0);
        let _name = strings.next();
        match item_type {
            b"Exif" => out.push((id, Item::Exif)),
            b"mime" if strings.next() == Some(b"application/rdf+xml".as_slice()) => {
                let encoded = strings.next().is_some_and(|e| !e.is_empty());
                out.push((id, Item::Xmp(encoded)));
            }
            _ => {}
        }
    }
    Some(out)
}

/// The item locations of `iloc`, by item id.
fn item_locations(bytes: &[u8], iloc: std::ops::Range<usize>) -> Option<Vec<(u32, Location)>> {
    let version = *bytes.get(iloc.start)?;
    let sizes = be_uint(bytes, iloc.start + 4, 2)?;
    let field = |shift: u32| usize::try_from((sizes >> shift) & 0xF).ok().filter(|s| matches!(s, 0 | 4 | 8));
    let (offset_size, length_size, base_size) = (field(12)?, field(8)?, field(4)?);
    let index_size = if matches!(version, 1 | 2) { field(0)? } else { 0 };
    let wide = usize::from(version >= 2) * 2 + 2;
    let mut at = iloc.start + 6;
    let count = be_uint(bytes, at, wide)?;
    at += wide;
    let mut out = Vec::new();
    let take = |at: &mut usize, size: usize| {
        let v = if size == 0 { Some(0) } else { be_uint(bytes, *at, size) };
        *at += size;
        v.filter(|_| *at <= iloc.end)
    };
    for _ in 0..count {
        let id = u32::try_from(take(&mut at, wide)?).ok()?;
        let method = if matches!(version, 1 | 2) { (take(&mut at, 2)? & 0xF) as u8 } else { 0 };
        let reference = take(&mut at, 2)?;
        let base = take(&mut at, base_size)?;
        let extents = take(&mut at, 2)?;
        let mut list = Vec::new();
        for _ in 0..extents {
            take(&mut at, index_size)?;
            let offset = take(&mut at, offset_size)?;
            list.push((offset, take(&mut at, length_size)?));
        }
        out.push((id, (method, reference, base, list)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG head: SOI, an APP1 EXIF segment with IFD0 (orientation 6 and the GPS pointer)
    /// and a GPS directory (latitude ref "N" inline, latitude as three rationals), then SOS.
    fn jpeg_with_gps(big_endian: bool) -> Vec<u8> {
        let tiff = tiff_with_gps(big_endian);
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        let len = (2 + 6 + tiff.len()) as u16;
        out.extend(len.to_be_bytes());
        out.extend(b"Exif\0\0");
        out.extend(tiff);
        out.extend([0xFF, 0xDA, 0, 2]);
        out
    }

    /// An EXIF block (TIFF): IFD0 with orientation 6 and the GPS pointer, and a GPS directory
    /// (latitude ref "N" inline, latitude as three rationals at 68).
    fn tiff_with_gps(big_endian: bool) -> Vec<u8> {
        let u16b = |v: u16| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let u32b = |v: u32| if big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut tiff = Vec::new();
        tiff.extend(if big_endian { *b"MM\0*" } else { *b"II*\0" });
        tiff.extend(u32b(8));
        // IFD0 at 8: two entries.
        tiff.extend(u16b(2));
        tiff.extend(u16b(0x0112));
        tiff.extend(u16b(3));
        tiff.extend(u32b(1));
        tiff.extend(u16b(6));
        tiff.extend([0, 0]);
        tiff.extend(u16b(GPS_INFO));
        tiff.extend(u16b(4));
        tiff.extend(u32b(1));
        tiff.extend(u32b(38)); // 8 + 2 + 24 + 4
        tiff.extend(u32b(0));
        // GPS IFD at 38: two entries, then the latitude's rationals at 68.
        tiff.extend(u16b(2));
        tiff.extend(u16b(1));
        tiff.extend(u16b(2));
        tiff.extend(u32b(2));
        tiff.extend(*b"N\0\0\0");
        tiff.extend(u16b(2));
        tiff.extend(u16b(5));
        tiff.extend(u32b(3));
        tiff.extend(u32b(68));
        tiff.extend(u32b(0));
        assert_eq!(tiff.len(), 68);
        for v in [52u32, 1, 31, 1, 12, 1] {
            tiff.extend(u32b(v));
        }
        tiff
    }

    /// Whether the EXIF block `tiff` (as [`tiff_with_gps`] made it) lost its position and
    /// kept the rest.
    fn position_gone(tiff: &[u8], original: &[u8]) -> bool {
        tiff[..38] == original[..38] && tiff[38..40] == [0, 0] && tiff[68..92].iter().all(|&b| b == 0)
    }

    const XMP_WITH_GPS: &[u8] = b"<x:xmpmeta><exif:GPSLatitude>52,31N</exif:GPSLatitude></x:xmpmeta>";

    fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(kind);
        out.extend(data);
        out.extend(crc32fast::hash(&[kind.as_slice(), data].concat()).to_be_bytes());
    }

    /// Every chunk's CRC matches its type and data.
    fn png_crcs_hold(png: &[u8]) -> bool {
        container::png_chunks(png).all(|c| {
            c.whole && be_uint(png, c.data.end, 4) == Some(u64::from(crc32fast::hash(&png[c.start + 4..c.data.end])))
        })
    }

    #[test]
    fn a_pngs_exif_xmp_and_raw_profiles_lose_the_position_and_keep_valid_chunks() {
        let tiff = tiff_with_gps(false);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png_chunk(&mut png, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
        png_chunk(&mut png, b"eXIf", &tiff);
        png_chunk(&mut png, b"iTXt", &[b"XML:com.adobe.xmp\0\0\0\0\0".as_slice(), XMP_WITH_GPS].concat());
        png_chunk(&mut png, b"iTXt", b"XML:com.adobe.xmp\0\x01\0en\0\0\x78\x9c compressed");
        png_chunk(&mut png, b"zTXt", b"Raw profile type exif\0\0\x78\x9c compressed hex");
        png_chunk(&mut png, b"tEXt", b"Comment\0GPS is not a position here");
        png_chunk(&mut png, b"IEND", &[]);
        let original = png.clone();
        assert_eq!(strip_gps("image/png", &mut png), Stripped::Removed);
        assert_eq!(png.len(), original.len());
        assert!(png_crcs_hold(&png));
        let exif = 8 + 25 + 8;
        assert!(position_gone(&png[exif..exif + tiff.len()], &tiff));
        assert!(!contains(&png, b"52,31N") && !contains(&png, b"compressed") && !contains(&png, b"zTXt"));
        assert!(contains(&png, b"GPS is not a position here"), "other text stays");
        assert_eq!(strip_gps("image/png", &mut png), Stripped::Nothing, "nothing left the second time");
        let mut bare = original[..33].to_vec();
        png_chunk(&mut bare, b"IEND", &[]);
        assert_eq!(strip_gps("image/png", &mut bare), Stripped::Nothing);
    }

    #[test]
    fn a_webps_exif_and_xmp_chunks_lose_the_position() {
        let tiff = tiff_with_gps(true);
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let mut c = kind.to_vec();
            c.extend((data.len() as u32).to_le_bytes());
            c.extend(data);
            if data.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        let body = [
            chunk(b"VP8X", &[0x0C, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            chunk(b"VP8 ", b"odd-length image data"),
            chunk(b"EXIF", &[b"Exif\0\0".as_slice(), &tiff].concat()),
            chunk(b"XMP ", XMP_WITH_GPS),
        ]
        .concat();
        let mut webp = b"RIFF".to_vec();
        webp.extend((body.len() as u32 + 4).to_le_bytes());
        webp.extend(b"WEBP");
        webp.extend(&body);
        let original = webp.clone();
        assert_eq!(strip_gps("image/webp", &mut webp), Stripped::Removed);
        assert_eq!(webp.len(), original.len());
        let exif = 12 + 18 + 30 + 8 + 6;
        assert!(position_gone(&webp[exif..exif + tiff.len()], &tiff));
        assert!(!contains(&webp, b"52,31N"));
        assert_eq!(strip_gps("image/webp", &mut webp), Stripped::Nothing);
    }

    fn iso_box(kind: &[u8; 4], content: &[u8]) -> Vec<u8> {
        [&(content.len() as u32 + 8).to_be_bytes(), kind.as_slice(), content].concat()
    }

    /// A HEIF file: an `Exif` item in two extents of `mdat` and an XMP item in `idat`, found
    /// through `iinf` and a version 1 `iloc`; also the offsets of the EXIF's two halves.
    fn heif_with_gps() -> (Vec<u8>, Vec<u8>, [usize; 2]) {
        let tiff = tiff_with_gps(false);
        let exif = [&[0u8, 0, 0, 6][..], b"Exif\0\0", &tiff].concat();
        let (first, second) = exif.split_at(40);
        let infe = |id: u8, kind: &[u8; 4], strings: &[u8]| {
            iso_box(b"infe", &[&[2, 0, 0, 0, 0, id, 0, 0][..], kind, strings].concat())
        };
        let iinf = iso_box(
            b"iinf",
            &[
                &[0u8, 0, 0, 0, 0, 3][..],
                &infe(1, b"av01", b"\0"),
                &infe(2, b"Exif", b"\0"),
                &infe(3, b"mime", b"\0application/rdf+xml\0"),
            ]
            .concat(),
        );
        let ftyp = iso_box(b"ftyp", b"heic\0\0\0\0mif1heic");
        let hdlr = iso_box(b"hdlr", &[[0u8; 8].as_slice(), b"pict", &[0; 13]].concat());
        let idat = iso_box(b"idat", XMP_WITH_GPS);
        // iloc v1: offset, length and base offset 4 bytes, no index; three items.
        let iloc_len = 8 + 4 + 2 + 2 + 3 * (2 + 2 + 2 + 4 + 2) + 2 * 8 + 8 + 8;
        let meta_len = 8 + 4 + hdlr.len() + iinf.len() + iloc_len + idat.len();
        let mdat_at = ftyp.len() + meta_len;
        let image = b"pixels of the photo";
        let (image_at, first_at) = (mdat_at + 8, mdat_at + 8 + image.len());
        let second_at = first_at + first.len() + 3;
        let u32b = |v: usize| (v as u32).to_be_bytes();
        let mut iloc = vec![1u8, 0, 0, 0, 0x44, 0x40, 0, 3];
        for (id, method, base, extents) in [
            (1u8, 0u8, image_at, vec![(0, image.len())]),
            (2, 0, first_at, vec![(0, first.len()), (second_at - first_at, second.len())]),
            (3, 1, 0, vec![(0, 0)]),
        ] {
            iloc.extend([0, id, 0, method, 0, 0]);
            iloc.extend(u32b(base));
            iloc.extend((extents.len() as u16).to_be_bytes());
            for (offset, length) in extents {
                iloc.extend(u32b(offset));
                iloc.extend(u32b(length));
            }
        }
        let iloc = iso_box(b"iloc", &iloc);
        assert_eq!(iloc.len(), iloc_len);
        let meta = iso_box(b"meta", &[&[0u8; 4][..], &hdlr, &iinf, &iloc, &idat].concat());
        let mdat = iso_box(b"mdat", &[image.as_slice(), first, b"gap", second].concat());
        let file = [ftyp, meta, mdat].concat();
        assert_eq!(&file[image_at..image_at + image.len()], image);
        (file, tiff, [first_at + 10, second_at])
    }

    #[test]
    fn a_heif_files_exif_item_in_two_extents_and_its_xmp_in_idat_lose_the_position() {
        let (mut heif, tiff, [tiff_at, second_at]) = heif_with_gps();
        let original = heif.clone();
        assert_eq!(strip_gps("image/heic", &mut heif), Stripped::Removed);
        assert_eq!(heif.len(), original.len());
        let joined = [&heif[tiff_at..second_at - 3], &heif[second_at..second_at + tiff.len() + 10 - 40]].concat();
        assert!(position_gone(&joined, &tiff));
        assert!(!contains(&heif, b"52,31N") && contains(&heif, b"pixels of the photo"));
        assert!(contains(&heif, b"gap"), "only the item's extents are touched");
        assert_eq!(strip_gps("image/avif", &mut heif), Stripped::Nothing);
    }

    #[test]
    fn malformed_containers_are_unreadable_and_cut_files_never_panic() {
        let (heif, ..) = heif_with_gps();
        let webp = {
            let mut w = b"RIFF\0\0\0\0WEBP".to_vec();
            w.extend(b"EXIF\x5c\0\0\0");
            w.extend(tiff_with_gps(false));
            w
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png_chunk(&mut png, b"eXIf", &tiff_with_gps(true));
        png_chunk(&mut png, b"IEND", &[]);
        for (kind, whole) in [("image/heic", heif), ("image/webp", webp), ("image/png", png)] {
            for cut in 0..whole.len() {
                let mut part = whole[..cut].to_vec();
                let _ = strip_gps(kind, &mut part);
            }
            let mut cut = whole[..whole.len() - 5].to_vec();
            assert_eq!(strip_gps(kind, &mut cut), Stripped::Unreadable, "{kind}");
        }
        let mut not_png = b"GIF89a".to_vec();
        assert_eq!(strip_gps("image/png", &mut not_png), Stripped::Unreadable);
        assert_eq!(strip_gps("image/gif", &mut not_png), Stripped::Nothing);
        let mut sequence = iso_box(b"ftyp", b"avis\0\0\0\0avis");
        assert_eq!(strip_gps("image/avif", &mut sequence), Stripped::Nothing, "no item metadata");
    }

    #[test]
    fn the_gps_directory_and_its_values_are_zeroed_in_place_and_the_rest_kept() {
        for big_endian in [false, true] {
            let original = jpeg_with_gps(big_endian);
            let mut bytes = original.clone();
            assert_eq!(strip_gps("image/jpeg", &mut bytes), Stripped::Removed);
            assert_eq!(bytes.len(), original.len());
            let tiff = 4 + 2 + 6;
            // The orientation entry is untouched; the GPS directory has no entries and no
            // latitude is left.
            assert_eq!(bytes[..tiff + 38], original[..tiff + 38], "big endian: {big_endian}");
            assert_eq!(&bytes[tiff + 38..tiff + 40], [0, 0]);
            assert!(bytes[tiff + 68..tiff + 92].iter().all(|&b| b == 0));
            assert!(!contains(&bytes, b"N\0\0\0"));
            assert_eq!(strip_gps("image/jpeg", &mut bytes), Stripped::Nothing, "nothing left the second time");
        }
    }

    #[test]
    fn files_without_gps_or_not_jpegs_are_left_alone() {
        let mut not_jpeg = b"\x89PNG\r\n\x1a\n".to_vec();
        assert_eq!(strip_gps("image/jpeg", &mut not_jpeg), Stripped::Unreadable);
        let mut bare = vec![0xFF, 0xD8, 0xFF, 0xDA, 0, 2];
        assert_eq!(strip_gps("image/jpeg", &mut bare), Stripped::Nothing);
        // Cut short anywhere before the image data: no panic, unreadable (the rest decides),
        // and a cut before the GPS directory changes nothing.
        let whole = jpeg_with_gps(false);
        for cut in 0..whole.len() - 2 {
            let mut head = whole[..cut].to_vec();
            assert_ne!(strip_gps("image/jpeg", &mut head), Stripped::Nothing, "cut at {cut}");
        }
        let mut head = whole[..30].to_vec();
        assert_eq!(strip_gps("image/jpeg", &mut head), Stripped::Unreadable);
        assert_eq!(head, whole[..30]);
    }

    #[test]
    fn an_xmp_packet_naming_a_position_is_blanked() {
        let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><exif:GPSLatitude>52,31N</exif:GPSLatitude></x:xmpmeta>";
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1];
        bytes.extend(((xmp.len() + 2) as u16).to_be_bytes());
        bytes.extend(xmp);
        bytes.extend([0xFF, 0xDA, 0, 2]);
        let len = bytes.len();
        assert_eq!(strip_gps("image/jpeg", &mut bytes), Stripped::Removed);
        assert_eq!(bytes.len(), len);
        assert!(!contains(&bytes, b"GPS") && !contains(&bytes, b"52,31N"));
    }
}
