# SPDX-License-Identifier: MIT
"""pytest plugin the harness loads on the host (-p collect): writes, for
every selected test, its node id and the QEMU arguments its vm marker asks
for, as JSON, to $ODK_VM_COLLECT."""
import json
import os


def pytest_collection_finish(session):
    out = []
    for item in session.items:
        m = item.get_closest_marker("vm")
        devices = list(m.kwargs.get("devices", ())) if m else []
        if not all(isinstance(d, str) for d in devices):
            raise TypeError(f"{item.nodeid}: vm(devices=...) takes a list of strings")
        out.append({"nodeid": item.nodeid, "devices": devices})
    with open(os.environ["ODK_VM_COLLECT"], "w") as f:
        json.dump(out, f)
