"""The logs bucket's lifecycle: whatever the platform writes there as logs (the buckets' access
logs, the CDNs' standard logs, the files bucket's inventory) expires; the reporter's reports
(reports/, the history operations compare against) do not."""

import os
import re
import unittest

from cfn import RES, ROOT, T, names

REPORT_RS = os.path.join(ROOT, "crates", "aws", "src", "report.rs")


def written_prefixes():
    """Every prefix a resource of the template writes to the logs bucket."""
    out = {}
    for name, res in RES.items():
        props = res.get("Properties", {})
        logging = props.get("LoggingConfiguration", {})
        if names(logging.get("DestinationBucketName")) == {"LogsBucket"}:
            out[name + " access logs"] = logging["LogFilePrefix"]
        cdn_logging = props.get("DistributionConfig", {}).get("Logging", {})
        if names(cdn_logging.get("Bucket")) == {"LogsBucket"}:
            out[name + " logs"] = cdn_logging["Prefix"]
        for inv in props.get("InventoryConfigurations", []):
            if names(inv["Destination"]["BucketArn"]) == {"LogsBucket"}:
                # S3 writes an inventory under `{Prefix}/{source bucket}/{id}/`.
                out[name + " inventory"] = inv["Destination"]["Prefix"].rstrip("/") + "/"
    return out


def rules():
    return RES["LogsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]


class LogsBucketLifecycle(unittest.TestCase):
    def test_every_log_the_platform_writes_expires(self):
        written = written_prefixes()
        self.assertGreaterEqual(len(written), 6, written)  # 2 buckets, 3 CDNs, 1 inventory
        for what, prefix in written.items():
            covering = [r for r in rules() if r["Status"] == "Enabled" and prefix.startswith(r.get("Prefix", ""))]
            self.assertTrue(covering and all("ExpirationInDays" in r for r in covering), f"{what}: {prefix}")

    def test_the_reports_are_kept(self):
        with open(REPORT_RS) as f:
            reports = re.search(r'const REPORTS: &str = "([^"]+)";', f.read()).group(1)
        self.assertEqual(reports, "reports/")
        for r in rules():
            self.assertTrue(r.get("Prefix"), f"{r['Id']}: a rule without a prefix covers the reports too")
            self.assertFalse(reports.startswith(r["Prefix"]), r["Id"])

    def test_the_retentions_are_named_parameters(self):
        by_prefix = {r["Prefix"]: r["ExpirationInDays"] for r in rules()}
        self.assertEqual(by_prefix["inventory/"], {"Ref": "InventoryRetentionDays"})
        self.assertEqual(by_prefix["s3/"], {"Ref": "AccessLogRetentionDays"})
        self.assertEqual(T["Parameters"]["InventoryRetentionDays"]["Default"], 14)


if __name__ == "__main__":
    unittest.main()
