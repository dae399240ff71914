//! The vectors of `tests/imgproxy/result-keys.json`, as the transformer reads them: signatures
//! checked with the vectors' test key/salt pairs, the same result key for what maps, the same
//! status and reason for what is refused. The CloudFront Function in `template.yaml` is held to the
//! same file (`node --test tests/imgproxy/`), so the edge and the transformer share one grammar and
//! the S3-first origin finds what the transformer stored (DECISIONS 18, 29).

use matbakh_core::imgproxy::{OutputChoice, Presets, SigningKeys, SourcePolicy, TransformUrl};
use matbakh_imaging::transform::ENCODER_VERSION;

#[test]
fn the_shared_vectors_give_the_same_keys_and_refusals_here() {
    let file = &format!("{}/../../tests/imgproxy/result-keys.json", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let now = doc["now"].as_i64().unwrap();
    let keys = SigningKeys::from_hex(doc["keys"].as_str().unwrap(), doc["salts"].as_str().unwrap()).unwrap();
    assert!(!keys.is_empty());
    let policy = SourcePolicy { default_bucket: "files".into(), allowed: vec![("files".into(), "users/".into())] };
    let (mut mapped, mut refused) = (0, 0);
    for v in doc["vectors"].as_array().unwrap() {
        let path = v["path"].as_str().unwrap();
        let parsed = TransformUrl::parse(path, &keys, &Presets::default(), &policy, now);
        match v["key"].as_str() {
            Some(key) => {
                let url = parsed.unwrap_or_else(|e| panic!("{path}: {e}"));
                let output = OutputChoice::new(&url, v["accept"].as_str().unwrap());
                assert_eq!(url.result_key(ENCODER_VERSION, output).as_str(), key, "{path}");
                mapped += 1;
            }
            None => {
                let e = parsed.err().unwrap_or_else(|| panic!("{path} ({}) was accepted", v["why"]));
                let want = (v["status"].as_u64().unwrap() as u16, v["error"].as_str().unwrap());
                assert_eq!((e.status(), e.code()), want, "{path} ({}): {e}", v["why"]);
                refused += 1;
            }
        }
    }
    assert!(mapped >= 15 && refused >= 40, "{mapped} vectors with keys, {refused} refused");
}
