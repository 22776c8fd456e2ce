# SPDX-License-Identifier: MIT
"""The plug campaign on real (emulated) hardware: QEMU's FTDI adapter is
unplugged through QEMU's monitor with bytes in flight both ways and
plugged back, cycle after cycle, with odkd's libusb source and usb-ftdi
driving it.  After every cycle, what the host campaign checks: odkd
answers, the driver's host of that cycle has exited (no crash in its
log), the adapter's nodes and tty are gone; at the end odkd holds no more
descriptors and no more driver hosts than after the first cycle.

The edu half does the same with QEMU's edu behind a PCIe root port, bound
to vfio-pci and driven by pci-edu through odkd --vfio: DMA round trips run
while QEMU's monitor unplugs it (device_del).  The kernel's remove asks
odkd for the device back (VFIO's request interrupt); odkd withdraws the
node, the driver ends, the kernel's remove completes; device_add plugs it
back, it is bound to vfio-pci again, odkd adopts it, and pci-edu computes
10! on it.

ODK_VM_CAMPAIGN_CYCLES sets the cycles of each half: 3 in `make vm-test`,
200 in `make vm-campaign` (tests/vm/run --env ODK_VM_CAMPAIGN_CYCLES=200)."""
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest
import serial

from guest_devices import MACHINE
from guest_util import qmp, wait_until
from test_usb_libusb import (FTDI, FTDI_PEER, Odkd, RawPort, odk_device, pid_alive, running, tty,
                             usb_device, virtio_port)
from test_pci_vfio import MEM_IN, MEM_OUT, Buffer, Connection, bind_to_vfio, edu

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
        crashes = [line for line in odkd.ctl("log", "org.odk.usb-ftdi").stdout.splitlines()
                   if "crash" in line]
        if crashes:  # name the crash: its lines and its reports (backtraces)
            odkd.ctl("crashes")  # answers once the reports odkd is symbolising are written
            reports = [Path(m) for line in crashes for m in re.findall(r"report (\S+)", line)]
            pytest.fail("a usb-ftdi host crashed:\n" + "\n".join(crashes) + "\n"
                        + "\n".join(r.read_text(errors="replace")[-6000:] for r in reports
                                    if r.exists()))
    finally:
        odkd.stop()


def edu_running(odkd):
    """pci-edu running on the VFIO edu's node: (node, instance), or None."""
    for n in odkd.json("tree"):
        p = n["properties"]
        if n["class"] == "IOPCIDevice" and p.get("OdkPCIBackend") == "vfio" and \
                "OdkPCIError" not in p:
            for i in odkd.instances():
                if i["provider"] == n["id"] and i["state"] == "running" and \
                        i["bundle"] == "org.odk.pci-edu":
                    return n, i
    return None


def edu_cycle(odkd, addr, n):
    """Working: 10!, then DMA round trips while the function is unplugged;
    the end checked; plugged back and bound to vfio-pci."""
    node, inst = wait_until(lambda: edu_running(odkd), f"cycle {n}: pci-edu on the VFIO edu")
    conn = Connection(odkd.state, inst["node"])
    out, back = Buffer(4096), Buffer(4096)
    done, ended = [0], []
    stop = threading.Event()
    try:
        assert conn.call(0, [10], n_out=1)[0] == [3628800], f"cycle {n}: 10!"
        src, dst = conn.register(out, MEM_OUT), conn.register(back, MEM_IN)
        out.write(0, os.urandom(4095))

        def dma():
            # QEMU's edu: the largest DMA is 4095 bytes (test_pci_vfio.py)
            while not stop.is_set():
                try:
                    conn.call_memory(1, [4095, 0], [(src, 0, 4096), (dst, 0, 4096)], n_out=1)
                except Exception as e:  # the driver went with its function
                    ended.append(e)
                    return
                done[0] += 1
        t = threading.Thread(target=dma)
        t.start()
        try:
            wait_until(lambda: done[0] >= 1, f"cycle {n}: a DMA round trip before the unplug")
            qmp("device_del", id="edu")
            wait_until(lambda: not any(x["id"] == node["id"] for x in odkd.json("tree")),
                       f"cycle {n}: the edu node to go")
        finally:
            stop.set()
            t.join(timeout=60)
        assert not t.is_alive(), f"cycle {n}: a DMA call blocked after the removal"
    finally:
        conn.close()
        out.free()
        back.free()
    wait_until(lambda: not pid_alive(inst["pid"]), f"cycle {n}: the driver's host to exit")
    # odkd let go of the device: the kernel's remove completed.
    wait_until(lambda: not Path(f"/sys/bus/pci/devices/{addr}").exists(),
               f"cycle {n}: the kernel's removal of {addr} to complete")
    assert isinstance(odkd.json("list"), list)  # odkd answers
    qmp("device_add", driver="edu", bus="rp1", id="edu")
    d = wait_until(edu, f"cycle {n}: edu back in sysfs")
    assert d.name == addr
    bind_to_vfio(d)


def test_edu_unplugged_mid_dma_and_replugged_through_vfio(tmp_path):
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    d = edu()
    assert d is not None, "no edu device in the guest"
    addr = d.name
    bind_to_vfio(d)
    odkd = Odkd(tmp_path, extra_args=["--vfio", addr])
    try:
        edu_cycle(odkd, addr, 1)
        wait_until(lambda: edu_running(odkd), "pci-edu on the replugged edu")
        fds_after_one = fds_of(odkd.proc.pid)
        for n in range(2, CYCLES + 1):
            print(f"plug campaign (edu): cycle {n}", flush=True)
            edu_cycle(odkd, addr, n)
        node, inst = wait_until(lambda: edu_running(odkd), "pci-edu on edu at the end")
        conn = Connection(odkd.state, inst["node"])
        try:
            assert conn.call(0, [12], n_out=1)[0] == [479001600]
        finally:
            conn.close()
        hosts = [i for i in odkd.instances() if i["bundle"] == "org.odk.pci-edu"]
        assert len(hosts) == 1, hosts
        assert fds_of(odkd.proc.pid) <= fds_after_one + 2, (fds_after_one,
                                                            os.listdir(f"/proc/{odkd.proc.pid}/fd"))
        log = odkd.log_text()
        assert log.count("the kernel asks for the function back") == CYCLES, log[-3000:]
        assert log.count("plugged again and adopted") == CYCLES, log[-3000:]
        assert "crashed" not in odkd.ctl("log", "org.odk.pci-edu").stdout
    finally:
        odkd.stop()
        if (d / "driver").exists():
            (d / "driver" / "unbind").write_text(addr)
        if d.exists():
            (d / "driver_override").write_text("\n")
