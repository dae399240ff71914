"""Live updates in template.yaml (issue 20, part 1): the WebSocket API whose $connect only the
`live` function's authorizer opens, the connections table, and the notifier fed by both tables'
streams, pushing through @connections of that API's stage and nowhere else. The constants the
template must agree with are read from the Rust source (core::live, aws::live)."""

import json
import os
import re
import sys
import unittest

from cfn import RES, names, statements

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def rust_const(path, name):
    with open(os.path.join(ROOT, *path.split("/"))) as f:
        src = f.read()
    return re.search(rf'pub const {name}: [^=]+= ([^;]+);', src).group(1).strip().strip('"')


def actions_of(fn):
    out = {}
    for s in statements(RES[fn]["Properties"]):
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]):
            out.setdefault(a, []).append(s)
    return out


class WebSocketApi(unittest.TestCase):
    def test_only_the_authorizer_opens_a_socket(self):
        self.assertEqual(RES["LiveApi"]["Properties"]["ProtocolType"], "WEBSOCKET")
        routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in RES.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
        self.assertEqual(set(routes), {"$connect", "$disconnect", "$default"})
        connect = routes["$connect"]
        self.assertEqual((connect["AuthorizationType"], names(connect["AuthorizerId"])), ("CUSTOM", {"LiveAuthorizer"}))
        auth = RES["LiveAuthorizer"]["Properties"]
        self.assertEqual(auth["AuthorizerType"], "REQUEST")
        self.assertIn("LiveFunction.Arn", auth["AuthorizerUri"]["Fn::Sub"])
        # Every client offers the subprotocol (the token rides in it, or a ticket in the query).
        self.assertEqual(auth["IdentitySource"], ["route.request.header.Sec-WebSocket-Protocol"])
        self.assertEqual(rust_const("crates/core/src/live.rs", "SUBPROTOCOL"), "matbakh.live.v1")
        for r in routes.values():
            self.assertEqual(r["Target"]["Fn::Sub"], "integrations/${LiveIntegration}")

    def test_the_stage_is_throttled_and_logged(self):
        stage = RES["LiveStage"]["Properties"]
        self.assertTrue(stage["AutoDeploy"])
        self.assertIn("ThrottlingRateLimit", stage["DefaultRouteSettings"])
        self.assertEqual(names(stage["AccessLogSettings"]["DestinationArn"]), {"LiveAccessLogGroup"})
        self.assertNotIn("ticket", stage["AccessLogSettings"]["Format"], "a ticket never reaches a log")

    def test_the_tickets_route_is_behind_the_http_apis_jwt_authorizer(self):
        event = RES["LiveTicketsFunction"]["Properties"]["Events"]["IssueTicket"]["Properties"]
        self.assertEqual((event["Method"], event["Path"]), ("POST", "/v1/live/tickets"))
        self.assertNotIn("Auth", event, "the default authorizer (JWT) guards it")
        issue = actions_of("LiveTicketsFunction")["dynamodb:PutItem"][0]
        self.assertEqual(issue["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], ["TICKET#*"])


class Connections(unittest.TestCase):
    def test_sockets_and_tickets_expire_by_the_ttl_attribute_the_adapter_writes(self):
        ttl = RES["ConnectionsTable"]["Properties"]["TimeToLiveSpecification"]
        self.assertEqual((ttl["AttributeName"], ttl["Enabled"]), ("ttl", True))
        with open(os.path.join(ROOT, "crates", "aws", "src", "live.rs")) as f:
            src = f.read()
        self.assertIn('("ttl".to_owned()', src)
        self.assertGreater(int(rust_const("crates/core/src/live.rs", "CONNECTION_TTL_SECONDS").replace(" ", "").split("*")[0]), 0)

    def test_the_live_function_writes_only_the_connections_table(self):
        acts = actions_of("LiveFunction")
        dynamo = {a for a in acts if a.startswith("dynamodb:")}
        self.assertEqual(dynamo, {"dynamodb:PutItem", "dynamodb:DeleteItem"})
        for a in dynamo:
            for s in acts[a]:
                self.assertEqual(names(s["Resource"]), {"ConnectionsTable"})


class Notifier(unittest.TestCase):
    def test_both_tables_stream_old_and_new_images_to_it(self):
        for table in ("FilesTable", "MigrationTable"):
            self.assertEqual(RES[table]["Properties"]["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES")
        events = RES["NotifierFunction"]["Properties"]["Events"]
        streams = {names(e["Properties"]["Stream"]).pop(): e["Properties"] for e in events.values()}
        self.assertEqual(set(streams), {"FilesTable", "MigrationTable"})
        for table, e in streams.items():
            self.assertEqual(e["FunctionResponseTypes"], ["ReportBatchItemFailures"], table)
            self.assertTrue(e["BisectBatchOnFunctionError"], table)
            self.assertEqual(names(e["DestinationConfig"]["OnFailure"]["Destination"]), {"NotifierDeadLetterQueue"})
        files = [json.loads(f["Pattern"]) for f in streams["FilesTable"]["FilterCriteria"]["Filters"]]
        self.assertEqual(files[0], {"dynamodb": {"Keys": {"sk": {"S": ["FILE", "EXPORT"]}}}})
        # The usage item only when it has closedAt (an erase closed the account): the event
        # pump's matcher, which plays these filters locally, takes that and not the counters.
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        from event_pump import matches_any

        def usage(new):
            return {"dynamodb": {"Keys": {"pk": {"S": "USER#u-1"}, "sk": {"S": "USAGE"}}, "NewImage": new}}

        self.assertTrue(matches_any(files, usage({"closedAt": {"N": "1764936000"}, "charged": {"N": "0"}})))
        self.assertFalse(matches_any(files, usage({"charged": {"N": "10"}})))
        self.assertFalse(matches_any(files, {"dynamodb": {"Keys": {"pk": {"S": "FILE#x"}, "sk": {"S": "TAG#menu"}}}}))
        self.assertTrue(matches_any(files, {"dynamodb": {"Keys": {"pk": {"S": "FILE#x"}, "sk": {"S": "FILE"}}}}))
        runs = streams["MigrationTable"]
        self.assertEqual(json.loads(runs["FilterCriteria"]["Filters"][0]["Pattern"]), {"dynamodb": {"Keys": {"pk": {"S": ["RUNS"]}}}})
        # At most one progress message per run and window.
        interval_ms = int(rust_const("crates/core/src/live.rs", "PROGRESS_INTERVAL_MS").replace("_", ""))
        self.assertEqual(runs["MaximumBatchingWindowInSeconds"] * 1000, interval_ms)

    def test_it_pushes_only_through_its_own_api_stage(self):
        push = actions_of("NotifierFunction")["execute-api:ManageConnections"]
        self.assertEqual(len(push), 1)
        arns = [r["Fn::Sub"] for r in push[0]["Resource"]]
        # Posting to sockets, and closing an erased account's.
        self.assertEqual(
            arns,
            [f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{LiveApi}}/live/{m}/@connections/*" for m in ("POST", "DELETE")],
        )
        self.assertEqual(RES["LiveStage"]["Properties"]["StageName"], "live")
        env = RES["NotifierFunction"]["Properties"]["Environment"]["Variables"]
        self.assertTrue(env["LIVE_MANAGEMENT_URL"]["Fn::Sub"].endswith("/live"))
        # Webhooks are queued only where an endpoint is configured.
        self.assertEqual(env["WEBHOOK_QUEUE_URL"]["Fn::If"][0], "HasWebhooks")

    def test_records_given_up_wait_in_an_alarmed_dlq_and_lag_alarms(self):
        dlq = RES["NotifierDeadLetterAlarm"]["Properties"]
        self.assertEqual(names(dlq["Dimensions"][0]["Value"]), {"NotifierDeadLetterQueue"})
        age = RES["NotifierIteratorAgeAlarm"]["Properties"]
        self.assertEqual((age["MetricName"], names(age["Dimensions"][0]["Value"])), ("IteratorAge", {"NotifierFunction"}))


if __name__ == "__main__":
    unittest.main()
