"""template.yaml as the template tests read it, loaded once, and the helpers they share to read
references and IAM statements."""

import os
import sys

from cfnlint.decode import cfn_yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from cfn_policies import as_list, template_managed_policy  # noqa: E402
from cfn_policies import statements as document_statements  # noqa: E402

T = cfn_yaml.load(os.path.join(ROOT, "template.yaml"))
RES = T["Resources"]


def names(v):
    """Logical ids a `!Ref`/`!GetAtt` (or a list of them) names."""
    if isinstance(v, list):
        return {n for x in v for n in names(x)}
    if isinstance(v, dict) and "Ref" in v:
        return {v["Ref"]}
    if isinstance(v, dict) and "Fn::GetAtt" in v:
        a = v["Fn::GetAtt"]
        return {a[0] if isinstance(a, list) else a.split(".")[0]}
    return set()


def unwrap(statements):
    """(condition, statement) for each statement; one under `Fn::If` carries its condition
    (`!Cond` for the else branch), an `AWS::NoValue` branch is no statement."""
    for st in as_list(statements):
        if isinstance(st, dict) and "Fn::If" in st:
            cond, yes, no = st["Fn::If"]
            for c, branch in ((cond, yes), (f"!{cond}", no)):
                if branch != {"Ref": "AWS::NoValue"}:
                    yield c, branch
        else:
            yield None, st


def managed(policy):
    """The document of a function's `Policies` entry: inline, or the template's managed policy a
    `!Ref` names (its rights are the function's too)."""
    target = template_managed_policy(T, policy)
    return target["Properties"]["PolicyDocument"] if target else policy.get("PolicyDocument", policy)


def statements(props):
    """Every statement of a function's `Policies` (inline, or a managed policy of the template),
    a role's inline policies or a policy (each branch of a conditional one)."""
    docs = [managed(p) for p in as_list(props.get("Policies")) if isinstance(p, dict)]
    docs += [props["PolicyDocument"]] if isinstance(props.get("PolicyDocument"), dict) else []
    for doc in docs:
        yield from document_statements(doc)
