//! The parts of the image containers, walked once here for every reader: JPEG marker
//! segments, RIFF chunks (WebP), PNG chunks and ISO BMFF boxes (HEIF, AVIF). Pure and bounds-checked: each walker yields the
//! parts of a byte range in order, reading only their headers, and never panics.
//!
//! A part whose declared size does not fit in what is there comes with `whole: false` and is
//! the last one: how to take that is the caller's. The image probe reads hostile uploads
//! leniently and stops there (the decoder refuses the file later); the position stripper
//! (`location`) and the encoder must know every part, and give up on the file.
//!
//! Where the formats differ at the end of a range: RIFF ignores fewer bytes than a chunk header
//! (every reader did); PNG's walk ends with its `IEND` chunk (what follows is ignored; a file
//! that ends before one gives no `IEND`, which the strict readers check); ISO BMFF counts any
//! bytes left over as a part that is not whole (a box must fill its parent).

use std::ops::Range;

/// One chunk or box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its four-character type.
    pub kind: [u8; 4],
    /// Where its header starts.
    pub start: usize,
    /// Its content (after the header), clamped to the walked range when it is not whole.
    pub data: Range<usize>,
    /// Where the next part starts (after a RIFF chunk's pad byte, a PNG chunk's CRC).
    pub end: usize,
    /// Whether its declared size fits in the walked range.
    pub whole: bool,
}

impl Part {
    fn cut(kind: [u8; 4], start: usize, data_start: usize, end: usize) -> Part {
        let data_start = data_start.min(end);
        Part { kind, start, data: data_start..end, end, whole: false }
    }
}

fn kind_at(bytes: &[u8], at: usize) -> [u8; 4] {
    let mut kind = [0; 4];
    if let Some(k) = bytes.get(at..at.saturating_add(4)) {
        kind.copy_from_slice(k);
    }
    kind
}

/// The big-endian number of `width` bytes at `at`, if they are there.
pub(crate) fn be_uint(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(width)?)?;
    Some(b.iter().fold(0, |n, &x| n << 8 | u64::from(x)))
}

/// Walks parts from `start` to `end` with `next`, which reads the part at an offset, stopping
/// after one that is not whole or that `last` names.
fn walk<'a>(
    mut at: usize,
    end: usize,
    next: impl Fn(usize) -> Option<Part> + 'a,
    last: impl Fn(&Part) -> bool + 'a,
) -> impl Iterator<Item = Part> + 'a {
    let mut done = false;
    std::iter::from_fn(move || {
        if done || at >= end {
            return None;
        }
        let part = next(at)?;
        done = !part.whole || last(&part);
        at = part.end;
        Some(part)
    })
}

/// The chunks of a RIFF body in `bytes[range]` (a WebP's from offset 12, after `RIFF`, its
/// size and `WEBP`; an animation frame's after its header): four-character type, 32-bit
/// little-endian size, data, a pad byte after odd sizes.
pub fn riff_chunks(bytes: &[u8], range: Range<usize>) -> impl Iterator<Item = Part> + '_ {
    let end = range.end.min(bytes.len());
    walk(
        range.start,
        end,
        move |at| {
            // Fewer bytes than a header: the end of the body.
            let header = bytes.get(at..at.checked_add(8).filter(|&h| h <= end)?)?;
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let kind = kind_at(bytes, at);
            let data = at + 8;
            match data.checked_add(len).filter(|&e| e <= end) {
                Some(data_end) => {
                    let next = (data_end + (len & 1)).min(end);
                    Some(Part { kind, start: at, data: data..data_end, end: next, whole: true })
                }
                None => Some(Part::cut(kind, at, data, end)),
            }
        },
        |_| false,
    )
}

/// PNG's signature, before its first chunk.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The chunks of a PNG file, from after its signature through `IEND`: 32-bit big-endian
/// length, type, data, CRC (not checked here).
pub fn png_chunks(bytes: &[u8]) -> impl Iterator<Item = Part> + '_ {
    let end = bytes.len();
    walk(
        PNG_SIGNATURE.len(),
        end,
        move |at| {
            let kind = kind_at(bytes, at + 4);
            let Some(len) = be_uint(bytes, at, 4).and_then(|l| usize::try_from(l).ok()).filter(|_| at + 8 <= end)
            else {
                return Some(Part::cut(kind, at, at + 8, end));
            };
            let data = at + 8;
            match data.checked_add(len).filter(|&d| d.checked_add(4).is_some_and(|c| c <= end)) {
                Some(data_end) => Some(Part { kind, start: at, data: data..data_end, end: data_end + 4, whole: true }),
                // Its data as far as it goes, never its cut CRC.
                None => Some(Part::cut(kind, at, data, data.saturating_add(len).min(end))),
            }
        },
        |part| &part.kind == b"IEND",
    )
}

/// The boxes of an ISO BMFF file in `bytes[range]`: 32-bit big-endian size (0: to the end of
/// the range; 1: a 64-bit size follows the type), type, content. Any bytes after the last
/// whole box are a part that is not whole.
pub fn iso_boxes(bytes: &[u8], range: Range<usize>) -> impl Iterator<Item = Part> + '_ {
    let end = range.end.min(bytes.len());
    walk(
        range.start,
        end,
        move |at| {
            let kind = kind_at(bytes, at + 4);
            let size = if at + 8 <= end { be_uint(bytes, at, 4) } else { None };
            let (size, header) = match size {
                None => return Some(Part::cut(kind, at, at + 8, end)),
                Some(0) => (end - at, 8),
                Some(1) => match be_uint(bytes, at + 8, 8).filter(|_| at + 16 <= end) {
                    Some(large) => (usize::try_from(large).unwrap_or(usize::MAX), 16),
                    None => return Some(Part::cut(kind, at, at + 16, end)),
                },
                Some(n) => (usize::try_from(n).unwrap_or(usize::MAX), 8),
            };
            match at.checked_add(size).filter(|&e| size >= header && e <= end) {
                Some(box_end) => Some(Part { kind, start: at, data: at + header..box_end, end: box_end, whole: true }),
                None => Some(Part::cut(kind, at, at + header, end)),
            }
        },
        |_| false,
    )
}

/// One JPEG marker segment (before the image data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The marker's second byte (`0xE1`: APP1, `0xDA`: start of scan).
    pub marker: u8,
    /// Where its marker starts (after any fill bytes).
    pub start: usize,
    /// Its content after the length, clamped to what is there when it is not whole; empty for a
    /// marker without a length.
    pub data: Range<usize>,
    /// Where the next marker is expected (a start of scan's: where its entropy-coded data
    /// starts).
    pub end: usize,
    /// Whether its declared length (at least 2) fits in `bytes`.
    pub whole: bool,
}

/// Start of scan: the image data follows its header.
pub const JPEG_SOS: u8 = 0xDA;
/// End of image.
pub const JPEG_EOI: u8 = 0xD9;

/// The marker segments of a JPEG from offset 0 up to its first start of scan ([`JPEG_SOS`],
/// the last part, whose `end` is where the image data starts) or an end of image: a JPEG's
/// metadata and frame header are all there. `0xFF` fill bytes before a marker are skipped;
/// markers without a length (SOI, TEM, RST0-7, EOI) come with empty data. The walk ends early
/// after a segment that is not whole, or where a marker is expected and something else is
/// there: then no start of scan comes, which is how a caller tells a JPEG whose head it could
/// not read.
pub fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = Segment> + '_ {
    let (mut at, mut done) = (0usize, false);
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            done = true;
            return None;
        };
        let start = at;
        let segment = if marker == 0xD8 || marker == 0x01 || (0xD0..=JPEG_EOI).contains(&marker) {
            Segment { marker, start, data: start + 2..start + 2, end: start + 2, whole: true }
        } else {
            let data = start + 4;
            match be_uint(bytes, start + 2, 2).map(|l| l as usize) {
                Some(len) if len >= 2 && start + 2 + len <= bytes.len() => {
                    Segment { marker, start, data: data..start + 2 + len, end: start + 2 + len, whole: true }
                }
                len => {
                    let end = len.map_or(bytes.len(), |l| (start + 2 + l).min(bytes.len()));
                    Segment { marker, start, data: data.min(end)..end.max(data.min(end)), end, whole: false }
                }
            }
        };
        done = !segment.whole || marker == JPEG_SOS || marker == JPEG_EOI;
        at = segment.end;
        Some(segment)
    })
}

/// Every part of a walk if each is whole (the strict readers' view); `None` otherwise.
pub fn all_whole(parts: impl Iterator<Item = Part>) -> Option<Vec<Part>> {
    parts.map(|p| p.whole.then_some(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(parts: &[Part]) -> Vec<(&[u8], bool)> {
        parts.iter().map(|p| (&p.kind[..], p.whole)).collect()
    }

    fn riff(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, data) in chunks {
            out.extend(*kind);
            out.extend((data.len() as u32).to_le_bytes());
            out.extend(*data);
            if data.len() % 2 == 1 {
                out.push(0);
            }
        }
        out
    }

    /// SOI, APP1 (`Exif`), fill bytes, RST0 (no length), SOF0, SOS, two bytes of scan, EOI.
    fn jpeg() -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE1, 0, 6, b'E', b'x', b'i', b'f'];
        b.extend([0xFF, 0xFF, 0xFF, 0xD0]);
        b.extend([0xFF, 0xC0, 0, 7, 8, 0, 2, 0, 3]);
        b.extend([0xFF, 0xDA, 0, 3, 1, 0xAB, 0xCD, 0xFF, 0xD9]);
        b
    }

    #[test]
    fn jpeg_segments_end_at_the_scan_and_skip_fill_bytes() {
        let b = jpeg();
        let parts: Vec<Segment> = jpeg_segments(&b).collect();
        let markers: Vec<(u8, bool)> = parts.iter().map(|p| (p.marker, p.whole)).collect();
        assert_eq!(markers, [(0xD8, true), (0xE1, true), (0xD0, true), (0xC0, true), (JPEG_SOS, true)]);
        assert_eq!(&b[parts[1].data.clone()], b"Exif");
        assert_eq!((parts[2].start, parts[2].data.is_empty()), (12, true), "after two fill bytes");
        assert_eq!(&b[parts[4].end..], [0xAB, 0xCD, 0xFF, 0xD9], "the image data follows the scan's header");
        // An end of image before any scan is the last part.
        let short = [0xFF, 0xD8, 0xFF, 0xD9, 0xFF, 0xE1, 0, 2];
        assert_eq!(jpeg_segments(&short).map(|p| p.marker).collect::<Vec<_>>(), [0xD8, JPEG_EOI]);
    }

    #[test]
    fn a_jpeg_cut_or_garbled_before_its_scan_ends_the_walk_without_one() {
        let b = jpeg();
        // Cut inside the frame header: the last part is not whole, its data what is there.
        let cut = &b[..19];
        let parts: Vec<Segment> = jpeg_segments(cut).collect();
        let last = parts.last().unwrap();
        assert_eq!((last.marker, last.whole, &cut[last.data.clone()]), (0xC0, false, &[8][..]));
        // Cut inside a length, or a length under 2: not whole, and the end.
        assert!(!jpeg_segments(&b[..5]).last().unwrap().whole);
        let zero = [0xFF, 0xD8, 0xFF, 0xE1, 0, 1, 0xFF, 0xDA, 0, 2];
        assert_eq!(
            jpeg_segments(&zero).map(|p| (p.marker, p.whole)).collect::<Vec<_>>(),
            [(0xD8, true), (0xE1, false)]
        );
        // Something else where a marker belongs: the walk ends, no scan.
        let mut garbled = b.clone();
        garbled[10] = 0x00;
        assert!(jpeg_segments(&garbled).all(|p| p.marker != JPEG_SOS));
        assert_eq!(jpeg_segments(b"").count(), 0);
    }

    #[test]
    fn riff_chunks_skip_their_pad_byte_and_end_where_a_header_would_not_fit() {
        let mut b = riff(&[(b"VP8L", b"abc"), (b"EXIF", b"1234")]);
        let parts: Vec<Part> = riff_chunks(&b, 0..b.len()).collect();
        assert_eq!(kinds(&parts), [(&b"VP8L"[..], true), (&b"EXIF"[..], true)]);
        assert_eq!((parts[0].data.clone(), parts[0].end, parts[1].data.clone()), (8..11, 12, 20..24));
        // Seven stray bytes: not a chunk, the end (as every reader took it).
        b.extend([1; 7]);
        assert_eq!(riff_chunks(&b, 0..b.len()).count(), 2);
        // A chunk running past the end: the last part, not whole, its data what is there.
        let mut cut = riff(&[(b"VP8L", b"abc")]);
        cut.extend(b"XMP \xff\0\0\0<x");
        let parts: Vec<Part> = riff_chunks(&cut, 0..cut.len()).collect();
        assert_eq!(kinds(&parts), [(&b"VP8L"[..], true), (&b"XMP "[..], false)]);
        assert_eq!(&cut[parts[1].data.clone()], b"<x");
        assert!(all_whole(riff_chunks(&cut, 0..cut.len())).is_none());
        // An odd chunk whose pad byte is missing at the very end is whole.
        let b = riff(&[(b"EXIF", b"abc")]);
        assert!(all_whole(riff_chunks(&b[..b.len() - 1], 0..b.len() - 1)).is_some());
    }

    fn png(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut out = PNG_SIGNATURE.to_vec();
        for (kind, data) in chunks {
            out.extend((data.len() as u32).to_be_bytes());
            out.extend(*kind);
            out.extend(*data);
            out.extend([0; 4]);
        }
        out
    }

    #[test]
    fn png_chunks_end_with_iend_and_a_cut_chunk_is_the_last() {
        let mut b = png(&[(b"IHDR", &[0; 13]), (b"IDAT", b"xy"), (b"IEND", b"")]);
        b.extend(b"trailing bytes after IEND");
        let parts: Vec<Part> = png_chunks(&b).collect();
        assert_eq!(kinds(&parts), [(&b"IHDR"[..], true), (&b"IDAT"[..], true), (&b"IEND"[..], true)]);
        assert_eq!((parts[1].data.clone(), parts[1].end), (41..43, 47));
        // Without IEND: the walk ends with the last whole chunk (the strict readers check for
        // IEND); cut inside a chunk: that chunk, not whole.
        let whole = png(&[(b"IHDR", &[0; 13]), (b"IDAT", b"xy")]);
        assert_eq!(kinds(&png_chunks(&whole).collect::<Vec<_>>()).last(), Some(&(&b"IDAT"[..], true)));
        let boundaries: Vec<usize> = png_chunks(&whole).map(|p| p.end).collect();
        for n in (9..whole.len()).filter(|n| !boundaries.contains(n)) {
            let parts: Vec<Part> = png_chunks(&whole[..n]).collect();
            assert!(!parts.last().unwrap().whole, "cut at {n}: {parts:?}");
        }
    }

    fn boxed(kind: &[u8; 4], content: &[u8]) -> Vec<u8> {
        let mut out = ((content.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend(kind);
        out.extend(content);
        out
    }

    #[test]
    fn iso_boxes_read_every_size_form_and_leftovers_are_not_whole() {
        let mut b = boxed(b"ftyp", b"avif");
        // A 64-bit size.
        b.extend(1u32.to_be_bytes());
        b.extend(b"meta");
        b.extend(20u64.to_be_bytes());
        b.extend(b"abcd");
        // Size 0: to the end.
        b.extend(0u32.to_be_bytes());
        b.extend(b"mdat");
        b.extend(b"pixels");
        let parts = all_whole(iso_boxes(&b, 0..b.len())).unwrap();
        assert_eq!(kinds(&parts), [(&b"ftyp"[..], true), (&b"meta"[..], true), (&b"mdat"[..], true)]);
        assert_eq!(&b[parts[1].data.clone()], b"abcd");
        assert_eq!(&b[parts[2].data.clone()], b"pixels");
        // A box within a range: its size counts against the range, not the file.
        let inner = boxed(b"iloc", b"12");
        let outer = boxed(b"meta", &inner);
        assert_eq!(kinds(&iso_boxes(&outer, 8..outer.len()).collect::<Vec<_>>()), [(&b"iloc"[..], true)]);
        assert!(!iso_boxes(&outer, 8..outer.len() - 1).last().unwrap().whole);
        // Leftovers, a size smaller than its header, one past the end, a 64-bit size cut.
        for bad in [
            [boxed(b"ftyp", b""), vec![0, 0, 0]].concat(),
            [4u32.to_be_bytes().to_vec(), b"free".to_vec()].concat(),
            [99u32.to_be_bytes().to_vec(), b"free".to_vec()].concat(),
            [1u32.to_be_bytes().to_vec(), b"free\0\0".to_vec()].concat(),
            [1u32.to_be_bytes().to_vec(), b"free".to_vec(), u64::MAX.to_be_bytes().to_vec()].concat(),
        ] {
            assert!(all_whole(iso_boxes(&bad, 0..bad.len())).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn no_walk_panics_on_any_cut_of_a_file() {
        let riffs = riff(&[(b"VP8X", &[0; 10]), (b"ANMF", &[7; 33])]);
        let pngs = png(&[(b"IHDR", &[0; 13]), (b"IEND", b"")]);
        let mut isos = boxed(b"ftyp", b"heic");
        isos.extend(boxed(b"meta", &boxed(b"iinf", &[0; 6])));
        for n in 0..isos.len() {
            for from in 0..n.min(12) {
                let _ = riff_chunks(&riffs[..n.min(riffs.len())], from..n).count();
                let _ = png_chunks(&pngs[..n.min(pngs.len())]).count();
                let _ = iso_boxes(&isos[..n], from..n).count();
                let _ = iso_boxes(&isos, from..n + 100).count();
            }
        }
    }
}
