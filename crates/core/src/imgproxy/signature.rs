//! imgproxy's URL signature: URL-safe Base64 (no padding) of HMAC-SHA256 over `salt + path`,
//! where `path` is everything after the signature segment, leading `/` included. Key and salt
//! are configured hex-encoded; several pairs may be active at once (rotation), and a URL signed
//! with any of them is accepted. The comparison is constant-time (`aws_lc_rs::hmac::verify`).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::UrlError;

/// The key/salt pairs URLs may be signed with.
#[derive(Clone)]
pub struct SigningKeys {
    pairs: Vec<(hmac::Key, Vec<u8>)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKeys({} pairs)", self.pairs.len())
    }
}

impl SigningKeys {
    /// Pairs from hex strings, as imgproxy's `IMGPROXY_KEYS` / `IMGPROXY_SALTS` (comma-separated,
    /// matched by position) or `IMGPROXY_KEY` / `IMGPROXY_SALT` (one pair).
    pub fn from_hex(keys: &str, salts: &str) -> Result<SigningKeys, String> {
        let split =
            |s: &str| s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        let (keys, salts) = (split(keys), split(salts));
        if keys.len() != salts.len() {
            return Err(format!("{} signing keys but {} salts: they pair up by position", keys.len(), salts.len()));
        }
        let mut pairs = Vec::with_capacity(keys.len());
        for (i, (key, salt)) in keys.iter().zip(&salts).enumerate() {
            let key = hex::decode(key).map_err(|_| format!("signing key {} is not hex", i + 1))?;
            let salt = hex::decode(salt).map_err(|_| format!("signing salt {} is not hex", i + 1))?;
            if key.is_empty() {
                return Err(format!("signing key {} is empty", i + 1));
            }
            pairs.push((hmac::Key::new(hmac::HMAC_SHA256, &key), salt));
        }
        Ok(SigningKeys { pairs })
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The signature of `path` with the first pair (for building URLs: tests, tools).
    pub fn sign(&self, path: &str) -> Option<String> {
        let (key, salt) = self.pairs.first()?;
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(salt);
        ctx.update(path.as_bytes());
        Some(URL_SAFE_NO_PAD.encode(ctx.sign().as_ref()))
    }

    /// Checks `signature` (the first path segment) against `path` (the rest, from its `/`).
    pub fn verify(&self, signature: &str, path: &str) -> Result<(), UrlError> {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(signature.trim_end_matches('=')) else {
            return Err(UrlError::BadSignature);
        };
        let mut message = Vec::new();
        for (key, salt) in &self.pairs {
            message.clear();
            message.extend_from_slice(salt);
            message.extend_from_slice(path.as_bytes());
            if hmac::verify(key, &message, &tag).is_ok() {
                return Ok(());
            }
        }
        Err(UrlError::BadSignature)
    }
}
