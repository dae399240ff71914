//! Where a photo was taken, taken out of the copies anyone may fetch: the public copy of a JPEG
//! original keeps everything but its EXIF GPS position (variants carry no metadata at all).
//!
//! [`strip_jpeg_gps`] rewrites the bytes in place and keeps their length: the GPS directory's
//! entries and the values they point at are zeroed and the directory left empty, so no offset
//! in the file moves and every other tag (orientation, camera, colour profile) stays as it was.
//! An XMP packet naming a GPS field is blanked (spaces: XMP's own padding) for the same reason.
//! Only what lies in `bytes` is touched: given the head of a file, it says whether the whole
//! file needs the rewrite.

/// The largest JPEG original with a GPS position whose public copy is rewritten without it (in
/// memory: the files API has 256 MB); a larger one gets no public copy of its original.
pub const REWRITE_MAX_BYTES: u64 = 48 << 20;

/// Whether publishing may leave out the public copy of an original of `content_type` and `size`
/// (a JPEG too large to rewrite without a position it may hold): its public URL is then handed
/// out only once the copy is seen.
pub fn public_copy_may_be_withheld(content_type: &str, size: u64) -> bool {
    content_type == "image/jpeg" && size > REWRITE_MAX_BYTES
}

/// EXIF's tag for the GPS directory's offset, in the first directory (IFD0).
const GPS_INFO: u16 = 0x8825;

/// Removes the GPS position from the JPEG `bytes` (see the module comment); `true` if there
/// was one (or an XMP packet naming one). Bytes that are not a JPEG, or whose EXIF is cut
/// short or malformed, are left as they are (`false`).
pub fn strip_jpeg_gps(bytes: &mut [u8]) -> bool {
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return false;
    }
    let mut changed = false;
    let mut at = 2;
    // The segments before the image data (a JPEG's metadata is all there).
    while let (Some(&0xFF), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) {
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        if marker == 0xFF {
            // A fill byte before the marker.
            at += 1;
            continue;
        }
        let Some(len) = bytes.get(at + 2..at + 4).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))) else {
            break;
        };
        let end = (at + 2 + len).min(bytes.len());
        if marker == 0xE1 && len >= 2 {
            let segment = &mut bytes[at + 4..end];
            if let Some(tiff) = segment.strip_prefix(b"Exif\0\0").map(|t| t.len()) {
                let start = segment.len() - tiff;
                changed |= zero_gps_directory(&mut segment[start..]);
            } else if segment.starts_with(b"http://ns.adobe.com/xap/1.0/") && contains(segment, b"GPS") {
                let header = b"http://ns.adobe.com/xap/1.0/\0".len().min(segment.len());
                segment[header..].fill(b' ');
                changed = true;
            }
        }
        at += 2 + len;
    }
    changed
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG head: SOI, an APP1 EXIF segment with IFD0 (orientation 6 and the GPS pointer)
    /// and a GPS directory (latitude ref "N" inline, latitude as three rationals), then SOS.
    fn jpeg_with_gps(big_endian: bool) -> Vec<u8> {
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
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        let len = (2 + 6 + tiff.len()) as u16;
        out.extend(len.to_be_bytes());
        out.extend(b"Exif\0\0");
        out.extend(tiff);
        out.extend([0xFF, 0xDA, 0, 2]);
        out
    }

    #[test]
    fn the_gps_directory_and_its_values_are_zeroed_in_place_and_the_rest_kept() {
        for big_endian in [false, true] {
            let original = jpeg_with_gps(big_endian);
            let mut bytes = original.clone();
            assert!(strip_jpeg_gps(&mut bytes));
            assert_eq!(bytes.len(), original.len());
            let tiff = 4 + 2 + 6;
            // The orientation entry is untouched; the GPS directory has no entries and no
            // latitude is left.
            assert_eq!(bytes[..tiff + 38], original[..tiff + 38], "big endian: {big_endian}");
            assert_eq!(&bytes[tiff + 38..tiff + 40], [0, 0]);
            assert!(bytes[tiff + 68..tiff + 92].iter().all(|&b| b == 0));
            assert!(!contains(&bytes, b"N\0\0\0"));
            assert!(!strip_jpeg_gps(&mut bytes), "nothing left the second time");
        }
    }

    #[test]
    fn files_without_gps_or_not_jpegs_are_left_alone() {
        let mut not_jpeg = b"\x89PNG\r\n\x1a\n".to_vec();
        assert!(!strip_jpeg_gps(&mut not_jpeg));
        let mut bare = vec![0xFF, 0xD8, 0xFF, 0xDA, 0, 2];
        assert!(!strip_jpeg_gps(&mut bare));
        // Cut short anywhere: no panic, and a cut before the GPS directory changes nothing.
        let whole = jpeg_with_gps(false);
        for cut in 0..whole.len() {
            let mut head = whole[..cut].to_vec();
            let _ = strip_jpeg_gps(&mut head);
        }
        let mut head = whole[..30].to_vec();
        assert!(!strip_jpeg_gps(&mut head));
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
        assert!(strip_jpeg_gps(&mut bytes));
        assert_eq!(bytes.len(), len);
        assert!(!contains(&bytes, b"GPS") && !contains(&bytes, b"52,31N"));
    }
}
