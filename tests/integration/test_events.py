# SPDX-License-Identifier: MIT
"""Registry events reach every watcher (user story 22), however slowly it
reads: what its socket cannot take waits in odkd's outgoing queue for that
connection (src/daemon/front/outq.c), property events of one node coalesced
to the latest; a watcher that stops reading altogether is disconnected with
the reason logged, and the others go on."""
import ctypes
import fcntl
import json
import os
import socket
import struct
import termios
import threading
import time

from conftest import wait_until
from driver_selectors import ECHO
from libodk import Connection, _lib, odkd_fds, odkd_fds_back, request

ECHO_DEVICE = {"model": "echo", "serial": "EV-1"}
OUTQ_MAX_MSGS = 4096  # src/daemon/front/outq.h

WATCH_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
_lib.odk_watch_services.argtypes = [ctypes.c_void_p, ctypes.c_void_p, WATCH_FN, ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_uint32)]
_lib.odk_client_dispatch.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.odk_client_close.argtypes = [ctypes.c_void_p]
_lib.odk_value_from_json.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.c_char_p, ctypes.c_size_t]
_lib.odk_value_to_json.restype = ctypes.c_void_p
_lib.odk_value_to_json.argtypes = [ctypes.c_void_p, ctypes.c_int]
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]


class Watcher:
    """An app watching services through libodk (odk_watch_services); it
    reads only when told to (dispatch)."""

    def __init__(self, state_dir, matching):
        self.events = []  # (event, node description)
        self.client = ctypes.c_void_p()
        assert _lib.odk_client_open(str(state_dir).encode(), ctypes.byref(self.client)) == 0
        m = ctypes.c_void_p()
        assert _lib.odk_value_from_json(json.dumps(matching).encode(), ctypes.byref(m), None,
                                        0) == 0

        def on_event(_ctx, event, node):
            s = _lib.odk_value_to_json(node, 0)
            self.events.append((event.decode(), json.loads(ctypes.string_at(s).decode())))
            _libc.free(s)
        self.fn = WATCH_FN(on_event)
        wid = ctypes.c_uint32()
        st = _lib.odk_watch_services(self.client, m, self.fn, None, ctypes.byref(wid))
        _lib.odk_value_free(m)
        assert st == 0

    def dispatch(self, timeout_ms=50):
        """Events delivered, or a negative status (odkd closed the connection)."""
        return _lib.odk_client_dispatch(self.client, timeout_ms)

    def close(self):
        _lib.odk_client_close(self.client)


# Under make asan-test, ASan's quarantine keeps freed memory (up to 256 MiB):
# odkd's RSS then says nothing about what it holds, and is not checked.
ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def fd_links(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def fds_back(odkd, base_fds, base_links):
    """odkd's descriptors back to their baseline; the difference in the
    failure's message."""
    try:
        wait_until(lambda: odkd_fds_back(odkd, base_fds), what="odkd's descriptors back")
    except AssertionError:
        now = fd_links(odkd.proc.pid)
        new = {fd: l for fd, l in now.items() if base_links.get(fd) != l}
        raise AssertionError(f"odkd's descriptors not back: new {new}, "
                             f"ping {odkd_fds(odkd)}, baseline {base_fds}")


def settled_fds(odkd):
    """odkd's descriptors (odkd_fds) once its spare hosts are back
    (HOST_SPARES, 2) and the count holds still for 0.6 s: the spare that
    replaces the one echo took comes with descriptors of its own."""
    seen = []

    def still():
        time.sleep(0.2)
        spare = request(odkd.state, "ping").get("spare_hosts", [])
        seen.append(odkd_fds(odkd) if len(spare) == 2 else None)
        return seen[-1] if len(seen) >= 3 and seen[-1] and seen[-3:] == [seen[-1]] * 3 else None
    return wait_until(still, what="odkd's descriptors to settle")


def echo_service(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=dev)
    return wait_until(lambda: odkd.service_node("EchoDriver"), what="echo's service node")


def counters(events, node):
    return [d["properties"]["EchoCounter"] for e, d in events
            if e == "property" and d["id"] == node and "EchoCounter" in d["properties"]]


def test_a_watcher_reading_late_ends_with_the_last_value(odkd):
    svc = echo_service(odkd)
    base_fds = settled_fds(odkd)
    base_links = fd_links(odkd.proc.pid)
    base_rss = rss_kib(odkd.proc.pid)
    w = Watcher(odkd.state, {"IOProviderClass": "EchoDriver"})
    try:
        # The watcher reads nothing while the driver sets a property
        # 5000 times: far more events than its socket holds.
        n = 5000
        with Connection(odkd.state, svc) as c:
            c.call(ECHO.SET_PROPERTY, [n, 1], n_out=0)
        grown = rss_kib(odkd.proc.pid) - base_rss

        # Read until the last value, or until nothing more comes for 3 s.
        quiet = 0
        while quiet < 60 and (counters(w.events, svc) or [None])[-1] != n:
            got = w.dispatch(50)
            assert got >= 0, f"the watcher was disconnected ({got})"
            quiet = quiet + 1 if got == 0 else 0
        values = counters(w.events, svc)
        assert values and values[-1] == n, \
            f"{len(values)} property events, the last {values[-3:]}, not {n}"
        # In order: coalescing leaves out steps, never reorders them.
        assert values == sorted(set(values)), values[:50]
        assert w.events[0][0] == "registered"  # the node already there, first
        assert "stopped reading" not in odkd.log_text()
        # Most of them gave way to a later one while the watcher slept.
        ping = request(odkd.state, "ping")
        assert ping["client_coalesced"] > n // 2 and ping["client_waiting"] == 0, ping
        assert ASAN or grown < 16 * 1024, f"odkd grew by {grown} KiB"
    finally:
        w.close()
    fds_back(odkd, base_fds, base_links)


def test_a_watcher_that_never_reads_is_disconnected_and_others_go_on(odkd):
    svc = echo_service(odkd)
    base_fds = settled_fds(odkd)
    base_links = fd_links(odkd.proc.pid)
    base_rss = rss_kib(odkd.proc.pid)
    stuck = Watcher(odkd.state, {"IOProviderClass": "IOService"})
    good = Watcher(odkd.state, {"IOProviderClass": "IOService"})
    done = threading.Event()
    failed = []

    def read_all():
        while not done.is_set():
            if good.dispatch(50) < 0:
                failed.append("the reading watcher was disconnected")
                return
    reader = threading.Thread(target=read_all)
    reader.start()
    # Registered and terminated events of a new node each time: nothing to
    # coalesce, so the stuck watcher's queue reaches its bound.  The reading
    # watcher is let catch up after each call (1000 events, well within the
    # bound), however slow this machine is.
    pairs, per_call = 3000, 500

    def churned(k):
        return failed or len([e for e, d in good.events if d["class"] == "EchoChurn"]) >= k
    try:
        with Connection(odkd.state, svc) as c:
            for i in range(pairs // per_call):
                c.call(ECHO.CHURN, [per_call], n_out=0)
                wait_until(lambda: churned(2 * per_call * (i + 1)), timeout=60,
                           what="the reading watcher's events")
        grown = rss_kib(odkd.proc.pid) - base_rss
    finally:
        done.set()
        reader.join()
    try:
        assert not failed, failed
        churn = [(e, d["id"]) for e, d in good.events if d["class"] == "EchoChurn"]
        assert len(churn) == 2 * pairs
        # Each node registered, then terminated, before the next one.
        assert [e for e, _ in churn] == ["registered", "terminated"] * pairs
        assert all(churn[2 * i][1] == churn[2 * i + 1][1] for i in range(pairs))
        log = odkd.log_text()
        lines = [l for l in log.splitlines() if "stopped reading its events" in l]
        assert len(lines) == 1, lines
        assert f"client pid {os.getpid()} stopped reading its events: " in lines[0]
        assert ASAN or grown < 32 * 1024, f"odkd grew by {grown} KiB"
        # The stuck watcher gets what its socket held, in order, then
        # hears that odkd closed the connection: no silent gap.
        st = 0
        while st >= 0:
            st = stuck.dispatch(1000)
            assert st != 0, "the stuck watcher's connection is still open"
        got = [(e, d["id"]) for e, d in stuck.events if d["class"] == "EchoChurn"]
        assert 0 < len(got) < 2 * pairs - OUTQ_MAX_MSGS
        assert got == churn[:len(got)]
    finally:
        stuck.close()
        good.close()
    fds_back(odkd, base_fds, base_links)


def encoded(obj):
    """obj as odk's binary encoding (a request's body on the wire)."""
    v = ctypes.c_void_p()
    assert _lib.odk_value_from_json(json.dumps(obj).encode(), ctypes.byref(v), None, 0) == 0
    buf, n = ctypes.c_void_p(), ctypes.c_size_t()
    try:
        assert _lib.odk_value_encode(v, ctypes.byref(buf), ctypes.byref(n)) == 0
        return ctypes.string_at(buf, n.value)
    finally:
        _libc.free(buf)
        _lib.odk_value_free(v)


_lib.odk_value_encode.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(ctypes.c_size_t)]
HDR = struct.Struct("<IHHIiQ")  # struct wire_hdr (src/common/wire.h)
WIRE_MAGIC, WIRE_REQUEST, WIRE_REPLY = 0x314B444F, 1, 2


def test_a_client_reading_its_replies_late_gets_them_all_in_order(odkd):
    """Replies wait in the same queue as events: a client that sends many
    requests before reading any gets every reply, in order."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(str(odkd.state / "odkd.sock"))
    body = encoded({"op": "ping"})
    n = 2000
    try:
        for seq in range(1, n + 1):
            s.send(HDR.pack(WIRE_MAGIC, WIRE_REQUEST, 0, seq, 0, len(body)) + body)

        # odkd has read every request (and so answered it: ping answers at
        # once) when none of our packets is left unread on the socket.
        def unread():
            return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        wait_until(lambda: unread() == 0, what="odkd to read every request")
        s.settimeout(5)
        seqs = []
        for _ in range(n):
            try:
                reply = s.recv(1 << 16)
            except socket.timeout:
                break
            magic, typ, _flags, seq, status, _len = HDR.unpack_from(reply)
            assert (magic, typ, status) == (WIRE_MAGIC, WIRE_REPLY, 0)
            seqs.append(seq)
        assert seqs == list(range(1, n + 1)), f"{len(seqs)} replies of {n}"
        assert "stopped reading" not in odkd.log_text()
    finally:
        s.close()
