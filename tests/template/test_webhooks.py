"""Signed webhooks in template.yaml (issue 20, part 2): with `WebhookUrl` set the stack has the
webhook queue (its DLQ after as many receives as the deliverer's attempts, alarmed), the
`webhooks` function reading the endpoint's generated secret from Secrets Manager, and nothing
else to reach. What it sends is the Rust side's to test (crates/webhooks, core::webhooks)."""

import os
import re
import unittest

from cfn import RES, T, names, statements

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def rust_const(name):
    """A constant of core::webhooks, as the Rust source says it."""
    with open(os.path.join(ROOT, "crates", "core", "src", "webhooks.rs")) as f:
        src = f.read()
    return int(re.search(rf"pub const {name}: \w+ = (\d+);", src).group(1))


class Webhooks(unittest.TestCase):
    def test_only_with_an_endpoint(self):
        self.assertEqual(T["Conditions"]["HasWebhooks"], {"Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookUrl"}, ""]}]})
        for name in ("WebhookEndpointSecret", "WebhookQueue", "WebhookDeadLetterQueue", "WebhookDeadLetterAlarm",
                     "WebhooksFunction", "WebhooksLogGroup", "WebhooksFailuresAlarm"):
            self.assertEqual(RES[name]["Condition"], "HasWebhooks", name)

    def test_a_delivery_gets_every_attempt_then_waits_in_the_alarmed_dlq(self):
        queue = RES["WebhookQueue"]["Properties"]
        self.assertEqual(queue["RedrivePolicy"]["maxReceiveCount"], rust_const("MAX_ATTEMPTS"))
        self.assertEqual(names(queue["RedrivePolicy"]["deadLetterTargetArn"]), {"WebhookDeadLetterQueue"})
        fn = RES["WebhooksFunction"]["Properties"]
        batch = fn["Events"]["Deliveries"]["Properties"]
        self.assertEqual(batch["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        # A batch of attempts that all time out still ends inside the function's timeout, and
        # the queue hides a message longer than the function may take.
        self.assertGreaterEqual(fn["Timeout"], batch["BatchSize"] * rust_const("ATTEMPT_TIMEOUT_SECONDS"))
        self.assertGreaterEqual(queue["VisibilityTimeout"], 6 * fn["Timeout"])
        alarm = RES["WebhookDeadLetterAlarm"]["Properties"]
        self.assertEqual(names(alarm["Dimensions"][0]["Value"]), {"WebhookDeadLetterQueue"})
        self.assertEqual(alarm["MetricName"], "ApproximateNumberOfMessagesVisible")

    def test_the_secret_is_generated_and_read_only_by_the_function(self):
        gen = RES["WebhookEndpointSecret"]["Properties"]["GenerateSecretString"]
        # 44 letters and digits: valid Base64 of 33 bytes, above core's MIN_SECRET_BYTES.
        self.assertEqual((gen["GenerateStringKey"], gen["PasswordLength"], gen["ExcludePunctuation"]), ("secret", 44, True))
        self.assertGreaterEqual(44 * 3 // 4, rust_const("MIN_SECRET_BYTES"))
        env = RES["WebhooksFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(names(env["WEBHOOK_SECRET_ID"]), {"WebhookEndpointSecret"}, "a reference, never the value")
        actions = {}
        for s in statements(RES["WebhooksFunction"]["Properties"]):
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]):
                actions.setdefault(a, set()).update(names(s["Resource"]))
        self.assertEqual(actions, {
            "secretsmanager:GetSecretValue": {"WebhookEndpointSecret"},
            "kms:Decrypt": {"FilesKey"},
            "sqs:ChangeMessageVisibility": {"WebhookQueue"},
        })
        # A slow endpoint takes at most this many of the account's concurrent executions.
        self.assertEqual(names(RES["WebhooksFunction"]["Properties"]["ReservedConcurrentExecutions"]), {"WebhookConcurrency"})

    def test_the_poller_takes_no_batch_the_function_could_not_run(self):
        # Review 27: a throttled batch goes back with its receive count (the attempt number)
        # raised; the poller's maximum is the reserved concurrency, and SQS's least is 2.
        batch = RES["WebhooksFunction"]["Properties"]["Events"]["Deliveries"]["Properties"]
        self.assertEqual(names(batch["ScalingConfig"]["MaximumConcurrency"]), {"WebhookConcurrency"})
        self.assertGreaterEqual(T["Parameters"]["WebhookConcurrency"]["MinValue"], 2)

    def test_a_backlog_is_alarmed_long_before_the_queue_would_drop_it(self):
        queue = RES["WebhookQueue"]["Properties"]
        alarm = RES["WebhookBacklogAlarm"]["Properties"]
        self.assertEqual(RES["WebhookBacklogAlarm"]["Condition"], "HasWebhooks")
        self.assertEqual((alarm["MetricName"], names(alarm["Dimensions"][0]["Value"])), ("ApproximateAgeOfOldestMessage", {"WebhookQueue"}))
        self.assertLessEqual(alarm["Threshold"] + alarm["Period"] * alarm["EvaluationPeriods"], queue["MessageRetentionPeriod"] / 4)


if __name__ == "__main__":
    unittest.main()
