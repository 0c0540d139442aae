"""Fixtures of the durability suite: the wire suite's chatd runner (tests/wire/conftest.py),
loaded under another module name so both suites keep their own conftest."""

import importlib.util
import os
import sys

WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wire")
sys.path.insert(0, WIRE)

_spec = importlib.util.spec_from_file_location("wire_conftest", os.path.join(WIRE, "conftest.py"))
wire_conftest = importlib.util.module_from_spec(_spec)
sys.modules["wire_conftest"] = wire_conftest
_spec.loader.exec_module(wire_conftest)

pytest_configure = wire_conftest.pytest_configure
_time_limit = wire_conftest._time_limit
make_server = wire_conftest.make_server
server = wire_conftest.server
