"""scripts/moto_server.py's DynamoDB transactions: a failed one puts back exactly the items it
named (and drops the stream records it added), a successful one applies; tables are no longer
copied for it, but still are for anything else that copies them."""

import copy
import sys
import unittest
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import moto_server  # noqa: E402,F401  (its fixes apply on import)
from moto.dynamodb.models import dynamodb_backends  # noqa: E402

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
