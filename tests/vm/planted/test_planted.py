# SPDX-License-Identifier: MIT
"""A planted fault for tests/vm/test_harness.py, which proves with it that
the harness fails a run whose guest test fails.  It runs only when the
harness passes ODK_VM_PLANTED=1 into the guest, so a selection that
happens to include this folder stays green."""
import os

import pytest

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(os.environ.get("ODK_VM_PLANTED") != "1",
                                 reason="planted faults: only for tests/vm/test_harness.py")]

FAILURE_TEXT = "planted failure: 6 x 7 is not 41"


def test_fails():
    print("planted: the failing test runs")
    assert 6 * 7 == 41, FAILURE_TEXT

