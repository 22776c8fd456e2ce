# SPDX-License-Identifier: MIT
"""odkd's libusb source on a machine without USB: the kernel's view of
its devices (sysfs's device folders, their descriptors file, usbfs nodes)
is played by a folder tree of the test's own (ODK_USB_SYSFS,
ODK_USB_DEVFS), so that what odkd makes of it can be checked here: the
nodes, IOKit's locationID from the port path, descriptors checked as the
simulator's are.  The real kernel path (hotplug, transfers, kernel
drivers) is tested in the guest: tests/vm/guest/test_usb_libusb.py."""
import struct

import pytest

from conftest import CHILD_ENV, Odkd, wait_until

VENDOR, PRODUCT = 0x1209, 0x7001  # pid.codes test range: no driver matches it


def device_descriptor():
    return struct.pack("<BBHBBBBHHHBBBB", 18, 1, 0x0200, 0xFF, 0, 0, 64, VENDOR, PRODUCT,
                       0x0100, 1, 2, 3, 1)


def config_descriptor(total=32):
    """One vendor-class interface with a bulk pair (high speed)."""
    return (struct.pack("<BBHBBBBB", 9, 2, total, 1, 1, 0, 0x80, 50)
            + struct.pack("<BBBBBBBBB", 9, 4, 0, 0, 2, 0xFF, 0, 0, 0)
            + struct.pack("<BBBBHB", 7, 5, 0x81, 2, 512, 0)
            + struct.pack("<BBBBHB", 7, 5, 0x02, 2, 512, 0))


def fake_device(sysfs, devfs, name, busnum, devnum, descriptors, product):
    d = sysfs / name
    d.mkdir()
    (d / "descriptors").write_bytes(descriptors)
    for attr, value in {"busnum": busnum, "devnum": devnum, "speed": 480,
                        "bConfigurationValue": 1, "manufacturer": "odk",
                        "product": product, "serial": "F1"}.items():
        (d / attr).write_text(f"{value}\n")
    intf = sysfs / f"{name}:1.0"
    intf.mkdir()
    (intf / "bAlternateSetting").write_text(" 0\n")
    node = devfs / f"{busnum:03d}" / f"{devnum:03d}"
    node.parent.mkdir(exist_ok=True)
    node.write_bytes(b"")  # odkd opens it (a regular file stands in for usbfs)


@pytest.fixture
def fake_usb(tmp_path, monkeypatch):
    sysfs, devfs = tmp_path / "sys", tmp_path / "devbususb"
    sysfs.mkdir()
    devfs.mkdir()
    (sysfs / "usb3").mkdir()  # a root hub: not a device a driver opens
    fake_device(sysfs, devfs, "3-1.2", 3, 5, device_descriptor() + config_descriptor(),
                "Good gadget")
    # A configuration whose wTotalLength says 64 where 32 bytes follow.
    fake_device(sysfs, devfs, "3-2", 3, 6, device_descriptor() + config_descriptor(64),
                "Lying gadget")
    monkeypatch.setitem(CHILD_ENV, "ODK_USB_SYSFS", str(sysfs))
    monkeypatch.setitem(CHILD_ENV, "ODK_USB_DEVFS", str(devfs))
    return devfs


def usb_nodes(odkd, cls):
    return [n for n in odkd.json("tree") if n["class"] == cls]


def test_devices_from_sysfs_get_iokit_nodes_and_bad_descriptors_an_error(fake_usb, tmp_path):
    (tmp_path / "o").mkdir()
    odkd = Odkd(tmp_path / "o", extra_args=["--usb", "libusb"])
    try:
        devs = wait_until(lambda: (lambda l: l if len(l) == 2 else None)(
            [n for n in usb_nodes(odkd, "IOUSBHostDevice")
             if n["properties"].get("OdkUSBSource") == "libusb"]), what="two device nodes")
        by_name = {n["properties"]["USB Product Name"]: n for n in devs}
        good = by_name["Good gadget"]["properties"]
        assert (good["idVendor"], good["idProduct"], good["bcdDevice"]) == (VENDOR, PRODUCT, 0x100)
        assert good["locationID"] == 0x03120000  # bus 3, port 1, then port 2
        assert good["OdkUSBDevicePath"] == str(fake_usb / "003" / "005")
        assert good["USB Vendor Name"] == "odk" and good["USB Serial Number"] == "F1"
        assert "OdkUSBError" not in good
        parent = by_name["Good gadget"]["id"]
        ifaces = wait_until(lambda: [n for n in usb_nodes(odkd, "IOUSBHostInterface")
                                     if n.get("parent") == parent], what="the interface node")
        (i,) = ifaces
        assert (i["properties"]["bInterfaceClass"], i["properties"]["bNumEndpoints"],
                i["properties"]["locationID"]) == (0xFF, 2, 0x03120000)
        bad = by_name["Lying gadget"]
        assert "OdkUSBError" in bad["properties"], bad
        assert not [n for n in usb_nodes(odkd, "IOUSBHostInterface")
                    if n.get("parent") == bad["id"]]
        listed = odkd.json("usb")
        assert {d["source"] for d in listed if d["idVendor"] == VENDOR} == {"libusb"}
    finally:
        odkd.stop()
