//! How a file's bytes reach a browser through the files CDN (`FILES_CDN_BASE_URL`,
//! files.matbakh.app; DECISIONS 38):
//! - a **public** file has copies under `p/{fileId}/` ([`ObjectKey::public_copy`]), which the
//!   CDN serves unsigned at stable URLs (`/p/{fileId}/{width}.{ext}`,
//!   `/p/{fileId}/original/{name}`); the bucket lets the CDN read nothing else unsigned, so a
//!   private file's key is never reachable without a signature, and making a file private
//!   deletes its copies;
//! - a **private** file's original and variants are served at CloudFront signed URLs (canned
//!   policy, an ECDSA P-256 key of the distribution's key group, [`CdnSigner`]) whose path is
//!   the object's key.
//!
//! Without a CDN (locally, by default) the app layer hands out presigned S3 URLs instead.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use time::OffsetDateTime;

use crate::CoreError;
use crate::cdn::edge_path;
use crate::ids::ObjectKey;

/// `Cache-Control` of a public variant: its bytes never change under its key.
pub const VARIANT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of a public original: browsers revalidate every time (an ETag makes that a
/// 304 from the edge), the edge keeps it a day unless it is invalidated (the file went
/// private or was deleted).
pub const ORIGINAL_CACHE_CONTROL: &str = "public, max-age=0, s-maxage=86400, must-revalidate";

/// Whether a public original of `size` is copied apart, in parts, by the thumbnailer (asked by
/// [`copy_public_original_message`]) rather than where its file became public: above
/// [`crate::multipart::COPY_IN_PARTS_ABOVE`] its copy could outlast an API request's time (a
/// 20 GiB video in 10 s) or a render's delivery.
pub fn copied_apart(size: u64) -> bool {
    size > crate::multipart::COPY_IN_PARTS_ABOVE
}

/// The message that asks the thumbnailer to copy public file `id`'s original to its public key
/// (`{"copyPublicOriginal": "<fileId>"}`, on its queue beside the object events): sent by the
/// notifier when a file row's change leaves an original [`copied_apart`] public and READY
/// without a current copy.
pub fn copy_public_original_message(id: crate::ids::FileId) -> String {
    serde_json::json!({ "copyPublicOriginal": id.to_string() }).to_string()
}

/// The file a [`copy_public_original_message`] names: `Ok(None)` for any other message, an
/// error for one that names no file.
pub fn parse_copy_public_original(body: &str) -> Result<Option<crate::ids::FileId>, CoreError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Message {
        copy_public_original: String,
    }
    match serde_json::from_str::<Message>(body) {
        Ok(message) => crate::ids::FileId::parse(&message.copy_public_original).map(Some),
        Err(_) => Ok(None),
    }
}

/// Whether a public original of `content_type` and `size` may have no public copy (yet): one
/// [`copied_apart`] may be waiting for its copy or copying still, and one
/// too large to rewrite without a GPS position it may hold may be withheld
/// ([`crate::location::public_copy_may_be_withheld`]). Its public URL is then handed out only
/// once the copy is seen.
pub fn public_original_may_be_missing(content_type: &str, size: u64) -> bool {
    copied_apart(size) || crate::location::public_copy_may_be_withheld(content_type, size)
}

/// The headers a public copy is stored (and so served) with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAs {
    pub content_type: String,
    pub cache_control: &'static str,
    /// `inline` with the file's safe name, for originals.
    pub disposition: Option<String>,
}

/// Signs CloudFront URLs with one key of the files CDN's key group. The private key comes
/// from Secrets Manager at start (never an environment variable); `Debug` hides it.
pub struct CdnSigner {
    key_pair_id: String,
    key: SigningKey,
}

impl fmt::Debug for CdnSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CdnSigner").field("key_pair_id", &self.key_pair_id).finish_non_exhaustive()
    }
}

impl CdnSigner {
    /// A P-256 private key in PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE
    /// KEY`, what `openssl ecparam -genkey` writes); `key_pair_id` is the CloudFront public
    /// key's id.
    pub fn from_pem(key_pair_id: &str, pem: &str) -> Result<Self, CoreError> {
        if key_pair_id.is_empty() || !key_pair_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(CoreError::invalid("keyPairId", "is not a CloudFront public key id"));
        }
        let key = SigningKey::from_pkcs8_pem(pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(pem).map(SigningKey::from))
            .map_err(|_| CoreError::invalid("signingKey", "is not a P-256 private key in PEM"))?;
        Ok(CdnSigner { key_pair_id: key_pair_id.to_owned(), key })
    }

    /// `url` with CloudFront's canned-policy parameters appended: valid until `expires`.
    pub fn sign(&self, url: &str, expires: OffsetDateTime) -> Result<String, CoreError> {
        let epoch = expires.unix_timestamp();
        let policy = canned_policy(url, epoch);
        // CloudFront verifies every key type over the policy's SHA-1.
        let hashed = digest(&SHA1_FOR_LEGACY_USE_ONLY, policy.as_bytes());
        let signature: Signature =
            self.key.sign_prehash(hashed.as_ref()).map_err(|_| CoreError::invalid("signingKey", "could not sign"))?;
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok(format!(
            "{url}{sep}Expires={epoch}&Signature={}&Key-Pair-Id={}",
            cloudfront_base64(signature.to_der().as_bytes()),
            self.key_pair_id
        ))
    }
}

/// The policy a canned-policy signature covers, byte for byte as CloudFront rebuilds it.
pub fn canned_policy(url: &str, expires_epoch: i64) -> String {
    let resource = serde_json::Value::from(url).to_string();
    format!(
        r#"{{"Statement":[{{"Resource":{resource},"Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires_epoch}}}}}}}]}}"#
    )
}

/// Base64 with the three characters a query string cannot carry replaced as CloudFront
/// expects: `+` → `-`, `=` → `_`, `/` → `~`.
pub fn cloudfront_base64(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

/// The files CDN: where it is, and the key it signs private URLs with (none: private files
/// get presigned S3 URLs even where the CDN serves public copies).
#[derive(Debug, Clone)]
pub struct FilesCdn {
    base_url: String,
    signer: Option<Arc<CdnSigner>>,
}

impl FilesCdn {
    pub fn new(base_url: &str, signer: Option<CdnSigner>) -> Self {
        FilesCdn { base_url: base_url.trim_end_matches('/').to_owned(), signer: signer.map(Arc::new) }
    }

    /// Where the CDN is, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The stable unsigned URL of the public copy of `key` (an original or a variant).
    pub fn public_url(&self, key: &ObjectKey) -> Option<String> {
        key.public_copy().map(|copy| self.url(&copy))
    }

    /// A signed URL of `key` (a version of it, served with `disposition` and as `content_type`:
    /// the row's, whatever type the object was stored with), valid until `expires`; `None`
    /// without a signing key.
    pub fn signed_url(
        &self,
        key: &ObjectKey,
        version: Option<&str>,
        served_as: Option<(&str, &str)>,
        expires: OffsetDateTime,
    ) -> Option<Result<String, CoreError>> {
        let signer = self.signer.as_ref()?;
        let (disposition, content_type) = served_as.unzip();
        let mut query = form_urlencoded_pairs(&[
            ("versionId", version),
            ("response-content-disposition", disposition),
            ("response-content-type", content_type),
        ]);
        if !query.is_empty() {
            query.insert(0, '?');
        }
        Some(signer.sign(&format!("{}{query}", self.url(key)), expires))
    }

    fn url(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.base_url, edge_path(key.as_str()))
    }
}

fn form_urlencoded_pairs(pairs: &[(&str, Option<&str>)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if let Some(value) = value {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            out.extend(percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;

    use super::*;
    use crate::ids::{FileId, UserId};
    use crate::names::{DisplayName, SafeName};

    /// A throwaway P-256 key made for this test (`openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`); it signs nothing anywhere else.
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCuypSPM4SEECmOG9
3OTiLD5/8jIoawdnNoyfEgH3STehRANCAARsXFubDl1UTlSmooU5WlnE9ShHmbjb
X6zd8KwNvpj9e6E+XT9b3KfjgIBFVeFvLcR44H1H/xATQyXOSzTrt2zH
-----END PRIVATE KEY-----";

    fn query(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').map_or("", |(_, q)| q);
        q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    fn from_cloudfront_base64(s: &str) -> Vec<u8> {
        let std: String = s
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '=',
                '~' => '/',
                c => c,
            })
            .collect();
        STANDARD.decode(std).unwrap()
    }

    #[test]
    fn the_canned_policy_is_the_documented_json() {
        assert_eq!(
            canned_policy("https://d111111abcdef8.cloudfront.net/image.jpg", 1_357_034_400),
            r#"{"Statement":[{"Resource":"https://d111111abcdef8.cloudfront.net/image.jpg","Condition":{"DateLessThan":{"AWS:EpochTime":1357034400}}}]}"#
        );
        assert_eq!(cloudfront_base64(&[0xfb, 0xff, 0xfe]), "-~~-");
        assert_eq!(cloudfront_base64(b"a"), "YQ__");
    }

    #[test]
    fn a_signed_url_verifies_with_the_public_key_over_its_policy() {
        let signer = CdnSigner::from_pem("K2JCJMDEHXQW5F", TEST_KEY).unwrap();
        let expires = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let cdn = FilesCdn::new("https://files.example.org/", Some(signer));
        let key = ObjectKey::variant(FileId::new(1_700_000_000_000, [7; 10]), 640, "webp");
        let served_as = ("attachment; filename=\"a b.jpg\"", "image/jpeg");
        let url = cdn.signed_url(&key, Some("v1"), Some(served_as), expires).unwrap().unwrap();
        let (unsigned, _) = url.split_once("&Expires=").unwrap();
        assert!(unsigned.starts_with(&format!("https://files.example.org/{}?versionId=v1&response-content-disposition=attachment%3B%20filename%3D%22a%20b%2Ejpg%22&response-content-type=image%2Fjpeg", key.as_str())));
        let q = query(&url);
        let get = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("Expires"), "1900000000");
        assert_eq!(get("Key-Pair-Id"), "K2JCJMDEHXQW5F");
        let signature = Signature::from_der(&from_cloudfront_base64(&get("Signature"))).unwrap();
        let public = VerifyingKey::from(&SigningKey::from_pkcs8_pem(TEST_KEY).unwrap());
        let hashed = |policy: &str| digest(&SHA1_FOR_LEGACY_USE_ONLY, policy.as_bytes());
        assert!(public.verify_prehash(hashed(&canned_policy(unsigned, 1_900_000_000)).as_ref(), &signature).is_ok());
        // another expiry, or another resource, is not what was signed
        assert!(public.verify_prehash(hashed(&canned_policy(unsigned, 1_900_000_001)).as_ref(), &signature).is_err());
        let other = unsigned.replace("640.webp", "1280.webp");
        assert!(public.verify_prehash(hashed(&canned_policy(&other, 1_900_000_000)).as_ref(), &signature).is_err());
    }

    /// OpenSSL, not this crate, checks the signature: ECDSA over SHA-1 of the canned policy,
    /// DER-encoded, as CloudFront verifies it.
    #[test]
    fn openssl_verifies_the_signature_over_the_policy() {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let signer = CdnSigner::from_pem("K2JCJMDEHXQW5F", TEST_KEY).unwrap();
        let unsigned = "https://files.example.org/users/auth0%7Cabc/x/a.jpg";
        let url = signer.sign(unsigned, OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()).unwrap();
        let signature = query(&url).into_iter().find(|(k, _)| k == "Signature").unwrap().1;
        let dir = std::env::temp_dir().join(format!("matbakh-cdn-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let public = VerifyingKey::from(&SigningKey::from_pkcs8_pem(TEST_KEY).unwrap());
        std::fs::write(dir.join("pub.pem"), public.to_public_key_pem(LineEnding::LF).unwrap()).unwrap();
        std::fs::write(dir.join("sig.der"), from_cloudfront_base64(&signature)).unwrap();
        let verify = |policy: String| {
            std::fs::write(dir.join("policy"), policy).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["dgst", "-sha1", "-verify", "pub.pem", "-signature", "sig.der", "policy"])
                .current_dir(&dir)
                .output()
                .expect("openssl runs");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(verify(canned_policy(unsigned, 1_800_000_000)), "Verified OK");
        assert_eq!(verify(canned_policy(unsigned, 1_800_000_060)), "Verification failure");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keys_and_ids_that_are_not_usable_are_refused() {
        assert!(CdnSigner::from_pem("K2JCJMDEHXQW5F", "not a key").is_err());
        assert!(CdnSigner::from_pem("", TEST_KEY).is_err());
        assert!(CdnSigner::from_pem("K2&x=1", TEST_KEY).is_err());
        assert!(!format!("{:?}", CdnSigner::from_pem("K2JCJMDEHXQW5F", TEST_KEY).unwrap()).contains("MIGH"));
    }

    #[test]
    fn public_urls_are_the_public_copies_path_and_nothing_else() {
        let cdn = FilesCdn::new("https://files.example.org", None);
        let id = FileId::new(1_700_000_000_000, [7; 10]);
        let user = UserId::parse("auth0|abc").unwrap();
        let name = SafeName::from_display(&DisplayName::parse("Straße (1).jpg").unwrap());
        assert_eq!(
            cdn.public_url(&ObjectKey::original(&user, id, &name)).unwrap(),
            format!("https://files.example.org/p/{id}/original/Stra%C3%9Fe%20%281%29.jpg")
        );
        assert_eq!(
            cdn.public_url(&ObjectKey::variant(id, 320, "avif")).unwrap(),
            format!("https://files.example.org/p/{id}/320.avif")
        );
        assert_eq!(cdn.public_url(&ObjectKey::export_archive(&user, "e1")), None);
        assert!(cdn.signed_url(&ObjectKey::variant(id, 320, "avif"), None, None, OffsetDateTime::UNIX_EPOCH).is_none());
    }
}
