//! Files the imaging tests read: the shared corpus and this crate's AVIF and HEIC fixtures.

#![allow(dead_code)] // not every test module uses all of these

/// A file of the image corpus (`../shared/corpus`, or `MATBAKH_CORPUS`).
pub fn corpus(rel: &str) -> Vec<u8> {
    let root = std::env::var("MATBAKH_CORPUS").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../../shared/corpus")
    });
    std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A file another encoder wrote (`tests/fixtures/README.md`).
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("tests/fixtures").join(name),
    )
    .unwrap()
}
