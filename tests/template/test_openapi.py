"""The HTTP API's OpenAPI document (docs/openapi.json, generated from the routers and checked
against them by crates/files-api/tests/it/openapi.rs) and the routes the template gives API
Gateway are the same set: a route without a description, or a description without a route,
fails here. Each operation's tag names the function (the `Binary`) that serves it, and an
operation without a login is exactly a route with `Authorizer: NONE`."""

import json
import os
import re
import unittest

from cfnlint.decode import cfn_yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
T = cfn_yaml.load(os.path.join(ROOT, "template.yaml"))
with open(os.path.join(ROOT, "docs", "openapi.json")) as f:
    DOC = json.load(f)
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def template_routes():
    """(METHOD, path) -> (binary, public) for every HttpApi event."""
    out = {}
    for fn in T["Resources"].values():
        if fn["Type"] != "AWS::Serverless::Function":
            continue
        binary = fn.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        for event in (fn["Properties"].get("Events") or {}).values():
            if event["Type"] != "HttpApi":
                continue
            p = event["Properties"]
            public = (p.get("Auth") or {}).get("Authorizer") == "NONE"
            out[(p["Method"].upper(), p["Path"])] = (binary, public)
    return out


def crate_of(binary):
    """The crate a binary is built from: the crate of its name, or the one whose `[[bin]]` it is."""
    if os.path.isdir(os.path.join(ROOT, "crates", binary)):
        return binary
    for crate in sorted(os.listdir(os.path.join(ROOT, "crates"))):
        manifest = os.path.join(ROOT, "crates", crate, "Cargo.toml")
        if os.path.exists(manifest):
            with open(manifest) as f:
                if re.search(rf'\[\[bin\]\]\s*name = "{re.escape(binary)}"', f.read()):
                    return crate
    raise AssertionError(f"no crate builds the binary {binary}")


def documented_routes():
    out = {}
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                public = op.get("security") == [{}]
                out[(method.upper(), path)] = (op["tags"][0], public)
    return out


class OpenApiMatchesTheTemplate(unittest.TestCase):
    def test_every_route_is_described_and_every_description_routed(self):
        routed, described = template_routes(), documented_routes()
        self.assertEqual(sorted(set(routed) - set(described)), [], "routes without a description")
        self.assertEqual(sorted(set(described) - set(routed)), [], "descriptions without a route")

    def test_each_operation_is_served_by_the_function_it_names_with_the_same_login(self):
        routed, described = template_routes(), documented_routes()
        for route, (binary, public) in routed.items():
            self.assertEqual(described[route], (binary, public), route)

    def test_the_http_functions_register_routes_only_with_their_description(self):
        # `.route(` on a plain axum Router would add a route the document does not know.
        crates = {crate_of(b) for b, _ in template_routes().values()}
        for crate in crates:
            src = os.path.join(ROOT, "crates", crate, "src")
            for folder, _, files in os.walk(src):
                for name in files:
                    if name.endswith(".rs") and name != "tests.rs":
                        with open(os.path.join(folder, name)) as f:
                            text = f.read()
                        self.assertIsNone(re.search(r"\.route\(", text), f"{crate}/src/{name}: use routes!()")


if __name__ == "__main__":
    unittest.main()
