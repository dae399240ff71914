#!/usr/bin/env python3
"""The live updates' load (scripts/bench live): open sockets, write file events, time the
messages.

    load.py --url ws://127.0.0.1:3000/live --tokens tokens.txt --sockets 1000 --rate 100 \\
        --seconds 30 --table bench-filestable --endpoint http://127.0.0.1:5050

The tokens file has `SUB TOKEN` lines (devtoken mint-many); each user gets two sockets (two
tabs), offering `matbakh.live.v1` and `bearer.{token}` as the web app does. Then, for SECONDS,
RATE files a second are written to the files table as READY rows (a migrated file arrives
whole: one `file.ready` each), round-robin over the users, each write timed just before it is
sent. Every socket records when each message arrived. Latency is from a row's write to its
arrival at each of its owner's sockets; a message expected and not received within the drain
time is lost. Prints one JSON document; exits 1 if any message was lost or any socket failed.
"""

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import uuid

import boto3
import websockets

PROTOCOL = "matbakh.live.v1"
DRAIN_SECONDS = 60
WRITERS = 4


def uuid7(ms):
    """A UUIDv7 string for `ms` (the platform's file ids)."""
    rand = uuid.uuid4().int & ((1 << 74) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def file_row(file_id, owner, now):
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    return {
        "pk": {"S": f"FILE#{file_id}"}, "sk": {"S": "FILE"},
        "fileId": {"S": file_id}, "owner": {"S": owner},
        "key": {"S": f"users/{owner}/{file_id}/load.pdf"}, "filename": {"S": "load.pdf"},
        "contentType": {"S": "application/pdf"}, "size": {"N": "1024"}, "status": {"S": "READY"},
        "createdAt": {"S": created}, "visibility": {"S": "private"},
        "gsi1pk": {"S": f"USER#{owner}"}, "gsi1sk": {"S": f"{created}#{file_id}"},
        "gsi2pk": {"S": "STATUS#READY"}, "gsi2sk": {"S": f"{created}#{file_id}"},
        # A new row's revision, as the platform writes it (the writer's clock in ms).
        "rev": {"N": str(int(now * 1000))},
    }


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--sockets", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--table", required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", default="eu-central-1")
    ap.add_argument("--connect-concurrency", type=int, default=50)
    args = ap.parse_args()

    users = [line.split() for line in open(args.tokens) if line.strip()]
    plan = [(users[i // 2][0], users[i // 2][1]) for i in range(args.sockets)]
    arrivals = {}  # (socket index, file id) -> arrival time
    failures = []

    # Warm-up: the first connect builds and starts the functions.
    sub, token = plan[0]
    async with websockets.connect(args.url, subprotocols=[PROTOCOL, f"bearer.{token}"], open_timeout=600):
        pass

    limit = asyncio.Semaphore(args.connect_concurrency)
    connect_times = []
    sockets = []

    async def connect(i, token):
        async with limit:
            t0 = time.monotonic()
            try:
                ws = await websockets.connect(args.url, subprotocols=[PROTOCOL, f"bearer.{token}"], open_timeout=60,
                                              max_queue=None, ping_interval=None)
            except Exception as e:  # any failure to open is a finding, reported below
                failures.append(f"socket {i}: {e!r}")
                return None
            connect_times.append(time.monotonic() - t0)
            if ws.subprotocol != PROTOCOL:
                failures.append(f"socket {i}: subprotocol {ws.subprotocol!r}")
            return ws

    t_connect = time.monotonic()
    sockets = await asyncio.gather(*(connect(i, token) for i, (_, token) in enumerate(plan)))
    connect_wall = time.monotonic() - t_connect

    closing = False

    async def receive(i, ws):
        try:
            async for text in ws:
                at = time.time()
                m = json.loads(text)
                if m.get("type") == "file.ready":
                    arrivals[(i, m["data"]["fileId"])] = at
        except websockets.ConnectionClosed as e:
            if not closing:
                failures.append(f"socket {i} closed: {e}")

    receivers = [asyncio.create_task(receive(i, ws)) for i, ws in enumerate(sockets) if ws is not None]

    # The writers, in threads (boto3 blocks): RATE rows a second in all, each timed just before
    # it is sent; WRITERS of them, so one slow write does not hold the schedule up.
    sent = {}  # file id -> (owner, write time)
    owners = [u for u, _ in users]
    total = int(args.rate * args.seconds)
    start = time.monotonic()

    def write(k):
        ddb = boto3.client("dynamodb", endpoint_url=args.endpoint, region_name=args.region,
                           aws_access_key_id="local", aws_secret_access_key="local")
        for n in range(k, total, WRITERS):
            wait = start + n / args.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            owner = owners[n % len(owners)]
            now = time.time()
            file_id = uuid7(int(now * 1000))
            sent[file_id] = (owner, now)
            ddb.put_item(TableName=args.table, Item=file_row(file_id, owner, now))

    await asyncio.gather(*(asyncio.to_thread(write, k) for k in range(WRITERS)))
    writer_seconds = time.monotonic() - start
    # Drain: until every expected message arrived, or DRAIN_SECONDS.
    sockets_of = {}
    for i, (sub, _) in enumerate(plan):
        if sockets[i] is not None:
            sockets_of.setdefault(sub, []).append(i)
    expected = {(i, f) for f, (owner, _) in sent.items() for i in sockets_of.get(owner, [])}
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline and not expected <= arrivals.keys():
        await asyncio.sleep(0.2)
    closing = True
    for r in receivers:
        r.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets if ws is not None), return_exceptions=True)

    latencies = sorted((arrivals[k] - sent[k[1]][1]) * 1000 for k in expected if k in arrivals)
    lost = len(expected - arrivals.keys())
    connect_ms = sorted(t * 1000 for t in connect_times)
    poll_interval_s = 1.5
    report = {
        "sockets": {"asked": args.sockets, "open": len(connect_times), "users": len(sockets_of),
                    "connectWallSeconds": round(connect_wall, 2),
                    "connectMs": {"p50": round(percentile(connect_ms, 50), 1), "p95": round(percentile(connect_ms, 95), 1)}
                    if connect_ms else None},
        "events": {"written": len(sent), "perSecondAsked": args.rate,
                   "perSecondWritten": round(len(sent) / writer_seconds, 1) if writer_seconds else None},
        "messages": {"expected": len(expected), "received": len(expected) - lost, "lost": lost},
        "latencyMs": {p: round(percentile(latencies, q), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}
        if latencies else None,
        "meanMs": round(statistics.fmean(latencies), 1) if latencies else None,
        "pollingInstead": {"intervalSeconds": poll_interval_s,
                           "meanLatencyMs": poll_interval_s * 1000 / 2,
                           "requestsPerSecond": round(len(connect_times) / poll_interval_s, 1)},
        "failures": failures[:20],
    }
    print(json.dumps(report, indent=2))
    return 0 if lost == 0 and not failures else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
