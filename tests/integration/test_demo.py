# SPDX-License-Identifier: MIT
"""`make demo` (build/bin/odk-demo): it starts odkd with the demo devices
and a simulated USB serial adapter,
and when its terminal goes away (SIGHUP), or on SIGTERM or Ctrl-C, odkd
and every driver host it started are gone and its state folder removed."""
import os
import re
import signal
import subprocess

import pytest

from conftest import BIN, BUILD, CHILD_ENV, HANG_GUARD, check_odkd_exit, pid_alive, wait_until


def children_of(pid):
    """Every descendant pid of pid (from /proc)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        kids.setdefault(ppid, []).append(int(entry))
    out, pending = [], [pid]
    while pending:
        for k in kids.get(pending.pop(), []):
            out.append(k)
            pending.append(k)
    return out


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_demo_stops_everything(sig, tmp_path):
    out = tmp_path / "demo.out"
    with open(out, "w") as f:
        demo = subprocess.Popen([str(BIN / "odk-demo"), str(BUILD)], stdout=f,
                                stderr=subprocess.STDOUT, env=CHILD_ENV, start_new_session=True)
    odkd_log = None
    try:
        wait_until(lambda: "Press Ctrl-C" in out.read_text(), what="the demo")
        text = out.read_text()
        state = re.search(r"odkd runs in (\S+)", text).group(1)
        assert "org.odk.hello" in text and "org.odk.serial-loopback" in text
        # The simulated USB adapter, its driver and its port.
        assert "org.odk.usb-cdc-acm" in text and "tty.usbmodem-" in text
        # The demo removes its state folder, odkd's log with it: held open
        # here, the log stays readable to the end (sanitizer reports at exit).
        odkd_log = open(re.search(r"\(log: (\S+)\)", text).group(1), errors="replace")
        procs = children_of(demo.pid)
        assert len(procs) >= 5, "odkd, three driver hosts and a USB device model"
        # What a closing terminal or a kill does: the signal reaches the
        # whole process group of the job.
        os.killpg(demo.pid, sig)
        demo.wait(timeout=HANG_GUARD)
        wait_until(lambda: not any(pid_alive(p) for p in procs),
                   what="odkd and its drivers to exit")
        assert not os.path.exists(state)
        log = odkd_log.read()
        # odk-demo exits with odkd's own status; its last line, "stopped",
        # is printed only by a clean exit.
        assert log.rstrip().endswith("odkd: stopped"), log[-2000:]
        check_odkd_exit(demo.returncode, log, who="odkd under odk-demo")
    finally:
        if odkd_log:
            odkd_log.close()
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
