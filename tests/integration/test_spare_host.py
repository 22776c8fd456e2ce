# SPDX-License-Identifier: MIT
"""The spare driver host (src/daemon/bookkeeping/host.c): odkd keeps one
odk-driver-host started in advance and hands it to the next instance, so a
plug does not wait for fork, exec and the dynamic linker."""
import os
import signal

from conftest import wait_until
from driver_selectors import ECHO


def host_children(pid):
    """Pids of odkd's children that run odk-driver-host."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        if ppid == pid and os.path.basename(exe) == "odk-driver-host":
            out.append(int(entry))
    return sorted(out)


def one_spare(odkd, besides=()):
    """The single host of odkd that no instance uses."""
    def spare():
        used = {i["pid"] for i in odkd.instances() if i.get("pid")} | set(besides)
        free = [p for p in host_children(odkd.proc.pid) if p not in used]
        return free if len(free) == 1 else None
    return wait_until(spare, what="exactly one spare driver host")[0]


def test_the_spare_host_becomes_the_next_driver_and_is_replaced(odkd):
    spare = one_spare(odkd)
    dev = odkd.plug({"model": "echo"})
    inst = odkd.running(provider=dev)[0]
    assert inst["pid"] == spare, "the instance did not get the host started in advance"
    new_spare = one_spare(odkd)
    assert new_spare != spare
    # The handed-out host serves calls like any other.
    svc = wait_until(lambda: odkd.service_node("EchoDriver"), what="the echo service")
    assert odkd.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]


def test_a_spare_that_dies_is_replaced_and_plugging_still_works(odkd):
    spare = one_spare(odkd)
    os.kill(spare, signal.SIGKILL)
    wait_until(lambda: spare not in host_children(odkd.proc.pid), what="the spare to be reaped")
    replacement = one_spare(odkd)
    assert replacement != spare
    assert "spare driver host (pid %d) was killed by signal 9" % spare in odkd.log_text()
    dev = odkd.plug({"model": "echo"})
    assert odkd.running(provider=dev)[0]["pid"] == replacement


def test_no_spare_host_starts_hosts_on_demand(make_odkd):
    d = make_odkd(extra_args=["--no-spare-host"])
    assert host_children(d.proc.pid) == []
    dev = d.plug({"model": "echo"})
    pid = d.running(provider=dev)[0]["pid"]
    assert host_children(d.proc.pid) == [pid]
