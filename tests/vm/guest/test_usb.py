# SPDX-License-Identifier: MIT
"""QEMU's usb-kbd on its xhci controller: enumerated by the guest kernel,
with a usbfs node (what libusb opens) and a keyboard input device once
usbhid, loaded on hotplug, binds its interface."""
from pathlib import Path

import pytest

from guest_devices import MACHINE
from guest_util import qmp, read, wait_until

pytestmark = pytest.mark.vm(devices=MACHINE)

QEMU_KBD = ("0627", "0001")  # QEMU's USB keyboard: vendor, product


def kbd():
    for d in Path("/sys/bus/usb/devices").iterdir():
        if (read(d / "idVendor"), read(d / "idProduct")) == QEMU_KBD:
            return d
    return None


def test_usb_keyboard_is_enumerated_with_a_usbfs_node():
    d = wait_until(kbd, "the usb-kbd in /sys/bus/usb/devices")
    bus, dev = int(read(d / "busnum")), int(read(d / "devnum"))
    node = Path(f"/dev/bus/usb/{bus:03d}/{dev:03d}")
    assert node.is_char_device(), f"{node} missing"
    assert read(d / "product") and "Keyboard" in read(d / "product")


def test_usbhid_binds_it_and_a_keyboard_input_device_appears():
    d = wait_until(kbd, "the usb-kbd in /sys/bus/usb/devices")
    intf = d / f"{d.name}:1.0"
    wait_until(lambda: (intf / "driver").exists(), "a driver for the keyboard's interface")
    assert (intf / "driver").resolve().name == "usbhid"

    def event_node():
        for e in Path("/sys/class/input").glob("event*"):
            if str(d.resolve()) in str((e / "device").resolve()):
                return Path("/dev/input") / e.name
        return None
    node = wait_until(event_node, "an input event device of the keyboard")
    wait_until(node.exists, f"{node}")
    assert node.is_char_device()


def test_the_monitor_unplugs_the_keyboard_and_plugs_it_back():
    """QEMU's monitor, reached from the guest, removes a device and adds it
    again (last in this file: it leaves a new keyboard behind)."""
    d = wait_until(kbd, "the usb-kbd in /sys/bus/usb/devices")
    qmp("device_del", id="kbd")
    wait_until(lambda: not d.exists(), f"{d.name} to leave /sys/bus/usb/devices")
    assert kbd() is None
    qmp("device_add", driver="usb-kbd", bus="xhci.0", id="kbd")
    wait_until(kbd, "the usb-kbd to come back")
    with pytest.raises(RuntimeError, match="Duplicate|already"):
        qmp("device_add", driver="usb-kbd", bus="xhci.0", id="kbd")
