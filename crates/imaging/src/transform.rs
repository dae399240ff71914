//! URL-driven transforms (the transformer): imgproxy's geometry for `core::imgproxy::Options`,
//! applied to one decode. [`plan`] is the arithmetic alone (imgproxy's `calcScale`, without
//! zoom, min sizes and extend), so the sizes a URL gives are testable without pixels.

use matbakh_core::imgproxy::{Format, Gravity, GravityKind, Options, OutputChoice, ResizeType, Watermark};

use crate::encode::{OutputFormat, Quality, encode};
use crate::pixels::Pixels;
use crate::{ImageError, ImageLimits, read_header};

/// Names the encoders and pipeline in result keys: change it whenever the same URL would give
/// different bytes, so a deploy never serves results of the old code as new.
pub const ENCODER_VERSION: &str = "e1";

pub use matbakh_core::imgproxy::DEFAULT_MAX_OUTPUT_SIDE;
/// Largest device pixel ratio (`TRANSFORM_MAX_DPR`).
pub const DEFAULT_MAX_DPR: f64 = 4.0;

/// One transform's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformed {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

fn output_format(f: Format) -> OutputFormat {
    match f {
        Format::Jpeg => OutputFormat::Jpeg,
        Format::Png => OutputFormat::Png,
        Format::WebP => OutputFormat::WebP,
        Format::Avif => OutputFormat::Avif,
    }
}

/// What every transform of a deployment shares: the decode limits, the largest side of a
/// result (`TRANSFORM_MAX_OUTPUT_SIDE`), the encoders' quality and the watermark image.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub limits: &'a ImageLimits,
    pub max_side: u32,
    pub quality: &'a Quality,
    pub watermark: Option<&'a Pixels>,
}

/// Decodes `bytes` once (no larger than the result needs), cuts, resizes, filters and encodes
/// as the options say, in `output`'s format. Metadata never reaches the result.
pub fn run(bytes: &[u8], o: &Options, output: OutputChoice, p: &Pipeline<'_>) -> Result<Transformed, ImageError> {
    let Pipeline { limits, max_side, quality, watermark } = *p;
    let watermark = match (&o.watermark, watermark) {
        (None, _) => None,
        (Some(w), Some(image)) => Some((w, image)),
        (Some(_), None) => return Err(ImageError::Unsupported("watermarks (no watermark image is configured)")),
    };
    // The header and EXIF once: the plan comes from them, then the decode uses them.
    let header = read_header(bytes, limits, o.auto_rotate)?;
    let (w, h) = (header.width, header.height);
    let plan = plan(w, h, o);
    check_output(&plan, limits, max_side)?;
    // Decode just large enough that the cut region still covers the scaled size.
    let (cw, ch) = plan.crop.map_or((w, h), |(cw, ch)| (if cw == 0 { w } else { cw }, if ch == 0 { h } else { ch }));
    let need = (f64::from(plan.scaled.0) * f64::from(w) / f64::from(cw)).ceil() as u32;
    let source = header.decode(bytes, limits, need.min(w))?;
    let (mut px, icc) = (source.pixels, source.icc);
    let k = f64::from(px.width) / f64::from(w);
    if plan.crop.is_some() {
        let g = o.crop.and_then(|c| c.gravity).unwrap_or(o.gravity);
        let inner = (round(f64::from(cw) * k).clamp(1, px.width), round(f64::from(ch) * k).clamp(1, px.height));
        let (x, y) = if g.kind == GravityKind::Smart {
            smart_offset(&px, inner)?
        } else {
            let (x, y) = position((w, h), (cw, ch), &g, 1.0);
            (round(f64::from(x) * k), round(f64::from(y) * k))
        };
        px = px.crop(Rect { x, y, width: inner.0, height: inner.1 });
    }
    if (px.width, px.height) != plan.scaled {
        px = px.resize(plan.scaled.0, plan.scaled.1)?;
    }
    if plan.output != plan.scaled {
        let (x, y) = if o.gravity.kind == GravityKind::Smart {
            smart_offset(&px, plan.output)?
        } else {
            position(plan.scaled, plan.output, &o.gravity, plan.offset_scale)
        };
        px = px.crop(Rect { x, y, width: plan.output.0, height: plan.output.1 });
    }
    // To sRGB once cut and resized: far fewer pixels to convert than the decode had.
    px = px.to_srgb(icc.as_deref());
    if o.blur > 0.0 {
        px = px.blur(o.blur);
    }
    if o.sharpen > 0.0 {
        px = px.sharpen(o.sharpen);
    }
    if let Some((w, image)) = watermark {
        px = overlay(px, image, w, plan.offset_scale)?;
    }
    let format = output.format(px.has_alpha());
    let mut q = *quality;
    if o.quality > 0 {
        (q.jpeg, q.webp, q.avif) = (o.quality, f32::from(o.quality), f32::from(o.quality));
    }
    let bytes = encode(&px, output_format(format), &q)?;
    Ok(Transformed { format, width: px.width, height: px.height, bytes })
}

/// A rectangle of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// What a URL's geometry comes to for a source of a given (oriented) size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The `crop` option: the size cut from the source first (placed by its gravity).
    pub crop: Option<(u32, u32)>,
    /// The size the (cropped) source is resized to.
    pub scaled: (u32, u32),
    /// The final size: `scaled`, cut to the requested box where the type crops.
    pub output: (u32, u32),
    /// What offsets in pixels are multiplied by for the final cut (the effective dpr).
    pub offset_scale: f64,
}

/// Go's `math.Round`: halves away from zero.
fn round(v: f64) -> u32 {
    v.round().max(0.0) as u32
}

fn crop_size(side: u32, c: f64) -> u32 {
    if c == 0.0 {
        0
    } else if c >= 1.0 {
        (c as u32).min(side)
    } else {
        round(f64::from(side) * c).max(1)
    }
}

/// The sizes for a `src_w` x `src_h` source (as displayed).
pub fn plan(src_w: u32, src_h: u32, o: &Options) -> Plan {
    let crop = o.crop.map(|c| (crop_size(src_w, c.width), crop_size(src_h, c.height)));
    let (cw, ch) = crop.unwrap_or((0, 0));
    let w_src = if cw != 0 { cw.min(src_w) } else { src_w };
    let h_src = if ch != 0 { ch.min(src_h) } else { src_h };
    let (fw, fh) = (f64::from(w_src), f64::from(h_src));
    let dst_w = if o.width == 0 { w_src } else { o.width };
    let dst_h = if o.height == 0 { h_src } else { o.height };
    let mut wsh = if dst_w == w_src { 1.0 } else { fw / f64::from(dst_w) };
    let mut hsh = if dst_h == h_src { 1.0 } else { fh / f64::from(dst_h) };
    let mut rt = o.resizing_type;
    if wsh != 1.0 || hsh != 1.0 {
        if rt == ResizeType::Auto {
            let same = (w_src >= h_src) == (dst_w >= dst_h);
            rt = if same { ResizeType::Fill } else { ResizeType::Fit };
        }
        if o.width == 0 && rt != ResizeType::Force {
            wsh = hsh;
        } else if o.height == 0 && rt != ResizeType::Force {
            hsh = wsh;
        } else if rt == ResizeType::Fit {
            let m = wsh.max(hsh);
            (wsh, hsh) = (m, m);
        } else if matches!(rt, ResizeType::Fill | ResizeType::FillDown) {
            let m = wsh.min(hsh);
            (wsh, hsh) = (m, m);
        }
    }
    let mut dpr = o.dpr;
    if !o.enlarge {
        let m = wsh.min(hsh);
        if m < 1.0 {
            wsh /= m;
            hsh /= m;
            dpr /= m;
        }
        dpr = dpr.min(wsh.min(hsh));
    }
    wsh = (wsh / dpr).min(fw);
    hsh = (hsh / dpr).min(fh);
    let target_w = if o.width == 0 { 0 } else { round(f64::from(o.width) * dpr) };
    let target_h = if o.height == 0 { 0 } else { round(f64::from(o.height) * dpr) };
    let scaled = (round(fw / wsh).max(1), round(fh / hsh).max(1));
    let mut cut = (target_w, target_h);
    if rt == ResizeType::FillDown && !o.enlarge && target_w > 0 && target_h > 0 {
        let dw = f64::from(target_w) / f64::from(scaled.0);
        let dh = f64::from(target_h) / f64::from(scaled.1);
        if dw > dh && dw > 1.0 {
            cut = (scaled.0, round(f64::from(scaled.0) * f64::from(target_h) / f64::from(target_w)));
        } else if dh > dw && dh > 1.0 {
            cut = (round(f64::from(scaled.1) * f64::from(target_w) / f64::from(target_h)), scaled.1);
        }
    }
    let side = |s: u32, c: u32| if c == 0 { s } else { s.min(c) }.max(1);
    let output = (side(scaled.0, cut.0), side(scaled.1, cut.1));
    Plan {
        crop: crop.filter(|&(w, h)| (w != 0 && w < src_w) || (h != 0 && h < src_h)),
        scaled,
        output,
        offset_scale: dpr,
    }
}

/// Round half to even (Go's `math.RoundToEven`), as imgproxy places crops.
fn round_even(v: f64) -> i64 {
    v.round_ties_even() as i64
}

/// Where an `inner` box sits in an `outer` one for a compass gravity or a focus point; smart
/// gravity is placed by [`smart_offset`].
pub fn position(outer: (u32, u32), inner: (u32, u32), g: &Gravity, offset_scale: f64) -> (u32, u32) {
    let (wo, ho) = (i64::from(outer.0), i64::from(outer.1));
    let (wi, hi) = (i64::from(inner.0.min(outer.0)), i64::from(inner.1.min(outer.1)));
    let (left, top) = if g.kind == GravityKind::FocusPoint {
        (round_even(wo as f64 * g.x) - wi / 2, round_even(ho as f64 * g.y) - hi / 2)
    } else {
        let offset = |v: f64, outer: i64| {
            if v.abs() >= 1.0 { round_even(v * offset_scale) } else { round_even(outer as f64 * v) }
        };
        let (ox, oy) = (offset(g.x, wo), offset(g.y, ho));
        let mut left = round_even((wo - wi + 1) as f64 / 2.0) + ox;
        let mut top = round_even((ho - hi + 1) as f64 / 2.0) + oy;
        use GravityKind::*;
        if matches!(g.kind, North | NorthEast | NorthWest) {
            top = oy;
        }
        if matches!(g.kind, South | SouthEast | SouthWest) {
            top = ho - hi - oy;
        }
        if matches!(g.kind, West | NorthWest | SouthWest) {
            left = ox;
        }
        if matches!(g.kind, East | NorthEast | SouthEast) {
            left = wo - wi - ox;
        }
        (left, top)
    };
    (left.clamp(0, wo - wi) as u32, top.clamp(0, ho - hi) as u32)
}

/// The most detailed `inner`-sized window of `p` (gradient energy plus colourfulness, on a
/// copy at most 256 px on its long side): where smart gravity puts the crop.
pub fn smart_offset(p: &Pixels, inner: (u32, u32)) -> Result<(u32, u32), ImageError> {
    let (w, h) = (p.width, p.height);
    if inner.0 >= w && inner.1 >= h {
        return Ok((0, 0));
    }
    let k = (256.0 / f64::from(w.max(h))).min(1.0);
    let (sw, sh) = (round(f64::from(w) * k).max(1), round(f64::from(h) * k).max(1));
    let small = if k < 1.0 { p.resize(sw, sh)? } else { p.clone() };
    let ch = usize::from(small.channels);
    let (sw_us, sh_us) = (sw as usize, sh as usize);
    let luma = |x: usize, y: usize| {
        let i = (y * sw_us + x) * ch;
        let d = &small.data[i..i + 3];
        (299 * u32::from(d[0]) + 587 * u32::from(d[1]) + 114 * u32::from(d[2])) / 1000
    };
    // Integral image of the interest score.
    let mut sum = vec![0u64; (sw_us + 1) * (sh_us + 1)];
    for y in 0..sh_us {
        for x in 0..sw_us {
            let gx = luma((x + 1).min(sw_us - 1), y).abs_diff(luma(x.saturating_sub(1), y));
            let gy = luma(x, (y + 1).min(sh_us - 1)).abs_diff(luma(x, y.saturating_sub(1)));
            let i = (y * sw_us + x) * ch;
            let d = &small.data[i..i + 3];
            let sat = u32::from(*d.iter().max().unwrap_or(&0)) - u32::from(*d.iter().min().unwrap_or(&0));
            let score = u64::from(gx + gy) * 2 + u64::from(sat) / 2;
            sum[(y + 1) * (sw_us + 1) + x + 1] =
                score + sum[y * (sw_us + 1) + x + 1] + sum[(y + 1) * (sw_us + 1) + x] - sum[y * (sw_us + 1) + x];
        }
    }
    let (iw, ih) =
        (round(f64::from(inner.0.min(w)) * k).clamp(1, sw), round(f64::from(inner.1.min(h)) * k).clamp(1, sh));
    let (iw, ih) = (iw as usize, ih as usize);
    let mut best = (0u64, 0usize, 0usize);
    for y in 0..=(sh_us - ih) {
        for x in 0..=(sw_us - iw) {
            let s = sum[(y + ih) * (sw_us + 1) + x + iw] + sum[y * (sw_us + 1) + x]
                - sum[y * (sw_us + 1) + x + iw]
                - sum[(y + ih) * (sw_us + 1) + x];
            if s > best.0 {
                best = (s, x, y);
            }
        }
    }
    let to_full = |v: usize, limit: u32, size: u32| (round(v as f64 / k)).min(limit.saturating_sub(size));
    Ok((to_full(best.1, w, inner.0.min(w)), to_full(best.2, h, inner.1.min(h))))
}

/// Lays `mark` over `px` as imgproxy's `wm` says: opacity, a compass position with offsets (or
/// tiled, `re`, the offsets then the spacing), scaled to `scale` of the image's width if > 0.
pub fn overlay(mut px: Pixels, mark: &Pixels, w: &Watermark, offset_scale: f64) -> Result<Pixels, ImageError> {
    let mark = if w.scale > 0.0 {
        let mw = round(f64::from(px.width) * w.scale).clamp(1, px.width);
        let mh = round(f64::from(mark.height) * f64::from(mw) / f64::from(mark.width)).clamp(1, px.height);
        mark.resize(mw, mh)?
    } else {
        mark.clone()
    };
    let (mw, mh) = (mark.width.min(px.width), mark.height.min(px.height));
    let places: Vec<(u32, u32)> = match w.position {
        Some(kind) => vec![position((px.width, px.height), (mw, mh), &Gravity { kind, x: w.x, y: w.y }, offset_scale)],
        None => {
            let step_x = mw + round(w.x.max(0.0) * offset_scale);
            let step_y = mh + round(w.y.max(0.0) * offset_scale);
            let xs = (0..px.width).step_by(step_x.max(1) as usize);
            xs.flat_map(|x| (0..px.height).step_by(step_y.max(1) as usize).map(move |y| (x, y))).collect()
        }
    };
    let (pc, mc) = (usize::from(px.channels), usize::from(mark.channels));
    for (left, top) in places {
        for y in 0..mh.min(px.height - top) {
            for x in 0..mw.min(px.width - left) {
                let m = ((y * mark.width + x) as usize) * mc;
                let alpha = if mc == 4 { f64::from(mark.data[m + 3]) / 255.0 } else { 1.0 } * w.opacity;
                let p = (((top + y) * px.width + left + x) as usize) * pc;
                for c in 0..3 {
                    let (under, over) = (f64::from(px.data[p + c]), f64::from(mark.data[m + c]));
                    px.data[p + c] = (under + (over - under) * alpha).round() as u8;
                }
            }
        }
    }
    Ok(px)
}

impl Pixels {
    /// The `r` rectangle of these pixels.
    pub fn crop(&self, r: Rect) -> Pixels {
        let ch = usize::from(self.channels);
        let (x, y) = (r.x.min(self.width) as usize, r.y.min(self.height) as usize);
        let w = (r.width as usize).min(self.width as usize - x).max(1);
        let h = (r.height as usize).min(self.height as usize - y).max(1);
        let stride = self.width as usize * ch;
        let mut data = Vec::with_capacity(w * h * ch);
        for row in y..y + h {
            data.extend_from_slice(&self.data[row * stride + x * ch..row * stride + (x + w) * ch]);
        }
        Pixels { width: w as u32, height: h as u32, channels: self.channels, data }
    }

    /// A Gaussian blur of standard deviation `sigma`, as three box blurs per axis.
    pub fn blur(&self, sigma: f64) -> Pixels {
        if sigma <= 0.0 {
            return self.clone();
        }
        // Box widths whose three passes approximate the Gaussian (Kovesi).
        let n = 3.0;
        let ideal = (12.0 * sigma * sigma / n + 1.0).sqrt();
        let mut wl = ideal.floor() as i64;
        if wl % 2 == 0 {
            wl -= 1;
        }
        let m = ((12.0 * sigma * sigma - n * (wl * wl) as f64 - 4.0 * n * wl as f64 - 3.0 * n)
            / (-4.0 * wl as f64 - 4.0))
            .round();
        let mut out = self.clone();
        for i in 0..3 {
            let size = if (i as f64) < m { wl } else { wl + 2 };
            let r = ((size - 1) / 2).max(0) as usize;
            out = out.box_pass(r, true).box_pass(r, false);
        }
        out
    }

    /// One box blur of radius `r` along rows (`horizontal`) or columns, edges clamped.
    fn box_pass(&self, r: usize, horizontal: bool) -> Pixels {
        if r == 0 {
            return self.clone();
        }
        let ch = usize::from(self.channels);
        let (w, h) = (self.width as usize, self.height as usize);
        let (lines, len) = if horizontal { (h, w) } else { (w, h) };
        let at = |line: usize, i: usize| if horizontal { (line * w + i) * ch } else { (i * w + line) * ch };
        let mut data = vec![0u8; self.data.len()];
        let div = (2 * r + 1) as u32;
        for line in 0..lines {
            for c in 0..ch {
                let px = |i: isize| u32::from(self.data[at(line, i.clamp(0, len as isize - 1) as usize) + c]);
                let mut acc: u32 = (-(r as isize)..=r as isize).map(px).sum();
                for i in 0..len {
                    data[at(line, i) + c] = ((acc + div / 2) / div) as u8;
                    acc = acc + px(i as isize + r as isize + 1) - px(i as isize - r as isize);
                }
            }
        }
        Pixels { width: self.width, height: self.height, channels: self.channels, data }
    }

    /// Unsharp mask: the difference from a blur of `sigma`, added back once.
    pub fn sharpen(&self, sigma: f64) -> Pixels {
        if sigma <= 0.0 {
            return self.clone();
        }
        let blurred = self.blur(sigma);
        let ch = usize::from(self.channels);
        let data = self
            .data
            .iter()
            .zip(&blurred.data)
            .enumerate()
            .map(
                |(i, (&v, &b))| {
                    if ch == 4 && i % 4 == 3 { v } else { (2 * i32::from(v) - i32::from(b)).clamp(0, 255) as u8 }
                },
            )
            .collect();
        Pixels { width: self.width, height: self.height, channels: self.channels, data }
    }
}

/// Checks a plan against the output limits.
pub fn check_output(plan: &Plan, limits: &ImageLimits, max_side: u32) -> Result<(), ImageError> {
    let (w, h) = plan.scaled;
    if w.max(h) > max_side || plan.output.0.max(plan.output.1) > max_side {
        return Err(ImageError::TooLargeOutput { width: w, height: h, limit: max_side });
    }
    if u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(ImageError::TooManyPixels { width: w, height: h, limit: limits.max_pixels });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use matbakh_core::imgproxy::{Crop, Presets};

    fn options(segments: &str) -> Options {
        let mut o = Options::default();
        for s in segments.split('/').filter(|s| !s.is_empty()) {
            o.apply(s, &Presets::default()).unwrap();
        }
        o
    }

    /// The sizes imgproxy's own arithmetic gives (its `calcScale`), for the documented types.
    #[test]
    fn sizes_follow_imgproxys_arithmetic() {
        for (src, url, want) in [
            ((1000, 500), "rs:fit:300:300", (300, 150)),
            ((1000, 500), "rs:fill:300:300", (300, 300)),
            ((1000, 500), "rs:force:300:300", (300, 300)),
            ((1000, 500), "rs:force:0:300", (1000, 300)),
            ((1000, 500), "rs:auto:300:400", (300, 150)),
            ((1000, 500), "rs:auto:400:300", (400, 300)),
            ((200, 100), "rs:fill:300:300", (200, 100)),
            ((200, 100), "rs:fill-down:300:300", (100, 100)),
            ((200, 100), "rs:fit:300:300:1", (300, 150)),
            ((200, 100), "rs:fill:300:300:1", (300, 300)),
            ((1000, 1000), "w:300/dpr:2", (600, 600)),
            ((500, 500), "w:300/dpr:2", (500, 500)),
            ((1000, 500), "w:250", (250, 125)),
            ((1000, 500), "h:100", (200, 100)),
            ((1000, 500), "", (1000, 500)),
            ((3000, 2000), "c:1000:1000/w:500", (500, 500)),
            ((3000, 2000), "c:0.5:0.5/rs:fill:300:100", (300, 100)),
        ] {
            let p = plan(src.0, src.1, &options(url));
            assert_eq!(p.output, want, "{src:?} {url}: {p:?}");
        }
        let fill = plan(1000, 500, &options("rs:fill:300:300"));
        assert_eq!((fill.scaled, fill.output), ((600, 300), (300, 300)));
        assert_eq!(plan(3000, 2000, &options("c:0.5:0.25")).crop, Some((1500, 500)));
        assert_eq!(
            plan(
                100,
                100,
                &Options { crop: Some(Crop { width: 0.0, height: 0.0, gravity: None }), ..Options::default() }
            )
            .crop,
            None
        );
    }

    #[test]
    fn gravity_places_the_cut_from_its_edge_inward() {
        let at = |g: &str, x: f64, y: f64, scale: f64| {
            let kind = match g {
                "no" => GravityKind::North,
                "so" => GravityKind::South,
                "ea" => GravityKind::East,
                "we" => GravityKind::West,
                "nowe" => GravityKind::NorthWest,
                "soea" => GravityKind::SouthEast,
                "fp" => GravityKind::FocusPoint,
                _ => GravityKind::Center,
            };
            position((600, 300), (300, 300), &Gravity { kind, x, y }, scale)
        };
        assert_eq!(at("ce", 0.0, 0.0, 1.0), (150, 0));
        assert_eq!(at("we", 0.0, 0.0, 1.0), (0, 0));
        assert_eq!(at("ea", 0.0, 0.0, 1.0), (300, 0));
        assert_eq!(at("we", 20.0, 0.0, 1.0), (20, 0));
        assert_eq!(at("ea", 20.0, 0.0, 2.0), (260, 0), "pixel offsets scale with dpr, inward from the east edge");
        assert_eq!(at("ce", 0.1, 0.0, 1.0), (210, 0), "fractions are of the outer size");
        assert_eq!(at("fp", 0.0, 0.5, 1.0), (0, 0), "clamped inside");
        assert_eq!(at("fp", 0.75, 0.5, 1.0), (300, 0));
        assert_eq!(at("fp", 0.5, 0.5, 1.0), (150, 0));
    }

    #[test]
    fn smart_gravity_finds_the_detail() {
        // A flat grey field with a checkerboard patch near the right edge.
        let (w, h) = (400u32, 100u32);
        let mut data = vec![128u8; (w * h * 3) as usize];
        for y in 20..80 {
            for x in 300..360 {
                let v = if (x / 4 + y / 4) % 2 == 0 { 0 } else { 255 };
                let i = ((y * w + x) * 3) as usize;
                data[i..i + 3].copy_from_slice(&[v, v, v]);
            }
        }
        let p = Pixels { width: w, height: h, channels: 3, data };
        let (x, _) = smart_offset(&p, (100, 100)).unwrap();
        assert!((260..=300).contains(&x), "{x}");
    }

    #[test]
    fn a_watermark_sits_where_and_as_strongly_as_asked() {
        let grey = Pixels { width: 100, height: 50, channels: 3, data: vec![100; 100 * 50 * 3] };
        let red = Pixels { width: 10, height: 10, channels: 4, data: [255, 0, 0, 255].repeat(100) };
        let at = |p: &Pixels, x: u32, y: u32| p.data[((y * p.width + x) * 3) as usize];
        let wm = |opacity, position, x, y, scale| Watermark { opacity, position, x, y, scale };
        let p = overlay(grey.clone(), &red, &wm(1.0, Some(GravityKind::SouthEast), 5.0, 5.0, 0.0), 1.0).unwrap();
        assert_eq!((at(&p, 85, 35), at(&p, 84, 35), at(&p, 94, 44), at(&p, 95, 45)), (255, 100, 255, 100));
        let half = overlay(grey.clone(), &red, &wm(0.5, Some(GravityKind::NorthWest), 0.0, 0.0, 0.0), 1.0).unwrap();
        assert_eq!((at(&half, 0, 0), half.data[1]), (178, 50), "half way from grey to red");
        let scaled = overlay(grey.clone(), &red, &wm(1.0, Some(GravityKind::NorthWest), 0.0, 0.0, 0.5), 1.0).unwrap();
        assert_eq!((at(&scaled, 49, 49), at(&scaled, 50, 0)), (255, 100), "half the width: 50 px");
        let tiled = overlay(grey, &red, &wm(1.0, None, 10.0, 15.0, 0.0), 1.0).unwrap();
        let reds =
            (0..100).flat_map(|x| (0..50).map(move |y| (x, y))).filter(|&(x, y)| at(&tiled, x, y) == 255).count();
        assert_eq!(reds, 5 * 2 * 100, "5 columns x 2 rows of 10x10 tiles");
    }

    #[test]
    fn blur_smooths_and_sharpen_steepens_an_edge() {
        let data: Vec<u8> = (0..40u32)
            .flat_map(|x| {
                let v = if x < 20 { 50 } else { 200 };
                [v, v, v]
            })
            .collect();
        let edge = Pixels { width: 40, height: 1, channels: 3, data };
        let b = edge.blur(3.0);
        assert!(b.data[18 * 3] > 50 && b.data[21 * 3] < 200, "blurred across the edge");
        assert_eq!((b.data[0], b.data[39 * 3]), (50, 200), "flat areas stay");
        let s = edge.blur(2.0).sharpen(2.0);
        let soft = edge.blur(2.0);
        let steep = |p: &Pixels| i32::from(p.data[21 * 3]) - i32::from(p.data[18 * 3]);
        assert!(steep(&s) > steep(&soft));
        assert_eq!(edge.blur(0.0), edge);
    }
}
