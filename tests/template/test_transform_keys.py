"""scripts/transform_keys.py: the secret side against moto's server (Secrets Manager,
CloudFormation outputs); the CloudFront KeyValueStore through a stand-in with the data plane's
calls and its ETag check (moto has no KeyValueStore data plane). The entry it writes is the one
the CloudFront Function reads (tests/imgproxy/result-keys.test.mjs builds the same)."""

import contextlib
import io
import json
import os
import sys
import unittest
from pathlib import Path

import boto3

from moto_case import REGION, MotoTestCase

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import transform_keys  # noqa: E402

STORE = "arn:aws:cloudfront::123456789012:key-value-store/test"
KEY, SALT = "2e6e0ec9c03934629ad53a92008a0a93ce63ebe6f47a767cfbc47ec13da7a853", "03542c091b12fc31a7dc59d39477321bb0c06d3fa4063f8ede1e3f9a253c300a"


class NotFound(Exception):
    pass


class KeyValueStore:
    """The calls the script makes, as the cloudfront-keyvaluestore API answers them."""

    class exceptions:
        ResourceNotFoundException = NotFound

    def __init__(self):
        self.items, self.etag, self.puts = {}, 1, 0

    def describe_key_value_store(self, KvsARN):
        assert KvsARN == STORE, KvsARN
        return {"ETag": f"E{self.etag}", "ItemCount": len(self.items)}

    def get_key(self, KvsARN, Key):
        if Key not in self.items:
            raise NotFound(Key)
        return {"Key": Key, "Value": self.items[Key]}

    def put_key(self, KvsARN, Key, Value, IfMatch):
        assert IfMatch == f"E{self.etag}", "a conditional write on the current ETag"
        assert len(Value.encode()) <= 1024 and len(Key.encode()) <= 512, "within the store's limits"
        self.items[Key] = Value
        self.etag += 1
        self.puts += 1
        return {"ETag": f"E{self.etag}"}


class TransformKeys(MotoTestCase):
    CLEARED_ENV = ("AWS_PROFILE", "TRANSFORM_KEYS", "TRANSFORM_SALTS")

    def setUp(self):
        self.sm = boto3.client("secretsmanager", region_name=REGION)
        # As CloudFormation generates it: a random key, salt 00.
        self.secret = self.sm.create_secret(Name=self.id().rsplit(".", 1)[-1],
                                            SecretString=json.dumps({"salts": "00", "keys": KEY}))["ARN"]
        self.kvs = KeyValueStore()

    def run_script(self, *args, stack=None):
        where = ["--stack", stack] if stack else ["--secret", self.secret, "--store", STORE]
        self.output = io.StringIO()
        with contextlib.redirect_stdout(self.output), contextlib.redirect_stderr(self.output):
            return transform_keys.main([*args, *where], kvs=self.kvs)

    def pairs(self):
        doc = json.loads(self.sm.get_secret_value(SecretId=self.secret)["SecretString"])
        keys, salts = doc["keys"].split(","), doc["salts"].split(",")
        return list(zip(keys, salts))

    def entry(self):
        return [tuple(p.split(":")) for p in self.kvs.items["pairs"].split(",")]

    def test_sync_copies_the_secret_into_the_store_once(self):
        self.assertEqual(self.run_script("sync"), 0, self.output.getvalue())
        self.assertEqual(self.kvs.items, {"pairs": f"{KEY}:00"})
        self.assertEqual(self.run_script("sync"), 0)
        self.assertEqual(self.kvs.puts, 1, "nothing written when the store is current")
        self.assertIn("already current", self.output.getvalue())

    def test_rotate_puts_a_new_first_pair_in_both_and_keeps_the_newest(self):
        self.assertEqual(self.run_script("rotate"), 0, self.output.getvalue())
        first = self.pairs()
        self.assertEqual(len(first), 2)
        self.assertEqual(first[1], (KEY, "00"), "the previous pair is still accepted")
        self.assertRegex(first[0][0], r"^[0-9a-f]{64}$")
        self.assertRegex(first[0][1], r"^[0-9a-f]{64}$")
        self.assertEqual(self.entry(), first, "the edge holds exactly the secret's pairs")
        self.assertEqual(self.run_script("rotate", "--keep", "2"), 0)
        second = self.pairs()
        self.assertEqual(second[1], first[0])
        self.assertNotIn((KEY, "00"), second, "the oldest pair is retired")
        self.assertEqual(self.entry(), second)

    def test_import_brings_pairs_already_in_use(self):
        os.environ.update({"TRANSFORM_KEYS": f"{KEY}, AB01", "TRANSFORM_SALTS": f"{SALT},"})
        try:
            self.assertEqual(self.run_script("import"), 2, "two keys, one salt")
            self.assertEqual(self.kvs.puts, 0)
            os.environ["TRANSFORM_SALTS"] = f"{SALT},cd02"
            self.assertEqual(self.run_script("import"), 0, self.output.getvalue())
        finally:
            os.environ.pop("TRANSFORM_KEYS"), os.environ.pop("TRANSFORM_SALTS")
        self.assertEqual(self.pairs(), [(KEY, SALT), ("ab01", "cd02")])
        self.assertEqual(self.kvs.items["pairs"], f"{KEY}:{SALT},ab01:cd02")

    def test_reads_the_secret_and_store_from_the_stack(self):
        template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"TransformSigningSecretArn": {"Value": self.secret},
                                "TransformKeyStoreArn": {"Value": STORE}}}
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName="matbakh-files-keys", TemplateBody=json.dumps(template))
        self.assertEqual(self.run_script("sync", stack="matbakh-files-keys"), 0, self.output.getvalue())
        self.assertEqual(self.entry(), [(KEY, "00")])

    def test_bad_input_or_a_bad_secret_changes_nothing(self):
        before = self.sm.get_secret_value(SecretId=self.secret)["SecretString"]
        cases = {
            "no such stack": ["sync", "--stack", "no-such-stack"],
            "stack and secret": ["sync", "--stack", "x", "--secret", "y", "--store", STORE],
            "no store": ["sync", "--secret", self.secret],
            "keep none": ["rotate", "--secret", self.secret, "--store", STORE, "--keep", "0"],
            "no such secret": ["sync", "--secret", "no-such-secret", "--store", STORE],
            "import without keys": ["import", "--secret", self.secret, "--store", STORE],
        }
        for name, argv in cases.items():
            with self.subTest(name):
                self.output = io.StringIO()
                with contextlib.redirect_stdout(self.output), contextlib.redirect_stderr(self.output):
                    self.assertEqual(transform_keys.main(argv, kvs=self.kvs), 2)
                self.assertTrue(self.output.getvalue().startswith("transform-keys: "), self.output.getvalue())
        for bad in ["not json", json.dumps({"keys": "zz", "salts": "00"}), json.dumps({"keys": "", "salts": ""}),
                    json.dumps({"keys": KEY})]:
            with self.subTest(bad):
                self.sm.put_secret_value(SecretId=self.secret, SecretString=bad)
                self.assertEqual(self.run_script("rotate"), 2, self.output.getvalue())
        # Eight pairs do not fit the store's 1 KB value: refused before either is written.
        many = [(f"{i:02x}" * 32, f"{i:02x}" * 32) for i in range(8)]
        self.sm.put_secret_value(SecretId=self.secret, SecretString=transform_keys.secret_value(many))
        self.assertEqual(self.run_script("sync"), 2)
        self.assertIn("1024", self.output.getvalue())
        self.assertEqual(self.kvs.puts, 0)
        self.sm.put_secret_value(SecretId=self.secret, SecretString=before)


if __name__ == "__main__":
    unittest.main()
