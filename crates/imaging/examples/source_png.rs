//! Writes a corpus photo as the pipeline sees it (decoded, sRGB, upright) at WIDTH pixels as
//! PNG: the reference the AVIF fixtures were encoded from (`tests/fixtures/README.md`).
//! `cargo run -p matbakh-imaging --example source_png FILE WIDTH OUT.png`

use matbakh_imaging::{ImageLimits, load};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, width, out] = &args[..] else {
        eprintln!("usage: source_png FILE WIDTH OUT.png");
        std::process::exit(2);
    };
    let width: u32 = width.parse().expect("WIDTH is a number");
    let bytes = std::fs::read(file).expect("readable file");
    let source = load(&bytes, &ImageLimits::default(), width).expect("a decodable image");
    let pixels = source.resized_to(width).expect("resized");
    let color = if pixels.channels == 4 { image::ExtendedColorType::Rgba8 } else { image::ExtendedColorType::Rgb8 };
    image::save_buffer(out, &pixels.data, pixels.width, pixels.height, color).expect("PNG written");
}
