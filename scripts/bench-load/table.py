#!/usr/bin/env python3
"""The load benchmark's table in moto (scripts/bench load), between runs.

    table.py count TABLE            its item count
    table.py keys TABLE OUT.json    the keys of its items now
    table.py reset TABLE KEYS.json  deletes every item whose key is not in KEYS; prints how many

Every run adds items (an audit record per download, grant and share opened, a PENDING row per
upload grant), and moto reads every item of the table for each query, so a run on a bigger
table is a slower run. Deleting what a run added gives each run the seeded table. (The usage
items keep the runs' reservations; the quota is far off.)
"""

import json
import os
import sys

import boto3


def client():
    return boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])


def keys(db, table):
    schema = db.describe_table(TableName=table)["Table"]["KeySchema"]
    names = [k["AttributeName"] for k in schema]
    found, start = [], None
    while True:
        page = db.scan(TableName=table, ProjectionExpression=", ".join(f"#k{i}" for i in range(len(names))),
                       ExpressionAttributeNames={f"#k{i}": n for i, n in enumerate(names)},
                       **({"ExclusiveStartKey": start} if start else {}))
        found += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return found


def main():
    command, table = sys.argv[1], sys.argv[2]
    db = client()
    if command == "count":
        print(db.describe_table(TableName=table)["Table"]["ItemCount"])
    elif command == "keys":
        with open(sys.argv[3], "w") as f:
            json.dump(keys(db, table), f)
    elif command == "reset":
        with open(sys.argv[3]) as f:
            kept = {json.dumps(k, sort_keys=True) for k in json.load(f)}
        added = [k for k in keys(db, table) if json.dumps(k, sort_keys=True) not in kept]
        for i in range(0, len(added), 25):
            batch = {table: [{"DeleteRequest": {"Key": k}} for k in added[i : i + 25]]}
            while batch:
                batch = db.batch_write_item(RequestItems=batch).get("UnprocessedItems") or None
        print(len(added))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
