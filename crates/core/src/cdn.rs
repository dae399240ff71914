//! What the CDN caches of a file, as the paths a CloudFront invalidation names (security
//! review 16.4: deleted and erased images must not stay at the edge).
//!
//! The files CDN's transform function (template.yaml, `transform-request`, on `/t/*`) rewrites a
//! transform URL to its
//! result key, [`result_prefix`] + encoder + canonical options, and writes it into the request
//! path with every `/`-separated segment encoded as JavaScript's `encodeURIComponent` encodes it,
//! `!'()*` escaped too. A viewer-request rewrite is the path of the cache key, so every cached
//! result of the source `users/{sub}/{fileId}/{name}` lies under `/results/users/{sub}/{fileId}/`,
//! spelled as [`edge_path`] spells it. The files CDN (`FILES_CDN_BASE_URL`,
//! [`crate::delivery`]) caches a private file's variants under their signed URLs' path,
//! `{base path}/derived/{fileId}/...`, and a public file's copies under `/p/{fileId}/...`.
//!
//! A wildcard counts as one path (CloudFront bills per path, and allows 15 wildcard paths in
//! progress at once per distribution), so a file's results are one path, and so are a user's.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::ids::{FileId, ObjectKey, UserId};
use crate::imgproxy::result_prefix;

/// What `encodeURIComponent` keeps, less `!'()*`: letters, digits and `-_.~`. Also what a
/// result key's option text keeps as it is (`imgproxy::canonical`).
pub(crate) const SEGMENT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `key` (or a key prefix) as the edge writes it into the request path: `/` and each segment
/// percent-encoded (UTF-8, upper-case hex), the `/` between segments kept.
pub fn edge_path(key: &str) -> String {
    key.split('/').fold(String::with_capacity(key.len() + 1), |mut path, segment| {
        path.push('/');
        path.extend(utf8_percent_encode(segment, SEGMENT_ESCAPES));
        path
    })
}

/// Every cached result of the source `key` (`users/{sub}/{fileId}/{name}`), whatever its name:
/// `/results/users/{sub}/{fileId}/*`. `None` for a key of another shape (no results are made
/// from it).
pub fn file_results(key: &str) -> Option<String> {
    ObjectKey::file_id_of(key)?;
    let mut parts = key.splitn(4, '/');
    let (users, sub, file) = (parts.next()?, parts.next()?, parts.next()?);
    Some(wildcard(&result_prefix(&format!("{users}/{sub}/{file}"))))
}

/// Every cached result of every file of `user`: `/results/users/{sub}/*`.
pub fn user_results(user: &UserId) -> String {
    wildcard(&result_prefix(ObjectKey::user_prefix(user).trim_end_matches('/')))
}

/// Every public copy of `file` at the files CDN: `/p/{fileId}/*`.
pub fn public_copies(file: FileId) -> String {
    wildcard(&ObjectKey::public_prefix(file))
}

/// Every public copy of every file at the files CDN: `/p/*` (an erase of many public files).
pub fn all_public_copies() -> String {
    "/p/*".to_owned()
}

/// Every variant of `file` on the CDN whose URLs start with `cdn_base_url`:
/// `{its path}/derived/{fileId}/*`.
pub fn file_variants(cdn_base_url: &str, file: FileId) -> String {
    format!("{}/{}*", url_path(cdn_base_url), ObjectKey::derived_prefix(file))
}

/// Every variant of every file on that CDN: `{its path}/derived/*`. Variant keys name no user,
/// and one wildcard a file would soon pass the 15 wildcard paths CloudFront has in progress at
/// once, so an erase invalidates them all (they are fetched again from the bucket).
pub fn all_variants(cdn_base_url: &str) -> String {
    format!("{}/derived/*", url_path(cdn_base_url))
}

/// Every original of `user` on the CDN whose URLs start with `cdn_base_url` (signed download
/// URLs): `{its path}/users/{sub}/*`, the sub spelled as [`edge_path`] spells it.
pub fn user_originals(cdn_base_url: &str, user: &UserId) -> String {
    format!("{}{}/*", url_path(cdn_base_url), edge_path(ObjectKey::user_prefix(user).trim_end_matches('/')))
}

/// Every cached result of every file: `/results/*`.
pub fn all_results() -> String {
    "/results/*".to_owned()
}

/// Wildcard paths one request names of files that went (a rollback's) before it names every
/// file's instead: CloudFront has at most 15 wildcard paths in progress at once, and other
/// requests (an erase's, an unpublish's) need room beside it.
pub const GONE_FILES_WILDCARDS_MAX: usize = 10;

/// What the files CDN is asked to forget of the files `keys` (`users/{sub}/{fileId}/{name}`)
/// once they are gone: what anyone reaches without a signed URL, their public copies and the
/// transform results of their image URLs (a public file's never expire). One wildcard each,
/// or, past [`GONE_FILES_WILDCARDS_MAX`], every file's (`/p/*`, `/results/*`). Variants and
/// originals need no invalidation: the CDN serves them only to a signed URL, which only the
/// file's row gives out, until it expires.
pub fn gone_files(keys: &[ObjectKey]) -> Vec<String> {
    let paths: Vec<String> = keys
        .iter()
        .filter_map(|key| Some((ObjectKey::file_id_of(key.as_str())?, file_results(key.as_str())?)))
        .flat_map(|(file, results)| [public_copies(file), results])
        .collect();
    match paths.len() {
        0 => Vec::new(),
        n if n <= GONE_FILES_WILDCARDS_MAX => paths,
        _ => vec![all_public_copies(), all_results()],
    }
}

/// The path of a base URL, without its trailing `/` (empty for the root).
fn url_path(base_url: &str) -> &str {
    let host_and_path = base_url.split_once("://").map_or(base_url, |(_, rest)| rest);
    host_and_path.find('/').map_or("", |i| host_and_path[i..].trim_end_matches('/'))
}

/// `prefix` (ending in `/`) and everything under it.
fn wildcard(prefix: &str) -> String {
    format!("{}*", edge_path(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> FileId {
        FileId::new(1_700_000_000_000, [7; 10])
    }

    /// Expected values are what the function's code gives (`encodeURIComponent(s).replace(/[!'()*]/g, ...)`,
    /// run in Node for these strings).
    #[test]
    fn segments_are_encoded_as_the_edge_encodes_them() {
        assert_eq!(edge_path("results/users/auth0|abc"), "/results/users/auth0%7Cabc");
        assert_eq!(edge_path("a:b@c+d"), "/a%3Ab%40c%2Bd");
        assert_eq!(edge_path("Straße (1)*!~.jpg"), "/Stra%C3%9Fe%20%281%29%2A%21~.jpg");
        assert_eq!(edge_path("it's/rt:fill,w:300.webp"), "/it%27s/rt%3Afill%2Cw%3A300.webp");
        assert_eq!(edge_path("😀 ä/x/"), "/%F0%9F%98%80%20%C3%A4/x/");
    }

    #[test]
    fn a_files_results_are_one_wildcard_under_its_owner_and_id_whatever_its_name() {
        let id = file();
        let want = format!("/results/users/auth0%7Cabc/{id}/*");
        for name in ["a.jpg", "Straße (1).jpg", "dir/it's.jpg"] {
            assert_eq!(file_results(&format!("users/auth0|abc/{id}/{name}")).as_deref(), Some(want.as_str()), "{name}");
        }
        // Every result key of the file (as the transformer stores it) is under that path.
        let stored = edge_path(&format!("results/users/auth0|abc/{id}/Straße (1).jpg/e1/rt:fill,w:300.webp"));
        assert!(stored.starts_with(want.trim_end_matches('*')), "{stored}");
        for key in [format!("derived/{id}/320.webp"), format!("users/u/{id}/"), "users/u/not-an-id/a.jpg".into()] {
            assert_eq!(file_results(&key), None, "{key}");
        }
    }

    #[test]
    fn a_users_originals_are_one_wildcard_under_the_cdns_path_as_signed_urls_spell_them() {
        let user = UserId::parse("auth0|abc").unwrap();
        assert_eq!(user_originals("https://files.matbakh.test", &user), "/users/auth0%7Cabc/*");
        assert_eq!(user_originals("https://cdn.example/files/", &user), "/files/users/auth0%7Cabc/*");
        let key = ObjectKey::from_stored("users/auth0|abc/0196c6f0b1c27f3a8d2e4b5c6d7e8f90/dish.jpg".to_owned());
        assert!(format!("https://files.matbakh.test{}", edge_path(key.as_str())).starts_with(&format!(
            "https://files.matbakh.test{}",
            user_originals("https://files.matbakh.test", &user).trim_end_matches('*')
        )));
    }

    #[test]
    fn a_users_results_are_one_wildcard() {
        assert_eq!(user_results(&UserId::parse("a:b@c+d").unwrap()), "/results/users/a%3Ab%40c%2Bd/*");
        assert_eq!(user_results(&UserId::parse("0f3c-9a").unwrap()), "/results/users/0f3c-9a/*");
    }

    #[test]
    fn public_copies_are_one_wildcard_a_file() {
        let id = file();
        assert_eq!(public_copies(id), format!("/p/{id}/*"));
        let copy = ObjectKey::variant(id, 320, "webp").public_copy().unwrap();
        assert!(edge_path(copy.as_str()).starts_with(public_copies(id).trim_end_matches('*')));
        assert!(public_copies(id).starts_with(all_public_copies().trim_end_matches('*')));
    }

    #[test]
    fn gone_files_are_forgotten_one_wildcard_a_kind_each_or_all_at_once() {
        let key = |n: u8| {
            ObjectKey::from_stored(format!("users/u{n}/{}/photo {n}.jpg", FileId::new(1_700_000_000_000, [n; 10])))
        };
        let id = |n: u8| FileId::new(1_700_000_000_000, [n; 10]);
        assert!(gone_files(&[]).is_empty());
        assert_eq!(gone_files(&[key(1)]), [format!("/p/{}/*", id(1)), format!("/results/users/u1/{}/*", id(1))]);
        let five: Vec<ObjectKey> = (1..=5).map(key).collect();
        assert_eq!(gone_files(&five).len(), GONE_FILES_WILDCARDS_MAX);
        let six: Vec<ObjectKey> = (1..=6).map(key).collect();
        assert_eq!(gone_files(&six), ["/p/*", "/results/*"]);
        for path in gone_files(&five) {
            let wide = if path.starts_with("/p/") { all_public_copies() } else { all_results() };
            assert!(path.starts_with(wide.trim_end_matches('*')), "{path} under {wide}");
        }
        assert!(
            gone_files(&[ObjectKey::from_stored("legacy-archive/x.jpg".into())]).is_empty(),
            "no file of the platform"
        );
    }

    #[test]
    fn variants_are_under_the_cdn_base_urls_path() {
        let id = file();
        assert_eq!(file_variants("https://cdn.example.com", id), format!("/derived/{id}/*"));
        assert_eq!(file_variants("https://cdn.example.com/", id), format!("/derived/{id}/*"));
        assert_eq!(file_variants("https://files.example.com/media/", id), format!("/media/derived/{id}/*"));
        assert_eq!(all_variants("https://cdn.example.com"), "/derived/*");
        assert_eq!(all_variants("https://files.example.com/media/"), "/media/derived/*");
    }
}
