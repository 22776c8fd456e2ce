# SPDX-License-Identifier: MIT
"""A device driver choosing the configuration (odk_usb_device_set_
configuration, IOKit's SetConfiguration), on the simulated bus: the
cdc-ecm model shaped like QEMU's usb-net (`rndis_first`: NetChip's ids,
RNDIS as configuration 2 listed first, CDC-ECM as configuration 1).
usb-cdc-ecm's UsbCdcEcmConfiguration matches the device, selects the
CDC-ECM configuration, its interfaces are published and matched, and
UsbCdcEcm drives the adapter: frames cross the cable to a plain cdc-ecm
adapter.  The guest's tests/vm/guest/test_usb_net.py does the same with
QEMU's own usb-net through the kernel's USB stack."""
import json
import os
import shutil

import pytest

from conftest import wait_until
from test_net import in_ns, sh
from test_usb_cdc_ecm import interface_of, under

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("ping"),
    reason="needs root, /dev/net/tun and ping")


def plug(odkd, args):
    return int(odkd.ctl("usb", "plug", "cdc-ecm", json.dumps(args)).stdout.strip())


def node(odkd, nid):
    return next((n for n in odkd.json("tree") if n["id"] == nid), None)


def test_the_device_driver_selects_the_cdc_ecm_configuration_and_frames_flow(odkd):
    tag = f"{os.getpid() % 10000}c"
    cable, ns = f"cfg{tag}", [f"odkcfg{tag}a", f"odkcfg{tag}b"]
    devs = [plug(odkd, {"cable": cable, "rndis_first": True, "mac": "026f64c00001"}),
            plug(odkd, {"cable": cable, "mac": "026f64c00002"})]
    try:
        ifs = [wait_until(lambda d=d: interface_of(odkd, d), what="the interface node")
               for d in devs]
        dev = node(odkd, devs[0])
        p = dev["properties"]
        assert (p["idVendor"], p["idProduct"], p["bNumConfigurations"]) == (0x0525, 0xa4a2, 2)
        assert p["bConfigurationValue"] == 1
        # The chooser runs on the device node, UsbCdcEcm on its interface.
        chooser = [i for i in odkd.instances()
                   if i.get("provider") == devs[0] and i["state"] == "running"]
        assert chooser and chooser[0]["bundle"] == "org.odk.usb-cdc-ecm", odkd.ctl("list").stdout
        comm = [n for n in under(odkd, devs[0]) if n["class"] == "IOUSBHostInterface"
                and n["properties"]["bInterfaceSubClass"] == 6]
        assert comm and comm[0]["properties"]["bConfigurationValue"] == 1
        assert "selected configuration 1 (CDC-ECM)" in odkd.log_text()
        # The plain adapter has one configuration: no chooser matches it.
        assert not [i for i in odkd.instances() if i.get("provider") == devs[1]]

        names = [n["properties"]["BSD Name"] for n in ifs]
        addr = ["10.215.0.1", "10.215.0.2"]
        for i in range(2):
            sh("ip", "netns", "add", ns[i])
            sh("ip", "link", "set", names[i], "netns", ns[i])
            in_ns(ns[i], "ip", "addr", "add", f"{addr[i]}/24", "dev", names[i])
            in_ns(ns[i], "ip", "link", "set", names[i], "up")
        for i in range(2):
            wait_until(lambda i=i: "LOWER_UP" in in_ns(ns[i], "ip", "link", "show",
                                                         names[i]).stdout, what="carrier")
        # The first reply comes once the neighbours are resolved (pings
        # sent 10 ms apart before that are dropped), then nothing is lost.
        wait_until(lambda: in_ns(ns[0], "ping", "-c", 1, "-w", 1, addr[1],
                                 check=False).returncode == 0, what="a reply")
        out = in_ns(ns[0], "ping", "-q", "-c", 20, "-i", "0.01", "-w", 30, addr[1]).stdout
        assert " 0% packet loss" in out, out
    finally:
        for n in ns:
            sh("ip", "netns", "del", n, check=False)
