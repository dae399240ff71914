//! AVIF sources: the container read by `avif-parse` (pure Rust), the AV1 still decoded by
//! dav1d (C, the decoder browsers use, built from source by
//! `libdav1d-sys`), and YUV turned into RGB
//! here. The sequence header's frame size is checked against the limits before any pixel is
//! allocated, and the decoder is told the same limit.
//!
//! Not read (yet): the `colr` ICC profile and the `irot`/`imir` transforms, which `avif-parse`
//! does not expose; such files are taken as sRGB and upright.

use std::ffi::c_int;
use std::io::Cursor;

use libdav1d_sys::{
    DAV1D_ERR_AGAIN, Dav1dContext, Dav1dData, Dav1dPicture, Dav1dSettings, dav1d_close, dav1d_data_create,
    dav1d_data_unref, dav1d_default_settings, dav1d_get_picture, dav1d_open, dav1d_picture_unref, dav1d_send_data,
};

use crate::ImageError;
use crate::pixels::Pixels;

// Colour matrices (ISO/IEC 23091-4), read as numbers: dav1d copies any 8-bit value through.
const MC_IDENTITY: u32 = 0;
const MC_BT709: u32 = 1;
const MC_UNSPECIFIED: u32 = 2;
const MC_FCC: u32 = 4;
const MC_BT470BG: u32 = 5;
const MC_BT601: u32 = 6;
const MC_SMPTE240: u32 = 7;
const MC_YCGCO: u32 = 8;
const MC_BT2020_NCL: u32 = 9;

const EAGAIN: c_int = DAV1D_ERR_AGAIN;

/// Runs `f`, turning a panic inside the parser or decoder into an error: `avif-parse` asserts
/// on some malformed boxes, and a hostile file must get a reason, not a crash.
fn guarded<T>(f: impl FnOnce() -> Result<T, ImageError>) -> Result<T, ImageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(ImageError::Malformed("AVIF: the container or bitstream is inconsistent".into())))
}

/// Every box's declared size fits inside its parent (recursively for the containers an AVIF
/// uses). `avif-parse` sizes some buffers from these fields before reading them: a 14 KB file
/// declaring a 4 GB `ftyp` must stop here, not at the allocator (found by the fuzzer).
fn boxes_fit(b: &[u8], depth: u8) -> bool {
    matbakh_core::container::iso_boxes(b, 0..b.len()).all(|part| {
        let body = &b[part.data];
        // Containers, with the bytes before their children (full-box version/flags, counts).
        let children = match &part.kind {
            b"meta" | b"iref" => Some(4),
            b"iinf" => Some(if body.first() == Some(&0) { 6 } else { 8 }),
            b"iprp" | b"ipco" | b"dinf" | b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" => Some(0),
            _ => None,
        };
        part.whole && children.is_none_or(|skip| depth < 8 && body.len() >= skip && boxes_fit(&body[skip..], depth + 1))
    })
}

fn parse(bytes: &[u8]) -> Result<avif_parse::AvifData, ImageError> {
    if !boxes_fit(bytes, 0) {
        return Err(ImageError::Malformed("AVIF: a box is larger than the data around it".into()));
    }
    guarded(|| avif_parse::read_avif(&mut Cursor::new(bytes)).map_err(|e| ImageError::Malformed(format!("AVIF: {e}"))))
}

/// The stored size and whether there is an alpha plane, from the container and the AV1
/// sequence header (no decoding).
pub(crate) fn probe(bytes: &[u8]) -> Result<(u32, u32, bool), ImageError> {
    let data = parse(bytes)?;
    let meta = data.primary_item_metadata().map_err(|e| ImageError::Malformed(format!("AVIF: {e}")))?;
    Ok((meta.max_frame_width.get(), meta.max_frame_height.get(), data.alpha_item.is_some()))
}

/// Decodes the primary image (and its alpha plane) into 8-bit RGB(A).
pub(crate) fn decode(bytes: &[u8], max_pixels: u64) -> Result<Pixels, ImageError> {
    let data = parse(bytes)?;
    let alpha = match &data.alpha_item {
        Some(obus) => Some(guarded(|| decode_av1(obus, max_pixels, |pic| Ok(alpha_plane(pic))))?),
        None => None,
    };
    let pixels = guarded(|| decode_av1(&data.primary_item, max_pixels, |pic| to_rgb(pic, alpha.as_ref())))?;
    Ok(if data.premultiplied_alpha { unpremultiply(pixels) } else { pixels })
}

fn corrupt(what: &str, code: c_int) -> ImageError {
    ImageError::Corrupt(format!("AVIF: {what} (dav1d error {code})"))
}

/// Runs one AV1 bitstream through a fresh single-threaded decoder and hands the picture to
/// `convert` while the decoder still owns it.
fn decode_av1<T>(
    obus: &[u8],
    max_pixels: u64,
    convert: impl FnOnce(&Picture<'_>) -> Result<T, ImageError>,
) -> Result<T, ImageError> {
    let decoder = Decoder::open(max_pixels)?;
    // SAFETY: an all-zero `Dav1dData` is the empty one dav1d expects.
    let mut data: Dav1dData = unsafe { std::mem::zeroed() };
    // SAFETY: `data` is a valid, empty `Dav1dData`; on success the returned buffer holds
    // `obus.len()` writable bytes owned by `data`.
    let buf = unsafe { dav1d_data_create(&mut data, obus.len()) };
    if buf.is_null() {
        return Err(ImageError::Corrupt("AVIF: no memory for the bitstream".into()));
    }
    // SAFETY: `buf` points at `obus.len()` bytes that nothing else references.
    unsafe { std::ptr::copy_nonoverlapping(obus.as_ptr(), buf, obus.len()) };
    let result = decoder.picture(&mut data);
    // SAFETY: `data` came from `dav1d_data_create`; unref of an emptied one is a no-op.
    unsafe { dav1d_data_unref(&mut data) };
    let mut pic = result?;
    let out = Picture::new(&pic).and_then(|p| convert(&p));
    // SAFETY: `pic` was filled by `dav1d_get_picture` and is released once, here.
    unsafe { dav1d_picture_unref(&mut pic) };
    out
}

/// An open dav1d context, closed on drop.
struct Decoder(*mut Dav1dContext);

impl Decoder {
    fn open(max_pixels: u64) -> Result<Decoder, ImageError> {
        let mut settings = std::mem::MaybeUninit::<Dav1dSettings>::uninit();
        // SAFETY: `dav1d_default_settings` writes a complete `Dav1dSettings`.
        let mut settings = unsafe {
            dav1d_default_settings(settings.as_mut_ptr());
            settings.assume_init()
        };
        // One still image: no frame threads, no delay; the decoder itself refuses a frame over
        // the pixel limit too (0 would mean "no limit").
        settings.n_threads = 1;
        settings.max_frame_delay = 1;
        settings.frame_size_limit = u32::try_from(max_pixels).unwrap_or(u32::MAX).max(1);
        let mut ctx = std::ptr::null_mut();
        // SAFETY: both pointers are valid for the call; `ctx` receives the context.
        let r = unsafe { dav1d_open(&mut ctx, &settings) };
        if r < 0 || ctx.is_null() {
            return Err(corrupt("the decoder did not open", r));
        }
        Ok(Decoder(ctx))
    }

    /// Feeds all of `data` and takes the one picture out.
    fn picture(&self, data: &mut Dav1dData) -> Result<Dav1dPicture, ImageError> {
        // SAFETY: an all-zero picture (null pointers) is what `dav1d_get_picture` fills.
        let mut pic: Dav1dPicture = unsafe { std::mem::zeroed() };
        // A still image is one temporal unit; the bound only guards against a decoder that never
        // answers.
        for _ in 0..64 {
            if data.sz > 0 {
                // SAFETY: the context is open and `data` is a valid `Dav1dData`.
                let r = unsafe { dav1d_send_data(self.0, data) };
                if r < 0 && r != EAGAIN {
                    return Err(corrupt("the bitstream was refused", r));
                }
            }
            // SAFETY: the context is open and `pic` is valid to write to.
            let r = unsafe { dav1d_get_picture(self.0, &mut pic) };
            match r {
                0 => return Ok(pic),
                EAGAIN if data.sz > 0 => continue,
                EAGAIN => return Err(ImageError::Truncated),
                code => return Err(corrupt("the image could not be decoded", code)),
            }
        }
        Err(ImageError::Corrupt("AVIF: the decoder gave no picture".into()))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context came from `dav1d_open` and is closed once.
        unsafe { dav1d_close(&mut self.0) };
    }
}

/// One decoded plane: samples of 8 bits, or of 10/12 bits stored in 16.
#[derive(Clone, Copy)]
enum Plane<'a> {
    Eight { data: &'a [u8], stride: usize },
    Wide { data: &'a [u16], stride: usize },
}

impl Plane<'_> {
    fn at(&self, x: usize, y: usize) -> u32 {
        match self {
            Plane::Eight { data, stride } => u32::from(data[y * stride + x]),
            Plane::Wide { data, stride } => u32::from(data[y * stride + x]),
        }
    }
}

/// A decoded picture, borrowed from dav1d.
struct Picture<'a> {
    width: usize,
    height: usize,
    bits: u32,
    /// Chroma subsampling shifts (x, y); `None` for monochrome.
    chroma: Option<(usize, usize)>,
    full_range: bool,
    matrix: u32,
    y: Plane<'a>,
    u: Plane<'a>,
    v: Plane<'a>,
}

impl<'a> Picture<'a> {
    fn new(pic: &'a Dav1dPicture) -> Result<Picture<'a>, ImageError> {
        let bad = |what: &str| ImageError::Corrupt(format!("AVIF: {what}"));
        let (width, height) = (usize::try_from(pic.p.w).ok(), usize::try_from(pic.p.h).ok());
        let (Some(width), Some(height)) = (width, height) else { return Err(bad("negative size")) };
        let bits = u32::try_from(pic.p.bpc).ok().filter(|b| [8, 10, 12].contains(b)).ok_or_else(|| bad("bit depth"))?;
        if pic.seq_hdr.is_null() {
            return Err(bad("no sequence header"));
        }
        // SAFETY: the sequence header lives as long as the picture that references it. The enum
        // fields are read as the integers dav1d stored (any 8-bit value may be there, which a
        // Rust enum must not hold).
        let (layout, matrix, full_range) = unsafe {
            let seq = pic.seq_hdr;
            (
                std::ptr::addr_of!(pic.p.layout).cast::<u32>().read(),
                std::ptr::addr_of!((*seq).mtrx).cast::<u32>().read(),
                (*seq).color_range != 0,
            )
        };
        // I400, I420, I422, I444.
        let chroma = match layout {
            0 => None,
            1 => Some((1, 1)),
            2 => Some((1, 0)),
            _ => Some((0, 0)),
        };
        let plane = |i: usize, w: usize, h: usize| -> Result<Plane<'a>, ImageError> {
            let ptr = pic.data[i];
            if ptr.is_null() {
                return Err(bad("missing plane"));
            }
            let stride = usize::try_from(pic.stride[i.min(1)]).map_err(|_| bad("negative stride"))?;
            let bytes = if h == 0 { 0 } else { stride * (h - 1) + w * if bits > 8 { 2 } else { 1 } };
            // SAFETY: dav1d allocates every plane as `stride * rows` bytes (rows padded), aligned
            // for its sample type, and keeps it until `dav1d_picture_unref`.
            Ok(unsafe {
                if bits > 8 {
                    Plane::Wide {
                        data: std::slice::from_raw_parts(ptr.cast::<u16>(), bytes.div_ceil(2)),
                        stride: stride / 2,
                    }
                } else {
                    Plane::Eight { data: std::slice::from_raw_parts(ptr.cast::<u8>(), bytes), stride }
                }
            })
        };
        let y = plane(0, width, height)?;
        let (u, v) = match chroma {
            None => (y, y),
            Some((sx, sy)) => {
                let (cw, ch) = ((width + sx) >> sx, (height + sy) >> sy);
                (plane(1, cw, ch)?, plane(2, cw, ch)?)
            }
        };
        Ok(Picture { width, height, bits, chroma, full_range, matrix, y, u, v })
    }
}

/// The alpha item's luma, as 8-bit opacity.
fn alpha_plane(pic: &Picture<'_>) -> (usize, usize, Vec<u8>) {
    let range = Range::new(pic.bits, pic.full_range);
    let mut out = Vec::with_capacity(pic.width * pic.height);
    for y in 0..pic.height {
        for x in 0..pic.width {
            out.push(to_u8(range.luma(pic.y.at(x, y))));
        }
    }
    (pic.width, pic.height, out)
}

/// Code values to [0, 1] (luma) and [-0.5, 0.5] (chroma), for limited or full range.
struct Range {
    y_off: f32,
    y_scale: f32,
    c_off: f32,
    c_scale: f32,
}

impl Range {
    fn new(bits: u32, full: bool) -> Range {
        let unit = (1u32 << (bits - 8)) as f32;
        let max = ((1u32 << bits) - 1) as f32;
        let c_off = (1u32 << (bits - 1)) as f32;
        if full {
            Range { y_off: 0.0, y_scale: 1.0 / max, c_off, c_scale: 1.0 / max }
        } else {
            Range { y_off: 16.0 * unit, y_scale: 1.0 / (219.0 * unit), c_off, c_scale: 1.0 / (224.0 * unit) }
        }
    }

    fn luma(&self, v: u32) -> f32 {
        (v as f32 - self.y_off) * self.y_scale
    }

    fn chroma(&self, v: u32) -> f32 {
        (v as f32 - self.c_off) * self.c_scale
    }
}

fn to_u8(v: f32) -> u8 {
    (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}

/// Kr and Kb of the matrices in use; unspecified is BT.601, as libavif and browsers take it.
fn coefficients(matrix: u32) -> Option<(f32, f32)> {
    match matrix {
        MC_BT709 => Some((0.2126, 0.0722)),
        MC_BT2020_NCL => Some((0.2627, 0.0593)),
        MC_SMPTE240 => Some((0.212, 0.087)),
        MC_FCC => Some((0.30, 0.11)),
        MC_BT601 | MC_BT470BG | MC_UNSPECIFIED => Some((0.299, 0.114)),
        _ => None,
    }
}

fn to_rgb(pic: &Picture<'_>, alpha: Option<&(usize, usize, Vec<u8>)>) -> Result<Pixels, ImageError> {
    let alpha = match alpha {
        Some((w, h, a)) if (*w, *h) == (pic.width, pic.height) => Some(a),
        Some(_) => return Err(ImageError::Corrupt("AVIF: the alpha plane's size differs".into())),
        None => None,
    };
    let range = Range::new(pic.bits, pic.full_range);
    enum Kind {
        Gray,
        Ycc { kr: f32, kb: f32 },
        Gbr,
        YCgCo,
    }
    let kind = match (pic.chroma, pic.matrix) {
        (None, _) => Kind::Gray,
        (Some(_), MC_IDENTITY) => Kind::Gbr,
        (Some(_), MC_YCGCO) => Kind::YCgCo,
        (Some(_), m) => {
            let (kr, kb) = coefficients(m).ok_or(ImageError::Unsupported("this AVIF colour matrix"))?;
            Kind::Ycc { kr, kb }
        }
    };
    let (sx, sy) = pic.chroma.unwrap_or((0, 0));
    let channels = if alpha.is_some() { 4 } else { 3 };
    let mut data = Vec::with_capacity(pic.width * pic.height * channels);
    for y in 0..pic.height {
        for x in 0..pic.width {
            let l = pic.y.at(x, y);
            let (cx, cy) = (x >> sx, y >> sy);
            let rgb = match kind {
                Kind::Gray => {
                    let g = range.luma(l);
                    [g, g, g]
                }
                Kind::Ycc { kr, kb } => {
                    let (yy, cb, cr) = (range.luma(l), range.chroma(pic.u.at(cx, cy)), range.chroma(pic.v.at(cx, cy)));
                    let r = yy + 2.0 * (1.0 - kr) * cr;
                    let b = yy + 2.0 * (1.0 - kb) * cb;
                    let g = (yy - kr * r - kb * b) / (1.0 - kr - kb);
                    [r, g, b]
                }
                // Identity: the planes are G, B, R, all full-scale.
                Kind::Gbr => {
                    let max = ((1u32 << pic.bits) - 1) as f32;
                    [pic.v.at(cx, cy) as f32 / max, l as f32 / max, pic.u.at(cx, cy) as f32 / max]
                }
                Kind::YCgCo => {
                    let (yy, cg, co) = (range.luma(l), range.chroma(pic.u.at(cx, cy)), range.chroma(pic.v.at(cx, cy)));
                    let t = yy - cg;
                    [t + co, yy + cg, t - co]
                }
            };
            data.extend(rgb.map(to_u8));
            if let Some(a) = alpha {
                data.push(a[y * pic.width + x]);
            }
        }
    }
    Ok(Pixels { width: pic.width as u32, height: pic.height as u32, channels: channels as u8, data })
}

fn unpremultiply(mut p: Pixels) -> Pixels {
    if p.channels == 4 {
        for px in p.data.chunks_exact_mut(4) {
            let a = u32::from(px[3]);
            if a > 0 && a < 255 {
                for c in &mut px[..3] {
                    *c = ((u32::from(*c) * 255 + a / 2) / a).min(255) as u8;
                }
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_larger_than_the_file_stops_before_the_parser() {
        let fixture = std::fs::read(format!(
            "{}/tests/fixtures/dune-420-bt709-limited.avif",
            std::env::var("CARGO_MANIFEST_DIR").unwrap()
        ))
        .unwrap();
        assert!(boxes_fit(&fixture, 0), "a real file fits");
        // The fuzzer's find: `ftyp` declaring 0xFFFF0020 bytes.
        let mut big = fixture.clone();
        big[..4].copy_from_slice(&0xFFFF_0020u32.to_be_bytes());
        assert!(matches!(parse(&big), Err(ImageError::Malformed(m)) if m.contains("larger than")));
        // A child of `meta` reaching past its parent.
        let meta = fixture.windows(4).position(|w| w == b"meta").unwrap() - 4;
        let child = meta + 12;
        let mut nested = fixture.clone();
        nested[child..child + 4].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        assert!(!boxes_fit(&nested, 0));
        // Cut inside `meta`: its declared size no longer fits.
        assert!(!boxes_fit(&fixture[..meta + 20], 0));
    }
}
