# SPDX-License-Identifier: MIT
"""Helpers of the guest tests."""
import json
import os
import select
import time
from pathlib import Path

# A hang guard, never the property under test (see docs/testing.md).
HANG_GUARD = 60.0


def wait_until(cond, what, timeout=HANG_GUARD):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


MONITOR_PORT = "org.odk.monitor"  # vm.MONITOR_PORT: the host relays it to QEMU's QMP
_qmp_id = 0  # QMP's "id" of the last command sent


def _monitor_node():
    for d in Path("/sys/class/virtio-ports").glob("vport*"):
        if read(d / "name") == MONITOR_PORT:
            return Path("/dev") / d.name
    return None


def qmp(execute, **arguments):
    """Runs one QMP command on the QEMU that runs this guest (e.g.
    qmp("device_del", id="kbd")) and returns its "return" value; raises
    RuntimeError with QEMU's error.  One caller at a time."""
    node = wait_until(_monitor_node, f"the {MONITOR_PORT} port (virtio_console)")
    fd = os.open(node, os.O_RDWR | os.O_NOCTTY)
    try:
        def ask(cmd):
            global _qmp_id
            _qmp_id += 1
            msg = {"execute": cmd, "id": _qmp_id}
            if cmd == execute and arguments:
                msg["arguments"] = arguments
            os.write(fd, json.dumps(msg).encode() + b"\n")
            buf = b""
            deadline = time.monotonic() + HANG_GUARD
            while True:
                # Replies come one JSON object a line, among events and the
                # greeting of a connection no one read yet.
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    try:
                        reply = json.loads(line)
                    except ValueError:
                        continue
                    if reply.get("id") == _qmp_id:
                        return reply
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no answer from QEMU's monitor to {cmd}")
                if select.select([fd], [], [], left)[0]:
                    buf += os.read(fd, 65536)
        # Leaves the capabilities negotiation once per connection; asked
        # again it is refused, which is fine.
        ask("qmp_capabilities")
        reply = ask(execute)
    finally:
        os.close(fd)
    if "error" in reply:
        raise RuntimeError(f"QEMU refused {execute}: {reply['error']}")
    return reply.get("return")
