# SPDX-License-Identifier: MIT
"""USB serial adapters end to end: a simulated CDC-ACM or FTDI adapter on
odkd's USB host controller, the usb-cdc-acm or usb-ftdi sample on the
USB-serial base, and pyserial on the tty the port became.

The round trip and the unplug run against both of odkd's sources of USB
devices: the simulator's models, and (in the test guest, make vm-test) a
real device through the libusb source, a CDC-ACM gadget the kernel makes
on dummy_hcd and loops back like the model (usb_gadget.py)."""
import hashlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

import pytest
import serial

from usb_gadget import AcmGadget, load_modules

# This folder's conftest, by its path: in the test guest's session, where
# tests/vm's conftest is loaded too, "import conftest" may find either.
_spec = importlib.util.spec_from_file_location("odk_integration_conftest",
                                               Path(__file__).with_name("conftest.py"))
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
DRIVERS, Odkd, pid_alive, wait_until = (_conftest.DRIVERS, _conftest.Odkd, _conftest.pid_alive,
                                        _conftest.wait_until)
_ours = sys.modules.get("conftest")
sys.modules["conftest"] = _conftest  # libodk reads BUILD from it
from libodk import odkd_fds, odkd_fds_back  # noqa: E402
if _ours is not None:
    sys.modules["conftest"] = _ours

ADAPTERS = [("cdc-acm", "usbmodem", "org.odk.usb-cdc-acm"),
            ("ftdi", "usbserial", "org.odk.usb-ftdi")]
# (model, base, bundle, source); the libusb ones need the guest's kernel.
SOURCES = [pytest.param(a + ("sim",), id=a[0]) for a in ADAPTERS] + [
    pytest.param(("cdc-acm", "usbmodem", "org.odk.usb-cdc-acm", "libusb"), id="cdc-acm-libusb",
                 marks=pytest.mark.vm)]
# The gadget crosses an emulated machine's USB stack: slower than the
# simulator, so a smaller round trip unless asked (make soak-usb).
LIBUSB_ROUND_TRIP = int(os.environ.get("ODK_USB_LIBUSB_BYTES", 512 << 10))


class Adapter:
    """odkd and an adapter plugged on it (plug()), from either source."""

    def __init__(self, tmp_path, model, base, bundle, source):
        self.model, self.base, self.bundle, self.source = model, base, bundle, source
        self.gadget = None
        if source == "sim":
            self.odkd = Odkd(tmp_path)
            return
        # Only the driver under test: the guest's other USB devices (QEMU's
        # FTDI adapter, a keyboard) stay the kernel's.
        load_modules()
        only = tmp_path / "drivers"
        only.mkdir()
        (only / bundle.split(".")[-1]).symlink_to(DRIVERS / bundle.split(".")[-1])
        self.odkd = Odkd(tmp_path, extra_args=["--usb", "libusb"], drivers=(only,))
        # Every device already on the machine has its node (and odkd its
        # descriptor) before a test counts odkd's descriptors.
        have = [d for d in os.listdir("/sys/bus/usb/devices") if "-" in d and ":" not in d]
        wait_until(lambda: len(self.libusb_nodes()) >= len(have),
                   what="the machine's USB devices in the registry")

    def libusb_nodes(self):
        return [n for n in self.odkd.json("tree") if n["class"] == "IOUSBHostDevice"
                and n["properties"].get("OdkUSBSource") == "libusb"]

    def plug(self):
        if self.source == "sim":
            self.node = plug(self.odkd, self.model)
            return self.node
        self.gadget = AcmGadget()
        self.gadget.loop_back()

        def gadget_node():
            return next((n["id"] for n in self.libusb_nodes()
                         if (n["properties"].get("idVendor"), n["properties"].get("idProduct"))
                         == (AcmGadget.VENDOR, AcmGadget.PRODUCT)), None)
        self.node = wait_until(gadget_node, what="the gadget's device node")
        return self.node

    def unplug(self):
        if self.gadget:
            self.gadget.unplug()
        else:
            self.odkd.ctl("usb", "unplug", self.node)

    def close(self):
        self.odkd.stop()
        if self.gadget:
            self.gadget.remove()


@pytest.fixture
def adapter(request, tmp_path):
    a = Adapter(tmp_path, *request.param)
    yield a
    a.close()


def plug(odkd, model):
    return int(odkd.ctl("usb", "plug", model).stdout)


def node(odkd, node_id):
    return next(n for n in odkd.json("tree") if n["id"] == node_id)


def port_for(odkd, base):
    def found():
        links = sorted(p for p in odkd.dev.iterdir() if p.name.startswith(f"tty.{base}-"))
        return links[0] if links else None
    return wait_until(found, what=f"the tty.{base}-N link")


def model_state(odkd, dev):
    return node(odkd, dev)["properties"].get("OdkUSBModelState", {})


def round_trip(port, size):
    data = os.urandom(size)
    errors = []

    def writer():
        try:
            port.write(data)
            port.flush()
        except Exception as e:  # reported by the reader's assertion
            errors.append(e)
    t = threading.Thread(target=writer)
    t.start()
    got = bytearray()
    while len(got) < size:
        chunk = port.read(min(65536, size - len(got)))
        if not chunk:
            break  # the port's timeout: no byte for that long
        got += chunk
    t.join()
    assert not errors, errors
    assert len(got) == size, f"{len(got)} of {size} bytes came back"
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("model,base,bundle", ADAPTERS)
def test_line_settings_and_modem_lines_reach_the_device(odkd, model, base, bundle):
    dev = plug(odkd, model)
    path = port_for(odkd, base)
    with serial.Serial(str(path), 57600, bytesize=8, parity="N", stopbits=1, timeout=10) as p:
        # pyserial raises DTR and RTS when it opens the port.
        want = {"data_bits": 8, "parity": "none", "stop_bits": "1", "dtr": True, "rts": True}
        state = wait_until(
            lambda: (lambda s: s if all(s.get(k) == v for k, v in want.items())
                     and abs(s.get("baud", 0) - 57600) <= 57600 * 0.03 else None)(
                model_state(odkd, dev)),
            what="the device to be told 57600 8N1 with DTR and RTS")
        if model == "cdc-acm":
            assert state["baud"] == 57600  # CDC carries the rate itself
        # A pty port carries the speed, not 7 bits or parity (Linux forces
        # 8N on a pty; the CUSE ports of the serial issue will).
        p.baudrate = 115200
        wait_until(lambda: abs(model_state(odkd, dev).get("baud", 0) - 115200) <= 115200 * 0.03,
                   what="the new speed at the device")
        # A pty has no modem lines (TIOCMGET and TIOCMBIS fail: the CUSE
        # ports of the serial issue will have them): the port's user client
        # sets DTR and RTS (selector 4) and reports the inputs the device
        # sent (selector 5: cts, dsr, ri, dcd).
        port = odkd.json("find", '{"IOProviderClass": "IOSerialBSDClient"}')[0]["id"]

        def lines():
            return [int(v) for v in odkd.ctl("call", port, 5).stdout.split()]
        odkd.ctl("call", port, 4, 0, 1)
        wait_until(lambda: model_state(odkd, dev).get("dtr") is False, what="DTR down")
        # The loopback plug: DSR and DCD follow DTR.
        wait_until(lambda: (lambda l: l[1] == 0 and l[3] == 0)(lines()),
                   what="DSR and DCD down with DTR")
        odkd.ctl("call", port, 4, 1, 1)
        wait_until(lambda: (lambda l: l[1] == 1 and l[3] == 1)(lines()),
                   what="DSR and DCD up with DTR")


@pytest.mark.parametrize("adapter", SOURCES, indirect=True)
def test_8_mib_round_trip(adapter):
    adapter.plug()
    path = port_for(adapter.odkd, adapter.base)
    size = 8 << 20 if adapter.source == "sim" else LIBUSB_ROUND_TRIP
    with serial.Serial(str(path), 921600, timeout=20) as p:
        round_trip(p, size)


@pytest.mark.parametrize("adapter", SOURCES, indirect=True)
def test_unplug_mid_transfer_removes_the_port_and_leaves_nothing(adapter):
    odkd = adapter.odkd
    baseline = odkd_fds(odkd)
    adapter.plug()
    path = port_for(odkd, adapter.base)
    (inst,) = odkd.running()
    model_pid = node(odkd, adapter.node)["properties"].get("OdkUSBModelPid")
    p = serial.Serial(str(path), 115200, timeout=2, write_timeout=2)
    stop = threading.Event()

    def writer():
        chunk = os.urandom(65536)
        while not stop.is_set():
            try:
                p.write(chunk)
            except Exception:
                return  # the port hung up: expected
    t = threading.Thread(target=writer)
    t.start()
    try:
        p.read(4096)  # the transfer is under way
        adapter.unplug()
        wait_until(lambda: not path.exists(), what="the tty link to go")
    finally:
        stop.set()
        t.join(timeout=30)
        try:
            p.close()
        except Exception:
            pass
    assert not t.is_alive(), "a write blocked after the unplug"
    wait_until(lambda: not pid_alive(inst["pid"]), what="the driver's host to exit")
    if model_pid:
        wait_until(lambda: not pid_alive(model_pid), what="the device model to exit")
    wait_until(lambda: odkd_fds_back(odkd, baseline), what="odkd's descriptors back")
    assert "crashed" not in odkd.ctl("log", adapter.bundle).stdout
