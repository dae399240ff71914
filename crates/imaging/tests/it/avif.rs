//! AVIF sources, as written by another encoder (libavif + libaom; `tests/fixtures/README.md`):
//! every layout (4:2:0, 4:2:2, 4:4:4, monochrome), depth (8, 10, 12 bits), range, matrix and
//! premultiplied alpha decodes to the photo it was made from, and becomes variants.

use crate::common;
use common::{corpus, fixture};
use matbakh_imaging::{
    DEFAULT_QUALITY, Disposition, Format, ImageError, ImageLimits, OutputFormat, Pixels, Quality, inspect, load, render,
};

/// The photo as the fixture's encoder got it (see the fixtures' README).
fn reference(photo: &str) -> Pixels {
    let source = load(&corpus(photo), &ImageLimits::default(), 320).unwrap();
    source.resized_to(320).unwrap()
}

fn decoded(name: &str) -> Pixels {
    let bytes = fixture(name);
    let probe = inspect(&bytes, &ImageLimits::default()).unwrap();
    assert_eq!(probe.format, Format::Avif, "{name}");
    let source = load(&bytes, &ImageLimits::default(), 320).unwrap();
    assert_eq!((source.width, source.height), (probe.width, probe.height), "{name}");
    source.pixels
}

/// PSNR over all channels, and the mean signed error per channel (a wrong matrix or range
/// shows as a bias even where the PSNR looks fine).
fn compare(a: &Pixels, b: &Pixels) -> (f64, Vec<f64>) {
    assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
    let ch = usize::from(a.channels);
    let (mut sq, mut bias) = (0f64, vec![0f64; ch]);
    for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
        let d = f64::from(*x) - f64::from(*y);
        sq += d * d;
        bias[i % ch] += d;
    }
    let n = a.data.len() as f64;
    let psnr = 10.0 * (255.0f64 * 255.0 / (sq / n).max(1e-9)).log10();
    (psnr, bias.into_iter().map(|b| b / (n / ch as f64)).collect())
}

#[test]
fn every_layout_depth_range_and_matrix_decodes_to_its_photo() {
    for (name, photo) in
        [("dune-420-bt709-limited.avif", "photos/dune.jpg"), ("ladybird-422-10bit-bt601.avif", "photos/ladybird.jpg")]
    {
        let (got, want) = (decoded(name), reference(photo));
        let (psnr, bias) = compare(&got, &want);
        // libavif's own decoder (avifdec) reaches 32.6 dB on the first: the rest is the encoder's loss.
        assert!(psnr > 31.0, "{name}: PSNR {psnr:.1} dB");
        assert!(bias.iter().all(|b| b.abs() < 1.0), "{name}: bias per channel {bias:?}");
    }
}

#[test]
fn lossless_identity_matrix_gives_back_the_exact_pixels() {
    let (got, want) = (decoded("ladybird-identity-lossless.avif"), reference("photos/ladybird.jpg"));
    assert_eq!(got, want);
}

#[test]
fn monochrome_twelve_bit_is_grey_and_follows_the_luma() {
    let got = decoded("pana-400-12bit.avif");
    assert!(got.data.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]), "not grey");
    // The encoder took BT.601 luma of the (upright) photo.
    let want = reference("photos/panasonic-orientation6.jpg");
    assert!(want.height > want.width, "the reference is upright (portrait)");
    let luma: Vec<u8> = want
        .data
        .chunks_exact(3)
        .flat_map(|p| {
            let y = 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
            [(y + 0.5) as u8; 3]
        })
        .collect();
    let (psnr, bias) = compare(&got, &Pixels { data: luma, ..want });
    assert!(psnr > 31.0 && bias[0].abs() < 1.0, "PSNR {psnr:.1} dB, bias {bias:?}");
}

#[test]
fn premultiplied_alpha_is_kept_and_undone() {
    let (got, want) = (decoded("alpha-444-premultiplied.avif"), reference("other/alpha.png"));
    let alpha = |p: &Pixels| p.data.chunks_exact(4).map(|px| px[3]).collect::<Vec<_>>();
    assert!(got.has_alpha() && want.has_alpha());
    assert_eq!(alpha(&got), alpha(&want), "alpha was encoded losslessly");
    assert!(alpha(&want).contains(&0) && alpha(&want).iter().any(|a| *a > 100), "partly transparent");
    // Colours compared as displayed over black (premultiplied), where invisible pixels do not count.
    let over_black = |p: &Pixels| Pixels {
        channels: 3,
        data: p
            .data
            .chunks_exact(4)
            .flat_map(|px| [0, 1, 2].map(|c| ((u32::from(px[c]) * u32::from(px[3]) + 127) / 255) as u8))
            .collect(),
        ..p.clone()
    };
    let (psnr, _) = compare(&over_black(&got), &over_black(&want));
    assert!(psnr > 31.0, "PSNR {psnr:.1} dB");
}

#[test]
fn an_avif_source_becomes_variants_in_every_format() {
    let fast = Quality { avif_speed: 10, ..DEFAULT_QUALITY };
    let r = render(&fixture("dune-420-bt709-limited.avif"), &ImageLimits::default(), &fast).unwrap();
    assert_eq!((r.width, r.height), (320, 200));
    let formats: Vec<_> = r.variants.iter().map(|v| (v.width, v.format)).collect();
    assert_eq!(formats, [(320, OutputFormat::Avif), (320, OutputFormat::WebP), (320, OutputFormat::Jpeg)]);
    assert!(!r.placeholder.is_empty());
}

#[test]
fn the_declared_size_is_checked_before_decoding_and_broken_files_are_refused() {
    let bytes = fixture("dune-420-bt709-limited.avif");
    let small = ImageLimits { max_pixels: 320 * 200 - 1, ..ImageLimits::default() };
    let e = inspect(&bytes, &small).unwrap_err();
    assert_eq!(e, ImageError::TooManyPixels { width: 320, height: 200, limit: 320 * 200 - 1 });
    assert_eq!(e.disposition(), Disposition::Quarantine);
    // Cut anywhere, or with the coded data damaged: an error with a reason, never a panic.
    for n in (0..bytes.len()).step_by(97) {
        assert!(load(&bytes[..n], &ImageLimits::default(), 320).is_err(), "cut at {n}");
    }
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    for b in &mut damaged[mid..mid + 64] {
        *b ^= 0x5A;
    }
    // Damaged entropy-coded data may still decode (to garbage), but must not panic.
    let _ = load(&damaged, &ImageLimits::default(), 320);
}
