//! The WebSocket API end to end, in one process: a real client connects through the gateway,
//! which invokes the real `live` handler (authorizer and routes, on the in-memory ports) through
//! a Lambda invoke API; the notifier's real `@connections` adapter (the AWS SDK) pushes through
//! the gateway's management API to the client.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use axum::Router;
use axum::extract::{Path, State};
use futures_util::{SinkExt, StreamExt};
use local_gateway::live::LiveApi;
use local_gateway::{Gateway, router};
use matbakh_api::auth::JwtVerifier;
use matbakh_api::dev_keys::DevKey;
use matbakh_app::fakes::InMemoryLive;
use matbakh_app::live::Entry;
use matbakh_app::ports::{Push, Pushed};
use matbakh_core::clock::SystemClock;
use matbakh_core::ids::UserId;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "matbakh-web";

struct Stack {
    addr: SocketAddr,
    key: DevKey,
    fakes: Arc<InMemoryLive>,
    entry: Entry,
    /// The route events the function saw (`CONNECT`, `MESSAGE`, `DISCONNECT`), in order.
    events: mpsc::UnboundedReceiver<String>,
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap()
    });
    addr
}

async fn stack() -> Stack {
    let key = DevKey::generate().unwrap();
    let fakes = Arc::new(InMemoryLive::default());
    let entry = Entry { connections: fakes.clone(), clock: Arc::new(SystemClock) };
    let sockets = Arc::new(live::Sockets {
        entry: entry.clone(),
        keys: Arc::new(live::Keys::fixed(JwtVerifier::new(&key.jwks(), ISSUER, AUDIENCE).unwrap())),
        admins: Arc::new(Default::default()),
    });
    let (tx, events) = mpsc::unbounded_channel();
    let lambda = Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(
                |State((sockets, tx)): State<(Arc<live::Sockets>, mpsc::UnboundedSender<String>)>,
                 Path(name): Path<String>,
                 axum::Json(event): axum::Json<Value>| async move {
                    assert_eq!(name, "live");
                    let answer = live::handle(&sockets, event.clone()).await;
                    if let Some(kind) =
                        event["requestContext"]["eventType"].as_str().filter(|_| event["type"].is_null())
                    {
                        let _ = tx.send(kind.to_owned());
                    }
                    axum::Json(answer)
                },
            ),
        )
        .with_state((sockets, tx));
    let lambda_addr = serve(lambda).await;
    let gw = Gateway {
        verifier: JwtVerifier::new(&key.jwks(), ISSUER, AUDIENCE).unwrap(),
        lambda_endpoint: format!("http://{lambda_addr}"),
        live: Some(Arc::new(LiveApi::new(
            "live",
            matbakh_core::sigv4::Credentials {
                access_key_id: "local".into(),
                secret_access_key: "local".into(),
                session_token: None,
            },
        ))),
        ..crate::bare(&key)
    };
    let addr = serve(router(Arc::new(gw))).await;
    Stack { addr, key, fakes, entry, events }
}

/// A connect request offering `protocols`, with `query`.
fn request(addr: SocketAddr, protocols: Option<&str>, query: &str) -> http::Request<()> {
    let mut req = format!("ws://{addr}/live{query}").into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut().insert("sec-websocket-protocol", p.parse().unwrap());
    }
    req
}

fn refused_with(result: Result<impl std::fmt::Debug, WsError>) -> u16 {
    match result {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `user`'s socket, open (the function saw `$connect`), and its connection id.
async fn open_socket(s: &mut Stack, user: &str) -> (Ws, String) {
    let token = s.key.mint(user, ISSUER, AUDIENCE, 600).unwrap();
    let offered = format!("matbakh.live.v1, bearer.{token}");
    let (ws, resp) = tokio_tungstenite::connect_async(request(s.addr, Some(&offered), "")).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "matbakh.live.v1", "the token is never echoed back");
    assert_eq!(s.events.recv().await.as_deref(), Some("CONNECT"));
    let sockets = s.fakes.sockets.lock().unwrap().clone();
    let (id, (socket, _)) = sockets.iter().next().expect("the socket was recorded");
    assert_eq!(socket.user, UserId::parse(user).unwrap());
    (ws, id.clone())
}

/// The notifier's `@connections` adapter, pointed at the gateway.
fn push_client(addr: SocketAddr) -> notifier::adapters::ApiPush {
    push_client_with(addr, "local")
}

/// The same, signing with `secret` (the gateway takes the stack's: `local`).
fn push_client_with(addr: SocketAddr, secret: &str) -> notifier::adapters::ApiPush {
    let creds = Credentials::new("local", secret, None, None, "test");
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-central-1"))
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .http_client(matbakh_aws::http::sdk_http_client())
        .build();
    notifier::adapters::ApiPush::new(&sdk, &format!("http://{addr}/live"))
}

#[tokio::test]
async fn a_socket_opens_with_a_token_receives_pushes_and_is_gone_after_it_closes() {
    let mut s = stack().await;
    let (mut ws, id) = open_socket(&mut s, "alice").await;

    let push = push_client(s.addr);
    assert_eq!(push.push(&id, br#"{"type":"file.ready"}"#).await.unwrap(), Pushed::Sent);
    match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), r#"{"type":"file.ready"}"#),
        other => panic!("{other:?}"),
    }
    ws.send(Message::Text("ping".into())).await.unwrap();
    assert_eq!(s.events.recv().await.as_deref(), Some("MESSAGE"));

    ws.close(None).await.unwrap();
    assert_eq!(s.events.recv().await.as_deref(), Some("DISCONNECT"));
    assert!(!s.fakes.is_open(&id), "$disconnect forgot it");
    assert_eq!(push.push(&id, b"late").await.unwrap(), Pushed::Gone, "410 GoneException, as API Gateway answers");
}

#[tokio::test]
async fn the_management_api_takes_only_calls_signed_with_the_stacks_credentials() {
    let mut s = stack().await;
    let (mut ws, id) = open_socket(&mut s, "alice").await;

    // Unsigned, as any local process could send it: 403, as API Gateway answers.
    let url = format!("http://{}/live/@connections/{id}", s.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for forged in [http.post(&url).body("forged"), http.delete(&url), http.get(&url)] {
        let resp = forged.send().await.unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.headers()["x-amzn-errortype"], "ForbiddenException");
    }
    // Signed with another secret: refused too (the SDK does not retry a 403).
    assert!(push_client_with(s.addr, "not-the-secret").push(&id, b"forged").await.is_err());

    // The socket is still open and got nothing of that: the first message is the signed one.
    assert_eq!(push_client(s.addr).push(&id, b"signed").await.unwrap(), Pushed::Sent);
    match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), "signed"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connects_are_refused_without_the_header_with_a_bad_token_and_with_a_used_ticket() {
    let s = stack().await;
    assert_eq!(refused_with(tokio_tungstenite::connect_async(request(s.addr, None, "")).await), 401);
    let forged = DevKey::generate().unwrap().mint("alice", ISSUER, AUDIENCE, 600).unwrap();
    let bad = format!("matbakh.live.v1, bearer.{forged}");
    assert_eq!(refused_with(tokio_tungstenite::connect_async(request(s.addr, Some(&bad), "")).await), 403);
    assert!(s.fakes.sockets.lock().unwrap().is_empty());

    let (ticket, _) = s.entry.ticket(&UserId::parse("bob").unwrap()).await.unwrap();
    let query = format!("?ticket={}", ticket.expose());
    let (ws, _) = tokio_tungstenite::connect_async(request(s.addr, Some("matbakh.live.v1"), &query)).await.unwrap();
    assert_eq!(s.fakes.sockets.lock().unwrap().len(), 1);
    let again = tokio_tungstenite::connect_async(request(s.addr, Some("matbakh.live.v1"), &query)).await;
    assert_eq!(refused_with(again), 403, "a ticket opens one socket");
    drop(ws);
}
