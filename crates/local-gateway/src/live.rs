//! The WebSocket API's part in the local stack (issue 20), as API Gateway runs it deployed:
//!
//! - `GET /live` with `Upgrade: websocket`: a connect needs the `Sec-WebSocket-Protocol`
//!   header (the authorizer's identity source: 401 without it); the function is invoked as the
//!   REQUEST authorizer (a Deny is 403), then with `$connect` and the authorizer's context (a
//!   status other than 200 refuses the socket); the subprotocol the function answers with is
//!   the one the socket speaks. Text the client sends goes to `$default`; when the socket
//!   closes, `$disconnect` runs.
//! - `/live/@connections/{id}`, the management API the notifier's `LIVE_MANAGEMENT_URL` points
//!   at: `POST` sends the body to the socket, `DELETE` closes it, `GET` describes it; a socket
//!   that is not open answers 410 `GoneException`, as API Gateway does. As deployed, only
//!   calls signed (SigV4, `execute-api`) with the stack's credentials are taken (the notifier's
//!   SDK signs them): anything else is 403 `ForbiddenException`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode};
use matbakh_core::sigv4::{self, Credentials, Received};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::Gateway;

/// Where sockets connect (the deployed stage's name).
pub const PATH: &str = "/live";
/// The management API's prefix.
pub const MANAGEMENT_PREFIX: &str = "/live/@connections/";

enum Outgoing {
    Text(String),
    Close,
}

struct Socket {
    tx: mpsc::UnboundedSender<Outgoing>,
    connected_at: String,
    source_ip: String,
}

/// The open sockets, and the function behind them.
pub struct LiveApi {
    /// The binary that authorizes and serves the routes (`live`).
    pub function: String,
    /// Whose signature the management API takes (the stack's `AWS_ACCESS_KEY_ID`, ...).
    credentials: Credentials,
    sockets: Mutex<HashMap<String, Socket>>,
    /// Where each management call a function signed is appended (`CALL_LOG`, the smoke test's
    /// call log beside moto's): `scripts/iam_calls.py` checks it against the function's policy.
    call_log: Option<std::path::PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LiveApi {
    pub fn new(function: impl Into<String>, credentials: Credentials) -> Self {
        LiveApi { function: function.into(), credentials, sockets: Mutex::new(HashMap::new()), call_log: None }
    }

    /// Appends each management call a function signed to `path` (a JSON line each).
    pub fn with_call_log(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.call_log = path;
        self
    }

    /// How many sockets are open.
    pub fn open(&self) -> usize {
        lock(&self.sockets).len()
    }
}

fn refuse(status: StatusCode) -> Response {
    let text = status.canonical_reason().unwrap_or("Refused");
    (status, axum::Json(json!({ "message": text }))).into_response()
}

fn headers_json(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in headers {
        // API Gateway hands a WebSocket's headers on as the client sent their names.
        out.insert(name.as_str().to_owned(), Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()));
    }
    out
}

fn query_json(query: Option<&str>) -> Value {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    if pairs.is_empty() {
        Value::Null
    } else {
        Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    }
}

fn context(event_type: &str, route: &str, id: &str, source_ip: &str) -> Value {
    let now = time::OffsetDateTime::now_utc();
    json!({
        "routeKey": route, "eventType": event_type, "connectionId": id, "stage": "live", "apiId": "local",
        "domainName": "localhost", "requestId": format!("local-{}", now.unix_timestamp_nanos()),
        "connectedAt": now.unix_timestamp() * 1000, "requestTimeEpoch": now.unix_timestamp() * 1000,
        "identity": {"sourceIp": source_ip},
    })
}

/// A route's event (`$connect`, `$disconnect`, `$default`) with the authorizer's context.
fn route_event(event_type: &str, route: &str, id: &str, source_ip: &str, authorizer: &Map<String, Value>) -> Value {
    let mut ctx = context(event_type, route, id, source_ip);
    ctx["authorizer"] = Value::Object(authorizer.clone());
    json!({ "requestContext": ctx, "isBase64Encoded": false })
}

/// A connection id as API Gateway makes them: short, opaque, URL-safe here.
fn connection_id() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `GET /live`: authorize, `$connect`, upgrade.
pub async fn connect(gw: Arc<Gateway>, live: Arc<LiveApi>, req: axum::extract::Request, source_ip: String) -> Response {
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    if !parts.headers.contains_key(http::header::SEC_WEBSOCKET_PROTOCOL) {
        return refuse(StatusCode::UNAUTHORIZED);
    }
    let id = connection_id();
    let headers = headers_json(&parts.headers);
    let authorize = json!({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:local:000000000000:local/live/$connect",
        "headers": headers,
        "queryStringParameters": query_json(parts.uri.query()),
        "requestContext": context("CONNECT", "$connect", &id, &source_ip),
    });
    let Some(policy) = crate::invoke_json(&gw, &live.function, &authorize).await else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR);
    };
    if policy["policyDocument"]["Statement"][0]["Effect"] != "Allow" {
        return refuse(StatusCode::FORBIDDEN);
    }
    let mut authorizer = policy["context"].as_object().cloned().unwrap_or_default();
    authorizer.insert("principalId".into(), policy["principalId"].clone());

    let mut event = route_event("CONNECT", "$connect", &id, &source_ip, &authorizer);
    event["headers"] = Value::Object(headers);
    let Some(answer) = crate::invoke_json(&gw, &live.function, &event).await else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let status = answer["statusCode"].as_u64().unwrap_or(500);
    if status != 200 {
        return refuse(StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    }
    let chosen = answer["headers"]
        .as_object()
        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol")))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned);
    let upgrade = match chosen {
        Some(p) => upgrade.protocols([p]),
        None => upgrade,
    };
    upgrade.on_upgrade(move |socket| serve(gw, live, id, source_ip, authorizer, socket))
}

/// One open socket: messages from the management API out, the client's text to `$default`,
/// `$disconnect` at the end.
async fn serve(
    gw: Arc<Gateway>,
    live: Arc<LiveApi>,
    id: String,
    source_ip: String,
    authorizer: Map<String, Value>,
    mut socket: WebSocket,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let connected_at = matbakh_core::clock::iso_millis(time::OffsetDateTime::now_utc());
    lock(&live.sockets).insert(id.clone(), Socket { tx, connected_at, source_ip: source_ip.clone() });
    tracing::info!(connection = %id, open = live.open(), "socket opened");
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let mut event = route_event("MESSAGE", "$default", &id, &source_ip, &authorizer);
                    event["body"] = Value::String(text.to_string());
                    let _ = crate::invoke_json(&gw, &live.function, &event).await;
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    lock(&live.sockets).remove(&id);
    tracing::info!(connection = %id, open = live.open(), "socket closed");
    let event = route_event("DISCONNECT", "$disconnect", &id, &source_ip, &authorizer);
    let _ = crate::invoke_json(&gw, &live.function, &event).await;
}

/// The stack's credentials, or, when the request names one, a function's: locally each signs
/// as `{key id}.{function}` with the same secret (`LOCAL_SIGNER_NAMES`, `matbakh_aws::config`).
fn signer_credentials(stack: &Credentials, received: &Received<'_>) -> Credentials {
    let key_id = received.key_id();
    match key_id.filter(|k| k.strip_prefix(&stack.access_key_id).is_some_and(|rest| rest.starts_with('.'))) {
        Some(named) => Credentials { access_key_id: named.to_owned(), ..stack.clone() },
        None => stack.clone(),
    }
}

fn gone() -> Response {
    let mut resp = refuse(StatusCode::GONE);
    resp.headers_mut().insert("x-amzn-errortype", http::HeaderValue::from_static("GoneException"));
    resp
}

/// The management API: `{method} /live/@connections/{id}`, signed with the stack's credentials.
pub fn manage(live: &LiveApi, parts: &http::request::Parts, body: Bytes) -> Response {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let path = parts.uri.path();
    let received = Received {
        method: parts.method.as_str(),
        path,
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let signer = signer_credentials(&live.credentials, &received);
    if let Err(why) = sigv4::verify(&received, &signer, "execute-api", time::OffsetDateTime::now_utc()) {
        tracing::warn!(%why, "management call refused");
        let mut resp = refuse(StatusCode::FORBIDDEN);
        resp.headers_mut().insert("x-amzn-errortype", http::HeaderValue::from_static("ForbiddenException"));
        return resp;
    }
    if let (Some(log), Some((_, function))) = (&live.call_log, signer.access_key_id.split_once('.')) {
        let line = json!({"app": function, "method": parts.method.as_str(), "path": path, "query": {}, "target": null});
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not append to the call log");
        }
    }
    let method = &parts.method;
    let raw = path.strip_prefix(MANAGEMENT_PREFIX).unwrap_or_default();
    let id = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let sockets = lock(&live.sockets);
    let Some(socket) = sockets.get(id.as_ref()) else { return gone() };
    match *method {
        Method::POST => match socket.tx.send(Outgoing::Text(String::from_utf8_lossy(&body).into_owned())) {
            Ok(()) => StatusCode::OK.into_response(),
            Err(_) => gone(),
        },
        Method::DELETE => {
            let _ = socket.tx.send(Outgoing::Close);
            StatusCode::NO_CONTENT.into_response()
        }
        Method::GET => axum::Json(json!({
            "connectedAt": socket.connected_at,
            "identity": {"sourceIp": socket.source_ip},
        }))
        .into_response(),
        _ => refuse(StatusCode::METHOD_NOT_ALLOWED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_signs_as_itself_with_the_stacks_secret() {
        let stack = Credentials { access_key_id: "local".into(), secret_access_key: "s".into(), session_token: None };
        let signed = |key: &str| {
            let auth = format!(
                "AWS4-HMAC-SHA256 Credential={key}/20261207/eu-central-1/execute-api/aws4_request, SignedHeaders=host, Signature=0"
            );
            let headers = [("Authorization".to_owned(), auth)];
            let received = Received { method: "POST", path: "/", query: "", headers: &headers, body: b"" };
            signer_credentials(&stack, &received)
        };
        let notifier = signed("local.notifier");
        assert_eq!((notifier.access_key_id.as_str(), notifier.secret_access_key.as_str()), ("local.notifier", "s"));
        for other in ["local", "localx", "other.notifier"] {
            assert_eq!(signed(other).access_key_id, "local", "{other}");
        }
    }
}
