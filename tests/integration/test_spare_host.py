# SPDX-License-Identifier: MIT
"""The spare driver hosts (src/daemon/bookkeeping/host.c): odkd keeps two
odk-driver-hosts started in advance and hands one to the next instance, so a
plug does not wait for fork, exec and the dynamic linker.  The spares are
forked by the zygote (src/host/zygote.h), a host that forks hosts as odkd's
children, without an exec."""
import os
import signal

from conftest import wait_until
from driver_selectors import ECHO


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def primed_for(args):
    """The bundle a primed host's command line names ("primed for ID"), or
    None (src/host/main.c, show_primed)."""
    return args[1][len("primed for "):] if len(args) > 1 and args[1].startswith("primed for ") \
        else None


def host_children(pid, zygote=False, primed=False):
    """Pids of odkd's children that run odk-driver-host: the hosts, or
    (zygote=True) the zygote, whose command line says --zygote; those
    primed for a bundle only with primed=True (then only they)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            exe = os.readlink(f"/proc/{entry}/exe")
            args = cmdline(entry)
        except OSError:
            continue
        if (int(fields[1]) == pid and fields[0] != "Z"
                and os.path.basename(exe) == "odk-driver-host"
                and ("--zygote" in args) == zygote
                and (primed_for(args) is not None) == primed):
            out.append(int(entry))
    return sorted(out)


def the_zygote(odkd):
    return wait_until(lambda: (lambda z: z[0] if len(z) == 1 else None)(
        host_children(odkd.proc.pid, zygote=True)), what="exactly one zygote")


def libc_at(pid):
    """Where libc's first mapping is in pid (a forked child has its parent's
    layout; an exec'd process gets its own under ASLR)."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if "/libc.so" in line or "/libc-" in line:
                return line.split("-", 1)[0]
    return None


SPARES = 2  # HOST_SPARES


def spares(odkd):
    """The hosts of odkd that no instance uses: exactly SPARES of them."""
    def free():
        used = {i["pid"] for i in odkd.instances() if i.get("pid")}
        f = [p for p in host_children(odkd.proc.pid) if p not in used]
        return f if len(f) == SPARES else None
    return wait_until(free, what=f"exactly {SPARES} spare driver hosts")


def test_the_spare_host_becomes_the_next_driver_and_is_replaced(odkd):
    before = spares(odkd)
    dev = odkd.plug({"model": "echo"})
    inst = odkd.running(provider=dev)[0]
    assert inst["pid"] in before, "the instance did not get a host started in advance"
    after = spares(odkd)
    # The other spare is still one, or was primed for echo (its next start).
    primed = host_children(odkd.proc.pid, primed=True)
    assert inst["pid"] not in after and set(before) - {inst["pid"]} <= set(after) | set(primed)
    assert set(after) - set(before), "no spare replaced the one handed out"
    # The handed-out host serves calls like any other.
    svc = wait_until(lambda: odkd.service_node("EchoDriver"), what="the echo service")
    assert odkd.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]


def test_a_spare_that_dies_is_replaced_and_plugging_still_works(odkd):
    spare = spares(odkd)[0]
    os.kill(spare, signal.SIGKILL)
    wait_until(lambda: spare not in host_children(odkd.proc.pid), what="the spare to be reaped")
    now = spares(odkd)
    assert spare not in now
    assert "spare driver host (pid %d) was killed by signal 9" % spare in odkd.log_text()
    dev = odkd.plug({"model": "echo"})
    assert odkd.running(provider=dev)[0]["pid"] in now


def test_no_spare_host_starts_hosts_on_demand(make_odkd):
    d = make_odkd(extra_args=["--no-spare-host"])
    assert host_children(d.proc.pid) == []
    assert host_children(d.proc.pid, zygote=True) == []
    dev = d.plug({"model": "echo"})
    pid = d.running(provider=dev)[0]["pid"]
    assert host_children(d.proc.pid) == [pid]


def aslr_on():
    with open("/proc/sys/kernel/randomize_va_space") as f:
        return f.read().strip() != "0"


def test_the_zygote_forks_the_spares_as_odkds_children(odkd):
    zygote = the_zygote(odkd)
    assert f"the driver host zygote (pid {zygote}) forks the spare hosts" in odkd.log_text()
    both = spares(odkd)
    # odkd's children (host_children reads the parent), with a host's
    # command line, and forked, not exec'd: the zygote's address layout.
    for spare in both:
        assert "--zygote" not in cmdline(spare)
        if aslr_on():
            assert libc_at(spare) == libc_at(zygote), "the spare was exec'd, not forked"
    dev = odkd.plug({"model": "echo"})
    spare = odkd.running(provider=dev)[0]["pid"]
    assert spare in both
    svc = wait_until(lambda: odkd.service_node("EchoDriver"), what="the echo service")
    assert odkd.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]
    # The sandbox is on in a forked host as in an exec'd one.
    with open(f"/proc/{spare}/status") as f:
        status = dict(l.split(":", 1) for l in f if ":" in l)
    assert status["Seccomp"].strip() == "2" and status["NoNewPrivs"].strip() == "1"
    assert status["CapEff"].strip() == "0000000000000000"
    assert the_zygote(odkd) == zygote


def o_path_fds(pid):
    """pid's descriptors opened with O_PATH, and what they name."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = int(next(l for l in f if l.startswith("flags:")).split()[1], 8)
            if flags & os.O_PATH:
                out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except (OSError, StopIteration):
            continue
    return sorted(out)


def test_the_zygote_opens_the_base_rulesets_paths_once_and_no_host_keeps_them(odkd):
    """The zygote holds the system folders and device files of every
    host's Landlock ruleset open (O_PATH; sandbox.c, open_base_paths); a
    forked spare builds its ruleset from them and closes them before it is
    handed a driver."""
    zygote = the_zygote(odkd)
    held = o_path_fds(zygote)
    assert "/usr" in held and "/dev/null" in held, held
    for spare in spares(odkd):
        wait_until(lambda: not o_path_fds(spare), what=f"spare {spare} to close the base paths")
    dev = odkd.plug({"model": "echo"})
    host = odkd.running(provider=dev)[0]["pid"]
    svc = wait_until(lambda: odkd.service_node("EchoDriver"), what="the echo service")
    assert odkd.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]
    assert o_path_fds(host) == []


def test_a_zygote_that_dies_is_replaced_and_plugging_still_works(odkd):
    zygote = the_zygote(odkd)
    os.kill(zygote, signal.SIGKILL)
    wait_until(lambda: zygote not in host_children(odkd.proc.pid, zygote=True),
               what="the zygote to be reaped")
    wait_until(lambda: f"zygote (pid {zygote}) was killed by signal 9; starting another"
               in odkd.log_text(), what="the zygote's death in the log")
    assert the_zygote(odkd) != zygote
    for _ in range(2):  # the spare it had forked, then one of the new zygote's
        dev = odkd.plug({"model": "echo"})
        assert odkd.running(provider=dev)[0]["pid"]
    assert odkd.proc.poll() is None


def test_no_zygote_execs_the_spares(make_odkd):
    d = make_odkd(extra_args=["--no-zygote"])
    assert host_children(d.proc.pid, zygote=True) == []
    both = spares(d)
    dev = d.plug({"model": "echo"})
    assert d.running(provider=dev)[0]["pid"] in both
    assert "driver host zygote" not in d.log_text()


def test_without_clone3_the_zygote_gives_way_to_execd_spares(make_odkd, monkeypatch):
    # The zygote's fork_for_odkd fails as on a kernel without clone3
    # (ODK_TEST_NO_CLONE3, inherited from odkd): odkd gives the zygote up and
    # execs the spares, and plugs go on working.
    import conftest
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_TEST_NO_CLONE3", "1")
    d = make_odkd()
    wait_until(lambda: "cannot fork a host: clone3(CLONE_PARENT): Function not implemented"
               in d.log_text(), what="the zygote's failure in the log")
    assert "spare hosts are started by exec" in d.log_text()
    wait_until(lambda: host_children(d.proc.pid, zygote=True) == [], what="the zygote to exit")
    both = spares(d)
    for spare in both:  # exec'd: the command line odkd gave, not a blanked one
        assert len(cmdline(spare)) > 1, cmdline(spare)
    for i in range(3):  # the two exec'd spares, then one exec'd after them
        dev = d.plug({"model": "echo"})
        pid = d.running(provider=dev)[0]["pid"]
        assert i == 2 or pid in both
        svc = wait_until(lambda: d.service_node("EchoDriver"), what="the echo service")
        assert d.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]
        d.ctl("sim", "unplug", dev)
        wait_until(lambda: d.service_node("EchoDriver") is None, what="the unplug")
    assert d.proc.poll() is None


def test_spares_prepare_below_odkds_priority_and_serve_at_it(make_odkd, monkeypatch, tmp_path):
    # A forked spare prepares at SCHED_IDLE (odkd runs SCHED_OTHER here) and
    # takes odkd's policy back once prepared or handed out (zygote.h): the
    # trace shows both steps, and every thread of a started host and of the
    # spares runs at odkd's policy.
    import conftest
    trace = tmp_path / "trace"
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_TRACE", str(trace))
    d = make_odkd()
    odkd_policy = os.sched_getscheduler(d.proc.pid)
    assert odkd_policy in (os.SCHED_OTHER, os.SCHED_BATCH)
    dev = d.plug({"model": "echo"})
    host = d.running(provider=dev)[0]["pid"]
    svc = wait_until(lambda: d.service_node("EchoDriver"), what="the echo service")
    assert d.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]
    both = spares(d)

    def raised():
        text = trace.read_text()
        return all(f" {p} host spare raised" in text for p in both)
    wait_until(raised, what="the spares to take odkd's priority back once prepared")
    for pid in [host] + both:
        for tid in os.listdir(f"/proc/{pid}/task"):
            assert os.sched_getscheduler(int(tid)) == odkd_policy, (pid, tid)


def test_under_a_real_time_odkd_an_exiting_host_goes_below_it(make_odkd, monkeypatch, tmp_path):
    # odkd under chrt (as the benchmarks run it): a host whose driver stopped
    # exits one real-time priority below odkd (host_lower_exiting), so its
    # teardown does not hold a CPU against the next plug.
    import conftest
    trace = tmp_path / "trace"
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_TRACE", str(trace))
    d = make_odkd()
    os.sched_setscheduler(d.proc.pid, os.SCHED_FIFO, os.sched_param(10))
    dev = d.plug({"model": "echo"})
    host = d.running(provider=dev)[0]["pid"]
    d.ctl("sim", "unplug", dev)
    wait_until(lambda: f" odkd lowered exiting {host}\n" in trace.read_text(),
               what="the exiting host to be lowered")
    os.sched_setscheduler(d.proc.pid, os.SCHED_OTHER, os.sched_param(0))
    dev = d.plug({"model": "echo"})
    svc = wait_until(lambda: d.service_node("EchoDriver"), what="the echo service")
    assert d.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]


def test_trace_steps_splits_a_plug_into_the_chain_and_the_concurrent_work(tmp_path):
    # tools/trace-steps: the steps of the host the start went to are the
    # chain, with deltas along it; the previous host's exit and a spare's
    # fork are concurrent work, named for what they are to the cycle.
    import subprocess
    import sys
    from pathlib import Path
    lines = []
    for c, (host, prev, spare) in enumerate([(101, 100, 102), (102, 101, 103), (103, 102, 104)]):
        t = 10000 * (c + 1)
        lines += [f"{t} 9 app plug", f"{t + 100} 1 odkd start sent to {host}",
                  f"{t + 200} {prev} host exits", f"{t + 300} {host} host woken",
                  f"{t + 500} {spare} host forked", f"{t + 700} 1 odkd reaped {prev}",
                  f"{t + 1000} {host} host start done 0", f"{t + 1400} 9 app answered",
                  f"{t + 1500} {host} host exits"]
    lines.append("40000 9 app plug")
    trace = tmp_path / "trace"
    trace.write_text("\n".join(lines) + "\n")
    r = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[2] / "tools" /
                                            "trace-steps"), str(trace)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    chain, side = r.stdout.split("concurrent work")
    rows = [l.split() for l in chain.splitlines()[1:]]
    assert [" ".join(x[2:]) for x in rows] == [
        "app plug", "odkd start sent to N", "host woken", "host start done N", "app answered"]
    # since the chain's step before: the previous host and the spare do not count
    assert [float(x[1]) for x in rows] == [0.0, 0.1, 0.2, 0.7, 0.4]
    assert "previous host exits" in side and "spare host forked" in side
    assert "odkd reaped N" in side and "this host exits" in side



def allowed_cpus(pid):
    """pid's CPU affinity, as a set of CPU numbers."""
    return os.sched_getaffinity(pid)


def test_odk_zygote_pin_runs_the_zygote_on_one_cpu_and_its_hosts_on_all_of_odkds(
        make_odkd, monkeypatch):
    """ODK_ZYGOTE_PIN=1 (for A/B runs) pins the zygote to one CPU, so that
    the TLB flushes of its forks and of its copy-on-write faults after
    them stay on that CPU (src/host/zygote.c, pin_to_one_cpu); every host
    it forks takes odkd's CPUs back, spare or driver, so drivers are not
    confined with it."""
    import conftest
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_ZYGOTE_PIN", "1")
    odkd = make_odkd()
    mine = allowed_cpus(odkd.proc.pid)
    if len(mine) < 2:
        import pytest
        pytest.skip("odkd may run on one CPU only: nothing to pin")
    zygote = the_zygote(odkd)
    assert len(allowed_cpus(zygote)) == 1 and allowed_cpus(zygote) <= mine
    for spare in spares(odkd):
        assert allowed_cpus(spare) == mine, spare
    dev = odkd.plug({"model": "echo"})
    host = odkd.running(provider=dev)[0]["pid"]
    svc = wait_until(lambda: odkd.service_node("EchoDriver"), what="the echo service")
    assert odkd.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]
    assert allowed_cpus(host) == mine
    for tid in os.listdir(f"/proc/{host}/task"):
        assert allowed_cpus(int(tid)) == mine, f"thread {tid} of the driver's host"


def test_by_default_the_zygote_runs_on_every_cpu_of_odkds(odkd):
    assert allowed_cpus(the_zygote(odkd)) == allowed_cpus(odkd.proc.pid)


def test_a_host_maps_libusb_libfuse_and_libjansson_only_when_it_needs_them(odkd):
    """libusb-1.0 (and libudev with it) and libfuse3 are loaded by the USB
    and serial families at their first use, libjansson by a driver's first
    JSON conversion (src/families/lazy_lib.h), so the zygote, its spares
    and an echo driver's host map none of them: fewer mappings for every
    fork to copy and every exit to unmap.  (The paths that load them:
    test_hid.py's JSON configurations here; the guest's
    test_serial_cuse.py and test_usb_libusb.py.)"""
    def libs(pid):
        with open(f"/proc/{pid}/maps") as f:
            return {os.path.basename(line.split()[-1]) for line in f if ".so" in line}
    lazy = ("libusb-1.0", "libudev", "libfuse3", "libjansson")
    dev = odkd.plug({"model": "echo"})
    host = odkd.running(provider=dev)[0]["pid"]
    svc = wait_until(lambda: odkd.service_node("EchoDriver"), what="the echo service")
    assert odkd.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]
    for pid in [the_zygote(odkd), host] + spares(odkd):
        mapped = libs(pid)
        assert any(m.startswith("libc.so") for m in mapped), mapped
        assert not [m for m in mapped if m.startswith(lazy)], (pid, sorted(mapped))
