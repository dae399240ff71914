//! The dev stack's identity provider: OpenID Connect's authorization code flow with PKCE
//! (RFC 7636, S256 only), so the web app signs in locally exactly as it does against Cognito's
//! hosted UI or any other OIDC provider. Dev stack only, never deployed.
//!
//! - `GET /dev/oidc/authorize?response_type=code&client_id&redirect_uri&state&code_challenge&code_challenge_method=S256`:
//!   a sign-in page listing the dev users.
//! - `POST /dev/oidc/authorize` (that form): a one-time code (valid [`CODE_TTL`]) sent back to
//!   `redirect_uri`, which must be on a web origin the gateway allows.
//! - `POST /dev/oidc/token` (`grant_type=authorization_code`, `code`, `redirect_uri`,
//!   `client_id`, `code_verifier`): the tokens, once per code, if the verifier hashes to the
//!   challenge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use http::StatusCode;
use matbakh_api::dev_keys::DevKey;
use serde::Deserialize;
use serde_json::json;

/// How long a code may wait for its exchange.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long the tokens it issues are valid.
pub const TOKEN_TTL_SECONDS: i64 = 12 * 60 * 60;

pub struct DevIdp {
    pub key: DevKey,
    pub issuer: String,
    pub audience: String,
    /// The OAuth client id the web app uses.
    pub client_id: String,
    /// Who may sign in.
    pub users: Vec<String>,
    codes: Mutex<HashMap<String, Grant>>,
}

/// What a code was issued for (always to [`DevIdp::client_id`], the one client).
struct Grant {
    user: String,
    redirect_uri: String,
    challenge: String,
    issued: Instant,
}

#[derive(Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// Only in the sign-in form's POST.
    user: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The base64url SHA-256 of a PKCE verifier: its S256 challenge.
pub fn s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl DevIdp {
    /// Answers a request to `/dev/oidc/*` (`path`, the query, the body).
    pub fn route(
        &self,
        method: &http::Method,
        path: &str,
        query: &str,
        body: &Bytes,
        web_origins: &[String],
    ) -> Response {
        match (method.as_str(), path) {
            ("GET", "/dev/oidc/authorize") => match serde_urlencoded::from_str(query) {
                Ok(p) => self.authorize_page(&p, web_origins),
                Err(_) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "not an authorization request"),
            },
            ("POST", "/dev/oidc/authorize") => self.authorize(body, web_origins),
            ("POST", "/dev/oidc/token") => self.token(body),
            // The verifying keys, where the live updates' authorizer fetches them.
            ("GET", "/dev/oidc/jwks.json") => {
                ([(http::header::CONTENT_TYPE, "application/json")], self.key.jwks()).into_response()
            }
            _ => oauth_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint of the dev identity provider"),
        }
    }

    pub fn new(key: DevKey, issuer: String, audience: String, client_id: String, users: Vec<String>) -> Self {
        DevIdp { key, issuer, audience, client_id, users, codes: Mutex::new(HashMap::new()) }
    }

    /// Checks an authorization request; answers what is wrong with it.
    fn check(&self, p: &AuthorizeParams, web_origins: &[String]) -> Result<(String, String), &'static str> {
        if p.response_type.as_deref() != Some("code") {
            return Err("response_type must be code");
        }
        if p.client_id.as_deref() != Some(self.client_id.as_str()) {
            return Err("unknown client_id");
        }
        if p.code_challenge_method.as_deref() != Some("S256") {
            return Err("PKCE with code_challenge_method=S256 is required");
        }
        let challenge =
            p.code_challenge.clone().filter(|c| (43..=128).contains(&c.len())).ok_or("code_challenge is missing")?;
        let redirect = p.redirect_uri.clone().ok_or("redirect_uri is missing")?;
        let allowed = web_origins.iter().any(|o| redirect == *o || redirect.starts_with(&format!("{o}/")));
        if !allowed {
            return Err("redirect_uri is not on an allowed web origin");
        }
        Ok((redirect, challenge))
    }

    /// `GET /dev/oidc/authorize`: the sign-in page.
    fn authorize_page(&self, p: &AuthorizeParams, web_origins: &[String]) -> Response {
        if let Err(why) = self.check(p, web_origins) {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why);
        }
        let hidden = [
            ("response_type", &p.response_type),
            ("client_id", &p.client_id),
            ("redirect_uri", &p.redirect_uri),
            ("state", &p.state),
            ("code_challenge", &p.code_challenge),
            ("code_challenge_method", &p.code_challenge_method),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v))))
        .collect::<String>();
        let options =
            self.users.iter().map(|u| format!(r#"<option value="{0}">{0}</option>"#, escape(u))).collect::<String>();
        Html(format!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - local identity provider</title><link rel="icon" href="data:,">
<style>body{{font:16px system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}}label,select,button{{display:block;width:100%;margin:.5rem 0;font:inherit;padding:.5rem}}</style></head>
<body><main><h1>Sign in</h1><p>The dev stack's identity provider (stands in for Cognito's hosted UI).</p>
<form method="post" action="/dev/oidc/authorize">{hidden}<label for="user">User</label><select id="user" name="user">{options}</select>
<button type="submit">Sign in</button></form></main></body></html>"#
        ))
        .into_response()
    }

    /// `POST /dev/oidc/authorize`: a code for the chosen user, back to the app.
    fn authorize(&self, body: &Bytes, web_origins: &[String]) -> Response {
        let Ok(p) = serde_urlencoded::from_bytes::<AuthorizeParams>(body) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "not a form");
        };
        let (redirect, challenge) = match self.check(&p, web_origins) {
            Ok(ok) => ok,
            Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why),
        };
        let Some(user) = p.user.filter(|u| self.users.contains(u)) else {
            return oauth_error(StatusCode::BAD_REQUEST, "access_denied", "not a dev user");
        };
        let Ok(random) = matbakh_app::random::bytes::<24>() else {
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "no randomness");
        };
        let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let grant = Grant { user, redirect_uri: redirect.clone(), challenge, issued: Instant::now() };
        if let Ok(mut codes) = self.codes.lock() {
            codes.retain(|_, g| g.issued.elapsed() < CODE_TTL);
            codes.insert(code.clone(), grant);
        }
        let mut back = format!("{redirect}{}code={code}", if redirect.contains('?') { '&' } else { '?' });
        if let Some(state) = p.state {
            back.push_str(&format!(
                "&state={}",
                percent_encoding::utf8_percent_encode(&state, percent_encoding::NON_ALPHANUMERIC)
            ));
        }
        Redirect::to(&back).into_response()
    }

    /// `POST /dev/oidc/token`: the code exchanged for tokens, once.
    fn token(&self, body: &Bytes) -> Response {
        #[derive(Deserialize)]
        struct Form {
            grant_type: String,
            code: String,
            redirect_uri: String,
            client_id: String,
            code_verifier: String,
        }
        let Ok(f) = serde_urlencoded::from_bytes::<Form>(body) else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type, code, redirect_uri, client_id and code_verifier are required",
            );
        };
        if f.grant_type != "authorization_code" {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
        }
        // One use: the code is gone whatever the outcome.
        let grant = self.codes.lock().ok().and_then(|mut codes| codes.remove(&f.code));
        let Some(g) = grant.filter(|g| g.issued.elapsed() < CODE_TTL) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown, used or expired code");
        };
        if f.client_id != self.client_id || g.redirect_uri != f.redirect_uri || s256(&f.code_verifier) != g.challenge {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the code was issued for another client, redirect or verifier",
            );
        }
        match self.key.mint(&g.user, &self.issuer, &self.audience, TOKEN_TTL_SECONDS) {
            Ok(token) => axum::Json(json!({
                "access_token": token,
                "id_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL_SECONDS,
            }))
            .into_response(),
            Err(e) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
        }
    }
}
