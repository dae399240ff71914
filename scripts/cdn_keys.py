#!/usr/bin/env python3
"""The files CDN's signing keys (CloudFront signed URLs of private files, canned policy): ECDSA
P-256 key pairs in two slots, A and B (DECISIONS 31: during a change CloudFront trusts both).
The private halves live in the stack's Secrets Manager secret `FilesSigningKeySecret`, JSON
{"A": PEM, "B": PEM} (PKCS#8); the functions that hand out URLs of private files (files API,
presign, shares) read the slot the template parameter `FilesSigningSlot` names at start. A public
half is printed once, for the template parameter `FilesSigningKeyA` or `FilesSigningKeyB`.

    scripts/cdn-keys --stack matbakh-files-prod create --slot A > a.pem   # the first key
    sam deploy --parameter-overrides "FilesSigningKeyA=\\"$(cat a.pem)\\"" ...

    # Rotation (README, "Files CDN"): a key in the other slot, trusted, then used, then the old one retired.
    scripts/cdn-keys --stack matbakh-files-prod create --slot B > b.pem
    sam deploy ... "FilesSigningKeyB=\\"$(cat b.pem)\\""                      # CloudFront trusts A and B
    sam deploy ... FilesSigningSlot=B                                        # the functions sign with B
    # after the longest-lived URL signed with A expired:
    sam deploy ... "FilesSigningKeyA=\\"\\""
    scripts/cdn-keys --stack matbakh-files-prod retire --slot A

CloudFormation makes the secret empty (it cannot make an EC key). `create` refuses (exit 2,
nothing written) when the slot already holds a key, unless --replace; neither `create --replace`
nor `retire` touches the slot the stack signs with (its `FilesSigningSlot` parameter): the
functions would sign with a key CloudFront does not trust. The private key is never printed or
written anywhere but the secret. AWS_ENDPOINT_URL is honoured (tests/template runs it against
moto).
"""

import argparse
import json
import sys

import boto3
import botocore.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stack import Refused, stack_outputs

OUTPUT = "FilesSigningKeySecretArn"
SLOTS = ("A", "B")
ACTIVE_PARAMETER = "FilesSigningSlot"


def new_key_pair():
    """(private PEM, PKCS#8, unencrypted; public PEM, SubjectPublicKeyInfo) of a new P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def current_slots(sm, secret_id):
    """The secret's slots ({} while it has no value, as CloudFormation makes it, or holds no slots)."""
    try:
        sm.describe_secret(SecretId=secret_id)
    except botocore.exceptions.ClientError as e:
        raise Refused(f"secret {secret_id}: {e.response['Error'].get('Message', e)}") from e
    try:
        text = sm.get_secret_value(SecretId=secret_id).get("SecretString") or ""
    except sm.exceptions.ResourceNotFoundException:
        return {}  # the secret exists (described above) but has no value yet
    try:
        slots = json.loads(text)
    except ValueError:
        return {}
    return {k: v for k, v in slots.items() if k in SLOTS and isinstance(v, str)} if isinstance(slots, dict) else {}


def active_slot(cfn, stack):
    """The slot the stack's functions sign with, or None (no stack given, or no such parameter)."""
    if not stack:
        return None
    found = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in found.get("Parameters", [])}
    return params.get(ACTIVE_PARAMETER)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["create", "retire"],
                    help="create: a new key pair in --slot, the public half printed; retire: empty --slot")
    ap.add_argument("--slot", choices=SLOTS, required=True, help="the key slot (A or B)")
    ap.add_argument("--stack", help=f"read the secret from this stack's {OUTPUT} output (and its {ACTIVE_PARAMETER})")
    ap.add_argument("--secret", help="the secret (instead of --stack)")
    ap.add_argument("--replace", action="store_true", help="create: replace a key the slot already holds")
    ap.add_argument("--region", help="AWS region (default: the SDK's)")
    args = ap.parse_args(argv)

    session = boto3.session.Session(region_name=args.region)
    try:
        if bool(args.stack) == bool(args.secret):
            raise Refused("give --stack or --secret")
        cfn = session.client("cloudformation")
        secret_id = args.secret or stack_outputs(cfn, args.stack).get(OUTPUT)
        if not secret_id:
            raise Refused(f"stack {args.stack} has no {OUTPUT} output (deploy template.yaml first)")
        active = active_slot(cfn, args.stack)
        sm = session.client("secretsmanager")
        slots = current_slots(sm, secret_id)
        held = "-----BEGIN" in slots.get(args.slot, "")
        if args.command == "create" and held and not args.replace:
            raise Refused(f"slot {args.slot} already holds a key; --replace makes a new pair (or use the other slot)")
        if held and args.slot == active and (args.command == "retire" or args.replace):
            raise Refused(f"the stack signs with slot {args.slot} ({ACTIVE_PARAMETER}); deploy with the other "
                          "slot first")
    except Refused as e:
        print(f"cdn-keys: {e}", file=sys.stderr)
        return 2
    except botocore.exceptions.ClientError as e:
        print(f"cdn-keys: {e}", file=sys.stderr)
        return 1

    if args.command == "retire":
        slots[args.slot] = ""
        sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(slots, sort_keys=True))
        print(f"cdn-keys: slot {args.slot} is empty; deploy with FilesSigningKey{args.slot} empty too", file=sys.stderr)
        return 0
    private, public = new_key_pair()
    slots[args.slot] = private
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(slots, sort_keys=True))
    print(public, end="")
    print(f"cdn-keys: the private key is in slot {args.slot} of the secret; deploy with the public key above as "
          f"FilesSigningKey{args.slot} (CloudFront trusts it from then on), then {ACTIVE_PARAMETER}={args.slot} "
          "to sign with it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
