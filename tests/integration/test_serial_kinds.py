# SPDX-License-Identifier: MIT
"""The serial family's terminal kinds (pty, cuse, auto) as far as this
machine shows them (it has no /dev/cuse: tests/vm/guest/test_serial_cuse.py
runs the CUSE ports), and the samples' pacing at the line's baud rate."""
import os
import socket
import threading
import time

import pytest
import serial

from conftest import HANG_GUARD, wait_until
from test_serial import node_props, port_node

HAVE_CUSE = os.path.exists("/dev/cuse")

# The full-size run (make serial-pace: 1 KiB at 300 baud, ~34 s);
# the default is a short one.
PACE_BYTES = int(os.environ.get("ODK_SERIAL_PACE_BYTES", "64"))
PACE_BAUD = int(os.environ.get("ODK_SERIAL_PACE_BAUD", "1200"))


def plug_port(odkd, **props):
    dev = odkd.plug({"model": "serial-loopback", **props})
    odkd.running(provider=dev)
    port = wait_until(lambda: port_node(odkd, dev), what="the port node")
    return dev, port


@pytest.mark.skipif(HAVE_CUSE, reason="this machine has /dev/cuse")
def test_auto_falls_back_to_a_pty_without_cuse(odkd):
    dev, port = plug_port(odkd, kind="auto")
    p = port["properties"]
    assert p["OdkSerialKind"] == "pty"
    assert p["OdkPseudoTerminal"].startswith("/dev/pts/")
    assert "OdkCharacterDevice" not in p
    wait_until(lambda: os.path.exists(p["IODialinDevice"]), what="the tty link")
    with serial.Serial(p["IODialinDevice"], 9600, timeout=HANG_GUARD) as s:
        s.write(b"hello")
        assert s.read(5) == b"hello"


def test_a_pty_port_says_its_kind(odkd):
    dev, port = plug_port(odkd)
    assert port["properties"]["OdkSerialKind"] == "pty"


def failed_start(odkd, dev):
    def gone():
        mine = [i for i in odkd.instances() if i["provider"] == dev]
        return not mine or all(i["state"] != "running" for i in mine)
    wait_until(lambda: "serial port" in odkd.log_text() and gone(), what="the start to fail")
    assert port_node(odkd, dev) is None


@pytest.mark.skipif(HAVE_CUSE, reason="this machine has /dev/cuse")
def test_kind_cuse_without_cuse_fails_the_start_and_says_why(odkd):
    dev = odkd.plug({"model": "serial-loopback", "kind": "cuse"})
    failed_start(odkd, dev)
    wait_until(lambda: "cannot open /dev/cuse" in odkd.log_text(), what="the reason in the log")


def test_an_unknown_kind_fails_the_start(odkd):
    dev = odkd.plug({"model": "serial-loopback", "kind": "teletype"})
    failed_start(odkd, dev)
    wait_until(lambda: "kind 'teletype'" in odkd.log_text(), what="the reason in the log")


# ---- pacing ---------------------------------------------------------------

def char_time(baud, data_bits=8, parity=False, stop_bits=1):
    return (1 + data_bits + (1 if parity else 0) + stop_bits) / baud


def test_paced_loopback_takes_the_line_time(odkd):
    """64 bytes at 1200 baud 8N1 take 64 x 10 bits / 1200 = 0.53 s through
    the paced loopback; only a lower bound is asserted."""
    dev, port = plug_port(odkd, PaceAtBaud=True)
    path = port["properties"]["IODialinDevice"]
    data = bytes(range(256)) * (PACE_BYTES // 256) + bytes(range(PACE_BYTES % 256))
    with serial.Serial(path, PACE_BAUD, timeout=HANG_GUARD) as s:
        wait_until(lambda: node_props(odkd, port["id"])["Baud"] == PACE_BAUD, what="the baud rate")
        t0 = time.monotonic()
        s.write(data)
        got = s.read(len(data))
        took = time.monotonic() - t0
    assert got == data
    want = len(data) * char_time(PACE_BAUD)
    print(f"paced loopback: {len(data)} B at {PACE_BAUD} baud 8N1 took {took:.2f} s "
          f"(line time {want:.2f} s)")
    assert took >= 0.9 * want


def test_paced_loopback_counts_parity_and_stop_bits(odkd):
    """7E2 is 11 bits a character: the user client sets it (a pty carries
    no parity), and 64 bytes at 1200 baud take at least 0.59 s."""
    dev, port = plug_port(odkd, PaceAtBaud=True)
    path = port["properties"]["IODialinDevice"]
    with serial.Serial(path, 1200, timeout=HANG_GUARD) as s:
        wait_until(lambda: node_props(odkd, port["id"])["Baud"] == 1200, what="the baud rate")
        odkd.ctl("call", port["id"], 2, 1200, 7, 2, 2, 0, 17, 19)
        wait_until(lambda: node_props(odkd, port["id"])["DataBits"] == 7, what="7E2")
        t0 = time.monotonic()
        s.write(b"z" * 64)
        got = s.read(64)
        took = time.monotonic() - t0
    assert got == b"z" * 64
    assert took >= 0.9 * 64 * char_time(1200, 7, True, 2)


def test_paced_tcp_port_paces_both_directions(odkd):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(HANG_GUARD)
    dev = odkd.plug({"model": "serial-tcp", "host": "127.0.0.1",
                     "port": srv.getsockname()[1], "PaceAtBaud": True})
    odkd.running(provider=dev)
    port = wait_until(lambda: port_node(odkd, dev), what="the port node")
    path = port["properties"]["IODialinDevice"]
    conn, _ = srv.accept()
    conn.settimeout(HANG_GUARD)
    want = 64 * char_time(1200)
    try:
        with serial.Serial(path, 1200, timeout=HANG_GUARD) as s:
            wait_until(lambda: node_props(odkd, port["id"])["Baud"] == 1200, what="the baud rate")
            # Port -> peer.
            t0 = time.monotonic()
            s.write(b"a" * 64)
            got = b""
            while len(got) < 64:
                chunk = conn.recv(64)
                assert chunk, got
                got += chunk
            assert time.monotonic() - t0 >= 0.9 * want
            # Peer -> port.
            t0 = time.monotonic()
            conn.sendall(b"b" * 64)
            assert s.read(64) == b"b" * 64
            assert time.monotonic() - t0 >= 0.9 * want
    finally:
        conn.close()
        srv.close()
