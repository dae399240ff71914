"""What an operator watches (issue 21, task 11.3): the stack's dashboard, the alarms on the
platform's own metrics, CloudFront's additional metrics on every distribution, and the edge
stack's hit-rate alarm. The dashboard body is rendered as CloudFormation would (each way the
conditions go) and read as JSON; the platform's metrics are checked against what the code
emits (`metrics::emit` calls in crates/)."""

import glob
import json
import os
import re
import unittest

from cfnlint.decode import cfn_yaml

from cfn import RES, ROOT, T, names


def read(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


def of_type(kind, resources=RES):
    return {k: v for k, v in resources.items() if v["Type"] == kind}


FUNCTIONS = of_type("AWS::Serverless::Function")
QUEUES = of_type("AWS::SQS::Queue")
DISTRIBUTIONS = of_type("AWS::CloudFront::Distribution")
ALARMS = of_type("AWS::CloudWatch::Alarm")
NAMESPACE = "matbakh-files"


# --- the template, rendered ------------------------------------------------------------------

PSEUDO = {"AWS::Region": "eu-central-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012", "AWS::URLSuffix": "amazonaws.com"}
# Parameters as their defaults, and a replica (its ARN has no default).
PARAMS = {k: str(v["Default"]) for k, v in T["Parameters"].items() if "Default" in v}
PARAMS["ReplicaBucketArn"] = "arn:aws:s3:::matbakh-files-replica"


def render(v, conditions):
    """A template value as CloudFormation resolves it, with every condition `conditions` (a bool):
    a parameter is its default, a resource `<LogicalId>` or `<LogicalId.Attribute>`."""
    if isinstance(v, (str, int, float)):
        return str(v)
    if isinstance(v, list):
        return [render(x, conditions) for x in v]
    ((fn, arg),) = v.items()
    if fn == "Ref":
        return PARAMS.get(arg) or PSEUDO.get(arg) or f"<{arg}>"
    if fn == "Fn::GetAtt":
        return "<%s>" % (".".join(arg) if isinstance(arg, list) else arg)
    if fn == "Fn::If":
        _, yes, no = arg
        return render(yes if conditions else no, conditions)
    if fn == "Fn::Select":
        return render(arg[1], conditions)[int(arg[0])]
    if fn == "Fn::Split":
        return render(arg[1], conditions).split(arg[0])
    if fn == "Fn::Sub":
        text, variables = (arg, {}) if isinstance(arg, str) else arg

        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return render(variables[name], conditions)
            return render({"Ref": name} if "." not in name else {"Fn::GetAtt": name}, conditions)

        return re.sub(r"\$\{([^}]+)\}", one, text)
    raise AssertionError(f"not rendered here: {fn}")


def dashboard(conditions):
    return json.loads(render(RES["Dashboard"]["Properties"]["DashboardBody"], conditions))


def metric_lines(body):
    """(widget, namespace, metric, dimensions, options) for every metric line of every widget."""
    for w in body["widgets"]:
        for line in w["properties"].get("metrics", []):
            if isinstance(line[0], dict):
                continue  # a metric math expression
            options = line[-1] if isinstance(line[-1], dict) else {}
            plain = line[:-1] if options else line
            assert "." not in plain and "..." not in plain, f"shorthand is not read here: {line}"
            namespace, metric, *dims = plain
            yield w, namespace, metric, dict(zip(dims[::2], dims[1::2])), options


def function_name(logical_id):
    """What the dashboard may name a function by: its Ref, or its fixed name (with the defaults)."""
    return {f"<{logical_id}>", render(FUNCTIONS[logical_id]["Properties"]["FunctionName"], True)}


# --- what the code emits ---------------------------------------------------------------------


def close(text, start):
    """The index just after the parenthesis that closes the one at `start`."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    raise AssertionError("unbalanced")


def emitted():
    """(binary, operation, metric) for every metric the functions emit. A metric is a tuple
    `("Name", value, Unit::X)`; inside an `emit(...)` call it has that call's operation, outside
    one (a slice chosen by a match, then passed) the operation of the file's calls that pass a
    slice by name. A name chosen at run time, `(name, 1, Unit::Count)`, is one of the file's
    match arms' names (`=> "Stored"`, `=> ("LegacyFallbacks", bytes)`). An operation that is
    not a literal is unknown (None)."""
    out = set()
    for toml in glob.glob(os.path.join(ROOT, "crates", "*", "Cargo.toml")):
        crate = os.path.dirname(toml)
        text = read(toml)
        binaries = set(re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', text))
        if os.path.exists(os.path.join(crate, "src", "main.rs")):
            binaries.add(re.search(r'^name\s*=\s*"([^"]+)"', text, re.M).group(1))
        for path in glob.glob(os.path.join(crate, "src", "**", "*.rs"), recursive=True):
            rel = os.path.relpath(path, crate)
            if rel.endswith("tests.rs") or f"{os.sep}tests{os.sep}" in rel:
                continue  # unit tests' own metric lines
            src = read(path)
            calls = []
            for m in re.finditer(r"(?<!fn )\b(?:metrics::)?emit\(", src):
                end = close(src, m.end() - 1)
                args = src[m.end() : end - 1]
                op = re.match(r'\s*"([^"]+)"', args)
                calls.append((m.end() - 1, end, op.group(1) if op else None, args))
            for m in re.finditer(r'\(\s*"([A-Za-z0-9]+)"\s*,', src):
                tup = src[m.start() : close(src, m.start())]
                if "Unit::" not in tup or m.start() in {paren for paren, _, _, _ in calls}:
                    continue  # not a metric, or the call's own arguments
                inside = [op for s, e, op, _ in calls if s < m.start() < e]
                ops = inside or [op for _, _, op, args in calls if not re.search(r",\s*&\[", args)]
                out |= {(b, op, m.group(1)) for b in binaries for op in ops}
            for _, _, op, args in calls:
                if re.search(r'\(\s*[^"\s(][^,]*,\s*[^,]+,\s*Unit::', args):
                    arms = re.findall(r'=>\s*\(?\s*"([A-Z][A-Za-z0-9]*)"', src)
                    out |= {(b, op, name) for b in binaries for name in arms}
    return out


EMITTED = emitted()
BINARY = {name: fn["Metadata"]["BuildProperties"]["Binary"] for name, fn in FUNCTIONS.items()}


def emitted_dimensions():
    """The dimension set matbakh_lambda::metrics emits every metric with."""
    src = read("crates", "lambda", "src", "metrics.rs")
    (dims,) = re.findall(r'"Dimensions": (\[\[[^\]]*\]\])', src)
    (one,) = json.loads(dims)
    return set(one)


# --- the tests -------------------------------------------------------------------------------


class Dashboard(unittest.TestCase):
    BODY = dashboard(True)

    def shown(self, namespace, metric, key):
        return {dims.get(key) for _, ns, m, dims, _ in metric_lines(self.BODY) if (ns, m) == (namespace, metric)}

    def test_the_body_is_json_whichever_way_the_conditions_go(self):
        for conditions in (True, False):
            body = dashboard(conditions)
            self.assertGreater(len(body["widgets"]), 10)
            for w in body["widgets"]:
                if w["type"] in ("metric", "log"):
                    self.assertIn("title", w["properties"])
                    self.assertRegex(w["properties"]["region"], r"^[a-z]{2}-[a-z]+-\d$", w["properties"]["title"])
        self.assertEqual(RES["Dashboard"]["Properties"]["DashboardName"], {"Fn::Sub": "matbakh-files-${Stage}"})

    def test_every_function_shows_its_duration_errors_throttles_and_concurrency(self):
        # A function added to the template without its lines fails here.
        for metric, stat in (("Duration", "p95"), ("Errors", "Sum"), ("Throttles", "Sum"), ("ConcurrentExecutions", "Maximum")):
            lines = [(w, dims) for w, ns, m, dims, _ in metric_lines(self.BODY) if (ns, m) == ("AWS/Lambda", metric)]
            self.assertEqual({w["properties"]["stat"] for w, _ in lines}, {stat}, metric)
            shown = {d["FunctionName"] for _, d in lines}
            missing = {f for f in FUNCTIONS if not function_name(f) & shown}
            self.assertEqual(missing, set(), f"functions without {metric} on the dashboard")
            self.assertEqual(len(shown), len(FUNCTIONS), f"{metric}: a line names no function of the template")

    def test_every_queue_shows_its_backlog(self):
        """Work queues (those with a DLQ) the age of their oldest message, dead-letter queues
        (every other queue) their depth."""
        work = {q for q, r in QUEUES.items() if "RedrivePolicy" in r["Properties"]}
        dlqs = set(QUEUES) - work
        self.assertEqual(self.shown("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName"), {f"<{q}.QueueName>" for q in work})
        # (The migration's widget shows its work queue's waiting messages too.)
        depths = self.shown("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName") - {"<MigrationQueue.QueueName>"}
        self.assertEqual(depths, {f"<{q}.QueueName>" for q in dlqs})
        # Without webhooks their queues' lines are not there.
        without = {d.get("QueueName") for _, _, _, d, _ in metric_lines(dashboard(False))}
        self.assertNotIn("<WebhookQueue.QueueName>", without)
        self.assertIn("<IndexerQueue.QueueName>", without)

    def test_every_distribution_shows_its_hit_rate_requests_and_error_rates_from_us_east_1(self):
        seen = {}
        for w, ns, metric, dims, _ in metric_lines(self.BODY):
            if ns == "AWS/CloudFront":
                self.assertEqual(w["properties"]["region"], "us-east-1", "CloudFront publishes its metrics there only")
                self.assertEqual(set(dims), {"DistributionId", "Region"})
                self.assertEqual(dims["Region"], "Global")
                seen.setdefault(dims["DistributionId"], set()).add(metric)
        self.assertEqual(set(seen), {f"<{d}>" for d in DISTRIBUTIONS})
        for d, metrics in seen.items():
            self.assertEqual(metrics, {"CacheHitRate", "Requests", "4xxErrorRate", "5xxErrorRate"}, d)
        without = {d.get("DistributionId") for _, _, _, d, _ in metric_lines(dashboard(False))}
        self.assertEqual(without - {None}, {"<FilesDistribution>", "<WebDistribution>"})

    def test_the_apis(self):
        http = {(m, (o.get("stat") or w["properties"].get("stat"))) for w, ns, m, d, o in metric_lines(self.BODY) if d.get("ApiId") == "<HttpApi>"}
        self.assertTrue({("Count", "Sum"), ("4xx", "Sum"), ("5xx", "Sum"), ("Latency", "p50"), ("Latency", "p95")} <= http, http)
        live = self.shown("AWS/ApiGateway", "ConnectCount", "ApiId")
        self.assertIn("<LiveApi>", live)

    def test_the_platforms_metrics_are_the_ones_the_code_emits(self):
        platform = [(w, m, d) for w, ns, m, d, _ in metric_lines(self.BODY) if ns == NAMESPACE]
        self.assertTrue(platform)
        by_name = {n: f for f in FUNCTIONS for n in function_name(f)}
        for w, metric, dims in platform:
            where = f'{w["properties"]["title"]}: {metric}'
            self.assertEqual(set(dims), emitted_dimensions(), where)
            binary = BINARY[by_name[dims["Function"]]]
            self.assertIn((binary, dims["Operation"], metric), EMITTED, where)
        render_p95 = [w for w, m, d in platform if m == "RenderMilliseconds" and w["properties"]["stat"] == "p95"]
        self.assertTrue(render_p95, "the render time p95 (PR-3)")
        self.assertIn("ImagesFailed", {m for _, m, _ in platform})

    def test_the_migration_shows_its_queue_and_the_workers_counts(self):
        """The queue's messages, and the counts each worker emits per message (`FilesMigrated`,
        `FilesFailedToMigrate`; that they are emitted is checked with every platform metric)."""
        self.assertIn("<MigrationQueue.QueueName>", self.shown("AWS/SQS", "NumberOfMessagesDeleted", "QueueName"))
        shown = {metric for _, ns, metric, *_ in metric_lines(self.BODY) if ns == "matbakh-files"}
        self.assertLessEqual({"FilesMigrated", "FilesFailedToMigrate"}, shown)

    def test_replication_latency_in_the_replicas_region_and_failures_in_this_one(self):
        (rule,) = RES["FilesBucket"]["Properties"]["ReplicationConfiguration"]["Fn::If"][1]["Rules"]
        want = {"SourceBucket": "<FilesBucket>", "DestinationBucket": "matbakh-files-replica", "RuleId": rule["Id"]}
        regions = {}
        for w, ns, metric, dims, _ in metric_lines(self.BODY):
            if ns == "AWS/S3":
                self.assertEqual(dims, want, metric)
                regions[metric] = w["properties"]["region"]
        self.assertEqual(regions, {"ReplicationLatency": PARAMS["ReplicaRegion"], "OperationsFailedReplication": PSEUDO["AWS::Region"]})
        self.assertNotIn("AWS/S3", {ns for _, ns, *_ in metric_lines(dashboard(False))}, "no replica, no replication widgets")


class Alarms(unittest.TestCase):
    def metrics(self, alarm):
        """(namespace, metric, dimensions) an alarm reads, with the logical ids it names."""
        p = alarm["Properties"]
        stats = [m["MetricStat"]["Metric"] for m in p.get("Metrics", []) if "MetricStat" in m]
        if "MetricName" in p:
            stats.append(p)
        for s in stats:
            yield s["Namespace"], s["MetricName"], {d["Name"]: d["Value"] for d in s.get("Dimensions", [])}

    def test_alarms_on_the_platforms_metrics_read_what_the_code_emits(self):
        platform = [(name, m, d) for name, a in ALARMS.items() for ns, m, d in self.metrics(a) if ns == NAMESPACE]
        self.assertEqual({m for _, m, _ in platform}, {"RenderMilliseconds", "ImagesFailed", "ImagesReady", "StreamRecordsDropped"})
        for name, metric, dims in platform:
            self.assertEqual(set(dims), emitted_dimensions(), name)
            (fn,) = names(dims["Function"])
            self.assertIn((BINARY[fn], dims["Operation"], metric), EMITTED, name)

    def test_render_p95_above_ten_seconds(self):
        p = ALARMS["RenderSlowAlarm"]["Properties"]
        self.assertEqual((p["MetricName"], p["ExtendedStatistic"]), ("RenderMilliseconds", "p95"))
        self.assertEqual(p["Threshold"], {"Ref": "RenderP95AlarmMilliseconds"})
        self.assertEqual(T["Parameters"]["RenderP95AlarmMilliseconds"]["Default"], 10000, "the plan's PR-3")
        self.assertEqual(p["ComparisonOperator"], "GreaterThanThreshold")
        self.assertEqual(p["TreatMissingData"], "notBreaching")

    def test_the_failed_images_rate(self):
        p = ALARMS["FailedImagesAlarm"]["Properties"]
        (out,) = [m for m in p["Metrics"] if m.get("ReturnData")]
        expression = out["Expression"]["Fn::Sub"]
        self.assertIn("100 * FILL(failed, 0) / processed", expression)
        self.assertIn("processed >= ${FailedImagesAlarmMinImages}", expression)
        read = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in p["Metrics"] if "MetricStat" in m}
        self.assertEqual(read, {"failed": "ImagesFailed", "ready": "ImagesReady"})
        self.assertEqual(p["Threshold"], {"Ref": "FailedImagesAlarmPercent"})
        self.assertEqual(p["TreatMissingData"], "notBreaching")

    def test_replication_failures(self):
        a = ALARMS["ReplicationFailuresAlarm"]
        self.assertEqual(a["Condition"], "HasReplica")
        p = a["Properties"]
        self.assertEqual((p["Namespace"], p["MetricName"], p["Threshold"], p["ComparisonOperator"]), ("AWS/S3", "OperationsFailedReplication", 0, "GreaterThanThreshold"))
        dims = {d["Name"]: render(d["Value"], True) for d in p["Dimensions"]}
        (rule,) = RES["FilesBucket"]["Properties"]["ReplicationConfiguration"]["Fn::If"][1]["Rules"]
        self.assertEqual(dims, {"SourceBucket": "<FilesBucket>", "DestinationBucket": "matbakh-files-replica", "RuleId": rule["Id"]})

    def test_replication_failures_also_from_s3s_events_in_this_region(self):
        # Review 23: where S3 publishes OperationsFailedReplication is not settled by its
        # documentation; its failure events reach a queue of this region, whose depth is alarmed.
        config = RES["FilesBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]["Fn::If"]
        self.assertEqual(config[0], "HasReplica")
        (entry,) = config[1]
        self.assertEqual(entry["Event"], "s3:Replication:OperationFailedReplication")
        self.assertEqual(entry["Queue"], {"Fn::GetAtt": ["ReplicationFailuresQueue", "Arn"]})
        # S3 must be allowed to send there (and to the key, FilesKey) before the bucket is set up.
        self.assertIn("ReplicationFailuresQueuePolicy", RES["FilesBucket"]["DependsOn"])
        policy = RES["ReplicationFailuresQueuePolicy"]["Properties"]
        (st,) = policy["PolicyDocument"]["Statement"]
        self.assertEqual((st["Principal"], st["Action"]), ({"Service": "s3.amazonaws.com"}, "sqs:SendMessage"))
        self.assertEqual(RES["ReplicationFailuresQueue"]["Properties"]["KmsMasterKeyId"], {"Ref": "FilesKey"})
        a = ALARMS["ReplicationFailuresQueueAlarm"]["Properties"]
        self.assertEqual((a["MetricName"], a["Threshold"], a["ComparisonOperator"]), ("ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold"))
        self.assertEqual(a["Dimensions"][0]["Value"], {"Fn::GetAtt": ["ReplicationFailuresQueue", "QueueName"]})

    def test_each_tells_the_alerts_topic(self):
        for name in ("RenderSlowAlarm", "FailedImagesAlarm", "ReplicationFailuresAlarm", "ReplicationFailuresQueueAlarm"):
            self.assertEqual(ALARMS[name]["Properties"]["AlarmActions"], [{"Ref": "AlertsTopic"}], name)


class CdnMetrics(unittest.TestCase):
    def test_every_distribution_has_its_additional_metrics_unless_switched_off(self):
        subscribed = {}
        for name, sub in of_type("AWS::CloudFront::MonitoringSubscription").items():
            (dist,) = names(sub["Properties"]["DistributionId"])
            config = sub["Properties"]["MonitoringSubscription"]["RealtimeMetricsSubscriptionConfig"]
            # Switched by the resource's condition, never by its status (the template says why).
            self.assertEqual(config["RealtimeMetricsSubscriptionStatus"], "Enabled", name)
            subscribed[dist] = sub["Condition"]
        self.assertEqual(set(subscribed), set(DISTRIBUTIONS), "distributions without a MonitoringSubscription")
        self.assertEqual(T["Conditions"]["HasCdnMetrics"], {"Fn::Equals": [{"Ref": "CdnAdditionalMetrics"}, "Enabled"]})
        self.assertEqual(T["Parameters"]["CdnAdditionalMetrics"]["Default"], "Enabled")
        for dist, condition in subscribed.items():
            if "Condition" not in DISTRIBUTIONS[dist]:
                self.assertEqual(condition, "HasCdnMetrics", dist)
            else:
                # Only when the distribution exists, and the metrics are on.
                both = T["Conditions"][condition]["Fn::And"]
                self.assertCountEqual(both, [{"Condition": DISTRIBUTIONS[dist]["Condition"]}, {"Condition": "HasCdnMetrics"}])


class EdgeHitRate(unittest.TestCase):
    """TR-2 in template-edge.yaml, the us-east-1 stack: an alarm watches only its own region's
    metrics, and CloudFront's are there."""

    E = cfn_yaml.load(os.path.join(ROOT, "template-edge.yaml"))

    def test_the_files_cdns_hit_rate_below_80_percent(self):
        a = self.E["Resources"]["FilesHitRateAlarm"]["Properties"]
        self.assertEqual(a["AlarmActions"], [{"Ref": "EdgeAlertsTopic"}])
        self.assertEqual(a["OKActions"], [{"Ref": "EdgeAlertsTopic"}])
        self.assertEqual((a["ComparisonOperator"], a["Threshold"]), ("LessThanThreshold", {"Ref": "CdnHitRatePercent"}))
        self.assertEqual(self.E["Parameters"]["CdnHitRatePercent"]["Default"], 80, "the plan's TR-2")
        self.assertEqual(a["TreatMissingData"], "notBreaching")
        stats = {m["Id"]: m["MetricStat"] for m in a["Metrics"] if "MetricStat" in m}
        self.assertEqual((stats["rate"]["Metric"]["MetricName"], stats["rate"]["Stat"]), ("CacheHitRate", "Average"))
        dims = {d["Name"]: d["Value"] for d in stats["rate"]["Metric"]["Dimensions"]}
        self.assertEqual(dims, {"DistributionId": {"Ref": "FilesDistributionId"}, "Region": "Global"})
        # A quiet hour reads as a full hit rate, never as a breach; traffic without a hit rate
        # (the additional metrics off) as a breach, not as missing data (review 23).
        (out,) = [m for m in a["Metrics"] if m.get("ReturnData")]
        self.assertEqual(
            out["Expression"], {"Fn::Sub": "IF(requests >= ${CdnHitRateMinRequests}, FILL(rate, 0), 100)"}
        )
        # The metric exists only with the distribution's additional metrics (the main stack).
        self.assertIn("FilesCdnMetrics", RES)


class Parser(unittest.TestCase):
    def test_the_emitted_metrics_are_read_from_the_code(self):
        """The reading of crates/ is not empty: literal, chosen-by-match and run-time names."""
        for want in [
            ("thumbnailer", "thumbnail", "RenderMilliseconds"),
            ("thumbnailer", "thumbnail", "ImagesFailed"),
            ("indexer", "settle", "UploadsSettled"),
            ("transformer", "transform", "Stored"),
            ("legacy-redirect", "legacy_redirect", "LegacyFallbacks"),
        ]:
            self.assertIn(want, EMITTED)
        self.assertNotIn(("thumbnailer", "thumbnail", "FilesIndexed"), EMITTED)
        self.assertNotIn(("indexer", "index", "UploadsSettled"), EMITTED)


if __name__ == "__main__":
    unittest.main()
