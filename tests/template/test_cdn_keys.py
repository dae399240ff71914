"""scripts/cdn_keys.py against moto's server (Secrets Manager, CloudFormation outputs): `create`
puts a P-256 private key (PEM, PKCS#8) into the files CDN's secret and prints its public half;
a secret that already holds a key is refused unless --replace, and a refusal writes nothing."""

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
        template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"FilesSigningKeySecretArn": {"Value": self.secret}}}
        self.cfn.create_stack(StackName=self.stack, TemplateBody=json.dumps(template))

    def run_script(self, *argv):
        self.out, self.err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(self.out), contextlib.redirect_stderr(self.err):
            return cdn_keys.main(list(argv))

    def stored(self):
        return self.sm.get_secret_value(SecretId=self.secret)["SecretString"]

    def test_create_stores_a_p256_private_key_whose_public_half_is_printed(self):
        self.assertEqual(self.run_script("--stack", self.stack, "create"), 0, self.err.getvalue())
        pem = self.stored()
        self.assertTrue(pem.startswith("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8, unencrypted")
        private = serialization.load_pem_private_key(pem.encode(), password=None)
        self.assertIsInstance(private, ec.EllipticCurvePrivateKey)
        self.assertEqual(private.curve.name, "secp256r1")
        printed = self.out.getvalue()
        self.assertTrue(printed.startswith("-----BEGIN PUBLIC KEY-----\n"), printed)
        self.assertNotIn("PRIVATE", printed + self.err.getvalue(), "the private key is never printed")
        self.assertEqual(spki(serialization.load_pem_public_key(printed.encode())), spki(private.public_key()))
        self.assertIn("FilesSigningPublicKey", self.err.getvalue())

    def test_a_second_create_is_refused_and_changes_nothing(self):
        self.assertEqual(self.run_script("--stack", self.stack, "create"), 0, self.err.getvalue())
        first, versions = self.stored(), self.versions()
        self.assertEqual(self.run_script("--stack", self.stack, "create"), 2)
        self.assertTrue(self.err.getvalue().startswith("cdn-keys: "), self.err.getvalue())
        self.assertIn("--replace", self.err.getvalue())
        self.assertEqual(self.out.getvalue(), "", "no public key printed for a key that was not made")
        self.assertEqual((self.stored(), self.versions()), (first, versions), "the secret is unchanged")
        # --replace makes a new pair, and the printed public key is the new one's.
        self.assertEqual(self.run_script("--secret", self.secret, "create", "--replace"), 0, self.err.getvalue())
        second = self.stored()
        self.assertNotEqual(second, first)
        private = serialization.load_pem_private_key(second.encode(), password=None)
        self.assertEqual(spki(serialization.load_pem_public_key(self.out.getvalue().encode())), spki(private.public_key()))

    def test_a_value_that_is_not_a_key_is_written_over(self):
        self.sm.put_secret_value(SecretId=self.secret, SecretString="none yet")
        self.assertEqual(self.run_script("--secret", self.secret, "create"), 0, self.err.getvalue())
        self.assertTrue(self.stored().startswith("-----BEGIN PRIVATE KEY-----"))

    def test_bad_arguments_and_missing_things_change_nothing(self):
        cases = {
            "no such stack": ["--stack", "no-such-stack", "create"],
            "stack and secret": ["--stack", self.stack, "--secret", self.secret, "create"],
            "neither": ["create"],
            "no such secret": ["--secret", "no-such-secret", "create"],
        }
        for name, argv in cases.items():
            with self.subTest(name):
                self.assertEqual(self.run_script(*argv), 2)
                self.assertTrue(self.err.getvalue().startswith("cdn-keys: "), self.err.getvalue())
                self.assertEqual(self.out.getvalue(), "")
        self.assertEqual(self.versions(), {}, "the stack's secret still has no value")

    def versions(self):
        listed = self.sm.list_secret_version_ids(SecretId=self.secret)["Versions"]
        return {v["VersionId"]: sorted(v.get("VersionStages", [])) for v in listed}


if __name__ == "__main__":
    unittest.main()
