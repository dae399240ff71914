"""IAM policies in a SAM template, read one way by every check that reads them: the
least-privilege check (`iam_check.py`), the check of the calls the functions made
(`iam_calls.py`) and the template tests (`tests/template/cfn.py`).

A statement under `Fn::If` is granted whenever its condition holds, so each branch counts
(`AWS::NoValue` is none); conditions are not evaluated.
"""


def as_list(v):
    """`v` as a list: itself, `[v]`, or `[]` for None."""
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def branches(v):
    """A value, or each branch of an `Fn::If` (recursively), leaving out `AWS::NoValue`."""
    if isinstance(v, dict) and "Fn::If" in v:
        _, yes, no = v["Fn::If"]
        return [b for x in (yes, no) for b in branches(x)]
    if v == {"Ref": "AWS::NoValue"}:
        return []
    return [v]


def statements(doc):
    """Every statement of a policy document, each branch of a conditional one."""
    if not isinstance(doc, dict):
        return []
    return [s for st in branches(doc.get("Statement")) for x in as_list(st) for s in branches(x)]


def template_managed_policy(template, policy):
    """The managed policy of the template that a `Policies` entry `!Ref`s, or None."""
    if not (isinstance(policy, dict) and set(policy) == {"Ref"}):
        return None
    target = (template.get("Resources") or {}).get(policy["Ref"]) or {}
    return target if target.get("Type") == "AWS::IAM::ManagedPolicy" else None


def function_documents(template, fn):
    """The policy documents that grant function `fn` its rights: its `Policies` (inline, or a
    managed policy of the template: its rights are the function's too) and every
    `AWS::IAM::Policy` attached to its role (`{fn}Role`, as SAM names it)."""
    res = template["Resources"]
    docs = []
    for p in as_list(res[fn]["Properties"].get("Policies")):
        if (managed := template_managed_policy(template, p)) is not None:
            docs.append(managed["Properties"]["PolicyDocument"])
        elif isinstance(p, dict):
            docs.append(p.get("PolicyDocument", p))
    for r in res.values():
        if r.get("Type") == "AWS::IAM::Policy":
            roles = as_list(r["Properties"].get("Roles"))
            if any(isinstance(role, dict) and role.get("Ref") == f"{fn}Role" for role in roles):
                docs.append(r["Properties"]["PolicyDocument"])
    return docs
