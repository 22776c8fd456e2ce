# SPDX-License-Identifier: MIT
"""Drivers that misbehave: crashes, missed deadlines, hung power changes,
leaks, spinning and log floods.  The faulty driver (tests/drivers/faulty) does
each on request; these tests check what odkd does about it.

No test measures time (docs/contributing.md: never assert a timing).  What
odkd decided is read from what it says: the backoff delays it logs, the
deadlines it reports missed (its log, missed_deadline in power results),
the order of events in its log.  Timeouts are hang guards only."""
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time

import pytest

from conftest import (BUILD, CHILD_ENV, DRIVERS, HANG_GUARD, TEST_DRIVERS, pid_alive, sign_bundle,
                      wait_until)
from driver_selectors import ECHO, FAULTY
from libodk import Connection, OdkError, _lib

BUNDLE = "org.odk.faulty"
OPERATE, SET_FAULT, PING, POWER_STATE = (FAULTY.OPERATE, FAULTY.SET_FAULT, FAULTY.PING,
                                         FAULTY.POWER_STATE)
DEADLINE_MS = 1500  # OdkDeadlines in tests/drivers/faulty/odk.json, every operation
MEMORY_LIMIT_MB = 64  # OdkMemoryLimitMB
CRASH_LIMIT = 5  # crashes within 60 s that mark an instance failed
# schedule_restart (src/daemon/bookkeeping/instance.c): the first restart
# waits 100 ms, each next one twice as long, at most 5000 ms.
BACKOFF_FIRST_MS, BACKOFF_MAX_MS = 100, 5000
ECHO_DEVICE = {"model": "echo", "serial": "E-1"}
SIGSEGV_NAMES = ("SIGSEGV", "SEGV", "Segmentation fault")
SIGABRT_NAMES = ("SIGABRT", "ABRT", "Aborted")


def faulty(fault="none", **more):
    return {"model": "faulty", "fault": fault, **more}


# ---- helpers ----------------------------------------------------------------

def instance_of(d, dev):
    """The instance (any state) whose provider is dev, or None."""
    l = [i for i in d.instances() if i["provider"] == dev]
    return l[0] if l else None


def running_instance(d, dev):
    (inst,) = d.running(provider=dev)
    return inst


def restarted(d, dev, old_pid, min_restarts=1):
    """Waits for dev's instance to run again in a process other than old_pid."""
    def ok():
        i = instance_of(d, dev)
        return i if (i and i["state"] == "running" and i["pid"] not in (0, old_pid)
                     and i["restarts"] >= min_restarts) else None
    return wait_until(ok, what="the driver to be restarted")


def in_state(d, dev, state, timeout=HANG_GUARD):
    return wait_until(lambda: (lambda i: i if i and i["state"] == state else None)(
        instance_of(d, dev)), timeout=timeout, what=f"state {state}")


def bundle_log(d):
    return d.ctl("log", BUNDLE).stdout


def own_lines(d):
    """odkd's log without the '  | ' tails quoted after crash lines."""
    return "\n".join(l for l in d.log_text().splitlines() if "  | " not in l)


def crash_lines(d, bundle=BUNDLE):
    """(instance, pid, what) of every 'crashed:' line in odkd's log."""
    pat = re.compile(re.escape(bundle) + r"#(\d+) \(pid (\d+)\) crashed: ([^;\n]*)")
    return [(int(m[1]), int(m[2]), m[3]) for m in pat.finditer(own_lines(d))]


def deadline_lines(d, op, bundle=BUNDLE):
    """(instance, pid, ms) of every 'deadline missed' line for op."""
    pat = re.compile(r"deadline missed: " + re.escape(bundle) +
                     r"#(\d+) \(pid (\d+)\) operation " + op + r" took more than (\d+) ms")
    return [(int(m[1]), int(m[2]), int(m[3])) for m in pat.finditer(own_lines(d))]


def backoff_lines(d, bundle=BUNDLE):
    """(instance, delay ms, restart number) of every backoff odkd logged."""
    pat = re.compile(re.escape(bundle) + r"#(\d+) backs off (\d+) ms before restart (\d+)")
    return [(int(m[1]), int(m[2]), int(m[3])) for m in pat.finditer(own_lines(d))]


def expected_backoffs(restarts):
    """The delays schedule_restart promises for restarts 1..restarts."""
    return [min(BACKOFF_FIRST_MS << (r - 1), BACKOFF_MAX_MS) for r in range(1, restarts + 1)]


def crash_reports(d):
    reports = d.json("crashes")
    assert isinstance(reports, list)
    return reports


def read_report(path):
    with open(path, errors="replace") as f:
        return f.read()


def assert_signal(what, number, names):
    m = re.fullmatch(r"killed by signal (\d+) \(([^)]*)\)", what.strip())
    assert m, what
    assert int(m[1]) == number and m[2] in names, what


def assert_crash_logged_with_tail(d, inst, pid, tail_text):
    """odkd's log has the crash line of (inst, pid), then '  | ' lines of the
    host's last words, among them tail_text."""
    log = d.log_text().splitlines()
    at = [k for k, l in enumerate(log) if f"{BUNDLE}#{inst} (pid {pid}) crashed:" in l]
    assert at, "no crash line"
    tail = []
    for l in log[at[0] + 1:]:
        if "  | " not in l:
            break
        tail.append(l)
    assert tail, "the crash line is not followed by the host's last log lines"
    assert any(tail_text in l for l in tail), tail


def call_in_thread(d, dev, selector, scalars=(), struct=b""):
    """Makes a call from another thread; returns (thread, result dict)."""
    result = {}
    opened = threading.Event()

    def run():
        try:
            with Connection(d.state, dev) as c:
                opened.set()
                try:
                    result["out"] = c.call(selector, scalars, struct=struct, n_out=1)
                except OdkError as e:
                    result["error"] = e.name
        except OdkError as e:
            result["open_error"] = e.name
        finally:
            opened.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    opened.wait(HANG_GUARD)
    return t, result


def echo_answers(d, dev):
    """odkctl call to the echo device answers (the timeout is a hang guard)."""
    r = d.ctl("call", dev, ECHO.ADD, 20, 22)
    return r.stdout.split() == ["42"]


def answered_while(echo_conn, stuck):
    """Calls echo over echo_conn as long as stuck() holds (a hang guard ends
    it); returns how many answers came back with stuck() true both before
    the call and after its answer: requests odkd served while the other
    driver was stuck.  Order of events, not speed."""
    served, guard = 0, time.monotonic() + HANG_GUARD
    while time.monotonic() < guard:
        if not stuck():
            return served
        assert echo_conn.call(ECHO.ADD, [20, 22], n_out=1)[0] == [42]
        if stuck():
            served += 1
    raise AssertionError("the stuck driver was never ended (hang guard)")


def rss_kib(pid):
    """The process's resident set in KiB, 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(") ", 1)[1][0]


# A watcher of services, as an app would use it (odk_watch_services).
WATCH_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
_lib.odk_watch_services.argtypes = [ctypes.c_void_p, ctypes.c_void_p, WATCH_FN, ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_uint32)]
_lib.odk_client_dispatch.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.odk_value_from_json.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.c_char_p, ctypes.c_size_t]
_lib.odk_value_free.argtypes = [ctypes.c_void_p]
_lib.odk_dict_get_int.restype = ctypes.c_int64
_lib.odk_dict_get_int.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64]


class Watcher:
    def __init__(self, state_dir, matching):
        self.events = []  # (event, node id)
        self.client = ctypes.c_void_p()
        assert _lib.odk_client_open(str(state_dir).encode(), ctypes.byref(self.client)) == 0
        m = ctypes.c_void_p()
        assert _lib.odk_value_from_json(json.dumps(matching).encode(), ctypes.byref(m), None, 0) == 0

        def on_event(_ctx, event, node):
            self.events.append((event.decode(), _lib.odk_dict_get_int(node, b"id", 0)))
        self.fn = WATCH_FN(on_event)
        wid = ctypes.c_uint32()
        st = _lib.odk_watch_services(self.client, m, self.fn, None, ctypes.byref(wid))
        _lib.odk_value_free(m)
        assert st == 0

    def wait_for(self, event, timeout=HANG_GUARD):
        def seen():
            _lib.odk_client_dispatch(self.client, 50)
            return [n for e, n in self.events if e == event]
        return wait_until(seen, timeout=timeout, what=f"a '{event}' event")

    def close(self):
        _lib.odk_client_close(self.client)


# ---- no fault ---------------------------------------------------------------

def test_without_a_fault_everything_works(odkd):
    dev = odkd.plug(faulty())
    inst = running_instance(odkd, dev)
    assert inst["bundle"] == BUNDLE and inst["class"] == "FaultyDriver"
    with Connection(odkd.state, dev) as c:
        assert c.call(PING, [41], n_out=1)[0] == [42]
        assert c.call(OPERATE, n_out=1)[0] == [1]
        assert c.call(OPERATE, n_out=1)[0] == [2]
        assert c.call(POWER_STATE, n_out=1)[0] == [1]  # ODK_POWER_ON until told otherwise
        for bad in (b"no-such-fault", b"slow-", b"slow-abc", b""):
            with pytest.raises(OdkError) as e:
                c.call(SET_FAULT, struct=bad, n_out=0)
            assert e.value.name == "ODK_E_INVALID"
        c.call(SET_FAULT, struct=b"none", n_out=0)
        assert c.call(OPERATE, n_out=1)[0] == [3]
    assert "start: fault none" in bundle_log(odkd)
    odkd.ctl("sim", "unplug", dev)
    wait_until(lambda: not pid_alive(inst["pid"]), what="the driver to exit")
    assert crash_lines(odkd) == [] and crash_reports(odkd) == []
    assert "stop after 3 operations" in bundle_log(odkd)


# ---- crashes ----------------------------------------------------------------

def test_crash_on_call_fails_the_call_is_reported_with_a_backtrace_and_restarts(odkd):
    dev = odkd.plug(faulty("crash-on-call"))
    inst = running_instance(odkd, dev)
    with Connection(odkd.state, dev) as c:
        assert c.call(PING, [1], n_out=1)[0] == [2]
        with pytest.raises(OdkError) as e:
            c.call(OPERATE, n_out=1)
        assert e.value.name == "ODK_E_GONE"
    new = restarted(odkd, dev, inst["pid"])
    assert new["restarts"] == 1 and not pid_alive(inst["pid"])

    ((i, pid, what),) = crash_lines(odkd)
    assert (i, pid) == (inst["instance"], inst["pid"])
    assert_signal(what, signal.SIGSEGV, SIGSEGV_NAMES)
    assert_crash_logged_with_tail(odkd, i, pid, "dereferencing NULL")

    (report,) = crash_reports(odkd)
    assert report.startswith(str(odkd.state / "crashes"))
    text = read_report(report)
    assert "reason:" in text and "signal 11" in text
    assert "backtrace:" in text
    # Symbolised: the driver's faulting function is named in the backtrace.
    backtrace = text.split("backtrace:", 1)[1]
    assert "faulty_null_deref" in backtrace
    assert "last log lines:" in text and "dereferencing NULL" in text

    # The new instance serves calls.
    with Connection(odkd.state, dev) as c:
        assert c.call(PING, [7], n_out=1)[0] == [8]


def test_symbolising_a_crash_does_not_hold_odkd_up(make_odkd, monkeypatch, tmp_path):
    """addr2line runs off odkd's loop: while it works on a crash's frames
    (here an addr2line that waits for the test's word), odkd answers
    requests and another driver serves calls; `odkctl crashes` answers once
    the report is written, symbolised.  (odkd once waited for addr2line in
    its loop: 0.1-0.5 s a crash, seconds at load, everyone waiting.)"""
    bin_dir, started, release = tmp_path / "bin", tmp_path / "a2l-started", tmp_path / "a2l-go"
    bin_dir.mkdir()
    real = shutil.which("addr2line")
    (bin_dir / "addr2line").write_text(
        f"#!/bin/sh\ntouch {started}\nn=0\n"
        f"while [ ! -e {release} ] && [ $n -lt {int(HANG_GUARD * 10)} ]; do sleep 0.1; "
        f"n=$((n+1)); done\nexec {real} \"$@\"\n")
    (bin_dir / "addr2line").chmod(0o755)
    monkeypatch.setitem(CHILD_ENV, "PATH", f"{bin_dir}:{CHILD_ENV.get('PATH', os.environ['PATH'])}")
    odkd = make_odkd()
    echo = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=echo)
    dev = odkd.plug(faulty("crash-on-call"))
    inst = running_instance(odkd, dev)
    try:
        t, result = call_in_thread(odkd, dev, OPERATE)
        t.join(HANG_GUARD)
        assert result.get("error") == "ODK_E_GONE", result
        wait_until(started.exists, what="odkd to run addr2line on the crash's frames")
        # addr2line waits: odkd answers, and echo serves calls.
        listed = {}
        lister = threading.Thread(target=lambda: listed.update(l=odkd.json("list")), daemon=True)
        lister.start()
        lister.join(HANG_GUARD / 4)  # a hang guard: odkd answers at once, or not until the word
        assert not lister.is_alive() and not release.exists(), "odkd waited for addr2line"
        assert {i["bundle"] for i in listed["l"]} == {BUNDLE, "org.odk.echo"}
        assert echo_answers(odkd, echo)
        crash_line = crash_lines(odkd)
        assert [(i, p) for i, p, _ in crash_line] == [(inst["instance"], inst["pid"])]
    finally:
        release.touch()
    # `odkctl crashes` lists the report once it is written: symbolised.
    (report,) = crash_reports(odkd)
    text = read_report(report)
    assert "faulty_null_deref" in text.split("backtrace:", 1)[1]
    assert re.search(r"\(\S+ at \S+:\d+\)", text), text  # a frame addr2line named
    restarted(odkd, dev, inst["pid"])


def test_abort_on_call_is_reported_as_sigabrt(odkd):
    dev = odkd.plug(faulty("abort-on-call"))
    inst = running_instance(odkd, dev)
    with Connection(odkd.state, dev) as c:
        with pytest.raises(OdkError) as e:
            c.call(OPERATE, n_out=1)
        assert e.value.name == "ODK_E_GONE"
    restarted(odkd, dev, inst["pid"])
    ((_, pid, what),) = crash_lines(odkd)
    assert pid == inst["pid"]
    assert_signal(what, signal.SIGABRT, SIGABRT_NAMES)
    (report,) = crash_reports(odkd)
    text = read_report(report)
    assert "backtrace:" in text and "faulty_abort" in text.split("backtrace:", 1)[1]


def test_fault_set_at_run_time_applies_to_the_next_call(odkd):
    dev = odkd.plug(faulty())
    inst = running_instance(odkd, dev)
    with Connection(odkd.state, dev) as c:
        assert c.call(OPERATE, n_out=1)[0] == [1]
        c.call(SET_FAULT, struct=b"crash-on-call", n_out=0)
        with pytest.raises(OdkError) as e:
            c.call(OPERATE, n_out=1)
        assert e.value.name == "ODK_E_GONE"
    new = restarted(odkd, dev, inst["pid"])
    # The fault was the old process's: the new one starts from the node's "none".
    with Connection(odkd.state, dev) as c:
        assert c.call(OPERATE, n_out=1)[0] == [1]
    assert instance_of(odkd, dev)["pid"] == new["pid"]


def test_watchers_see_a_crashed_service_terminate_and_come_back(odkd):
    dev = odkd.plug(faulty("crash-on-call"))
    running_instance(odkd, dev)
    w = Watcher(odkd.state, {"IOProviderClass": "FaultyDriver"})
    try:
        (first,) = w.wait_for("registered")
        t, result = call_in_thread(odkd, dev, OPERATE)
        t.join(HANG_GUARD)
        assert result.get("error") == "ODK_E_GONE", result
        assert first in w.wait_for("terminated")
        # The restarted driver's new service node is registered.
        wait_until(lambda: [n for n in w.wait_for("registered") if n != first],
                   what="the restarted service")
    finally:
        w.close()


def test_exit_in_start_is_reported_with_its_status(odkd):
    dev = odkd.plug(faulty("exit-in-start"))
    in_state(odkd, dev, "failed")
    lines = crash_lines(odkd)
    assert len(lines) == CRASH_LIMIT
    assert all(what.strip() == "exited with status 3" for _, _, what in lines), lines
    assert len({pid for _, pid, _ in lines}) == CRASH_LIMIT  # a new process each time
    text = read_report(crash_reports(odkd)[0])
    assert "reason:" in text and "exited with status 3" in text
    assert "last log lines:" in text and "exiting with status 3" in text


def test_every_crash_gets_its_own_report(odkd):
    # Crashes within one second must not overwrite each other's report.
    dev = odkd.plug(faulty("crash-in-start"))
    in_state(odkd, dev, "failed")
    assert len(crash_lines(odkd)) == CRASH_LIMIT
    reports = crash_reports(odkd)
    assert len(reports) == CRASH_LIMIT, reports
    pids = {pid for _, pid, _ in crash_lines(odkd)}
    assert {int(re.search(r"^pid: (\d+)$", read_report(r), re.M)[1]) for r in reports} == pids


def test_crash_in_start_backs_off_then_fails_and_stays_down(odkd):
    dev = odkd.plug(faulty("crash-in-start"))
    failed = in_state(odkd, dev, "failed")
    assert failed["pid"] == 0 and failed["restarts"] >= CRASH_LIMIT - 1
    lines = crash_lines(odkd)
    assert len(lines) == CRASH_LIMIT
    for _, _, what in lines:
        assert_signal(what, signal.SIGSEGV, SIGSEGV_NAMES)
    inst = failed["instance"]
    # The backoff is what odkd decided, as it logged it: 100, 200, 400,
    # 800 ms before restarts 1 to 4, and no fifth restart.
    assert backoff_lines(odkd) == [(inst, ms, r) for r, ms in
                                   enumerate(expected_backoffs(CRASH_LIMIT - 1), 1)]
    restarts = [int(m) for m in re.findall(re.escape(BUNDLE) + r"#\d+ \(restart (\d+)\)",
                                          odkd.log_text())]
    assert restarts == list(range(1, CRASH_LIMIT))
    # Failed means it stays down: the last crash marked it failed and
    # scheduled nothing (no backoff line after it), so nothing restarts it.
    log = own_lines(odkd)
    at = log.index(f"{BUNDLE}#{inst} crashed {CRASH_LIMIT} times within")
    assert "backs off" not in log[at:] and "restarting" not in log[at:]
    still = instance_of(odkd, dev)
    assert still["state"] == "failed" and still["pid"] == 0
    assert "start: fault crash-in-start" in bundle_log(odkd)

    # `odkctl restart` tries again (and, the fault being the node's, it crashes again).
    odkd.ctl("restart", BUNDLE)
    wait_until(lambda: len(crash_lines(odkd)) > CRASH_LIMIT, what="a new attempt")
    again = in_state(odkd, dev, "failed")
    # A fresh instance, so a fresh backoff: the same sequence again.
    assert again["instance"] != inst
    assert [b for b in backoff_lines(odkd) if b[0] == again["instance"]] == \
        [(again["instance"], ms, r) for r, ms in enumerate(expected_backoffs(CRASH_LIMIT - 1), 1)]


@pytest.mark.parametrize("first_ms", [0, 7])
def test_restart_backoff_option_sets_the_first_delay(make_odkd, first_ms):
    """odkd --restart-backoff MS: the same doubling and crash limit, from MS
    (the fault campaign and bench/restart_latency run with it)."""
    d = make_odkd(extra_args=["--restart-backoff", str(first_ms)])
    dev = d.plug(faulty("crash-in-start"))
    failed = in_state(d, dev, "failed")
    assert backoff_lines(d) == [(failed["instance"], first_ms << (r - 1), r)
                                for r in range(1, CRASH_LIMIT)]
    assert len(crash_lines(d)) == CRASH_LIMIT


@pytest.mark.parametrize("bad", ["-1", "x", "60001", ""])
def test_restart_backoff_option_refuses_what_is_not_milliseconds(tmp_path, bad):
    r = subprocess.run([str(BUILD / "bin" / "odkd"), "--state-dir", str(tmp_path),
                        "--restart-backoff", bad], capture_output=True, text=True,
                       timeout=HANG_GUARD, env=CHILD_ENV)
    assert r.returncode == 2
    assert "--restart-backoff" in r.stderr


def test_restart_brings_a_failed_driver_back(odkd):
    # crash-on-call starts fine, so after `odkctl restart` the driver runs.
    dev = odkd.plug(faulty("crash-on-call"))
    pids = []
    for n in range(CRASH_LIMIT):
        inst = running_instance(odkd, dev) if n == 0 else restarted(odkd, dev, pids[-1], n)
        pids.append(inst["pid"])
        with Connection(odkd.state, dev) as c:
            with pytest.raises(OdkError) as e:
                c.call(OPERATE, n_out=1)
            assert e.value.name == "ODK_E_GONE"
    failed = in_state(odkd, dev, "failed")
    assert failed["pid"] == 0
    assert len(crash_lines(odkd)) == CRASH_LIMIT
    with pytest.raises(OdkError) as e:
        Connection(odkd.state, dev)
    assert e.value.name in ("ODK_E_STATE", "ODK_E_NOT_FOUND")

    odkd.ctl("restart", BUNDLE)
    back = wait_until(lambda: (lambda i: i if i and i["state"] == "running" else None)(
        instance_of(odkd, dev)), what="the restarted driver")
    assert back["pid"] not in pids and pid_alive(back["pid"])
    with Connection(odkd.state, dev) as c:
        assert c.call(PING, [99], n_out=1)[0] == [100]


def test_a_crash_does_not_disturb_other_drivers(odkd):
    echo = odkd.plug(ECHO_DEVICE)
    (e,) = odkd.running(provider=echo)
    dev = odkd.plug(faulty("crash-on-call"))
    inst = running_instance(odkd, dev)
    with Connection(odkd.state, dev) as c:
        with pytest.raises(OdkError):
            c.call(OPERATE, n_out=1)
    restarted(odkd, dev, inst["pid"])
    assert echo_answers(odkd, echo)
    after = instance_of(odkd, echo)
    assert after["pid"] == e["pid"] and after["restarts"] == 0
    assert crash_lines(odkd, "org.odk.echo") == []


# ---- deadlines --------------------------------------------------------------

def test_a_host_stopped_at_a_breakpoint_in_a_call_is_not_cut_off(odkd):
    """Story 9: a developer stops the driver in a debugger mid-call (every
    thread stops, as SIGSTOP does) for longer than the call deadline; when
    it runs again the call finishes, and the watchdog gives it its deadline
    again instead of aborting the host."""
    dev = odkd.plug(faulty("slow-1000"))  # selector OPERATE sleeps 1 s, under the 1.5 s deadline
    inst = running_instance(odkd, dev)
    time.sleep(0.5)  # the watchdog's ticks run: it has a heartbeat out before the call
    t, result = call_in_thread(odkd, dev, OPERATE)
    # Stopped after a tick posted a heartbeat the busy queue has not taken
    # (ticks every deadline / 4 = 375 ms): without the gap rule, the first
    # tick after SIGCONT finds it 4.5 s late and aborts the host (unless
    # the queue takes it first: the call's sleep is over by then).
    time.sleep(0.6)
    os.kill(inst["pid"], signal.SIGSTOP)
    try:
        time.sleep(3 * DEADLINE_MS / 1000)
    finally:
        os.kill(inst["pid"], signal.SIGCONT)
    t.join(HANG_GUARD)
    assert "out" in result, result
    assert deadline_lines(odkd, "call") == []
    assert running_instance(odkd, dev)["pid"] == inst["pid"]
    wait_until(lambda: "was stopped for" in bundle_log(odkd), what="the watchdog's line")


def test_a_host_stopped_while_starting_gets_its_start_deadline_again(odkd):
    """odkd's own deadlines (start, stop, power) wait while the host is
    stopped (/proc/PID/stat: T or t), then count again from the full
    deadline."""
    dev = odkd.plug(faulty("slow-1000"))  # its start takes 1 s
    inst = wait_until(lambda: (lambda i: i if i and i["state"] == "starting" and i["pid"] else
                               None)(instance_of(odkd, dev)), what="the start under way")
    os.kill(inst["pid"], signal.SIGSTOP)
    try:
        wait_until(lambda: "deadline passed while the host is stopped" in own_lines(odkd),
                   what="odkd to see the deadline pass while the host is stopped")
    finally:
        os.kill(inst["pid"], signal.SIGCONT)
    after = running_instance(odkd, dev)
    assert after["pid"] == inst["pid"] and after["restarts"] == 0
    assert deadline_lines(odkd, "start") == []


def test_hang_in_start_misses_the_start_deadline_while_odkd_serves_others(odkd):
    echo = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=echo)
    with Connection(odkd.state, echo) as e:
        dev = odkd.plug(faulty("hang-in-start"))
        first = wait_until(lambda: (lambda i: i if i and i["pid"] else None)(
            instance_of(odkd, dev)), what="the faulty host")
        # While it hangs (alive, its deadline not yet missed), odkd answers others.
        served = answered_while(e, lambda: pid_alive(first["pid"]) and not any(
            pid == first["pid"] for _, pid, _ in deadline_lines(odkd, "start")))
        assert served > 0, "no echo call was answered while the faulty host hung in start"
    # The host is killed and restarted: a new process tries (and hangs) again.
    lines = wait_until(lambda: (lambda l: l if len({p for _, p, _ in l}) >= 2 else None)(
        deadline_lines(odkd, "start")), what="a restarted attempt")
    assert first["pid"] in {p for _, p, _ in lines}
    assert all(i == first["instance"] and ms == DEADLINE_MS for i, _, ms in lines), lines
    wait_until(lambda: not pid_alive(first["pid"]), what="the hung host to be killed")
    assert "hanging in start" in bundle_log(odkd)
    assert echo_answers(odkd, echo)


def test_hang_in_stop_unplug_still_completes(odkd):
    dev = odkd.plug(faulty("hang-in-stop"))
    inst = running_instance(odkd, dev)
    odkd.ctl("sim", "unplug", dev)  # it returns: the hang did not hold odkd up
    wait_until(lambda: not pid_alive(inst["pid"]), what="the hung host to be killed")
    ((i, pid, ms),) = deadline_lines(odkd, "stop")
    assert (i, pid, ms) == (inst["instance"], inst["pid"], DEADLINE_MS)
    assert instance_of(odkd, dev) is None
    assert all(n["id"] != dev for n in odkd.json("tree"))
    assert "hanging in stop" in bundle_log(odkd)
    # Unplugged: the instance is gone, and odkd scheduled no restart for it.
    assert backoff_lines(odkd) == [] and "restarting" not in own_lines(odkd)
    assert odkd.instances() == []


@pytest.mark.parametrize("fault", ["hang-on-call", "spin"])
def test_stuck_call_is_ended_by_the_watchdog(odkd, fault):
    echo = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=echo)
    dev = odkd.plug(faulty(fault))
    inst = running_instance(odkd, dev)
    with Connection(odkd.state, echo) as e:
        t, result = call_in_thread(odkd, dev, OPERATE)
        # odkd is not held up by a stuck driver: it answers echo while the
        # call is outstanding and its deadline not yet missed.
        served = answered_while(e, lambda: t.is_alive() and not deadline_lines(odkd, "call"))
    t.join(HANG_GUARD)
    assert not t.is_alive()
    assert served > 0, "no echo call was answered while the faulty call was stuck"
    assert result.get("error") == "ODK_E_GONE", result
    # The host's line reaches odkd's log through its log pipe, which odkd
    # may read after the app already saw the host go.
    ((i, pid, ms),) = wait_until(lambda: deadline_lines(odkd, "call"), what="the deadline line")
    assert (i, pid, ms) == (inst["instance"], inst["pid"], DEADLINE_MS)
    # The watchdog aborts the host: a crash like any other, then a restart.
    new = restarted(odkd, dev, inst["pid"])
    ((_, cpid, what),) = crash_lines(odkd)
    assert cpid == inst["pid"]
    assert_signal(what, signal.SIGABRT, SIGABRT_NAMES)
    assert len(crash_reports(odkd)) == 1
    with Connection(odkd.state, dev) as c:
        assert c.call(PING, [1], n_out=1)[0] == [2]
    assert pid_alive(new["pid"])


def test_a_call_stuck_at_unplug_is_ended_by_the_call_deadline(make_odkd, tmp_path):
    """The stop request queues behind a call that is already stuck: the
    stop has not begun, so the call deadline still ends the host, not the
    stop deadline (the watchdog stood aside from the stop request on, and a
    spinning call burnt a CPU until odkd killed the host).  Order of
    events, not speed: which deadline odkd and the host say was missed."""
    short, model = clock_bundle(tmp_path / "more" / "short", "org.odk.faulty-short-call",
                                "faulty-short-call",
                                OdkDeadlines={"start": 1500, "stop": 6000, "power": 1500,
                                              "call": 500})
    d = make_odkd(drivers=(DRIVERS, TEST_DRIVERS, tmp_path / "more"))
    dev = d.plug({"model": model, "fault": "spin"})
    inst = running_instance(d, dev)
    t, result = call_in_thread(d, dev, OPERATE)
    wait_until(lambda: "spinning" in d.ctl("log", short).stdout, what="the driver to spin")
    d.ctl("sim", "unplug", dev)  # returns once the host is gone
    t.join(HANG_GUARD)
    assert result.get("error") == "ODK_E_GONE", result
    assert deadline_lines(d, "stop", short) == [], own_lines(d)
    assert deadline_lines(d, "call", short) == [(inst["instance"], inst["pid"], 500)], own_lines(d)
    ((_, cpid, what),) = crash_lines(d, short)
    assert cpid == inst["pid"]
    assert_signal(what, signal.SIGABRT, SIGABRT_NAMES)
    assert d.instances() == []


def test_slow_driver_works_without_missing_deadlines(odkd):
    # slow-200: start, calls, power changes and stop each sleep 200 ms, well
    # inside the 1500 ms deadlines.  Slow but in time: no deadline is missed.
    dev = odkd.plug(faulty("slow-200"))
    inst = running_instance(odkd, dev)
    with Connection(odkd.state, dev) as c:
        for n in range(1, 4):
            assert c.call(OPERATE, n_out=1)[0] == [n]
        assert c.call(PING, [5], n_out=1)[0] == [6]
    svc = [n for n in odkd.json("tree") if n.get("parent") == dev and n["class"] == "FaultyDriver"]
    assert svc and svc[0]["properties"]["FaultyFault"] == "slow-200"
    rows = odkd.json("power", "sleep")
    (row,) = [r for r in rows if r["bundle"] == BUNDLE]
    assert row["missed_deadline"] is False
    odkd.json("power", "wake")
    with Connection(odkd.state, dev) as c:
        assert c.call(POWER_STATE, n_out=1)[0] == [1]
    odkd.ctl("sim", "unplug", dev)
    wait_until(lambda: not pid_alive(inst["pid"]), what="the driver to exit")
    assert "start: fault slow-200" in bundle_log(odkd)
    assert "deadline missed" not in odkd.log_text()
    assert crash_lines(odkd) == [] and crash_reports(odkd) == []


# ---- power ------------------------------------------------------------------

def power_row_ok(row):
    return (set(row) >= {"bundle", "instance", "state", "status", "elapsed_ms", "missed_deadline"}
            and row["missed_deadline"] is False)


def test_power_sleep_and_wake_reach_the_driver(odkd):
    echo = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=echo)
    dev = odkd.plug(faulty())
    inst = running_instance(odkd, dev)
    text = odkd.ctl("power", "sleep").stdout.strip().splitlines()
    assert len(text) == 2  # one line per driver instance
    assert any(BUNDLE in l for l in text) and any("org.odk.echo" in l for l in text)
    with Connection(odkd.state, dev) as c:
        assert c.call(POWER_STATE, n_out=1)[0] == [0]  # ODK_POWER_OFF
    rows = odkd.json("power", "wake")
    assert len(rows) == 2 and all(power_row_ok(r) for r in rows), rows
    (row,) = [r for r in rows if r["bundle"] == BUNDLE]
    assert row["instance"] == inst["instance"]
    with Connection(odkd.state, dev) as c:
        assert c.call(POWER_STATE, n_out=1)[0] == [1]  # ODK_POWER_ON
    log = bundle_log(odkd)
    assert log.index("power state 0 (off)") < log.index("power state 1 (on)")
    after = instance_of(odkd, dev)
    assert after["pid"] == inst["pid"] and after["restarts"] == 0


def test_hang_in_power_is_killed_and_the_transition_goes_on(odkd):
    echo = odkd.plug(ECHO_DEVICE)
    (e,) = odkd.running(provider=echo)
    dev = odkd.plug(faulty("hang-in-power"))
    inst = running_instance(odkd, dev)
    rows = odkd.json("power", "sleep")  # it returns: the hang did not hold the transition
    (hung,) = [r for r in rows if r["bundle"] == BUNDLE]
    (fine,) = [r for r in rows if r["bundle"] == "org.odk.echo"]
    assert hung["missed_deadline"] is True and hung["instance"] == inst["instance"]
    assert fine["missed_deadline"] is False
    ((i, pid, ms),) = deadline_lines(odkd, "power")
    assert (i, pid, ms) == (inst["instance"], inst["pid"], DEADLINE_MS)
    wait_until(lambda: not pid_alive(inst["pid"]), what="the hung host to be killed")
    restarted(odkd, dev, inst["pid"])
    # The rest of the system goes on: echo was not restarted and answers.
    assert echo_answers(odkd, echo)
    assert instance_of(odkd, echo)["pid"] == e["pid"]
    odkd.json("power", "wake")
    assert echo_answers(odkd, echo)


def test_a_power_hang_misses_the_power_deadline_not_the_call_deadline(make_odkd, tmp_path):
    # The host's watchdog ends a default queue stuck past the call deadline.
    # A hang in set_power_state is timed by odkd against the power deadline
    # instead: with a call deadline far shorter, the watchdog used to abort
    # the host first, and the transition saw a crash (ODK_E_GONE, no missed
    # deadline).  With equal deadlines that was a race, which the fault
    # campaign lost once in thousands of hang-in-power cycles.
    short, model = clock_bundle(tmp_path / "more" / "short", "org.odk.faulty-short-call",
                                "faulty-short-call",
                                OdkDeadlines={"start": 1500, "stop": 1500, "power": 1500,
                                              "call": 500})
    d = make_odkd(drivers=(DRIVERS, TEST_DRIVERS, tmp_path / "more"))
    # The watchdog is on: a hung call is ended at the short call deadline.
    hung = d.plug({"model": model, "fault": "hang-on-call"})
    h = running_instance(d, hung)
    with Connection(d.state, hung) as c:
        with pytest.raises(OdkError) as e:
            c.call(OPERATE, n_out=1)
        assert e.value.name == "ODK_E_GONE"
    wait_until(lambda: deadline_lines(d, "call", short), what="the call deadline line")
    assert deadline_lines(d, "call", short)[0] == (h["instance"], h["pid"], 500)
    d.ctl("sim", "unplug", hung)
    # It stands aside while the driver is in set_power_state: that hang
    # misses the power deadline, three times the call deadline.
    dev = d.plug({"model": model, "fault": "hang-in-power"})
    inst = running_instance(d, dev)
    rows = d.json("power", "sleep")
    (row,) = [r for r in rows if r["bundle"] == short]
    assert row["missed_deadline"] is True and row["instance"] == inst["instance"], row
    assert (inst["instance"], inst["pid"], 1500) in deadline_lines(d, "power", short)
    assert [x for x in deadline_lines(d, "call", short) if x[1] == inst["pid"]] == []


def lifecycle_stamps(log, what):
    """{instance: ns} of 'power state ...' (or other lifecycle) lines."""
    pat = re.compile(re.escape(BUNDLE) + r"#(\d+): " + re.escape(what) + r".* at (\d+)$", re.M)
    return {int(m[1]): int(m[2]) for m in pat.finditer(log)}


def test_power_changes_children_before_providers_going_down(odkd):
    # The faulty driver publishes a FaultyChildDevice that a second faulty
    # instance drives: a tree of two.  Each logs a CLOCK_MONOTONIC stamp.
    dev = odkd.plug(faulty(child={"model": "faulty", "fault": "none", "role": "child"}))
    parent = running_instance(odkd, dev)
    child = wait_until(lambda: [i for i in odkd.instances()
                                if i["bundle"] == BUNDLE and i["provider"] != dev
                                and i["state"] == "running"], what="the child driver")[0]
    odkd.json("power", "sleep")
    down = lifecycle_stamps(bundle_log(odkd), "power state 0 (off)")
    assert down[child["instance"]] < down[parent["instance"]]
    odkd.json("power", "wake")
    up = lifecycle_stamps(bundle_log(odkd), "power state 1 (on)")
    assert up[parent["instance"]] < up[child["instance"]]


# ---- resources ----------------------------------------------------------------

def test_leak_past_the_memory_limit_is_killed_and_restarted(make_odkd, tmp_path):
    # A copy of faulty whose call deadline is out of the way: at load 30 on
    # two cores, touching one 8 MiB chunk (2 048 page faults) kept the
    # default queue busy past 1500 ms, and the watchdog, not the memory
    # limit, ended the host (the test then failed on ODK_E_GONE in its
    # first calls).  The call deadline has tests of its own.
    bundle, model = clock_bundle(tmp_path / "more" / "leaky", "org.odk.faulty-leaky",
                                 "faulty-leaky",
                                 OdkDeadlines={"start": 1500, "stop": 1500, "power": 1500,
                                               "call": 600000})
    odkd = make_odkd(drivers=(DRIVERS, TEST_DRIVERS, tmp_path / "more"))
    dev = odkd.plug({"model": model, "fault": "leak"})
    inst = running_instance(odkd, dev)
    assert "rss_kib" in inst and inst["rss_kib"] > 0
    before = inst["rss_kib"]
    with Connection(odkd.state, dev) as c:
        for _ in range(3):
            c.call(OPERATE, n_out=1)
        grown = wait_until(lambda: (lambda i: i if i["rss_kib"] >= before + 16 * 1024 else None)(
            instance_of(odkd, dev)), what="rss_kib to grow")
        assert grown["pid"] == inst["pid"]
        # Leak (8 MiB a call) until the host is past its limit, then stop:
        # odkd must step in by itself, whenever its health check looks.
        while pid_alive(inst["pid"]) and rss_kib(inst["pid"]) <= MEMORY_LIMIT_MB * 1024:
            try:
                c.call(OPERATE, n_out=1)
            except OdkError as e:
                assert e.name == "ODK_E_GONE"
                break
    wait_until(lambda: not pid_alive(inst["pid"]), what="odkd to stop the host past its limit")
    pat = re.escape(bundle) + r"#\d+ \(pid (\d+)\)[^\n]*exceeded its memory limit \((\d+) MiB > (\d+) MiB\)"
    m = wait_until(lambda: re.search(pat, odkd.log_text()), what="the memory limit line")
    assert int(m[1]) == inst["pid"] and int(m[3]) == MEMORY_LIMIT_MB and int(m[2]) > MEMORY_LIMIT_MB
    new = restarted(odkd, dev, inst["pid"])
    assert new["rss_kib"] < MEMORY_LIMIT_MB * 1024


def test_log_flood_is_rate_limited_and_odkd_keeps_answering(make_odkd, monkeypatch):
    # Under `make asan`, ASan's quarantine holds up to 256 MiB of freed memory
    # on purpose, which would hide what odkd itself keeps; a small quarantine
    # makes the RSS odkd's own.  (Other builds ignore the variable.)
    monkeypatch.setitem(CHILD_ENV, "ASAN_OPTIONS", "quarantine_size_mb=8")
    odkd = make_odkd()
    echo = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=echo)
    dev = odkd.plug(faulty("log-flood"))
    inst = running_instance(odkd, dev)
    odkd_rss_before = rss_kib(odkd.proc.pid)
    with Connection(odkd.state, dev) as c:
        c.call(OPERATE, n_out=1)  # starts the flood, which runs until stop, and returns
        for _ in range(10):
            # odkctl list answers (its timeout is a hang guard, not a speed).
            listed = odkd.json("list")
            assert {i["bundle"] for i in listed} == {BUNDLE, "org.odk.echo"}
            assert echo_answers(odkd, echo)
            # The flood runs on its own queue: the driver still answers.
            assert c.call(PING, [3], n_out=1)[0] == [4]
    assert "flood line" in bundle_log(odkd)
    # Rate limited: odkd dropped lines and said so.
    wait_until(lambda: re.search(r"\d+ log lines dropped", bundle_log(odkd)
                                 ) or re.search(r"\d+ log lines dropped", odkd.log_text()),
               what="a note of dropped log lines")
    # odkd's memory stays bounded: it does not queue the flood up.
    assert rss_kib(odkd.proc.pid) - odkd_rss_before < 64 * 1024
    # Not a crash, not a deadline: the host is the same one.
    after = instance_of(odkd, dev)
    assert after["pid"] == inst["pid"] and after["restarts"] == 0
    assert deadline_lines(odkd, "call") == [] and crash_lines(odkd) == []
    odkd.ctl("sim", "unplug", dev)
    wait_until(lambda: not pid_alive(inst["pid"]), what="the flooding driver to exit")


def log_pipe_fill(pid):
    """(bytes waiting, capacity) of the pipe on fd 2 of pid: its log pipe,
    opened for reading through /proc (a description of our own; nothing is
    read from it)."""
    fd = os.open(f"/proc/{pid}/fd/2", os.O_RDONLY | os.O_NONBLOCK)
    try:
        waiting = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        return waiting, fcntl.fcntl(fd, 1032)  # F_GETPIPE_SZ
    finally:
        os.close(fd)


def test_a_full_log_pipe_does_not_stall_the_drivers_other_queues(odkd):
    """A driver flooding its log while odkd does not read it (stopped
    here; busy, under load) fills the host's log pipe.  The driver's other
    threads still log and answer: a call on the default queue that logs a
    line returns, the call watchdog has nothing to end, and the host says
    how many lines it dropped.  (odk_log once waited on the full pipe,
    holding stdio's lock: every thread that logged waited too, until the
    watchdog aborted the host, or for ever while odkd was stopped.)"""
    dev = odkd.plug(faulty("log-flood"))
    inst = running_instance(odkd, dev)
    with Connection(odkd.state, dev) as c:
        c.call(OPERATE, n_out=1)  # the flood, on its own queue
        os.kill(odkd.proc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: (lambda w, cap: w >= cap - 4096)(*log_pipe_fill(inst["pid"])),
                       what="the host's log pipe to fill")
            result = {}

            def calls():
                # set fault logs "fault set to ..." from the default queue.
                try:
                    for k in range(20):
                        c.call(SET_FAULT, struct=b"log-flood", n_out=0)
                        result["calls"] = k + 1
                    result["pong"] = c.call(PING, [41], n_out=1)[0]
                except OdkError as e:
                    result["error"] = e.name
            t = threading.Thread(target=calls, daemon=True)
            t.start()
            t.join(HANG_GUARD / 4)  # a hang guard: it returns at once, or never
            stalled = t.is_alive()
            if stalled:  # end the call before its connection closes under it
                os.kill(inst["pid"], signal.SIGKILL)
                t.join(HANG_GUARD)
            assert not stalled, f"calls that log stalled on the full log pipe: {result}"
            assert result == {"calls": 20, "pong": [42]}, result
            assert pid_alive(inst["pid"])
        finally:
            os.kill(odkd.proc.pid, signal.SIGCONT)
    wait_until(lambda: re.search(r"warn " + re.escape(BUNDLE) + r"#\d+: \d+ log lines dropped: "
                                 r"odkd did not read", odkd.log_text()),
               what="the host's note of the lines it dropped")
    after = instance_of(odkd, dev)
    assert after["pid"] == inst["pid"] and after["restarts"] == 0
    assert deadline_lines(odkd, "call") == [] and crash_lines(odkd) == []
    odkd.ctl("sim", "unplug", dev)
    wait_until(lambda: not pid_alive(inst["pid"]), what="the flooding driver to exit")


# ---- debugging ----------------------------------------------------------------

def test_odkctl_debug_prints_a_gdb_command_with_the_pid(odkd):
    dev = odkd.plug(faulty())
    inst = running_instance(odkd, dev)
    out = odkd.ctl("debug", BUNDLE).stdout
    assert re.search(r"gdb -p %d\b" % inst["pid"], out), out


def clock_bundle(folder, bundle="org.odk.faulty-clock", model="faulty-clock", **personality):
    """A copy of the faulty bundle under another id, matching another model
    (and with the personality keys given, e.g. OdkDeadlines)."""
    shutil.copytree(TEST_DRIVERS / "faulty", folder)
    m = json.loads((folder / "odk.json").read_text())
    m["bundle"] = bundle
    (p,) = m["personalities"].values()
    p["IOUserServerName"] = bundle
    p["IOPropertyMatch"] = {"model": model}
    p.update(personality)
    (folder / "odk.json").write_text(json.dumps(m))
    sign_bundle(folder)
    return bundle, model


def test_started_under_debug_waits_for_the_debugger(make_odkd, tmp_path):
    clock, clock_model = clock_bundle(tmp_path / "more" / "clock")
    d = make_odkd(extra_args=["--debug", BUNDLE],
                  drivers=(DRIVERS, TEST_DRIVERS, tmp_path / "more"))
    echo = d.plug(ECHO_DEVICE)
    d.running(provider=echo)  # other bundles start as usual
    dev = d.plug(faulty())
    waiting = wait_until(lambda: (lambda i: i if i and i["state"] == "debug-wait" and i["pid"]
                                  else None)(instance_of(d, dev)), what="state debug-wait")
    pid = waiting["pid"]
    wait_until(lambda: proc_state(pid) == "T", what="the host to be stopped")
    assert re.search(r"gdb -p %d\b" % pid, d.ctl("debug", BUNDLE).stdout)
    # No start deadline applies while it waits for the debugger.  The proof
    # is an order, not a wait: a host plugged later that hangs in start has
    # the same 1500 ms start deadline, and odkd's timers fire in the order
    # they fall due, so when the later one is missed, a deadline armed for
    # the waiting host would have been missed before it.
    clock_dev = d.plug({"model": clock_model, "fault": "hang-in-start"})
    wait_until(lambda: deadline_lines(d, "start", clock), what="the later host's start deadline")
    assert deadline_lines(d, "start") == [] and crash_lines(d) == []
    still = instance_of(d, dev)
    assert still["state"] == "debug-wait" and still["pid"] == pid and pid_alive(pid)
    assert "start: fault" not in d.ctl("log", BUNDLE, check=False).stdout  # no driver code yet
    d.ctl("sim", "unplug", clock_dev)
    os.kill(pid, signal.SIGCONT)
    inst = running_instance(d, dev)
    assert inst["pid"] == pid
    with Connection(d.state, dev) as c:
        assert c.call(PING, [1], n_out=1)[0] == [2]


def test_a_driver_started_while_the_system_sleeps_is_told(odkd):
    odkd.ctl("power", "sleep")
    dev = odkd.plug(faulty("none"))
    running_instance(odkd, dev)
    with Connection(odkd.state, dev) as c:
        wait_until(lambda: c.call(POWER_STATE, n_out=1)[0] == [0], what="ODK_POWER_OFF after start")
        odkd.ctl("power", "wake")
        assert c.call(POWER_STATE, n_out=1)[0] == [1]


PTRACE_DETACH, PTRACE_SEIZE, WALL = 17, 0x4206, 0x40000000


def test_shutdown_ends_when_a_killed_host_is_held_by_a_tracer(odkd):
    """A debugger attached to a host that hangs in stop: odkd's shutdown
    kills the host, but the host's exit goes to its tracer, and odkd's
    SIGCHLD never comes while the tracer holds it.  odkd exits anyway once
    the grace period's kill had its time to be reaped, naming the tracer
    (before, it waited for that reap forever and a second SIGTERM was
    ignored: "already stopping")."""
    dev = odkd.plug(faulty("hang-in-stop"))
    pid = running_instance(odkd, dev)["pid"]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    assert libc.ptrace(PTRACE_SEIZE, pid, None, None) == 0, os.strerror(ctypes.get_errno())
    try:
        odkd.proc.send_signal(signal.SIGTERM)
        try:
            odkd.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("odkd did not exit after SIGTERM while a tracer held its killed host")
        assert odkd.proc.returncode == 0
        log = odkd.log_text()
        assert f"(pid {pid}) was killed but not reaped: process {os.getpid()} traces it" in log
        assert "hanging in stop" in (odkd.state / "logs" / f"{BUNDLE}.log").read_text()
    finally:
        # Let go of the host: its exit (or the end of the trace) reaches
        # whoever is its parent now.
        try:
            os.waitpid(pid, os.WNOHANG | WALL)
        except ChildProcessError:
            pass
        libc.ptrace(PTRACE_DETACH, pid, None, None)
