#!/usr/bin/env python3
"""Checks the AWS calls each function made against its IAM policy in template.yaml.

moto serves every call whatever the caller may do, so a function whose policy lacks an action its
code uses passes every local test and fails deployed (review 27: the sweeper's GetItem, the
erase's DeleteItem). Here each call a function made to the local stack (`scripts/moto_server.py`
writes them with `MOTO_CALL_LOG`; the SDK names the function in its user agent, and a request a
browser sent with a function's signature, a presigned URL or a form upload, names it in its key id
locally: `LOCAL_SIGNER_NAMES`) is turned into
the IAM action and resource AWS would authorise, and looked for among the Allow statements of
that function's policies (inline, the template's managed policies, and `AWS::IAM::Policy`
resources attached to its role). Each branch of an `Fn::If` counts; conditions are not
evaluated, but `s3:prefix` on a listing is. What the local stack does not have (the CDN's
invalidations, KMS, the WebSocket API) is not called there, so not checked.

    scripts/iam_calls.py --calls calls.jsonl --prefix dev [--template template.yaml]

Exit 0 when every call is allowed; 1 with each missing grant (function, action, resource, how
many calls) otherwise; 2 on bad input. What was checked is printed either way.
"""

import argparse
import collections
import fnmatch
import json
import re
import sys
import xml.etree.ElementTree as ET

from cfnlint.decode import cfn_yaml

from cfn_policies import as_list, branches, function_documents, statements as document_statements


def resource_pattern(v):
    """A statement's resource as a pattern over logical names (`FilesTable`,
    `FilesBucket/users/*`, `FilesTable/index/gsi2-status`); None for what names no resource of
    the template (another account's, a CDN's ARN built from parts)."""
    if v == "*":
        return "*"
    if isinstance(v, dict) and "Fn::GetAtt" in v:
        a = v["Fn::GetAtt"]
        logical, attr = (a if isinstance(a, list) else a.split(".", 1))
        return logical if attr == "Arn" else None
    if isinstance(v, dict) and "Ref" in v:
        return v["Ref"]
    if isinstance(v, dict) and "Fn::Sub" in v and isinstance(v["Fn::Sub"], str):
        m = re.fullmatch(r"\$\{(\w+)\.Arn\}(.*)", v["Fn::Sub"])
        # An API's execute-api ARN: `arn:...:execute-api:{region}:{account}:${Api}/{stage}/...`.
        api = re.fullmatch(r"arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
                           r"\$\{(\w+)\}(/.*)", v["Fn::Sub"])
        return m.group(1) + m.group(2) if m else (api.group(1) + api.group(2) if api else None)
    return None


def statements(template):
    """Function logical id -> its Allow statements as (actions, resource patterns, condition)."""
    out = collections.defaultdict(list)
    for fn, r in template["Resources"].items():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        for doc in function_documents(template, fn):
            for s in document_statements(doc):
                if s.get("Effect") != "Allow":
                    continue
                resources = [p for r in as_list(s.get("Resource")) for b in branches(r)
                             if (p := resource_pattern(b)) is not None]
                out[fn].append((as_list(s["Action"]), resources, s.get("Condition", {})))
    return out


def s3_calls(call, bucket_of):
    """(action, resource) of an S3 REST call (path-style: /bucket/key)."""
    path = call["path"].lstrip("/")
    bucket, _, key = path.partition("/")
    lid = bucket_of(bucket)
    if lid is None:
        return []
    q, method = call["query"], call["method"]
    if method == "OPTIONS":
        return []  # a browser's CORS preflight of a presigned request: answered by the bucket's CORS rules, not IAM
    if not key and method == "POST" and call.get("formKey"):
        # A browser's form upload, signed by the function that granted it (its POST policy).
        return [("s3:PutObject", f"{lid}/{call['formKey']}")]
    if not key:
        if method == "POST" and "delete" in q:
            try:
                doc = ET.fromstring(call.get("body") or "<Delete/>")
            except ET.ParseError as e:
                raise ValueError(f"a multi-object delete whose body is not XML: {e}") from e
            out = []
            for obj in doc.iter():
                if obj.tag.endswith("Object"):
                    k = next((c.text for c in obj if c.tag.endswith("Key")), "")
                    versioned = any(c.tag.endswith("VersionId") for c in obj)
                    out.append(("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", f"{lid}/{k}"))
            return out
        listing = {"versions": "s3:ListBucketVersions", "uploads": "s3:ListBucketMultipartUploads",
                   "versioning": "s3:GetBucketVersioning", "location": "s3:GetBucketLocation"}
        action = next((a for k, a in listing.items() if k in q), "s3:ListBucket")
        return [(action, lid, q.get("prefix", ""))]
    obj = f"{lid}/{key}"
    versioned = "versionId" in q
    if "tagging" in q:
        verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}[method]
        return [(f"s3:{verb}Object{'Version' if versioned else ''}Tagging", obj)]
    if method in ("GET", "HEAD"):
        if "uploadId" in q:
            return [("s3:ListMultipartUploadParts", obj)]
        return [("s3:GetObjectVersion" if versioned else "s3:GetObject", obj)]
    if method == "PUT":
        out = [("s3:PutObject", obj)]
        if call.get("copySource"):
            src = call["copySource"].lstrip("/")
            src_path, _, src_query = src.partition("?versionId=")
            src_bucket, _, src_key = src_path.partition("/")
            src_lid = bucket_of(src_bucket)
            if src_lid:
                out.append(("s3:GetObjectVersion" if src_query else "s3:GetObject", f"{src_lid}/{src_key}"))
                # The source's tags go with it unless the copy replaces them (the default, COPY).
                if (call.get("taggingDirective") or "COPY").upper() != "REPLACE":
                    tagging = "s3:GetObjectVersionTagging" if src_query else "s3:GetObjectTagging"
                    out += [(tagging, f"{src_lid}/{src_key}"), ("s3:PutObjectTagging", obj)]
        return out
    if method == "POST":
        return [("s3:RestoreObject" if "restore" in q else "s3:PutObject", obj)]
    if method == "DELETE":
        if "uploadId" in q:
            return [("s3:AbortMultipartUpload", obj)]
        return [("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", obj)]
    return [(f"s3:{method}?", obj)]


def json_calls(call, named):
    """(action, resource) of a JSON-protocol call (DynamoDB, SQS, Secrets Manager)."""
    service, _, op = call["target"].partition(".")
    body = json.loads(call.get("body") or "{}")
    if service.startswith("DynamoDB_"):
        def table(name, index=None):
            lid = named(name)
            return lid and (f"{lid}/index/{index}" if index else lid)
        if op in ("TransactWriteItems", "TransactGetItems"):
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
            return [(f"dynamodb:{kinds[k]}", table(v["TableName"]))
                    for item in body.get("TransactItems", []) for k, v in item.items()]
        if op in ("BatchWriteItem", "BatchGetItem"):
            return [(f"dynamodb:{op}", table(t)) for t in body.get("RequestItems", {})]
        return [(f"dynamodb:{op}", table(body.get("TableName", ""), body.get("IndexName")))]
    if service == "AmazonSQS":
        # A batch is authorised as its single action (SendMessageBatch: sqs:SendMessage).
        return [(f"sqs:{op.removesuffix('Batch')}", named(body.get("QueueUrl", "").rstrip("/").rsplit("/", 1)[-1]))]
    if service == "secretsmanager":
        secret = body.get("SecretId", "")
        name = secret.split(":secret:", 1)[1].rsplit("-", 1)[0] if ":secret:" in secret else secret
        return [(f"secretsmanager:{op}", named(name))]
    return []  # DynamoDB Streams and the like: read by the local event pump, not a function


def connection_calls(call):
    """(action, resource) of a call of the WebSocket API's `@connections` (the local gateway writes
    them: its `/live` is the template's `LiveApi`, stage `live`)."""
    connection = call["path"].removeprefix("/live/@connections/")
    return [("execute-api:ManageConnections", f"LiveApi/live/{call['method']}/@connections/{connection}")]


def attributed(call, binaries, named):
    """(function logical id, its (action, resource[, prefix]) list) of a call, or None when no
    function of the template made it (a local tool, a test)."""
    # Deployed: matbakh-files-{stage}-{binary}; under cargo lambda watch: the binary.
    fn = binaries.get(re.sub(r"^matbakh-files-[^-]+-", "", call["app"]))
    if fn is None:
        return None
    if call["path"].startswith("/live/@connections/"):
        return fn, connection_calls(call)
    return fn, (json_calls(call, named) if call.get("target") else s3_calls(call, named))


def allowed(grants, action, resource, prefix=None):
    for actions, resources, condition in grants:
        if not any(fnmatch.fnmatchcase(action, a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        wanted = condition.get("StringLike", {}).get("s3:prefix")
        if prefix is not None and wanted is not None:
            if not any(fnmatch.fnmatchcase(prefix, p) for p in as_list(wanted)):
                continue
        return True
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", required=True, help="the JSON lines moto_server.py wrote (MOTO_CALL_LOG)")
    ap.add_argument("--prefix", required=True, help="the local resources' name prefix (local_resources.py --prefix)")
    ap.add_argument("--template", default="template.yaml")
    ap.add_argument("--min-functions", type=int, default=1,
                    help="fail unless at least this many functions made calls (a log that holds none checks nothing)")
    ap.add_argument("--min-presigned", type=int, default=0,
                    help="fail unless at least this many functions signed requests a browser sent (presigned URLs, "
                         "form uploads: LOCAL_SIGNER_NAMES)")
    args = ap.parse_args()
    try:
        template = cfn_yaml.load(args.template)
        with open(args.calls) as f:
            calls = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        print(f"iam_calls: {e}", file=sys.stderr)
        sys.exit(2)
    res = template["Resources"]
    by_local = {f"{args.prefix}-{lid.lower()}": lid for lid in res}
    named = by_local.get
    binaries = {r.get("Metadata", {}).get("BuildProperties", {}).get("Binary"): lid
                for lid, r in res.items() if r["Type"] == "AWS::Serverless::Function"}
    grants = statements(template)

    checked = collections.Counter()
    signers, presigned = set(), 0
    missing = collections.Counter()
    unattributed = collections.Counter()
    for call in calls:
        try:
            counted = attributed(call, binaries, named)
        except (ValueError, KeyError) as e:
            print(f"iam_calls: a call that cannot be read ({e}): {json.dumps(call)[:300]}", file=sys.stderr)
            sys.exit(2)
        if counted is None:
            unattributed[call["app"]] += 1
            continue
        fn, found = counted
        if call.get("presigned") and found:
            signers.add(fn)
            presigned += 1
        for action, resource, *prefix in found:
            if resource is None:
                continue  # a resource of a test's own, not the stack's
            checked[(fn, action)] += 1
            if not allowed(grants[fn], action, resource, prefix[0] if prefix else None):
                missing[(fn, action, resource if not prefix else f"{resource} (prefix {prefix[0]!r})")] += 1
    for (fn, action), n in sorted(checked.items()):
        print(f"  {fn}: {action} x{n}")
    for app, n in sorted(unattributed.items()):
        print(f"  (not a function of the template: app/{app}, {n} calls)")
    seen = len({f for f, _ in checked})
    if seen < args.min_functions:
        print(f"iam_calls: calls of {seen} function(s), fewer than the {args.min_functions} expected: is MOTO_CALL_LOG set, "
              "and do the functions name themselves (AWS_LAMBDA_FUNCTION_NAME)?", file=sys.stderr)
        sys.exit(1)
    if len(signers) < args.min_presigned:
        print(f"iam_calls: requests signed by {len(signers)} function(s) ({', '.join(sorted(signers)) or 'none'}), "
              f"fewer than the {args.min_presigned} expected: do the functions sign with their names "
              "(LOCAL_SIGNER_NAMES=1)?", file=sys.stderr)
        sys.exit(1)
    if missing:
        print(f"iam_calls: {len(missing)} call(s) the template does not allow:", file=sys.stderr)
        for (fn, action, resource), n in sorted(missing.items()):
            print(f"  {fn}: {action} on {resource} ({n} calls)", file=sys.stderr)
        sys.exit(1)
    sockets = sum(n for (_, action), n in checked.items() if action == "execute-api:ManageConnections")
    print(f"iam_calls: {sum(checked.values())} calls of {seen} functions ({presigned} of them signed for a browser, "
          f"by {', '.join(sorted(signers)) or 'none'}; {sockets} to the WebSocket API's @connections), "
          "each allowed by its policy")


if __name__ == "__main__":
    main()
