"""What an operator watches (issue 21, task 11.3): CloudFront's additional metrics on every
distribution."""

import unittest

from cfn import RES, T, names


def of_type(kind):
    return {k: v for k, v in RES.items() if v["Type"] == kind}


DISTRIBUTIONS = of_type("AWS::CloudFront::Distribution")


class CdnMetrics(unittest.TestCase):
    def test_every_distribution_has_its_additional_metrics_unless_switched_off(self):
        subscribed = {}
        for name, sub in of_type("AWS::CloudFront::MonitoringSubscription").items():
            (dist,) = names(sub["Properties"]["DistributionId"])
            config = sub["Properties"]["MonitoringSubscription"]["RealtimeMetricsSubscriptionConfig"]
            # Switched by the resource's condition, never by its status (the template says why).
            self.assertEqual(config["RealtimeMetricsSubscriptionStatus"], "Enabled", name)
            subscribed[dist] = sub["Condition"]
        self.assertEqual(set(subscribed), set(DISTRIBUTIONS), "distributions without a MonitoringSubscription")
        self.assertEqual(T["Conditions"]["HasCdnMetrics"], {"Fn::Equals": [{"Ref": "CdnAdditionalMetrics"}, "Enabled"]})
        self.assertEqual(T["Parameters"]["CdnAdditionalMetrics"]["Default"], "Enabled")
        for dist, condition in subscribed.items():
            if "Condition" not in DISTRIBUTIONS[dist]:
                self.assertEqual(condition, "HasCdnMetrics", dist)
            else:
                # Only when the distribution exists, and the metrics are on.
                both = T["Conditions"][condition]["Fn::And"]
                self.assertCountEqual(both, [{"Condition": DISTRIBUTIONS[dist]["Condition"]}, {"Condition": "HasCdnMetrics"}])


if __name__ == "__main__":
    unittest.main()
