//! `live`: the WebSocket API of live updates (issue 20). Triggered by API Gateway (WebSocket
//! API), with one event per call:
//! - the `$connect` REQUEST authorizer ([`authorize`]): the caller proves who they are with a
//!   one-time ticket (`?ticket=`, from `POST /v1/live/tickets`) or with their token in the
//!   `Sec-WebSocket-Protocol` header (`bearer.{jwt}` offered beside [`SUBPROTOCOL`]: browsers
//!   cannot set other headers on a WebSocket), verified as the HTTP API's authorizer does
//!   (signature by the issuer's keys, issuer, audience, expiry). Answers an IAM policy that
//!   allows the connect with the caller as its context, or denies it (403 to the client);
//! - `$connect` ([`route`]): remembers the socket (user, administrator or not, TTL) and
//!   answers with the subprotocol; `$disconnect`: forgets it; `$default` (anything the client
//!   sends): ignored, the socket only listens.
//!
//! The `live-tickets` binary serves `POST /v1/live/tickets` on the HTTP API ([`tickets`]).
//!
//! Reads the verifying keys (JWKS, fetched at start from [`jwks_url`], and again when a token
//! names a key not among them: [`Keys`]) and tickets; writes the connections table
//! (`CONNECTIONS_TABLE`). Messages are sent by the `notifier`, not here.

pub mod tickets;

pub use matbakh_api::auth::parse_admins;

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use matbakh_api::auth::JwtVerifier;
use matbakh_app::live::Entry;
use matbakh_app::ports::Connection;
use matbakh_core::ids::UserId;
use matbakh_core::live::{BEARER_SUBPROTOCOL_PREFIX, SUBPROTOCOL, Ticket};
use serde_json::{Value, json};

/// What the WebSocket function works with.
#[derive(Clone)]
pub struct Sockets {
    pub entry: Entry,
    pub keys: Arc<Keys>,
    /// Subjects whose sockets also get the migration's progress (`ADMIN_USERS`).
    pub admins: Arc<BTreeSet<String>>,
}

/// One event of the WebSocket API: the authorizer's request, or a route's.
pub async fn handle(s: &Sockets, event: Value) -> Value {
    if event["type"] == "REQUEST" { authorize(s, &event).await } else { route(s, &event).await }
}

fn header<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    let headers = event["headers"].as_object()?;
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str())
}

/// The token offered as a subprotocol (`bearer.{jwt}`), if any.
fn bearer_subprotocol(event: &Value) -> Option<&str> {
    header(event, "Sec-WebSocket-Protocol")?
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(BEARER_SUBPROTOCOL_PREFIX))
}

fn policy(effect: &str, resource: &str, principal: &str, context: Option<Value>) -> Value {
    let mut answer = json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]
        }
    });
    if let Some(c) = context {
        answer["context"] = c;
    }
    answer
}

/// Who is connecting, or why not.
async fn caller(s: &Sockets, event: &Value) -> Result<UserId, String> {
    if let Some(raw) = event["queryStringParameters"]["ticket"].as_str() {
        let ticket = Ticket::parse(raw).map_err(|e| e.to_string())?;
        return match s.entry.redeem(&ticket).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err("the ticket is unknown, used or expired".into()),
            Err(e) => Err(format!("the ticket could not be checked: {e}")),
        };
    }
    let token = bearer_subprotocol(event).ok_or("no ticket and no bearer subprotocol")?;
    let sub = s.keys.verify(token).await?;
    UserId::parse(&sub).map_err(|_| "the token's subject is not usable".to_owned())
}

/// The `$connect` authorizer: Allow with `{sub, admin}` as context, or Deny.
pub async fn authorize(s: &Sockets, event: &Value) -> Value {
    let resource = event["methodArn"].as_str().unwrap_or("*");
    match caller(s, event).await {
        Ok(user) => {
            let admin = s.admins.contains(user.as_str());
            tracing::info!(user = %user, admin, "connect allowed");
            policy("Allow", resource, user.as_str(), Some(json!({"sub": user.as_str(), "admin": admin.to_string()})))
        }
        Err(why) => {
            tracing::warn!(reason = %why, "connect refused");
            policy("Deny", resource, "anonymous", None)
        }
    }
}

fn status(code: u16) -> Value {
    json!({"statusCode": code})
}

/// `$connect`, `$disconnect`, `$default`: the socket as the authorizer let it in.
pub async fn route(s: &Sockets, event: &Value) -> Value {
    let ctx = &event["requestContext"];
    let authorizer = &ctx["authorizer"];
    let socket = || -> Option<Connection> {
        Some(Connection {
            id: ctx["connectionId"].as_str()?.to_owned(),
            user: UserId::parse(authorizer["sub"].as_str()?).ok()?,
            admin: authorizer["admin"].as_str() == Some("true"),
        })
    };
    match ctx["eventType"].as_str() {
        Some("CONNECT") => {
            // Only an authorizer's context says who it is: without one, nobody connects.
            let Some(c) = socket() else { return status(403) };
            if let Err(e) = s.entry.opened(&c).await {
                tracing::error!(error = %e, "the socket could not be recorded");
                return status(500);
            }
            let offered =
                header(event, "Sec-WebSocket-Protocol").is_some_and(|h| h.split(',').any(|p| p.trim() == SUBPROTOCOL));
            let mut answer = status(200);
            if offered {
                answer["headers"] = json!({"Sec-WebSocket-Protocol": SUBPROTOCOL});
            }
            answer
        }
        Some("DISCONNECT") => {
            if let Some(c) = socket()
                && let Err(e) = s.entry.closed(&c).await
            {
                // Its row goes by TTL, and the notifier forgets it at its first 410.
                tracing::warn!(error = %e, "the closed socket could not be forgotten");
            }
            status(200)
        }
        _ => status(200),
    }
}

/// The sockets' entry on the deployment's connections table.
pub fn entry(sdk: &aws_config::SdkConfig, table: &str) -> Entry {
    Entry {
        connections: Arc::new(matbakh_aws::live::LiveTable::new(sdk, table)),
        clock: Arc::new(matbakh_core::clock::SystemClock),
    }
}

/// Where the issuer publishes its verifying keys: `AUTH_JWKS_URL`, or
/// `{AUTH_ISSUER}/.well-known/jwks.json` (Cognito's and most OIDC providers' place).
pub fn jwks_url(issuer: &str, configured: Option<String>) -> String {
    configured.unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')))
}

/// At most one refetch of the issuer's keys in this long, so that tokens naming made-up keys
/// cannot make every connect fetch them.
pub const JWKS_REFETCH_SECONDS: u64 = 300;

/// The issuer's verifying keys: fetched at start, and again when a token names a key not
/// among them (the issuer rotated its keys: Cognito and other OIDC providers publish a new key
/// before they sign with it), at most once every [`JWKS_REFETCH_SECONDS`].
pub struct Keys {
    current: RwLock<Arc<JwtVerifier>>,
    refetch: Option<Refetch>,
}

struct Refetch {
    url: String,
    issuer: String,
    audience: String,
    interval: Duration,
    last: tokio::sync::Mutex<Instant>,
}

impl Keys {
    /// Keys that never change (tests, the local gateway).
    pub fn fixed(verifier: JwtVerifier) -> Self {
        Keys { current: RwLock::new(Arc::new(verifier)), refetch: None }
    }

    /// The keys at `url`, for tokens of `issuer` for `audience`; fetched now.
    pub async fn fetched(url: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        Self::fetched_refetching_after(url, issuer, audience, Duration::from_secs(JWKS_REFETCH_SECONDS)).await
    }

    /// As [`Keys::fetched`], refetched at most once every `interval`.
    pub async fn fetched_refetching_after(
        url: &str,
        issuer: &str,
        audience: &str,
        interval: Duration,
    ) -> Result<Self, String> {
        let verifier = JwtVerifier::new(&fetch_jwks(url).await?, issuer, audience)?;
        Ok(Keys {
            current: RwLock::new(Arc::new(verifier)),
            refetch: Some(Refetch {
                url: url.to_owned(),
                issuer: issuer.to_owned(),
                audience: audience.to_owned(),
                interval,
                last: tokio::sync::Mutex::new(Instant::now()),
            }),
        })
    }

    fn current(&self) -> Arc<JwtVerifier> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The verified `sub` of `token`, or why not.
    pub async fn verify(&self, token: &str) -> Result<String, String> {
        let verifier = self.current();
        if !verifier.knows_key_of(token)
            && let Some(r) = &self.refetch
        {
            let mut last = r.last.lock().await;
            // Another connect may have refetched while this one waited.
            if !self.current().knows_key_of(token) && last.elapsed() >= r.interval {
                *last = Instant::now();
                match fetch_jwks(&r.url).await.and_then(|jwks| JwtVerifier::new(&jwks, &r.issuer, &r.audience)) {
                    Ok(fresh) => {
                        tracing::info!(url = %r.url, "the issuer's keys refetched: a token named a key not among them");
                        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
                    }
                    Err(e) => tracing::warn!(error = %e, "the issuer's keys could not be refetched"),
                }
            }
        }
        self.current().verify(token).map_err(|e| e.to_string())
    }
}

/// The verifying keys at `url`.
pub async fn fetch_jwks(url: &str) -> Result<String, String> {
    use matbakh_aws::http::{BodyLimit, Web};
    let web = Web::new(JWKS_TIMEOUT)?;
    let request = http::Request::get(url).body(bytes::Bytes::new()).map_err(|e| format!("{url}: {e}"))?;
    let answer = web.send(request, BodyLimit::UpTo(JWKS_MAX_BYTES)).await.map_err(|e| e.to_string())?;
    if !answer.status.is_success() {
        return Err(format!("{url}: HTTP {}", answer.status));
    }
    String::from_utf8(answer.body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
}

/// How long fetching the issuer's keys may take.
pub const JWKS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The most a key set may be (an issuer's holds a few keys of a few hundred bytes each).
pub const JWKS_MAX_BYTES: u64 = 1024 * 1024;

#[cfg(test)]
mod tests;
