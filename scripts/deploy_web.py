#!/usr/bin/env python3
"""Publish the web app (web/) to the stack's web bucket and CDN: each file with its content type
and the Cache-Control its type calls for, a config.json naming this stack's API and the sign-in
provider, files of an earlier deploy that are gone removed, then the CDN cache invalidated.

    scripts/deploy-web --stack matbakh-files-prod --cognito-domain https://auth.matbakh.app --client-id ID

Everything is checked before the first write: a bad argument or a missing build changes nothing.
Scripts and styles go up before the HTML and JSON that load them. AWS_ENDPOINT_URL is honoured
(the test publishes to moto).
"""

import argparse
import json
import mimetypes
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import boto3
import botocore.exceptions

from stack import Refused, stack_outputs

# What is published: the page, its styles and scripts, the Uppy bundle. Never the bundle's
# sources, npm's files or anything hidden.
PUBLISHED = ("index.html", "public.html", "app.css", "js/*.js", "vendor/*.mjs", "vendor/*.mjs.map", "vendor/*.css")

# Browsers revalidate the app's code on every load (names are not content-hashed, so a cached
# script could outlive the page that imports it; a 304 costs little); the CDN keeps HTML and
# JSON for a minute and code for a day, and this script invalidates both (s-maxage matches the
# template's cache policies).
CACHE_CONTROL = {
    "pages": "public, max-age=0, must-revalidate, s-maxage=60",
    "code": "public, max-age=0, must-revalidate, s-maxage=86400",
    "images": "public, max-age=604800",
}
KIND = {".html": "pages", ".json": "pages", ".js": "code", ".mjs": "code", ".css": "code", ".map": "code",
        ".png": "images", ".svg": "images", ".webp": "images", ".ico": "images"}
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".map": "application/json"}


def content_type(name):
    suffix = Path(name).suffix
    guessed = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return guessed + ("; charset=utf-8" if guessed.startswith("text/") or guessed == "application/json" else "")


def files_to_publish(root):
    """(key, path) pairs in upload order: code first, then images, then pages."""
    if not (root / "vendor" / "uppy.mjs").is_file():
        raise Refused(f"{root}/vendor/uppy.mjs is missing: build the app first (cd web && npm ci && npm run build)")
    found = {}
    for pattern in PUBLISHED:
        for path in sorted(root.glob(pattern)):
            key = path.relative_to(root).as_posix()
            if path.is_file() and not any(part.startswith(".") for part in key.split("/")):
                found[key] = path
    order = {"code": 0, "images": 1, "pages": 2}
    return sorted(found.items(), key=lambda kv: (order[KIND[Path(kv[0]).suffix]], kv[0]))


def https_url(name, value, allow_local=False):
    u = urlparse(value or "")
    local = u.hostname in ("127.0.0.1", "localhost")
    if u.scheme != "https" and not (allow_local and local and u.scheme == "http"):
        raise Refused(f"--{name} must be an https:// URL, got {value!r}")
    if not u.hostname:
        raise Refused(f"--{name} has no host: {value!r}")
    return value.rstrip("/")


def wss_url(value):
    u = urlparse(value)
    if u.scheme != "wss" or not u.hostname:
        raise Refused(f"--live must be a wss:// URL, got {value!r}")
    return value.rstrip("/")


def web_config(args, api_url, live_url=None):
    """config.json: where the API is, how to sign in (OIDC code flow with PKCE) and where the
    live updates' WebSocket is (without it the app polls)."""
    if args.cognito_domain:
        domain = https_url("cognito-domain", args.cognito_domain)
        endpoints = {"authorizationEndpoint": f"{domain}/oauth2/authorize", "tokenEndpoint": f"{domain}/oauth2/token",
                     "logoutEndpoint": f"{domain}/logout"}
    elif args.authorization_endpoint and args.token_endpoint:
        endpoints = {"authorizationEndpoint": https_url("authorization-endpoint", args.authorization_endpoint),
                     "tokenEndpoint": https_url("token-endpoint", args.token_endpoint)}
        if args.logout_endpoint:
            endpoints["logoutEndpoint"] = https_url("logout-endpoint", args.logout_endpoint)
    else:
        raise Refused("name the sign-in provider: --cognito-domain, or --authorization-endpoint and --token-endpoint")
    if not args.client_id:
        raise Refused("--client-id is required (the OIDC client the API's AuthAudience names)")
    auth = {**endpoints, "clientId": args.client_id, "scope": args.scope}
    config = {"api": https_url("api", api_url, allow_local=True), "auth": auth}
    if live_url:
        config["live"] = wss_url(live_url)
    return config


def existing_keys(s3, bucket):
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


def publish(s3, bucket, files, config):
    """Uploads in order, config.json last (with the pages); returns the keys written."""
    bodies = [(key, path.read_bytes()) for key, path in files] + [("config.json", json.dumps(config, indent=2).encode())]
    for key, body in bodies:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type(key),
                      CacheControl=CACHE_CONTROL[KIND[Path(key).suffix]])
    return [key for key, _ in bodies]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stack", help="read WebBucketName, WebDistributionId, ApiUrl and LiveUrl from this stack's outputs")
    ap.add_argument("--bucket", help="the web bucket (instead of --stack)")
    ap.add_argument("--distribution", help="the web CDN to invalidate (instead of --stack; none: no invalidation)")
    ap.add_argument("--api", help="the API's base URL (default: the stack's ApiUrl)")
    ap.add_argument("--live", help="the live updates' WebSocket URL (default: the stack's LiveUrl; none: the app polls)")
    ap.add_argument("--cognito-domain", help="Cognito hosted UI domain, e.g. https://auth.matbakh.app")
    ap.add_argument("--authorization-endpoint", help="any OIDC provider: its authorization endpoint")
    ap.add_argument("--token-endpoint", help="any OIDC provider: its token endpoint")
    ap.add_argument("--logout-endpoint", help="optional: where sign-out sends the browser")
    ap.add_argument("--client-id", help="the public OIDC client (no secret) the app signs in with")
    ap.add_argument("--scope", default="openid", help="OIDC scopes (default: openid)")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent / "web"), help="the app (default: web/)")
    ap.add_argument("--keep-old", action="store_true", help="do not delete files an earlier deploy left")
    ap.add_argument("--region", help="AWS region (default: the SDK's)")
    args = ap.parse_args(argv)

    session = boto3.session.Session(region_name=args.region)
    try:
        if bool(args.stack) == bool(args.bucket):
            raise Refused("give --stack, or --bucket (with --api and optionally --distribution)")
        outputs = stack_outputs(session.client("cloudformation"), args.stack) if args.stack else {}
        bucket = args.bucket or outputs.get("WebBucketName")
        distribution = args.distribution or outputs.get("WebDistributionId")
        api = args.api or outputs.get("ApiUrl")
        if not bucket:
            raise Refused(f"stack {args.stack} has no WebBucketName output (deploy template.yaml first)")
        config = web_config(args, api, args.live or outputs.get("LiveUrl"))
        files = files_to_publish(Path(args.root))
        s3 = session.client("s3")
        before = existing_keys(s3, bucket)
    except Refused as e:
        print(f"deploy-web: {e}", file=sys.stderr)
        return 2
    except botocore.exceptions.ClientError as e:
        print(f"deploy-web: {e}", file=sys.stderr)
        return 1

    written = publish(s3, bucket, files, config)
    stale = sorted(before - set(written)) if not args.keep_old else []
    for i in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale[i:i + 1000]], "Quiet": True})
    print(f"published {len(written)} files to s3://{bucket} (config.json and {sum(p.stat().st_size for _, p in files)}"
          f" bytes of app), removed {len(stale)} left by an earlier deploy")
    if distribution:
        cf = session.client("cloudfront")
        inv = cf.create_invalidation(DistributionId=distribution, InvalidationBatch={
            "Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": f"deploy-web-{time.time_ns()}"})
        print(f"invalidated /* on {distribution}: {inv['Invalidation']['Id']} ({inv['Invalidation']['Status']})")
    if outputs.get("WebUrl"):
        print(f"the app: {outputs['WebUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
