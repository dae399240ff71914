//! What the gateway does only in the dev stack: the web app's files at `/`, and the identity
//! provider's authorization code flow with PKCE.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use local_gateway::dev_idp::{DevIdp, s256};
use local_gateway::web::{WebApp, resolve};
use local_gateway::{Gateway, router};
use matbakh_api::auth::JwtVerifier;
use matbakh_api::dev_keys::DevKey;
use serde_json::Value;
use tower::ServiceExt;

const ORIGIN: &str = "http://127.0.0.1:3000";
/// S3 as browsers reach it in this stack (moto).
const FILES: &str = "http://127.0.0.1:5050";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-a-long-enough-verifier";

fn web_root() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let root = std::env::temp_dir().join(format!("gateway-web-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(root.join("js")).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html><title>app</title>").unwrap();
    std::fs::write(root.join("js/app.js"), "export {}").unwrap();
    std::fs::write(root.join(".env"), "SECRET=1").unwrap();
    std::fs::write(root.join("notes.txt"), "not part of the app").unwrap();
    root
}

fn app(key: &DevKey) -> (Router, JwtVerifier) {
    let key_copy = DevKey::from_pkcs8(key.pkcs8()).unwrap();
    let gw = Gateway {
        web_origins: vec![ORIGIN.into()],
        web: Some(WebApp::new(web_root(), r#"{"auth":{"mode":"oidc"}}"#.into(), FILES).unwrap()),
        idp: Some(DevIdp::new(key_copy, "iss".into(), "aud".into(), "web".into(), vec!["demo-user".into()])),
        ..crate::bare(key)
    };
    (router(Arc::new(gw)), JwtVerifier::new(&key.jwks(), "iss", "aud").unwrap())
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec())
}

fn form(path: &str, pairs: &[(&str, &str)]) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(pairs).unwrap()))
        .unwrap()
}

fn authorize_form<'a>(challenge: &'a str, redirect: &'a str, user: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", redirect),
        ("state", "s t&8"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("user", user),
    ]
}

/// Signs in as the form would; answers the code sent back to the app.
async fn code_for(app: &Router, challenge: &str) -> String {
    let redirect = format!("{ORIGIN}/");
    let (status, headers, _) =
        send(app, form("/dev/oidc/authorize", &authorize_form(challenge, &redirect, "demo-user"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{ORIGIN}/?code=")) && location.ends_with("&state=s%20t%268"), "{location}");
    let query = location.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    pairs.into_iter().find(|(k, _)| k == "code").unwrap().1
}

async fn exchange(app: &Router, code: &str, verifier: &str) -> (StatusCode, Value) {
    let redirect = format!("{ORIGIN}/");
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("client_id", "web"),
        ("code_verifier", verifier),
    ];
    let (status, _, body) = send(app, form("/dev/oidc/token", &pairs)).await;
    (status, serde_json::from_slice(&body).unwrap())
}

#[test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
fn the_s256_challenge_is_rfc_7636s() {
    // RFC 7636, appendix B.
    assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn a_pkce_sign_in_yields_a_token_the_authorizer_accepts_once() {
    let key = DevKey::generate().unwrap();
    let (app, verifier) = app(&key);
    let challenge = s256(VERIFIER);

    let page = format!(
        "/dev/oidc/authorize?response_type=code&client_id=web&redirect_uri={ORIGIN}/&state=x&code_challenge={challenge}&code_challenge_method=S256"
    );
    let (status, _, body) = send(&app, Request::get(page).body(Body::empty()).unwrap()).await;
    let html = String::from_utf8(body).unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<option value="demo-user">"#) && html.contains(r#"<label for="user">"#), "{html}");

    // A wrong verifier burns the code: the right one cannot use it afterwards.
    let code = code_for(&app, &challenge).await;
    let (status, body) = exchange(&app, &code, "another-verifier-of-forty-three-characters-xx").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let (status, _) = exchange(&app, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let code = code_for(&app, &challenge).await;
    let (status, body) = exchange(&app, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(verifier.verify(body["access_token"].as_str().unwrap()).unwrap(), "demo-user");
    let (status, _) = exchange(&app, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a code is good for one exchange");
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn sign_in_refuses_foreign_redirects_unknown_users_and_plain_challenges() {
    let key = DevKey::generate().unwrap();
    let (app, _) = app(&key);
    let challenge = s256(VERIFIER);
    let cases = [
        authorize_form(&challenge, "https://evil.example/", "demo-user"),
        authorize_form(&challenge, "http://127.0.0.1:3000.evil.example/", "demo-user"),
        authorize_form(&challenge, "http://127.0.0.1:3000/", "root"),
        authorize_form("short", "http://127.0.0.1:3000/", "demo-user"),
    ];
    for case in cases {
        let (status, headers, body) = send(&app, form("/dev/oidc/authorize", &case)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case:?}: {}", String::from_utf8_lossy(&body));
        assert!(!headers.contains_key(header::LOCATION));
    }
    let mut plain = authorize_form(&challenge, "http://127.0.0.1:3000/", "demo-user");
    plain[5].1 = "plain";
    assert_eq!(send(&app, form("/dev/oidc/authorize", &plain)).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_web_app_is_served_but_nothing_else_from_its_folder() {
    let key = DevKey::generate().unwrap();
    let (app, _) = app(&key);
    let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
    let (status, headers, body) = send(&app, get("/")).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, b"<!doctype html><title>app</title>".as_slice()));
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let (status, headers, _) = send(&app, get("/js/app.js")).await;
    assert_eq!(
        (status, headers[header::CONTENT_TYPE].to_str().unwrap()),
        (StatusCode::OK, "text/javascript; charset=utf-8")
    );
    let (status, _, body) = send(&app, get("/config.json")).await;
    assert_eq!(
        (status, serde_json::from_slice::<Value>(&body).unwrap()["auth"]["mode"].as_str()),
        (StatusCode::OK, Some("oidc"))
    );
    for path in ["/.env", "/notes.txt", "/js/../.env", "/js/%2e%2e/.env", "/missing.js", "/v1/files"] {
        let (status, _, _) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let root = std::path::Path::new("/srv/web");
    assert_eq!(resolve(root, "/a/b.css"), Some(root.join("a/b.css")));
    assert_eq!(resolve(root, "/a/"), Some(root.join("a/index.html")));
    assert_eq!(resolve(root, "/a/%2E%2E/b.css"), None);
    assert_eq!(resolve(root, "/a//b.css"), None);
    assert_eq!(resolve(root, "/p/demo-user"), Some(root.join("public.html")));
}

/// The pages URL paths show, as the web CDN's function shows them (`tests/web/routes.json`).
#[test]
fn public_pages_are_routed_as_the_web_cdn_routes_them() {
    let shared: Value = serde_json::from_str(include_str!("../../../../tests/web/routes.json")).unwrap();
    for case in shared["cases"].as_array().unwrap() {
        let (path, page) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
        assert_eq!(local_gateway::web::page(path), page, "{path}");
    }
}

/// `directive -> sources` of a policy as sent (a source listed twice counts once).
fn directives(policy: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    policy
        .split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace().map(str::to_owned);
            Some((words.next()?, words.collect()))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local AWS stack: scripts/test runs it"]
async fn the_web_app_is_served_with_its_content_security_policy() {
    let key = DevKey::generate().unwrap();
    let (app, _) = app(&key);
    // tests/web/csp.json, with the local origins: the API and the sign-in provider are the
    // gateway itself, S3 is the local server.
    let shared: Value = serde_json::from_str(include_str!("../../../../tests/web/csp.json")).unwrap();
    let expected: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = shared
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| {
            let local = |s: &str| match s {
                "{api}" | "{signIn}" | "{cdn}" | "{live}" => "'self'".to_owned(),
                "{files}" => FILES.to_owned(),
                other => other.to_owned(),
            };
            (k.clone(), v.as_array().unwrap().iter().map(|s| local(s.as_str().unwrap())).collect())
        })
        .collect();
    for path in ["/", "/js/app.js", "/config.json"] {
        let (status, headers, _) = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let policy = headers.get(header::CONTENT_SECURITY_POLICY).map(|v| v.to_str().unwrap()).unwrap_or_default();
        assert_eq!(directives(policy), expected, "{path}: {policy}");
        assert_eq!(
            (headers[header::X_FRAME_OPTIONS].to_str().unwrap(), headers[header::REFERRER_POLICY].to_str().unwrap()),
            ("DENY", "no-referrer"),
            "{path}"
        );
    }
}
