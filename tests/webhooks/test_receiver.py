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

from webhook_receiver import Ordering, Rejected, verify  # noqa: E402

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


def event(kind, at, revision=None, file_id="f1", user="u-1", **data):
    if revision is not None:
        data.update(fileId=file_id, revision=revision)
    return {"type": kind, "version": 1, "id": f"{kind}:{at}", "at": at, "user": user, "data": data}


class OrderingRule(unittest.TestCase):
    """The README's rule for events that arrive out of order (a retried delivery comes late)."""

    def test_a_files_older_news_arriving_late_is_stale(self):
        o = Ordering()
        self.assertTrue(o.is_news(event("upload.settled", "2026-12-07T10:00:00.000Z", 100)))
        self.assertTrue(o.is_news(event("file.ready", "2026-12-07T10:00:00.000Z", 100)), "one change's two events")
        self.assertTrue(o.is_news(event("file.deleted", "2026-12-07T10:05:00.000Z", 103)))
        # The first delivery of a rename failed; retried, it arrives after the delete.
        self.assertFalse(o.is_news(event("file.changed", "2026-12-07T10:01:00.000Z", 101)))
        self.assertTrue(o.is_news(event("file.restored", "2026-12-07T10:06:00.000Z", 104)))
        self.assertTrue(o.is_news(event("file.ready", "2026-12-07T10:00:00.000Z", 1, file_id="f2")), "another file")
        self.assertTrue(o.is_news(event("export.ready", "2026-12-07T10:07:00.000Z", exportId="e1")))

    def test_nothing_made_before_an_accounts_erasure_counts_after_it(self):
        o = Ordering()
        erased = event("account.erased", "2026-12-07T11:00:00.000Z", erasedAt="2026-12-07T11:00:00Z")
        self.assertTrue(o.is_news(erased))
        self.assertFalse(o.is_news(event("file.ready", "2026-12-07T10:59:59.000Z", 7)), "made before, came late")
        self.assertTrue(o.is_news(event("file.ready", "2026-12-07T10:59:59.000Z", 7, user="u-2")), "another user")
        # The id takes uploads again once the erase is done: a new account's files are news.
        self.assertTrue(o.is_news(event("file.ready", "2026-12-08T09:00:00.000Z", 1_765_184_400_000, file_id="f9")))

    def test_an_erasure_delivered_late_takes_only_what_was_learned_before_it(self):
        o = Ordering()
        self.assertTrue(o.is_news(event("file.ready", "2026-12-07T10:00:00.000Z", 5, file_id="old")))
        self.assertTrue(o.is_news(event("file.ready", "2026-12-07T10:00:00.000Z", 5, file_id="bobs", user="u-2")))
        # The id signed up again the next day; the erasure's first delivery failed for hours.
        self.assertTrue(o.is_news(event("file.ready", "2026-12-08T09:00:00.000Z", 9, file_id="new")))
        late = event("account.erased", "2026-12-07T11:00:00.000Z", erasedAt="2026-12-07T11:00:00Z")
        self.assertTrue(o.is_news(late))
        self.assertEqual(o.erased_files(late), ["old"], "not the new account's file, not another user's")

    def test_an_event_without_a_revision_is_news_only_of_a_file_not_seen(self):
        o = Ordering()
        self.assertTrue(o.is_news(event("file.ready", "2026-12-07T10:00:00.000Z", None, file_id="f", fileId="f")))
        self.assertTrue(o.is_news(event("file.changed", "2026-12-07T10:01:00.000Z", 3, file_id="f")))
        self.assertFalse(o.is_news(event("file.ready", "2026-12-07T10:00:00.000Z", None, file_id="f", fileId="f")))


def shown_and_tested(heading, begin, end):
    """The first Python block of the README's section `heading`, and the lines of
    scripts/webhook_receiver.py between the marker lines `begin` and `end`."""
    readme = open(os.path.join(HERE, "..", "..", "README.md")).read()
    section = readme[readme.index(heading):]
    shown = section[section.index("```python\n") + 10:section.index("```\n", section.index("```python"))]
    script = open(os.path.join(HERE, "..", "..", "scripts", "webhook_receiver.py")).read()
    start = script.index("\n", script.index(begin)) + 1
    return shown, script[start:script.index(end)].rstrip() + "\n"


class Readme(unittest.TestCase):
    def test_the_readme_shows_the_tested_code(self):
        shown, tested = shown_and_tested("## Webhooks (to the app's backend)", "# --- the README", "# --- end of the snippet")
        self.assertTrue(shown.endswith(tested), "README's receiver snippet differs from scripts/webhook_receiver.py")
        self.assertIn("TOLERANCE_SECONDS = 300", shown)

    def test_the_readme_shows_the_tested_ordering_rule(self):
        shown, tested = shown_and_tested(
            "### Events out of order", "# --- the README's ordering rule", "# --- end of the ordering rule"
        )
        self.assertEqual(shown, tested, "README's ordering rule differs from scripts/webhook_receiver.py")


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
