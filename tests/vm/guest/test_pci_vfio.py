# SPDX-License-Identifier: MIT
"""The PCI family's VFIO backend on a real (emulated) function: QEMU's edu
behind intel-iommu, bound to vfio-pci, taken by odkd --vfio and driven by
the same pci-edu driver as on the simulator: factorial, a DMA round trip
through the real IOMMU, MSI interrupts counted; then INTx (QEMU's edu
raises its level line when MSI is off), each one unmasked after the
driver's handler acknowledged it.  Passes only if the VFIO path was used
(the node says so, and no model process exists)."""
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guest_devices import MACHINE
from guest_util import wait_until

# The host suite's odkd fixture class and libodk (its conftest is loaded
# under another name: tests/vm has a conftest of its own).
INTEGRATION = Path(__file__).resolve().parents[2] / "integration"
sys.path.insert(0, str(INTEGRATION))
_spec = importlib.util.spec_from_file_location("integration_conftest", INTEGRATION / "conftest.py")
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
Odkd = _conftest.Odkd
DRIVERS = _conftest.DRIVERS
sign_bundle = _conftest.sign_bundle
_ours = sys.modules.get("conftest")
sys.modules["conftest"] = _conftest  # libodk reads BUILD from it
from libodk import MEM_IN, MEM_OUT, Buffer, Connection, OdkError  # noqa: E402
if _ours is not None:
    sys.modules["conftest"] = _ours

pytestmark = pytest.mark.vm(devices=MACHINE)


def edu():
    for d in Path("/sys/bus/pci/devices").iterdir():
        if (d / "vendor").read_text().strip() == "0x1234" and \
                (d / "device").read_text().strip() == "0x11e8":
            return d
    return None


def bind_to_vfio(d):
    """Binds the function at sysfs folder d to vfio-pci (a replugged one is
    a new device: it needs this again)."""
    addr = d.name
    (d / "driver_override").write_text("vfio-pci")
    if (d / "driver").exists():
        (d / "driver" / "unbind").write_text(addr)
    Path("/sys/bus/pci/drivers_probe").write_text(addr)
    wait_until(lambda: (d / "driver").exists() and
               os.readlink(d / "driver").endswith("/vfio-pci"), "edu bound to vfio-pci")


@pytest.fixture
def vfio_odkd(tmp_path):
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    d = edu()
    assert d is not None, "no edu device in the guest"
    addr = d.name
    bind_to_vfio(d)
    odkd = Odkd(tmp_path, extra_args=["--vfio", addr])
    try:
        yield odkd, addr
    finally:
        odkd.stop()
        if (d / "driver").exists():
            (d / "driver" / "unbind").write_text(addr)
        if d.exists():
            (d / "driver_override").write_text("\n")


def test_pci_edu_drives_the_real_edu_through_vfio(vfio_odkd):
    odkd, addr = vfio_odkd
    [fn] = [n for n in odkd.json("tree") if n["class"] == "IOPCIDevice"]
    p = fn["properties"]
    assert p["OdkPCIBackend"] == "vfio" and p["location"] == addr, p
    assert "OdkPCIError" not in p, p["OdkPCIError"]
    assert (p["vendor-id"], p["device-id"]) == (0x1234, 0x11E8)
    inst = odkd.running(provider=fn["id"])[0]
    assert inst["bundle"] == "org.odk.pci-edu"
    assert "on the vfio bus" in odkd.ctl("log", "org.odk.pci-edu").stdout
    assert not subprocess.run(["pgrep", "-f", "odk-pci-model"], capture_output=True).stdout
    conn = Connection(odkd.state, inst["node"])
    out, back = Buffer(4096), Buffer(4096)
    try:
        f = 1
        for n in range(1, 13):
            f *= n
            assert conn.call(0, [n], n_out=1)[0] == [f], f"{n}!"
        # A DMA round trip through the real IOMMU: the app's pages, mapped
        # into the container, read and written by QEMU's edu.  QEMU's range
        # check refuses a DMA that ends exactly at its buffer's end (it
        # stops the machine), so the largest is 4095 bytes.
        src, dst = conn.register(out, MEM_OUT), conn.register(back, MEM_IN)
        size = 4095
        data = bytes((k * 7 + 3) & 0xFF for k in range(size))
        out.write(0, data)
        assert conn.call_memory(1, [size, 0], [(src, 0, 4096), (dst, 0, 4096)],
                                n_out=1)[0] == [size]
        assert back.read(0, size) == data
        # MSI: ten raised, ten counted (plus the two of the DMA).
        before = conn.call(2, n_out=4)[0][0]
        conn.call(3, [10])
        wait_until(lambda: conn.call(2, n_out=4)[0][0] >= before + 10, "10 MSIs")
        time.sleep(0.2)
        assert conn.call(2, n_out=4)[0][0] == before + 10
    finally:
        conn.close()
        out.free()
        back.free()


def host_lock_limit(pid):
    """The host's RLIMIT_MEMLOCK soft limit in bytes (/proc/PID/limits)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max locked memory"):
            return line.split()[3]
    return None


def test_a_driver_keeps_64_mib_pinned_for_its_device_through_vfio(vfio_odkd):
    """Stories 6 and 14: VFIO pins every page mapped for DMA and counts it
    against the host's RLIMIT_MEMLOCK (8 MiB by default; the sandboxed host
    has no CAP_IPC_LOCK).  odkd raises the host to the node's
    OdkDMALockLimitMB (1 GiB), so a 64 MiB frame ring maps."""
    odkd, _ = vfio_odkd
    [fn] = [n for n in odkd.json("tree") if n["class"] == "IOPCIDevice"]
    assert fn["properties"]["OdkDMALockLimitMB"] == 1024
    inst = odkd.running(provider=fn["id"])[0]
    assert host_lock_limit(inst["pid"]) == str(1 << 30)
    conn = Connection(odkd.state, inst["node"])
    ring = Buffer(64 << 20)
    try:
        bid = conn.register(ring, MEM_IN)
        (segments,), _ = conn.call_memory(14, [], [(bid, 0, 64 << 20)], n_out=1)
        assert segments >= 1
        conn.call(15)  # unpinned
        (segments,), _ = conn.call_memory(14, [], [(bid, 0, 64 << 20)], n_out=1)
        assert segments >= 1
    finally:
        conn.close()
        ring.free()


@contextlib.contextmanager
def edu_with_personality(tmp_path, **keys):
    """odkd --vfio on the edu, driven by pci-edu signed again with keys
    added to its personality: (odkd, the running instance)."""
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    d = edu()
    assert d is not None, "no edu device in the guest"
    addr = d.name
    bind_to_vfio(d)
    bundle = tmp_path / "drivers" / "pci-edu-changed"
    bundle.mkdir(parents=True)
    shutil.copy(DRIVERS / "pci-edu" / "pci-edu.so", bundle)
    manifest = json.loads((DRIVERS / "pci-edu" / "odk.json").read_text())
    manifest["personalities"]["PciEdu"].update(keys)
    (bundle / "odk.json").write_text(json.dumps(manifest))
    sign_bundle(bundle)
    odkd = Odkd(tmp_path, extra_args=["--vfio", addr], drivers=(bundle.parent,))
    try:
        fn = wait_until(lambda: next((n for n in odkd.json("tree") if n["class"] == "IOPCIDevice"),
                                     None), "the edu node")
        yield odkd, wait_until(lambda: (odkd.running(provider=fn["id"]) or [None])[0], "pci-edu")
    finally:
        odkd.stop()
        if (d / "driver").exists():
            (d / "driver" / "unbind").write_text(addr)
        if d.exists():
            (d / "driver_override").write_text("\n")


def test_past_the_lock_limit_a_dma_mapping_fails_naming_the_limit(tmp_path):
    with edu_with_personality(tmp_path, OdkDMALockLimitMB=16) as (odkd, inst):
        assert host_lock_limit(inst["pid"]) == str(16 << 20)
        conn = Connection(odkd.state, inst["node"])
        ring = Buffer(64 << 20)
        try:
            bid = conn.register(ring, MEM_IN)
            with pytest.raises(OdkError) as e:
                conn.call_memory(14, [], [(bid, 0, 64 << 20)], n_out=1)
            assert e.value.name == "ODK_E_NOMEM", e.value.name
            log = odkd.ctl("log", "org.odk.pci-edu").stdout
            assert "RLIMIT_MEMLOCK" in log and "16384 KiB" in log and "OdkDMALockLimitMB" in log, log
            # Under the limit it maps, and the failed one left nothing pinned.
            (segments,), _ = conn.call_memory(14, [], [(bid, 0, 8 << 20)], n_out=1)
            assert segments >= 1
        finally:
            conn.close()
            ring.free()


def test_intx_through_vfio_is_unmasked_after_each_interrupt(tmp_path):
    """pci-edu asked for INTx (its personality): QEMU's edu raises its
    level-triggered line, VFIO masks it when it fires, the driver's handler
    acknowledges the device and the family unmasks it through the unmask
    eventfd.  Without the unmask the first interrupt would be the last."""
    with edu_with_personality(tmp_path, PciEduInterrupt="INTx") as (odkd, inst):
        log = odkd.ctl("log", "org.odk.pci-edu").stdout
        assert "INTx" in log and "on the vfio bus" in log, log
        conn = Connection(odkd.state, inst["node"])
        try:
            before = conn.call(2, n_out=4)[0][0]
            conn.call(3, [10])
            wait_until(lambda: conn.call(2, n_out=4)[0][0] >= before + 10, "10 INTx")
            time.sleep(0.2)
            assert conn.call(2, n_out=4)[0][0] == before + 10
            assert conn.call(0, [10], n_out=1)[0] == [3628800]
        finally:
            conn.close()


def unbind(d):
    if (d / "driver").exists():
        (d / "driver" / "unbind").write_text(d.name)
    (d / "driver_override").write_text("\n")


def vfio_nodes(odkd):
    return [n for n in odkd.json("tree")
            if n["class"] == "IOPCIDevice" and n["properties"].get("OdkPCIBackend") == "vfio"]


def factorial_10(odkd, node_id):
    inst = wait_until(lambda: (odkd.running(provider=node_id) or [None])[0], "pci-edu")
    conn = Connection(odkd.state, inst["node"])
    try:
        assert conn.call(0, [10], n_out=1)[0] == [3628800]
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["named", "any"])
def test_a_function_bound_to_vfio_after_odkds_start_is_adopted(tmp_path, how):
    """--vfio ADDRESS of a function not bound to vfio-pci yet: a node says
    why it cannot be opened, and gives way to the function's own once it is
    bound.  --vfio any: nothing at first; the function once bound."""
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    d = edu()
    assert d is not None, "no edu device in the guest"
    addr = d.name
    unbind(d)
    odkd = Odkd(tmp_path, extra_args=["--vfio", addr if how == "named" else "any"])
    try:
        if how == "named":
            [n] = wait_until(lambda: vfio_nodes(odkd), "the error node")
            assert "OdkPCIError" in n["properties"], n
            assert not [i for i in odkd.instances() if i["provider"] == n["id"]]
        else:
            time.sleep(0.5)
            assert vfio_nodes(odkd) == []
        bind_to_vfio(d)
        n = wait_until(lambda: next((n for n in vfio_nodes(odkd)
                                     if "OdkPCIError" not in n["properties"]), None),
                       "the adopted function's node")
        assert n["properties"]["location"] == addr
        assert n["properties"]["OdkPCIAdoptions"] == 1
        assert len(vfio_nodes(odkd)) == 1  # the error node gave way
        factorial_10(odkd, n["id"])
        assert "bound to vfio-pci after odkd's start, and adopted" in odkd.log_text()
    finally:
        odkd.stop()
        unbind(d)
