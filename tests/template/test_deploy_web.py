"""scripts/deploy_web.py against moto's server (S3, CloudFront, CloudFormation): what is
published, with which types and caching, config.json, old files removed, the invalidation; and
that bad input changes nothing."""

import contextlib
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path

import boto3

from moto_case import REGION, MotoTestCase

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import deploy_web  # noqa: E402

APP = {
    "index.html": "<!doctype html><title>files</title>",
    "app.css": "body{}",
    "js/main.js": "import './api.js';",
    "js/api.js": "export {};",
    "vendor/uppy.mjs": "export const Uppy = 1;",
    "vendor/uppy.mjs.map": "{}",
    "vendor/uppy-core.min.css": ".uppy{}",
    # Never published: the bundle's source, npm's files, hidden files.
    "vendor/uppy-entry.js": "export * from '@uppy/core';",
    "package.json": "{}",
    "node_modules/@uppy/core/index.js": "",
    "js/.draft.js": "",
}
PUBLISHED = {"index.html", "app.css", "js/main.js", "js/api.js", "vendor/uppy.mjs", "vendor/uppy.mjs.map",
             "vendor/uppy-core.min.css", "config.json"}


class DeployWeb(MotoTestCase):
    def setUp(self):
        self.s3 = boto3.client("s3", region_name=REGION)
        self.cf = boto3.client("cloudfront", region_name=REGION)
        self.bucket = f"web-{self.id().rsplit('.', 1)[-1].replace('_', '-')}"[:63]
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.s3.put_object(Bucket=self.bucket, Key="js/removed-last-release.js", Body=b"old")
        self.root = Path(tempfile.mkdtemp())
        for name, text in APP.items():
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / name).write_text(text)

    def distribution(self):
        config = {"CallerReference": self.bucket, "Comment": "", "Enabled": True,
                  "Origins": {"Quantity": 1, "Items": [{"Id": "web", "DomainName": f"{self.bucket}.s3.amazonaws.com",
                                                        "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
                  "DefaultCacheBehavior": {"TargetOriginId": "web", "ViewerProtocolPolicy": "redirect-to-https",
                                           "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"}}
        return self.cf.create_distribution(DistributionConfig=config)["Distribution"]["Id"]

    def objects(self):
        keys = {o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])}
        return {k: self.s3.head_object(Bucket=self.bucket, Key=k) for k in keys}

    def deploy(self, *extra, client_id="matbakh-web"):
        args = ["--root", str(self.root), "--cognito-domain", "https://auth.matbakh.example", *extra]
        self.output = io.StringIO()
        with contextlib.redirect_stdout(self.output), contextlib.redirect_stderr(self.output):
            return deploy_web.main(args + (["--client-id", client_id] if client_id else []))

    def test_publishes_the_app_with_types_and_caching_and_invalidates(self):
        cdn = self.distribution()
        rc = self.deploy("--bucket", self.bucket, "--distribution", cdn, "--api", "https://api.matbakh.example/")
        self.assertEqual(rc, 0)
        got = self.objects()
        self.assertEqual(set(got), PUBLISHED, "the app's files, and the old release's file is gone")
        for key, head in got.items():
            if key.endswith((".html", ".json")):
                self.assertEqual(head["CacheControl"], "public, max-age=0, must-revalidate, s-maxage=60", key)
            else:
                self.assertEqual(head["CacheControl"], "public, max-age=0, must-revalidate, s-maxage=86400", key)
        self.assertEqual(got["index.html"]["ContentType"], "text/html; charset=utf-8")
        self.assertEqual(got["vendor/uppy.mjs"]["ContentType"], "text/javascript; charset=utf-8")
        self.assertEqual(got["js/main.js"]["ContentType"], "text/javascript; charset=utf-8")
        self.assertEqual(got["app.css"]["ContentType"], "text/css; charset=utf-8")
        body = self.s3.get_object(Bucket=self.bucket, Key="config.json")["Body"].read()
        self.assertEqual(json.loads(body), {
            "api": "https://api.matbakh.example",
            "auth": {"authorizationEndpoint": "https://auth.matbakh.example/oauth2/authorize",
                     "tokenEndpoint": "https://auth.matbakh.example/oauth2/token",
                     "logoutEndpoint": "https://auth.matbakh.example/logout",
                     "clientId": "matbakh-web", "scope": "openid"}})
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="js/main.js")["Body"].read(), b"import './api.js';")
        invalidations = self.cf.list_invalidations(DistributionId=cdn)["InvalidationList"]
        self.assertEqual(invalidations["Quantity"], 1)
        one = self.cf.get_invalidation(DistributionId=cdn, Id=invalidations["Items"][0]["Id"])["Invalidation"]
        self.assertEqual(one["InvalidationBatch"]["Paths"]["Items"], ["/*"])

    def test_reads_bucket_cdn_and_api_from_the_stack(self):
        cdn = self.distribution()
        template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"WebBucketName": {"Value": self.bucket}, "WebDistributionId": {"Value": cdn},
                                "ApiUrl": {"Value": "https://abc.execute-api.eu-central-1.amazonaws.com"},
                                "LiveUrl": {"Value": "wss://def.execute-api.eu-central-1.amazonaws.com/live"},
                                "WebUrl": {"Value": "https://files.matbakh.example"}}}
        cfn = boto3.client("cloudformation", region_name=REGION)
        cfn.create_stack(StackName="matbakh-files-test", TemplateBody=json.dumps(template))
        self.assertEqual(self.deploy("--stack", "matbakh-files-test"), 0)
        config = json.loads(self.s3.get_object(Bucket=self.bucket, Key="config.json")["Body"].read())
        self.assertEqual(config["api"], "https://abc.execute-api.eu-central-1.amazonaws.com")
        self.assertEqual(config["live"], "wss://def.execute-api.eu-central-1.amazonaws.com/live")
        self.assertEqual(self.cf.list_invalidations(DistributionId=cdn)["InvalidationList"]["Quantity"], 1)

    def test_bad_input_changes_nothing(self):
        before = {k: h["ETag"] for k, h in self.objects().items()}
        cases = {
            "no client id": dict(extra=("--bucket", self.bucket, "--api", "https://api.example"), client_id=None),
            "plain http API": dict(extra=("--bucket", self.bucket, "--api", "http://api.example")),
            "plain ws live updates": dict(extra=("--bucket", self.bucket, "--api", "https://api.example", "--live", "ws://live.example/live")),
            "no API": dict(extra=("--bucket", self.bucket)),
            "both stack and bucket": dict(extra=("--bucket", self.bucket, "--stack", "x", "--api", "https://a.example")),
            "no such stack": dict(extra=("--stack", "no-such-stack",)),
        }
        for name, case in cases.items():
            with self.subTest(name):
                self.assertEqual(self.deploy(*case["extra"], client_id=case.get("client_id", "c")), 2)
                self.assertTrue(self.output.getvalue().startswith("deploy-web: "), self.output.getvalue())
        (self.root / "vendor/uppy.mjs").unlink()
        self.assertEqual(self.deploy("--bucket", self.bucket, "--api", "https://api.example"), 2, "app not built")
        self.assertEqual({k: h["ETag"] for k, h in self.objects().items()}, before)


if __name__ == "__main__":
    unittest.main()
