# SPDX-License-Identifier: MIT
"""Helpers of the guest tests."""
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
