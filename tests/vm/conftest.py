# SPDX-License-Identifier: MIT
"""The vm marker for tests under tests/vm (tests/integration/conftest.py
registers the same): a test marked vm runs only inside the guest machine,
where the harness sets ODK_IN_VM=1; on the host it is skipped."""
import os

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "vm(devices=[...]): runs only in the guest (make vm-test); "
        "devices are QEMU arguments the guest is booted with")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ODK_IN_VM") == "1":
        return
    skip = pytest.mark.skip(reason="runs only in the guest machine: make vm-test")
    for item in items:
        if item.get_closest_marker("vm"):
            item.add_marker(skip)
