#!/usr/bin/env python3
"""The local stand-in for Lambda's SQS event source mappings.

    event_pump.py --endpoint http://127.0.0.1:5050 --lambda http://127.0.0.1:9000 \\
        --queue dev-indexerqueue=indexer [--queue NAME=FUNCTION ...]

For each queue: long-poll up to 10 messages, invoke the function once with them as an SQS
event (through `cargo lambda watch`'s invoke API), delete the messages the function did not
report in `batchItemFailures`, and leave those to become visible again (after five receives
the queue's redrive policy moves them to the DLQ). If the invocation itself fails, nothing is
deleted. Each queue has its own thread, as each event source mapping is independent: a slow
thumbnail never holds up the indexer. Runs until stopped.
"""

import argparse
import json
import sys
import threading
import time

import boto3
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--lambda", dest="lambda_url", required=True)
    ap.add_argument("--region", default="eu-central-1")
    ap.add_argument("--queue", action="append", required=True, help="QUEUE_NAME=FUNCTION")
    args = ap.parse_args()
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

    threads = []
    for spec in args.queue:
        name, function = spec.split("=", 1)
        threads.append(threading.Thread(target=pump, args=(name, function), name=function, daemon=True))
    for t in threads:
        t.start()
    # Until stopped; a thread that died (its queue is gone) stops the pump, loudly.
    while all(t.is_alive() for t in threads):
        time.sleep(1)
    sys.exit("event_pump: a queue's pump stopped")


if __name__ == "__main__":
    main()
