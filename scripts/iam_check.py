#!/usr/bin/env python3
"""Least privilege, checked mechanically on template.yaml (or the files given).

Every `Allow` statement of an identity policy (a function's `Policies`, an IAM role or
policy) must name specific actions (no `*` in any action) on specific resources (no
`Resource: "*"`), except the statements listed in STAR_RESOURCE_ALLOWED, each with the reason
AWS gives. Resource policies are held to their own rule: a key policy's `Resource` is always
the key itself ("*" there means "this key"), and only the account root may hold `kms:*`
(AWS's default statement, without which the key could become unmanageable); a bucket or
queue policy may not `Allow` a wildcard action or principal.

    scripts/iam_check.py [template.yaml ...]     exit 1 and one line a finding
"""

import sys

from cfnlint.decode import cfn_yaml

from cfn_policies import as_list, statements, template_managed_policy

# Sid -> why "*" is the only resource AWS accepts for it.
STAR_RESOURCE_ALLOWED = {
    "XRayTraces": "xray:PutTraceSegments and PutTelemetryRecords have no resource-level permissions",
    "PutMetrics": "cloudwatch:PutMetricData has no resource-level permissions (scoped by a namespace condition)",
}

IDENTITY_TYPES = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}
RESOURCE_POLICY_TYPES = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
}


def text(v):
    """A value's text: a `!Sub` template as written, anything else as a string."""
    return v["Fn::Sub"] if isinstance(v, dict) and isinstance(v.get("Fn::Sub"), str) else str(v)


def identity_findings(where, doc):
    out = []
    for i, st in enumerate(statements(doc)):
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        sid = st.get("Sid", f"#{i}")
        for action in as_list(st.get("Action")):
            if isinstance(action, str) and "*" in action:
                out.append(f"{where} {sid}: wildcard action {action!r}")
        if "NotAction" in st or "NotResource" in st:
            out.append(f"{where} {sid}: NotAction/NotResource grants everything else")
        if any(r == "*" for r in as_list(st.get("Resource"))) and sid not in STAR_RESOURCE_ALLOWED:
            out.append(f'{where} {sid}: Resource "*" (name the ARNs, or list the Sid with AWS\'s reason)')
    return out


def resource_policy_findings(where, doc, root_may_hold_all=False):
    """A key, bucket, queue or topic policy: no wildcard action (but the account root's
    `kms:*` in a key policy, `root_may_hold_all`), no Allow to any principal."""
    out = []
    for i, st in enumerate(statements(doc)):
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        sid = st.get("Sid", f"#{i}")
        principal = st.get("Principal", {})
        aws = as_list(principal.get("AWS")) if isinstance(principal, dict) else as_list(principal)
        exempt = root_may_hold_all and len(aws) == 1 and text(aws[0]).endswith(":root")
        for action in as_list(st.get("Action")):
            if isinstance(action, str) and "*" in action and not exempt:
                out.append(f"{where} {sid}: wildcard action {action!r}")
        if "*" in aws:
            out.append(f"{where} {sid}: Allow to any principal")
    return out


def findings(template):
    out = []
    for name, res in (template.get("Resources") or {}).items():
        kind = res.get("Type")
        props = res.get("Properties") or {}
        if kind == "AWS::Serverless::Function":
            for p in as_list(props.get("Policies")):
                if isinstance(p, dict) and "Statement" in p:
                    out += identity_findings(name, p)
                elif template_managed_policy(template, p) is not None:
                    pass  # checked as the template's own resource, below
                elif isinstance(p, str):
                    out.append(f"{name}: managed policy {p!r} (write the statements out, scoped)")
                else:
                    out.append(f"{name}: SAM policy template {list(p)[0] if isinstance(p, dict) and p else p!r} (write the statements out, scoped)")
        elif kind in IDENTITY_TYPES:
            for pol in as_list(props.get("Policies")):
                out += identity_findings(f"{name}.{pol.get('PolicyName', '?')}", pol.get("PolicyDocument"))
            if "PolicyDocument" in props:
                out += identity_findings(name, props["PolicyDocument"])
            for arn in as_list(props.get("ManagedPolicyArns")):
                out.append(f"{name}: managed policy {arn!r} (write the statements out, scoped)")
        elif kind == "AWS::KMS::Key":
            out += resource_policy_findings(name, props.get("KeyPolicy"), root_may_hold_all=True)
        elif kind in RESOURCE_POLICY_TYPES:
            out += resource_policy_findings(name, props.get(RESOURCE_POLICY_TYPES[kind]))
    return out


def main(paths):
    problems = []
    for path in paths or ["template.yaml"]:
        problems += [f"{path}: {f}" for f in findings(cfn_yaml.load(path))]
    for p in problems:
        print(p)
    if not problems:
        print(f"iam_check: least privilege holds in {', '.join(paths or ['template.yaml'])}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
