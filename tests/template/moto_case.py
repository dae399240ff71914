"""A test case whose class runs against its own moto server (in-process, a free port), with the
AWS environment pointing at it for the class's tests and restored afterwards."""

import logging
import os
import unittest

from moto.server import ThreadedMotoServer

REGION = "eu-central-1"


class MotoTestCase(unittest.TestCase):
    # Variables that would steer the script under test away from moto (a profile) or past
    # what the test gives it.
    CLEARED_ENV = ("AWS_PROFILE",)

    @classmethod
    def setUpClass(cls):
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        cls.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        cls.server.start()
        host, port = cls.server.get_host_and_port()
        cls.saved_env = dict(os.environ)
        os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION})
        for name in cls.CLEARED_ENV:
            os.environ.pop(name, None)

    @classmethod
    def tearDownClass(cls):
        os.environ.clear()
        os.environ.update(cls.saved_env)
        cls.server.stop()
