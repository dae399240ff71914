"""The files CDN in template.yaml (issue 18, part 2; DECISIONS 30: one files domain): one
distribution, `FilesDistribution`, that serves public files' copies under `p/` unsigned, image
transforms under `/t/` (its `/t/*` behaviour: the CloudFront Function verifies the imgproxy
signature and rewrites the path to the stored result's key, `results/...`) and, with
a signing key (`FilesSigningKeyA`/`B`), originals (`users/`) and variants (`derived/`) only by CloudFront signed
URLs. The bucket policy lets the distribution read `p/`, `results/` and, signing, the signed
prefixes; every path S3 would read under a prefix other than `p/` goes through the function or
a key group (the function's refusal of paths not under `/t/` is tested in Node,
tests/imgproxy/result-keys.test.mjs). The signing key's private half lives in a secret under the
stack's key that only the signing functions may read. What the functions do with them (copies,
signatures, invalidations) is the Rust side's to test."""

import fnmatch
import os
import unittest
from urllib.parse import unquote

from cfn import RES, ROOT, T, as_list, names, statements, unwrap
CFG = RES["FilesDistribution"]["Properties"]["DistributionConfig"]
FILES_ARN = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${FilesDistribution}"
# AWS's managed SecurityHeadersPolicy.
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"
BASE_URL = {"Fn::If": ["HasFilesDomain", {"Fn::Sub": "https://${FilesDomainName}"},
                       {"Fn::Sub": "https://${FilesDistribution.DomainName}"}]}
# They hand out URLs of private files: images and files (files API), downloads (presign), links (shares).
# The notifier too: a live message carries the file as the files API shows it, variant URLs and all.
SIGNERS = {"FilesApiFunction", "PresignFunction", "SharesFunction", "NotifierFunction"}
INVALIDATORS = {"FilesApiFunction", "IndexerFunction", "AccountFunction", "EraserFunction"}
# The legacy redirector sends old URLs of public files to their public copies.
CDN_AWARE = SIGNERS | INVALIDATORS | {"ThumbnailerFunction", "LegacyRedirectFunction"}
# A managed policy of the template is counted as the rights of the functions it is attached to
# (`statements` reads it there).
IDENTITY_TYPES = {"AWS::Serverless::Function", "AWS::IAM::Role", "AWS::IAM::Policy"}


def subs(resources):
    """The `!Sub` texts (or plain strings) of a statement's resources."""
    return {r["Fn::Sub"] if isinstance(r, dict) and "Fn::Sub" in r else str(r) for r in as_list(resources)}


def env(fn):
    return (RES[fn]["Properties"].get("Environment") or {}).get("Variables") or {}


def behaviours(signing):
    """The distribution's behaviours in CloudFront's order, the default last, with or without
    signing (a behaviour under `Fn::If` exists only when its condition holds)."""
    out = []
    for b in as_list(CFG.get("CacheBehaviors", [])):
        if isinstance(b, dict) and "Fn::If" in b:
            cond, yes, no = b["Fn::If"]
            b = yes if {"HasFilesSigning": signing}[cond] else no
            if b == {"Ref": "AWS::NoValue"}:
                continue
        out.append(b)
    return out + [{**CFG["DefaultCacheBehavior"], "PathPattern": "*"}]


def behaviour_for(path, signing):
    """The behaviour CloudFront applies to a request path: the first whose pattern matches
    (case-sensitive; `*` any characters, `?` one)."""
    return next(b for b in behaviours(signing) if fnmatch.fnmatchcase(path, b["PathPattern"]))


def functions(b):
    return [(f["EventType"], names(f["FunctionARN"])) for f in b.get("FunctionAssociations", [])]


class FilesCdn(unittest.TestCase):
    def test_the_default_is_unsigned_transforms_go_through_the_function_and_the_rest_is_signed(self):
        default = CFG["DefaultCacheBehavior"]
        for key in ("TrustedKeyGroups", "TrustedSigners", "FunctionAssociations", "LambdaFunctionAssociations"):
            self.assertNotIn(key, default, "the default behaviour is unsigned and runs no function")
        self.assertEqual(names(default["CachePolicyId"]), {"FilesPublicCachePolicy"})
        self.assertEqual(default["TargetOriginId"], "files")
        always = [b for b in CFG["CacheBehaviors"] if "Fn::If" not in b]
        signed = [b for b in CFG["CacheBehaviors"] if "Fn::If" in b]
        self.assertEqual([b["PathPattern"] for b in always], ["/t/*", "/results*"])
        transform, results = always
        # Transforms: no CloudFront signature (the function checks imgproxy's), the stored
        # result first, then the transformer.
        self.assertEqual(transform["TargetOriginId"], "results-then-transformer")
        self.assertEqual(names(transform["CachePolicyId"]), {"TransformCachePolicy"})
        self.assertEqual(names(transform["OriginRequestPolicyId"]), {"TransformOriginRequestPolicy"})
        # The distribution may read results/: a viewer's /results... meets the same function,
        # which refuses every path not under /t/ (tests/imgproxy: 400, never sent on).
        for b in (transform, results):
            self.assertEqual(functions(b), [("viewer-request", {"TransformRequestFunction"})], b["PathPattern"])
            self.assertNotIn("TrustedKeyGroups", b)
            self.assertNotIn("LambdaFunctionAssociations", b)
        # Without the slash: /users%2F... (S3 decodes it to users/...) needs a signature too.
        for b in signed:
            cond, b, otherwise = b["Fn::If"]
            self.assertEqual((cond, otherwise), ("HasFilesSigning", {"Ref": "AWS::NoValue"}),
                             "without signing there are no signed behaviours")
            with self.subTest(b["PathPattern"]):
                self.assertIn(b["PathPattern"], ("/users*", "/derived*"))
                self.assertEqual(b["TrustedKeyGroups"], [{"Ref": "FilesKeyGroup"}])
                self.assertNotIn("FunctionAssociations", b)
                self.assertEqual(b["TargetOriginId"], "files")
                self.assertEqual(names(b["CachePolicyId"]), {"FilesPrivateCachePolicy"})
                self.assertEqual(names(b["OriginRequestPolicyId"]), {"FilesPrivateOriginRequestPolicy"})
        self.assertEqual(sorted(b["Fn::If"][1]["PathPattern"] for b in signed), ["/derived*", "/users*"])
        for b in behaviours(signing=True):
            self.assertEqual(b["ViewerProtocolPolicy"], "redirect-to-https")
            self.assertEqual((b["AllowedMethods"], b["CachedMethods"]), (["GET", "HEAD"], ["GET", "HEAD"]))
            self.assertEqual(b["ResponseHeadersPolicyId"], SECURITY_HEADERS)
        # Two key slots (DECISIONS 31): the group trusts each that is set, and a slot's public
        # key is only created or deleted (its own resource), never changed in place.
        self.assertEqual(RES["FilesKeyGroup"]["Properties"]["KeyGroupConfig"]["Items"], [
            {"Fn::If": ["HasFilesKeyA", {"Ref": "FilesCdnPublicKeyA"}, {"Ref": "AWS::NoValue"}]},
            {"Fn::If": ["HasFilesKeyB", {"Ref": "FilesCdnPublicKeyB"}, {"Ref": "AWS::NoValue"}]},
        ])
        for slot in "AB":
            key = RES[f"FilesCdnPublicKey{slot}"]
            self.assertEqual(key["Properties"]["PublicKeyConfig"]["EncodedKey"], {"Ref": f"FilesSigningKey{slot}"})
            self.assertEqual(key["Condition"], f"HasFilesKey{slot}")
            self.assertEqual(T["Conditions"][f"HasFilesKey{slot}"],
                             {"Fn::Not": [{"Fn::Equals": [{"Ref": f"FilesSigningKey{slot}"}, ""]}]})
            self.assertEqual(T["Parameters"][f"FilesSigningKey{slot}"]["Default"], "")
        for name in ("FilesKeyGroup", "FilesPrivateCachePolicy", "FilesPrivateOriginRequestPolicy"):
            self.assertEqual(RES[name].get("Condition"), "HasFilesSigning", name)
        self.assertEqual(T["Conditions"]["HasFilesSigning"],
                         {"Fn::Or": [{"Condition": "HasFilesKeyA"}, {"Condition": "HasFilesKeyB"}]})
        self.assertEqual(T["Parameters"]["FilesSigningSlot"]["AllowedValues"], ["A", "B"])
        # A deploy that names an empty slot is refused before anything changes.
        self.assertIn("FilesSigningSlotIsSet", T["Rules"])

    def test_its_origins_are_the_bucket_by_one_access_control_and_the_transformer(self):
        origins = {o["Id"]: o for o in CFG["Origins"]}
        self.assertEqual(set(origins), {"files", "results", "transformer"})
        for oid in ("files", "results"):  # the bucket policy names the distribution, not the origin
            self.assertEqual(names(origins[oid]["DomainName"]), {"FilesBucket"}, oid)
            self.assertEqual(names(origins[oid]["OriginAccessControlId"]), {"FilesOriginAccessControl"}, oid)
            self.assertEqual(origins[oid]["S3OriginConfig"], {"OriginAccessIdentity": ""}, oid)
        self.assertEqual(names(origins["transformer"]["OriginAccessControlId"]), {"TransformerOriginAccessControl"})
        self.assertIn("TransformerFunctionUrl", str(origins["transformer"]["DomainName"]))
        for oid in ("results", "transformer"):  # Origin Shield in front of the transforms only
            self.assertEqual(origins[oid]["OriginShield"]["Fn::If"][0], "HasOriginShield", oid)
        self.assertNotIn("OriginShield", origins["files"])
        group, = CFG["OriginGroups"]["Items"]
        self.assertEqual(CFG["OriginGroups"]["Quantity"], 1)
        self.assertEqual(group["Id"], "results-then-transformer")
        self.assertEqual([m["OriginId"] for m in group["Members"]["Items"]], ["results", "transformer"])
        self.assertEqual(sorted(group["FailoverCriteria"]["StatusCodes"]["Items"]), [403, 404])
        accesses = {n: r["Properties"]["OriginAccessControlConfig"] for n, r in RES.items()
                    if r["Type"] == "AWS::CloudFront::OriginAccessControl"}
        self.assertEqual(set(accesses), {"FilesOriginAccessControl", "TransformerOriginAccessControl", "WebOriginAccessControl",
                                         "LegacyRedirectOriginAccessControl"})
        kinds = {n: (a["OriginAccessControlOriginType"], a["SigningBehavior"], a["SigningProtocol"]) for n, a in accesses.items()}
        self.assertEqual(kinds["FilesOriginAccessControl"], ("s3", "always", "sigv4"))
        self.assertEqual(kinds["TransformerOriginAccessControl"], ("lambda", "always", "sigv4"))
        # The transformer's URL answers this distribution only.
        for perm in ("TransformerUrlPermission", "TransformerInvokePermission"):
            props = RES[perm]["Properties"]
            self.assertEqual((props["Principal"], props["SourceArn"]), ("cloudfront.amazonaws.com", {"Fn::Sub": FILES_ARN}), perm)
            self.assertEqual(names(props["FunctionName"]), {"TransformerFunction"}, perm)

    def test_no_path_reaches_a_prefix_but_p_unless_through_the_function_or_a_signature(self):
        # Whatever S3 decodes a path to (an encoded slash or letter included), a key the
        # distribution may read outside p/ is only reached by a behaviour that runs the
        # transform function (which refuses all but /t/... and rewrites those to results/...)
        # or requires the key group.
        paths = ["/results/users/u/f/a.jpg/e1/w:300.webp", "/results%2Fusers/u/f/a.jpg/e1/_.webp",
                 "/results", "/users/u/f/a.jpg", "/users%2Fu/f/a.jpg", "/derived/f/320.webp",
                 "/derived%2Ff/320.webp", "/t/sig/w:300/plain/users/u/f/a.jpg", "/p/f/320.webp"]
        for signing in (True, False):
            for path in paths:
                with self.subTest(path=path, signing=signing):
                    b = behaviour_for(path, signing)
                    key = unquote(path)[1:]
                    transform = functions(b) == [("viewer-request", {"TransformRequestFunction"})]
                    if key.startswith("results") or path.startswith("/t/"):
                        self.assertTrue(transform, b["PathPattern"])
                    elif key.startswith(("users", "derived")) and signing:
                        self.assertEqual(b.get("TrustedKeyGroups"), [{"Ref": "FilesKeyGroup"}], b["PathPattern"])
                    elif key.startswith("p/"):
                        self.assertEqual(b["PathPattern"], "*", "public copies: the unsigned default")
                    else:  # users/, derived/ without signing: the default, and S3 refuses them
                        self.assertEqual(b["PathPattern"], "*")
        self.assertEqual(behaviour_for("/t/sig/w:300/plain/users/u/f/a.jpg", False)["TargetOriginId"], "results-then-transformer")
        # Only the transform behaviour reaches the transformer or the origin group.
        for b in behaviours(signing=True):
            if b["TargetOriginId"] != "files":
                self.assertEqual(b["PathPattern"], "/t/*")

    def test_the_bucket_gives_the_files_cdn_public_copies_results_and_signed_prefixes_only(self):
        doc = RES["FilesBucketPolicy"]["Properties"]["PolicyDocument"]
        grants = {}
        for cond, st in unwrap(doc["Statement"]):
            principal = st.get("Principal")
            if st["Effect"] == "Allow":
                self.assertNotEqual(principal, "*", st.get("Sid"))
                self.assertNotIn("*", as_list((principal or {}).get("AWS", [])), st.get("Sid"))
            if FILES_ARN not in str(st.get("Condition")):
                continue
            self.assertEqual(st["Effect"], "Allow")
            self.assertEqual(principal, {"Service": "cloudfront.amazonaws.com"})
            self.assertEqual(st["Condition"], {"StringEquals": {"AWS:SourceArn": {"Fn::Sub": FILES_ARN}}})
            for action in as_list(st["Action"]):
                grants.setdefault((cond, action), set()).update(subs(st["Resource"]))
        signed = {"${FilesBucket.Arn}/users/*", "${FilesBucket.Arn}/derived/*"}
        self.assertEqual(grants, {
            # Public copies (the unsigned default) and transform results (through /t/* only:
            # test_no_path_reaches_a_prefix_but_p_unless_through_the_function_or_a_signature).
            (None, "s3:GetObject"): {"${FilesBucket.Arn}/p/*", "${FilesBucket.Arn}/results/*"},
            ("HasFilesSigning", "s3:GetObject"): signed,
            # A signed download names the version its row accepted (DECISIONS 28); the signature
            # covers the query, so no viewer picks another.
            ("HasFilesSigning", "s3:GetObjectVersion"): signed,
        })
        # The objects are SSE-KMS: the key lets CloudFront decrypt for distributions of this account only.
        key = RES["FilesKey"]["Properties"]["KeyPolicy"]["Statement"]
        cdn, = [s for s in key if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]
        self.assertEqual(as_list(cdn["Action"]), ["kms:Decrypt"])
        self.assertEqual(cdn["Condition"]["StringLike"]["aws:SourceArn"],
                         {"Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*"})

    def test_the_private_cache_key_holds_the_version_download_name_and_type_never_the_signature(self):
        wanted = {"QueryStringBehavior": "whitelist",
                  "QueryStrings": ["versionId", "response-content-disposition", "response-content-type"]}
        private = RES["FilesPrivateCachePolicy"]["Properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
        self.assertEqual(private["QueryStringsConfig"], wanted)
        for signature in ("Expires", "Signature", "Key-Pair-Id", "Policy"):
            self.assertNotIn(signature, private["QueryStringsConfig"]["QueryStrings"])
        self.assertEqual(private["HeadersConfig"], {"HeaderBehavior": "none"})
        self.assertEqual(private["CookiesConfig"], {"CookieBehavior": "none"})
        forwarded = RES["FilesPrivateOriginRequestPolicy"]["Properties"]["OriginRequestPolicyConfig"]
        self.assertEqual(forwarded["QueryStringsConfig"], wanted)
        self.assertEqual(forwarded["HeadersConfig"], {"HeaderBehavior": "none"})
        self.assertEqual(forwarded["CookiesConfig"], {"CookieBehavior": "none"})
        public = RES["FilesPublicCachePolicy"]["Properties"]["CachePolicyConfig"]
        self.assertEqual((public["MinTTL"], public["DefaultTTL"], public["MaxTTL"]), (0, 86400, 31536000),
                         "the object's Cache-Control decides")
        key = public["ParametersInCacheKeyAndForwardedToOrigin"]
        self.assertEqual((key["QueryStringsConfig"], key["HeadersConfig"], key["CookiesConfig"]),
                         ({"QueryStringBehavior": "none"}, {"HeaderBehavior": "none"}, {"CookieBehavior": "none"}))
        for policy in (key, private):
            self.assertFalse(policy["EnableAcceptEncodingGzip"] or policy["EnableAcceptEncodingBrotli"])

    def test_the_functions_find_the_files_cdn_in_their_environment(self):
        for fn in CDN_AWARE:
            self.assertEqual(env(fn).get("FILES_CDN_BASE_URL"), BASE_URL, fn)
        for fn in INVALIDATORS:
            self.assertEqual(env(fn).get("FILES_DISTRIBUTION_ID"), {"Ref": "FilesDistribution"}, fn)
        for fn in SIGNERS:
            self.assertEqual(env(fn).get("FILES_CDN_KEY_PAIR_ID"), {"Fn::If": ["SignsWithFilesKeyA", {"Ref": "FilesCdnPublicKeyA"},
                             {"Fn::If": ["SignsWithFilesKeyB", {"Ref": "FilesCdnPublicKeyB"}, ""]}]}, fn)
            self.assertEqual(env(fn).get("FILES_CDN_SIGNING_SLOT"), {"Ref": "FilesSigningSlot"}, fn)
            self.assertEqual(env(fn).get("FILES_CDN_SIGNING_SECRET_ID"),
                             {"Fn::If": ["HasFilesSigning", {"Ref": "FilesSigningKeySecret"}, ""]}, fn)
        # A function is told only of what it may use; CDN_BASE_URL is retired.
        for fn, res in RES.items():
            if res["Type"] != "AWS::Serverless::Function":
                continue
            given = {k for k in env(fn) if k.startswith("FILES_CDN_") or k in ("FILES_DISTRIBUTION_ID", "CDN_BASE_URL")}
            want = ({"FILES_CDN_BASE_URL"} if fn in CDN_AWARE else set()) \
                | ({"FILES_DISTRIBUTION_ID"} if fn in INVALIDATORS else set()) \
                | ({"FILES_CDN_KEY_PAIR_ID", "FILES_CDN_SIGNING_SECRET_ID", "FILES_CDN_SIGNING_SLOT"} if fn in SIGNERS else set())
            self.assertEqual(given, want, fn)

    def test_the_signing_key_is_under_the_stacks_key_and_only_the_signers_read_it(self):
        props = RES["FilesSigningKeySecret"]["Properties"]
        self.assertEqual(names(props["KmsKeyId"]), {"FilesKey"})
        self.assertNotIn("SecretString", props, "the PEM is written by scripts/cdn-keys, never by a deploy")
        self.assertNotIn("GenerateSecretString", props)
        readers = set()
        for name, res in RES.items():
            for st in statements(res.get("Properties") or {}):
                actions = as_list(st.get("Action"))
                if "FilesSigningKeySecret" in names(as_list(st.get("Resource"))) or any(
                        str(a).startswith("secretsmanager:") and "*" in as_list(st.get("Resource")) for a in actions):
                    readers.add(name)
                    self.assertEqual(actions, ["secretsmanager:GetSecretValue"], name)
        self.assertEqual(readers, SIGNERS)
        for fn in SIGNERS:  # the secret is encrypted with the stack's key
            self.assertTrue(any("kms:Decrypt" in as_list(st["Action"]) and names(st["Resource"]) == {"FilesKey"}
                                for st in statements(RES[fn]["Properties"])), fn)
        self.assertEqual(names(T["Outputs"]["FilesSigningKeySecretArn"]["Value"]), {"FilesSigningKeySecret"})

    def test_the_invalidations_name_the_files_distribution(self):
        seen = set()
        for name, res in RES.items():
            if res["Type"] == "AWS::IAM::ManagedPolicy":
                continue  # counted where it is attached
            for st in statements(res.get("Properties") or {}):
                if st.get("Effect") == "Allow" and subs(st.get("Resource", [])) == {FILES_ARN}:
                    seen.add(name)
                    self.assertEqual(as_list(st["Action"]), ["cloudfront:CreateInvalidation"], name)
                    self.assertNotIn("Condition", st, name)
        self.assertEqual(seen, INVALIDATORS)
        self.assertEqual(names(T["Outputs"]["FilesDistributionId"]["Value"]), {"FilesDistribution"})

    def test_public_copies_are_written_by_the_publishers_and_removed_by_the_purgers(self):
        rights = {}
        for name, res in RES.items():
            if res["Type"] not in IDENTITY_TYPES:
                continue  # the bucket policy's own grant to the CDN is the test above's
            for st in statements(res.get("Properties") or {}):
                if st.get("Effect") != "Allow":
                    continue
                if "${FilesBucket.Arn}/p/*" in subs(st.get("Resource", [])):
                    rights.setdefault(name, set()).update(as_list(st["Action"]))
                prefixes = (st.get("Condition") or {}).get("StringLike", {}).get("s3:prefix", [])
                if "p/*" in as_list(prefixes):
                    rights.setdefault(name, set()).update(as_list(st["Action"]))
        # Copies go for good: every version is listed (ListObjectVersions) and deleted (DeleteObjects
        # with version ids), as the functions remove derived/ too.
        publish = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucketVersions"}
        self.assertEqual(rights, {
            # Made public, private, deleted, restored; and whether a copy is there before its URL
            # is shown (an archived file's, one withheld for its size: a HEAD), as the notifier's
            # views of such files look (review 27).
            "FilesApiFunction": publish | {"s3:GetObject", "s3:ListBucket"},
            # And whether a large public original's copy is there (a HEAD) on a change that would
            # not otherwise ask the thumbnailer for one.
            "NotifierFunction": {"s3:GetObject", "s3:ListBucket"},
            # Public as it becomes READY, or asked to copy a large original (in parts: a
            # failed copy is aborted). Whether an asked-for copy of a file made private since
            # is there to be taken back: a HEAD (GetObject, ListBucket).
            "ThumbnailerFunction": publish | {"s3:AbortMultipartUpload", "s3:GetObject", "s3:ListBucket"},
            # A deleted or overwritten file's copies go with its variants; a public file's
            # restore out of the archive copies its original again (one over 1 GiB: the
            # thumbnailer, asked by the notifier).
            "IndexerFunction": {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucket",
                                "s3:ListBucketVersions"},
            # Erase removes every version, as it does everywhere else; it writes nothing (the
            # eraser runs it again an hour later: the same rights, EraseRights).
            "AccountFunction": {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:AbortMultipartUpload",
                                "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"},
            "EraserFunction": {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:AbortMultipartUpload",
                               "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"},
        })
        rule, = [r for r in RES["FilesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"] if r.get("Prefix") == "p/"]
        self.assertEqual(rule["NoncurrentVersionExpiration"], {"NoncurrentDays": 1}, "a deleted copy's old version goes")

    def test_transform_results_are_removed_by_whoever_takes_a_file_off_the_cdn(self):
        # Security review 20 (edge): making a public file private deletes its stored transform
        # results (its never-expiring image URLs must serve nothing); without these rights the
        # deployed request failed with AccessDenied and the file stayed public.
        rights = {}
        for name, res in RES.items():
            if res["Type"] not in IDENTITY_TYPES:
                continue
            for st in statements(res.get("Properties") or {}):
                if st.get("Effect") != "Allow":
                    continue
                resources = subs(st.get("Resource", []))
                prefixes = as_list((st.get("Condition") or {}).get("StringLike", {}).get("s3:prefix", []))
                if {"${FilesBucket.Arn}/results/*", "${FilesBucket.Arn}/results/users/*"} & set(resources) or \
                        {"results/*", "results/users/*"} & set(prefixes):
                    rights.setdefault(name, set()).update(as_list(st["Action"]))
        purge = {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucketVersions"}
        self.assertLessEqual(purge, rights.get("FilesApiFunction", set()), "made private: its results go")
        self.assertLessEqual(purge, rights.get("IndexerFunction", set()), "deleted or overwritten")
        self.assertLessEqual(purge, rights.get("AccountFunction", set()), "erased")
        self.assertEqual(rights["TransformerFunction"], {"s3:GetObject", "s3:PutObject", "s3:ListBucket"})

    def test_it_is_the_one_files_domain_that_took_the_image_cdns_place(self):
        self.assertEqual(CFG["HttpVersion"], "http2and3")
        self.assertEqual(CFG["PriceClass"], "PriceClass_100")
        geo = CFG["Restrictions"]["GeoRestriction"]["Fn::If"]
        self.assertEqual((geo[0], geo[2]), ("HasGeoRestriction", {"RestrictionType": "none"}))
        self.assertEqual(CFG["WebACLId"], {"Fn::If": ["HasFilesWebAcl", {"Ref": "FilesWebAclArn"}, {"Ref": "AWS::NoValue"}]})
        self.assertEqual(names(CFG["Logging"]["Bucket"]), {"LogsBucket"})
        self.assertEqual(CFG["Logging"]["Prefix"], "cdn-files/")
        cond, custom, default = CFG["ViewerCertificate"]["Fn::If"]
        self.assertEqual((cond, custom["MinimumProtocolVersion"], custom["SslSupportMethod"]),
                         ("HasFilesDomain", "TLSv1.2_2021", "sni-only"))
        self.assertEqual(custom["AcmCertificateArn"], {"Ref": "FilesCertificateArn"})
        self.assertEqual(default, {"CloudFrontDefaultCertificate": True})
        self.assertEqual(CFG["Aliases"], {"Fn::If": ["HasFilesDomain", [{"Ref": "FilesDomainName"}], {"Ref": "AWS::NoValue"}]})
        rule = T["Rules"]["FilesDomainNeedsCertificate"]
        self.assertEqual(rule["Assertions"][0]["Assert"], {"Fn::Not": [{"Fn::Equals": [{"Ref": "FilesCertificateArn"}, ""]}]})
        self.assertEqual(T["Outputs"]["FilesCdnUrl"]["Value"], BASE_URL)
        # Transform URLs are the files domain's /t/... (DECISIONS 30): no image distribution,
        # domain, certificate or web ACL of its own is left.
        transform_base = {"Fn::If": ["HasFilesDomain", {"Fn::Sub": "https://${FilesDomainName}/t"},
                                     {"Fn::Sub": "https://${FilesDistribution.DomainName}/t"}]}
        self.assertEqual(env("FilesApiFunction")["TRANSFORM_BASE_URL"], transform_base)
        self.assertEqual(T["Outputs"]["TransformBaseUrl"]["Value"], transform_base)
        leftovers = [k for part in ("Parameters", "Conditions", "Rules", "Resources", "Outputs")
                     for k in T.get(part, {}) if k.startswith(("Images", "HasImages", "Results"))]
        self.assertEqual(leftovers, [])
        with open(os.path.join(ROOT, "template.yaml")) as f:
            self.assertNotIn("ImagesDistribution", f.read())

if __name__ == "__main__":
    unittest.main()
