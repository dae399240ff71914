"""scripts/iam_calls.py: the calls a function made to the local stack, as IAM actions and
resources, against its policy in template.yaml (review 27). The smoke test runs it on every call
of the demo; here it is run on calls written out, to show what it reads them as."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def check(*calls, min_functions=1, min_presigned=0):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for c in calls:
            f.write(json.dumps({"method": "POST", "path": "/", "query": {}, "target": None, "copySource": None, **c}) + "\n")
    try:
        return subprocess.run(
            [sys.executable, os.path.join(ROOT, "scripts", "iam_calls.py"), "--calls", f.name, "--prefix", "dev",
             "--template", os.path.join(ROOT, "template.yaml"), "--min-functions", str(min_functions),
             "--min-presigned", str(min_presigned)],
            capture_output=True, text=True)
    finally:
        os.unlink(f.name)


def dynamodb(app, op, body):
    return {"app": app, "target": f"DynamoDB_20120810.{op}", "body": json.dumps(body)}


def s3(app, method, path, query=None, copy=None, tagging=None):
    return {"app": app, "method": method, "path": path, "query": query or {}, "copySource": copy,
            "taggingDirective": tagging}


class IamCalls(unittest.TestCase):
    def test_allowed_calls_pass_and_say_what_was_checked(self):
        out = check(
            dynamodb("sweeper", "GetItem", {"TableName": "dev-filestable"}),
            dynamodb("sweeper", "Query", {"TableName": "dev-filestable", "IndexName": "gsi2-status"}),
            # Deployed, the function's name carries the stack's prefix.
            dynamodb("matbakh-files-prod-sweeper", "TransactWriteItems", {"TransactItems": [
                {"Update": {"TableName": "dev-filestable"}}, {"Delete": {"TableName": "dev-filestable"}}]}),
            s3("indexer", "PUT", "/dev-filesbucket/users/u/f/a.jpg", {"tagging": "", "versionId": "v1"}),
            s3("files-api", "PUT", "/dev-filesbucket/p/f/original/a.jpg",
               copy="/dev-filesbucket/users/u/f/a.jpg?versionId=v", tagging="REPLACE"),
            s3("reporter", "GET", "/dev-logsbucket", {"list-type": "2", "prefix": "inventory/x"}),
            {"app": "notifier", "target": "AmazonSQS.SendMessageBatch",
             "body": json.dumps({"QueueUrl": "http://127.0.0.1/123/dev-webhookqueue"})},
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("SweeperFunction: dynamodb:DeleteItem x1", out.stdout)
        self.assertIn("IndexerFunction: s3:PutObjectVersionTagging x1", out.stdout)
        self.assertIn("NotifierFunction: sqs:SendMessage x1", out.stdout)

    def test_a_call_its_policy_lacks_fails_with_function_action_and_resource(self):
        out = check(
            # The sweeper may not touch the migration's table; files-api may not write variants.
            dynamodb("sweeper", "PutItem", {"TableName": "dev-migrationtable"}),
            s3("files-api", "PUT", "/dev-filesbucket/derived/f/640.webp"),
            # A copy reads its source: the thumbnailer may not read the logs bucket.
            s3("thumbnailer", "PUT", "/dev-filesbucket/p/f/original/a.jpg", copy="/dev-logsbucket/x?versionId=v"),
            # A copy that keeps its source's tags (no REPLACE) reads and writes them too.
            s3("files-api", "PUT", "/dev-filesbucket/p/f/original/a.jpg", copy="/dev-filesbucket/users/u/f/a.jpg?versionId=v"),
            # Listing under a prefix the condition does not name.
            s3("files-api", "GET", "/dev-filesbucket", {"versions": "", "prefix": "migration/"}),
        )
        self.assertEqual(out.returncode, 1)
        for line in ("SweeperFunction: dynamodb:PutItem on MigrationTable",
                     "FilesApiFunction: s3:PutObject on FilesBucket/derived/f/640.webp",
                     "ThumbnailerFunction: s3:GetObjectVersion on LogsBucket/x",
                     "FilesApiFunction: s3:ListBucketVersions on FilesBucket (prefix 'migration/')",
                     "FilesApiFunction: s3:GetObjectVersionTagging on FilesBucket/users/u/f/a.jpg",
                     "FilesApiFunction: s3:PutObjectTagging on FilesBucket/p/f/original/a.jpg"):
            self.assertIn(line, out.stderr)

    def test_requests_a_browser_sent_are_checked_against_their_signers_policy(self):
        # A form upload (its POST policy's key) and a presigned part, both the grant's signer's.
        form = {**s3("presign", "POST", "/dev-filesbucket"), "presigned": True, "formKey": "users/u/f/a.jpg"}
        part = {**s3("multipart", "PUT", "/dev-filesbucket/users/u/f/b.mp4", {"uploadId": "x", "partNumber": "1"}),
                "presigned": True}
        # A browser's CORS preflight of it carries the query too: not an IAM request.
        preflight = {**part, "method": "OPTIONS", "app": "shares"}
        out = check(form, part, preflight, min_presigned=2)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("PresignFunction: s3:PutObject x1", out.stdout)
        self.assertIn("MultipartFunction: s3:PutObject x1", out.stdout)
        self.assertIn("2 of them signed for a browser, by MultipartFunction, PresignFunction", out.stdout)
        # A form the shares function signed for a key outside its rights; too few signers.
        out = check({**form, "app": "shares"}, min_presigned=1)
        self.assertEqual(out.returncode, 1)
        self.assertIn("SharesFunction: s3:PutObject on FilesBucket/users/u/f/a.jpg", out.stderr)
        out = check(dynamodb("sweeper", "GetItem", {"TableName": "dev-filestable"}), min_presigned=1)
        self.assertEqual(out.returncode, 1)
        self.assertIn("requests signed by 0 function(s) (none), fewer than the 1 expected", out.stderr)

    def test_websocket_management_calls_are_checked_against_the_live_apis_grants(self):
        # What the local gateway writes for an @connections call a function signed.
        push = {"app": "notifier", "method": "POST", "path": "/live/@connections/abc=", "query": {}, "target": None}
        out = check(push, {**push, "method": "DELETE"})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("NotifierFunction: execute-api:ManageConnections x2", out.stdout)
        out = check({**push, "app": "shares"}, {**push, "method": "GET"})
        self.assertEqual(out.returncode, 1)
        self.assertIn("SharesFunction: execute-api:ManageConnections on LiveApi/live/POST/@connections/abc=", out.stderr)
        self.assertIn("NotifierFunction: execute-api:ManageConnections on LiveApi/live/GET/@connections/abc=", out.stderr)

    def test_calls_of_nothing_the_stack_has_are_not_counted_and_too_few_functions_fail(self):
        out = check(dynamodb("sweeper", "GetItem", {"TableName": "a-tests-own-table"}),
                    dynamodb("devtoken", "GetItem", {"TableName": "dev-filestable"}), min_functions=1)
        self.assertEqual(out.returncode, 1)
        self.assertIn("fewer than the 1 expected", out.stderr)
        self.assertIn("not a function of the template: app/devtoken", out.stdout)


if __name__ == "__main__":
    unittest.main()
