#!/usr/bin/env python3
"""A webhook receiver for the app's backend, as the README shows it: verifies each delivery's
Standard Webhooks signature (DECISIONS 36) with the standard library alone and prints it.

    webhook_receiver.py --port 8099 --secret-file FILE   # FILE holds whsec_...

Answers 204 to a verified delivery (a repeated webhook-id is printed as a duplicate and
answered 204 too: deliveries are at least once), 401 with the reason otherwise. Each printed
delivery says whether the README's ordering rule takes it as news (`"stale": false`) or as
superseded by one that arrived before it (a retried delivery can come late).
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300  # the scheme's 5 minutes, either way


class Rejected(Exception):
    pass


# --- the README's snippet: verify one delivery (headers lower-cased, the raw body bytes) ---
def verify(secret: str, headers: dict, body: bytes, now: float | None = None) -> dict:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts, signatures = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and ts and signatures):
        raise Rejected("missing webhook-id, webhook-timestamp or webhook-signature")
    if abs((time.time() if now is None else now) - int(ts)) > TOLERANCE_SECONDS:
        raise Rejected("timestamp outside the tolerance (a replay?)")
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    if not any(hmac.compare_digest(expected, s) for s in signatures.split(" ")):
        raise Rejected("no signature matches")
    return json.loads(body)
# --- end of the snippet ---


# Deliveries can arrive out of order (a failed one is retried for hours while later ones go
# through), so a receiver applies an event only if nothing newer about the same thing was.
# --- the README's ordering rule ---
def when(rfc3339: str) -> datetime:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


class Ordering:
    """What a receiver remembers (in its database, in practice): per file, the revision and time
    of the newest event applied and whose file it is; when each erased user's account was erased."""

    def __init__(self):
        self.files = {}  # fileId -> (revision, user, at) of the newest event applied
        self.erased = {}  # user -> erasedAt of their latest account.erased

    def is_news(self, event: dict) -> bool:
        user, data = event.get("user"), event.get("data") or {}
        if event["type"] == "account.erased":
            at = when(data["erasedAt"])
            self.erased[user] = max(self.erased.get(user, at), at)
            return True
        # Made before the account was erased (delivered late): its data went with the account.
        if user in self.erased and when(event["at"]) <= self.erased[user]:
            return False
        file_id, revision = data.get("fileId"), data.get("revision")
        if file_id is None:
            return True  # an export's ready/failed: each export has one
        known = self.files.get(file_id)
        # Without a revision (queued before they were sent): news only of a file not seen yet.
        # Equal: two events of one change (upload.settled and file.ready), the same data.
        if known is not None and (revision is None or revision < known[0]):
            return False
        self.files[file_id] = (-1 if revision is None else revision, user, when(event["at"]))
        return True

    def erased_files(self, event: dict) -> list:
        """The files an account.erased takes: those learned of at or before the erasure. Not
        later ones: delivered late, it must not take a new account's (once an erase is done,
        the id may sign up again)."""
        at, user = when(event["data"]["erasedAt"]), event.get("user")
        return sorted(f for f, (_, owner, seen) in self.files.items() if owner == user and seen <= at)
# --- end of the ordering rule ---


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret-file", required=True)
    args = ap.parse_args()
    secret = open(args.secret_file).read().strip()
    seen = set()
    ordering, lock = Ordering(), threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                event = verify(secret, headers, body)
            except (Rejected, ValueError) as e:
                print(json.dumps({"rejected": str(e), "id": headers.get("webhook-id")}), flush=True)
                self.send_response(401)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"error": str(e)}).encode())
                return
            duplicate = headers["webhook-id"] in seen
            seen.add(headers["webhook-id"])
            with lock:  # the server answers deliveries on threads
                stale = not duplicate and not ordering.is_news(event)
                forget = ordering.erased_files(event) if event.get("type") == "account.erased" else []
            shown = {"id": headers["webhook-id"], "duplicate": duplicate, "stale": stale, "event": event}
            print(json.dumps(shown | ({"forget": forget} if forget else {})), flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"webhook receiver on http://127.0.0.1:{args.port}/", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
