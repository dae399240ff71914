"""The old domain after the cutover in template.yaml (issue 19, part 2): with `LegacyOrigin` set
the stack has the `legacy-redirect` function, and with `LegacyDomainName` a distribution for the
old domain whose `LegacyUrlPrefix` behaviour reaches the function's URL only through Origin Access
Control (the URL answers this distribution alone), every other path going to the legacy site as
before. The function reads the switches, runs, mappings and file rows, and writes nothing but its
per-day counters (`LEGACY#SERVED#...`). What it answers is the Rust side's to test
(crates/legacy-redirect)."""

import unittest

from cfn import RES, T, as_list, names, statements

LEGACY_ARN = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${LegacyDistribution}"
CFG = RES["LegacyDistribution"]["Properties"]["DistributionConfig"]


class LegacyCdn(unittest.TestCase):
    def test_only_with_a_legacy_origin_and_the_cdn_only_with_the_old_domain(self):
        conditions = T["Conditions"]
        self.assertEqual(conditions["HasLegacyRedirect"], {"Fn::Not": [{"Fn::Equals": [{"Ref": "LegacyOrigin"}, ""]}]})
        for name in ("LegacyRedirectFunction", "LegacyRedirectLogGroup", "LegacyRedirectFailuresAlarm"):
            self.assertEqual(RES[name]["Condition"], "HasLegacyRedirect", name)
        for name in ("LegacyDistribution", "LegacyRedirectOriginAccessControl", "LegacyRedirectUrlPermission",
                     "LegacyRedirectInvokePermission"):
            self.assertEqual(RES[name]["Condition"], "HasLegacyCdn", name)
        self.assertIn({"Condition": "HasLegacyRedirect"}, conditions["HasLegacyCdn"]["Fn::And"])
        # The rules refuse a redirector without the source whose switches it follows.
        rule = T["Rules"]["LegacyRedirectNeedsItsSource"]
        self.assertIn("LegacySource", str(rule["Assertions"]))

    def test_old_file_urls_reach_the_function_by_origin_access_control_only(self):
        origins = {o["Id"]: o for o in CFG["Origins"]}
        redirect = origins["legacy-redirect"]
        self.assertIn("LegacyRedirectFunctionUrl", str(redirect["DomainName"]))
        self.assertEqual(names(redirect["OriginAccessControlId"]), {"LegacyRedirectOriginAccessControl"})
        oac = RES["LegacyRedirectOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
        self.assertEqual((oac["OriginAccessControlOriginType"], oac["SigningBehavior"]), ("lambda", "always"))
        self.assertEqual(RES["LegacyRedirectFunction"]["Properties"]["FunctionUrlConfig"], {"AuthType": "AWS_IAM"})
        for perm in ("LegacyRedirectUrlPermission", "LegacyRedirectInvokePermission"):
            props = RES[perm]["Properties"]
            self.assertEqual((props["Principal"], props["SourceArn"]), ("cloudfront.amazonaws.com", {"Fn::Sub": LEGACY_ARN}))
            self.assertEqual(names(props["FunctionName"]), {"LegacyRedirectFunction"})
        behaviour, = CFG["CacheBehaviors"]
        self.assertEqual(behaviour["PathPattern"], {"Fn::Sub": "${LegacyUrlPrefix}*"})
        self.assertEqual((behaviour["TargetOriginId"], behaviour["AllowedMethods"]), ("legacy-redirect", ["GET", "HEAD"]))
        self.assertEqual(CFG["DefaultCacheBehavior"]["TargetOriginId"], "legacy-site")
        self.assertEqual(CFG["Aliases"], [{"Ref": "LegacyDomainName"}])
        self.assertEqual(CFG["ViewerCertificate"]["MinimumProtocolVersion"], "TLSv1.2_2021")

    def test_the_function_reads_and_counts_and_writes_nothing_else(self):
        env = RES["LegacyRedirectFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual({k: env[k] for k in ("LEGACY_ORIGIN", "LEGACY_SOURCE", "LEGACY_URL_PREFIX")},
                         {"LEGACY_ORIGIN": {"Ref": "LegacyOrigin"}, "LEGACY_SOURCE": {"Ref": "LegacySource"},
                          "LEGACY_URL_PREFIX": {"Ref": "LegacyUrlPrefix"}})
        actions = {}
        for st in statements(RES["LegacyRedirectFunction"]["Properties"]):
            for a in as_list(st["Action"]):
                actions.setdefault(a, []).append(st)
        self.assertEqual(set(actions), {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem",
                                        "secretsmanager:GetSecretValue", "kms:Decrypt"})
        update, = actions["dynamodb:UpdateItem"]
        self.assertEqual(names(update["Resource"]), {"MigrationTable"})
        self.assertEqual(update["Condition"], {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["LEGACY#SERVED#*"]}})
        # The erase key (erased users' path marks): that one secret, decrypted through Secrets Manager only.
        secret, = actions["secretsmanager:GetSecretValue"]
        self.assertEqual(names(secret["Resource"]), {"ErasePseudonymSecret"})
        self.assertEqual(env["ERASE_PSEUDONYM_SECRET_ID"], {"Ref": "ErasePseudonymSecret"})
        # The key decrypts only through Secrets Manager (that secret) and DynamoDB (the tables,
        # encrypted with it: review 27).
        decrypts = actions["kms:Decrypt"]
        self.assertEqual([names(d["Resource"]) for d in decrypts], [{"FilesKey"}, {"FilesKey"}])
        self.assertEqual(sorted(d["Condition"]["StringEquals"]["kms:ViaService"]["Fn::Sub"] for d in decrypts),
                         ["dynamodb.${AWS::Region}.amazonaws.com", "secretsmanager.${AWS::Region}.amazonaws.com"])


if __name__ == "__main__":
    unittest.main()
