# SPDX-License-Identifier: MIT
"""usb-cdc-ecm end to end: two simulated CDC-ECM adapters on one "cable"
(the cdc-ecm device model), each driven by the usb-cdc-ecm sample, each
interface in a network namespace the test makes, pinged across.  Nothing
leaves the machine: the namespaces and the 10.214.x.0/24 addresses are the
test's own and go with it."""
import itertools
import json
import os
import shutil

import pytest

from conftest import wait_until
from test_net import in_ns, sh

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("ping"),
    reason="needs root, /dev/net/tun and ping")

_serial = itertools.count()


def plug(odkd, args):
    return int(odkd.ctl("usb", "plug", "cdc-ecm", json.dumps(args)).stdout.strip())


def under(odkd, dev):
    """The nodes below USB device dev."""
    nodes = odkd.json("tree")
    ids, found = {dev}, []
    for n in nodes:  # parents before children
        if n.get("parent") in ids:
            ids.add(n["id"])
            found.append(n)
    return found


def interface_of(odkd, dev):
    found = [n for n in under(odkd, dev) if n["class"] == "IOEthernetInterface"
             and "BSD Name" in n["properties"]]
    return found[0] if found else None


def mac_of(props):
    mac = props.get("MAC Address") or props.get("MAC") or props.get("IOMACAddress")
    return mac.replace(":", "").lower() if isinstance(mac, str) else None


class EcmPair:
    def __init__(self, odkd):
        tag = f"{os.getpid() % 10000}e{next(_serial)}"
        self.odkd = odkd
        self.cable = f"t{tag}"
        self.ns = [f"odke{tag}a", f"odke{tag}b"]
        self.addr = ["10.214.0.1", "10.214.0.2"]
        self.macs = ["026f64e00001", "026f64e00002"]
        self.devs = [plug(odkd, {"cable": self.cable, "mac": self.macs[i],
                                 "serial": f"ECM-{i}"}) for i in range(2)]
        self.nodes = [wait_until(lambda d=d: interface_of(odkd, d), what="the interface node")
                      for d in self.devs]
        self.names = [n["properties"]["BSD Name"] for n in self.nodes]
        for ns in self.ns:
            sh("ip", "netns", "add", ns)
        for i in range(2):
            sh("ip", "link", "set", self.names[i], "netns", self.ns[i])
            in_ns(self.ns[i], "ip", "addr", "add", f"{self.addr[i]}/24", "dev", self.names[i])
            in_ns(self.ns[i], "ip", "link", "set", self.names[i], "up")
        for i in range(2):
            wait_until(lambda i=i: "LOWER_UP" in self.link(i), what="carrier")

    def link(self, i, check=True):
        return in_ns(self.ns[i], "ip", "link", "show", self.names[i], check=check).stdout

    def ping(self, count, deadline=30, check=True):
        return in_ns(self.ns[0], "ping", "-q", "-c", count, "-i", "0.01", "-w", deadline,
                     self.addr[1], check=check)

    def close(self):
        for ns in self.ns:
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def ecm(odkd):
    p = EcmPair(odkd)
    yield p
    p.close()


def test_two_adapters_ping_each_other_with_the_descriptor_macs(ecm, odkd):
    # The MAC is iMACAddress's, on the interface and in the registry.
    for i in range(2):
        link = ecm.link(i)
        want = ":".join(ecm.macs[i][k:k + 2] for k in range(0, 12, 2))
        assert f"link/ether {want} " in link, link
    # The sample asked for the packet filter; the model recorded it.
    state = [n for n in odkd.json("tree") if n["id"] == ecm.devs[0]][0]["properties"]
    assert state["OdkUSBModelState"]["packet_filter"] == 0x0e
    assert state["OdkUSBModelState"]["mac"].lower() == ecm.macs[0]

    out = ecm.ping(50).stdout
    assert " 0% packet loss" in out, out


def test_promiscuous_mode_reaches_the_adapter(ecm, odkd):
    def packet_filter():
        return [n for n in odkd.json("tree") if n["id"] == ecm.devs[1]][0]["properties"][
            "OdkUSBModelState"]["packet_filter"]
    in_ns(ecm.ns[1], "ip", "link", "set", ecm.names[1], "promisc", "on")
    wait_until(lambda: packet_filter() == 0x0f, what="SET_ETHERNET_PACKET_FILTER promiscuous")
    in_ns(ecm.ns[1], "ip", "link", "set", ecm.names[1], "promisc", "off")
    wait_until(lambda: packet_filter() == 0x0e, what="promiscuous off again")
    # Frames still flow.  (The model's cable loses a frame its other end is
    # not reading at that moment, so this asks for replies, not for none lost.)
    wait_until(lambda: ecm.ping(3, deadline=5, check=False).returncode == 0, what="replies")


def test_the_link_follows_the_notifications(ecm, odkd):
    odkd.ctl("usb", "input", ecm.devs[1], "down".encode().hex())
    wait_until(lambda: "NO-CARRIER" in ecm.link(1), what="NO-CARRIER")
    r = ecm.ping(3, deadline=2, check=False)
    assert r.returncode != 0
    odkd.ctl("usb", "input", ecm.devs[1], "up".encode().hex())
    wait_until(lambda: "LOWER_UP" in ecm.link(1), what="carrier back")
    # The neighbour entry failed while the plug was out: the first reply
    # comes after it is resolved again, then nothing is lost.
    wait_until(lambda: ecm.ping(1, deadline=1, check=False).returncode == 0, what="a reply")
    out = ecm.ping(20).stdout
    assert " 0% packet loss" in out, out


def test_unplugging_an_adapter_removes_its_interface(ecm, odkd):
    odkd.ctl("usb", "unplug", ecm.devs[1])
    wait_until(lambda: in_ns(ecm.ns[1], "ip", "link", "show", "dev", ecm.names[1],
                             check=False).returncode != 0,
               what="the interface to go")
    assert all(n["id"] != ecm.devs[1] for n in odkd.json("tree"))
    # The other adapter's interface stays, without a peer to answer.
    assert ecm.names[0] in ecm.link(0)
    assert ecm.ping(2, deadline=2, check=False).returncode != 0
