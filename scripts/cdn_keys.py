#!/usr/bin/env python3
"""The files CDN's signing key (CloudFront signed URLs of private files, canned policy): an ECDSA
P-256 key pair. Its private half goes into the stack's Secrets Manager secret
`FilesSigningKeySecret` (PEM, PKCS#8), which the functions that hand out URLs of private files
(files API, presign, shares) read at start; its public half is printed, for the template
parameter `FilesSigningPublicKey` of the next deploy.

    scripts/cdn-keys --stack matbakh-files-prod create > files-cdn-public.pem
    sam deploy --parameter-overrides "FilesSigningPublicKey=\\"$(cat files-cdn-public.pem)\\"" ...

CloudFormation makes the secret empty (it cannot make an EC key). `create` refuses (exit 2,
nothing written) when the secret already holds a PEM, unless --replace: a new key pair signs URLs
CloudFront rejects until the stack is deployed with the new public half, and the functions'
running instances keep the key they read at start. The private key is never printed or written
anywhere but the secret. AWS_ENDPOINT_URL is honoured (tests/template runs it against moto).
"""

import argparse
import sys

import boto3
import botocore.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stack import Refused, stack_outputs

OUTPUT = "FilesSigningKeySecretArn"


def new_key_pair():
    """(private PEM, PKCS#8, unencrypted; public PEM, SubjectPublicKeyInfo) of a new P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def current_value(sm, secret_id):
    """The secret's current value, or None while it has none (as CloudFormation makes it)."""
    try:
        sm.describe_secret(SecretId=secret_id)
    except botocore.exceptions.ClientError as e:
        raise Refused(f"secret {secret_id}: {e.response['Error'].get('Message', e)}") from e
    try:
        return sm.get_secret_value(SecretId=secret_id).get("SecretString")
    except sm.exceptions.ResourceNotFoundException:
        return None  # the secret exists (described above) but has no value yet


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["create"], help="create: a new key pair; the private half into the secret, the public half printed")
    ap.add_argument("--stack", help=f"read the secret from this stack's {OUTPUT} output")
    ap.add_argument("--secret", help="the secret (instead of --stack)")
    ap.add_argument("--replace", action="store_true", help="replace a key the secret already holds")
    ap.add_argument("--region", help="AWS region (default: the SDK's)")
    args = ap.parse_args(argv)

    session = boto3.session.Session(region_name=args.region)
    try:
        if bool(args.stack) == bool(args.secret):
            raise Refused("give --stack or --secret")
        secret_id = args.secret or stack_outputs(session.client("cloudformation"), args.stack).get(OUTPUT)
        if not secret_id:
            raise Refused(f"stack {args.stack} has no {OUTPUT} output (deploy template.yaml first)")
        sm = session.client("secretsmanager")
        value = current_value(sm, secret_id)
        # Anything PEM-like counts as a key: never written over by accident, also a damaged one.
        if value and "-----BEGIN" in value and not args.replace:
            raise Refused(f"secret {secret_id} already holds a key; --replace makes a new pair "
                          "(URLs signed with it fail until the stack is deployed with its public half)")
    except Refused as e:
        print(f"cdn-keys: {e}", file=sys.stderr)
        return 2
    except botocore.exceptions.ClientError as e:
        print(f"cdn-keys: {e}", file=sys.stderr)
        return 1

    private, public = new_key_pair()
    sm.put_secret_value(SecretId=secret_id, SecretString=private)
    print(public, end="")
    print("cdn-keys: the private key is in the secret; deploy with the public key above as "
          "FilesSigningPublicKey (until then the files CDN accepts no signed URL)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
