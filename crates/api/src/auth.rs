//! Who is calling.
//!
//! Deployed, API Gateway's JWT authorizer has verified the token before the function runs,
//! and the function reads the `sub` claim the authorizer put in the request context; it
//! never looks at the token or any header itself. Locally there is no authorizer, so the
//! function verifies the Bearer token against a configured JWKS (the dev key pair) and then
//! ignores the request context, which anyone calling the function directly could forge.
//! Either way, identity comes from exactly one vouched-for source.

use axum::extract::FromRequestParts;
use http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::request::RequestContext;
use matbakh_core::ids::UserId;

use crate::error::ApiError;

/// How a function learns the caller's identity.
pub enum Authenticator {
    /// Trust the `sub` claim of API Gateway's JWT authorizer (the deployed setup).
    Authorizer,
    /// Verify the Bearer token ourselves (local development, no authorizer in front).
    Jwks(JwtVerifier),
}

pub use matbakh_core::ids::parse_admins;

/// Verifies ES256/RS256 tokens against a key set, an issuer and an audience.
pub struct JwtVerifier {
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
    validation_issuer: String,
    validation_audience: String,
}

impl JwtVerifier {
    /// `jwks` is a JSON Web Key Set document.
    pub fn new(jwks: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| format!("JWKS is not valid: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWKS key unusable: {e}"))?;
            keys.push((jwk.common.key_id.clone(), key, alg));
        }
        if keys.is_empty() {
            return Err("JWKS holds no usable key".into());
        }
        Ok(JwtVerifier { keys, validation_issuer: issuer.to_owned(), validation_audience: audience.to_owned() })
    }

    /// The verified `sub` of `token`.
    pub fn verify(&self, token: &str) -> Result<String, ApiError> {
        let claims = self.verify_claims(token)?;
        match claims.get("sub") {
            Some(serde_json::Value::String(sub)) => Ok(sub.clone()),
            _ => Err(ApiError::unauthorized("the token has no subject")),
        }
    }

    /// All claims of a verified `token` (signature, issuer, audience and expiry checked).
    pub fn verify_claims(&self, token: &str) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| ApiError::unauthorized("the token is malformed"))?;
        for (kid, key, alg) in &self.keys {
            if !could_have_signed(&header, kid.as_deref(), *alg) {
                continue;
            }
            let mut validation = Validation::new(*alg);
            validation.set_issuer(&[&self.validation_issuer]);
            validation.set_audience(&[&self.validation_audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = 30;
            return match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &validation) {
                Ok(data) => Ok(data.claims),
                Err(e) => Err(ApiError::unauthorized(format!("the token is not valid ({:?})", e.kind()))),
            };
        }
        Err(ApiError::unauthorized("the token was not signed by a trusted key"))
    }
}

impl JwtVerifier {
    /// Whether one of the keys could have signed `token` (by its header's algorithm and key
    /// id): if not, the issuer may have rotated its keys. `false` for a malformed token.
    pub fn knows_key_of(&self, token: &str) -> bool {
        jsonwebtoken::decode_header(token)
            .is_ok_and(|h| self.keys.iter().any(|(kid, _, alg)| could_have_signed(&h, kid.as_deref(), *alg)))
    }
}

/// A key with id `kid` for `alg` could have signed a token with `header`: the same algorithm,
/// and the same key id where both name one.
fn could_have_signed(header: &jsonwebtoken::Header, kid: Option<&str>, alg: Algorithm) -> bool {
    header.alg == alg && (header.kid.is_none() || kid.is_none() || header.kid.as_deref() == kid)
}

impl Authenticator {
    /// Settings: `AUTH_JWKS` (a JWKS document) or `AUTH_JWKS_FILE` (a path to one) switch on
    /// local verification, with `AUTH_ISSUER` and `AUTH_AUDIENCE`. Neither: authorizer mode.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`Self::from_env`], from `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let jwks = match (lookup("AUTH_JWKS"), lookup("AUTH_JWKS_FILE")) {
            (Some(doc), _) if !doc.is_empty() => doc,
            (_, Some(path)) if !path.is_empty() => {
                std::fs::read_to_string(&path).map_err(|e| format!("AUTH_JWKS_FILE {path}: {e}"))?
            }
            _ => return Ok(Authenticator::Authorizer),
        };
        let issuer = lookup("AUTH_ISSUER").ok_or("AUTH_ISSUER is required with a JWKS")?;
        let audience = lookup("AUTH_AUDIENCE").ok_or("AUTH_AUDIENCE is required with a JWKS")?;
        Ok(Authenticator::Jwks(JwtVerifier::new(&jwks, &issuer, &audience)?))
    }

    /// The caller of a request, or 401.
    pub fn authenticate(&self, parts: &Parts) -> Result<UserId, ApiError> {
        let sub = match self {
            Authenticator::Authorizer => {
                authorizer_sub(parts).ok_or_else(|| ApiError::unauthorized("no authenticated caller"))?
            }
            Authenticator::Jwks(verifier) => {
                let header = parts
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .ok_or_else(|| ApiError::unauthorized("a Bearer token is required"))?;
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
                    .ok_or_else(|| ApiError::unauthorized("a Bearer token is required"))?;
                verifier.verify(token.trim())?
            }
        };
        UserId::parse(&sub).map_err(|_| ApiError::unauthorized("the token's subject is not usable"))
    }
}

fn authorizer_sub(parts: &Parts) -> Option<String> {
    match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?.jwt.as_ref()?.claims.get("sub").cloned(),
        _ => None,
    }
}

/// Application state that knows how to authenticate callers.
pub trait AuthState {
    fn authenticator(&self) -> &Authenticator;
}

/// A function's state: its use cases (`T`, from `matbakh-app`) and who may call them.
#[derive(Clone)]
pub struct Api<T> {
    pub cases: T,
    pub auth: std::sync::Arc<Authenticator>,
}

impl<T> AuthState for Api<T> {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}

/// The authenticated caller; extracting it answers 401 when there is none.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
}

impl<S> FromRequestParts<S> for Caller
where
    S: AuthState + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller { user: state.authenticator().authenticate(parts)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev_keys::DevKey;

    fn parts_with(auth_header: Option<&str>, context_sub: Option<&str>) -> Parts {
        let mut req = http::Request::builder().uri("/v1/uploads");
        if let Some(h) = auth_header {
            req = req.header("authorization", h);
        }
        let (mut parts, _) = req.body(()).unwrap().into_parts();
        if let Some(sub) = context_sub {
            let ctx = serde_json::json!({
                "routeKey": "POST /v1/uploads", "accountId": "1", "stage": "$default", "requestId": "r",
                "apiId": "a", "domainName": "d", "domainPrefix": "d", "time": "t", "timeEpoch": 0,
                "http": {"method": "POST", "path": "/v1/uploads", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": null}}
            });
            parts.extensions.insert(RequestContext::ApiGatewayV2(serde_json::from_value(ctx).unwrap()));
        }
        parts
    }

    #[test]
    fn authorizer_mode_trusts_only_the_authorizer_claims() {
        let auth = Authenticator::Authorizer;
        assert_eq!(auth.authenticate(&parts_with(None, Some("alice"))).unwrap().as_str(), "alice");
        // a Bearer token alone is not enough: API Gateway has not vouched for it
        let key = DevKey::generate().unwrap();
        let token = key.mint("mallory", "iss", "aud", 600).unwrap();
        assert_eq!(auth.authenticate(&parts_with(Some(&format!("Bearer {token}")), None)).unwrap_err().status, 401);
        assert_eq!(auth.authenticate(&parts_with(None, Some("../x"))).unwrap_err().status, 401);
    }

    #[test]
    fn jwks_mode_verifies_the_token_and_ignores_forged_context() {
        let key = DevKey::generate().unwrap();
        let auth = Authenticator::Jwks(JwtVerifier::new(&key.jwks(), "iss", "aud").unwrap());
        let good = key.mint("alice", "iss", "aud", 600).unwrap();
        let bearer = format!("Bearer {good}");
        // the forged request context claims "bob"; the verified token says "alice"
        assert_eq!(auth.authenticate(&parts_with(Some(&bearer), Some("bob"))).unwrap().as_str(), "alice");
        assert_eq!(auth.authenticate(&parts_with(None, Some("bob"))).unwrap_err().status, 401);

        let other_key = DevKey::generate().unwrap();
        let cases = [
            other_key.mint("alice", "iss", "aud", 600).unwrap(),
            key.mint("alice", "other-issuer", "aud", 600).unwrap(),
            key.mint("alice", "iss", "other-audience", 600).unwrap(),
            key.mint("alice", "iss", "aud", -3600).unwrap(),
            format!("{}x", &good[..good.len() - 1]),
            "not-a-jwt".to_owned(),
        ];
        for token in cases {
            let err = auth.authenticate(&parts_with(Some(&format!("Bearer {token}")), None)).unwrap_err();
            assert_eq!(err.status, 401, "{token}");
        }
        // an unsigned token ("alg": "none") with a valid-looking payload
        let payload = good.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(auth.authenticate(&parts_with(Some(&format!("Bearer {unsigned}")), None)).unwrap_err().status, 401);
    }
}
