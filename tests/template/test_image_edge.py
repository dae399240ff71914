"""The image CDN's signing keys in template.yaml (issue 16, DECISIONS 29): the transformer reads
them from a Secrets Manager secret under the stack's key (none in its environment), it alone may
read that secret, and the CloudFront Function gets its copy from a KeyValueStore it is
associated with, on the files CDN's `/t/*` behaviour (DECISIONS 30: transform URLs are
`https://{files domain}/t/...`) and its `/results*` one (where it refuses). The function's code
itself is tested in Node (tests/imgproxy). The transformer
reads a user's original only at the version its file row accepted (DECISIONS 28): the files table
by `GetItem` alone, originals by `GetObjectVersion` alone."""

import re
import string
import unittest

from cfn import RES, T, names, statements


class ImageEdge(unittest.TestCase):
    def test_the_transformer_reads_its_keys_from_a_secret_not_its_environment(self):
        env = RES["TransformerFunction"]["Properties"]["Environment"]["Variables"]
        self.assertNotIn("TRANSFORM_KEYS", env)
        self.assertNotIn("TRANSFORM_SALTS", env)
        self.assertEqual(names(env["TRANSFORM_SECRET_ID"]), {"TransformSigningSecret"})
        self.assertFalse({"TransformKeys", "TransformSalts"} & set(T.get("Parameters", {})))

    def test_the_secret_is_generated_as_a_hex_pair_under_the_stacks_key(self):
        props = RES["TransformSigningSecret"]["Properties"]
        self.assertEqual(names(props["KmsKeyId"]), {"FilesKey"})
        gen = props["GenerateSecretString"]
        self.assertNotIn("SecretString", props)
        allowed = set(string.ascii_lowercase + string.digits) - set(gen["ExcludeCharacters"])
        self.assertTrue(gen["ExcludeUppercase"] and gen["ExcludePunctuation"])
        self.assertEqual(allowed, set("0123456789abcdef"), "every generated character is a hex digit")
        self.assertEqual(gen["PasswordLength"] % 2, 0)
        self.assertGreaterEqual(gen["PasswordLength"], 64, "a key of at least 32 bytes")
        self.assertEqual(gen["GenerateStringKey"], "keys")
        self.assertRegex(gen["SecretStringTemplate"], r'^\{"salts": "([0-9a-f]{2})+"\}$')

    def test_only_the_transformer_and_the_files_api_may_read_the_secret(self):
        # The transformer verifies with the pairs; the files API signs image URLs
        # (POST /v1/files/{id}/image-urls) for files their caller may read.
        readers = set()
        for name, res in RES.items():
            for st in statements(res.get("Properties") or {}):
                actions = st.get("Action")
                actions = actions if isinstance(actions, list) else [actions]
                if "TransformSigningSecret" in names(st.get("Resource")) or any(
                        isinstance(a, str) and a.startswith("secretsmanager:") and st.get("Resource") == "*" for a in actions):
                    readers.add(name)
                    self.assertEqual(actions, ["secretsmanager:GetSecretValue"], name)
        self.assertEqual(readers, {"TransformerFunction", "FilesApiFunction"})

    def test_the_transformer_reads_originals_only_at_their_accepted_version(self):
        props = RES["TransformerFunction"]["Properties"]
        self.assertEqual(names(props["Environment"]["Variables"]["TABLE_NAME"]), {"FilesTable"})
        on_table, on_originals = [], []
        for st in statements(props):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if any(a.startswith("dynamodb:") for a in actions) or "FilesTable" in names(resources):
                on_table.append((actions, names(resources)))
            if any("users/" in str(r) for r in resources):
                on_originals += actions
        self.assertEqual(on_table, [(["dynamodb:GetItem"], {"FilesTable"})])
        self.assertEqual(on_originals, ["s3:GetObjectVersion"])

    def test_the_edge_function_reads_the_key_value_store_and_substitutes_only_the_bucket(self):
        props = RES["TransformRequestFunction"]["Properties"]
        stores = props["FunctionConfig"]["KeyValueStoreAssociations"]
        self.assertEqual([names(s["KeyValueStoreARN"]) for s in stores], [{"TransformKeyStore"}])
        self.assertEqual(props["FunctionConfig"]["Runtime"], "cloudfront-js-2.0")
        code = props["FunctionCode"]["Fn::Sub"]
        # Minified from edge/transform-request.js (node edge/build.mjs): the import names are free.
        self.assertRegex(code, r"import \w+ from\s*[\"']cloudfront[\"']")
        self.assertEqual(re.findall(r"\$\{[^}]*\}", code), ["${FilesBucket}"])
        self.assertNotIn("_unmapped", code)
        outputs = T["Outputs"]
        self.assertEqual(names(outputs["TransformSigningSecretArn"]["Value"]), {"TransformSigningSecret"})
        self.assertEqual(names(outputs["TransformKeyStoreArn"]["Value"]), {"TransformKeyStore"})

    def test_the_edge_function_runs_on_the_files_cdns_transform_and_results_paths_only(self):
        seen = []
        for name, res in RES.items():
            if res["Type"] != "AWS::CloudFront::Distribution":
                continue
            cfg = res["Properties"]["DistributionConfig"]
            for b in [cfg["DefaultCacheBehavior"], *cfg.get("CacheBehaviors", [])]:
                branches = b["Fn::If"][1:] if "Fn::If" in b else [b]
                for b in branches:
                    for f in (b.get("FunctionAssociations") or []) if isinstance(b, dict) else []:
                        if names(f["FunctionARN"]) == {"TransformRequestFunction"}:
                            seen.append((name, b.get("PathPattern", "*"), f["EventType"]))
        self.assertEqual(sorted(seen), [("FilesDistribution", "/results*", "viewer-request"),
                                        ("FilesDistribution", "/t/*", "viewer-request")])


if __name__ == "__main__":
    unittest.main()
