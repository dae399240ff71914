"""What the template must hold for operations, checked on template.yaml itself: queues,
alarms, logs, functions and the region rule (issue 7). cfn-lint and checkov check the
schema and common rules; these are ours."""

import json
import subprocess
import os
import re
import unittest

from cfnlint.decode import cfn_yaml

from cfn import statements

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
T = cfn_yaml.load(os.path.join(ROOT, "template.yaml"))
RES = T["Resources"]
GLOBAL_FN = T["Globals"]["Function"]


def of_type(kind):
    return {k: v for k, v in RES.items() if v["Type"] == kind}


def ref(v):
    """The logical id a `!Ref X` or `!GetAtt X.Attr` names."""
    if isinstance(v, dict):
        if "Ref" in v:
            return v["Ref"]
        if "Fn::GetAtt" in v:
            a = v["Fn::GetAtt"]
            return a[0] if isinstance(a, list) else a.split(".")[0]
    return None


def directives(policy):
    """`directive -> set of sources` of a Content-Security-Policy."""
    out = {}
    for d in policy.split(";"):
        words = d.split()
        if words:
            out[words[0]] = set(words[1:])
    return out


FUNCTIONS = of_type("AWS::Serverless::Function")
QUEUES = of_type("AWS::SQS::Queue")
ALARMS = of_type("AWS::CloudWatch::Alarm")


def consumers():
    """(queue, function) for every SQS event source."""
    for name, fn in FUNCTIONS.items():
        for ev in (fn["Properties"].get("Events") or {}).values():
            if ev["Type"] == "SQS":
                yield ref(ev["Properties"]["Queue"]), name


def alarmed_queues():
    out = set()
    for a in ALARMS.values():
        for d in a["Properties"].get("Dimensions", []):
            if d["Name"] == "QueueName":
                out.add(ref(d["Value"]))
    return out


class Rules(unittest.TestCase):
    def test_visibility_timeout_is_at_least_six_times_the_consumers_timeout(self):
        pairs = list(consumers())
        self.assertTrue(pairs)
        for queue, fn in pairs:
            timeout = FUNCTIONS[fn]["Properties"].get("Timeout", GLOBAL_FN["Timeout"])
            visibility = QUEUES[queue]["Properties"].get("VisibilityTimeout", 30)
            self.assertGreaterEqual(int(visibility), 6 * int(timeout), f"{queue} (consumed by {fn})")

    def test_every_consumed_queue_has_a_dlq_and_every_dlq_an_alarm(self):
        consumed = {q for q, _ in consumers()}
        for q in consumed:
            redrive = QUEUES[q]["Properties"].get("RedrivePolicy")
            self.assertIsNotNone(redrive, f"{q} has no dead-letter queue")
            self.assertLessEqual(int(redrive["maxReceiveCount"]), 10, q)
        dlqs = set(QUEUES) - consumed
        self.assertTrue(dlqs)
        self.assertEqual(dlqs - alarmed_queues(), set(), "dead-letter queues without an alarm on their depth")

    def test_consumers_know_their_queues_last_delivery(self):
        # The exporter marks a job FAILED, the thumbnailer a file, on the delivery after which
        # SQS moves its message to the DLQ: each constant and its queue's maxReceiveCount are the
        # same number.
        for path, const, queue in [
            (("core", "src", "exports.rs"), "EXPORT_MAX_RECEIVES", "ExportQueue"),
            (("thumbnailer", "src", "lib.rs"), "THUMBNAIL_MAX_RECEIVES", "ThumbnailerQueue"),
        ]:
            with open(os.path.join(ROOT, "crates", *path)) as f:
                src = f.read()
            receives = int(re.search(rf"pub const {const}: u32 = (\d+);", src).group(1))
            self.assertEqual(int(QUEUES[queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"]), receives, queue)

    def test_both_apis_throttle_every_route(self):
        http = RES["HttpApi"]["Properties"]["DefaultRouteSettings"]
        self.assertEqual(ref(http["ThrottlingRateLimit"]), "ApiThrottleRateLimit")
        self.assertEqual(ref(http["ThrottlingBurstLimit"]), "ApiThrottleBurstLimit")
        params = T["Parameters"]
        self.assertLessEqual(params["ApiThrottleRateLimit"]["Default"], params["ApiThrottleBurstLimit"]["Default"])
        live = RES["LiveStage"]["Properties"]["DefaultRouteSettings"]
        self.assertTrue({"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(live))

    def test_a_queue_poller_takes_no_batch_its_function_could_not_run(self):
        # Review 27: with reserved concurrency alone, SQS starts more batches than may run; the
        # throttled ones come back with their receive count raised and reach the DLQ unrun.
        for lid, res in of_type("AWS::Serverless::Function").items():
            props = res["Properties"]
            for name, event in (props.get("Events") or {}).items():
                if event["Type"] != "SQS":
                    continue
                scaling = event["Properties"].get("ScalingConfig", {})
                self.assertIn("MaximumConcurrency", scaling, f"{lid}.{name}")
                if "ReservedConcurrentExecutions" in props:
                    self.assertEqual(scaling["MaximumConcurrency"], props["ReservedConcurrentExecutions"], lid)

    def test_every_queue_is_encrypted(self):
        for name, q in QUEUES.items():
            p = q["Properties"]
            self.assertTrue(p.get("SqsManagedSseEnabled") or p.get("KmsMasterKeyId"), name)

    def test_every_alarm_tells_someone(self):
        for name, a in ALARMS.items():
            self.assertEqual([ref(x) for x in a["Properties"].get("AlarmActions", [])], ["AlertsTopic"], name)

    def test_the_topic_alarms_send_to_lets_cloudwatch_publish(self):
        # A topic policy replaces SNS's default one: a service it does not name cannot publish,
        # so an alarm goes to ALARM and tells no one (review 23: only budgets was named).
        for path in ("template.yaml", "template-edge.yaml"):
            res = cfn_yaml.load(os.path.join(ROOT, path))["Resources"]
            topics = {
                ref(t)
                for a in res.values()
                if a["Type"] == "AWS::CloudWatch::Alarm"
                for t in a["Properties"].get("AlarmActions", [])
            }
            self.assertTrue(topics, path)
            for topic in topics:
                allowed = set()
                for p in res.values():
                    props = p["Properties"] if p["Type"] == "AWS::SNS::TopicPolicy" else {}
                    if topic not in [ref(t) for t in props.get("Topics", [])]:
                        continue
                    for st in props["PolicyDocument"]["Statement"]:
                        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                        if st["Effect"] == "Allow" and "sns:Publish" in actions and ref(st["Resource"]) == topic:
                            service = st["Principal"].get("Service", [])
                            allowed |= set(service if isinstance(service, list) else [service])
                self.assertIn("cloudwatch.amazonaws.com", allowed, f"{path}: {topic}")

    def test_every_function_fails_loudly_and_logs_to_its_own_encrypted_group(self):
        alarmed = set()
        for a in ALARMS.values():
            for m in a["Properties"].get("Metrics", []):
                for d in m.get("MetricStat", {}).get("Metric", {}).get("Dimensions", []):
                    if d["Name"] == "FunctionName":
                        alarmed.add(ref(d["Value"]))
        self.assertEqual(set(FUNCTIONS) - alarmed, set(), "functions without an errors/throttles alarm")
        groups = set()
        for name, fn in FUNCTIONS.items():
            group = ref(fn["Properties"]["LoggingConfig"]["LogGroup"])
            self.assertNotIn(group, groups, f"{name} shares a log group")
            groups.add(group)
            props = RES[group]["Properties"]
            self.assertIn("RetentionInDays", props, group)
            self.assertIn("KmsKeyId", props, group)

    def test_functions_are_arm64_al2023_traced_with_an_async_dlq(self):
        self.assertEqual(GLOBAL_FN["Runtime"], "provided.al2023")
        self.assertEqual(ref(GLOBAL_FN["Architectures"][0]), "Arch")
        self.assertEqual(T["Parameters"]["Arch"]["Default"], "arm64")
        self.assertEqual(GLOBAL_FN["Tracing"], "Active")
        self.assertEqual(ref(GLOBAL_FN["DeadLetterQueue"]["TargetArn"]), "AsyncFailuresQueue")
        for name, fn in FUNCTIONS.items():
            for key in ("Runtime", "Architectures", "Tracing", "DeadLetterQueue"):
                self.assertNotIn(key, fn["Properties"], f"{name} overrides {key}")

    def test_no_function_environment_holds_a_secret(self):
        # A secret resolved into the environment is readable by anyone who may read the
        # function's configuration; functions read secrets from Secrets Manager at start, by id.
        for name, fn in of_type("AWS::Serverless::Function").items():
            env = (fn["Properties"].get("Environment") or {}).get("Variables") or {}
            for var, value in env.items():
                text = json.dumps(value)
                self.assertNotIn("resolve:secretsmanager", text, f"{name}.{var}")
                self.assertNotIn("resolve:ssm-secure", text, f"{name}.{var}")

    def test_the_stack_refuses_regions_outside_the_eu(self):
        assertion = T["Rules"]["EuRegionsOnly"]["Assertions"][0]["Assert"]["Fn::Contains"]
        allowed, region = assertion
        self.assertEqual(region, {"Ref": "AWS::Region"})
        self.assertIn("eu-central-1", allowed)
        self.assertTrue(all(r.startswith("eu-") for r in allowed), allowed)
        self.assertNotIn("eu-west-2", allowed, "London is not in the EU")


class FilesBucket(unittest.TestCase):
    def test_only_tls_and_only_the_stacks_key(self):
        bucket = RES["FilesBucket"]["Properties"]
        default, = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        self.assertEqual(default["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms")
        self.assertEqual(ref(default["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]), "FilesKey")
        self.assertTrue(default["BucketKeyEnabled"])
        self.assertTrue(RES["FilesKey"]["Properties"]["EnableKeyRotation"])
        # (A statement under a condition, `Fn::If`, is an Allow of the files CDN: test_files_cdn.py.)
        denies = [s for s in RES["FilesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"] if s.get("Effect") == "Deny"]
        conditions = [(k, v) for s in denies for c in s["Condition"].values() for k, v in c.items()]
        self.assertIn(("aws:SecureTransport", "false"), conditions)
        self.assertIn(("s3:x-amz-server-side-encryption", "aws:kms"), conditions)
        self.assertIn(("s3:x-amz-server-side-encryption-customer-algorithm", "false"), conditions)
        key_rule = dict(conditions)["s3:x-amz-server-side-encryption-aws-kms-key-id"]
        self.assertEqual(ref(key_rule), "FilesKey")
        self.assertTrue(all(s["Principal"] == "*" for s in denies))


class Replica(unittest.TestCase):
    def test_every_version_and_delete_marker_replicates_re_encrypted(self):
        config = RES["FilesBucket"]["Properties"]["ReplicationConfiguration"]["Fn::If"]
        self.assertEqual(config[0], "HasReplica")
        rule, = config[1]["Rules"]
        # Only originals: what else the bucket holds expires there, and expirations and
        # version-specific deletes do not replicate (issue 16, point 5).
        self.assertEqual((rule["Status"], rule["Filter"]["Prefix"]), ("Enabled", "users/"))
        self.assertEqual(rule["DeleteMarkerReplication"]["Status"], "Enabled")
        self.assertEqual(rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"]["Status"], "Enabled")
        self.assertIn("ReplicaKmsKeyID", rule["Destination"]["EncryptionConfiguration"])
        # Without replication metrics S3 publishes no ReplicationLatency or
        # OperationsFailedReplication (the dashboard's and ReplicationFailuresAlarm's).
        self.assertEqual(rule["Destination"]["Metrics"], {"Status": "Enabled"})
        self.assertEqual(T["Parameters"]["ReplicaRegion"]["Default"], "eu-west-1")
        self.assertEqual(RES["ReplicationRole"]["Condition"], "HasReplica")

    def test_the_account_function_may_only_erase_originals_in_the_replica(self):
        env = RES["AccountFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(env["REPLICA_BUCKET"]["Fn::If"][0], "HasReplica")
        self.assertEqual(env["REPLICA_BUCKET"]["Fn::If"][2], "")
        self.assertEqual(env["REPLICA_REGION"]["Fn::If"], ["HasReplica", {"Ref": "ReplicaRegion"}, ""])
        policy = RES["AccountErasesInReplica"]
        self.assertEqual(policy["Condition"], "HasReplica")
        # The erase's two passes: the account function's, and the eraser's an hour later.
        self.assertEqual([ref(r) for r in policy["Properties"]["Roles"]], ["AccountFunctionRole", "EraserFunctionRole"])
        find, erase = policy["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual((find["Action"], ref(find["Resource"])), ("s3:ListBucketVersions", "ReplicaBucketArn"))
        self.assertEqual(find["Condition"], {"StringLike": {"s3:prefix": "users/*"}})
        self.assertEqual(erase["Action"], ["s3:DeleteObject", "s3:DeleteObjectVersion"])
        self.assertEqual(erase["Resource"], {"Fn::Sub": "${ReplicaBucketArn}/users/*"})
        # Nothing else of either function names the replica.
        for fn in ("AccountFunction", "EraserFunction"):
            self.assertNotIn("Replica", str(list(statements(RES[fn]["Properties"]))), fn)
            env = RES[fn]["Properties"]["Environment"]["Variables"]
            self.assertEqual(env["REPLICA_REGION"]["Fn::If"], ["HasReplica", {"Ref": "ReplicaRegion"}, ""], fn)

    def test_the_erase_pseudonym_key_is_a_generated_secret_under_the_stacks_key(self):
        secret = RES["ErasePseudonymSecret"]["Properties"]
        self.assertEqual(ref(secret["KmsKeyId"]), "FilesKey")
        self.assertGreaterEqual(secret["GenerateSecretString"]["PasswordLength"], 32)
        env = RES["AccountFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(ref(env["ERASE_PSEUDONYM_SECRET_ID"]), "ErasePseudonymSecret")

    def test_the_replica_is_versioned_encrypted_private_and_in_the_eu(self):
        r = cfn_yaml.load(os.path.join(ROOT, "template-replica.yaml"))
        bucket = r["Resources"]["ReplicaBucket"]["Properties"]
        self.assertEqual(bucket["VersioningConfiguration"]["Status"], "Enabled")
        self.assertEqual(bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms")
        self.assertTrue(all(bucket["PublicAccessBlockConfiguration"].values()))
        self.assertTrue(r["Resources"]["ReplicaKey"]["Properties"]["EnableKeyRotation"])
        regions = lambda t: t["Rules"]["EuRegionsOnly"]["Assertions"][0]["Assert"]["Fn::Contains"]
        self.assertEqual(regions(r), regions(T), "the replica allows the same EU regions")
        self.assertEqual(set(r["Outputs"]), {"ReplicaBucketArn", "ReplicaKmsKeyId", "ReplicaRegion"})


class Edge(unittest.TestCase):
    """template-edge.yaml: CloudFront's error rates and the files CDN's hit rate, alarmed where
    its metrics are (us-east-1)."""

    E = cfn_yaml.load(os.path.join(ROOT, "template-edge.yaml"))

    def test_both_distributions_alarm_on_4xx_and_5xx_rates_to_the_edge_topic(self):
        seen = set()
        for name, a in self.E["Resources"].items():
            if a["Type"] != "AWS::CloudWatch::Alarm":
                continue
            p = a["Properties"]
            self.assertEqual([ref(x) for x in p["AlarmActions"]], ["EdgeAlertsTopic"], name)
            stats = {m["Id"]: m["MetricStat"]["Metric"] for m in p["Metrics"] if "MetricStat" in m}
            dims = {d["Name"]: d["Value"] for d in stats["rate"]["Dimensions"]}
            self.assertEqual(dims["Region"], "Global", name)
            self.assertEqual(stats["requests"]["Dimensions"], stats["rate"]["Dimensions"], name)
            self.assertIn("requests >=", [m for m in p["Metrics"] if m.get("ReturnData")][0]["Expression"]["Fn::Sub"])
            seen.add((ref(dims["DistributionId"]), stats["rate"]["MetricName"]))
        want = {(d, m) for d in ("FilesDistributionId", "WebDistributionId") for m in ("4xxErrorRate", "5xxErrorRate")}
        # The old domain (issue 19), when the main stack has one: its server errors only.
        want.add(("LegacyDistributionId", "5xxErrorRate"))
        # The files CDN's cache hit rate (TR-2; tests/template/test_monitoring.py).
        want.add(("FilesDistributionId", "CacheHitRate"))
        self.assertEqual(seen, want)
        self.assertEqual(self.E["Resources"]["Legacy5xxAlarm"]["Condition"], "HasLegacyCdn")

    def test_it_takes_the_main_stacks_outputs_and_deploys_only_to_us_east_1(self):
        for name in ("FilesDistributionId", "WebDistributionId", "LegacyDistributionId"):
            self.assertIn(name, self.E["Parameters"])
            self.assertEqual(ref(T["Outputs"][name]["Value"]), name.replace("Id", ""))
        assertion = self.E["Rules"]["OnlyWhereCloudFrontMetricsAre"]["Assertions"][0]["Assert"]["Fn::Equals"]
        self.assertEqual(assertion, [{"Ref": "AWS::Region"}, "us-east-1"])


class WebApp(unittest.TestCase):
    def test_html_and_json_are_cached_briefly_and_code_longer(self):
        cfg = RES["WebDistribution"]["Properties"]["DistributionConfig"]
        policy = lambda b: RES[ref(b["CachePolicyId"])]["Properties"]["CachePolicyConfig"]
        self.assertEqual(cfg["DefaultRootObject"], "index.html")
        self.assertLessEqual(policy(cfg["DefaultCacheBehavior"])["MaxTTL"], 300, "index.html")
        by_pattern = {b["PathPattern"]: policy(b) for b in cfg["CacheBehaviors"]}
        self.assertLessEqual(by_pattern["*.json"]["MaxTTL"], 300)
        for code in ("*.js", "*.mjs", "*.css"):
            self.assertGreater(by_pattern[code]["DefaultTTL"], by_pattern["*.json"]["MaxTTL"], code)
        images = RES["TransformCachePolicy"]["Properties"]["CachePolicyConfig"]
        # Bounded by a parameter (issue 16.4, tests/template/test_edge_invalidation.py).
        self.assertEqual(ref(images["MaxTTL"]), "TransformCacheMaxTtlSeconds", "transformed images")
        for b in [cfg["DefaultCacheBehavior"], *cfg["CacheBehaviors"]]:
            self.assertEqual(b["ViewerProtocolPolicy"], "redirect-to-https")
            self.assertIn("ResponseHeadersPolicyId", b)

    def test_the_web_app_is_sent_with_a_strict_content_security_policy(self):
        """tests/web/csp.json with the stack's origins (the local gateway sends it with its own),
        and the security headers AWS's managed policy sent, stricter where it allowed more."""
        cfg = RES["WebDistribution"]["Properties"]["DistributionConfig"]
        behaviours = [cfg["DefaultCacheBehavior"], *cfg["CacheBehaviors"]]
        self.assertEqual({ref(b["ResponseHeadersPolicyId"]) for b in behaviours}, {"WebHeadersPolicy"})
        headers = RES["WebHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
        csp = headers["ContentSecurityPolicy"]
        self.assertTrue(csp["Override"], "the policy replaces whatever the origin sends")
        with open(os.path.join(ROOT, "tests", "web", "csp.json")) as f:
            shared = json.load(f)
        # The API's and the bucket's names cannot be named here: the API's and the bucket's CORS
        # name this distribution, so naming them back would be a cycle. Their hosts in this
        # region stand for them.
        origins = {
            "{api}": "https://*.execute-api.${AWS::Region}.${AWS::URLSuffix}",
            "{live}": "wss://*.execute-api.${AWS::Region}.${AWS::URLSuffix}",
            "{files}": "https://*.s3.${AWS::Region}.${AWS::URLSuffix}",
            "{signIn}": "${SignInOrigin}",
            "{cdn}": "${Cdns}",
        }
        expected = {k: {origins.get(s, s) for s in v} for k, v in shared.items() if not k.startswith("$")}
        policy, names = csp["ContentSecurityPolicy"]["Fn::Sub"]
        self.assertEqual(directives(policy), expected)
        # The files CDN (public copies, transforms under /t/, signed URLs: DECISIONS 30): its
        # custom domain, else CloudFront's domains (naming the distribution would be a cycle
        # through the bucket's CORS).
        self.assertEqual(
            names["Cdns"],
            {"Fn::If": ["HasFilesDomain", {"Fn::Sub": "https://${FilesDomainName}"}, "https://*.cloudfront.net"]},
        )
        self.assertEqual(headers["FrameOptions"], {"FrameOption": "DENY", "Override": True})
        self.assertEqual(headers["ContentTypeOptions"], {"Override": True})
        self.assertEqual(headers["ReferrerPolicy"], {"ReferrerPolicy": "no-referrer", "Override": True})
        hsts = headers["StrictTransportSecurity"]
        self.assertGreaterEqual(int(hsts["AccessControlMaxAgeSec"]), 31536000)
        self.assertTrue(hsts["IncludeSubdomains"] and hsts["Override"])
        sign_in = T["Parameters"]["SignInOrigin"]
        self.assertNotIn("Default", sign_in, "a deploy names its sign-in provider")
        for ok in ("https://auth.matbakh.app", "https://matbakh.auth.eu-central-1.amazoncognito.com"):
            self.assertRegex(ok, sign_in["AllowedPattern"])
        for bad in ("http://auth.matbakh.app", "https://auth.matbakh.app/oauth2", "https://*.matbakh.app", "'unsafe-inline'", "https://a.b; script-src *"):
            self.assertNotRegex(bad, sign_in["AllowedPattern"])

    def test_public_pages_are_routed_as_the_local_gateway_routes_them(self):
        """The web CDN's web-routes function, run in Node on tests/web/routes.json."""
        code = RES["WebRoutesFunction"]["Properties"]["FunctionCode"]
        cfg = RES["WebDistribution"]["Properties"]["DistributionConfig"]
        associated = [ref(a["FunctionARN"]) for a in cfg["DefaultCacheBehavior"]["FunctionAssociations"]]
        self.assertEqual(associated, ["WebRoutesFunction"])
        with open(os.path.join(ROOT, "tests", "web", "routes.json")) as f:
            cases = json.load(f)["cases"]
        script = code + "\nconst cases = " + json.dumps(cases) + ";\n" + (
            "console.log(JSON.stringify(cases.map(([uri]) => handler({request: {uri}}).uri)));"
        )
        out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True).stdout
        self.assertEqual(json.loads(out), [page for _, page in cases])

    def test_the_web_bucket_is_private_and_read_only_by_its_distribution(self):
        bucket = RES["WebBucket"]["Properties"]
        self.assertTrue(all(bucket["PublicAccessBlockConfiguration"].values()))
        allows = [s for s in RES["WebBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        self.assertEqual(len(allows), 1)
        self.assertEqual((allows[0]["Principal"], allows[0]["Action"]), ({"Service": "cloudfront.amazonaws.com"}, "s3:GetObject"))
        self.assertIn("${WebDistribution}", allows[0]["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"])



def grants(fn, action, resource):
    """Whether function `fn`'s policies allow `action` on the resource `resource` names (a
    logical id, or `Id/index/name`), by exact action or `service:*`."""
    for st in statements(RES[fn]["Properties"]):
        if st.get("Effect") != "Allow":
            continue
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if action not in actions and f"{action.split(':')[0]}:*" not in actions:
            continue
        for r in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
            text = json.dumps(r)
            table, _, index = resource.partition("/")
            if table in text and (f"/index/{index.split('/')[-1]}" in text if index else "/index/" not in text):
                return True
    return False


class TableRights(unittest.TestCase):
    """What the functions' adapters call on the files table, granted (review 27: the sweeper's
    session read and the erase's reopen were not; moto checks no IAM, so nothing else would
    have told before a deployed stack failed)."""

    def test_the_sweeper_reads_and_ends_expired_sessions_and_releases_rows(self):
        # sweep.rs: `uploads.session` (GetItem), `release_pending` (a transaction of an UpdateItem
        # and a DeleteItem), `close_session` (UpdateItem); `expired_pending` (Query of gsi2-status).
        for action in ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            self.assertTrue(grants("SweeperFunction", action, "FilesTable"), action)
        self.assertTrue(grants("SweeperFunction", "dynamodb:Query", "FilesTable/index/gsi2-status"))

    def test_both_passes_of_an_erase_close_and_reopen_the_account(self):
        # usage.rs: `close_account` (PutItem), `reopen_account` (DeleteItem), which the second
        # pass (the eraser) calls last; and the items' reads and batch deletes.
        for fn in ("AccountFunction", "EraserFunction"):
            for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
                self.assertTrue(grants(fn, action, "FilesTable"), (fn, action))

    def test_the_status_index_holds_every_attribute_the_sweeper_reads_of_a_row(self):
        # Review 27: `tokenDigest` was not projected, so the sweeper never gave an upload
        # token's allowance back. The attributes `parse_pending_row` reads, from the source.
        with open(os.path.join(ROOT, "crates", "aws", "src", "table.rs")) as f:
            src = f.read()
        body = src[src.index("fn parse_pending_row"):]
        body = body[: body.index("\n}\n")]
        read = set(re.findall(r'(?:get_str|get_u64|opt_str)\(item, "(\w+)"\)|item\.get\("(\w+)"\)', body))
        read = {a or b for a, b in read}
        self.assertIn("tokenDigest", read)
        index = next(i for i in RES["FilesTable"]["Properties"]["GlobalSecondaryIndexes"] if i["IndexName"] == "gsi2-status")
        self.assertEqual(index["Projection"]["ProjectionType"], "INCLUDE")
        self.assertLessEqual(read, set(index["Projection"]["NonKeyAttributes"]))


if __name__ == "__main__":
    unittest.main()
