"""scripts/iam_check.py finds what it must, and the template passes it."""

import os
import sys
import unittest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import iam_check  # noqa: E402
from cfnlint.decode import cfn_yaml  # noqa: E402


def function(*statements, policies=None):
    return {"Resources": {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {
        "Policies": policies if policies is not None else [{"Version": "2012-10-17", "Statement": list(statements)}]}}}}


def allow(action, resource, sid="S"):
    return {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource}


class IamCheck(unittest.TestCase):
    def test_the_templates_hold(self):
        for name in ("template.yaml", "template-replica.yaml", "template-edge.yaml"):
            self.assertEqual(iam_check.findings(cfn_yaml.load(os.path.join(ROOT, name))), [], name)

    def test_scoped_statements_pass(self):
        self.assertEqual(iam_check.findings(function(allow(["s3:GetObject"], {"Fn::Sub": "${B.Arn}/users/*"}))), [])
        # A wildcard in a resource ARN's path is scoping, not a wildcard resource.
        self.assertEqual(iam_check.findings(function(allow("dynamodb:Query", "arn:aws:dynamodb:::table/t/index/*"))), [])

    def test_wildcard_actions_and_resources_are_found(self):
        cases = [
            function(allow("s3:*", "arn:aws:s3:::b/*")),
            function(allow(["s3:Get*"], "arn:aws:s3:::b/*")),
            function(allow("*", "arn:aws:s3:::b")),
            function(allow("s3:GetObject", "*")),
            function({"Sid": "N", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}),
            function(policies=["AmazonS3FullAccess"]),
            function(policies=[{"S3CrudPolicy": {"BucketName": "b"}}]),
            {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [
                {"PolicyName": "p", "PolicyDocument": {"Statement": [allow("sqs:*", "arn:aws:sqs:::q")]}}]}}}},
        ]
        for t in cases:
            with self.subTest(t=t):
                self.assertEqual(len(iam_check.findings(t)), 1, iam_check.findings(t))

    def test_a_managed_policy_of_the_template_is_checked_where_it_is_declared(self):
        def shared(*statements):
            t = function(policies=[{"Ref": "Shared"}])
            t["Resources"]["Shared"] = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {
                "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)}}}
            return t
        self.assertEqual(iam_check.findings(shared(allow("s3:GetObject", "arn:aws:s3:::b/users/*"))), [])
        self.assertEqual(len(iam_check.findings(shared(allow("s3:*", "arn:aws:s3:::b/*")))), 1)
        # A `!Ref` to something else (a parameter holding an ARN) is not one of ours.
        self.assertEqual(len(iam_check.findings(function(policies=[{"Ref": "SomePolicyArn"}]))), 1)

    def test_statements_under_a_condition_are_checked_in_each_branch(self):
        # `!If [Cond, statement, !Ref AWS::NoValue]` in a function's or a bucket's policy: the
        # statement is granted whenever the condition holds (it was skipped: no `Effect` on the
        # `Fn::If` itself).
        no_value = {"Ref": "AWS::NoValue"}
        cond = lambda yes, no=no_value: {"Fn::If": ["C", yes, no]}
        self.assertEqual(iam_check.findings(function(cond(allow("s3:GetObject", "arn:aws:s3:::b/*")))), [])
        self.assertEqual(len(iam_check.findings(function(cond(allow("s3:*", "arn:aws:s3:::b/*"))))), 1)
        self.assertEqual(len(iam_check.findings(function(cond(no_value, allow("sqs:SendMessage", "*"))))), 1)
        anyone = {"Sid": "Any", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        bucket = {"Resources": {"P": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "PolicyDocument": {"Statement": [cond(anyone)]}}}}}
        self.assertEqual(len(iam_check.findings(bucket)), 1)

    def test_listed_sids_may_use_star_and_denies_are_not_grants(self):
        self.assertEqual(iam_check.findings(function(allow("xray:PutTraceSegments", "*", sid="XRayTraces"))), [])
        deny = {"Sid": "D", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}
        self.assertEqual(iam_check.findings(function(deny)), [])

    def test_key_and_resource_policies(self):
        root = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "kms:*", "Resource": "*"}
        svc = {"Sid": "Svc", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}
        anyone = {"Sid": "Any", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        key = lambda *st: {"Resources": {"K": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {"Statement": list(st)}}}}}
        bucket = lambda *st: {"Resources": {"P": {"Type": "AWS::S3::BucketPolicy", "Properties": {"PolicyDocument": {"Statement": list(st)}}}}}
        self.assertEqual(iam_check.findings(key(root)), [])
        self.assertEqual(len(iam_check.findings(key(svc))), 1)
        self.assertEqual(len(iam_check.findings(bucket(anyone))), 1)


if __name__ == "__main__":
    unittest.main()
