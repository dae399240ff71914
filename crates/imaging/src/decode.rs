//! Decoding, after the header passed the limits. JPEG goes through libjpeg-turbo with DCT
//! scaling: an 18 MP photo whose largest variant is 1920 px wide is decoded at 1/2 scale,
//! a quarter of the pixels and memory. PNG, GIF (first frame) and WebP go through `image`
//! with an allocation limit; AVIF through `rav1d` (`crate::avif`).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder};

use crate::ImageError;
use crate::pixels::Pixels;
use crate::probe::{Format, Probe};

/// libjpeg-turbo's scaling factors from 1/8 up (num/8).
const JPEG_SCALES: [usize; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// Decodes `bytes` so that the stored size is at least `min_size` (width, height) where the
/// format can decode smaller, and answers the pixels and the ICC profile.
pub fn decode(
    bytes: &[u8],
    probe: &Probe,
    min_size: (u32, u32),
    max_alloc: u64,
) -> Result<(Pixels, Option<Vec<u8>>), ImageError> {
    match probe.format {
        Format::Jpeg => jpeg(bytes, probe, min_size).map(|p| (p, probe.icc.clone())),
        Format::Png => {
            // Limited from the start: the constructor reads every chunk before the pixels.
            let decoder =
                image::codecs::png::PngDecoder::with_limits(Cursor::new(bytes), limits(max_alloc)).map_err(corrupt)?;
            generic(decoder, max_alloc)
        }
        Format::Gif => {
            let decoder = image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).map_err(corrupt)?;
            generic(decoder, max_alloc)
        }
        Format::WebP => {
            let decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).map_err(corrupt)?;
            generic(decoder, max_alloc)
        }
        // `max_alloc` is eight bytes per allowed pixel (see `ImageLimits`).
        Format::Avif => crate::avif::decode(bytes, max_alloc / 8).map(|p| (p, None)),
    }
}

fn corrupt(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(l) => ImageError::Corrupt(format!("over the decoder's memory limit ({l})")),
        other => ImageError::Corrupt(other.to_string()),
    }
}

fn limits(max_alloc: u64) -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_alloc);
    limits
}

fn generic(mut decoder: impl ImageDecoder, max_alloc: u64) -> Result<(Pixels, Option<Vec<u8>>), ImageError> {
    decoder.set_limits(limits(max_alloc)).map_err(corrupt)?;
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let (width, height) = (image.width(), image.height());
    let pixels = if image.color().has_alpha() {
        Pixels { width, height, channels: 4, data: image.into_rgba8().into_raw() }
    } else {
        Pixels { width, height, channels: 3, data: image.into_rgb8().into_raw() }
    };
    Ok((pixels, icc))
}

fn jpeg(bytes: &[u8], probe: &Probe, (min_width, min_height): (u32, u32)) -> Result<Pixels, ImageError> {
    let err = |e: turbojpeg::Error| ImageError::Corrupt(format!("JPEG: {e}"));
    let mut d = turbojpeg::Decompressor::new().map_err(err)?;
    // A progressive JPEG with thousands of scans is a known CPU bomb; real ones have about ten.
    d.set_scan_limit(500).map_err(err)?;
    let header = d.read_header(bytes).map_err(err)?;
    if (header.width, header.height) != (probe.width as usize, probe.height as usize) {
        return Err(ImageError::Corrupt("JPEG header disagrees with its frame".into()));
    }
    let num = JPEG_SCALES
        .iter()
        .copied()
        .find(|&n| {
            let f = turbojpeg::ScalingFactor::new(n, 8);
            f.scale(header.width) >= min_width as usize && f.scale(header.height) >= min_height as usize
        })
        .unwrap_or(8);
    let factor = turbojpeg::ScalingFactor::new(num, 8);
    d.set_scaling_factor(factor).map_err(err)?;
    let scaled = header.scaled(factor);
    let mut image = turbojpeg::Image {
        pixels: vec![0u8; 3 * scaled.width * scaled.height],
        width: scaled.width,
        pitch: 3 * scaled.width,
        height: scaled.height,
        format: turbojpeg::PixelFormat::RGB,
    };
    d.decompress(bytes, image.as_deref_mut()).map_err(err)?;
    Ok(Pixels { width: scaled.width as u32, height: scaled.height as u32, channels: 3, data: image.pixels })
}
