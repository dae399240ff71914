//! The decode entry point on arbitrary input: it may refuse, it must not crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matbakh_imaging::{ImageLimits, inspect, load};

const LIMITS: ImageLimits = ImageLimits { max_pixels: 4_000_000, max_frames: 50, max_bytes: 1 << 20 };

fuzz_target!(|data: &[u8]| {
    let _ = inspect(data, &LIMITS);
    let _ = load(data, &LIMITS, 320);
});
