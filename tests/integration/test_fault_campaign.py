# SPDX-License-Identifier: MIT
"""The fault campaign's own checks (tests/stress/fault_campaign): a short
run passes, and a leak planted in it (ODK_CAMPAIGN_PLANT) is reported and
fails the run, so making the campaign faster cannot quietly stop it from
counting what it must."""
import json
import re
import shutil
import subprocess
import sys

from conftest import BUILD, CHILD_ENV, HANG_GUARD, ROOT

CAMPAIGN = ROOT / "tests" / "stress" / "fault_campaign"
LAST = re.compile(r"^faults injected=(\d+) survived=(\d+) cycles=(\d+) leaks=(\d+) hangs=(\d+) "
                  r"problems=(\d+) unfired=(\d+)$")


def campaign(cycles, seed, plant=""):
    env = dict(CHILD_ENV, ODK_CAMPAIGN_PLANT=plant)
    r = subprocess.run([sys.executable, str(CAMPAIGN), "--build", str(BUILD), "--cycles",
                        str(cycles), "--seed", str(seed)], capture_output=True, text=True,
                       env=env, timeout=4 * HANG_GUARD)
    kept = re.search(r"^state kept in (\S+) \(seed", r.stderr, re.M)
    if kept and "odk-fault-campaign-" in kept[1]:  # a failed run keeps its state: not ours to keep
        shutil.rmtree(kept[1], ignore_errors=True)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    m = LAST.match(last)
    assert m, f"no last line (exit {r.returncode}):\n{r.stdout}\n{r.stderr[-4000:]}"
    counts = dict(zip(("injected", "survived", "cycles", "leaks", "hangs", "problems", "unfired"),
                      map(int, m.groups())))
    return r, counts


def test_a_short_campaign_passes():
    r, c = campaign(8, 2026)
    assert r.returncode == 0, r.stderr[-4000:]
    assert c["cycles"] == 8 and c["survived"] == c["injected"]
    assert c["leaks"] == c["hangs"] == c["problems"] == c["unfired"] == 0
    # Every kind of device was plugged, the simulated USB bus's too, and
    # the CDC-ACM tty's blocked reads ended when it went.
    m = re.search(r"^plugs by kind: (\{.*\})$", r.stderr, re.M)
    assert m, r.stderr[-4000:]
    plugs = json.loads(m[1])
    for kind in ("echo", "faulty", "serial-loopback", "vendor-echo", "cdc-acm"):
        assert plugs.get(kind, 0) >= 1, plugs
    assert plugs["usb"] == plugs["vendor-echo"] + plugs["cdc-acm"]
    usb = json.loads(re.search(r"^usb calls and tty I/O: (\{.*\})$", r.stderr, re.M)[1])
    assert any(k.startswith("tty read ended: ") for k in usb), usb


def test_a_connection_left_open_is_reported_as_a_leak():
    """One control connection opened in cycle 1 and never closed: odkd holds
    one descriptor more than at its baseline, and so does the campaign."""
    r, c = campaign(3, 2026, plant="connection")
    assert r.returncode == 1
    assert c["leaks"] >= 2, r.stderr[-4000:]
    leaks = [x for x in r.stderr.splitlines() if x.startswith("LEAK: ")]
    assert any(x.startswith("LEAK: odkd has ") and "socket:[" in x for x in leaks), leaks
    assert any(x.startswith("LEAK: campaign has ") and "socket:[" in x for x in leaks), leaks
