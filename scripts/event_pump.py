#!/usr/bin/env python3
"""The local stand-in for Lambda's SQS and DynamoDB Streams event source mappings.

    event_pump.py --endpoint http://127.0.0.1:5050 --lambda http://127.0.0.1:9000 \\
        --queue dev-indexerqueue=indexer [--queue NAME=FUNCTION ...] \\
        [--streams-file streams.json]

For each queue: long-poll up to 10 messages, invoke the function once with them as an SQS
event (through `cargo lambda watch`'s invoke API), delete the messages the function did not
report in `batchItemFailures`, and leave those to become visible again (after five receives
the queue's redrive policy moves them to the DLQ). If the invocation itself fails, nothing is
deleted. Each queue has its own thread, as each event source mapping is independent: a slow
thumbnail never holds up the indexer. Runs until stopped.

For each table stream the streams file names (`local_resources.py --streams-out`, from the
template's DynamoDB events; read from moto's DynamoDB Streams from the latest record on, as
`StartingPosition: LATEST`): every batching window (at least 0.2 s) the new records of each
shard that match the mapping's `FilterCriteria` pattern go to the function as one DynamoDB
event, in order. A record named in `batchItemFailures` is handed over again,
with every record after it, up to three times, then skipped (deployed: the mapping's DLQ).
"""

import argparse
import base64
import faulthandler
import signal
import json
import sys
import threading
import time

import boto3
import botocore.exceptions
import requests


def to_record(message, queue_arn, region):
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def pump_once(sqs, http, lambda_url, queue_url, queue_arn, function, region):
    batch = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5, AttributeNames=["All"]
    ).get("Messages", [])
    if not batch:
        return 0
    event = {"Records": [to_record(m, queue_arn, region) for m in batch]}
    resp = http.post(f"{lambda_url}/2015-03-31/functions/{function}/invocations", json=event, timeout=300)
    answer = resp.json() if resp.ok else None
    if not isinstance(answer, dict) or "errorType" in answer:
        print(f"event_pump: {function} failed: {resp.status_code} {resp.text[:300]}", file=sys.stderr, flush=True)
        return 0
    failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
    done = [m for m in batch if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )
    print(json.dumps({"function": function, "delivered": len(batch), "failed": len(failed)}), flush=True)
    return len(done)


def dynamodb_json(value):
    """An attribute value from boto3's low-level client as Lambda's event holds it (bytes in
    Base64)."""
    if isinstance(value, dict):
        return {k: dynamodb_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dynamodb_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def stream_record(record, stream_arn, region):
    d = dict(record["dynamodb"])
    created = d.get("ApproximateCreationDateTime")
    d["ApproximateCreationDateTime"] = created.timestamp() if hasattr(created, "timestamp") else (created or time.time())
    for k in ("Keys", "NewImage", "OldImage"):
        if k in d:
            d[k] = dynamodb_json(d[k])
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": d,
        "eventSourceARN": stream_arn,
    }


def matches(pattern, value):
    """The subset of Lambda's filter patterns the template uses: nested objects, lists of the
    exact values allowed, and `{"exists": true}` in such a list."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            matches(p, value[k]) if k in value else p == [{"exists": False}] for k, p in pattern.items()
        )
    if isinstance(pattern, list):
        return any(p == {"exists": True} or p == value for p in pattern)
    return pattern == value


def matches_any(patterns, value):
    """A mapping's filters: a record goes to the function if any of them matches (none: all go)."""
    return not patterns or any(matches(p, value) for p in patterns)


class StreamPump:
    """One stream mapping. Each shard's place is kept as a sequence number and a fresh iterator
    is asked for at each poll: moto replaces a table (and its stream shard) with a copy when a
    transaction is cancelled, and an iterator made before that would read the old shard forever.
    A failed call is tried again from the same place; nothing is skipped."""

    def __init__(self, streams, http, lambda_url, table, function, patterns, region):
        self.streams, self.http, self.lambda_url = streams, http, lambda_url
        self.table, self.function, self.patterns, self.region = table, function, patterns, region
        self.arn = streams.list_streams(TableName=table)["Streams"][0]["StreamArn"]
        # Where each shard is read from next: (iterator type, sequence number). From the latest
        # record on, as StartingPosition: LATEST: what is there already is passed over.
        self.places = {}
        for shard in streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            place = ("AT_SEQUENCE_NUMBER", shard["SequenceNumberRange"]["StartingSequenceNumber"])
            while records := self.read(shard["ShardId"], place):
                place = ("AFTER_SEQUENCE_NUMBER", records[-1]["dynamodb"]["SequenceNumber"])
            self.places[shard["ShardId"]] = place
        self.retries = {}

    def read(self, shard, place):
        kind, seq = place
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard, ShardIteratorType=kind, SequenceNumber=seq)["ShardIterator"]
        return self.streams.get_records(ShardIterator=iterator, Limit=1000).get("Records", [])

    def once(self):
        for shard, place in list(self.places.items()):
            raw = self.read(shard, place)
            if not raw:
                continue
            records = [stream_record(r, self.arn, self.region) for r in raw]
            chosen = [r for r in records if matches_any(self.patterns, r)]
            failed = None
            if chosen:
                resp = self.http.post(f"{self.lambda_url}/2015-03-31/functions/{self.function}/invocations",
                                      json={"Records": chosen}, timeout=300)
                answer = resp.json() if resp.ok else None
                if not isinstance(answer, dict) or "errorType" in answer:
                    print(f"event_pump: {self.function} failed: {resp.status_code} {resp.text[:300]}", file=sys.stderr, flush=True)
                    failed = chosen[0]["dynamodb"]["SequenceNumber"]
                else:
                    failures = answer.get("batchItemFailures", [])
                    failed = failures[0]["itemIdentifier"] if failures else None
                print(json.dumps({"function": self.function, "stream": self.table, "delivered": len(chosen), "failed": failed}), flush=True)
            if failed is not None and self.retries.get(failed, 0) < 3:
                self.retries[failed] = self.retries.get(failed, 0) + 1
                self.places[shard] = ("AT_SEQUENCE_NUMBER", failed)
            else:
                self.places[shard] = ("AFTER_SEQUENCE_NUMBER", raw[-1]["dynamodb"]["SequenceNumber"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--lambda", dest="lambda_url", required=True)
    ap.add_argument("--region", default="eu-central-1")
    ap.add_argument("--queue", action="append", default=[], help="QUEUE_NAME=FUNCTION")
    ap.add_argument("--streams-file", help="the DynamoDB stream mappings (JSON: table, function, window, patterns)")
    args = ap.parse_args()
    # `kill -USR1` prints every thread's stack (a pump that seems stuck says where).
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    def pump(name, function):
        # A boto3 session, client and HTTP session per thread (none is shared across threads).
        sqs = boto3.session.Session().client("sqs", endpoint_url=args.endpoint, region_name=args.region)
        http = requests.Session()
        http.trust_env = False
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        while True:
            try:
                pump_once(sqs, http, args.lambda_url, url, arn, function, args.region)
            except (requests.RequestException, boto3.exceptions.Boto3Error) as e:
                print(f"event_pump: {function}: {e}", file=sys.stderr, flush=True)
                time.sleep(1)

    def stream(m):
        window = max(float(m["window"]), 0.2)
        streams = boto3.session.Session().client("dynamodbstreams", endpoint_url=args.endpoint, region_name=args.region)
        http = requests.Session()
        http.trust_env = False
        pump = StreamPump(streams, http, args.lambda_url, m["table"], m["function"], m["patterns"], args.region)
        while True:
            time.sleep(window)
            try:
                pump.once()
            except Exception as e:  # any failure: said, and the same records tried again
                print(f"event_pump: {m['function']} on {m['table']}: {e!r}", file=sys.stderr, flush=True)
                time.sleep(1)

    threads = []
    for spec in args.queue:
        name, function = spec.split("=", 1)
        threads.append(threading.Thread(target=pump, args=(name, function), name=function, daemon=True))
    for m in json.load(open(args.streams_file)) if args.streams_file else []:
        threads.append(threading.Thread(target=stream, args=(m,), name=f"{m['table']}->{m['function']}", daemon=True))
    for t in threads:
        t.start()
    # Until stopped; a thread that died (its queue is gone) stops the pump, loudly.
    while all(t.is_alive() for t in threads):
        time.sleep(1)
    sys.exit("event_pump: a queue's pump stopped")


if __name__ == "__main__":
    main()
