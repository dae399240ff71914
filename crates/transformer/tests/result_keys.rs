//! The result keys of `tests/imgproxy/result-keys.json`, as the transformer computes them: the
//! CloudFront Function in `template.yaml` is held to the same file (`node --test tests/imgproxy/`),
//! so the S3-first origin finds what the transformer stored (DECISIONS 18).

use matbakh_core::imgproxy::{OutputChoice, Presets, SigningKeys, SourcePolicy, TransformUrl, UrlError};
use matbakh_imaging::transform::ENCODER_VERSION;

#[test]
fn the_shared_vectors_give_the_same_keys_here() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/imgproxy/result-keys.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let now = doc["now"].as_i64().unwrap();
    let policy = SourcePolicy { default_bucket: "files".into(), allowed: vec![("files".into(), "users/".into())] };
    let unsigned = SigningKeys::from_hex("", "").unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    let mut mapped = 0;
    for v in vectors {
        let path = v["path"].as_str().unwrap();
        let parsed = TransformUrl::parse(path, &unsigned, &Presets::default(), &policy, now);
        match v["key"].as_str() {
            Some("expired") => assert!(matches!(parsed, Err(UrlError::Expired(_))), "{path}"),
            Some(key) => {
                let url = parsed.unwrap_or_else(|e| panic!("{path}: {e}"));
                let output = OutputChoice::new(&url, v["accept"].as_str().unwrap());
                assert_eq!(url.result_key(ENCODER_VERSION, output), key, "{path}");
                mapped += 1;
            }
            // The function leaves these to the transformer, which refuses them (or knows presets).
            None => assert!(parsed.is_err(), "{path}"),
        }
    }
    assert!(mapped >= 10, "{mapped} vectors with keys");
}
