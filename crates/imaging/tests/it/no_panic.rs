//! No input makes the decode entry point panic (DECISIONS 10): arbitrary bytes behind each
//! format's magic, and real files with bytes flipped, cut or spliced. Plus every input the
//! fuzzer kept (`fuzz/corpus/decode`), so CI replays what `cargo fuzz` found.

use crate::common;
use common::{corpus, fixture};
use matbakh_imaging::{ImageLimits, inspect, load};
use proptest::prelude::*;

/// Small limits keep each case cheap; the checks are the same code paths.
const LIMITS: ImageLimits = ImageLimits { max_pixels: 4_000_000, max_frames: 50, max_bytes: 1 << 20 };

fn exercise(bytes: &[u8]) {
    // Either answer is fine; a panic fails the test.
    let _ = inspect(bytes, &LIMITS);
    let _ = load(bytes, &LIMITS, 320);
}

const MAGICS: [&[u8]; 7] = [
    b"\xFF\xD8\xFF",
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
    b"GIF89a",
    b"RIFF\0\0\0\0WEBPVP8 ",
    b"RIFF\0\0\0\0WEBPVP8L",
    b"RIFF\0\0\0\0WEBPVP8X",
    b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_behind_a_magic_number(magic in 0..MAGICS.len(), tail in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = MAGICS[magic].to_vec();
        bytes.extend(tail);
        exercise(&bytes);
    }

    #[test]
    fn real_files_with_damage(
        which in 0..6usize,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = match which {
            0..4 => corpus(["photos/panasonic-orientation6.jpg", "other/icc-profile.png", "other/icc-profile.jpeg", "other/anim-45-frames.gif"][which]),
            _ => fixture(["dune-420-bt709-limited.avif", "alpha-444-premultiplied.avif"][which - 4]),
        };
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        exercise(&bytes);
        let keep = cut.index(bytes.len());
        exercise(&bytes[..keep]);
    }
}

#[test]
fn the_fuzzers_findings_stay_harmless() {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../fuzz/corpus/decode");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        exercise(&std::fs::read(&path).unwrap());
        seen += 1;
    }
    assert!(seen > 0, "no inputs in {}", dir.display());
}
