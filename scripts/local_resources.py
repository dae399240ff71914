#!/usr/bin/env python3
"""Create in a local AWS endpoint (moto) the resources template.yaml declares, and write the
environment each function gets, resolved the way CloudFormation would resolve it.

    local_resources.py --endpoint http://127.0.0.1:5050 --prefix dev --env-out .local/dev/functions.env

Buckets get their versioning and SNS notifications, tables their keys, indexes, streams and TTL,
queues their redrive settings, topics their SQS subscriptions, generated secrets a random dev
value (as `GenerateSecretString` makes one when the stack is deployed). Function environments come from Globals plus the function's own Variables, with
`!Ref` to a resource replaced by its local name and `!Ref` to a parameter by its default (or a
--param NAME=VALUE override). Safe to run twice: existing resources are kept.
"""

import argparse
import base64
import json
import re
import secrets
import sys

import boto3
import botocore.exceptions
from cfnlint.decode import cfn_yaml


def local_name(prefix, logical_id):
    return f"{prefix}-{logical_id.lower()}"


def holds(condition, template, names, params):
    """A template condition of the shapes it uses: Not, And, Or, Equals, Ref (and named conditions)."""
    if isinstance(condition, str):
        return holds(template["Conditions"][condition], template, names, params)
    (fn, arg), = condition.items()
    if fn == "Fn::Not":
        return not holds(arg[0], template, names, params)
    if fn == "Fn::Equals":
        return resolve(arg[0], template, names, params) == resolve(arg[1], template, names, params)
    if fn == "Fn::And":
        return all(holds(c, template, names, params) for c in arg)
    if fn == "Fn::Or":
        return any(holds(c, template, names, params) for c in arg)
    if fn == "Condition":
        return holds(arg, template, names, params)
    sys.exit(f"local_resources: cannot evaluate condition {condition!r} locally")


def resolve(value, template, names, params):
    """Resolve the intrinsic functions a function environment uses. None: a value that exists
    only deployed (an attribute of a resource the local stack does not make, e.g. a CDN's domain)."""
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            if arg in names:
                return names[arg]
            if arg in params:
                return params[arg]
            default = template.get("Parameters", {}).get(arg, {}).get("Default")
            if default is None:
                sys.exit(f"local_resources: parameter {arg} has no default; pass --param {arg}=VALUE")
            return str(default)
        if fn == "Fn::GetAtt":
            logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            if attr == "Arn":
                return f"arn:aws:local:::{names[logical]}"
        if fn == "Fn::If":
            condition, yes, no = arg
            return resolve(yes if holds(condition, template, names, params) else no, template, names, params)
        if fn == "Fn::Sub" and isinstance(arg, str):
            out = arg
            for k, v in {**names, **params}.items():
                out = out.replace("${" + k + "}", v)
            # A generated secret (`{{resolve:secretsmanager:...}}`): a fresh random key each time
            # the local stack is made, never written anywhere but the stack's own state.
            if out.startswith("{{resolve:secretsmanager:") and out.endswith("}}"):
                return base64.b64encode(secrets.token_bytes(48)).decode()
            return None if re.search(r"\$\{\w+\.\w+\}", out) else out
    sys.exit(f"local_resources: cannot resolve {value!r} locally")


def create_bucket(s3, name, props, resolve_value):
    region = s3.meta.region_name
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=name, **location)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    # The web app uploads straight to the bucket: its CORS rules, as the template sets them.
    rules = props.get("CorsConfiguration", {}).get("CorsRules", [])
    if rules:
        keys = {"AllowedOrigins": "AllowedOrigins", "AllowedMethods": "AllowedMethods", "AllowedHeaders": "AllowedHeaders",
                "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}
        value = lambda v: [r for r in map(resolve_value, v) if r is not None] if isinstance(v, list) else int(resolve_value(v))
        cors = [{keys[k]: value(v) for k, v in rule.items() if k in keys} for rule in rules]
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": cors})


def put_notifications(s3, bucket, config, arns):
    """The bucket's SNS notifications, with the template's event types and key filters."""
    topics = []
    for t in config.get("TopicConfigurations", []):
        entry = {"TopicArn": arns[t["Topic"]["Ref"]], "Events": [t["Event"]]}
        rules = t.get("Filter", {}).get("S3Key", {}).get("Rules")
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": rules}}
        topics.append(entry)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"TopicConfigurations": topics})


def create_table(ddb, name, props):
    args = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = [
            {k: v for k, v in gsi.items() if k in ("IndexName", "KeySchema", "Projection")}
            for gsi in props["GlobalSecondaryIndexes"]
        ]
    stream = props.get("StreamSpecification")
    if stream:
        args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    try:
        ddb.create_table(**args)
    except ddb.exceptions.ResourceInUseException:
        return
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )


def create_secret(sm, name, generate, resolve_value):
    """A generated secret: random hex of the template's `GenerateSecretString` length (64
    characters by default), put under its `GenerateStringKey` in its `SecretStringTemplate`
    (JSON) when it names one."""
    value = secrets.token_hex(int(generate.get("PasswordLength", 64)) // 2)
    if "GenerateStringKey" in generate:
        shape = json.loads(resolve_value(generate["SecretStringTemplate"]))
        value = json.dumps({**shape, generate["GenerateStringKey"]: value})
    try:
        sm.create_secret(Name=name, SecretString=value)
    except sm.exceptions.ResourceExistsException:
        pass


def create_queue(sqs, name, props, names):
    attrs = {}
    if "VisibilityTimeout" in props:
        attrs["VisibilityTimeout"] = str(props["VisibilityTimeout"])
    redrive = props.get("RedrivePolicy")
    if redrive:
        target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        dlq_url = sqs.get_queue_url(QueueName=names[target])["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(redrive["maxReceiveCount"])})
    sqs.create_queue(QueueName=name, Attributes=attrs)


def function_events(resources, kind):
    """(binary, event properties) for every event of type `kind` of every function."""
    for lid, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary", lid)
        for event in (res.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == kind:
                yield binary, event.get("Properties", {})


def http_routes(resources):
    """Every HttpApi event of every function: method, path, the binary that serves it, and
    whether the JWT authorizer guards it (`Auth: {Authorizer: NONE}` opts a route out)."""
    routes = []
    for binary, props in function_events(resources, "HttpApi"):
        authorizer = props.get("Auth", {}).get("Authorizer", "JwtAuthorizer")
        routes.append({
            "method": props["Method"].upper(),
            "path": props["Path"],
            "function": binary,
            "auth": "NONE" if authorizer == "NONE" else "JWT",
        })
    return routes


def stream_mappings(resources, names):
    """Every DynamoDB event of every function: the table (local name), the binary, the
    batching window and the filter patterns (any matches), for the event pump."""
    mappings = []
    for binary, props in function_events(resources, "DynamoDB"):
        filters = props.get("FilterCriteria", {}).get("Filters", [])
        mappings.append({
            "table": names[props["Stream"]["Fn::GetAtt"][0]],
            "function": binary,
            "window": props.get("MaximumBatchingWindowInSeconds", 0),
            "patterns": [json.loads(f["Pattern"]) for f in filters],
        })
    return mappings


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", default="template.yaml")
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", default="eu-central-1")
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--env-out", required=True, help="file to write the merged function environment to")
    ap.add_argument("--routes-out", help="file to write the HTTP API routes to (JSON), for the local gateway")
    ap.add_argument("--streams-out", help="file to write the DynamoDB stream mappings to (JSON), for the event pump")
    ap.add_argument("--param", action="append", default=[], help="NAME=VALUE template parameter override")
    ap.add_argument("--extra", action="append", default=[], help="NAME=VALUE added to the environment")
    args = ap.parse_args()

    template = cfn_yaml.load(args.template)
    # The pseudo parameter a function's environment may name (the reporter's price region).
    params = {"AWS::Region": args.region, **dict(p.split("=", 1) for p in args.param)}
    resources = template.get("Resources", {})
    names = {lid: local_name(args.prefix, lid) for lid in resources}

    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=args.region)
    clients = {svc: session.client(svc, endpoint_url=args.endpoint) for svc in ("s3", "dynamodb", "sqs", "sns", "secretsmanager")}

    # Dead-letter queues first, so redrive policies can point at them; topics before the
    # subscriptions and bucket notifications that name them.
    def rank(kv):
        res = kv[1]
        kind = res["Type"]
        return (kind == "AWS::SNS::Subscription", "RedrivePolicy" in (res.get("Properties") or {}))

    created = []
    arns = {}
    # What `!Ref` gives in a function's environment: the name, or a queue's URL (as in CloudFormation).
    refs = dict(names)
    # A CDN exists only deployed: locally nothing is cached, so a function gets no distribution
    # (FILES_DISTRIBUTION_ID empty: nothing to invalidate).
    refs.update({lid: "" for lid, res in resources.items() if res["Type"] == "AWS::CloudFront::Distribution"})
    try:
        for lid, res in sorted(resources.items(), key=rank):
            props = res.get("Properties", {}) or {}
            kind = res["Type"]
            if kind == "AWS::S3::Bucket":
                create_bucket(clients["s3"], names[lid], props, lambda v: resolve(v, template, refs, params))
            elif kind == "AWS::DynamoDB::Table":
                create_table(clients["dynamodb"], names[lid], props)
            elif kind == "AWS::SecretsManager::Secret" and "GenerateSecretString" in props:
                create_secret(clients["secretsmanager"], names[lid], props["GenerateSecretString"],
                              lambda v: resolve(v, template, refs, params))
            elif kind == "AWS::SQS::Queue":
                create_queue(clients["sqs"], names[lid], props, names)
                url = clients["sqs"].get_queue_url(QueueName=names[lid])["QueueUrl"]
                refs[lid] = url
                arns[lid] = clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            elif kind == "AWS::SNS::Topic":
                arns[lid] = clients["sns"].create_topic(Name=names[lid])["TopicArn"]
            elif kind == "AWS::SNS::Subscription" and props.get("Protocol") != "sqs":
                continue  # an email subscription (alerts): nothing to deliver locally
            elif kind == "AWS::SNS::Subscription":
                topic = props["TopicArn"]["Ref"]
                endpoint = props["Endpoint"]["Fn::GetAtt"][0]
                clients["sns"].subscribe(TopicArn=arns[topic], Protocol=props["Protocol"], Endpoint=arns[endpoint])
            else:
                continue
            created.append(f"{kind} {names[lid]}")
        for lid, res in resources.items():
            notifications = (res.get("Properties") or {}).get("NotificationConfiguration")
            if res["Type"] == "AWS::S3::Bucket" and notifications:
                put_notifications(clients["s3"], names[lid], notifications, arns)
    except botocore.exceptions.EndpointConnectionError as e:
        sys.exit(f"local_resources: {e}")

    env = {}
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for lid, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        variables = {**globals_env, **(res.get("Properties", {}).get("Environment", {}) or {}).get("Variables", {})}
        for k, v in variables.items():
            value = resolve(v, template, refs, params)
            if value is not None:  # exists only deployed: an --extra gives the local stand-in
                env[k] = value
    env.update(dict(e.split("=", 1) for e in args.extra))

    if args.routes_out:
        with open(args.routes_out, "w") as f:
            json.dump(http_routes(resources), f, indent=2)
    if args.streams_out:
        with open(args.streams_out, "w") as f:
            json.dump(stream_mappings(resources, names), f, indent=2)
    with open(args.env_out, "w") as f:
        for k, v in sorted(env.items()):
            # cargo lambda's env-file parser refuses an unquoted `=` (IMAGE_PRESETS has them).
            if any(c in v for c in "= #") and "'" not in v:
                v = f"'{v}'"
            f.write(f"{k}={v}\n")
    for line in created:
        print(line)


if __name__ == "__main__":
    main()
