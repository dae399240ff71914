//! The local stand-in for an identity provider: an ES256 key pair, its JWKS, and tokens.
//! `scripts/dev` generates one at first run (never committed); tests generate their own.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// An ES256 key pair with a key id.
pub struct DevKey {
    pkcs8: Vec<u8>,
    public: Vec<u8>,
    kid: String,
}

impl DevKey {
    pub fn generate() -> Result<Self, String> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|e| e.to_string())?;
        Self::from_pkcs8(doc.as_ref())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))?;
        let public = pair.public_key().as_ref().to_vec();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public);
        let kid = hex_prefix(digest.as_ref());
        Ok(DevKey { pkcs8: der.to_vec(), public, kid })
    }

    /// The private key, PKCS#8 DER.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half as a JWKS document.
    pub fn jwks(&self) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        // uncompressed point: 0x04 || x (32 bytes) || y (32 bytes)
        let (x, y) = (&self.public[1..33], &self.public[33..65]);
        json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid, "x": b64(x), "y": b64(y)}]}).to_string()
    }

    /// A token for `sub`, valid for `ttl_seconds` from now (negative: already expired).
    pub fn mint(&self, sub: &str, issuer: &str, audience: &str, ttl_seconds: i64) -> Result<String, String> {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs()
                as i64;
        let claims = json!({"sub": sub, "iss": issuer, "aud": audience, "iat": now.min(now + ttl_seconds), "exp": now + ttl_seconds});
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&self.pkcs8)).map_err(|e| e.to_string())
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
