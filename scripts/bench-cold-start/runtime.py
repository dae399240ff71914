#!/usr/bin/env python3
"""Cold starts of the functions against a fake Lambda runtime API (standard library only).

    runtime.py --env-file FILE --bin-dir DIR [--runs 20] [--json-out FILE] [--wrapper CMD] FUNCTION...

For each function, RUNS times (after one start that is not counted): start DIR/FUNCTION with
the environment of FILE plus AWS_LAMBDA_RUNTIME_API pointing here, serve it one event (the
first `GET /2018-06-01/runtime/invocation/next`), wait for its answer (`POST .../response` or
`.../error`), then kill it. Measured from just before the process is spawned: to its first
`/next` (the end of its init) and to its answer (init plus the first invocation). An
`/init/error`, or an answer other than the function's in EXPECTED, fails the function.
`--wrapper CMD` runs each bootstrap under CMD (the deployed arm64 ones under qemu-aarch64).
Reports median and p90 (nearest rank) of both, the answer
(HTTP status for the HTTP functions), the resident memory after the first answer, and the
bootstrap's size as it is and deflated (as in the zip Lambda is given).

The same server answers `GET /jwks.json` (the `live` function fetches its issuer's keys at
start): one ES256 key, P-256's base point (the public key of private key 1; never verifies a
real token, which the benchmark does not need).
"""

import argparse
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"

JWKS = json.dumps({"keys": [{
    "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "cold-start",
    "x": "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
    "y": "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
}]}).encode()

# HTTP API (payload 2.0) and function URL events: no caller, so every HTTP function answers
# quickly without touching AWS (401 from the routes, 403 from the transformer's signature check,
# 404 from the legacy redirect outside its prefix). The others get a record their handler
# rejects or skips, or (the sweeper) its schedule.


def http_event(method, path, headers=None):
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"accept": "application/json", "host": "abc123.execute-api.eu-central-1.amazonaws.com",
                    "user-agent": "cold-start", "x-forwarded-proto": "https", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-central-1.amazonaws.com", "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                     "userAgent": "cold-start"},
            "requestId": "cold-start", "routeKey": f"{method} {path}", "stage": "$default",
            "time": "27/Nov/2026:10:00:00 +0000", "timeEpoch": 1795773600000,
        },
        "isBase64Encoded": False,
    }


def sqs_event(body):
    return {"Records": [{
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d", "receiptHandle": "cold-start",
        "body": body, "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795773600100",
                                      "SenderId": "cold-start", "ApproximateFirstReceiveTimestamp": "1795773600200"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:cold-start", "awsRegion": "eu-central-1",
    }]}


EVENTS = {
    "presign": http_event("GET", "/v1/files/f1/download"),
    "files-api": http_event("GET", "/v1/files"),
    "account": http_event("DELETE", "/v1/me"),
    "shares": http_event("GET", "/v1/shares"),
    "multipart": http_event("GET", "/v1/uploads"),
    "live-tickets": http_event("POST", "/v1/live/tickets"),
    "migration-api": http_event("GET", "/v1/admin/migrations"),
    "transformer": http_event("GET", "/t/unsigned/rs:fit:300:300/plain/users/u/f/a.jpg"),
    "legacy-redirect": http_event("GET", "/favicon.ico"),
    # An SQS record that is not an event of theirs: each reports it failed or skips it.
    "indexer": sqs_event("not an S3 event"),
    "thumbnailer": sqs_event("not an S3 event"),
    "exporter": sqs_event("not an export job"),
    "eraser": sqs_event("not an erase-again message"),
    "migration-worker": sqs_event("not a migration item"),
    "webhooks": sqs_event("not a webhook"),
    # A DynamoDB stream batch with no record.
    "notifier": {"Records": []},
    # The WebSocket API's authorizer, asked without a token: Deny.
    "live": {"type": "REQUEST", "methodArn": "arn:aws:execute-api:eu-central-1:123456789012:abc/live/$connect",
             "headers": {}, "requestContext": {"routeKey": "$connect", "eventType": "CONNECT",
                                                "connectionId": "cold-start"}},
    # The hourly schedule (EventBridge Scheduler passes nothing the sweep reads).
    "sweeper": {},
    # The daily schedule: one report of the (empty) local bucket, written to the reports bucket.
    "reporter": {},
}


# What each function answers its event, as `describe` puts it (the start of it for the two that
# answer a JSON summary): another answer fails the run, as a failed start does.
EXPECTED = {
    "presign": "HTTP 401", "files-api": "HTTP 401", "account": "HTTP 401", "shares": "HTTP 401",
    "multipart": "HTTP 401", "live-tickets": "HTTP 401", "migration-api": "HTTP 401",
    "transformer": "HTTP 403", "legacy-redirect": "HTTP 400",
    "indexer": "1 failed of 1", "thumbnailer": "1 failed of 1", "exporter": "1 failed of 1", "eraser": "1 failed of 1",
    "migration-worker": "1 failed of 1", "webhooks": "1 failed of 1",
    "notifier": "0 failed of 1", "live": "Deny",
    "sweeper": '{"awaitingEvent": 0', "reporter": '{"bytes": 0',
}


class Start:
    """One start of one function: what the server saw, when."""

    def __init__(self, event):
        self.request_id = str(uuid.uuid4())
        self.event = json.dumps(event).encode()
        self.t0 = None
        self.t_next = None
        self.t_answer = None
        self.answer_kind = None
        self.answer_body = b""
        self.answered = threading.Event()
        self.served = False
        self.lock = threading.Lock()


class Server(ThreadingHTTPServer):
    """One server per start, on a port of its own: a request the killed process of the last
    start had sent can never be taken for one of this start's."""

    daemon_threads = True

    def __init__(self, start):
        super().__init__(("127.0.0.1", 0), Runtime)
        self.start = start
        self.stop = threading.Event()

    def handle_error(self, request, client_address):
        pass  # a connection of a process killed mid-request


class Runtime(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        now = time.perf_counter()
        s = self.server.start
        if self.path == "/jwks.json":
            return self.reply(200, JWKS)
        if self.path != f"{PREFIX}/invocation/next":
            return self.reply(404, b'{"errorMessage":"not here"}')
        with s.lock:
            first = not s.served
            if first:
                s.served, s.t_next = True, now
        if not first:
            # The function asks for its next event: there is none until it is killed.
            self.server.stop.wait()
            self.close_connection = True
            return
        deadline = str(int(time.time() * 1000) + 60_000)
        self.reply(200, s.event, {
            "Lambda-Runtime-Aws-Request-Id": s.request_id,
            "Lambda-Runtime-Deadline-Ms": deadline,
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:eu-central-1:123456789012:function:cold-start",
            "Lambda-Runtime-Trace-Id": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
        })

    def do_POST(self):
        now = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
        else:
            body = self.rfile.read(length)
        s = self.server.start
        kind = None
        if self.path == f"{PREFIX}/invocation/{s.request_id}/response":
            kind = "response"
        elif self.path == f"{PREFIX}/invocation/{s.request_id}/error":
            kind = "error"
        elif self.path == f"{PREFIX}/init/error":
            kind = "init-error"
        if kind is None:
            return self.reply(404, b'{"errorMessage":"not here"}')
        self.reply(202, b'{"status":"OK"}')
        with s.lock:
            if s.t_answer is None:
                s.t_answer, s.answer_kind, s.answer_body = now, kind, body
        s.answered.set()

    def read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def describe(start):
    """What the function answered: the HTTP status for the HTTP functions, else a short summary."""
    if start.answer_kind != "response":
        try:
            return f"{start.answer_kind}: {json.loads(start.answer_body).get('errorType', '')}".strip()
        except ValueError:
            return start.answer_kind
    try:
        answer = json.loads(start.answer_body)
    except ValueError:
        # lambda_http streams nothing here: a response body is JSON; anything else is shown short.
        return start.answer_body[:40].decode(errors="replace")
    if isinstance(answer, dict) and "statusCode" in answer:
        return f"HTTP {answer['statusCode']}"
    if isinstance(answer, dict) and "batchItemFailures" in answer:
        return f"{len(answer['batchItemFailures'])} failed of 1"
    if isinstance(answer, dict) and "policyDocument" in answer:
        return answer["policyDocument"]["Statement"][0]["Effect"]
    return json.dumps(answer)[:40]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def run_once(path, env, log, timeout, wrapper=()):
    s = Start(EVENTS[os.path.basename(path)])
    server = Server(s)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"127.0.0.1:{server.server_address[1]}"
    env = {**env, "AWS_LAMBDA_RUNTIME_API": api, "AUTH_JWKS_URL": f"http://{api}/jwks.json"}
    s.t0 = time.perf_counter()
    proc = subprocess.Popen([*wrapper, path], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        while not s.answered.wait(0.01):
            if proc.poll() is not None and not s.answered.is_set():
                raise RuntimeError(f"exited with {proc.returncode} before answering")
            if time.perf_counter() - s.t0 > timeout:
                raise RuntimeError(f"no answer within {timeout} s")
        rss = rss_kib(proc.pid)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        server.stop.set()
        server.shutdown()
        server.server_close()
    if s.answer_kind == "init-error":
        raise RuntimeError(f"init error: {s.answer_body.decode(errors='replace')[:300]}")
    if s.t_next is None:
        raise RuntimeError("answered without asking for an event")
    answered = describe(s)
    expected = EXPECTED[os.path.basename(path)]
    if not answered.startswith(expected):
        raise RuntimeError(f"answered {answered!r}, not {expected!r}")
    return (s.t_next - s.t0) * 1000, (s.t_answer - s.t0) * 1000, answered, rss


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, value = line.split("=", 1)
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            env[name] = value
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--log", default=os.devnull, help="the functions' output")
    ap.add_argument("--json-out")
    ap.add_argument("--wrapper", default="", help="a command each bootstrap runs under (qemu-aarch64 ...)")
    ap.add_argument("--label", default="x86-64, stripped", help="what the bootstraps are, for the table")
    ap.add_argument("functions", nargs="+")
    args = ap.parse_args()

    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
    base.update(read_env(args.env_file))
    base.update({
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/cold-start",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": args.bin_dir,
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
    })

    wrapper = shlex.split(args.wrapper)
    results = []
    failed = []
    with open(args.log, "ab") as log:
        for name in args.functions:
            path = os.path.join(args.bin_dir, name)
            env = {**base, "AWS_LAMBDA_FUNCTION_NAME": name}
            log.write(f"\n===== {name}\n".encode())
            log.flush()
            try:
                run_once(path, env, log, args.timeout, wrapper)  # not counted: the first start after a build
                samples = [run_once(path, env, log, args.timeout, wrapper) for _ in range(args.runs)]
            except RuntimeError as e:
                print(f"{name}: {e}", file=sys.stderr)
                failed.append(name)
                continue
            nexts = [n for n, _, _, _ in samples]
            answers = [a for _, a, _, _ in samples]
            rss = [r for _, _, _, r in samples if r is not None]
            results.append({
                "function": name,
                "bytes": os.path.getsize(path),
                "deflated": len(zlib.compress(open(path, "rb").read(), 6)),  # as in the deployed zip
                "runs": len(samples),
                "next_ms": {"median": statistics.median(nexts), "p90": percentile(nexts, 90), "min": min(nexts)},
                "answer_ms": {"median": statistics.median(answers), "p90": percentile(answers, 90),
                              "min": min(answers)},
                "answered": sorted({d for _, _, d, _ in samples}),
                "rss_kib": statistics.median(rss) if rss else None,
            })
            r = results[-1]
            print(f"{name:17} {r['bytes'] / 1e6:6.2f} MB  first /next {r['next_ms']['median']:6.1f} ms "
                  f"(p90 {r['next_ms']['p90']:6.1f})  answer {r['answer_ms']['median']:6.1f} ms "
                  f"(p90 {r['answer_ms']['p90']:6.1f})  {', '.join(r['answered'])}", file=sys.stderr, flush=True)

    print()
    print(f"| function | bootstrap ({args.label}) | zipped | to first /next, median (p90) "
          "| to first answer, median (p90) | answer | RSS after it |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for r in results:
        rss = f"{r['rss_kib'] / 1024:.1f} MB" if r["rss_kib"] else "-"
        print(f"| {r['function']} | {r['bytes'] / 1e6:.2f} MB | {r['deflated'] / 1e6:.2f} MB "
              f"| {r['next_ms']['median']:.1f} ms ({r['next_ms']['p90']:.1f}) "
              f"| {r['answer_ms']['median']:.1f} ms ({r['answer_ms']['p90']:.1f}) | {', '.join(r['answered'])} | {rss} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=2)
    if failed:
        print(f"failed to start or answered otherwise: {' '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
