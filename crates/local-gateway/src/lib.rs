//! `local-gateway`: API Gateway's part in the local stack (DECISIONS 1).
//!
//! One HTTP base URL for the web app, curl and Uppy. For each request it does what the
//! deployed HTTP API does: answers CORS preflights for the web origin, matches the route
//! the template declares, runs the JWT authorizer (verifies the Bearer token against the dev
//! JWKS and passes its claims on, or answers 401), builds the API Gateway v2 payload and
//! invokes the function through `cargo lambda watch`'s Lambda invoke API, then turns the
//! function's answer back into HTTP. The functions therefore run locally exactly as deployed:
//! identity comes only from the authorizer's claims. With `IN_PROCESS`, some functions' routers
//! answer in the gateway's own process instead, from the same event ([`in_process`]).
//!
//! In the dev stack it also serves the web app at `/` ([`web`]), the files CDN's public copies
//! at `/cdn/` ([`cdn`]) and its transforms at `/t/` (the edge's mapping, stored result first,
//! then the transformer: [`transforms`]), and plays the identity provider ([`dev_idp`]); none of
//! them exists when deployed (CloudFront and Cognito do that).
//!
//! Reads: the routes file `scripts/local_resources.py` writes from `template.yaml`.

pub mod cdn;
pub mod dev_idp;
pub mod in_process;
pub mod live;
pub mod transforms;
pub mod web;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use matbakh_api::auth::JwtVerifier;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

/// Largest request body the gateway forwards (API Gateway's payload limit is 10 MB; uploads
/// go straight to S3 and never through here).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// How long one invocation may take; the first one also waits for `cargo lambda watch` to
/// compile the function.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(300);
/// At most this many invocations of one function are at the invoke API at once; more wait here.
/// `cargo lambda watch` (1.9.2) runs one at a time and queues 100 more per function; a 101st
/// stops it for good, every function with it (the load benchmark found it at 200 connections:
/// the invocation waits for room in the full queue while holding the lock the function needs to
/// take the next one).
pub const MAX_INVOCATIONS_AT_ONCE: usize = 64;

/// One route of the HTTP API, as the template declares it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    /// `/v1/files/{fileId}/download`; a last segment `{name+}` takes the rest of the path.
    pub path: String,
    /// The binary (function) that serves it.
    pub function: String,
    /// `JWT` (the authorizer guards it) or `NONE`.
    pub auth: String,
}

impl Route {
    /// The path parameters if `path` matches this route.
    pub fn matches(&self, method: &Method, path: &str) -> Option<BTreeMap<String, String>> {
        if self.method != "ANY" && self.method != method.as_str() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut have = path.trim_start_matches('/').split('/');
        let want: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        for (i, seg) in want.iter().enumerate() {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                let rest = have.by_ref().collect::<Vec<&str>>().join("/");
                if i != want.len() - 1 || rest.is_empty() {
                    return None;
                }
                params.insert(name.to_owned(), decode(&rest));
                return Some(params);
            }
            let got = have.next()?;
            match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !got.is_empty() => {
                    params.insert(name.to_owned(), decode(got));
                }
                Some(_) => return None,
                None if *seg == got => {}
                None => return None,
            }
        }
        have.next().is_none().then_some(params)
    }

    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// What the gateway needs to run.
pub struct Gateway {
    pub routes: Vec<Route>,
    pub verifier: JwtVerifier,
    /// Base URL of the Lambda invoke API (`cargo lambda watch`).
    pub lambda_endpoint: String,
    /// Origins allowed by CORS (the template's `WebOrigin`).
    pub web_origins: Vec<String>,
    pub client: reqwest::Client,
    /// The web app, served at `/` (dev stack).
    pub web: Option<web::WebApp>,
    /// The identity provider at `/dev/oidc/*` (dev stack).
    pub idp: Option<dev_idp::DevIdp>,
    /// The files CDN's public copies at `/cdn/p/*`, and its stored transform results (dev stack).
    pub files_cdn: Option<cdn::FilesCdn>,
    /// The transform function's mapping at `/t/*` (dev stack); without it, `/t/*` goes straight
    /// to the transformer.
    pub transforms: Option<transforms::EdgeMapping>,
    /// The old domain's file URLs (`/uploads/`, dev stack): as the legacy CDN's behaviour, every
    /// request under it goes to the `legacy-redirect` function, invoked as its function URL.
    pub legacy_prefix: Option<String>,
    /// The WebSocket API of live updates at `/live`, and its management API (dev stack).
    pub live: Option<Arc<live::LiveApi>>,
    /// Functions served by their routers in this process, by name, instead of through the
    /// invoke API ([`in_process`]).
    pub in_process: BTreeMap<String, Router>,
}

/// The API's own prefixes: never answered by the web app.
const API_PREFIXES: [&str; 4] = ["/v1/", "/s3/", TRANSFORM_PREFIX, cdn::PREFIX];
/// Where the local stack serves the files CDN's transforms (`TRANSFORM_BASE_URL` is
/// `{gateway}/t`): as the deployed `/t/*` behaviour, the edge's mapping, the stored result
/// first, then the transformer, invoked as its function URL would be (no login: a transform
/// URL's signature is its check).
const TRANSFORM_PREFIX: &str = "/t/";

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new().fallback(handle).with_state(gateway)
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_owned);
    let allowed_origin = origin.filter(|o| gw.web_origins.iter().any(|w| w == o));
    if let Some(live) = &gw.live {
        let path = req.uri().path();
        if path == live::PATH {
            let source_ip = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "127.0.0.1".into());
            return live::connect(gw.clone(), live.clone(), req, source_ip).await;
        }
        if path.starts_with(live::MANAGEMENT_PREFIX) {
            let (parts, body) = req.into_parts();
            let Ok(body) = axum::body::to_bytes(body, 128 * 1024).await else {
                return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
            };
            return live::manage(live, &parts, body);
        }
    }
    // What the files CDN (`/cdn/`, `/t/`) answers is logged as CloudFront would log it.
    let logged = gw.files_cdn.as_ref().and_then(|cdn| cdn.access_log.as_ref()).and_then(|log| {
        let path = req.uri().path();
        let seen = path
            .strip_prefix("/cdn")
            .filter(|_| path.starts_with(cdn::PREFIX))
            .or_else(|| path.starts_with(TRANSFORM_PREFIX).then_some(path))?;
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        Some((log, req.method().clone(), host.to_owned(), seen.to_owned(), std::time::Instant::now()))
    });
    let mut resp =
        if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            preflight(allowed_origin.is_some())
        } else if let (Some(idp), true) = (&gw.idp, req.uri().path().starts_with("/dev/oidc/")) {
            idp_request(idp, &gw.web_origins, req).await
        } else if req.uri().path().starts_with(TRANSFORM_PREFIX) {
            transform(&gw, req).await
        } else if gw.legacy_prefix.as_deref().is_some_and(|p| req.uri().path().starts_with(p)) {
            let (parts, _) = req.into_parts();
            invoke_url(&gw, "legacy-redirect", &parts).await
        } else if let (Some(files), true) = (&gw.files_cdn, req.uri().path().starts_with(cdn::PREFIX)) {
            files.serve(&gw.client, req.method(), req.uri().path(), req.headers()).await
        } else if let Some(resp) = web_file(&gw, req.method(), req.uri().path()).await {
            resp
        } else {
            forward(&gw, req).await
        };
    if let Some((log, method, host, path, started)) = logged {
        log.record(&method, &host, &path, &resp, started);
    }
    if let Some(origin) = allowed_origin {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// A file of the web app (GET only, never under the API's prefixes); `None` leaves the request
/// to the API.
async fn web_file(gw: &Gateway, method: &Method, path: &str) -> Option<Response> {
    if method != Method::GET || API_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    gw.web.as_ref()?.serve(path).await
}

/// The dev identity provider's endpoints (`/dev/oidc/*`).
async fn idp_request(idp: &dev_idp::DevIdp, web_origins: &[String], req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    idp.route(&parts.method, parts.uri.path(), parts.uri.query().unwrap_or(""), &body, web_origins)
}

fn preflight(allowed: bool) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if allowed {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    resp
}

async fn forward(gw: &Gateway, req: Request) -> Response {
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let (parts, body) = req.into_parts();
    // Like API Gateway, the most specific route wins: the one with the fewest parameters.
    let Some((route, params)) = gw
        .routes
        .iter()
        .filter_map(|r| r.matches(&parts.method, parts.uri.path()).map(|p| (r, p)))
        .min_by_key(|(_, p)| p.len())
    else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let claims = if route.auth == "NONE" {
        None
    } else {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")));
        match token.map(|t| gw.verifier.verify_claims(t.trim())) {
            Some(Ok(claims)) => Some(claims),
            _ => {
                let mut resp = message(StatusCode::UNAUTHORIZED, "Unauthorized");
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return resp;
            }
        }
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    invoke(gw, route, &build_event(route, &params, &parts, &body, claims.as_ref(), &source_ip)).await
}

/// A transform URL under [`TRANSFORM_PREFIX`], for the transformer.
async fn transform(gw: &Gateway, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let mut rest = match parts.uri.path_and_query() {
        Some(pq) => pq.as_str()[TRANSFORM_PREFIX.len() - 1..].to_owned(),
        None => return message(StatusCode::NOT_FOUND, "Not Found"),
    };
    if let Some(edge) = &gw.transforms {
        let path = rest.split('?').next().unwrap_or_default().to_owned();
        let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match edge.map(&path, accept, now) {
            transforms::Mapped::Refused(status, reason) => return transforms::refusal(status, reason),
            transforms::Mapped::Key { key, accept } => {
                parts.headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
                if let Some(cdn) = &gw.files_cdn
                    && let Some(stored) = transforms::stored(cdn, &gw.client, &parts.method, &key, &parts.headers).await
                {
                    return stored;
                }
                let Ok(signed) = HeaderValue::from_str(&path) else {
                    return message(StatusCode::BAD_REQUEST, "Bad Request");
                };
                parts.headers.insert("x-transform-path", signed);
                rest = matbakh_core::cdn::edge_path(&key);
            }
        }
    }
    let Ok(uri) = rest.parse::<http::Uri>() else { return message(StatusCode::BAD_REQUEST, "Bad Request") };
    parts.uri = uri;
    invoke_url(gw, "transformer", &parts).await
}

/// Invokes `function` as its function URL would (no login, no body: both are GET/HEAD-only).
async fn invoke_url(gw: &Gateway, function: &str, parts: &http::request::Parts) -> Response {
    let route =
        Route { method: "GET".into(), path: "/{proxy+}".into(), function: function.into(), auth: "NONE".into() };
    invoke(gw, &route, &build_event(&route, &BTreeMap::new(), parts, &Bytes::new(), None, "127.0.0.1")).await
}

/// Invokes `function` with `event` through the Lambda invoke API; its answer, or `None` if the
/// call or the function failed.
pub(crate) async fn invoke_json(gw: &Gateway, function: &str, event: &Value) -> Option<Value> {
    let _slot = invocation_slots(function).acquire_owned().await.ok()?;
    let url = format!("{}/2015-03-31/functions/{}/invocations", gw.lambda_endpoint.trim_end_matches('/'), function);
    match gw.client.post(&url).json(event).timeout(INVOKE_TIMEOUT).send().await {
        Ok(r) => r.json::<Value>().await.ok().filter(|v| v.get("errorType").is_none()),
        Err(e) => {
            tracing::error!(error = %e, function, "invoke failed");
            None
        }
    }
}

/// The [`MAX_INVOCATIONS_AT_ONCE`] places of `function` at the invoke API.
fn invocation_slots(function: &str) -> Arc<Semaphore> {
    static SLOTS: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Default::default);
    let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    slots.entry(function.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(MAX_INVOCATIONS_AT_ONCE))).clone()
}

/// Invokes `route`'s function with `event` (a request's API Gateway event), and answers what
/// it answers: in this process if it runs here, else through the invoke API.
async fn invoke(gw: &Gateway, route: &Route, event: &Value) -> Response {
    tracing::info!(route = %route.route_key(), function = %route.function, "invoke");
    let started = std::time::Instant::now();
    let resp = if let Some(router) = gw.in_process.get(&route.function) {
        in_process::call(router, event).await
    } else {
        match invoke_json(gw, &route.function, event).await.and_then(|v| to_response(&v)) {
            Some(resp) => resp,
            None => {
                tracing::error!(function = %route.function, "function failed or answered something that is not an HTTP response");
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    };
    // With the time it took: a request a browser test waited for in vain shows here (or not).
    let ms = started.elapsed().as_millis() as u64;
    tracing::info!(route = %route.route_key(), function = %route.function, status = resp.status().as_u16(), ms, "answered");
    resp
}

/// The API Gateway v2 (HTTP API) payload for one request.
pub fn build_event(
    route: &Route,
    params: &BTreeMap<String, String>,
    parts: &http::request::Parts,
    body: &Bytes,
    claims: Option<&Map<String, Value>>,
    source_ip: &str,
) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(value.split("; ").map(str::to_owned));
            continue;
        }
        headers.entry(name.as_str().to_owned()).and_modify(|v| *v = format!("{v},{value}")).or_insert(value);
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in serde_urlencoded::from_str::<Vec<(String, String)>>(&raw_query).unwrap_or_default() {
        query.entry(k).and_modify(|old| *old = format!("{old},{v}")).or_insert(v);
    }
    let (body_value, is_base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(base64::engine::general_purpose::STANDARD.encode(body)), true),
    };
    let now = time::OffsetDateTime::now_utc();
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let mut context = json!({
        "accountId": "000000000000",
        "apiId": "local",
        // lambda_http builds the request URI from this; it must never be empty.
        "domainName": headers.get("host").cloned().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into()),
        "domainPrefix": "local",
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": user_agent,
        },
        "requestId": format!("local-{}", now.unix_timestamp_nanos()),
        "routeKey": route.route_key(),
        "stage": "$default",
        "time": now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default(),
        "timeEpoch": now.unix_timestamp() * 1000,
    });
    if let Some(claims) = claims {
        // API Gateway hands claims on as strings.
        let flat: Map<String, Value> = claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))))
            .collect();
        context["authorizer"] = json!({ "jwt": { "claims": flat, "scopes": null } });
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.route_key(),
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !params.is_empty() {
        event["pathParameters"] = json!(params);
    }
    if !body_value.is_null() {
        event["body"] = body_value;
    }
    event
}

/// A function's API Gateway v2 answer as an HTTP response; `None` if it is not one (the
/// function failed: Lambda's `{errorType, errorMessage}`).
pub fn to_response(v: &Value) -> Option<Response> {
    let status = StatusCode::from_u16(u16::try_from(v.get("statusCode")?.as_u64()?).ok()?).ok()?;
    let mut headers = HeaderMap::new();
    let pairs =
        v.get("headers").and_then(Value::as_object).into_iter().flatten().filter_map(|(k, v)| Some((k, v.as_str()?)));
    for (k, val) in pairs {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(val)) {
            headers.insert(name, value);
        }
    }
    for (k, vals) in v.get("multiValueHeaders").and_then(Value::as_object).into_iter().flatten() {
        for val in vals.as_array().into_iter().flatten().filter_map(Value::as_str) {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(val)) {
                headers.append(name, value);
            }
        }
    }
    for cookie in v.get("cookies").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    let text = v.get("body").and_then(Value::as_str).unwrap_or("");
    let body = if v.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        base64::engine::general_purpose::STANDARD.decode(text).ok()?
    } else {
        text.as_bytes().to_vec()
    };
    headers.remove(header::CONTENT_LENGTH);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route { method: method.into(), path: path.into(), function: "f".into(), auth: "JWT".into() }
    }

    #[test]
    fn routes_match_like_api_gateway() {
        let r = route("GET", "/v1/files/{fileId}/download");
        let p = r.matches(&Method::GET, "/v1/files/abc/download").unwrap();
        assert_eq!(p["fileId"], "abc");
        assert_eq!(r.matches(&Method::GET, "/v1/files/a%20b/download").unwrap()["fileId"], "a b");
        assert!(r.matches(&Method::POST, "/v1/files/abc/download").is_none());
        assert!(r.matches(&Method::GET, "/v1/files//download").is_none());
        assert!(r.matches(&Method::GET, "/v1/files/abc/download/more").is_none());
        assert!(r.matches(&Method::GET, "/v1/files/abc").is_none());
        let greedy = route("ANY", "/s3/{proxy+}");
        assert_eq!(greedy.matches(&Method::PUT, "/s3/multipart/x/1").unwrap()["proxy"], "multipart/x/1");
        assert!(greedy.matches(&Method::PUT, "/s3/").is_none());
    }

    #[test]
    fn events_carry_claims_params_query_and_cookies() {
        let r = route("GET", "/v1/files/{fileId}/download");
        let req = http::Request::get("/v1/files/abc/download?inline=1&x=a&x=b")
            .header("cookie", "a=1; b=2")
            .header("user-agent", "ua")
            .header("X-Custom", "v")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let claims: Map<String, Value> = serde_json::from_value(json!({"sub": "alice", "exp": 5})).unwrap();
        let params = BTreeMap::from([("fileId".to_owned(), "abc".to_owned())]);
        let e = build_event(&r, &params, &parts, &Bytes::new(), Some(&claims), "10.0.0.1");
        assert_eq!(e["routeKey"], "GET /v1/files/{fileId}/download");
        assert_eq!(e["pathParameters"]["fileId"], "abc");
        assert_eq!(e["queryStringParameters"], json!({"inline": "1", "x": "a,b"}));
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["headers"]["x-custom"], "v");
        assert_eq!(e["requestContext"]["authorizer"]["jwt"]["claims"], json!({"sub": "alice", "exp": "5"}));
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "10.0.0.1");
        // and lambda_http reads it back as the request the function sees
        let req = lambda_http::request::from_str(&e.to_string()).unwrap();
        assert_eq!(req.uri().path(), "/v1/files/abc/download");
    }

    #[test]
    fn function_answers_become_http_responses() {
        let ok = json!({"statusCode": 201, "headers": {"content-type": "application/json"}, "body": "{}", "cookies": ["s=1"]});
        let resp = to_response(&ok).unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.headers()["set-cookie"], "s=1");
        let bin = json!({"statusCode": 200, "body": "AAE=", "isBase64Encoded": true});
        assert!(to_response(&bin).is_some());
        assert!(to_response(&json!({"errorType": "Panic", "errorMessage": "boom"})).is_none());
    }
}
