//! Decoded pixels and what is done to them: EXIF orientation, colour profile to sRGB, resize,
//! flattening alpha for JPEG.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::pixels::{U8x3, U8x4};
use fast_image_resize::{
    FilterType, IntoImageView, IntoImageViewMut, PixelTrait, PixelType, ResizeAlg, ResizeError, ResizeOptions, Resizer,
};

use crate::ImageError;

/// 8-bit sRGB pixels, 3 (RGB) or 4 (RGBA) channels, rows packed.
#[derive(Clone, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pixels({}x{}x{})", self.width, self.height, self.channels)
    }
}

impl Pixels {
    pub fn has_alpha(&self) -> bool {
        self.channels == 4
    }

    /// Applies EXIF orientation `o` (1 to 8), so the pixels stand the way the camera was held.
    pub fn orient(self, o: u8) -> Pixels {
        let (w, h, c) = (self.width as usize, self.height as usize, self.channels as usize);
        // Where the source pixel (x, y) lands, and the output's size.
        let transposed = matches!(o, 5..=8);
        let (ow, oh) = if transposed { (h, w) } else { (w, h) };
        if o <= 1 || o > 8 {
            return self;
        }
        let mut out = vec![0u8; self.data.len()];
        for y in 0..h {
            let row = &self.data[y * w * c..(y + 1) * w * c];
            for x in 0..w {
                let (nx, ny) = match o {
                    2 => (w - 1 - x, y),
                    3 => (w - 1 - x, h - 1 - y),
                    4 => (x, h - 1 - y),
                    5 => (y, x),
                    6 => (h - 1 - y, x),
                    7 => (h - 1 - y, w - 1 - x),
                    _ => (y, w - 1 - x), // 8
                };
                let at = (ny * ow + nx) * c;
                out[at..at + c].copy_from_slice(&row[x * c..x * c + c]);
            }
        }
        Pixels { width: ow as u32, height: oh as u32, channels: self.channels, data: out }
    }

    /// Converts from the embedded ICC profile to sRGB. A profile that does not parse is
    /// ignored (the pixels are taken as sRGB, as browsers do).
    pub fn to_srgb(mut self, icc: Option<&[u8]>) -> Pixels {
        let Some(profile) = icc.and_then(|p| qcms::Profile::new_from_slice(p, false)) else {
            return self;
        };
        let kind = if self.has_alpha() { qcms::DataType::RGBA8 } else { qcms::DataType::RGB8 };
        let srgb = qcms::Profile::new_sRGB();
        if let Some(t) = qcms::Transform::new(&profile, &srgb, kind, qcms::Intent::Perceptual) {
            t.apply(&mut self.data);
        }
        self
    }

    /// RGB on a white background (JPEG has no alpha).
    pub fn flatten(&self) -> Pixels {
        self.flatten_on([255, 255, 255])
    }

    /// Transparency laid on `bg`: RGB, no alpha left (imgproxy's flatten, `bg`).
    pub fn flatten_on(&self, bg: [u8; 3]) -> Pixels {
        if !self.has_alpha() {
            return self.clone();
        }
        let data = self
            .data
            .chunks_exact(4)
            .flat_map(|p| {
                let a = u32::from(p[3]);
                let blend = |v: u8, b: u8| ((u32::from(v) * a + u32::from(b) * (255 - a) + 127) / 255) as u8;
                [blend(p[0], bg[0]), blend(p[1], bg[1]), blend(p[2], bg[2])]
            })
            .collect();
        Pixels { width: self.width, height: self.height, channels: 3, data }
    }

    /// RGBA (for encoders and hashes that want four channels).
    pub fn to_rgba(&self) -> Pixels {
        if self.has_alpha() {
            return self.clone();
        }
        let data = self.data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
        Pixels { width: self.width, height: self.height, channels: 4, data }
    }

    /// A copy resized to `width` x `height` (Lanczos3; alpha handled premultiplied).
    pub fn resize(&self, width: u32, height: u32) -> Result<Pixels, ImageError> {
        let kind = if self.has_alpha() { PixelType::U8x4 } else { PixelType::U8x3 };
        let src =
            ImageRef::new(self.width, self.height, &self.data, kind).map_err(|e| ImageError::Resize(e.to_string()))?;
        let mut dst = Image::new(width.max(1), height.max(1), kind);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        let resized = if self.has_alpha() {
            resize_as::<U8x4>(&src, &mut dst, &options)
        } else {
            resize_as::<U8x3>(&src, &mut dst, &options)
        };
        resized.map_err(|e| ImageError::Resize(e.to_string()))?;
        Ok(Pixels { width: width.max(1), height: height.max(1), channels: self.channels, data: dst.into_vec() })
    }
}

/// Resizes as pixels of type `P`. `Resizer::resize` picks the type at run time, which links
/// its code for all thirteen pixel types the crate knows (2.5 MiB of the x86-64 thumbnailer);
/// pixels here are only ever RGB or RGBA, 8 bits a channel.
fn resize_as<P: PixelTrait>(src: &ImageRef, dst: &mut Image, options: &ResizeOptions) -> Result<(), ResizeError> {
    match (src.image_view::<P>(), dst.image_view_mut::<P>()) {
        (Some(src), Some(mut dst)) => Resizer::new().resize_typed(&src, &mut dst, options),
        _ => Err(ResizeError::PixelTypesAreDifferent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 image whose pixels are numbered 0..6 in the red channel.
    fn numbered() -> Pixels {
        Pixels { width: 3, height: 2, channels: 3, data: (0..6).flat_map(|i| [i, 0, 0]).collect() }
    }

    fn reds(p: &Pixels) -> Vec<u8> {
        p.data.chunks_exact(3).map(|c| c[0]).collect()
    }

    #[test]
    fn every_orientation_lands_the_corners_where_exif_says() {
        // 0 1 2
        // 3 4 5
        let cases: [(u8, (u32, u32), [u8; 6]); 8] = [
            (1, (3, 2), [0, 1, 2, 3, 4, 5]),
            (2, (3, 2), [2, 1, 0, 5, 4, 3]),
            (3, (3, 2), [5, 4, 3, 2, 1, 0]),
            (4, (3, 2), [3, 4, 5, 0, 1, 2]),
            (5, (2, 3), [0, 3, 1, 4, 2, 5]),
            (6, (2, 3), [3, 0, 4, 1, 5, 2]),
            (7, (2, 3), [5, 2, 4, 1, 3, 0]),
            (8, (2, 3), [2, 5, 1, 4, 0, 3]),
        ];
        for (o, size, want) in cases {
            let p = numbered().orient(o);
            assert_eq!(((p.width, p.height), reds(&p)), (size, want.to_vec()), "orientation {o}");
        }
    }

    /// Alpha is premultiplied while resizing (what fast_image_resize's general `Resizer::resize`
    /// does, which `resize_as` must do too): a transparent pixel's colour never bleeds into the
    /// partly covered pixels beside it, where plain averaging would mix red into the blue.
    #[test]
    fn resizing_keeps_a_transparent_pixels_colour_out_of_its_neighbours() {
        let transparent_red = [255, 0, 0, 0];
        let opaque_blue = [0, 0, 255, 255];
        let p = Pixels { width: 2, height: 1, channels: 4, data: [transparent_red, opaque_blue].concat() };
        let resized = p.resize(8, 1).unwrap();
        let pixels: Vec<&[u8]> = resized.data.chunks_exact(4).collect();
        assert!(pixels.iter().filter(|px| px[3] > 0 && px[3] < 255).count() >= 2, "{pixels:?}");
        for px in pixels.iter().filter(|px| px[3] > 0) {
            assert_eq!((px[0], px[1]), (0, 0), "no red in a pixel that shows: {pixels:?}");
            assert!(px[2] >= 250, "{pixels:?}");
        }
    }

    #[test]
    fn flattening_puts_transparency_on_white() {
        let p = Pixels { width: 2, height: 1, channels: 4, data: vec![0, 0, 0, 0, 10, 20, 30, 255] };
        assert_eq!(p.flatten().data, vec![255, 255, 255, 10, 20, 30]);
    }
}
