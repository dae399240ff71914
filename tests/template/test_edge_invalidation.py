"""Deleted and erased images do not stay at the image CDN (issue 16, point 4): the indexer and
the account function invalidate transform results on the image distribution, may do only that,
only there, and the cache policy's max TTL is a named parameter bounding the worst case (an
invalidation lost). The invalidations themselves are tested against moto (crates/indexer,
crates/account). The files CDN's invalidations (issue 18) are test_files_cdn.py's."""

import os
import unittest

from cfnlint.decode import cfn_yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
T = cfn_yaml.load(os.path.join(ROOT, "template.yaml"))
RES = T["Resources"]
IMAGES_ARN = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${ImagesDistribution}"
FILES_ARN = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${FilesDistribution}"
INVALIDATING = {"IndexerFunction", "AccountFunction"}


def as_list(v):
    return v if isinstance(v, list) else [v]


def identity_statements(props):
    """Every statement of a function's `Policies`, a role's inline policies or a policy."""
    docs = [p.get("PolicyDocument", p) for p in as_list(props.get("Policies") or []) if isinstance(p, dict)]
    docs += [props["PolicyDocument"]] if isinstance(props.get("PolicyDocument"), dict) else []
    for doc in docs:
        yield from as_list(doc.get("Statement", []))


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
        cfg = RES["ImagesDistribution"]["Properties"]["DistributionConfig"]
        behaviours = [cfg["DefaultCacheBehavior"], *cfg.get("CacheBehaviors", [])]
        self.assertEqual({b["CachePolicyId"]["Ref"] for b in behaviours}, {"TransformCachePolicy"})

    def test_the_functions_that_purge_get_the_image_distribution_through_their_environment(self):
        for name in INVALIDATING:
            env = RES[name]["Properties"]["Environment"]["Variables"]
            self.assertEqual(env["IMAGES_DISTRIBUTION_ID"], {"Ref": "ImagesDistribution"}, name)

    def test_only_they_may_invalidate_and_only_on_the_image_distribution(self):
        # On the image distribution only these two; any CloudFront right at all is an
        # invalidation of one named distribution of the stack (the files CDN's: test_files_cdn.py).
        seen = set()
        for name, res in RES.items():
            for st in identity_statements(res.get("Properties") or {}):
                actions = [a for a in as_list(st.get("Action", [])) if str(a).lower().startswith("cloudfront:")]
                if st.get("Effect") != "Allow" or not actions:
                    continue
                self.assertEqual(as_list(st["Action"]), ["cloudfront:CreateInvalidation"], name)
                self.assertIn(as_list(st["Resource"]), [[{"Fn::Sub": IMAGES_ARN}], [{"Fn::Sub": FILES_ARN}]], name)
                self.assertNotIn("Condition", st, name)
                if st["Resource"] == {"Fn::Sub": IMAGES_ARN}:
                    seen.add(name)
                    self.assertIn(name, INVALIDATING, f"{name} may invalidate the image CDN")
        self.assertEqual(seen, INVALIDATING)


if __name__ == "__main__":
    unittest.main()
