# SPDX-License-Identifier: MIT
"""odk's libusb source on real (emulated) USB devices, in the guest: odkd
started with --usb libusb finds them through sysfs and the kernel's
uevents, opens their usbfs node for the driver host, and the same sample
drivers as on the simulator drive them.

- QEMU's FTDI adapter (usb-serial on qemu-xhci) driven by usb-ftdi: its
  chardev is looped to a virtio serial port of the guest, so the test
  reads and writes the adapter's other end; line settings are seen on the
  bus with usbmon.
- A CDC-ACM gadget the guest kernel makes on dummy_hcd (configfs, the acm
  function) matched by usb-cdc-acm: bytes written on the gadget's
  /dev/ttyGS0 arrive on odk's tty.usbmodem-N and back; the kernel's
  cdc_acm lets go of the interfaces while odk holds them and has them
  back after; the gadget unbound mid-transfer ends the driver cleanly.

Each test passes only through the kernel's USB stack: the device node
names its usbfs path and the libusb source, and the bytes cross a real
host controller driver (xhci, dummy_hcd)."""
import hashlib
import importlib.util
import os
import select
import subprocess
import threading
from pathlib import Path

import pytest
import serial

from guest_devices import MACHINE
from guest_util import qmp, read, wait_until

# odkd as the host tests run it (tests/integration/conftest.py, loaded
# under a name of its own: tests/vm has a conftest too).
_spec = importlib.util.spec_from_file_location(
    "odk_integration_conftest", Path(__file__).resolve().parents[2] / "integration" / "conftest.py")
_host = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_host)
Odkd, pid_alive = _host.Odkd, _host.pid_alive

pytestmark = pytest.mark.vm(devices=MACHINE)

FTDI = ("0403", "6001")
GADGET = ("1d6b", "0104")
FTDI_PEER = "org.odk.ftdi-peer"  # guest_devices.MACHINE's virtio port
# 1 MiB each way through the gadget (the size); ODK_VM_ACM_BYTES
# lowers it when the emulated machine is too slow.
ACM_BYTES = int(os.environ.get("ODK_VM_ACM_BYTES", 1 << 20))


def usb_device(ids):
    for d in Path("/sys/bus/usb/devices").iterdir():
        if ":" not in d.name and (read(d / "idVendor"), read(d / "idProduct")) == ids:
            return d
    return None


def kernel_driver(intf):
    link = intf / "driver"
    return link.resolve().name if link.exists() else None


def odk_device(odkd, vendor, product):
    for n in odkd.json("tree"):
        p = n.get("properties", {})
        if n.get("class") == "IOUSBHostDevice" and p.get("idVendor") == vendor \
                and p.get("idProduct") == product:
            return n
    return None


def tty(odkd, base):
    def found():
        links = sorted(p for p in odkd.dev.iterdir() if p.name.startswith(f"tty.{base}-"))
        return links[0] if links else None
    return wait_until(found, f"odk's tty.{base}-N")


def virtio_port(name):
    for d in Path("/sys/class/virtio-ports").glob("vport*"):
        if read(d / "name") == name:
            return Path("/dev") / d.name
    return None


class RawPort:
    """A character device that is no terminal (a virtio serial port), with
    pyserial's read/write/flush."""

    def __init__(self, path, timeout):
        self.fd, self.timeout = os.open(path, os.O_RDWR | os.O_NOCTTY), timeout

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def flush(self):
        pass

    def read(self, n):
        if not select.select([self.fd], [], [], self.timeout)[0]:
            return b""
        return os.read(self.fd, n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def running(odkd, bundle):
    def found():
        l = [i for i in odkd.instances() if i["bundle"] == bundle and i["state"] == "running"]
        return l[0] if l else None
    return wait_until(found, f"{bundle} running")


def pump(src, dst, size, what):
    """Writes size random bytes on src, reads them on dst; the SHA-256s
    match."""
    data = os.urandom(size)
    errors = []

    def writer():
        try:
            src.write(data)
            src.flush()
        except Exception as e:  # reported below
            errors.append(e)
    t = threading.Thread(target=writer)
    t.start()
    got = bytearray()
    while len(got) < size:
        chunk = dst.read(min(65536, size - len(got)))
        if not chunk:
            break  # no byte for the port's timeout
        got += chunk
    t.join()
    assert not errors, errors
    assert len(got) == size, f"{what}: {len(got)} of {size} bytes arrived"
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), what


@pytest.fixture
def odkd_libusb(tmp_path):
    d = Odkd(tmp_path, extra_args=["--usb", "sim,libusb"])
    yield d
    d.stop()


# ---- QEMU's FTDI adapter ----------------------------------------------------

def test_ftdi_adapter_through_usbfs_bytes_both_ways_and_line_settings(odkd_libusb):
    odkd = odkd_libusb
    subprocess.run(["modprobe", "usbmon"], check=True)
    dev = wait_until(lambda: usb_device(FTDI), "QEMU's FTDI adapter in sysfs")
    intf = dev / f"{dev.name}:1.0"
    node = wait_until(lambda: odk_device(odkd, 0x0403, 0x6001), "the FTDI's IOUSBHostDevice")
    props = node["properties"]
    assert props["OdkUSBSource"] == "libusb"
    bus, num = int(read(dev / "busnum")), int(read(dev / "devnum"))
    assert props["OdkUSBDevicePath"] == f"/dev/bus/usb/{bus:03d}/{num:03d}"
    assert props["locationID"] >> 24 == bus
    path = tty(odkd, "usbserial")
    inst = running(odkd, "org.odk.usb-ftdi")
    assert kernel_driver(intf) in (None, "usbfs"), \
        f"the kernel's {kernel_driver(intf)} still has the interface"

    mon = open(f"/sys/kernel/debug/usb/usbmon/{bus}u", "rb", buffering=0)
    os.set_blocking(mon.fileno(), False)

    def bus_log():
        try:
            return mon.read(1 << 20) or b""
        except BlockingIOError:
            return b""
    peer_node = wait_until(lambda: virtio_port(FTDI_PEER), f"the {FTDI_PEER} virtio port")
    with serial.Serial(str(path), 57600, timeout=20) as port, \
            RawPort(peer_node, timeout=20) as peer:
        pump(port, peer, 16 << 10, "odk's tty to the adapter's line")
        pump(peer, port, 16 << 10, "the adapter's line to odk's tty")
        # A new speed is FTDI's SET_BAUDRATE (vendor request 3; 9600 baud
        # is divisor 0x4138) on the bus, as usbmon shows its setup packet.
        while bus_log():
            pass
        port.baudrate = 9600
        seen = bytearray()
        wait_until(lambda: seen.extend(bus_log()) or b" s 40 03 4138 " in seen,
                   "FTDI's SET_BAUDRATE for 9600 baud on the bus (usbmon)")
    mon.close()
    assert pid_alive(inst["pid"])
    assert "crashed" not in odkd.ctl("log", "org.odk.usb-ftdi").stdout


# ---- a CDC-ACM gadget on dummy_hcd ------------------------------------------

GADGET_DIR = Path("/sys/kernel/config/usb_gadget/odk")


@pytest.fixture
def acm_gadget():
    for m in ("dummy_hcd", "libcomposite", "usb_f_acm"):
        subprocess.run(["modprobe", m], check=True)
    cfg = Path("/sys/kernel/config")
    if not (cfg / "usb_gadget").exists():
        subprocess.run(["mount", "-t", "configfs", "configfs", str(cfg)], check=True)
    g = GADGET_DIR
    g.mkdir()
    (g / "idVendor").write_text("0x1d6b")
    (g / "idProduct").write_text("0x0104")
    (g / "bcdDevice").write_text("0x0100")
    (g / "strings/0x409").mkdir()
    (g / "strings/0x409/manufacturer").write_text("odk")
    (g / "strings/0x409/product").write_text("odk ACM gadget")
    (g / "strings/0x409/serialnumber").write_text("ODK0001")
    (g / "configs/c.1").mkdir()
    (g / "functions/acm.usb0").mkdir()
    (g / "configs/c.1/acm.usb0").symlink_to(g / "functions/acm.usb0")
    udc = sorted(os.listdir("/sys/class/udc"))[0]
    (g / "UDC").write_text(udc)
    yield g
    if read(g / "UDC"):
        (g / "UDC").write_text("\n")
    (g / "configs/c.1/acm.usb0").unlink()
    (g / "functions/acm.usb0").rmdir()
    (g / "configs/c.1").rmdir()
    (g / "strings/0x409").rmdir()
    g.rmdir()


def test_cdc_acm_gadget_round_trip_and_the_kernel_driver_detached_and_back(acm_gadget,
                                                                           tmp_path):
    dev = wait_until(lambda: usb_device(GADGET), "the gadget on dummy_hcd's bus")
    intf = dev / f"{dev.name}:1.0"
    wait_until(lambda: kernel_driver(intf) == "cdc_acm", "the kernel's cdc_acm on interface 0")
    wait_until(lambda: any(Path("/dev").glob("ttyACM*")), "/dev/ttyACM*")

    odkd = Odkd(tmp_path, extra_args=["--usb", "libusb"])
    try:
        node = wait_until(lambda: odk_device(odkd, 0x1d6b, 0x0104), "the gadget's node")
        assert node["properties"]["OdkUSBSource"] == "libusb"
        path = tty(odkd, "usbmodem")
        inst = running(odkd, "org.odk.usb-cdc-acm")
        # While odk holds the interfaces, cdc_acm has neither (and its
        # ttyACM is gone).
        assert kernel_driver(intf) in (None, "usbfs")
        assert not any(Path("/dev").glob("ttyACM*"))
        gs = wait_until(lambda: Path("/dev/ttyGS0").exists() and Path("/dev/ttyGS0"),
                        "/dev/ttyGS0")
        with serial.Serial(str(path), 115200, timeout=20) as port, \
                serial.Serial(str(gs), 115200, timeout=20) as gadget:
            pump(gadget, port, ACM_BYTES, "ttyGS0 to odk's tty")
            pump(port, gadget, ACM_BYTES, "odk's tty to ttyGS0")
        assert pid_alive(inst["pid"])
        # A driver that crashes lets go of the interfaces too: odkd hands
        # them back to the kernel, then the restarted driver takes them.
        os.kill(inst["pid"], 9)
        wait_until(lambda: "interface 0 is the kernel's again" in odkd.log_text(),
                   "odkd to give interface 0 back to the kernel after the crash")
        wait_until(lambda: running(odkd, "org.odk.usb-cdc-acm")["pid"] != inst["pid"],
                   "the driver restarted")
        tty(odkd, "usbmodem")
    except BaseException:
        print(odkd.log_text()[-6000:])
        raise
    finally:
        odkd.stop()
    # odkd's end gave the interfaces back: cdc_acm binds again.
    wait_until(lambda: kernel_driver(intf) == "cdc_acm", "cdc_acm bound again after odk")


def test_gadget_unbound_mid_transfer_ends_the_driver_cleanly(acm_gadget, odkd_libusb):
    odkd = odkd_libusb
    wait_until(lambda: usb_device(GADGET), "the gadget on dummy_hcd's bus")
    node = wait_until(lambda: odk_device(odkd, 0x1d6b, 0x0104), "the gadget's node")
    path = tty(odkd, "usbmodem")
    inst = running(odkd, "org.odk.usb-cdc-acm")
    port = serial.Serial(str(path), 115200, timeout=2, write_timeout=2)
    gs = wait_until(lambda: Path("/dev/ttyGS0").exists() and Path("/dev/ttyGS0"), "/dev/ttyGS0")
    gadget = serial.Serial(str(gs), 115200, timeout=2)
    stop = threading.Event()

    def writer():
        chunk = os.urandom(4096)
        while not stop.is_set():
            try:
                gadget.write(chunk)
            except Exception:
                return  # the gadget went: expected
    t = threading.Thread(target=writer)
    t.start()
    try:
        assert port.read(1024), "no byte through before the unplug"
        (acm_gadget / "UDC").write_text("\n")  # the device leaves the bus
        wait_until(lambda: not path.exists(), "odk's tty to go")
        wait_until(lambda: not any(n["id"] == node["id"] for n in odkd.json("tree")),
                   "the device node to go")
    finally:
        stop.set()
        t.join(timeout=30)
        for p in (port, gadget):
            try:
                p.close()
            except Exception:
                pass
    wait_until(lambda: not pid_alive(inst["pid"]), "the driver's host to exit")
    assert "crashed" not in odkd.ctl("log", "org.odk.usb-cdc-acm").stdout
    assert not [n for n in odkd.json("tree") if n.get("class") == "IOUSBHostInterface"
                and n.get("properties", {}).get("idVendor") == 0x1d6b]


# ---- QEMU's monitor unplugs the FTDI mid-transfer (last: it leaves a new
# adapter behind) ---------------------------------------------------------

def test_ftdi_removed_by_the_monitor_mid_transfer_ends_the_driver_cleanly(odkd_libusb):
    odkd = odkd_libusb
    wait_until(lambda: usb_device(FTDI), "QEMU's FTDI adapter in sysfs")
    node = wait_until(lambda: odk_device(odkd, 0x0403, 0x6001), "the FTDI's IOUSBHostDevice")
    path = tty(odkd, "usbserial")
    inst = running(odkd, "org.odk.usb-ftdi")
    peer_node = wait_until(lambda: virtio_port(FTDI_PEER), f"the {FTDI_PEER} virtio port")
    port = serial.Serial(str(path), 115200, timeout=2, write_timeout=2)
    stop = threading.Event()

    def writer():
        chunk = os.urandom(4096)
        while not stop.is_set():
            try:
                port.write(chunk)
            except Exception:
                return  # the port hung up: expected
    t = threading.Thread(target=writer)
    t.start()
    try:
        with RawPort(peer_node, timeout=20) as peer:
            assert peer.read(1024), "no byte through before the unplug"
            qmp("device_del", id="ftdi")
            wait_until(lambda: not path.exists(), "odk's tty to go")
            wait_until(lambda: not any(n["id"] == node["id"] for n in odkd.json("tree")),
                       "the device node to go")
    finally:
        stop.set()
        t.join(timeout=30)
        try:
            port.close()
        except Exception:
            pass
    assert not t.is_alive(), "a write blocked after the unplug"
    wait_until(lambda: not pid_alive(inst["pid"]), "the driver's host to exit")
    assert "crashed" not in odkd.ctl("log", "org.odk.usb-ftdi").stdout
    # Plugged again, the same adapter comes back through hotplug.
    qmp("device_add", driver="usb-serial", bus="xhci.0", chardev="ftdiline", id="ftdi",
        serial="ODKFTDI1")
    wait_until(lambda: odk_device(odkd, 0x0403, 0x6001), "the FTDI back after device_add")
    tty(odkd, "usbserial")
