# SPDX-License-Identifier: MIT
"""The call fast path at rest: a call that finds the driver asleep costs one
wake-up each way (at most, on the way back), as a socket's round trip does.
The app's eventfd write (or byte on the wake-up socket) wakes the very
thread that runs the method (no reader thread handing the request on), and
that thread's futex wake (or byte back) is the one wake-up of the app.  Counted, never timed: libodk
prints the wake-up counters of each connection at close when
$ODK_FASTCALL_STATS is set, and the kernel counts every thread's blocking
waits (voluntary context switches)."""
import os
import re
import socket
import struct
import time

import pytest
from driver_selectors import ECHO
from libodk import Connection

CALLS = 20
GAP_S = 0.02  # far more than any spin window: every call finds the host asleep
STATS = re.compile(r"odk fastcall stats: calls=(\d+) host_wakes_sent=(\d+) app_sleeps=(\d+) "
                   r"host_woken=(\d+) app_wakes_sent=(\d+)")
SYNC_WAKES = re.compile(r"odk fastcall stats: .* sync_wakes_sent=(\d+)")


def voluntary_switches(task_dir):
    with open(os.path.join(task_dir, "status")) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches in {task_dir}/status")


def process_switches(pid):
    """Blocking waits of every thread of pid, summed."""
    base = f"/proc/{pid}/task"
    return sum(voluntary_switches(os.path.join(base, t)) for t in os.listdir(base))


@pytest.mark.parametrize("kind", ["default", "cpu", "futex", "socket"])
def test_sparse_calls_cost_one_wake_up_each_way(odkd, capfd, monkeypatch, kind):
    """Every kind of wake-up (ODK_FASTCALL_WAKE): "cpu" (an eventfd or a
    sync byte, picked each call, and a futex back), the default (an eventfd
    and a futex only), "futex" (the same, named), or the socket pair."""
    monkeypatch.setenv("ODK_FASTCALL_STATS", "1")
    if kind == "default":
        monkeypatch.delenv("ODK_FASTCALL_WAKE", raising=False)
    else:
        monkeypatch.setenv("ODK_FASTCALL_WAKE", kind)
    dev = odkd.plug({"model": "echo"})
    host = odkd.running(provider=dev)[0]["pid"]
    capfd.readouterr()
    with Connection(odkd.state, dev) as c:
        time.sleep(GAP_S)
        host0, app0 = process_switches(host), voluntary_switches("/proc/thread-self")
        for i in range(CALLS):
            time.sleep(GAP_S)
            data = bytes([i]) * 64
            _, out = c.call(ECHO.ECHO, struct=data, n_out=0, struct_out=64)
            assert out == data
        app1 = voluntary_switches("/proc/thread-self")
        time.sleep(GAP_S)  # the host goes back to sleep after the last reply
        host1 = process_switches(host)
    m = STATS.search(capfd.readouterr().err)
    assert m, "libodk printed no fast-path statistics: did the calls use the mailbox?"
    calls, host_wakes_sent, app_sleeps, host_woken, app_wakes_sent = map(int, m.groups())
    assert calls == CALLS
    # App to host: one byte per call, each taken by the queue thread itself
    # (woken in poll(), it serves the request before anything else).
    assert host_wakes_sent == CALLS and host_woken == CALLS
    # Host to app: every sleep of the caller on the wake-up socket was ended
    # by exactly one byte, and no call slept twice.  A call may not sleep at
    # all: the woken host can preempt the app on its own CPU and reply before
    # the app gets to its recv (no wake-up back at all).
    assert app_wakes_sent == app_sleeps <= CALLS
    # The kernel's view.  The driver host blocked once per call (its queue
    # going back to sleep), give or take the watchdog's heartbeat (every
    # quarter call deadline: at most a couple during this test), never twice
    # per call as a hand-off between threads would.
    assert CALLS <= host1 - host0 <= CALLS + 3, f"driver host: {host1 - host0} blocking waits"
    # This thread: the sleep between calls and at most one wait per call.
    assert app1 - app0 <= 2 * CALLS, f"app: {app1 - app0} blocking waits for {CALLS} calls"


def pin(pid, cpu):
    """Every thread of pid to CPU cpu."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
@pytest.mark.parametrize("apart", [True, False])
def test_the_wake_up_is_sync_when_the_host_sleeps_on_another_cpu(odkd, capfd, monkeypatch, apart):
    """With ODK_FASTCALL_WAKE=cpu the app wakes a sleeping host with a byte on a socket (a
    sync wake-up, which may bring the host to the app's CPU) when the host
    last ran on another CPU, and through the eventfd when on the app's own.
    Pinned apart, every call takes the socket and still gets its answer
    (the host is woken, in poll(), by that byte alone); pinned together,
    none does."""
    monkeypatch.setenv("ODK_FASTCALL_STATS", "1")
    monkeypatch.setenv("ODK_FASTCALL_WAKE", "cpu")
    dev = odkd.plug({"model": "echo"})
    host = odkd.running(provider=dev)[0]["pid"]
    mask = os.sched_getaffinity(0)
    cpus = sorted(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, {cpus[0]})
        pin(host, cpus[1] if apart else cpus[0])
        capfd.readouterr()
        with Connection(odkd.state, dev) as c:
            c.call(ECHO.ADD, [1, 2], n_out=1)  # the host has served once: it has a CPU
            for i in range(CALLS):
                time.sleep(GAP_S)
                (total,), _ = c.call(ECHO.ADD, [i, 1], n_out=1)
                assert total == i + 1
    finally:
        os.sched_setaffinity(0, mask)
        for tid in os.listdir(f"/proc/{host}/task"):
            os.sched_setaffinity(int(tid), mask)
    err = capfd.readouterr().err
    m, sync = STATS.search(err), SYNC_WAKES.search(err)
    assert m and sync, f"no fast-path statistics: {err!r}"
    calls, host_wakes_sent, _, host_woken, _ = map(int, m.groups())
    assert calls == CALLS + 1 and host_wakes_sent >= CALLS
    # Every wake-up sent woke the host through its fd: none was lost (a
    # lost one leaves the call to whatever wakes the queue next, seconds
    # later: the watchdog's heartbeat).
    assert host_woken == host_wakes_sent
    if apart:
        assert int(sync.group(1)) >= CALLS
    else:
        assert int(sync.group(1)) == 0


def test_work_a_call_queues_while_the_host_spins_runs_before_it_sleeps(odkd):
    """A method served during the queue's idle spin that queues work on its
    own queue (echo's ADD_ASYNC completes on a later turn) gets that work run:
    the queue must not go to sleep with its FIFO full, which would leave the
    call waiting for the watchdog."""
    dev = odkd.plug({"model": "echo"})
    odkd.running(provider=dev)
    with Connection(odkd.state, dev) as c:
        # Back-to-back calls teach the host that spinning pays...
        for i in range(200):
            c.call(ECHO.ADD, [i, 1], n_out=1)
        # ...so these arrive while it spins.
        for i in range(200):
            (total,), _ = c.call(ECHO.ADD_ASYNC, [i, 2], n_out=1)
            assert total == i + 2


def wake_sockets_of_this_process():
    """The fds of this process that are a connection's wake-up socket: the
    unix sockets libodk gave a 20 ms receive timeout (SLEEP_CHECK_NS)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
        except OSError:
            continue
        s = socket.socket(fileno=fd)
        try:
            sec, usec = struct.unpack("ll", s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
        finally:
            s.detach()
        if (sec, usec) == (0, 20000):
            found.append(fd)
    return found


def running_samples(pid, samples=20, gap_s=0.01):
    """For each thread of pid, in how many of the samples it was running or
    runnable (state R): a thread that sleeps between events is R in none."""
    counts = {}
    for _ in range(samples):
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            counts[tid] = counts.get(tid, 0) + (state == "R")
        time.sleep(gap_s)
    return counts


def test_an_app_that_closes_its_wake_up_socket_does_not_make_the_host_spin(odkd, monkeypatch):
    """The host's queue sleeps in poll() on each mailbox's wake-up socket:
    one whose app closed its end reads end of file forever, and would wake
    the queue at every turn.  The host stops sleeping on it; its threads
    sleep."""
    monkeypatch.setenv("ODK_FASTCALL_WAKE", "socket")
    dev = odkd.plug({"model": "echo"})
    host = odkd.running(provider=dev)[0]["pid"]
    before = set(wake_sockets_of_this_process())
    with Connection(odkd.state, dev) as c:
        c.call(ECHO.ADD, [1, 2], n_out=1)  # through the mailbox: it is set up
        mine = [fd for fd in wake_sockets_of_this_process() if fd not in before]
        assert len(mine) == 1, f"expected one wake-up socket for the connection, found {mine}"
        # Shut down rather than closed: the host sees the same end of file,
        # and libodk's close of the fd stays its own.
        s = socket.socket(fileno=mine[0])
        try:
            s.shutdown(socket.SHUT_RDWR)
        finally:
            s.detach()
        time.sleep(0.1)
        counts = running_samples(host)
        assert max(counts.values()) <= 5, f"driver host threads running in 20 samples: {counts}"
