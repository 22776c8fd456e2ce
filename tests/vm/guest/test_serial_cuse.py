# SPDX-License-Identifier: MIT
"""CUSE-backed serial ports (kind "cuse") on the guest's stock kernel: the
loopback sample behind a real character device whose tty ioctls the
serial family answers.  Settings made by ordinary programs (pyserial, stty)
must reach the driver: the port node's properties are recorded only after
the driver's callback accepted them."""
import fcntl
import importlib.util
import json
import os
import select
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest
import serial

from guest_util import HANG_GUARD, wait_until

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[3]

# <asm-generic/ioctls.h> and <linux/serial.h>; Python's termios lacks them.
TIOCMIWAIT = 0x545C
TIOCGICOUNT = 0x545D
TIOCM_CTS = 0x020


def _integration():
    """tests/integration/conftest.py, for its Odkd (loaded under its own
    name: this folder has a conftest.py of its own)."""
    spec = importlib.util.spec_from_file_location(
        "odk_integration_conftest", ROOT / "tests" / "integration" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def odkd(tmp_path_factory):
    """One odkd for the file (each test plugs its own port): boots under
    software emulation are slow enough without a daemon per test."""
    subprocess.run(["modprobe", "cuse"], check=True)
    wait_until(lambda: os.path.exists("/dev/cuse"), "/dev/cuse")
    d = _integration().Odkd(tmp_path_factory.mktemp("odkd"))
    yield d
    d.stop()


def port_of(odkd, dev):
    nodes = odkd.json("tree")
    ids = {dev}
    for n in nodes:
        if n.get("parent") in ids:
            ids.add(n["id"])
    ports = [n for n in nodes if n["id"] in ids and n["class"] == "IOSerialBSDClient"
             and "IODialinDevice" in n["properties"]]
    return ports[0] if ports else None


def props(odkd, node_id):
    return [n for n in odkd.json("tree") if n["id"] == node_id][0]["properties"]


def cuse_loopback(odkd, **extra):
    dev = odkd.plug({"model": "serial-loopback", "kind": "cuse", **extra})
    odkd.running(provider=dev)
    port = wait_until(lambda: port_of(odkd, dev), "the port node")
    p = port["properties"]
    assert p["OdkSerialKind"] == "cuse", p
    node = p["OdkCharacterDevice"]
    wait_until(lambda: os.path.exists(node), node)
    # A real character device from CUSE, not a pty, behind the usual links.
    assert Path(node).is_char_device()
    assert os.path.realpath(p["IODialinDevice"]) == node
    assert Path(f"/sys/class/cuse/{os.path.basename(node)}").exists()
    return dev, port["id"], p["IODialinDevice"]


def wait_props(odkd, node, **want):
    def ok():
        p = props(odkd, node)
        return p if all(p.get(k) == v for k, v in want.items()) else None
    return wait_until(ok, f"node properties {want}")


def test_pyserial_round_trip_and_line_settings_reach_the_driver(odkd):
    dev, node, path = cuse_loopback(odkd)
    with serial.Serial(path, 9600, bytesize=7, parity=serial.PARITY_EVEN, timeout=HANG_GUARD) as s:
        wait_props(odkd, node, Baud=9600, DataBits=7, Parity="even", StopBits=1)
        data = os.urandom(16384)
        s.write(data)
        got = s.read(len(data))
        assert got == data
        s.parity = serial.PARITY_MARK
        wait_props(odkd, node, Parity="mark")
        s.parity = serial.PARITY_SPACE
        wait_props(odkd, node, Parity="space")
        s.bytesize, s.stopbits = 5, serial.STOPBITS_ONE_POINT_FIVE
        wait_props(odkd, node, DataBits=5, HalfStopBits=3)
        s.baudrate = 250000  # no Bnnn code: pyserial goes through TCSETS2 with BOTHER
        wait_props(odkd, node, Baud=250000)
        # The settings read back as set, through TCGETS2.
        a = termios.tcgetattr(s.fd)
        assert a[2] & termios.CSIZE == termios.CS5 and a[2] & termios.CSTOPB
        s.rtscts = True
        wait_props(odkd, node, FlowControl="rts-cts")
        # GET_LINE through the port's user client agrees.
        out = odkd.ctl("call", node, 3).stdout.split()
        assert [int(x) for x in out[:4]] == [250000, 5, 2, 4], out


def test_modem_lines_reach_the_driver_and_the_loopback_inputs_follow(odkd):
    dev, node, path = cuse_loopback(odkd)
    with serial.Serial(path, 115200, timeout=HANG_GUARD) as s:
        wait_props(odkd, node, DTR=True, RTS=True)
        assert s.cts and s.dsr and s.cd
        s.rts = False
        wait_props(odkd, node, RTS=False, DTR=True)
        assert not s.cts and s.dsr
        s.dtr = False
        wait_props(odkd, node, DTR=False)
        assert not s.dsr and not s.cd
        s.dtr = s.rts = True
        wait_props(odkd, node, DTR=True, RTS=True)
        assert s.cts and s.dsr and s.cd


def test_tiocmiwait_wakes_on_a_cts_change(odkd):
    dev, node, path = cuse_loopback(odkd)
    with serial.Serial(path, 115200, timeout=HANG_GUARD) as s:
        before = struct.unpack("11i", fcntl.ioctl(s.fd, TIOCGICOUNT, bytes(44)))[0]
        woke = []
        t = threading.Thread(target=lambda: woke.append(fcntl.ioctl(s.fd, TIOCMIWAIT, TIOCM_CTS)),
                             daemon=True)
        t.start()
        time.sleep(0.3)  # lets the wait begin (not asserted: the wake-up is)
        assert not woke, "TIOCMIWAIT returned before any line changed"
        s.rts = False  # the loopback's CTS follows RTS
        t.join(HANG_GUARD)
        assert woke == [0]
        after = struct.unpack("11i", fcntl.ioctl(s.fd, TIOCGICOUNT, bytes(44)))[0]
        assert after > before


def test_break_reaches_the_driver(odkd):
    dev, node, path = cuse_loopback(odkd)
    with serial.Serial(path, 9600, timeout=HANG_GUARD) as s:
        s.break_condition = True  # TIOCSBRK
        wait_props(odkd, node, Break=True)
        s.break_condition = False  # TIOCCBRK
        wait_props(odkd, node, Break=False)
        s.send_break(0.25)  # TCSBRKP / TCSBRK: on, then off when it is over
        wait_props(odkd, node, Break=False)
        brk = struct.unpack("11i", fcntl.ioctl(s.fd, TIOCGICOUNT, bytes(44)))[9]
        assert brk >= 1


def test_canonical_session_gets_erase_and_cr_to_nl(odkd):
    """What a getty does: canonical lines with CR -> NL; DEL erases."""
    dev, node, path = cuse_loopback(odkd)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        a = termios.tcgetattr(fd)
        a[0] |= termios.ICRNL
        a[3] |= termios.ICANON
        termios.tcsetattr(fd, termios.TCSANOW, a)
        os.write(fd, b"ab\x7fc\r")
        assert select.select([fd], [], [], HANG_GUARD)[0], "no line came back"
        assert os.read(fd, 64) == b"ac\n"
        # Output processing: ONLCR turns NL into CR NL on the line.
        a[1] |= termios.OPOST | termios.ONLCR
        a[0] &= ~termios.ICRNL
        a[3] &= ~termios.ICANON
        termios.tcsetattr(fd, termios.TCSANOW, a)
        os.write(fd, b"x\n")
        got = b""
        while len(got) < 3:
            assert select.select([fd], [], [], HANG_GUARD)[0], got
            got += os.read(fd, 64)
        assert got == b"x\r\n"
    finally:
        os.close(fd)


def test_stty_sets_and_reads_back_the_line(odkd):
    dev, node, path = cuse_loopback(odkd)
    r = subprocess.run(["stty", "-F", path, "19200", "cs7", "parenb", "-parodd", "cstopb"],
                       capture_output=True, text=True, timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    wait_props(odkd, node, Baud=19200, DataBits=7, Parity="even", StopBits=2)
    r = subprocess.run(["stty", "-F", path, "-a"], capture_output=True, text=True,
                       timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    words = r.stdout.replace(";", " ").split()
    assert "19200" in words and all(w in words for w in ("cs7", "parenb", "-parodd", "cstopb")), \
        r.stdout


def test_unplug_hangs_up_the_program(odkd):
    dev, node, path = cuse_loopback(odkd)
    char_dev = props(odkd, node)["OdkCharacterDevice"]
    s = serial.Serial(path, 9600, timeout=None)
    ended = []

    def reader():
        try:
            ended.append(("data", s.read(1)))
        except (serial.SerialException, OSError) as e:
            ended.append(("error", e))
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.3)  # lets the read begin (not asserted)
    odkd.ctl("sim", "unplug", dev)
    t.join(HANG_GUARD)
    assert ended and ended[0][0] == "error", ended
    wait_until(lambda: not os.path.exists(char_dev), f"{char_dev} to go")
    assert not os.path.lexists(path)
    s.close()


def test_picocom_sets_up_the_port(odkd):
    """picocom opens the port and sets its speed (kept with --noreset)."""
    dev, node, path = cuse_loopback(odkd)
    r = subprocess.run(["picocom", "-q", "--noreset", "-b", "115200", "--exit-after", "300", path],
                       capture_output=True, text=True, timeout=HANG_GUARD,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_props(odkd, node, Baud=115200)


def test_minicom_shows_the_line_online_and_echoes_through_the_loopback(odkd):
    """minicom on a terminal of its own: its status line says Online (it
    reads DCD with TIOCMGET; the loopback's DCD follows the DTR that opening
    raised; on a pty port it says Offline), and what is typed comes back
    through the loopback."""
    import pty
    dev, node, path = cuse_loopback(odkd)
    pid, master = pty.fork()
    if pid == 0:
        # minicom draws its status line only on a terminal taller than 24.
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        os.environ.update(TERM="xterm", LANG="C")
        os.execvp("minicom", ["minicom", "-o", "-D", path, "-b", "9600"])
    screen = b""

    def seen(what):
        nonlocal screen
        while select.select([master], [], [], 0.2)[0]:
            try:
                screen += os.read(master, 4096)
            except OSError:
                break
        return what in screen
    try:
        try:
            wait_until(lambda: seen(b"Online"), "minicom's status line to say Online", timeout=15)
        except AssertionError as e:
            raise AssertionError(f"{e}; minicom's screen: {screen[-1500:]!r}") from None
        # (The first drawing says Offline: minicom draws before it asks.)
        assert screen.rfind(b"Online") > screen.rfind(b"Offline")
        os.write(master, b"odk-minicom")
        wait_until(lambda: seen(b"odk-minicom"), "the typed text back through the loopback")
        wait_props(odkd, node, Baud=9600, DataBits=8, Parity="none")
    finally:
        os.write(master, b"\x01x")  # Ctrl-A X: leave (minicom asks; Enter says yes)
        time.sleep(0.3)
        os.write(master, b"\r")
        try:
            wait_until(lambda: os.waitpid(pid, os.WNOHANG)[0] == pid, "minicom to exit")
        except Exception:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(master)


def test_screen_talks_to_the_port(odkd, tmp_path):
    """GNU screen opens the port as its window (detached, no terminal of
    ours needed): text stuffed into the window goes out, comes back through
    the loopback and shows in the window's hardcopy; the speed reaches the
    driver."""
    dev, node, path = cuse_loopback(odkd)
    name = f"odk{os.getpid()}"
    env = dict(os.environ, TERM="xterm", SCREENDIR=str(tmp_path / "screens"))
    os.makedirs(env["SCREENDIR"], mode=0o700)
    subprocess.run(["screen", "-dmS", name, path, "19200"], env=env, check=True, timeout=HANG_GUARD)
    copy = tmp_path / "hardcopy"

    def shown():
        subprocess.run(["screen", "-S", name, "-p", "0", "-X", "hardcopy", str(copy)], env=env,
                       check=True, timeout=HANG_GUARD)
        return copy.exists() and "odk-screen" in copy.read_text(errors="replace")
    try:
        wait_props(odkd, node, Baud=19200)
        subprocess.run(["screen", "-S", name, "-p", "0", "-X", "stuff", "odk-screen"], env=env,
                       check=True, timeout=HANG_GUARD)
        wait_until(shown, "the text back in screen's window")
    finally:
        subprocess.run(["screen", "-S", name, "-X", "quit"], env=env, timeout=HANG_GUARD)


def test_xoff_from_the_line_stops_output_until_xon(odkd):
    """IXON: the XOFF the loopback reflects stops the port's output (a
    non-blocking write gets EAGAIN) and is not read as data; the XON
    restarts it."""
    dev, node, path = cuse_loopback(odkd)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        a = termios.tcgetattr(fd)
        a[0] |= termios.IXON
        termios.tcsetattr(fd, termios.TCSANOW, a)
        wait_props(odkd, node, FlowControl="xon-xoff")
        os.write(fd, b"\x13")  # XOFF, reflected

        def stopped():
            try:
                os.write(fd, b"x")
                return False
            except BlockingIOError:
                return True
        wait_until(stopped, "output to stop on the reflected XOFF")
        with pytest.raises(BlockingIOError):
            os.write(fd, b"y")
        termios.tcflow(fd, termios.TCION)  # sends START (XON), reflected: output runs
        wait_until(lambda: not stopped(), "output to run again after the XON")
        got = b""
        while True:
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                break
            got += os.read(fd, 64)
        assert b"\x13" not in got and b"\x11" not in got, got
    finally:
        os.close(fd)


def test_tcsadrain_applies_the_change_after_the_output_left(odkd):
    """tcsetattr(TCSADRAIN) (TCSETSW) returns once what was written went out
    at the old speed: on a port paced at its baud rate, the output queue is
    empty when it returns, and the new speed reaches the driver after that."""
    dev, node, path = cuse_loopback(odkd, PaceAtBaud=True)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        a = termios.tcgetattr(fd)
        a[0] = a[1] = a[3] = 0  # raw
        a[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
        a[4] = a[5] = termios.B1200
        termios.tcsetattr(fd, termios.TCSANOW, a)
        wait_props(odkd, node, Baud=1200)
        data = bytes(range(48, 48 + 64)) * 3  # 192 bytes: 1.6 s at 1200 8N1
        assert os.write(fd, data) == len(data)
        a[4] = a[5] = termios.B2400
        termios.tcsetattr(fd, termios.TCSADRAIN, a)
        # Asked right after the return: nothing of the old output is left.
        outq = struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        assert outq == 0
        wait_props(odkd, node, Baud=2400)
        got = b""
        while len(got) < len(data):
            r, _, _ = select.select([fd], [], [], HANG_GUARD)
            assert r, f"only {len(got)} of {len(data)} bytes came back"
            got += os.read(fd, len(data))
        assert got == data
    finally:
        os.close(fd)


def test_vmin_vtime_reads(odkd):
    """VMIN 0, VTIME 2: a read with nothing to read returns empty after its
    timeout; VMIN 4: a read waits for four bytes."""
    dev, node, path = cuse_loopback(odkd)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        a = termios.tcgetattr(fd)
        a[6][termios.VMIN], a[6][termios.VTIME] = 0, 2
        termios.tcsetattr(fd, termios.TCSANOW, a)
        assert os.read(fd, 16) == b""
        a[6][termios.VMIN], a[6][termios.VTIME] = 4, 0
        termios.tcsetattr(fd, termios.TCSANOW, a)
        got = []
        t = threading.Thread(target=lambda: got.append(os.read(fd, 16)), daemon=True)
        t.start()
        os.write(fd, b"ab")
        time.sleep(0.3)  # (not asserted: only that two bytes did not end the read)
        assert not got
        os.write(fd, b"cd")
        t.join(HANG_GUARD)
        assert got == [b"abcd"]
        assert fcntl.ioctl(fd, termios.TIOCINQ, b"\0\0\0\0") == b"\0\0\0\0"
    finally:
        os.close(fd)


def test_a_driver_crash_takes_the_node_and_the_restart_brings_it_back(odkd):
    """The CUSE session lives in the driver host (docs/serial.md section 9):
    a crash removes the device node, and the restarted driver makes it again
    under the same name, where programs can open it again."""
    import signal
    dev, node, path = cuse_loopback(odkd)
    char_dev = props(odkd, node)["OdkCharacterDevice"]
    pid = [i for i in odkd.instances() if i["provider"] == dev][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not os.path.exists(char_dev), f"{char_dev} to go with its host")

    def restarted():
        l = [i for i in odkd.instances() if i["provider"] == dev and i["state"] == "running"]
        return l and l[0]["pid"] != pid
    wait_until(restarted, "the driver to restart")
    wait_until(lambda: os.path.exists(char_dev), f"{char_dev} back")
    wait_until(lambda: os.path.realpath(path) == char_dev, "the link back")
    with serial.Serial(path, 9600, timeout=HANG_GUARD) as s:
        s.write(b"again")
        assert s.read(5) == b"again"
