#!/usr/bin/env python3
"""The files API through the local stack as the web app reaches it (gateway -> functions):
search finds a demo photo and its variants download; an image URL from image-urls renders
through the local transform path (a tampered one is refused); a share link opened without
login gives the same bytes; made public, the photo loads signed out from the local files CDN
(/cdn/p/...) and a private key's CDN path is refused, made private again its public URL stops
at once; usage and the audit trail answer; a GDPR export (API -> queue -> pump
-> exporter) becomes a ZIP holding every stored file byte for byte.

    smoke_files.py --api http://127.0.0.1:3000 --token TOKEN --photo corpus/photos/ladybird.jpg
"""

import argparse
import hashlib
import io
import json
import sys
import time
import urllib.error
import urllib.request
import zipfile


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def call(api, token, method, path, body=None, follow=True):
    req = urllib.request.Request(api + path, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("content-type", "application/json")
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_bytes(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def public_delivery(api, token, f, photo):
    """Public: the original and a variant at stable CDN URLs, signed out; private: refused."""
    uri = f"/v1/files/{f['fileId']}"
    status, _, body = call(api, token, "PATCH", uri, {"visibility": "public"})
    shown = json.loads(body) if status == 200 else sys.exit(f"make public: {status} {body!r}")
    public_url, variant_url = shown.get("publicUrl"), shown["variants"][0]["url"]
    if not public_url or "/cdn/p/" not in public_url or "/cdn/p/" not in variant_url or "?" in variant_url:
        sys.exit(f"a public file's URLs are not its stable CDN URLs: {public_url} {variant_url}")
    status, headers, original = call(public_url, None, "GET", "")
    headers = {k.lower(): v for k, v in headers.items()}
    if status != 200 or hashlib.sha256(original).digest() != hashlib.sha256(photo).digest():
        sys.exit(f"the public URL answered {status} with {len(original)} bytes")
    if "must-revalidate" not in headers.get("cache-control", "") or not headers.get("content-disposition", "").startswith("inline"):
        sys.exit(f"the public original's headers: {headers}")
    status, headers, _ = call(variant_url, None, "GET", "")
    if status != 200 or "immutable" not in {k.lower(): v for k, v in headers.items()}.get("cache-control", ""):
        sys.exit(f"the public variant answered {status} {headers}")
    # the original's own key through the CDN, unsigned: refused like the bucket policy refuses it
    private_path = public_url.split("/cdn/", 1)[0] + f"/cdn/users/demo-user/{f['fileId']}/{f['name']}"
    status, _, _ = call(private_path, None, "GET", "")
    if status != 403:
        sys.exit(f"an unsigned CDN path outside p/ answered {status}")
    status, _, body = call(api, token, "PATCH", uri, {"visibility": "private"})
    if status != 200 or "publicUrl" in json.loads(body):
        sys.exit(f"make private: {status} {body!r}")
    for url in (public_url, variant_url):
        status, _, _ = call(url, None, "GET", "")
        if status != 403:
            sys.exit(f"after going private, {url} answered {status}")
    print(f"public: the original ({len(original)} bytes, same) and a variant loaded signed out from /cdn/p/; "
          "an unsigned key outside p/ refused (403); private again: both refused (403)", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--api", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--photo", required=True)
    args = ap.parse_args()
    api, token = args.api, args.token
    photo = open(args.photo, "rb").read()

    status, _, body = call(api, token, "GET", "/v1/files?q=LADYB")
    files = json.loads(body)["files"] if status == 200 else sys.exit(f"search: {status} {body!r}")
    match = [f for f in files if f["name"] == "ladybird.jpg" and f["status"] == "READY"]
    if not match:
        sys.exit(f"search did not find ladybird.jpg: {[f['name'] for f in files]}")
    f = match[0]
    if not f.get("variants"):
        sys.exit(f"no variants listed: {f}")
    variant = get_bytes(f["variants"][0]["url"])
    print(f"search: {len(files)} found, {len(f['variants'])} variants, the first {len(variant)} bytes", file=sys.stderr)

    asked = {"presets": ["card"], "widths": [320], "format": "webp"}
    status, _, body = call(api, token, "POST", f"/v1/files/{f['fileId']}/image-urls", asked)
    if status != 200:
        sys.exit(f"image-urls: {status} {body!r}")
    url = json.loads(body)["images"][0]["urls"][0]["url"]
    with urllib.request.urlopen(url, timeout=300) as r:  # the first one builds the transformer
        kind, image = r.headers.get("content-type"), r.read()
    if kind != "image/webp" or image[:4] != b"RIFF" or image[8:12] != b"WEBP":
        sys.exit(f"the image URL gave {kind} {image[:12]!r}")
    # Asked again, the gateway's edge mapping finds the stored result in the bucket (as the files
    # CDN's origin group does) and no function runs.
    with urllib.request.urlopen(url, timeout=60) as r:
        again, cache = r.read(), r.headers.get("x-cache")
    if again != image or cache != "stored result":
        sys.exit(f"the second request was not the stored result (x-cache {cache!r})")
    signature = url.split("/t/", 1)[1].split("/", 1)[0]
    tampered = url.replace(signature, ("A" if signature[0] != "A" else "B") + signature[1:], 1)
    status, headers, _ = call(tampered, None, "GET", "")
    reason = headers.get("x-error-reason") or headers.get("X-Error-Reason")
    if status != 403 or reason != "bad_signature":
        sys.exit(f"a tampered image URL answered {status} {reason}")
    print(f"image-urls: a signed card of {len(image)} bytes (WebP) through /t/, then the stored result; "
          "a tampered URL refused at the edge (403)", file=sys.stderr)

    public_delivery(api, token, f, photo)

    status, _, body = call(api, token, "POST", f"/v1/files/{f['fileId']}/shares", {"expiresIn": 600, "maxDownloads": 1})
    if status != 201:
        sys.exit(f"share: {status} {body!r}")
    link = json.loads(body)["url"]
    path = link[link.index("/v1/shares/"):]
    status, headers, _ = call(api, None, "GET", path, follow=False)
    if status != 302:
        sys.exit(f"share link answered {status}")
    shared = get_bytes(headers["Location"] if "Location" in headers else headers["location"])
    if hashlib.sha256(shared).digest() != hashlib.sha256(photo).digest():
        sys.exit("the share link gave other bytes")
    status, _, _ = call(api, None, "GET", path, follow=False)
    if status != 410:
        sys.exit(f"a used-up link answered {status}")
    print("share: one download through the link, same bytes; the second refused (410)", file=sys.stderr)

    status, _, body = call(api, token, "GET", "/v1/me/usage")
    usage = json.loads(body)
    if status != 200 or usage["files"] < 1:
        sys.exit(f"usage: {status} {usage}")
    status, _, body = call(api, token, "GET", "/v1/me/audit?limit=5")
    trail = json.loads(body)["records"]
    if status != 200 or not any(r["action"] == "share_download" for r in trail):
        sys.exit(f"audit trail: {status} {trail}")
    print(f"usage: {usage['files']} files, {usage['bytesUsed']} bytes; audit: {len(trail)} latest records", file=sys.stderr)

    status, _, body = call(api, token, "POST", "/v1/me/export")
    if status != 202:
        sys.exit(f"export: {status} {body!r}")
    job = json.loads(body)
    deadline = time.monotonic() + 300
    while job["status"] != "READY":
        if time.monotonic() > deadline:
            sys.exit(f"export not ready: {job}")
        time.sleep(1)
        status, _, body = call(api, token, "GET", job["statusUrl"])
        job = json.loads(body)
    archive = zipfile.ZipFile(io.BytesIO(get_bytes(job["url"])))
    if archive.testzip() is not None:
        sys.exit("the export's CRC check failed")
    names = archive.namelist()
    ours = [n for n in names if n.startswith(f"files/{f['fileId']}/")]
    if len(ours) != 1 or archive.read(ours[0]) != photo:
        sys.exit(f"the export does not hold the photo byte for byte: {names}")
    meta = json.loads(archive.read("metadata.json"))
    stored = [d for d in meta["files"] if d["path"]]
    trail = json.loads(archive.read("audit.json"))["records"]
    if len(stored) != job["files"] or len(names) != job["files"] + 2 or not trail:
        sys.exit(f"metadata lists {len(stored)} stored, the archive holds {len(names)}, the job says {job['files']}, {len(trail)} audit records")
    print(f"export: {job['files']} files in {job['size']} bytes and {len(trail)} audit records, CRCs good, the photo byte for byte", file=sys.stderr)


if __name__ == "__main__":
    main()
