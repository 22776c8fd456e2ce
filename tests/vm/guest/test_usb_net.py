# SPDX-License-Identifier: MIT
"""usb-cdc-ecm on QEMU's emulated USB network adapter (usb-net), through
the kernel's USB stack and odk's libusb source, in the guest.

QEMU's usb-net offers RNDIS as its first configuration (value 2) and
CDC-ECM as its second (value 1).  The guest kernel picks CDC-ECM itself;
the test moves the adapter to RNDIS first (through sysfs, as a udev rule
or a kernel preferring RNDIS would), so that usb-cdc-ecm's device driver
(UsbCdcEcmConfiguration) has to select the CDC-ECM configuration through
odkd, whose usbfs source makes the kernel's drivers let go first.
UsbCdcEcm then takes the communication interface from the kernel's
cdc_ether, and its TAP interface reaches QEMU's user-mode network,
restricted to the guest: ping crosses it to QEMU's gateway, 10.0.2.2,
which QEMU itself answers.  The carrier comes from the device's
NETWORK_CONNECTION notification (QEMU 7.2's usb-net always reports
"connected": its set_link does not reach it, so the link going down is
tested on the simulated adapter only).  QEMU's device_del removes the
adapter: the drivers and the interface end."""
import importlib.util
import subprocess
from pathlib import Path

import pytest

from guest_devices import MACHINE
from guest_util import qmp, read, wait_until

_spec = importlib.util.spec_from_file_location(
    "odk_integration_conftest", Path(__file__).resolve().parents[2] / "integration" / "conftest.py")
_host = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_host)
Odkd, pid_alive = _host.Odkd, _host.pid_alive

pytestmark = pytest.mark.vm(devices=MACHINE)

USB_NET = ("0525", "a4a2")
GATEWAY, ADDRESS = "10.0.2.2", "10.0.2.15/24"


def usb_device(ids):
    for d in Path("/sys/bus/usb/devices").iterdir():
        if ":" not in d.name and (read(d / "idVendor"), read(d / "idProduct")) == ids:
            return d
    return None


def sh(*cmd, check=True):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    assert not check or r.returncode == 0, f"{' '.join(map(str, cmd))}: {r.stdout}{r.stderr}"
    return r


def tap_node(odkd):
    nodes = odkd.json("tree")
    found = [n for n in nodes if n["class"] == "IOEthernetInterface"
             and n["properties"].get("BSD Name", "").startswith("odkecm")]
    return found[0] if found else None


def test_usb_net_cdc_ecm_configuration_chosen_and_ping_crosses_to_qemus_gateway(tmp_path):
    sh("modprobe", "tun")
    qmp("device_add", driver="usb-net", netdev="odknet", bus="xhci.0", id="usbnet",
        mac="52:54:00:0d:4b:01")
    plugged, odkd = True, None
    try:
        dev = wait_until(lambda: usb_device(USB_NET), "QEMU's usb-net in sysfs")
        wait_until(lambda: read(dev / "bConfigurationValue") not in (None, "", "0"),
                   "the kernel to configure the adapter")
        (dev / "bConfigurationValue").write_text("2")
        wait_until(lambda: read(dev / "bConfigurationValue") == "2", "the RNDIS configuration")

        odkd = Odkd(tmp_path, extra_args=["--usb", "libusb"])
        node = wait_until(lambda: tap_node(odkd), "usb-cdc-ecm's interface")
        # usb-cdc-ecm's device driver moved the adapter to configuration 1
        # (CDC-ECM), on the kernel's side too.
        assert "selected configuration 1 (CDC-ECM) in place of 2" in odkd.log_text()
        assert read(dev / "bConfigurationValue") == "1"
        name = node["properties"]["BSD Name"]
        usbdev = [n for n in odkd.json("tree") if n["class"] == "IOUSBHostDevice"
                  and n["properties"].get("idVendor") == 0x0525]
        assert usbdev and usbdev[0]["properties"]["OdkUSBSource"] == "libusb"
        assert usbdev[0]["properties"]["bConfigurationValue"] == 1
        # odk holds the communication interface, not the kernel's cdc_ether.
        link = dev / f"{dev.name}:1.0" / "driver"
        assert not link.exists() or link.resolve().name == "usbfs", link.resolve().name
        inst = [i for i in odkd.instances() if i["state"] == "running"
                and i["bundle"] == "org.odk.usb-cdc-ecm"]
        assert len(inst) == 2, odkd.ctl("list").stdout  # the chooser and UsbCdcEcm

        sh("ip", "addr", "add", ADDRESS, "dev", name)
        sh("ip", "link", "set", name, "up")
        # The carrier is the device's word: a driver with a notification
        # endpoint sets the link only from NETWORK_CONNECTION.
        wait_until(lambda: "LOWER_UP" in sh("ip", "link", "show", name).stdout, "carrier")
        assert f"usb-cdc-ecm: {name}: link up" in odkd.log_text()
        assert "52:54:00:0d:4b:01" in sh("ip", "link", "show", name).stdout
        out = sh("ping", "-c", "5", "-i", "0.2", "-W", "10", GATEWAY).stdout
        assert " 0% packet loss" in out, out
        assert int(read(f"/sys/class/net/{name}/statistics/rx_packets")) >= 5

        # Removed by QEMU's monitor: the drivers end, the interface goes.
        qmp("device_del", id="usbnet")
        plugged = False
        wait_until(lambda: not Path(f"/sys/class/net/{name}").exists(), "the interface to go")
        for i in inst:
            wait_until(lambda i=i: not pid_alive(i["pid"]), "the driver's host to exit")
        assert "crashed" not in odkd.ctl("log", "org.odk.usb-cdc-ecm").stdout
    except BaseException:
        if odkd:
            print(odkd.log_text()[-8000:])
        raise
    finally:
        if plugged:
            try:
                qmp("device_del", id="usbnet")
            except Exception:
                pass
        if odkd:
            odkd.stop()
