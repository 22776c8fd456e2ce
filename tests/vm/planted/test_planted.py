# SPDX-License-Identifier: MIT
"""Planted faults for tests/vm/test_harness.py, which proves with them
that the harness fails a run whose guest test fails and kills a guest that
hangs.  They run only when the harness passes ODK_VM_PLANTED=1 into the
guest, so a selection that happens to include this folder stays green."""
import os
import time

import pytest

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(os.environ.get("ODK_VM_PLANTED") != "1",
                                 reason="planted faults: only for tests/vm/test_harness.py")]

FAILURE_TEXT = "planted failure: 6 x 7 is not 41"


def test_fails():
    print("planted: the failing test runs")
    assert 6 * 7 == 41, FAILURE_TEXT


def test_hangs():
    # Straight to the console: pytest holds back a running test's output.
    with open("/dev/console", "w") as console:
        print("planted: the hanging test runs, and sleeps forever", file=console, flush=True)
    while True:
        time.sleep(3600)
