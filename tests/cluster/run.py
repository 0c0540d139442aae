"""Run the cluster tests (pytest), or skip them (exit 77) when nats-server is missing.

run.py [DIR]: the tests of DIR (default: this directory's), e.g. tests/wire with
CHATD_CLUSTER=3 for the protocol suite against a cluster.
NATS_SERVER: path of nats-server; CHATD: path of chatd (built with NATS).
"""

import os
import sys

server = os.environ.get("NATS_SERVER", "")
if not server or not os.access(server, os.X_OK):
    print("SKIP: nats-server not found (apt-get install nats-server); the cluster tests "
          "need one to start")
    sys.exit(77)
import pytest  # noqa: E402 - only once the skip is decided

here = os.path.dirname(os.path.abspath(__file__))
sys.exit(pytest.main(["-v", "-rs", "-p", "no:cacheprovider"] + (sys.argv[1:] or [here])))
