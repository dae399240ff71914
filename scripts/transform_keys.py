#!/usr/bin/env python3
"""The transform URLs' signing key/salt pairs: one Secrets Manager secret (the transformer reads
it) and its copy in the image CDN's CloudFront KeyValueStore (the edge checks signatures with it,
DECISIONS 29). This script is the only writer of the copy.

    scripts/transform-keys --stack matbakh-files-prod sync      # after every deploy: the store := the secret
    scripts/transform-keys --stack matbakh-files-prod rotate    # a new first pair; keeps the newest --keep (2)
    TRANSFORM_KEYS=... TRANSFORM_SALTS=... scripts/transform-keys --stack ... import   # bring pairs in use

The secret is JSON {"keys": "hex,...", "salts": "hex,..."} (imgproxy's IMGPROXY_KEYS/SALTS, paired
by position; signers use the first pair, every pair is accepted). The store holds one entry,
`pairs`: "keyhex:salthex,...". Everything is checked before the first write (bad input: exit 2,
nothing changed). A rotation writes the store before the secret, so the edge accepts a new pair
before anyone can sign with it; transformer instances read it within TRANSFORM_SECRET_REFRESH_SECONDS.
AWS_ENDPOINT_URL is honoured (tests/template runs the secret side against moto; moto has no
KeyValueStore data plane, so that side is tested with a stand-in).
"""

import argparse
import json
import os
import re
import secrets
import sys

import boto3
import botocore.exceptions

from stack import Refused, stack_outputs

ENTRY = "pairs"
# CloudFront KeyValueStore values are at most 1 KB: seven pairs of 32-byte keys and salts.
MAX_ENTRY_BYTES = 1024
DEFAULT_KEEP = 2
HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def parse_pairs(keys, salts, where):
    """(key, salt) hex pairs from comma-separated lists, as the transformer's SigningKeys reads them."""
    split = lambda s: [p.strip() for p in (s or "").split(",") if p.strip()]
    keys, salts = split(keys), split(salts)
    if len(keys) != len(salts):
        raise Refused(f"{where}: {len(keys)} keys but {len(salts)} salts (they pair up by position)")
    for i, (k, s) in enumerate(zip(keys, salts), 1):
        if not HEX.match(k):
            raise Refused(f"{where}: key {i} is not hex (or is empty)")
        if s and not HEX.match(s):
            raise Refused(f"{where}: salt {i} is not hex")
    if not keys:
        raise Refused(f"{where}: no key/salt pair")
    return [(k.lower(), s.lower()) for k, s in zip(keys, salts)]


def secret_value(pairs):
    return json.dumps({"keys": ",".join(k for k, _ in pairs), "salts": ",".join(s for _, s in pairs)})


def entry_value(pairs):
    value = ",".join(f"{k}:{s}" for k, s in pairs)
    if len(value.encode()) > MAX_ENTRY_BYTES:
        raise Refused(f"{len(pairs)} pairs take {len(value)} bytes; the KeyValueStore holds {MAX_ENTRY_BYTES} (keep fewer)")
    return value


def read_secret(sm, secret_id):
    try:
        text = sm.get_secret_value(SecretId=secret_id)["SecretString"]
    except botocore.exceptions.ClientError as e:
        raise Refused(f"secret {secret_id}: {e.response['Error'].get('Message', e)}") from e
    try:
        doc = json.loads(text)
        keys, salts = doc["keys"], doc["salts"]
    except (ValueError, KeyError, TypeError) as e:
        raise Refused(f"secret {secret_id} is not JSON with \"keys\" and \"salts\"") from e
    return parse_pairs(keys, salts, f"secret {secret_id}")


def stored_entry(kvs, arn):
    """The store's ETag (for the conditional write) and its current entry, or None."""
    etag = kvs.describe_key_value_store(KvsARN=arn)["ETag"]
    try:
        return etag, kvs.get_key(KvsARN=arn, Key=ENTRY)["Value"]
    except kvs.exceptions.ResourceNotFoundException:
        return etag, None


def write_entry(kvs, arn, value):
    etag, current = stored_entry(kvs, arn)
    if current == value:
        return False
    kvs.put_key(KvsARN=arn, Key=ENTRY, Value=value, IfMatch=etag)
    return True


def main(argv=None, kvs=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["sync", "rotate", "import"], nargs="?", default="sync",
                    help="sync: the store gets the secret's pairs; rotate: a new first pair; "
                         "import: the pairs in TRANSFORM_KEYS/TRANSFORM_SALTS (environment)")
    ap.add_argument("--stack", help="read TransformSigningSecretArn and TransformKeyStoreArn from this stack")
    ap.add_argument("--secret", help="the secret (instead of --stack)")
    ap.add_argument("--store", help="the KeyValueStore's ARN (instead of --stack)")
    ap.add_argument("--keep", type=int, default=DEFAULT_KEEP, help=f"rotate: pairs kept, newest first (default {DEFAULT_KEEP})")
    ap.add_argument("--region", help="AWS region (default: the SDK's)")
    args = ap.parse_args(argv)

    session = boto3.session.Session(region_name=args.region)
    try:
        if bool(args.stack) == bool(args.secret or args.store):
            raise Refused("give --stack, or --secret and --store")
        outputs = stack_outputs(session.client("cloudformation"), args.stack) if args.stack else {}
        secret_id = args.secret or outputs.get("TransformSigningSecretArn")
        store = args.store or outputs.get("TransformKeyStoreArn")
        if not secret_id or not store:
            raise Refused(f"stack {args.stack} has no TransformSigningSecretArn/TransformKeyStoreArn output (deploy template.yaml first)")
        if args.keep < 1:
            raise Refused("--keep must be at least 1")
        sm = session.client("secretsmanager")
        kvs = kvs or session.client("cloudfront-keyvaluestore")
        if args.command == "import":
            pairs = parse_pairs(os.environ.get("TRANSFORM_KEYS"), os.environ.get("TRANSFORM_SALTS"), "TRANSFORM_KEYS/SALTS")
            try:
                sm.describe_secret(SecretId=secret_id)
            except botocore.exceptions.ClientError as e:
                raise Refused(f"secret {secret_id}: {e.response['Error'].get('Message', e)}") from e
        elif args.command == "rotate":
            pairs = [(secrets.token_hex(32), secrets.token_hex(32))] + read_secret(sm, secret_id)
            pairs = pairs[:args.keep]
        else:
            pairs = read_secret(sm, secret_id)
        value = entry_value(pairs)
    except Refused as e:
        print(f"transform-keys: {e}", file=sys.stderr)
        return 2
    except botocore.exceptions.ClientError as e:
        print(f"transform-keys: {e}", file=sys.stderr)
        return 1

    # The edge first: a pair is accepted there before anyone can read it from the secret.
    changed = write_entry(kvs, store, value)
    if args.command != "sync":
        sm.put_secret_value(SecretId=secret_id, SecretString=secret_value(pairs))
    print(f"{args.command}: {len(pairs)} key/salt pair(s); the edge's store {'updated' if changed else 'already current'}"
          + ("" if args.command == "sync" else "; the secret updated (transformers read it within"
             " TRANSFORM_SECRET_REFRESH_SECONDS, 300 s by default)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
