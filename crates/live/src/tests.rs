//! The authorizer, the routes and the tickets route on the in-memory ports, with tokens made by
//! a dev key pair (as the identity provider would sign them).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use matbakh_api::Authenticator;
use matbakh_api::dev_keys::DevKey;
use matbakh_app::fakes::InMemoryLive;
use matbakh_core::clock::SystemClock;
use tower::ServiceExt;

use super::*;
use crate::tickets::{Api, Tickets};

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "matbakh-web";
const ARN: &str = "arn:aws:execute-api:eu-central-1:123456789012:abc123/live/$connect";

struct World {
    key: DevKey,
    fakes: Arc<InMemoryLive>,
    sockets: Sockets,
}

fn world() -> World {
    let key = DevKey::generate().unwrap();
    let fakes = Arc::new(InMemoryLive::default());
    let sockets = Sockets {
        entry: Entry { connections: fakes.clone(), clock: Arc::new(SystemClock) },
        keys: Arc::new(crate::Keys::fixed(JwtVerifier::new(&key.jwks(), ISSUER, AUDIENCE).unwrap())),
        admins: Arc::new(BTreeSet::from(["root".to_owned()])),
    };
    World { key, fakes, sockets }
}

fn connect_request(protocols: Option<&str>, ticket: Option<&str>) -> Value {
    let mut event = json!({
        "type": "REQUEST", "methodArn": ARN,
        "headers": {"Host": "abc123.execute-api.eu-central-1.amazonaws.com"},
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c-1"}
    });
    if let Some(p) = protocols {
        event["headers"]["Sec-WebSocket-Protocol"] = json!(p);
    }
    if let Some(t) = ticket {
        event["queryStringParameters"] = json!({ "ticket": t });
    }
    event
}

fn effect(answer: &Value) -> &str {
    answer["policyDocument"]["Statement"][0]["Effect"].as_str().unwrap()
}

#[tokio::test]
async fn a_valid_token_offered_as_a_subprotocol_opens_the_socket() {
    let w = world();
    let token = w.key.mint("alice", ISSUER, AUDIENCE, 600).unwrap();
    let offered = format!("{SUBPROTOCOL}, bearer.{token}");
    let answer = handle(&w.sockets, connect_request(Some(&offered), None)).await;
    assert_eq!(effect(&answer), "Allow");
    assert_eq!(answer["policyDocument"]["Statement"][0]["Resource"], ARN);
    assert_eq!(answer["context"], json!({"sub": "alice", "admin": "false"}));

    let admin = w.key.mint("root", ISSUER, AUDIENCE, 600).unwrap();
    let answer = handle(&w.sockets, connect_request(Some(&format!("bearer.{admin}")), None)).await;
    assert_eq!(answer["context"]["admin"], "true");
}

#[tokio::test]
async fn the_authorizer_refuses_missing_expired_foreign_and_forged_tokens() {
    let w = world();
    let expired = w.key.mint("alice", ISSUER, AUDIENCE, -300).unwrap();
    let foreign_audience = w.key.mint("alice", ISSUER, "another-app", 600).unwrap();
    let foreign_issuer = w.key.mint("alice", "https://evil.example", AUDIENCE, 600).unwrap();
    let other_key = DevKey::generate().unwrap().mint("alice", ISSUER, AUDIENCE, 600).unwrap();
    let cases = [
        ("nothing", connect_request(None, None)),
        ("only the subprotocol", connect_request(Some(SUBPROTOCOL), None)),
        ("expired", connect_request(Some(&format!("bearer.{expired}")), None)),
        ("another audience", connect_request(Some(&format!("bearer.{foreign_audience}")), None)),
        ("another issuer", connect_request(Some(&format!("bearer.{foreign_issuer}")), None)),
        ("another key", connect_request(Some(&format!("bearer.{other_key}")), None)),
        ("garbage", connect_request(Some("bearer.not-a-jwt"), None)),
        ("a made-up ticket", connect_request(None, Some(&"A".repeat(43)))),
        ("a malformed ticket", connect_request(None, Some("../etc"))),
    ];
    for (what, event) in cases {
        let answer = handle(&w.sockets, event).await;
        assert_eq!(effect(&answer), "Deny", "{what}");
        assert!(answer.get("context").is_none(), "{what}: no identity for a refused connect");
    }
}

#[tokio::test]
async fn a_ticket_from_the_http_route_opens_one_socket_once() {
    let w = world();
    let api = Api {
        cases: Tickets { entry: w.sockets.entry.clone(), url: "wss://live.example/live".into() },
        auth: Arc::new(Authenticator::Jwks(JwtVerifier::new(&w.key.jwks(), ISSUER, AUDIENCE).unwrap())),
    };
    let post = |token: Option<String>| {
        let mut req = Request::builder().method("POST").uri("/v1/live/tickets");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.body(Body::empty()).unwrap()
    };
    let refused = tickets::routes(api.clone()).oneshot(post(None)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(w.fakes.tickets.lock().unwrap().is_empty());

    let token = w.key.mint("alice", ISSUER, AUDIENCE, 600).unwrap();
    let answer = tickets::routes(api).oneshot(post(Some(token))).await.unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(answer.into_body(), 4096).await.unwrap()).unwrap();
    let ticket = body["ticket"].as_str().unwrap();
    assert_eq!(body["url"], format!("wss://live.example/live?ticket={ticket}"));
    assert_eq!(body["expiresIn"], matbakh_core::live::TICKET_TTL_SECONDS);

    let first = handle(&w.sockets, connect_request(None, Some(ticket))).await;
    assert_eq!((effect(&first), first["context"]["sub"].as_str()), ("Allow", Some("alice")));
    let reused = handle(&w.sockets, connect_request(None, Some(ticket))).await;
    assert_eq!(effect(&reused), "Deny", "a ticket opens one socket");
}

fn route_event(event_type: &str, authorizer: Option<Value>, protocols: Option<&str>) -> Value {
    let mut event = json!({
        "requestContext": {"routeKey": format!("${}", event_type.to_lowercase()), "eventType": event_type,
                           "connectionId": "c-7"},
        "headers": {}
    });
    if let Some(a) = authorizer {
        event["requestContext"]["authorizer"] = a;
    }
    if let Some(p) = protocols {
        event["headers"]["sec-websocket-protocol"] = json!(p);
    }
    event
}

#[tokio::test]
async fn connect_remembers_the_socket_and_disconnect_forgets_it() {
    let w = world();
    let context = json!({"principalId": "alice", "sub": "alice", "admin": "false"});
    let answer =
        handle(&w.sockets, route_event("CONNECT", Some(context.clone()), Some("matbakh.live.v1, bearer.x"))).await;
    assert_eq!(answer, json!({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": SUBPROTOCOL}}));
    assert!(w.fakes.is_open("c-7"));
    let sockets = w.fakes.sockets.lock().unwrap().get("c-7").map(|(c, _)| c.clone()).unwrap();
    assert_eq!((sockets.user.as_str(), sockets.admin), ("alice", false));

    let answer = handle(&w.sockets, route_event("MESSAGE", Some(context.clone()), None)).await;
    assert_eq!(answer["statusCode"], 200, "what a client sends is ignored");
    let answer = handle(&w.sockets, route_event("DISCONNECT", Some(context), None)).await;
    assert_eq!(answer["statusCode"], 200);
    assert!(!w.fakes.is_open("c-7"));

    let unvouched = handle(&w.sockets, route_event("CONNECT", None, None)).await;
    assert_eq!(unvouched["statusCode"], 403, "no authorizer, no socket");
    assert!(!w.fakes.is_open("c-7"));
}

/// Serves a JWKS document that the test can change; counts the fetches.
async fn jwks_server(doc: String) -> (String, Arc<std::sync::Mutex<String>>, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let doc = Arc::new(std::sync::Mutex::new(doc));
    let fetches = Arc::new(AtomicUsize::new(0));
    type Served = (Arc<std::sync::Mutex<String>>, Arc<AtomicUsize>);
    let app = axum::Router::new()
        .fallback(|axum::extract::State((doc, fetches)): axum::extract::State<Served>| async move {
            fetches.fetch_add(1, Ordering::SeqCst);
            doc.lock().unwrap().clone()
        })
        .with_state((doc.clone(), fetches.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/.well-known/jwks.json"), doc, fetches)
}

/// Both keys' JWKS in one document, as an issuer publishes during a rotation.
fn both(a: &DevKey, b: &DevKey) -> String {
    let keys = |k: &DevKey| serde_json::from_str::<Value>(&k.jwks()).unwrap()["keys"][0].clone();
    json!({"keys": [keys(a), keys(b)]}).to_string()
}

#[tokio::test]
async fn a_token_of_a_rotated_in_key_refetches_the_issuers_keys_once() {
    use std::sync::atomic::Ordering;
    let (old, new) = (DevKey::generate().unwrap(), DevKey::generate().unwrap());
    let (url, doc, fetches) = jwks_server(old.jwks()).await;
    let keys = Keys::fetched_refetching_after(&url, ISSUER, AUDIENCE, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    let by_old = old.mint("alice", ISSUER, AUDIENCE, 600).unwrap();
    assert_eq!(keys.verify(&by_old).await.unwrap(), "alice");
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "a known key needs no fetch");

    // The issuer publishes its new key and signs with it: the first such token fetches again.
    *doc.lock().unwrap() = both(&old, &new);
    let by_new = new.mint("bob", ISSUER, AUDIENCE, 600).unwrap();
    assert_eq!(keys.verify(&by_new).await.unwrap(), "bob");
    assert_eq!(keys.verify(&by_new).await.unwrap(), "bob");
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "once");
    // A refetch never makes a bad token good: another audience is still refused.
    let elsewhere = new.mint("bob", ISSUER, "another-app", 600).unwrap();
    assert!(keys.verify(&elsewhere).await.is_err());
}

#[tokio::test]
async fn tokens_naming_made_up_keys_cannot_make_every_connect_fetch() {
    use std::sync::atomic::Ordering;
    let (known, forged) = (DevKey::generate().unwrap(), DevKey::generate().unwrap());
    let (url, doc, fetches) = jwks_server(known.jwks()).await;
    let keys = Keys::fetched(&url, ISSUER, AUDIENCE).await.unwrap();
    *doc.lock().unwrap() = both(&known, &forged); // even if the issuer had it, not within the interval
    for _ in 0..5 {
        let token = forged.mint("mallory", ISSUER, AUDIENCE, 600).unwrap();
        assert!(keys.verify(&token).await.unwrap_err().contains("trusted key"));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched at start only, within JWKS_REFETCH_SECONDS");
}
