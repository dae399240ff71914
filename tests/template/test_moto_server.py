"""scripts/moto_server.py's DynamoDB transactions: a failed one puts back exactly the items it
named (and drops the stream records it added), a successful one applies; tables are no longer
copied for it, but still are for anything else that copies them. Queries by partition key read
only the partition and answer exactly what moto's own query answers. A form upload answers with
the object's ETag and version id and the bucket's CORS headers, as S3 does."""

import copy
import sys
import unittest
from pathlib import Path

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import moto_server  # noqa: E402,F401  (its fixes apply on import)
from moto.dynamodb.models import dynamodb_backends  # noqa: E402
from moto.dynamodb.models.table import Table  # noqa: E402

from moto_case import REGION, MotoTestCase  # noqa: E402


class Transactions(MotoTestCase):
    def setUp(self):
        self.db = boto3.client("dynamodb", region_name=REGION)
        self.table = f"t-{self.id().rsplit('.', 1)[-1]}"
        self.db.create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        for pk, n in [("usage", "10"), ("other", "1")]:
            self.db.put_item(TableName=self.table, Item={"pk": {"S": pk}, "sk": {"S": "x"}, "n": {"N": n}})

    def item(self, pk):
        got = self.db.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": "x"}}, ConsistentRead=True)
        return got.get("Item")

    def model(self):
        return dynamodb_backends["123456789012"][REGION].tables[self.table]

    def transact(self, new_pk, fail):
        return self.db.transact_write_items(TransactItems=[
            {"Update": {"TableName": self.table, "Key": {"pk": {"S": "usage"}, "sk": {"S": "x"}},
                        "UpdateExpression": "ADD n :five", "ExpressionAttributeValues": {":five": {"N": "5"}}}},
            {"Put": {"TableName": self.table, "Item": {"pk": {"S": new_pk}, "sk": {"S": "x"}}}},
            {"ConditionCheck": {"TableName": self.table, "Key": {"pk": {"S": "other"}, "sk": {"S": "x"}},
                                "ConditionExpression": "n = :n", "ExpressionAttributeValues": {":n": {"N": "2" if fail else "1"}}}},
        ])

    def test_a_failed_transaction_puts_back_what_it_named_and_nothing_else(self):
        table = self.model()
        records = len(table.stream_shard.items)
        put = table.put_item

        def put_and_meanwhile(*args, **kwargs):
            table.put_item = put
            put({"pk": {"S": "meanwhile"}, "sk": {"S": "x"}})  # another request's write, meanwhile
            return put(*args, **kwargs)

        table.put_item = put_and_meanwhile
        with self.assertRaises(ClientError) as refused:
            self.transact("file-1", fail=True)
        self.assertEqual(refused.exception.response["Error"]["Code"], "TransactionCanceledException")
        self.assertEqual(self.item("usage")["n"], {"N": "10"})
        self.assertIsNone(self.item("file-1"))
        self.assertIsNotNone(self.item("meanwhile"), "the other request's write was undone")
        kept = [r.record["dynamodb"]["Keys"]["pk"]["S"] for r in table.stream_shard.items[records:]]
        self.assertEqual(kept, ["meanwhile"], "only the failed transaction's stream records go")

        self.transact("file-2", fail=False)
        self.assertEqual(self.item("usage")["n"], {"N": "15"})
        self.assertIsNotNone(self.item("file-2"))
        self.assertEqual(len(table.stream_shard.items), records + 3)

    def test_tables_are_still_copied_outside_transactions(self):
        table = self.model()
        copied = copy.deepcopy(table)
        self.assertIsNot(copied, table)
        self.assertIsNot(copied.items, table.items)
        self.assertEqual(len(copied.all_items()), len(table.all_items()))


if __name__ == "__main__":
    unittest.main()


class PartitionQueries(MotoTestCase):
    """The same answers as moto's own query (which lists the whole table), page by page, both
    directions, with key conditions and filters; index queries and scans unchanged."""

    def setUp(self):
        self.db = boto3.client("dynamodb", region_name=REGION)
        self.table = f"q-{self.id().rsplit('.', 1)[-1]}"
        self.db.create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "g", "r")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {"IndexName": "byg", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                 "Projection": {"ProjectionType": "ALL"}},
                {"IndexName": "bygr", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                                                    {"AttributeName": "r", "KeyType": "RANGE"}],
                 "Projection": {"ProjectionType": "ALL"}}])
        for user in range(20):
            for n in range(7):
                self.db.put_item(TableName=self.table, Item={
                    "pk": {"S": f"USER#{user:02}"}, "sk": {"S": f"CONN#{(n * 37) % 11:02}"},
                    "g": {"S": f"G{n % 3}"}, "r": {"S": f"R{n % 2}"}, "n": {"N": str(n)}})

    def pages(self, **query):
        out, start = [], None
        while True:
            page = self.db.query(TableName=self.table, Limit=3, **({"ExclusiveStartKey": start} if start else {}), **query)
            out.append(page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start:
                return out

    def both_ways(self, **query):
        """The answer with the patch, and moto's own (the patch taken away for the call)."""
        patched = self.pages(**query)
        Table.query, Table.all_items = moto_server._query, moto_server._all_items
        try:
            own = self.pages(**query)
        finally:
            Table.query, Table.all_items = moto_server._query_by_partition, moto_server._all_items_of_the_partition
        return patched, own

    def test_partition_queries_answer_as_moto_does(self):
        user = {":pk": {"S": "USER#07"}}
        for query in [
            {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": user},
            {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": user, "ScanIndexForward": False},
            {"KeyConditionExpression": "pk = :pk AND begins_with(sk, :c)",
             "ExpressionAttributeValues": {**user, ":c": {"S": "CONN#0"}}},
            {"KeyConditionExpression": "pk = :pk", "FilterExpression": "n > :two",
             "ExpressionAttributeValues": {**user, ":two": {"N": "2"}}},
            {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "USER#99"}}},
            {"IndexName": "byg", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "G1"}}},
            # many items with equal index keys: the table's keys order them
            {"IndexName": "bygr", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "G0"}}},
            {"IndexName": "bygr", "KeyConditionExpression": "g = :g AND r = :r", "ScanIndexForward": False,
             "ExpressionAttributeValues": {":g": {"S": "G2"}, ":r": {"S": "R1"}}},
        ]:
            patched, own = self.both_ways(**query)
            self.assertEqual(patched, own, query)
        first = self.pages(KeyConditionExpression="pk = :pk", ExpressionAttributeValues=user)
        self.assertEqual(sum(len(p) for p in first), 7)
        self.assertEqual([i["sk"]["S"] for p in first for i in p], sorted(i["sk"]["S"] for p in first for i in p))

    def test_a_query_reads_only_its_partition_and_scans_read_everything(self):
        # (index queries read every item, unsorted: see moto_server.py)
        table = dynamodb_backends["123456789012"][REGION].tables[self.table]
        seen = []
        values = type(table.items).values

        class Watched(type(table.items)):
            def values(inner):
                seen.append("all")
                return values(inner)

        table.items = Watched(dict, table.items)
        self.db.query(TableName=self.table, KeyConditionExpression="pk = :pk",
                      ExpressionAttributeValues={":pk": {"S": "USER#03"}})
        self.assertEqual(seen, [], "the whole table was listed for one partition")
        self.assertEqual(self.db.scan(TableName=self.table)["Count"], 140)
        self.assertEqual(seen, ["all"])


class FormUploads(MotoTestCase):
    def test_a_form_upload_answers_its_etag_and_version_readable_by_the_allowed_origin(self):
        s3 = boto3.client("s3", region_name=REGION, config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="form-uploads", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket="form-uploads", VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_cors(Bucket="form-uploads", CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": ["http://web.test"], "AllowedMethods": ["PUT", "POST"], "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"]}]})
        post = s3.generate_presigned_post("form-uploads", "users/a/photo.jpg")
        resp = requests.post(post["url"], data=post["fields"], files={"file": b"jpeg bytes"},
                             headers={"Origin": "http://web.test"})
        self.assertEqual(resp.status_code, 204)
        head = s3.head_object(Bucket="form-uploads", Key="users/a/photo.jpg")
        self.assertEqual(resp.headers["ETag"], head["ETag"])
        self.assertEqual(resp.headers["x-amz-version-id"], head["VersionId"])
        self.assertEqual(resp.headers["Access-Control-Allow-Origin"], "http://web.test")
        self.assertEqual(resp.headers["Access-Control-Expose-Headers"], "ETag")

        # Deleting keys by POST is untouched.
        deleted = s3.delete_objects(Bucket="form-uploads", Delete={"Objects": [{"Key": "users/a/photo.jpg"}]})
        self.assertEqual([d["Key"] for d in deleted["Deleted"]], ["users/a/photo.jpg"])


class Signers(unittest.TestCase):
    """A request a browser sends with a function's signature names the function by its key id
    (`LOCAL_SIGNER_NAMES`), for scripts/iam_calls.py."""

    def test_a_presigned_url_or_a_form_upload_names_its_signer(self):
        import io
        from urllib.parse import parse_qs
        query = parse_qs("X-Amz-Credential=local.multipart%2F20261207%2Feu-central-1%2Fs3%2Faws4_request&partNumber=1")
        self.assertEqual(moto_server._signer({"REQUEST_METHOD": "PUT"}, query), ("multipart", None))
        body = (b'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\nusers/u/f/a.jpg\r\n'
                b'--b\r\nContent-Disposition: form-data; name="X-Amz-Credential"\r\n\r\n'
                b'local.presign/20261207/eu-central-1/s3/aws4_request\r\n'
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8\r\n--b--\r\n')
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "multipart/form-data; boundary=b",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
        self.assertEqual(moto_server._signer(environ, {}), ("presign", "users/u/f/a.jpg"))
        self.assertEqual(environ["wsgi.input"].read(), body, "moto still reads the whole body")
        # A key of a client's own (a test's, the demo's) names no function.
        self.assertEqual(moto_server._signer({"REQUEST_METHOD": "GET"}, parse_qs("X-Amz-Credential=local%2Fx")), (None, None))
