# SPDX-License-Identifier: MIT
"""Proofs of the guest harness itself, run on the host: a failure inside
the guest fails the run and shows the guest's output; a guest that hangs is
killed at its deadline and reported, with its output, as a failure.

Both guests boot at once (the hung one is idle once it hangs), so the
proofs cost about one boot of wall time."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUN = HERE / "run"

# Hang guard on the harness process itself (a whole boot under software
# emulation on a shared machine), never the property under test.
HANG_GUARD = 600

# The hang needs a deadline that leaves room for the boot, or the proof
# would be of a slow boot rather than of a hang: the test checks the hang
# was reached.  A command rather than a pytest test hangs, so the guest
# reaches it right after boot and the deadline can be short.
HANG_DEADLINE = float(os.environ.get("ODK_VM_HANG_DEADLINE", 60))

RUNS = {
    "fails": ["tests/vm/planted/test_planted.py::test_fails"],
    "hangs": ["--deadline", str(HANG_DEADLINE), "--command",
              "echo planted: the guest hangs now; while :; do sleep 3600; done"],
}


@pytest.fixture(scope="module")
def runs():
    procs = {name: subprocess.Popen([sys.executable, str(RUN), "--env", "ODK_VM_PLANTED=1", *args],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
             for name, args in RUNS.items()}
    done = {}
    try:
        for name, p in procs.items():
            out, _ = p.communicate(timeout=HANG_GUARD)
            done[name] = (p.returncode, out)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def test_a_failure_in_the_guest_fails_the_run_and_shows_the_guest_output(runs):
    rc, out = runs["fails"]
    assert rc == 1, out
    # The guest's own pytest output, streamed from its console ...
    assert "planted failure: 6 x 7 is not 41" in out, out
    assert "1 failed" in out, out
    # ... and the harness's verdict, with the guest's last lines again.
    assert "FAILED: the command exited with status 1" in out, out
    tail = out.split("the guest's last console lines", 1)
    assert len(tail) == 2 and "planted failure" in tail[1], out


def test_a_hung_guest_is_killed_at_its_deadline_and_reported(runs):
    rc, out = runs["hangs"]
    assert rc == 1, out
    assert "planted: the guest hangs now" in out, \
        f"the guest never reached the hang within {HANG_DEADLINE} s:\n{out}"
    assert f"FAILED: killed at its deadline of {HANG_DEADLINE:g} s" in out, out
    assert "command exited with status" not in out, out
    tail = out.split("the guest's last console lines", 1)
    assert len(tail) == 2 and "planted: the guest hangs now" in tail[1], out
