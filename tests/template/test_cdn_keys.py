"""scripts/cdn_keys.py against moto's server (Secrets Manager, CloudFormation outputs and
parameters): `create --slot` puts a P-256 private key (PEM, PKCS#8) into its slot of the files
CDN's secret, keeping the other, and prints its public half; a slot that holds a key is refused
unless --replace; the slot the stack signs with is never replaced or retired; a refusal writes
nothing."""

import contextlib
import io
import json
import sys
import unittest
from pathlib import Path

import boto3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from moto_case import REGION, MotoTestCase

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import cdn_keys  # noqa: E402

STACK = "matbakh-files-cdn-keys"


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class CdnKeys(MotoTestCase):
    def setUp(self):
        self.sm = boto3.client("secretsmanager", region_name=REGION)
        # As CloudFormation makes FilesSigningKeySecret: no SecretString, no GenerateSecretString.
        self.secret = self.sm.create_secret(Name=self.id().rsplit(".", 1)[-1], Description="files CDN key")["ARN"]
        self.cfn = boto3.client("cloudformation", region_name=REGION)
        self.stack = f"{STACK}-{self.id().rsplit('.', 1)[-1].replace('_', '-')}"[:128]
        template = {"Parameters": {"FilesSigningSlot": {"Type": "String", "Default": "A"}},
                    "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"FilesSigningKeySecretArn": {"Value": self.secret}}}
        self.cfn.create_stack(StackName=self.stack, TemplateBody=json.dumps(template))

    def run_script(self, *argv):
        self.out, self.err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(self.out), contextlib.redirect_stderr(self.err):
            return cdn_keys.main(list(argv))

    def slots(self):
        return json.loads(self.sm.get_secret_value(SecretId=self.secret)["SecretString"])

    def private(self, slot):
        return serialization.load_pem_private_key(self.slots()[slot].encode(), password=None)

    def test_create_stores_a_p256_private_key_in_its_slot_whose_public_half_is_printed(self):
        self.assertEqual(self.run_script("--stack", self.stack, "create", "--slot", "A"), 0, self.err.getvalue())
        pem = self.slots()["A"]
        self.assertTrue(pem.startswith("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8, unencrypted")
        private = self.private("A")
        self.assertIsInstance(private, ec.EllipticCurvePrivateKey)
        self.assertEqual(private.curve.name, "secp256r1")
        printed = self.out.getvalue()
        self.assertTrue(printed.startswith("-----BEGIN PUBLIC KEY-----\n"), printed)
        self.assertNotIn("PRIVATE", printed + self.err.getvalue(), "the private key is never printed")
        self.assertEqual(spki(serialization.load_pem_public_key(printed.encode())), spki(private.public_key()))
        self.assertIn("FilesSigningKeyA", self.err.getvalue())

    def test_a_rotation_keeps_the_key_in_use_until_it_is_retired(self):
        self.assertEqual(self.run_script("--stack", self.stack, "create", "--slot", "A"), 0, self.err.getvalue())
        in_use = self.slots()["A"]
        self.assertEqual(self.run_script("--stack", self.stack, "create", "--slot", "B"), 0, self.err.getvalue())
        slots = self.slots()
        self.assertEqual(slots["A"], in_use, "the key in use stays")
        self.assertEqual(spki(serialization.load_pem_public_key(self.out.getvalue().encode())),
                         spki(self.private("B").public_key()))
        # The stack signs with A: A is neither replaced nor retired.
        versions = self.versions()
        for argv in (["create", "--slot", "A", "--replace"], ["retire", "--slot", "A"]):
            with self.subTest(argv):
                self.assertEqual(self.run_script("--stack", self.stack, *argv), 2)
                self.assertIn("signs with slot A", self.err.getvalue())
                self.assertEqual((self.slots(), self.versions()), (slots, versions), "nothing written")
        # Once the stack signs with B, A is retired and B stays.
        self.cfn.update_stack(StackName=self.stack, UsePreviousTemplate=True,
                              Parameters=[{"ParameterKey": "FilesSigningSlot", "ParameterValue": "B"}])
        self.assertEqual(self.run_script("--stack", self.stack, "retire", "--slot", "A"), 0, self.err.getvalue())
        self.assertEqual(self.slots(), {"A": "", "B": slots["B"]})

    def test_a_slot_holding_a_key_is_refused_and_changes_nothing(self):
        self.assertEqual(self.run_script("--secret", self.secret, "create", "--slot", "B"), 0, self.err.getvalue())
        first, versions = self.slots(), self.versions()
        self.assertEqual(self.run_script("--secret", self.secret, "create", "--slot", "B"), 2)
        self.assertTrue(self.err.getvalue().startswith("cdn-keys: "), self.err.getvalue())
        self.assertIn("--replace", self.err.getvalue())
        self.assertEqual(self.out.getvalue(), "", "no public key printed for a key that was not made")
        self.assertEqual((self.slots(), self.versions()), (first, versions), "the secret is unchanged")
        # --replace (no stack: no slot in use known) makes a new pair, printed as the new one.
        self.assertEqual(self.run_script("--secret", self.secret, "create", "--slot", "B", "--replace"), 0,
                         self.err.getvalue())
        self.assertNotEqual(self.slots()["B"], first["B"])
        self.assertEqual(spki(serialization.load_pem_public_key(self.out.getvalue().encode())),
                         spki(self.private("B").public_key()))

    def test_a_value_that_is_not_the_slots_is_written_over(self):
        self.sm.put_secret_value(SecretId=self.secret, SecretString="none yet")
        self.assertEqual(self.run_script("--secret", self.secret, "create", "--slot", "A"), 0, self.err.getvalue())
        self.assertTrue(self.slots()["A"].startswith("-----BEGIN PRIVATE KEY-----"))

    def test_bad_arguments_and_missing_things_change_nothing(self):
        cases = {
            "no such stack": ["--stack", "no-such-stack", "create", "--slot", "A"],
            "stack and secret": ["--stack", self.stack, "--secret", self.secret, "create", "--slot", "A"],
            "neither": ["create", "--slot", "A"],
            "no such secret": ["--secret", "no-such-secret", "create", "--slot", "A"],
        }
        for name, argv in cases.items():
            with self.subTest(name):
                self.assertEqual(self.run_script(*argv), 2)
                self.assertTrue(self.err.getvalue().startswith("cdn-keys: "), self.err.getvalue())
                self.assertEqual(self.out.getvalue(), "")
        for argv in (["create"], ["create", "--slot", "C"]):
            with self.subTest(argv), self.assertRaises(SystemExit) as refused:
                self.run_script("--secret", self.secret, *argv)
            self.assertEqual(refused.exception.code, 2)
        self.assertEqual(self.versions(), {}, "the stack's secret still has no value")

    def versions(self):
        listed = self.sm.list_secret_version_ids(SecretId=self.secret)["Versions"]
        return {v["VersionId"]: sorted(v.get("VersionStages", [])) for v in listed}


if __name__ == "__main__":
    unittest.main()
