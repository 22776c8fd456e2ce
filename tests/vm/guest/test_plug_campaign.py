# SPDX-License-Identifier: MIT
"""The plug campaign on real (emulated) hardware: QEMU's FTDI adapter is
unplugged through QEMU's monitor with bytes in flight both ways and
plugged back, cycle after cycle, with odkd's libusb source and usb-ftdi
driving it.  After every cycle, what the host campaign checks: odkd
answers, the driver's host of that cycle has exited (no crash in its
log), the adapter's nodes and tty are gone; at the end odkd holds no more
descriptors and no more driver hosts than after the first cycle.

ODK_VM_CAMPAIGN_CYCLES sets the cycles: 3 in `make vm-test`, 200 in
`make vm-campaign` (tests/vm/run --env ODK_VM_CAMPAIGN_CYCLES=200)."""
import os
import threading

import pytest
import serial

from guest_devices import MACHINE
from guest_util import qmp, wait_until
from test_usb_libusb import (FTDI, FTDI_PEER, Odkd, RawPort, odk_device, pid_alive, running, tty,
                             usb_device, virtio_port)

pytestmark = pytest.mark.vm(devices=MACHINE)

CYCLES = int(os.environ.get("ODK_VM_CAMPAIGN_CYCLES", 3))


def fds_of(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def one_cycle(odkd, peer_node, n):
    """Plugged: transfer both ways, unplug in the middle, check the end."""
    node = wait_until(lambda: odk_device(odkd, 0x0403, 0x6001), f"cycle {n}: the FTDI's node")
    path = tty(odkd, "usbserial")
    inst = running(odkd, "org.odk.usb-ftdi")
    port = serial.Serial(str(path), 115200, timeout=2, write_timeout=2)
    stop = threading.Event()

    def writer():
        chunk = os.urandom(4096)
        while not stop.is_set():
            try:
                port.write(chunk)
            except Exception:
                return  # the port hung up: expected

    def reader():
        while not stop.is_set():
            try:
                port.read(4096)
            except Exception:
                return
    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        with RawPort(peer_node, timeout=20) as peer:
            assert peer.read(1024), f"cycle {n}: no byte through before the unplug"
            os.write(peer.fd, os.urandom(2048))  # in flight towards odk's side
            qmp("device_del", id="ftdi")
            wait_until(lambda: not path.exists(), f"cycle {n}: odk's tty to go")
            wait_until(lambda: not any(x["id"] == node["id"] for x in odkd.json("tree")),
                       f"cycle {n}: the device node to go")
            # Drain what the adapter sent before it went, for the next cycle.
            peer.timeout = 0.5
            while peer.read(65536):
                pass
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        try:
            port.close()
        except Exception:
            pass
    assert not any(t.is_alive() for t in threads), f"cycle {n}: a read or write blocked"
    wait_until(lambda: not pid_alive(inst["pid"]), f"cycle {n}: the driver's host to exit")
    assert isinstance(odkd.json("list"), list)  # odkd answers
    wait_until(lambda: not usb_device(FTDI), f"cycle {n}: the adapter gone from sysfs")
    qmp("device_add", driver="usb-serial", bus="xhci.0", chardev="ftdiline", id="ftdi",
        serial="ODKFTDI1")


def test_ftdi_unplugged_and_replugged_mid_transfer(tmp_path):
    odkd = Odkd(tmp_path, extra_args=["--usb", "sim,libusb"])
    try:
        wait_until(lambda: usb_device(FTDI), "QEMU's FTDI adapter in sysfs")
        peer_node = wait_until(lambda: virtio_port(FTDI_PEER), f"the {FTDI_PEER} virtio port")
        one_cycle(odkd, peer_node, 1)
        wait_until(lambda: odk_device(odkd, 0x0403, 0x6001), "the FTDI back")
        running(odkd, "org.odk.usb-ftdi")
        fds_after_one = fds_of(odkd.proc.pid)
        for n in range(2, CYCLES + 1):
            print(f"plug campaign: cycle {n}", flush=True)  # where a stuck run stopped (-s)
            one_cycle(odkd, peer_node, n)
        wait_until(lambda: odk_device(odkd, 0x0403, 0x6001), "the FTDI back at the end")
        running(odkd, "org.odk.usb-ftdi")
        # Nothing piled up: one driver host, and odkd's descriptors as after
        # the first cycle (a little slack for a log or socket in passing).
        hosts = [i for i in odkd.instances() if i["bundle"] == "org.odk.usb-ftdi"]
        assert len(hosts) == 1, hosts
        assert fds_of(odkd.proc.pid) <= fds_after_one + 2, (fds_after_one,
                                                            os.listdir(f"/proc/{odkd.proc.pid}/fd"))
        assert "crashed" not in odkd.ctl("log", "org.odk.usb-ftdi").stdout
    finally:
        odkd.stop()
