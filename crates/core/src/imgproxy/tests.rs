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
        "resize:fill:300:200:0/gravity:sm/dpr:1/q:0/sm:1/exp:1900000000/eth:0/kcr:1/scp:1/ph:0/pix:1",
        "rt:fit/rs:fill:300:200:false:0/g:sm/ar:1",
        "s:300:200/resizing_type:fill/g:sm",
    ];
    let first = canonical(same[0]);
    assert_eq!(first, "rt:fill,w:300,h:200,g:sm");
    for u in &same[1..] {
        assert_eq!(canonical(u), first, "{u}");
    }
    // No size: the resizing type, gravity and extending cannot matter (enlarging can: dpr, zoom
    // and minimum sizes scale without one).
    assert_eq!(canonical("rt:fill/g:no/ex:1:so/exar:1"), "_");
    assert_eq!(canonical("el:1/dpr:2"), "el:1,dpr:2");
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
        "ex:1:sm",
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
    // An expiring URL names another result than the never-expiring one (a private file's
    // owner's URL must not store what its old public URLs find); `exp:0` never expires.
    let never = unsigned("/_/w:300/plain/users/u/f/a.jpg").unwrap();
    let expiring = unsigned(&format!("/_/w:300/exp:{}/plain/users/u/f/a.jpg", NOW + 60)).unwrap();
    let zero = unsigned("/_/w:300/exp:0/plain/users/u/f/a.jpg").unwrap();
    assert_eq!(expiring.result_key("e1", webp).as_str(), "results/users/u/f/a.jpg/e1/w:300,exp.webp");
    assert_ne!(never.result_key("e1", webp), expiring.result_key("e1", webp));
    assert_eq!(never.result_key("e1", webp), zero.result_key("e1", webp));
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

/// The rest of imgproxy's open-source options (v4): their arguments as imgproxy reads them,
/// their canonical form, and the defaults that leave the result alone.
#[test]
fn every_open_source_option_reads_as_imgproxy_reads_it() {
    let o = |opts: &str| unsigned(&format!("/_/{opts}/plain/users/u/f/a.jpg")).unwrap().options;
    // padding as CSS: right defaults to top, bottom to top, left to right.
    assert_eq!(o("pd:10").padding, [10, 10, 10, 10]);
    assert_eq!(o("pd:10:20").padding, [10, 20, 10, 20]);
    assert_eq!(o("pd:10:20:30").padding, [10, 20, 30, 20]);
    assert_eq!(o("padding:1:2:3:4").padding, [1, 2, 3, 4]);
    assert_eq!(o("rot:-90").rotate, 270);
    assert_eq!(o("rotate:450").rotate, 90);
    assert_eq!(o("fl:t").flip, (true, false));
    assert_eq!(o("fl::1").flip, (false, true));
    assert_eq!(o("bg:f0a").background, Some(Rgb([255, 0, 170])));
    assert_eq!(o("bg:1:2:3").background, Some(Rgb([1, 2, 3])));
    assert_eq!(o("bg:ff0000/bg:").background, None);
    let t = o("t:10:ffffff:t:f").trim.unwrap();
    assert_eq!((t.threshold, t.color, t.equal_hor, t.equal_ver), (10.0, Some(Rgb::WHITE), true, false));
    assert_eq!(o("t:5/t:").trim, None, "an empty threshold turns trimming off");
    assert_eq!(o("z:2").zoom, (2.0, 2.0));
    assert_eq!(o("zoom:1.5:2").zoom, (1.5, 2.0));
    assert_eq!(o("ex:1:no:10:5").extend, Some(Gravity { kind: GravityKind::North, x: 10.0, y: 5.0 }));
    assert_eq!(o("ex:1").extend, Some(Gravity::default()));
    assert_eq!(o("s:100:100:0:1:we:3").extend, Some(Gravity { kind: GravityKind::West, x: 3.0, y: 0.0 }));
    assert_eq!(o("rs:fit:100:100:t:t:so").extend.map(|g| g.kind), Some(GravityKind::South));
    assert_eq!(o("exar:1:fp:0.5:0.2").extend_aspect_ratio.map(|g| g.kind), Some(GravityKind::FocusPoint));
    assert_eq!(o("fq:jpg:70:webp:60/fq:jpeg:50").format_quality, [(Format::WebP, 60), (Format::Jpeg, 50)]);
    assert_eq!(o("skp:png:jpg/sp:jpeg").skip_processing, [SourceFormat::Jpeg, SourceFormat::Png]);
    assert_eq!(o("fn:menu%20card").filename.as_deref(), Some("menu card"));
    assert_eq!(o("fn:bWVuw7w:t").filename.as_deref(), Some("menü"));
    assert_eq!(o("fn:").filename, None);
    assert_eq!(o("mb:10000").max_bytes, 10_000);
    assert_eq!((o("mw:100/mh:50").min_width, o("mw:100/mh:50").min_height), (100, 50));
    assert!(o("raw:1").raw && o("att:t").return_attachment);
    assert!(!o("kcr:0").keep_copyright && !o("scp:0").strip_color_profile);

    assert_eq!(
        canonical("w:300/pd:10:20/rot:90/fl:1/bg:F00/pix:8/t:10::1/z:2/mw:50/mh:60/mb:5000/fq:webp:60:jpg:70"),
        "t:10::1:0,w:300,mw:50,mh:60,z:2:2,rot:90,fl:1:0,pd:10:20:10:20,bg:ff0000,pix:8,fq:jpg:70:webp:60,mb:5000"
    );
    assert_eq!(canonical("rs:fill:300:200/ex:1:so/exar:1"), "rt:fill,w:300,h:200,ex:1:so:0:0,exar:1:ce:0:0");
    assert_eq!(canonical("q:80/fq:jpg:70"), "q:80", "quality wins over format_quality");
    assert_eq!(canonical("w:300/kcr:0/scp:0/skp:png:jpg"), "w:300,kcr:0,scp:0,skp:jpg:png");
    assert_eq!(canonical("w:300/bl:3/raw:1/fn:Men%C3%BC/att:1/cb:2"), "raw:1,fn:Men%C3%BC,att:1,cb:2");
    assert_eq!(canonical("rot:360/fl:0:0/pd:0/pix:1/bg:/z:1:1"), "_");
}

#[test]
fn options_of_imgproxy_pro_and_security_options_are_refused_by_name() {
    for (segment, option) in [
        ("br:10", "br"),
        ("brightness:10", "brightness"),
        ("ra:lanczos3", "ra"),
        ("wmu:aHR0cA", "wmu"),
        ("ush:auto", "ush"),
        ("pg:2", "pg"),
        ("g:obj:face", "gravity"),
        ("msr:50", "msr"),
        ("max_result_dimension:100", "max_result_dimension"),
        ("sm:0", "strip_metadata"),
        ("ph:1", "preserve_hdr"),
        ("eth:1", "enforce_thumbnail"),
    ] {
        let e = unsigned(&format!("/_/{segment}/plain/users/u/f/a.jpg")).unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "unsupported_option"), "{segment}: {e}");
        assert!(e.to_string().starts_with(&format!("{option} is not available")), "{segment}: {e}");
    }
    for bad in [
        "rot:45",
        "rot:1.5",
        "fl:x",
        "fl:1:1:1",
        "bg:ggg",
        "bg:1:2",
        "bg:256:0:0",
        "pd:-1",
        "pd:1:2:3:4:5",
        "pd:4097",
        "pix:-2",
        "pix:4097",
        "t:x",
        "t:10:red",
        "z:0",
        "z:1:2:3",
        "z:101",
        "mw:-1",
        "mb:x",
        "fq:jpg",
        "fq:gif:50",
        "fq:jpg:101",
        "skp:",
        "skp:tiff",
        "raw:maybe",
        "fn:%zz",
        "fn:x:maybe",
        "fn:***:1",
        "exar:1:sm",
        "ex:maybe",
        "att:2",
    ] {
        let e = unsigned(&format!("/_/{bad}/plain/users/u/f/a.jpg")).unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "bad_argument"), "{bad}: {e}");
    }
    let long = "x".repeat(MAX_FILENAME_BYTES + 1);
    assert_eq!(unsigned(&format!("/_/fn:{long}/plain/users/u/f/a.jpg")).unwrap_err().code(), "bad_argument");
}
