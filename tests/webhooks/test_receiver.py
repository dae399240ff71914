"""The receiver's verification (scripts/webhook_receiver.py, the README's snippet) against the
Standard Webhooks vectors the Rust signer is tested with (vectors.json, made with the
`standardwebhooks` library), and the library itself on what our signer's scheme produces.

    python3 -m unittest discover -s tests/webhooks
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import unittest
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))

from webhook_receiver import Rejected, verify  # noqa: E402

VECTORS = json.load(open(os.path.join(HERE, "vectors.json")))


def headers(v, signature=None, ts=None):
    return {
        "webhook-id": v["id"],
        "webhook-timestamp": str(v["timestamp"] if ts is None else ts),
        "webhook-signature": signature or v["signature"],
    }


class ReceiverSnippet(unittest.TestCase):
    def test_every_vector_verifies_and_gives_the_event(self):
        for v in VECTORS:
            event = verify(v["secret"], headers(v), v["body"].encode(), now=v["timestamp"] + 1)
            self.assertEqual(event, json.loads(v["body"]))

    def test_a_tampered_body_fails(self):
        v = VECTORS[0]
        body = v["body"].replace('"version":1', '"version":2').encode()
        with self.assertRaisesRegex(Rejected, "no signature matches"):
            verify(v["secret"], headers(v), body, now=v["timestamp"])

    def test_an_old_or_future_timestamp_fails(self):
        v = VECTORS[0]
        for now in (v["timestamp"] + 301, v["timestamp"] - 301):
            with self.assertRaisesRegex(Rejected, "tolerance"):
                verify(v["secret"], headers(v), v["body"].encode(), now=now)
        # Moving the timestamp to look fresh breaks the signature.
        with self.assertRaisesRegex(Rejected, "no signature matches"):
            verify(v["secret"], headers(v, ts=v["timestamp"] + 600), v["body"].encode(), now=v["timestamp"] + 600)

    def test_another_secret_or_missing_headers_fail(self):
        v, other = VECTORS[0], VECTORS[1]
        with self.assertRaises(Rejected):
            verify(other["secret"], headers(v), v["body"].encode(), now=v["timestamp"])
        h = headers(v)
        del h["webhook-signature"]
        with self.assertRaisesRegex(Rejected, "missing"):
            verify(v["secret"], h, v["body"].encode(), now=v["timestamp"])

    def test_one_of_several_signatures_matching_is_enough(self):
        v = VECTORS[2]
        rotated = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + v["signature"]
        verify(v["secret"], headers(v, signature=rotated), v["body"].encode(), now=v["timestamp"])


class Readme(unittest.TestCase):
    def test_the_readme_shows_the_tested_code(self):
        readme = open(os.path.join(HERE, "..", "..", "README.md")).read()
        section = readme[readme.index("## Webhooks (to the app's backend)"):]
        shown = section[section.index("```python\n") + 10:section.index("```\n", section.index("```python"))]
        script = open(os.path.join(HERE, "..", "..", "scripts", "webhook_receiver.py")).read()
        start = script.index("\n", script.index("# --- the README")) + 1
        tested = script[start:script.index("# --- end of the snippet")].rstrip() + "\n"
        self.assertTrue(shown.endswith(tested), "README's receiver snippet differs from scripts/webhook_receiver.py")
        self.assertIn("TOLERANCE_SECONDS = 300", shown)


class Library(unittest.TestCase):
    """The `standardwebhooks` library (what receivers would install) accepts the vectors, with
    the receiver's clock set to their time."""

    def test_the_library_verifies_every_vector(self):
        try:
            from standardwebhooks.webhooks import Webhook
        except ImportError:
            self.fail("standardwebhooks is not installed: scripts/tools.txt pins it into the venv")
        for v in VECTORS:
            wh = Webhook(v["secret"])
            signed = wh.sign(v["id"], datetime.fromtimestamp(v["timestamp"], tz=timezone.utc), v["body"])
            self.assertEqual(signed, v["signature"])
            # The same bytes by hand: HMAC-SHA256 over "id.timestamp.body", Base64.
            key = base64.b64decode(v["secret"].removeprefix("whsec_"))
            mac = hmac.new(key, f'{v["id"]}.{v["timestamp"]}.{v["body"]}'.encode(), hashlib.sha256).digest()
            self.assertEqual("v1," + base64.b64encode(mac).decode(), v["signature"])


if __name__ == "__main__":
    unittest.main()
