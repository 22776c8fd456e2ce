# SPDX-License-Identifier: MIT
"""IOKit's matching rule end to end, with personalities shaped like public
DriverKit projects (src/daemon/core/testdata/wild/): each fixture is
installed with the stand-in driver as its executable, the node it should
match is plugged through the sim bus next to a neighbour that differs in
one matching key, and then:
  - exactly one instance of the fixture runs, on the right node, with the
    personality's score and category;
  - `odkctl match --explain` lists the keys it compared and the keys it
    carried without comparing, and on the neighbour names the failed key;
  - the carried keys are the service's properties, the compared ones not;
  - IOProviderMergeProperties lands on the provider node.
"""
import json
import plistlib
import shutil

import pytest

from conftest import ROOT, TEST_DRIVERS, sign_bundle, wait_until

WILD = ROOT / "src" / "daemon" / "core" / "testdata" / "wild"
STANDIN = TEST_DRIVERS / "standin" / "standin.so"


def usb_device(vendor, product, interfaces):
    """A USB device with its interfaces below it; the interfaces carry the
    device's ids too, as IOKit's do."""
    return {"class": "IOUSBHostDevice",
            "properties": {"idVendor": vendor, "idProduct": product, "bcdDevice": 0x0600,
                           "bDeviceClass": 0, "bDeviceSubClass": 0, "bDeviceProtocol": 0},
            "children": [{"class": "IOUSBHostInterface",
                          "properties": {"idVendor": vendor, "idProduct": product,
                                         "bcdDevice": 0x0600, "bConfigurationValue": 1, **i}}
                         for i in interfaces]}


def pci_device(vendor, device, class_code, **extra):
    return {"class": "IOPCIDevice",
            "properties": {"vendor-id": vendor, "device-id": device, "class-code": class_code,
                           "revision-id": 1, "subsystem-vendor-id": vendor,
                           "subsystem-id": 1, **extra}}


# For each fixture: its bundle id; the device to plug (None: odkd's own
# IOUserResources node) and which of the plugged nodes (the device first,
# then its children) it matches; the neighbour, among the same nodes or
# plugged as neighbour_device; the keys compared; the key the neighbour
# fails on; score and category; carried keys expected on the service node.
FIXTURES = {
    "usb-serial": dict(
        bundle="com.example.driver.UsbSerial",
        device=usb_device(0x0403, 0x6001, [
            {"bInterfaceNumber": 0, "bInterfaceClass": 255, "bInterfaceSubClass": 255,
             "bInterfaceProtocol": 255},
            # The neighbour: the same device's second interface.
            {"bInterfaceNumber": 1, "bInterfaceClass": 255, "bInterfaceSubClass": 255,
             "bInterfaceProtocol": 255}]),
        node=1, neighbour=2,
        compared={"IOProviderClass", "idVendor", "idProduct", "bConfigurationValue",
                  "bInterfaceNumber"},
        fails="bInterfaceNumber", score=2000, category="com.example.driver.UsbSerial",
        carried={"IOPersonalityPublisher": "com.example.driver.UsbSerial",
                 "IOTTYBaseName": "usbserial", "IOMatchDefer": True,
                 "CFBundleIdentifierKernel": "com.apple.driver.driverkit.serial",
                 "LatencyTimer": 2},
        merged={"USBSerialPortOwner": "com.example.driver.UsbSerial"}),
    "usb-hid": dict(
        bundle="com.example.driver.HidKeyboard",
        device=usb_device(0x046d, 0xc31c, [
            {"bInterfaceNumber": 0, "bInterfaceClass": 3, "bInterfaceSubClass": 1,
             "bInterfaceProtocol": 1},
            # The neighbour: the same device's mouse interface.
            {"bInterfaceNumber": 1, "bInterfaceClass": 3, "bInterfaceSubClass": 1,
             "bInterfaceProtocol": 2}]),
        node=1, neighbour=2,
        compared={"IOProviderClass", "bInterfaceClass", "bInterfaceSubClass",
                  "bInterfaceProtocol"},
        fails="bInterfaceProtocol", score=200, category="IODefaultMatchCategory",
        carried={"HIDDefaultBehavior": "", "IOClass": "AppleUserUSBHostHIDDevice",
                 "IOPersonalityPublisher": "com.example.driver.HidKeyboard"}),
    "pci-capture": dict(
        bundle="com.example.driver.Capture",
        device=pci_device(0x1cd7, 0x0012, 0x048000),
        neighbour_device=pci_device(0x1cd8, 0x0012, 0x048000),
        node=0, neighbour=0,
        compared={"IOProviderClass", "IOPCIPrimaryMatch"},
        fails="IOPCIPrimaryMatch", score=1000, category="com.example.driver.Capture",
        carried={"CaptureChannels": 4, "IOUserClientClass": "IOUserUserClient",
                 "UserClientProperties": {"IOClass": "IOUserUserClient",
                                          "IOUserClass": "CaptureUserClient"},
                 "IOServiceDEXTEntitlements": [["com.apple.developer.driverkit.transport.pci"]]}),
    "scsi-parallel": dict(
        bundle="com.example.driver.ScsiParallel",
        device=pci_device(0x1000, 0x0030, 0x010000),
        # The neighbour: the same vendor's SATA controller (class 0x0106).
        neighbour_device=pci_device(0x1000, 0x0030, 0x010601),
        node=0, neighbour=0,
        compared={"IOProviderClass", "IOPCIClassMatch", "IOPCIPrimaryMatch"},
        fails="IOPCIClassMatch", score=500, category="com.example.driver.ScsiParallel",
        carried={"SCSI Initiator Identifier": 7, "IOMaximumSegmentCountRead": 256,
                 "IOClass": "IOUserSCSIParallelInterfaceController"}),
    "virtual-hid": dict(
        bundle="com.example.driver.VirtualHID",
        device=None,
        # The neighbour: a device of another class.
        neighbour_device={"class": "OdkSimDevice", "properties": {"model": "resources?"}},
        node=None, neighbour=0,
        compared={"IOProviderClass", "IOResourceMatch"},
        fails="IOProviderClass", score=0, category="com.example.driver.VirtualHID",
        carried={"UserClientProperties": {"IOClass": "IOUserUserClient",
                                          "IOUserClass": "VirtualHIDUserClient"}}),
    "virtual-audio": dict(
        bundle="com.example.driver.VirtualAudio",
        device=None,
        neighbour_device={"class": "OdkSimDevice", "properties": {"model": "resources?"}},
        node=None, neighbour=0,
        compared={"IOProviderClass", "IOResourceMatch"},
        fails="IOProviderClass", score=10, category="com.example.driver.VirtualAudio",
        carried={"UserClientProperties": {"IOClass": "IOUserUserClient",
                                          "IOUserClass": "VirtualAudioUserClient"},
                 "IOClass": "IOUserAudioDriver"}),
}


def install_fixture(odkd, tmp_path, name):
    """Copies the fixture, puts the stand-in driver in it under the name
    its manifest gives, and installs it."""
    dst = tmp_path / "wild" / name
    shutil.copytree(WILD / name, dst)
    if (dst / "Info.plist").exists():
        exe = plistlib.loads((dst / "Info.plist").read_bytes())["CFBundleExecutable"] + ".so"
    else:
        exe = json.loads((dst / "odk.json").read_text())["executable"]
    shutil.copy(STANDIN, dst / exe)
    (dst / "entitlements.json").write_text(json.dumps(entitlements_for(FIXTURES[name]["device"])))
    sign_bundle(dst)
    assert odkd.ctl("install", dst).stdout.strip() == "installed"
    return dst


def entitlements_for(device):
    """Entitlements covering the fixture's own device (docs/trust.md)."""
    ent = {"sim": True}
    p = (device or {}).get("properties", {})
    if device and device["class"] == "IOUSBHostDevice":
        ent["usb"] = [{"vendor": p["idVendor"], "product": p["idProduct"]}]
    if device and device["class"] == "IOPCIDevice":
        ent["pci"] = [f"0x{p['device-id']:04x}{p['vendor-id']:04x}&0xffffffff"]
    return ent


def plug(odkd, device):
    """Plugs device; the node ids, the device's first, then its children's."""
    out = odkd.ctl("sim", "plug", json.dumps(device)).stdout.split()
    return [int(x) for x in out]


def node_props(odkd, node_id):
    return {n["id"]: n for n in odkd.json("tree")}[node_id]["properties"]


def resources_node(odkd):
    return [n["id"] for n in odkd.json("tree") if n["class"] == "IOUserResources"][0]


def explain_row(odkd, node_id, bundle):
    rows = [r for r in odkd.json("match", "--explain", node_id) if r["bundle"] == bundle]
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_matches_its_node_only(odkd, tmp_path, name):
    fx = FIXTURES[name]
    install_fixture(odkd, tmp_path, name)
    if fx["device"] is None:
        node = resources_node(odkd)
    else:
        ids = plug(odkd, fx["device"])
        node = ids[fx["node"]]
    if "neighbour_device" in fx:
        neighbour = plug(odkd, fx["neighbour_device"])[fx["neighbour"]]
    else:  # a sibling on the same device
        neighbour = ids[fx["neighbour"]]

    # Matched, started, on that node only, with the personality's score and
    # category.
    (inst,) = odkd.running(provider=node)
    assert inst["bundle"] == fx["bundle"] and inst["category"] == fx["category"]
    mine = [i for i in odkd.instances() if i["bundle"] == fx["bundle"]]
    assert [i["provider"] for i in mine] == [node], mine

    row = explain_row(odkd, node, fx["bundle"])
    assert row["matched"] and row["winner"], row
    assert row["score"] == fx["score"] and row["category"] == fx["category"]
    assert set(row["compared"]) == fx["compared"], row
    assert set(fx["carried"]) <= set(row["carried"]), row
    assert not set(row["compared"]) & set(row["carried"])

    # The neighbour differs in one matching key, and explain names it.
    row = explain_row(odkd, neighbour, fx["bundle"])
    assert not row["matched"], row
    assert row["reason"].startswith(fx["fails"] + ":"), row
    text = odkd.ctl("match", "--explain", neighbour).stdout
    line = [l for l in text.splitlines() if fx["bundle"] in l][0]
    assert fx["fails"] in line
    assert "compared:" in text and "carried:" in text

    # Carried keys are the service's properties; compared ones are not.
    svc = node_props(odkd, inst["node"])
    for k, v in fx["carried"].items():
        assert svc.get(k) == v, (k, svc)
    assert not (fx["compared"] - {"IOProviderClass"}) & set(svc), svc
    assert svc["CFBundleIdentifier"] == fx["bundle"]
    # IOProviderMergeProperties went into the provider as the driver started.
    provider = node_props(odkd, node)
    for k, v in fx.get("merged", {}).items():
        assert provider.get(k) == v, provider


def test_sim_children_plug_and_unplug_together(odkd, tmp_path):
    install_fixture(odkd, tmp_path, "usb-serial")
    dev = FIXTURES["usb-serial"]["device"]
    before = len(odkd.json("tree"))
    # A bad child is refused before anything is plugged.
    bad = dict(dev, children=dev["children"] + [{"class": "IOUSBHostInterface",
                                                  "properties": [1]}])
    r = odkd.ctl("sim", "plug", json.dumps(bad), check=False)
    assert r.returncode != 0 and "children[2]" in r.stderr and "properties" in r.stderr
    assert len(odkd.json("tree")) == before
    ids = plug(odkd, dev)
    assert len(ids) == 3
    nodes = {n["id"]: n for n in odkd.json("tree")}
    assert nodes[ids[1]]["parent"] == ids[0] and nodes[ids[2]]["parent"] == ids[0]
    assert "IOService" in nodes[ids[1]]["ancestry"]
    odkd.running(provider=ids[1])
    # An interface is not a device on the bus: only its device unplugs.
    r = odkd.ctl("sim", "unplug", ids[1], check=False)
    assert r.returncode != 0 and "not a device on the sim bus" in r.stderr
    odkd.ctl("sim", "unplug", ids[0])
    assert not set(ids) & {n["id"] for n in odkd.json("tree")}
    wait_until(lambda: not [i for i in odkd.instances()
                            if i["bundle"] == "com.example.driver.UsbSerial"],
               what="the driver on the unplugged interface to go")
