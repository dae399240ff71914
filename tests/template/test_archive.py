"""The archive tier in template.yaml (issue 21, part 1): a lifecycle rule per type class and one
for the owner's request, filtering on the tags the Rust code writes (core::archival), only
under users/ (variants, public copies and results stay readable); S3 tells the indexer of
moves and restores; only the functions that tag and restore may."""

import os
import re
import unittest

from cfn import RES, T, statements

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ARCHIVAL = os.path.join(ROOT, "crates", "core", "src", "archival.rs")


def rust_consts():
    with open(ARCHIVAL) as f:
        src = f.read()
    return dict(re.findall(r'pub const (\w+): [^=]+= "?([^";]+)"?;', src)), src


def archive_rules():
    rules = RES["FilesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    return [r for r in rules if any(t.get("StorageClass") == "GLACIER" for t in r.get("Transitions", []))]


class ArchiveTier(unittest.TestCase):
    def test_every_type_class_and_the_request_have_a_rule_on_the_tags_the_code_writes(self):
        consts, src = rust_consts()
        # the values type_class_tag() gives, one per TypeClass
        classes = set(re.findall(r'TypeClass::\w+ => "(\w+)"', src))
        self.assertEqual(classes, {"image", "video", "document", "archive"})
        rules = archive_rules()
        by_tag = {}
        for r in rules:
            self.assertEqual(r["Prefix"], "users/", f"{r['Id']}: originals only")
            self.assertEqual(r["Status"], "Enabled")
            (tag,) = r["TagFilters"]
            by_tag[(tag["Key"], tag["Value"])] = r["Transitions"][0]["TransitionInDays"]
        self.assertEqual(set(by_tag), {(consts["TYPE_CLASS_TAG"], c) for c in classes}
                         | {(consts["ARCHIVE_TAG"], consts["ARCHIVE_NOW_VALUE"])})
        self.assertEqual(by_tag[("type-class", "video")], {"Ref": "ArchiveVideosAfterDays"})
        self.assertEqual(by_tag[("type-class", "image")], {"Ref": "ArchiveAfterDays"})
        self.assertEqual(by_tag[("archive", "now")], 0)

    def test_the_defaults_are_the_codes_named_ones(self):
        consts, _ = rust_consts()
        params = T["Parameters"]
        self.assertEqual(str(params["ArchiveAfterDays"]["Default"]), consts["DEFAULT_ARCHIVE_AFTER_DAYS"])
        self.assertEqual(str(params["ArchiveVideosAfterDays"]["Default"]),
                         consts["DEFAULT_ARCHIVE_VIDEOS_AFTER_DAYS"])

    def test_s3_tells_the_indexer_of_moves_and_restores(self):
        configs = RES["FilesBucket"]["Properties"]["NotificationConfiguration"]["TopicConfigurations"]
        events = {c["Event"] for c in configs if c["Topic"] == {"Ref": "FileEventsTopic"}}
        self.assertLessEqual({"s3:LifecycleTransition", "s3:ObjectRestore:Completed", "s3:ObjectRestore:Delete"},
                             events)

    def test_only_files_api_restores_and_only_it_and_the_indexer_tag_originals(self):
        restores, tags = set(), set()
        for name, res in RES.items():
            if res["Type"] != "AWS::Serverless::Function":
                continue
            for s in statements(res["Properties"]):
                actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
                if "s3:RestoreObject" in actions:
                    restores.add(name)
                if "s3:PutObjectTagging" in actions:
                    tags.add(name)
                    self.assertIn("/users/*", str(s["Resource"]), f"{name} tags beyond originals")
        self.assertEqual(restores, {"FilesApiFunction"})
        self.assertEqual(tags, {"FilesApiFunction", "IndexerFunction"})


if __name__ == "__main__":
    unittest.main()
