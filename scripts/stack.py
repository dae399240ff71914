"""What the deploy scripts (deploy_web.py, transform_keys.py) share: their refusal, and a
stack's outputs."""

import botocore.exceptions


class Refused(Exception):
    """A bad argument or state, found before anything was written."""


def stack_outputs(cfn, stack):
    """The stack's outputs by key; a missing stack is a Refused."""
    try:
        found = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except botocore.exceptions.ClientError as e:
        raise Refused(f"stack {stack}: {e.response['Error'].get('Message', e)}") from e
    return {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
