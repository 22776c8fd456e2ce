# SPDX-License-Identifier: MIT
"""The network family end to end: two sim NICs on a simulated cable, each
interface in a network namespace the test makes, driven with ping, iperf3
and raw AF_PACKET sockets.  Nothing leaves the machine: the namespaces and
the 10.213.x.0/24 addresses are the test's own and go with it."""
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import CHILD_ENV, HANG_GUARD, wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or not shutil.which("iperf3")
    or not shutil.which("ping"),
    reason="needs root, /dev/net/tun, iperf3 and ping")

_serial = itertools.count()
ETH_TYPE = 0x88B5  # IEEE 802 local experimental


def sh(*args, check=True, timeout=HANG_GUARD):
    r = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=timeout,
                       env=CHILD_ENV)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}):\n"
                             f"{r.stdout}{r.stderr}")
    return r


def in_ns(ns, *args, **kw):
    return sh("ip", "netns", "exec", ns, *args, **kw)


def interface_of(odkd, dev):
    """The IOEthernetInterface node under sim device dev, once it has its
    interface name."""
    nodes = odkd.json("tree")
    ids = {dev}
    for n in nodes:  # parents before children
        if n.get("parent") in ids:
            ids.add(n["id"])
    found = [n for n in nodes if n["id"] in ids and n["class"] == "IOEthernetInterface"
             and "BSD Name" in n["properties"]]
    return found[0] if found else None


def props(odkd, dev):
    n = interface_of(odkd, dev)
    return n["properties"] if n else {}


class Pair:
    """Two net-sim NICs on one cable, one in each of two fresh namespaces."""

    def __init__(self, odkd, extra=({}, {})):
        tag = f"{os.getpid() % 10000}x{next(_serial)}"
        self.odkd = odkd
        self.cable = f"c{tag}"
        self.ns = [f"odkt{tag}a", f"odkt{tag}b"]
        self.addr = ["10.213.0.1", "10.213.0.2"]
        self.devs = [odkd.plug({"model": "net-sim", "cable": self.cable, **extra[i]})
                     for i in range(2)]
        odkd.running(n=2)
        self.names = [wait_until(lambda d=d: interface_of(odkd, d), what="the interface node")
                      ["properties"]["BSD Name"] for d in self.devs]
        for i in range(2):
            sh("ip", "netns", "add", self.ns[i])
        for i in range(2):
            sh("ip", "link", "set", self.names[i], "netns", self.ns[i])
            in_ns(self.ns[i], "ip", "addr", "add", f"{self.addr[i]}/24", "dev", self.names[i])
            in_ns(self.ns[i], "ip", "link", "set", self.names[i], "up")
            in_ns(self.ns[i], "ip", "link", "set", "lo", "up")
        for i in range(2):
            wait_until(lambda i=i: "LOWER_UP" in self.link(i), what="carrier")

    def link(self, i):
        return in_ns(self.ns[i], "ip", "link", "show", self.names[i]).stdout

    def ping(self, count, interval="0.01", check=True, deadline=30):
        """ping -c count; with -w, ping waits for every reply until the
        deadline (a hang guard), so a slow reply on a loaded machine is not
        counted as lost.  A ping meant to fail passes a short deadline."""
        args = ["ping", "-q", "-c", count, "-i", interval, "-w", deadline]
        return in_ns(self.ns[0], *args, self.addr[1], check=check)

    def instance(self, i):
        return [x for x in self.odkd.instances() if x["provider"] == self.devs[i]][0]

    def close(self):
        for ns in self.ns:
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def pair(odkd):
    p = Pair(odkd)
    yield p
    p.close()


def iperf_server(pair):
    srv = subprocess.Popen(["ip", "netns", "exec", pair.ns[1], "iperf3", "-s", "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CHILD_ENV)
    wait_until(lambda: ":5201" in in_ns(pair.ns[1], "ss", "-ltn").stdout, what="iperf3 -s")
    return srv


def iperf_client(pair, seconds):
    return subprocess.Popen(["ip", "netns", "exec", pair.ns[0], "iperf3", "-J", "-c",
                             pair.addr[1], "-t", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=CHILD_ENV)


def test_ping_iperf_unplug_and_replug(pair, odkd):
    out = pair.ping(200).stdout
    assert " 0% packet loss" in out, out

    srv = iperf_server(pair)
    cli = iperf_client(pair, 5)
    out, err = cli.communicate(timeout=HANG_GUARD)
    srv.wait(timeout=HANG_GUARD)
    assert cli.returncode == 0, err
    result = json.loads(out)
    assert result["end"]["sum_received"]["bytes"] > 0

    # The counters reach the registry (refreshed every second).
    wait_until(lambda: props(odkd, pair.devs[1]).get("Counters", {}).get("RxPackets", 0) > 200,
               what="RX counters")

    odkd.ctl("net", "cable", pair.cable, "unplug")
    for i in range(2):
        wait_until(lambda i=i: "NO-CARRIER" in pair.link(i), what="NO-CARRIER")
    assert props(odkd, pair.devs[0])["IOLinkStatus"] is False
    assert pair.ping(2, interval="0.2", check=False, deadline=2).returncode != 0

    odkd.ctl("net", "cable", pair.cable, "plug")
    for i in range(2):
        wait_until(lambda i=i: "LOWER_UP" in pair.link(i), what="carrier back")
    # The neighbour entry failed while the cable was out: ping answers
    # "host unreachable" until ARP resolves again, so wait for one reply,
    # then no loss.
    wait_until(lambda: pair.ping(1, deadline=1, check=False).returncode == 0, what="a reply")
    out = pair.ping(20).stdout
    assert " 0% packet loss" in out, out
    listing = odkd.ctl("net").stdout
    assert pair.names[0] in listing and "link up" in listing
    # odkctl list names the interfaces after the instances.
    listing = odkd.ctl("list").stdout
    assert "NETWORK INTERFACES" in listing
    for name in pair.names:
        assert name in listing


def test_driver_killed_during_iperf_keeps_interface_and_transfer(pair, odkd):
    srv = iperf_server(pair)
    cli = iperf_client(pair, 5)
    # Kill the receiving side's driver once data flows.
    wait_until(lambda: props(odkd, pair.devs[1]).get("Counters", {}).get("RxPackets", 0) > 100,
               what="traffic")
    victim = pair.instance(1)
    os.kill(victim["pid"], signal.SIGKILL)
    # The interface and its address stay while the driver is down.
    addr = in_ns(pair.ns[1], "ip", "-br", "addr", "show", pair.names[1]).stdout
    assert pair.addr[1] in addr
    wait_until(lambda: pair.instance(1)["restarts"] >= 1
               and pair.instance(1)["state"] == "running", what="the restart")
    assert interface_of(odkd, pair.devs[1])["properties"]["BSD Name"] == pair.names[1]
    out, err = cli.communicate(timeout=HANG_GUARD)
    srv.wait(timeout=HANG_GUARD)
    assert cli.returncode == 0, err + out
    assert json.loads(out)["end"]["sum_received"]["bytes"] > 0
    addr = in_ns(pair.ns[1], "ip", "-br", "addr", "show", pair.names[1]).stdout
    assert pair.addr[1] in addr
    assert " 0% packet loss" in pair.ping(10).stdout


RAW_RECEIVER = r"""
import hashlib, socket, sys
ifname, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((ifname, 0))
s.settimeout(20)
print("ready", flush=True)
got = {}
try:
    while len(got) < count:
        f = s.recv(65536)
        size = int.from_bytes(f[14:18], "big")
        ok = len(f) == size and f[18:50] == hashlib.sha256(f[50:]).digest()
        got[size] = ok
except socket.timeout:
    pass
print(" ".join(f"{k}:{int(v)}" for k, v in sorted(got.items())), flush=True)
"""

RAW_SENDER = r"""
import hashlib, os, socket, sys, time
ifname, dst, sizes = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), sys.argv[3]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
src = s.getsockname()[4]
lo, hi = map(int, sizes.split("-"))
for i, size in enumerate(range(lo, hi + 1)):
    payload = os.urandom(size - 50)
    f = dst + src + (0x88B5).to_bytes(2, "big") + size.to_bytes(4, "big") + \
        hashlib.sha256(payload).digest() + payload
    s.send(f)
    if i % 32 == 31:
        time.sleep(0.002)  # stay under the TAP queue's length
"""


def send_frames(pair, lo, hi):
    mac = props(pair.odkd, pair.devs[1])["IOMACAddress"]
    rx = subprocess.Popen(["ip", "netns", "exec", pair.ns[1], sys.executable, "-c",
                           RAW_RECEIVER, pair.names[1], str(hi - lo + 1)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=CHILD_ENV)
    assert rx.stdout.readline().strip() == "ready", rx.stderr.read()
    in_ns(pair.ns[0], sys.executable, "-c", RAW_SENDER, pair.names[0], mac, f"{lo}-{hi}")
    out, err = rx.communicate(timeout=HANG_GUARD)
    got = dict(map(int, x.split(":")) for x in out.split())
    missing = [s for s in range(lo, hi + 1) if s not in got]
    bad = [s for s, ok in got.items() if not ok]
    assert not missing and not bad, f"missing {missing[:20]}..., corrupt {bad[:20]}; {err}"


def test_every_frame_size_and_jumbo_frames_arrive_intact(pair):
    send_frames(pair, 60, 1514)
    for i in range(2):
        in_ns(pair.ns[i], "ip", "link", "set", pair.names[i], "mtu", "9000")
    send_frames(pair, 8950, 9014)
    # Still an IP network at the new MTU.
    out = in_ns(pair.ns[0], "ping", "-q", "-c", "3", "-i", "0.05", "-w", "30", "-s", "8972",
                "-M", "do", pair.addr[1]).stdout
    assert " 0% packet loss" in out, out
    # Above the driver's maximum (9000), a frame does not fit a buffer: it
    # is dropped and counted, never cut short and passed on.
    for i in range(2):
        in_ns(pair.ns[i], "ip", "link", "set", pair.names[i], "mtu", "9100")
    r = in_ns(pair.ns[0], "ping", "-q", "-c", "2", "-i", "0.2", "-W", "1", "-s", "9050", "-M",
              "do", pair.addr[1], check=False)
    assert r.returncode != 0
    wait_until(lambda: props(pair.odkd, pair.devs[0]).get("Counters", {}).get("TxErrors", 0) >= 2,
               what="TX errors counted")
    assert "a frame longer than 9018 bytes" in pair.odkd.log_text()


@pytest.mark.parametrize("fault,words", [("rx-bad-length", "with length"),
                                         ("rx-unknown-buffer", "which it does not hold"),
                                         ("rx-bad-vnet", "with a bad offload header")])
def test_bad_rx_completion_is_dropped_and_counted(odkd, fault, words):
    p = Pair(odkd, extra=({}, {"fault": fault}))
    try:
        r = p.ping(5, interval="0.05", check=False, deadline=3)
        assert r.returncode != 0  # b drops every frame it receives
        # Frames for b's address pass its NIC's filter (ARP requests alone
        # come once a second; multicast to groups b never joined is filtered).
        in_ns(p.ns[0], sys.executable, "-c", FLOOD, p.names[0],
              props(odkd, p.devs[1])["IOMACAddress"], 10)
        wait_until(lambda: props(odkd, p.devs[1]).get("Counters", {}).get("RxErrors", 0) >= 5,
                   what="RX errors counted")
        assert props(odkd, p.devs[1])["Counters"]["RxPackets"] == 0
        assert words in odkd.log_text()
        # Nothing crashed: the driver runs, never restarted.
        inst = p.instance(1)
        assert inst["state"] == "running" and inst["restarts"] == 0
    finally:
        p.close()


def test_interface_goes_with_its_device(odkd):
    dev = odkd.plug({"model": "net-sim", "cable": f"solo{os.getpid()}"})
    name = wait_until(lambda: interface_of(odkd, dev), what="the interface")["properties"][
        "BSD Name"]
    assert name in sh("ip", "-br", "link").stdout
    odkd.ctl("sim", "unplug", dev)
    wait_until(lambda: name not in sh("ip", "-br", "link").stdout, what="the interface to go")


def test_cable_settings_are_checked(odkd):
    r = odkd.ctl("net", "cable", "nosuch", "unplug", check=False)
    assert r.returncode == 1 and "ODK_E_NOT_FOUND" in r.stderr
    r = odkd.ctl("net", "cable", "x", "loss", "lots", check=False)
    assert r.returncode == 2


FLOOD = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
f = bytes.fromhex(sys.argv[2].replace(":", "")) + s.getsockname()[4] + b"\x88\xb5" + bytes(46)
for i in range(int(sys.argv[3])):
    try:
        s.send(f)
    except OSError:  # the queue is full: the kernel drops, as it would on a NIC
        pass
"""


def test_a_flood_beyond_the_pool_and_the_cable_does_not_stall(pair, odkd):
    """More frames than the pool, the TAP queue and the cable's socket hold,
    while the receiving driver is paused: frames may be dropped, but once it
    runs again the path must not stall.  (It once did: with the cable full,
    the sender waited for room while the family had stopped reading for
    lack of buffers, and the wake-up for room was switched off.)"""
    mac = props(odkd, pair.devs[1])["IOMACAddress"]
    receiver = pair.instance(1)["pid"]
    os.kill(receiver, signal.SIGSTOP)
    try:
        in_ns(pair.ns[0], sys.executable, "-c", FLOOD, pair.names[0], mac, 30000)
    finally:
        os.kill(receiver, signal.SIGCONT)
    # The backlog drains first (its frames were queued ahead of ours), then
    # the path is back to normal.
    wait_until(lambda: pair.ping(1, check=False, deadline=2).returncode == 0,
               what="a ping through")
    r = pair.ping(5, interval="0.2", check=False)
    assert " 0% packet loss" in r.stdout, r.stdout
    assert pair.instance(1)["restarts"] == 0


PROBE_RECEIVER = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
s.bind((sys.argv[1], 0))
s.settimeout(20)
print("ready", flush=True)
seen = []
try:
    while True:
        f = s.recv(2048)
        if f[14:17] == b"end":
            break
        seen.append(f[:6].hex())
except socket.timeout:
    seen.append("timeout")
print(" ".join(seen), flush=True)
"""

PROBE_SENDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
src = s.getsockname()[4]
marker = bytes.fromhex(sys.argv[2].replace(":", ""))
for dst in sys.argv[3:]:
    s.send(bytes.fromhex(dst.replace(":", "")) + src + b"\x88\xb5" + b"probe".ljust(46, b"."))
time.sleep(0.05)
s.send(marker + src + b"\x88\xb5" + b"end".ljust(46, b"."))
"""

FOREIGN = "02:00:5e:11:22:33"  # a unicast address nobody here has
GROUP = "01:00:5e:7f:01:02"     # an IPv4 multicast group nobody joined


def probe(pair, *dsts):
    """Sends a frame from a to each of dsts, then one to b's address; says
    which of dsts b's packet socket saw.  A packet socket sees every frame
    the interface receives, for this host or not, so only the NIC's filter
    keeps one away."""
    mac = state(pair, 1)["mac"]
    rx = subprocess.Popen(["ip", "netns", "exec", pair.ns[1], sys.executable, "-c",
                           PROBE_RECEIVER, pair.names[1]],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=CHILD_ENV)
    assert rx.stdout.readline().strip() == "ready", rx.stderr.read()
    in_ns(pair.ns[0], sys.executable, "-c", PROBE_SENDER, pair.names[0], mac, *dsts)
    out, err = rx.communicate(timeout=HANG_GUARD)
    assert "timeout" not in out, f"the marker never came: {out} {err}"
    return {d for d in dsts if d.replace(":", "") in out.split()}


def state(pair, i):
    st = props(pair.odkd, pair.devs[i]).get("IOInterfaceState", {})
    return {**st, "mac": st.get("Address")}


def test_system_filters_and_up_down_reach_the_driver(pair, odkd):
    """ip link set promisc / allmulti / down / up and ip maddr reach the
    driver through odkd (visible in the node's IOInterfaceState, which the
    driver's family writes after calling the driver), and net-sim's receive
    filter follows them."""
    st = wait_until(lambda: state(pair, 1) if state(pair, 1).get("Up") else None,
                    what="the interface up, as the driver heard")
    assert st["Promiscuous"] is False and st["AllMulticast"] is False
    # Not for b, not a joined group: filtered by the NIC, and counted.
    assert probe(pair, FOREIGN, GROUP) == set()
    wait_until(lambda: props(odkd, pair.devs[1]).get("RxFiltered", 0) >= 2,
               what="RxFiltered counted")

    ns, name = pair.ns[1], pair.names[1]
    in_ns(ns, "ip", "link", "set", name, "promisc", "on")
    wait_until(lambda: state(pair, 1).get("Promiscuous"), what="promiscuous reaching the driver")
    assert probe(pair, FOREIGN, GROUP) == {FOREIGN, GROUP}
    in_ns(ns, "ip", "link", "set", name, "promisc", "off")
    wait_until(lambda: state(pair, 1).get("Promiscuous") is False, what="promiscuous off")
    assert probe(pair, FOREIGN) == set()

    in_ns(ns, "ip", "maddr", "add", GROUP, "dev", name)
    wait_until(lambda: GROUP in state(pair, 1).get("Multicast", []),
               what="the multicast list reaching the driver")
    assert probe(pair, FOREIGN, GROUP) == {GROUP}
    in_ns(ns, "ip", "maddr", "del", GROUP, "dev", name)
    wait_until(lambda: GROUP not in state(pair, 1).get("Multicast", [GROUP]),
               what="the group leaving the list")
    other = "01:00:5e:7f:09:09"
    assert probe(pair, GROUP, other) == set()
    in_ns(ns, "ip", "link", "set", name, "allmulticast", "on")
    wait_until(lambda: state(pair, 1).get("AllMulticast"), what="all-multicast")
    assert probe(pair, FOREIGN, other) == {other}
    in_ns(ns, "ip", "link", "set", name, "allmulticast", "off")

    # The system changes the address: the filter follows the interface's.
    in_ns(ns, "ip", "link", "set", name, "address", "02:6f:64:aa:bb:cc")
    wait_until(lambda: state(pair, 1)["mac"] == "02:6f:64:aa:bb:cc", what="the new address")
    in_ns(pair.ns[0], "ip", "neigh", "flush", "dev", pair.names[0])
    assert " 0% packet loss" in pair.ping(5, interval="0.05").stdout
    # Down and up.
    in_ns(ns, "ip", "link", "set", name, "down")
    wait_until(lambda: state(pair, 1).get("Up") is False, what="down reaching the driver")
    in_ns(ns, "ip", "link", "set", name, "up")
    wait_until(lambda: state(pair, 1).get("Up"), what="up reaching the driver")
    wait_until(lambda: "LOWER_UP" in pair.link(1), what="carrier")
    wait_until(lambda: pair.ping(1, deadline=2, check=False).returncode == 0, what="a reply")
    assert " 0% packet loss" in pair.ping(10).stdout
    log = odkd.log_text()
    assert "promiscuous on" in log and "interface down" in log


SINK = r"""
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5301))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
print(n, h.hexdigest(), flush=True)
"""

SOURCE = r"""
import hashlib, random, socket, sys
r = random.Random(int(sys.argv[2]))
s = socket.create_connection((sys.argv[1], 5301), timeout=60)
h, n = hashlib.sha256(), 0
for i in range(160):
    # Odd sizes, so segments end anywhere and checksums cover odd lengths.
    b = r.randbytes(65536 + r.randrange(0, 4099))
    s.sendall(b)
    h.update(b)
    n += len(b)
s.close()
print(n, h.hexdigest(), flush=True)
"""


def transfer_intact(pair, addr, seed):
    """About 11 MB of random bytes over TCP from a to b, compared by hash."""
    sink = subprocess.Popen(["ip", "netns", "exec", pair.ns[1], sys.executable, "-c", SINK, addr],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=CHILD_ENV)
    assert sink.stdout.readline().strip() == "ready", sink.stderr.read()
    sent = in_ns(pair.ns[0], sys.executable, "-c", SOURCE, addr, seed).stdout.split()
    got, err = sink.communicate(timeout=HANG_GUARD)
    assert got.split() == sent, f"sent {sent}, received {got} {err}"


def ethtool_k(pair, i):
    out = in_ns(pair.ns[i], "ethtool", "-k", pair.names[i]).stdout
    return {k.strip(): v.split()[0] for k, v in (l.split(":", 1) for l in out.splitlines()[1:]
                                                  if ":" in l)}


@pytest.mark.skipif(not shutil.which("ethtool"), reason="needs ethtool")
def test_offloads_checksum_and_tso_with_real_tcp(odkd):
    """net-sim declares checksum and TSO offloads: the kernel hands it
    partial checksums and 64 KiB TCP frames (ethtool -k shows them on, and
    the average frame it sends is longer than the MTU), which it completes
    and cuts, and the receiving net-sim coalesces segments again (LRO);
    TCP over IPv4 and IPv6 carries data intact.  A net-sim with
    "offloads": "none" gets neither."""
    p = Pair(odkd)
    try:
        for i in range(2):
            in_ns(p.ns[i], "ip", "addr", "add", f"fd00:213::{i + 1}/64", "dev", p.names[i],
                  "nodad")
        k = ethtool_k(p, 0)
        assert k["tx-checksumming"] == "on", k
        assert k["tcp-segmentation-offload"] == "on", k
        assert props(odkd, p.devs[0])["Offloads"] == 0xf
        transfer_intact(p, p.addr[1], 1)
        transfer_intact(p, "fd00:213::2", 2)
        wait_until(lambda: props(odkd, p.devs[0]).get("Counters", {}).get("TxBytes", 0) > 20e6,
                   what="TX counters")
        c = props(odkd, p.devs[0])["Counters"]
        assert c["TxBytes"] / c["TxPackets"] > 1514, c  # TSO frames came
        assert c["TxErrors"] == 0 and c["TxDrops"] == 0, c
        # The receiving NIC coalesced segments (LRO) into frames longer than
        # the MTU, which the system took.
        r = wait_until(lambda: props(odkd, p.devs[1]).get("Counters") if props(
            odkd, p.devs[1]).get("Counters", {}).get("RxBytes", 0) > 20e6 else None,
                       what="RX counters")
        assert r["RxBytes"] / r["RxPackets"] > 1514 and r["RxErrors"] == 0, r
    finally:
        p.close()
    q = Pair(odkd, extra=({"offloads": "none"}, {"offloads": "none"}))
    try:
        k = ethtool_k(q, 0)
        assert k["tx-checksumming"] == "off" and k["tcp-segmentation-offload"] == "off", k
        transfer_intact(q, q.addr[1], 3)
        c = wait_until(lambda: props(odkd, q.devs[0]).get("Counters") if props(
            odkd, q.devs[0]).get("Counters", {}).get("TxBytes", 0) > 10e6 else None,
                       what="TX counters")
        assert c["TxBytes"] / c["TxPackets"] <= 1514, c
    finally:
        q.close()
