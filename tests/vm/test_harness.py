# SPDX-License-Identifier: MIT
"""Proofs of the guest harness itself, run on the host: a failure inside
the guest fails the run and shows the guest's output; a guest that hangs is
killed at its deadline and reported, with its output, as a failure."""
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUN = HERE / "run"
PLANTED = "tests/vm/planted/test_planted.py"

# Hang guard on the harness process itself (a whole boot under software
# emulation on a shared machine), never the property under test.
HANG_GUARD = 600


def run(*args):
    r = subprocess.run([sys.executable, str(RUN), "--env", "ODK_VM_PLANTED=1", *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD)
    return r, r.stdout + r.stderr


def test_a_failure_in_the_guest_fails_the_run_and_shows_the_guest_output():
    r, out = run(f"{PLANTED}::test_fails")
    assert r.returncode == 1, out
    # The guest's own pytest output, streamed from its console ...
    assert "planted failure: 6 x 7 is not 41" in out, out
    assert "1 failed" in out, out
    # ... and the harness's verdict, with the guest's last lines again.
    assert "FAILED: the command exited with status 1" in out, out
    tail = out.split("the guest's last console lines", 1)
    assert len(tail) == 2 and "planted failure" in tail[1], out


def test_a_hung_guest_is_killed_at_its_deadline_and_reported():
    # A command rather than a pytest test hangs here: the guest reaches it
    # right after boot, so the deadline can be short.  It must still leave
    # room for the boot, or the proof would be of a slow boot rather than
    # of a hang: the test checks the hang was reached.
    deadline = float(os.environ.get("ODK_VM_HANG_DEADLINE", 45))
    r, out = run("--deadline", str(deadline), "--command",
                 "echo planted: the guest hangs now; while :; do sleep 3600; done")
    assert r.returncode == 1, out
    assert "planted: the guest hangs now" in out, \
        f"the guest never reached the hang within {deadline} s:\n{out}"
    assert f"FAILED: killed at its deadline of {deadline:g} s" in out, out
    assert "command exited with status" not in out, out
    tail = out.split("the guest's last console lines", 1)
    assert len(tail) == 2 and "planted: the guest hangs now" in tail[1], out
