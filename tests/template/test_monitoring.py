"""What an operator watches (issue 21, task 11.3): the alarms on the platform's own metrics
and CloudFront's additional metrics on every distribution. The platform's metrics are checked
against what the code emits (`metrics::emit` calls in crates/)."""

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
        self.assertEqual({m for _, m, _ in platform}, {"RenderMilliseconds", "ImagesFailed", "ImagesReady"})
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

    def test_each_tells_the_alerts_topic(self):
        for name in ("RenderSlowAlarm", "FailedImagesAlarm", "ReplicationFailuresAlarm"):
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
