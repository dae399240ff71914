"""Deleted and erased images do not stay at the CDN (issue 16, point 4): the indexer and the
account function invalidate transform results on the files distribution, whose /t/* behaviour
serves them (DECISIONS 30: one files domain, FILES_DISTRIBUTION_ID), no
right names any other distribution, and the cache policy's max TTL is a named parameter bounding
the worst case (an invalidation lost). The invalidations themselves are tested against moto
(crates/indexer, crates/account). The files CDN's other invalidations (issue 18) are
test_files_cdn.py's."""

import unittest

from cfn import RES, T, as_list, statements
FILES_ARN = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${FilesDistribution}"
INVALIDATING = {"IndexerFunction", "AccountFunction"}


def behaviours(cfg):
    """The default behaviour and every other one, a conditional one (`Fn::If`) by its branch."""
    out = [cfg["DefaultCacheBehavior"]]
    for b in as_list(cfg.get("CacheBehaviors", [])):
        if isinstance(b, dict) and "Fn::If" in b:
            out += [x for x in b["Fn::If"][1:] if x != {"Ref": "AWS::NoValue"}]
        else:
            out.append(b)
    return out


class EdgeInvalidation(unittest.TestCase):
    def test_transform_results_stay_at_the_edge_at_most_the_named_max_ttl(self):
        param = T["Parameters"]["TransformCacheMaxTtlSeconds"]
        self.assertEqual((param["Type"], param["Default"]), ("Number", 86400), "a day unless the deployment says")
        self.assertLessEqual(param["MaxValue"], 31536000)
        self.assertGreaterEqual(param["MinValue"], 1)
        policy = RES["TransformCachePolicy"]["Properties"]["CachePolicyConfig"]
        self.assertEqual(policy["MaxTTL"], {"Ref": "TransformCacheMaxTtlSeconds"})
        # CloudFront requires MinTTL <= DefaultTTL <= MaxTTL whatever the parameter says.
        self.assertEqual(policy["DefaultTTL"], {"Ref": "TransformCacheMaxTtlSeconds"})
        self.assertEqual(policy["MinTTL"], 0)
        # Every behaviour that sends viewers to the results-then-transformer origin group (the
        # /t/* one) caches with that policy, and results are served by no other origin.
        cfg = RES["FilesDistribution"]["Properties"]["DistributionConfig"]
        transforms = [b for b in behaviours(cfg) if b["TargetOriginId"] == "results-then-transformer"]
        self.assertEqual([b.get("PathPattern") for b in transforms], ["/t/*"])
        self.assertEqual({b["CachePolicyId"]["Ref"] for b in transforms}, {"TransformCachePolicy"})

    def test_the_functions_that_purge_get_the_files_distribution_through_their_environment(self):
        # One distribution (DECISIONS 30), one variable: FILES_DISTRIBUTION_ID.
        for name in INVALIDATING:
            env = RES[name]["Properties"]["Environment"]["Variables"]
            self.assertEqual(env["FILES_DISTRIBUTION_ID"], {"Ref": "FilesDistribution"}, name)
        for name, res in RES.items():
            env = ((res.get("Properties") or {}).get("Environment") or {}).get("Variables", {})
            self.assertNotIn("IMAGES_DISTRIBUTION_ID", env, name)

    def test_they_may_invalidate_and_only_on_the_files_distribution(self):
        # Any CloudFront right at all is an invalidation of the files distribution, once a
        # function (who else may: test_files_cdn.py); there is no other distribution of files.
        seen = set()
        for name, res in RES.items():
            for st in statements(res.get("Properties") or {}):
                actions = [a for a in as_list(st.get("Action", [])) if str(a).lower().startswith("cloudfront:")]
                if st.get("Effect") != "Allow" or not actions:
                    continue
                self.assertEqual(as_list(st["Action"]), ["cloudfront:CreateInvalidation"], name)
                self.assertEqual(as_list(st["Resource"]), [{"Fn::Sub": FILES_ARN}], name)
                self.assertNotIn("Condition", st, name)
                self.assertNotIn(name, seen, f"{name}: one invalidation statement")
                seen.add(name)
        self.assertLessEqual(INVALIDATING, seen)
        distributions = {n for n, r in RES.items() if r["Type"] == "AWS::CloudFront::Distribution"}
        # The old domain's (issue 19) serves no file of the bucket: old URLs are redirected.
        self.assertEqual(distributions, {"FilesDistribution", "WebDistribution", "LegacyDistribution"})


if __name__ == "__main__":
    unittest.main()
