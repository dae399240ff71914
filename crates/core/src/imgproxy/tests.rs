use super::*;

const NOW: i64 = 1_800_000_000;

fn policy() -> SourcePolicy {
    SourcePolicy { default_bucket: "files".into(), allowed: vec![("files".into(), "users/".into())] }
}

fn unsigned(path: &str) -> Result<TransformUrl, UrlError> {
    TransformUrl::parse(path, &SigningKeys::from_hex("", "").unwrap(), &Presets::default(), &policy(), NOW)
}

fn canonical(options: &str) -> String {
    unsigned(&format!("/_/{options}/plain/users/u/f/a.jpg")).unwrap().options.canonical()
}

/// Signatures computed independently (Node's `crypto.createHmac`, and imgproxy's documented
/// example pair as the npm client `@imgproxy/imgproxy-node` 1.1.0 signs it).
#[test]
fn signatures_match_imgproxys_algorithm() {
    let hello = SigningKeys::from_hex("736563726574", "68656C6C6F").unwrap();
    for (sig, path) in [
        (
            "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8",
            "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png",
        ),
        (
            "v4il5rmSYrVOW341NliE_MPcqrwWLyWyeHNDz9YGFBs",
            "/rs:fill:300:400:0/g:sm/plain/http://example.com/images/curiosity.jpg@png",
        ),
        (
            "AfrOrF3gWeDA6VOlDG4TzxMv39O7MXnF4CXpKUwGqRM",
            "/fill/300/400/sm/0/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png",
        ),
    ] {
        assert_eq!(hello.verify(sig, path), Ok(()), "{path}");
        assert_eq!(hello.sign(path).as_deref(), Some(sig));
        // One character changed anywhere: refused.
        assert_eq!(hello.verify(sig, &path.replacen("300", "301", 1)), Err(UrlError::BadSignature));
        let other = if sig.starts_with('A') { "B" } else { "A" };
        assert_eq!(hello.verify(&format!("{other}{}", &sig[1..]), path), Err(UrlError::BadSignature));
    }
    let documented = SigningKeys::from_hex(
        "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881",
        "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5",
    )
    .unwrap();
    let path = "/f:webp/g:sm/h:200/rt:fill/w:300/aHR0cDovL2V4YW1wbGUuY29tL2ltYWdlcy9jdXJpb3NpdHkuanBn";
    assert_eq!(documented.verify("mFnHM3O0ewwcqNb_xfQvbL6X0s2OdcI-2M-Culkq16U", path), Ok(()));
}

#[test]
fn rotation_accepts_every_configured_pair_and_bad_config_is_refused() {
    let keys = SigningKeys::from_hex("aa01, bb02", "cc03,dd04").unwrap();
    let old = SigningKeys::from_hex("bb02", "dd04").unwrap();
    let path = "/w:300/plain/users/u/f/a.jpg";
    assert_eq!(keys.verify(&old.sign(path).unwrap(), path), Ok(()));
    assert_eq!(keys.verify(&keys.sign(path).unwrap(), path), Ok(()));
    assert!(SigningKeys::from_hex("aa01,bb02", "cc03").unwrap_err().contains("pair up"));
    assert!(SigningKeys::from_hex("zz", "cc03").unwrap_err().contains("not hex"));
    assert!(SigningKeys::from_hex("", "").unwrap().is_empty());
}

#[test]
fn a_signed_url_parses_and_a_tampered_one_is_403() {
    let keys = SigningKeys::from_hex("aa01", "cc03").unwrap();
    let path = "/rs:fill:300:200/plain/users/u/f/a.jpg@webp";
    let url = format!("/{}{path}", keys.sign(path).unwrap());
    let parsed = TransformUrl::parse(&url, &keys, &Presets::default(), &policy(), NOW).unwrap();
    assert_eq!(
        parsed.source,
        SourceRef { bucket: "files".into(), key: crate::ids::ObjectKey::checked("users/u/f/a.jpg".into()) }
    );
    assert_eq!(parsed.options.format, Some(Format::WebP));
    let tampered = url.replace("300", "3000");
    let e = TransformUrl::parse(&tampered, &keys, &Presets::default(), &policy(), NOW).unwrap_err();
    assert_eq!((e.clone(), e.status()), (UrlError::BadSignature, 403));
}

#[test]
fn both_source_forms_and_their_extensions() {
    // base64url of "users/u/f/a b@1.jpg", split by "/" as imgproxy allows.
    let b64 = URL_SAFE_NO_PAD.encode("users/u/f/a b@1.jpg");
    let (head, tail) = b64.split_at(7);
    let url = unsigned(&format!("/_/w:10/{head}/{tail}.png")).unwrap();
    assert_eq!((url.source.key.as_str(), url.options.format), ("users/u/f/a b@1.jpg", Some(Format::Png)));
    let url = unsigned("/_/w:10/plain/users/u/f/a%20b%401.jpg@avif").unwrap();
    assert_eq!((url.source.key.as_str(), url.options.format), ("users/u/f/a b@1.jpg", Some(Format::Avif)));
    let url = unsigned("/_/w:10/plain/s3://files/users/u/f/a.jpg").unwrap();
    assert_eq!((url.source.key.as_str(), url.options.format), ("users/u/f/a.jpg", None));
    // The extension overrides f:, and f:auto means "negotiate".
    assert_eq!(unsigned("/_/f:png/plain/users/u/f/a.jpg@jpg").unwrap().options.format, Some(Format::Jpeg));
    assert_eq!(unsigned("/_/f:auto/plain/users/u/f/a.jpg").unwrap().options.format, None);
    for bad in [
        "/_/w:10/plain/users/a@b@png",
        "/_/w:10/%%%.png",
        "/_/w:10/plain/",
        "/_/w:10",
        "nosig",
        "/_/w:10/enc/xyz",
        "/_/w:10/plain/users/u/f/%zz.jpg",
        "/_/w:10/plain/users/u/f/a%2",
        "/_/w:10/plain/users/u/f/%C0%AF.jpg",
    ] {
        let e = unsigned(bad).unwrap_err();
        assert_eq!(e.status(), 400, "{bad}: {e}");
    }
}

#[test]
fn only_allowed_buckets_and_prefixes_are_sources() {
    for (path, why) in [
        ("/_/w:10/plain/s3://other/users/u/a.jpg", "foreign bucket"),
        ("/_/w:10/plain/http://169.254.169.254/latest/meta-data", "an URL"),
        ("/_/w:10/plain/file:///etc/passwd", "a file URL"),
        ("/_/w:10/plain/users/../derived/x.jpg", "traversal"),
        ("/_/w:10/plain/users/u/%2E%2E/x.jpg", "escaped traversal"),
        ("/_/w:10/plain/quarantine/users/u/f/a.jpg", "outside the prefix"),
        ("/_/w:10/plain//users/u/f/a.jpg", "absolute"),
    ] {
        let e = unsigned(path).unwrap_err();
        assert_eq!((e.status(), e.code()), (403, "forbidden_source"), "{why}: {e}");
    }
}

#[test]
fn equivalent_urls_share_one_canonical_form() {
    let same = [
        "rs:fill:300:200/g:sm",
        "g:sm/w:300/h:200/rt:fill",
        "resize:fill:300:200:0/gravity:sm/dpr:1/q:0/sm:0/exp:1900000000",
        "rt:fit/rs:fill:300:200:false:0/g:sm/ar:1",
        "s:300:200/resizing_type:fill/g:sm",
    ];
    let first = canonical(same[0]);
    assert_eq!(first, "rt:fill,w:300,h:200,g:sm");
    for u in &same[1..] {
        assert_eq!(canonical(u), first, "{u}");
    }
    // No size: the resizing type, enlarge and gravity cannot matter.
    assert_eq!(canonical("rt:fill/el:1/g:no"), "_");
    // Gravity only matters where the result is cropped.
    assert_eq!(canonical("w:300/g:no"), canonical("w:300"));
    let distinct = [
        "w:300",
        "w:301",
        "w:300/el:1",
        "w:300/dpr:2",
        "rs:fill:300:200/g:no",
        "rs:fill:300:200/g:no:10",
        "rs:fill:300:200/g:fp:0.25:0.75",
        "c:100:50/w:300",
        "c:100:50:so/w:300",
        "w:300/q:70",
        "w:300/bl:2",
        "w:300/sh:0.5",
        "w:300/ar:0",
        "w:300/cb:v2",
        "w:300/wm:0.5:soea:10:10:0.2",
    ];
    let forms: std::collections::HashSet<String> = distinct.iter().map(|u| canonical(u)).collect();
    assert_eq!(forms.len(), distinct.len(), "{forms:?}");
}

#[test]
fn bad_options_are_400_naming_them() {
    let e = unsigned("/_/w:10/frobnicate:1/plain/users/u/f/a.jpg").unwrap_err();
    assert_eq!((e.status(), e.to_string()), (400, "unknown processing option \"frobnicate\"".to_owned()));
    for bad in [
        "w:abc",
        "w:-1",
        "w:",
        "q:101",
        "dpr:0",
        "dpr:nan",
        "rt:stretch",
        "g:middle",
        "g:fp:2:0",
        "g:sm:1",
        "el:maybe",
        "f:gif",
        "bl:-1",
        "rs:fit:1:2:0:0:x",
        "ex:1",
        "wm:2",
        "exp:soon",
        "pr:nope",
        // One number grammar with the CloudFront Function: digits, optional - and .digits.
        "w:+300",
        "q:+5",
        "w:0x10",
        "bl:.5",
        "c:1.",
        "dpr:1e0",
        "dpr:inf",
        "g:no:+1",
        "exp:+4102444800",
        "exp:99999999999999999999",
        "exp:9007199254740992",
        // Numbers JavaScript would print with an exponent.
        "c:0.0000001",
        "g:no:1000000000000000000000",
        // Over the caps.
        "bl:100.5",
        "bl:1000000000",
        "sh:10.01",
    ] {
        let e = unsigned(&format!("/_/{bad}/plain/users/u/f/a.jpg")).unwrap_err();
        assert_eq!(e.status(), 400, "{bad}: {e}");
    }
}

#[test]
fn numbers_print_alike_here_and_at_the_edge_and_strengths_are_capped() {
    assert_eq!(canonical("rs:fill:10:10/g:no:-0:0.000001"), "rt:fill,w:10,h:10,g:no:0:0.000001");
    assert_eq!(canonical("w:0010/g:no/c:123456789012345678901"), "c:123456789012345680000:0:no:0:0,w:10");
    assert_eq!(
        canonical(&format!("bl:{MAX_BLUR_SIGMA}/sh:{MAX_SHARPEN_SIGMA}")),
        format!("bl:{MAX_BLUR_SIGMA},sh:{MAX_SHARPEN_SIGMA}")
    );
    assert!(unsigned("/_/exp:-9007199254740991/plain/users/u/f/a.jpg").is_ok());
    let e = unsigned("/_/bl:101/plain/users/u/f/a.jpg").unwrap_err();
    assert_eq!((e.status(), e.to_string()), (400, "bad argument for blur: at most 100".to_owned()));
}

#[test]
fn expired_urls_are_403_and_live_ones_pass() {
    let e = unsigned(&format!("/_/exp:{}/plain/users/u/f/a.jpg", NOW - 1)).unwrap_err();
    assert_eq!((e.clone(), e.status()), (UrlError::Expired(NOW - 1), 403));
    assert!(unsigned(&format!("/_/exp:{NOW}/plain/users/u/f/a.jpg")).is_ok());
}

#[test]
fn presets_expand_in_place_and_default_applies_first() {
    let presets = Presets::parse("default=q:75/ar:0, thumb=rs:fill:160:160/g:sm,soft=bl:1").unwrap();
    let parse = |p: &str| TransformUrl::parse(p, &SigningKeys::from_hex("", "").unwrap(), &presets, &policy(), NOW);
    let o = parse("/_/pr:thumb:soft/q:90/plain/users/u/f/a.jpg").unwrap().options;
    assert_eq!((o.width, o.height, o.quality, o.blur, o.auto_rotate), (160, 160, 90, 1.0, false));
    assert_eq!(o.canonical(), canonical("rs:fill:160:160/g:sm/q:90/bl:1/ar:0"));
    // A later option overrides the preset; an earlier one is overridden by it.
    assert_eq!(parse("/_/w:10/pr:thumb/plain/users/u/f/a.jpg").unwrap().options.width, 160);
    assert_eq!(parse("/_/pr:thumb/w:10/plain/users/u/f/a.jpg").unwrap().options.width, 10);
    assert_eq!(parse("/_/pr:big/plain/users/u/f/a.jpg").unwrap_err(), UrlError::UnknownPreset("big".into()));
    assert!(Presets::parse("a=pr:b").unwrap_err().contains("cannot name presets"));
    assert!(Presets::parse("a=w:x").unwrap_err().contains("preset a"));
    assert!(Presets::parse("a").unwrap_err().contains("no '='"));
}

#[test]
fn result_keys_live_under_the_source_and_name_the_encoder() {
    let url = unsigned("/_/g:sm/rs:fill:300:200/cb:a%2Fb/plain/users/u/f/a.jpg").unwrap();
    let webp = OutputChoice::Explicit(Format::WebP);
    assert_eq!(
        url.result_key("e1", webp).as_str(),
        "results/users/u/f/a.jpg/e1/rt:fill,w:300,h:200,g:sm,cb:a%252Fb.webp"
    );
    // Asked by name or chosen from Accept: one result.
    let avif = OutputChoice::new(&url, "image/avif,image/webp,*/*");
    assert_eq!(url.result_key("e1", avif), url.result_key("e1", OutputChoice::Explicit(Format::Avif)));
    assert_eq!(url.result_key("e1", OutputChoice::new(&url, "image/webp,*/*")), url.result_key("e1", webp));
    let legacy = OutputChoice::new(&url, "image/png,image/*;q=0.8");
    assert!(url.result_key("e1", legacy).as_str().ends_with(".legacy"));
    assert_eq!((legacy.format(true), legacy.format(false)), (Format::Png, Format::Jpeg));
    assert!(url.result_key("e1", webp).as_str().starts_with(&result_prefix("users/u/f/a.jpg")));
    assert_ne!(url.result_key("e1", webp), url.result_key("e2", webp));
}

#[test]
fn urls_the_platform_signs_read_back_as_the_same_transform() {
    let keys = SigningKeys::from_hex("6b6579", "73616c74").unwrap();
    let presets = Presets::parse("card=rt:fill/w:400/h:300/g:sm").unwrap();
    let mut options = presets.options("card").unwrap();
    options.expires = Some(NOW + 3600);
    let key = "users/u/01JABCDEFGHJKMNPQRSTVWXYZ0/Menü 2026 (1).jpg";
    let url = signed_url("https://files.example/t/", &keys, &options, key, Format::WebP).unwrap();
    let path = url.strip_prefix("https://files.example/t").unwrap();
    let parsed = TransformUrl::parse(path, &keys, &Presets::default(), &policy(), NOW).unwrap();
    assert_eq!(parsed.source.key.as_str(), key);
    assert_eq!((parsed.options.width, parsed.options.height), (400, 300));
    assert_eq!((parsed.options.resizing_type, parsed.options.format), (ResizeType::Fill, Some(Format::WebP)));
    assert_eq!(parsed.options.canonical(), options.canonical(), "the same result key as the options asked");
    // Past its exp, or under other keys, it is refused.
    assert!(matches!(
        TransformUrl::parse(path, &keys, &Presets::default(), &policy(), NOW + 3601),
        Err(UrlError::Expired(_))
    ));
    let other = SigningKeys::from_hex("6f74686572", "73616c74").unwrap();
    assert_eq!(TransformUrl::parse(path, &other, &Presets::default(), &policy(), NOW), Err(UrlError::BadSignature));
    assert_eq!(signed_url("https://x", &SigningKeys::from_hex("", "").unwrap(), &options, key, Format::Jpeg), None);
}
