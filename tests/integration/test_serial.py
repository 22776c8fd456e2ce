# SPDX-License-Identifier: MIT
"""The serial family with real clients: pyserial, socat, picocom."""
import hashlib
import json
import os
import shutil
import re
import select
import socket
import subprocess
import threading
import time
import tty as tty_mod

import pytest
import serial

from conftest import CHILD_ENV, HANG_GUARD, pid_alive, wait_until
from driver_selectors import SERIAL
from libodk import Connection, OdkError


def loopback(odkd, ring_size=None):
    props = {"model": "serial-loopback"}
    if ring_size:
        props["ring_size"] = ring_size
    dev = odkd.plug(props)
    odkd.running(provider=dev)
    port = wait_until(lambda: port_node(odkd, dev), what="the port node")
    tty = port["properties"]["IODialinDevice"]
    wait_until(lambda: os.path.exists(tty), what=tty)
    return dev, port, tty


def port_node(odkd, dev):
    nodes = odkd.json("tree")
    ids = {dev}
    for n in nodes:  # the tree lists parents before children
        if n.get("parent") in ids:
            ids.add(n["id"])
    ports = [n for n in nodes if n["id"] in ids and n["class"] == "IOSerialBSDClient"
             and "IODialinDevice" in n["properties"]]
    return ports[0] if ports else None


def node_props(odkd, node_id):
    return [n for n in odkd.json("tree") if n["id"] == node_id][0]["properties"]


def pump(port, data, chunk=65536, reader_delay=0.0):
    """Writes data from one thread while reading it back on another."""
    got = bytearray()

    def reader():
        while len(got) < len(data):
            b = port.read(min(65536, len(data) - len(got)))
            if not b:
                break
            got.extend(b)
            if reader_delay:
                time.sleep(reader_delay)
    t = threading.Thread(target=reader)
    t.start()
    for i in range(0, len(data), chunk):
        port.write(data[i:i + chunk])
    port.flush()
    t.join(timeout=300)
    return bytes(got)


@pytest.mark.parametrize("ring_size", [64, 4096, 1 << 20])
def test_16_mib_round_trip_at_several_ring_sizes(odkd, ring_size):
    _, port, tty = loopback(odkd, ring_size)
    assert node_props(odkd, port["id"])["TxRingSize"] == ring_size
    data = os.urandom(16 << 20)
    with serial.Serial(tty, 115200, timeout=HANG_GUARD) as p:
        got = pump(p, data)
    assert len(got) == len(data)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_slow_reader_gets_every_byte_in_order(odkd):
    _, _, tty = loopback(odkd, 256)
    data = os.urandom(256 << 10)
    with serial.Serial(tty, 115200, timeout=HANG_GUARD) as p:
        got = pump(p, data, chunk=4096, reader_delay=0.002)
    assert got == data


def test_line_settings_reach_the_driver_and_the_node(odkd):
    _, port, tty = loopback(odkd)
    pid = odkd.instances()[0]["pid"]
    with serial.Serial(tty, 9600, bytesize=7, parity="E", stopbits=2, rtscts=True) as p:
        wait_until(lambda: (lambda pr: pr["Baud"] == 9600 and pr["StopBits"] == 2 and
                            pr["FlowControl"] == "rts-cts")(node_props(odkd, port["id"])),
                   what="9600 baud, 2 stop bits, RTS/CTS on the node")
        # Linux's pty driver forces CS8 and clears PARENB before anyone can see
        # them, so data bits and parity cannot travel through the terminal; the
        # port's user client sets them (docs/serial.md).
        with Connection(odkd.state, port["id"]) as c:
            c.call(SERIAL.SET_LINE, [9600, 7, 1, 2, 1, 17, 19])
            outs, _ = c.call(SERIAL.GET_LINE, n_out=9)
            assert outs[:7] == [9600, 7, 1, 2, 1, 17, 19]
        props = node_props(odkd, port["id"])
        assert props["DataBits"] == 7 and props["Parity"] == "even" and props["StopBits"] == 1
        p.baudrate = 115200
        p.stopbits = 1
        p.rtscts = False
        p.xonxoff = True
        props = wait_until(lambda: (lambda pr: pr if pr.get("Baud") == 115200 and
                                    pr["FlowControl"] == "xon-xoff" else None)(
            node_props(odkd, port["id"])), what="115200 with xon-xoff on the node")
        assert props["StopBits"] == 1 and props["DataBits"] == 8 and props["Parity"] == "none"
        assert props["XON"] == 0x11 and props["XOFF"] == 0x13
        p.baudrate = 57600  # only the speed: program_baud, not program_uart
        wait_until(lambda: node_props(odkd, port["id"]).get("Baud") == 57600, what="57600")
    log = odkd.ctl("log", "org.odk.serial-loopback").stdout
    assert "line: 9600 7E1" in log and "line: 115200 8N1" in log and "baud: 57600" in log
    assert "rts-cts" in log and "xon-xoff" in log
    assert odkd.instances()[0]["pid"] == pid


def test_app_without_a_tty_uses_the_user_client(odkd):
    _, port, tty = loopback(odkd)
    with Connection(odkd.state, port["id"], type_=1) as c:
        with pytest.raises(OdkError) as e:
            Connection(odkd.state, port["id"], type_=1)  # one data client at a time
        assert e.value.name == "ODK_E_BUSY"
        data = os.urandom(100000)
        sent = 0
        got = b""
        while len(got) < len(data):
            if sent < len(data):
                (n,), _ = c.call(SERIAL.WRITE, struct=data[sent:sent + 8192], n_out=1)
                sent += n
            _, b = c.call(SERIAL.READ, struct_out=65536)
            got += b
        assert got == data
        c.call(SERIAL.SET_MODEM, [1, 0])
        outs, _ = c.call(SERIAL.GET_MODEM, n_out=4)
        assert outs == [0, 1, 0, 1]  # loopback plug: CTS follows RTS, DSR and DCD follow DTR
        assert node_props(odkd, port["id"])["RTS"] is False
    with pytest.raises(OdkError) as e:
        with Connection(odkd.state, port["id"]) as c:
            c.call(SERIAL.SET_LINE, [9600, 9, 1, 0, 0, 17, 19])  # 9 data bits
    assert e.value.name == "ODK_E_INVALID"


def test_an_app_waits_for_bytes_and_modem_changes_instead_of_polling(odkd):
    """Story 24: READ_WAIT is held until RX has bytes, WAIT_MODEM until the
    modem inputs change (TIOCMIWAIT's job); both are asynchronous calls, so
    the app sleeps on its connection.  A held call ends with
    ODK_E_CANCELLED when its connection closes, and the port goes on."""
    _, port, _ = loopback(odkd)
    data = os.urandom(50000)
    busy, cancelled = -13, -12  # ODK_E_BUSY, ODK_E_CANCELLED
    with Connection(odkd.state, port["id"], type_=1) as c, \
            Connection(odkd.state, port["id"]) as ctl:
        got, statuses, pending = [], [], [False]

        def on_read(status, _outs, b):
            pending[0] = False
            statuses.append(status)
            got.append(b)

        def ask():
            pending[0] = True
            c.call_async(SERIAL.READ_WAIT, [], on_read, n_out=0, struct_out=65536)
        ask()
        c.dispatch(200)
        assert got == [] and pending[0]  # nothing to read: it waits, it does not come back empty
        second = []
        c.call_async(SERIAL.READ_WAIT, [], lambda st, _o, _b: second.append(st), n_out=0,
                     struct_out=16)
        while not second:
            c.dispatch(1000)
        assert second == [busy]  # one waiting read a port
        modem = []
        ctl.call_async(SERIAL.WAIT_MODEM, [], lambda st, outs: modem.append((st, outs)), n_out=4)
        sent = 0
        while len(b"".join(got)) < len(data):
            if sent < len(data):
                (n,), _ = c.call(SERIAL.WRITE, struct=data[sent:sent + 8192], n_out=1)
                sent += n
            if not pending[0]:
                ask()
            c.dispatch(100)
        assert b"".join(got) == data and set(statuses) == {0}
        ctl.dispatch(100)
        assert modem == []  # nothing changed yet
        c.call(SERIAL.SET_MODEM, [1, 0])  # RTS off: the loopback plug's CTS follows
        while not modem:
            ctl.dispatch(1000)
        assert modem == [(0, [0, 1, 0, 1])]
        if not pending[0]:
            ask()
        c.dispatch(100)
        assert pending[0]
    assert statuses[-1] == cancelled  # the held read, when its connection closed
    with Connection(odkd.state, port["id"], type_=1) as c:  # the port goes on
        c.call(SERIAL.WRITE, struct=b"again", n_out=1)
        back = []
        c.call_async(SERIAL.READ_WAIT, [], lambda st, _o, b: back.append((st, b)), n_out=0,
                     struct_out=4096)
        while not back:
            c.dispatch(1000)
        assert back == [(0, b"again")]


def test_a_refused_open_gives_the_drivers_verdict_every_time_and_drops_the_offer(odkd):
    """The call mailbox travels with the open (odkd queues the offer on the
    channel before the host has it): the host must read it before it closes
    a refused client's channel, or the app's read of the verdict fails with
    ECONNRESET (ODK_E_GONE) instead of returning the driver's ODK_E_BUSY;
    and the refused offer's memfd and wake-up fds must not stay in the
    host."""
    _, port, _ = loopback(odkd)
    with Connection(odkd.state, port["id"], type_=1) as c:
        pid = odkd.instances()[0]["pid"]

        def fds():
            return len(os.listdir(f"/proc/{pid}/fd"))

        c.call(SERIAL.GET_MODEM, n_out=4)  # the host's fds settle
        before = fds()
        names = []
        for _ in range(60):
            with pytest.raises(OdkError) as e:
                Connection(odkd.state, port["id"], type_=1)  # one data client at a time
            names.append(e.value.name)
        assert names == ["ODK_E_BUSY"] * 60
        # The host closes a refused offer's fds after it sent the verdict
        # the app just read: wait for the last one, fail if they stay.
        wait_until(lambda: fds() == before, what=f"the host's fds back to {before}")
        outs, _ = c.call(SERIAL.GET_MODEM, n_out=4)  # the first client still calls
        assert len(outs) == 4


def test_port_name_comes_from_the_personality(odkd):
    _, port, tty = loopback(odkd)
    assert os.path.basename(tty).startswith("tty.loopback-")
    cu = port["properties"]["IOCalloutDevice"]
    assert os.path.basename(cu).startswith("cu.loopback-")
    assert os.path.realpath(tty) == os.path.realpath(cu) == port["properties"]["OdkPseudoTerminal"]


def loopback_bundle(tmp_path, **personality):
    """serial-loopback signed again with personality keys changed."""
    import conftest
    bundle = tmp_path / "serial-loopback"
    shutil.copytree(conftest.DRIVERS / "serial-loopback", bundle, symlinks=True)
    m = json.loads((bundle / "odk.json").read_text())
    m["personalities"]["SerialLoopback"].update(personality)
    (bundle / "odk.json").write_text(json.dumps(m))
    conftest.sign_bundle(bundle)
    return bundle


@pytest.mark.parametrize("key,value", [("IOTTYBaseName", "../escape"), ("IOTTYSuffix", "a/b"),
                                       ("IOTTYBaseName", "")])
def test_a_bad_tty_name_in_the_personality_is_refused_clearly(odkd, tmp_path, key, value):
    """Story 23's other side: a name that would leave the device folder, or
    none, fails the driver's port with the rule in its log; no file appears
    anywhere but the device folder."""
    assert odkd.ctl("install", loopback_bundle(tmp_path, **{key: value})).stdout.strip() == \
        "installed"
    before = set(os.listdir(odkd.state.parent))
    dev = odkd.plug({"model": "serial-loopback"})
    wait_until(lambda: "must be 1-" in odkd.ctl("log", "org.odk.serial-loopback").stdout,
               what="the refusal in the driver's log")
    log = odkd.ctl("log", "org.odk.serial-loopback").stdout
    assert "letters, digits, '_', '-' or '.'" in log, log
    # The new build failed its start, so odkd went back to the one before
    # (an upgrade that cannot start rolls back): its port has its own name.
    port = wait_until(lambda: port_node(odkd, dev), what="the port of the build before")
    assert os.path.basename(port["properties"]["IODialinDevice"]).startswith("tty.loopback-")
    assert set(os.listdir(odkd.state.parent)) == before
    assert not [f for f in os.listdir(odkd.dev) if "escape" in f or "a/b" in f]


def test_two_ports_with_the_same_name_the_second_is_told_it_exists(odkd, tmp_path):
    """IOTTYSuffix fixed by the personality: the second device's port would
    take the first's name; it is refused naming the path, and the first
    port keeps working."""
    assert odkd.ctl("install", loopback_bundle(tmp_path, IOTTYSuffix="fixed")).stdout.strip() == \
        "installed"
    dev1 = odkd.plug({"model": "serial-loopback", "serial": "A"})
    port = wait_until(lambda: port_node(odkd, dev1), what="the first port")
    tty = port["properties"]["IODialinDevice"]
    assert os.path.basename(tty) == "tty.loopback-fixed"
    odkd.plug({"model": "serial-loopback", "serial": "B"})
    wait_until(lambda: "already exists (another port has that name)" in
               odkd.ctl("log", "org.odk.serial-loopback").stdout, what="the clash in the log")
    with serial.Serial(tty, 115200, timeout=5) as s:
        s.write(b"still here")
        assert s.read(10) == b"still here"


class EchoServer:
    """A TCP echo server on 127.0.0.1 whose stop() really drops every connection."""
    def __init__(self, port=0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


def socat_round_trip(tty, payload):
    """Sends payload through socat and reads until as many bytes came back
    (socat's own -t/-T timeouts would make the result depend on speed); the
    deadline is a hang guard."""
    p = subprocess.Popen(["socat", "-", f"FILE:{tty},raw,echo=0,nonblock"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=CHILD_ENV)
    writer = threading.Thread(target=lambda: (p.stdin.write(payload), p.stdin.flush()), daemon=True)
    writer.start()
    got = bytearray()
    guard = threading.Timer(HANG_GUARD, p.kill)
    guard.start()
    try:
        while len(got) < len(payload):
            b = p.stdout.read1(65536)
            if not b:
                break
            got.extend(b)
    finally:
        guard.cancel()
        p.kill()
        p.wait()
        writer.join(HANG_GUARD)
    return bytes(got)


def test_serial_tcp_bridges_to_a_tcp_peer_and_reconnects(odkd):
    server = EchoServer()
    try:
        dev = odkd.plug({"model": "serial-tcp", "host": "127.0.0.1", "port": server.port})
        odkd.running(provider=dev)
        port = wait_until(lambda: port_node(odkd, dev), what="the port node")
        tty = port["properties"]["IODialinDevice"]
        assert os.path.basename(tty).startswith("tty.tcp-")
        wait_until(lambda: "connected to 127.0.0.1" in odkd.ctl("log", "org.odk.serial-tcp").stdout,
                   what="the driver to connect")
        payload = os.urandom(50000)
        assert socat_round_trip(tty, payload) == payload
        with serial.Serial(tty, 115200, timeout=HANG_GUARD) as p:
            p.write(b"hello over tcp\n")
            assert p.read(15) == b"hello over tcp\n"
            # The peer goes away and comes back: the port stays and reconnects.
            server.stop()
            wait_until(lambda: "disconnected" in odkd.ctl("log", "org.odk.serial-tcp").stdout,
                       what="the disconnect to be noticed")
            server = EchoServer(server.port)
            wait_until(lambda: odkd.ctl("log", "org.odk.serial-tcp").stdout.count(
                "connected to 127.0.0.1") >= 2, what="the reconnect")
            p.write(b"again\n")
            assert p.read(6) == b"again\n"
    finally:
        server.stop()


def tmux(*args):
    return subprocess.run(["tmux", *args], capture_output=True, text=True, env=CHILD_ENV)


def test_picocom_types_a_line_and_sees_it_echoed_then_unplug_hangs_up(odkd, tmp_path):
    dev, port, tty = loopback(odkd)
    sess = f"odk{os.getpid()}{int(time.time() * 1000) % 100000}"
    sock = str(tmp_path / "tmux.sock")
    tmux("-S", sock, "new-session", "-d", "-s", sess, "-x", "120", "-y", "30",
         f"picocom -b 115200 {tty}; echo PICOCOM-EXITED $?; sleep {int(HANG_GUARD)}")
    try:
        wait_until(lambda: "Terminal ready" in tmux("-S", sock, "capture-pane", "-p", "-t", sess).stdout,
                   what="picocom to start")
        tmux("-S", sock, "send-keys", "-t", sess, "hello odk", "")
        wait_until(lambda: "hello odk" in tmux("-S", sock, "capture-pane", "-p", "-t", sess).stdout,
                   what="the echo in picocom")
        (inst,) = odkd.instances()
        odkd.ctl("sim", "unplug", dev)
        wait_until(lambda: not pid_alive(inst["pid"]), what="the driver to exit")
        wait_until(lambda: "PICOCOM-EXITED" in tmux("-S", sock, "capture-pane", "-p", "-t", sess).stdout,
                   what="picocom to notice the hang-up and exit")
        assert not os.path.lexists(tty)
        assert not os.path.lexists(port["properties"]["IOCalloutDevice"])
    finally:
        tmux("-S", sock, "kill-server")


def uart(odkd):
    """Plugs a device for tests/drivers/serial-uart (2 KiB rings, a FIFO of
    its own, modem lines kept from program_mcr)."""
    dev = odkd.plug({"model": "serial-uart"})
    odkd.running(provider=dev)
    port = wait_until(lambda: port_node(odkd, dev), what="the port node")
    tty = port["properties"]["IODialinDevice"]
    wait_until(lambda: os.path.exists(tty), what=tty)
    return dev, port, tty


def test_program_mcr_hears_the_initial_dtr_and_rts_and_every_change(odkd):
    """A driver that keeps the lines program_mcr told it (as DriverKit
    drivers do in HwProgramMCR) reports CTS, DSR and DCD right from the
    start: the family tells it the initial DTR/RTS when it activates the
    port, as IOUserSerial does."""
    _, port, _ = uart(odkd)
    props = node_props(odkd, port["id"])
    assert props["DTR"] is True and props["RTS"] is True
    assert (props["DriverMCRCalls"], props["DriverDTR"], props["DriverRTS"]) == (1, True, True)
    with Connection(odkd.state, port["id"]) as c:
        outs, _ = c.call(SERIAL.GET_MODEM, n_out=4)
        assert outs == [1, 1, 0, 1]  # CTS from RTS; DSR and DCD from DTR
        c.call(SERIAL.SET_MODEM, [0, 1])
        outs, _ = c.call(SERIAL.GET_MODEM, n_out=4)
        assert outs == [1, 0, 0, 0]
    props = node_props(odkd, port["id"])
    assert (props["DriverMCRCalls"], props["DriverDTR"], props["DriverRTS"]) == (2, False, True)
    assert props["DTR"] is False and props["RTS"] is True
    assert "program_mcr: DTR on, RTS on" in odkd.ctl("log", "org.odk.serial-uart").stdout


def test_rx_free_space_available_resumes_a_1_mib_round_trip_through_2_kib_rings(odkd):
    """serial-uart stops moving when the RX ring is full and resumes in
    rx_free_space_available.  Nobody reads until the writer can write no
    more (so the driver surely stopped for lack of room: 1 MiB does not
    fit in the rings and the terminal's buffers), then every byte must come
    back, in order."""
    dev, port, tty = uart(odkd)
    props = node_props(odkd, port["id"])
    assert props["TxRingSize"] == props["RxRingSize"] == 2048
    data = os.urandom(1 << 20)
    fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty_mod.setraw(fd)
        sent = 0
        # Fill until the writer gets no room for a while: the ring, the
        # FIFO and the terminal's buffers are full.
        while sent < len(data):
            _, w, _ = select.select([], [fd], [], 1.0)
            if not w:
                break
            try:
                sent += os.write(fd, data[sent:sent + 4096])
            except BlockingIOError:
                pass
        assert sent < len(data), "1 MiB went in with nobody reading"
        got = bytearray()
        while len(got) < len(data):
            r, w, _ = select.select([fd], [fd] if sent < len(data) else [], [], HANG_GUARD)
            assert r or w, f"stalled after {len(got)} of {len(data)} bytes came back"
            if r:
                try:
                    got.extend(os.read(fd, 65536))
                except BlockingIOError:
                    pass
            if w:
                try:
                    sent += os.write(fd, data[sent:sent + 65536])
                except BlockingIOError:
                    pass
    finally:
        os.close(fd)
    assert len(got) == len(data) and bytes(got) == data
    odkd.ctl("sim", "unplug", dev)
    log = odkd.ctl("log", "org.odk.serial-uart").stdout
    m = re.search(r"moved (\d+) bytes; rx_free_space_available resumed (\d+) stalled", log)
    assert m, log
    assert int(m.group(1)) == len(data) and int(m.group(2)) >= 1, m.group(0)


# ---- the kernel's line discipline, when a program asks for it ---------------

EXTPROC = 0o200000  # c_lflag bit (linux/termbits.h); Python's termios lacks it


def set_modes(fd, iflag_on=0, lflag_on=0):
    """Raw, then the given input and local modes on (tcsetattr)."""
    import termios
    tty_mod.setraw(fd)
    a = termios.tcgetattr(fd)
    a[0] |= iflag_on
    a[3] |= lflag_on
    termios.tcsetattr(fd, termios.TCSANOW, a)


def extproc(fd):
    import termios
    return bool(termios.tcgetattr(fd)[3] & EXTPROC)


def test_canonical_mode_gets_erase_and_cr_to_nl(odkd):
    """A getty-style program (ICANON, ICRNL) on the loopback port: it types
    a, b, DEL, c, CR and reads the edited line back, as on any tty.  With
    the kernel's input processing off (EXTPROC always on, as before), it read
    ab\\x7fc\\r."""
    import termios
    _, _, path = loopback(odkd)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        assert extproc(fd), "a raw port keeps EXTPROC (settings changes are seen at once)"
        set_modes(fd, iflag_on=termios.ICRNL, lflag_on=termios.ICANON)
        wait_until(lambda: not extproc(fd), what="EXTPROC to go off for a canonical program")
        os.write(fd, b"ab\x7fc\r")
        r, _, _ = select.select([fd], [], [], HANG_GUARD)
        assert r, "no line came back"
        assert os.read(fd, 64) == b"ac\n"
        # Raw again: EXTPROC comes back, and bytes pass untouched.
        tty_mod.setraw(fd)
        wait_until(lambda: extproc(fd), what="EXTPROC back for a raw program")
        os.write(fd, b"ab\x7fc\r")
        got = b""
        while len(got) < 5:
            r, _, _ = select.select([fd], [], [], HANG_GUARD)
            assert r, got
            got += os.read(fd, 64)
        assert got == b"ab\x7fc\r"
    finally:
        os.close(fd)


def test_xoff_from_the_line_stops_output_until_restarted(odkd):
    """IXON: the XOFF that comes back through the loopback stops the port's
    output (a write would wait), and is not read as data.  With the kernel's
    input processing off (EXTPROC always on, as before), the XOFF was a data
    byte and writes went on."""
    import termios
    _, _, path = loopback(odkd)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        set_modes(fd, iflag_on=termios.IXON)
        wait_until(lambda: not extproc(fd), what="EXTPROC to go off for XON/XOFF")
        os.write(fd, b"\x13")  # XOFF, reflected by the loopback

        def stopped():
            try:
                os.write(fd, b"x")
                os.read(fd, 64)  # came back: output still running
                return False
            except BlockingIOError:
                return True
        wait_until(stopped, what="output to stop on the reflected XOFF")
        # It stays stopped: a write still cannot go (it would wait for XON;
        # pyserial's write_timeout would expire).
        time.sleep(0.3)
        with pytest.raises(BlockingIOError):
            os.write(fd, b"y")
        # Turning IXON off restarts output (TCOON would not: on a tty, only
        # XON undoes a stop that XOFF made).
        tty_mod.setraw(fd)

        def sent():
            try:
                return os.write(fd, b"after") == 5
            except BlockingIOError:
                return False
        wait_until(sent, what="output to run again without IXON")
        got = b""
        while not got.endswith(b"after"):
            r, _, _ = select.select([fd], [], [], HANG_GUARD)
            assert r, got
            got += os.read(fd, 64)
        assert b"\x13" not in got, "the XOFF was read as data"
    finally:
        os.close(fd)
