# SPDX-License-Identifier: MIT
"""The PCI family end to end: simulated functions on odkd's sim PCI bus
(device models in processes of their own, odk-pci-model), the pci-edu
sample driver on QEMU's edu register map, and apps calling it through
libodk with their own buffers."""
import json
import os
import signal
import time

import pytest

from conftest import pid_alive, sign_bundle, wait_until
from libodk import MEM_IN, MEM_OUT, Buffer, Connection, OdkError, odkd_fds, odkd_fds_back

EDU_VENDOR, EDU_DEVICE = 0x1234, 0x11E8
PLUG_CYCLES = int(os.environ.get("ODK_PCI_PLUG_CYCLES", "20"))


def plug(odkd, model="edu", args=None, check=True):
    cmd = ["pci", "plug", model] + ([json.dumps(args)] if args is not None else [])
    r = odkd.ctl(*cmd, check=check)
    return int(r.stdout.strip()) if r.stdout.strip() else None, r


def node(odkd, node_id):
    return next(n for n in odkd.json("tree") if n["id"] == node_id)


def gone(odkd, node_id):
    return all(n["id"] != node_id for n in odkd.json("tree"))


def model_state(odkd, node_id):
    return node(odkd, node_id)["properties"].get("OdkPCIModelState", {})


def state_when(odkd, fn, pred, what):
    """The model's state once pred holds: its reports reach odkd on their
    own connection, a moment after the driver's call returned."""
    return wait_until(lambda: (lambda st: st if pred(st) else None)(model_state(odkd, fn)),
                      what=what)


def edu_service(odkd, fn):
    inst = odkd.running(provider=fn)[0]
    return inst["node"], inst


def connect(odkd, fn):
    svc, inst = edu_service(odkd, fn)
    return Connection(odkd.state, svc), inst


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def children_pids(pid):
    out = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.add(int(p))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_the_edu_function_has_iokits_properties_and_the_sample_takes_it(odkd):
    fn, _ = plug(odkd)
    n = node(odkd, fn)
    assert n["class"] == "IOPCIDevice"
    p = n["properties"]
    assert (p["vendor-id"], p["device-id"]) == (EDU_VENDOR, EDU_DEVICE)
    assert (p["subsystem-vendor-id"], p["subsystem-id"]) == (0x1AF4, 0x1100)
    assert p["revision-id"] == 0x10
    assert p["class-code"] == 0x00FF00
    assert p["IOName"] == "pci1234,11e8"
    assert p["location"].startswith("0000:01:")
    assert "OdkPCIError" not in p
    _, inst = edu_service(odkd, fn)
    assert inst["bundle"] == "org.odk.pci-edu"
    # Matched by IOPCIPrimaryMatch with a mask.
    explain = odkd.ctl("match", "--explain", fn).stdout
    assert "IOPCIPrimaryMatch" in explain
    listing = odkd.ctl("pci", "-v").stdout
    assert f"Unclassified device [00ff]: Device [1234:11e8] (rev 10) (node {fn}, model edu)" \
        in listing
    assert "Region 0: Memory (32-bit, non-prefetchable) [size=1M]" in listing
    assert "Capabilities: [40] Power Management" in listing
    assert "Capabilities: [50] MSI: 1 vector(s)" in listing
    assert "Kernel driver in use: org.odk.pci-edu" in listing
    [entry] = odkd.json("pci")
    assert entry["node"] == fn and entry["vendor-id"] == EDU_VENDOR
    # The driver turned on decoding, bus mastering and MSI.
    state = wait_until(lambda: model_state(odkd, fn) if model_state(odkd, fn).get("msi") else None,
                       what="MSI enabled")
    assert state["bus_master"] and state["memory"] and state["attached"]


def test_a_mask_in_the_primary_match_decides(odkd, tmp_path):
    """A personality whose masked IOPCIPrimaryMatch excludes edu's device id
    is compared and fails on that key."""
    fn, _ = plug(odkd)
    edu_service(odkd, fn)
    from conftest import DRIVERS
    import shutil
    bundle = tmp_path / "other"
    bundle.mkdir()
    shutil.copy(DRIVERS / "pci-edu" / "pci-edu.so", bundle)
    manifest = json.loads((DRIVERS / "pci-edu" / "odk.json").read_text())
    manifest["bundle"] = "org.odk.test.pci-other"
    pers = manifest["personalities"]["PciEdu"]
    pers["IOPCIPrimaryMatch"] = "0x11e90000&0xffff0000"
    pers["IOUserServerName"] = "org.odk.test.pci-other"
    (bundle / "odk.json").write_text(json.dumps(manifest))
    sign_bundle(bundle)
    odkd.ctl("install", bundle)
    explain = odkd.ctl("match", "--explain", fn).stdout
    assert "0x11e90000&0xffff0000" in explain and "does not match" in explain


def intx_bundle(tmp_path):
    """pci-edu with a personality that asks for INTx and outbids the
    stock one."""
    from conftest import DRIVERS
    import shutil
    bundle = tmp_path / "pci-edu-intx"
    bundle.mkdir()
    shutil.copy(DRIVERS / "pci-edu" / "pci-edu.so", bundle)
    manifest = json.loads((DRIVERS / "pci-edu" / "odk.json").read_text())
    manifest["bundle"] = "org.odk.test.pci-edu-intx"
    pers = manifest["personalities"]["PciEdu"]
    pers["IOUserServerName"] = "org.odk.test.pci-edu-intx"
    pers["IOProbeScore"] = 1000
    pers["PciEduInterrupt"] = "INTx"
    (bundle / "odk.json").write_text(json.dumps(manifest))
    sign_bundle(bundle)
    return bundle


def test_a_driver_that_asks_for_intx_gets_the_legacy_line(odkd, tmp_path):
    odkd.ctl("install", intx_bundle(tmp_path))
    fn, _ = plug(odkd)
    svc, inst = edu_service(odkd, fn)
    assert inst["bundle"] == "org.odk.test.pci-edu-intx"
    assert "INTx" in odkd.ctl("log", "org.odk.test.pci-edu-intx").stdout
    conn = Connection(odkd.state, svc)
    try:
        before = conn.call(2, n_out=4)[0][0]
        conn.call(3, [20])
        wait_until(lambda: conn.call(2, n_out=4)[0][0] >= before + 20, what="20 interrupts")
        time.sleep(0.2)
        assert conn.call(2, n_out=4)[0][0] == before + 20
        st = model_state(odkd, fn)
        assert not st["msi"]
    finally:
        conn.close()


def test_factorial_of_1_to_12_and_the_liveness_check(odkd):
    fn, _ = plug(odkd)
    conn, _ = connect(odkd, fn)
    try:
        f = 1
        for n in range(1, 13):
            f *= n
            assert conn.call(0, [n], n_out=1)[0] == [f], f"{n}!"
        inv, ident = conn.call(5, [0x12345678], n_out=2)[0]
        assert inv == 0xEDCBA987 and ident == 0x010000ED
    finally:
        conn.close()


def dma_round_trip(conn, size, offset=0, seed=0):
    out, back = Buffer(4096), Buffer(4096)
    try:
        src, dst = conn.register(out, MEM_OUT), conn.register(back, MEM_IN)
        data = bytes((seed * 31 + k * 7 + 1) & 0xFF for k in range(size))
        out.write(0, data)
        back.write(0, b"\0" * 4096)
        outs, _ = conn.call_memory(1, [size, offset], [(src, 0, 4096), (dst, 0, 4096)], n_out=1)
        assert outs == [size]
        assert back.read(0, size) == data, f"{size} bytes at device offset {offset} differ"
    finally:
        out.free()
        back.free()


def test_dma_round_trips_through_the_iommu_4_kib_and_every_part_of_the_window(odkd):
    fn, _ = plug(odkd)
    conn, _ = connect(odkd, fn)
    try:
        dma_round_trip(conn, 4096)  # the whole DMA window of edu
        for i, (size, off) in enumerate([(1, 0), (1, 4095), (100, 3000), (2048, 2048),
                                         (4000, 96)]):
            dma_round_trip(conn, size, off, seed=i)
        # Outside the window the device refuses (edu's buffer is 4 KiB).
        with pytest.raises(OdkError) as e:
            conn.call_memory(1, [4096, 1], [(0, 0, 1)], n_out=1)
        assert e.value.name in ("ODK_E_INVALID", "ODK_E_NOT_FOUND", "ODK_E_BAD_ARGUMENTS")
        state_when(odkd, fn, lambda st: st.get("dmas", 0) >= 12, "12 DMAs reported")
    finally:
        conn.close()


def test_a_whole_buffer_stays_pinned_for_the_device_until_unpinned(odkd):
    """pci-edu's selectors 14 and 15 (a frame ring a driver prepares once);
    on the simulator no lock limit is set (OdkDMALockLimitMB is the VFIO
    node's: tests/vm/guest/test_pci_vfio.py)."""
    fn, _ = plug(odkd)
    assert "OdkDMALockLimitMB" not in node(odkd, fn)["properties"]
    conn, _ = connect(odkd, fn)
    ring = Buffer(64 << 20)
    try:
        bid = conn.register(ring, MEM_IN)
        (segments,), _ = conn.call_memory(14, [], [(bid, 0, 64 << 20)], n_out=1)
        assert segments >= 1
        with pytest.raises(OdkError) as e:  # one pinned at a time
            conn.call_memory(14, [], [(bid, 0, 4096)], n_out=1)
        assert e.value.name == "ODK_E_BUSY"
        conn.call(15)
        with pytest.raises(OdkError) as e:
            conn.call(15)
        assert e.value.name == "ODK_E_STATE"
        dma_round_trip(conn, 4096)  # the device still works
    finally:
        conn.close()
        ring.free()


def test_interrupts_are_counted_exactly(odkd):
    fn, _ = plug(odkd)
    conn, _ = connect(odkd, fn)
    try:
        before = conn.call(2, n_out=4)[0][0]
        conn.call(3, [100])
        counters = wait_until(lambda: (lambda c: c if c[0] >= before + 100 else None)(
            conn.call(2, n_out=4)[0]), what="100 interrupts")
        time.sleep(0.2)  # a surplus interrupt would have arrived by now
        counters = conn.call(2, n_out=4)[0]
        assert counters[0] == before + 100
        assert counters[1] & 0x1000
        # Each DMA raises one more.
        dma_round_trip(conn, 64)
        wait_until(lambda: conn.call(2, n_out=4)[0][0] == before + 102, what="2 DMA interrupts")
    finally:
        conn.close()


def test_dma_outside_the_mapping_is_an_iommu_fault_and_the_driver_keeps_working(odkd):
    fn, _ = plug(odkd)
    conn, inst = connect(odkd, fn)
    try:
        for to_ram, addr in [(1, 0x0ABC000), (0, 0x0ABC000), (1, 0x1000)]:
            failed, faults = conn.call(4, [addr, 256, to_ram], n_out=2)[0]
            assert failed == 1
        counters = conn.call(2, n_out=4)[0]
        assert counters[2] == 3 and counters[3] == 0x1000
        state_when(odkd, fn, lambda st: st.get("dma_faults") == 3, "3 faults reported")
        dma_round_trip(conn, 4096)
        assert pid_alive(inst["pid"])
    finally:
        conn.close()


def test_a_dma_after_its_command_completed_is_a_fault_and_writes_nothing(odkd):
    """The model reads and writes mapped memory itself (its view of the
    driver's IOMMU); completing a command takes the address back before the
    completion returns, so the device's next write there faults."""
    fn, _ = plug(odkd)
    conn, _ = connect(odkd, fn)
    buf = Buffer(4096)
    try:
        dst = conn.register(buf, MEM_IN)
        buf.write(0, b"\0" * 4096)
        for n in (1, 1000, 4096):
            failed, faults = conn.call_memory(13, [n], [(dst, 0, 4096)], n_out=2)[0]
            assert failed == 1
            assert buf.read(0, n) == b"\x5a" * n, "the write after the unmap landed"
        assert faults == 3
        st = state_when(odkd, fn, lambda st: st.get("dma_faults") == 3, "3 faults reported")
        # the good DMAs went through the model's view, the faults to the host
        assert st["dma_bytes_local"] >= 3 * (1 + 1000 + 4096)
        assert st["dma_bytes_host"] == 1 + 1000 + 4096
    finally:
        buf.free()
        conn.close()


def test_config_space_power_states_and_function_level_reset(odkd):
    fn, _ = plug(odkd)
    conn, _ = connect(odkd, fn)
    try:
        assert conn.call(10, [0, 4], n_out=1)[0] == [0x11E81234]
        assert conn.call(10, [0x2C, 2], n_out=1)[0] == [0x1AF4]
        assert conn.call(10, [0x34, 1], n_out=1)[0] == [0x40]  # the capability list
        with pytest.raises(OdkError) as e:
            conn.call(10, [4095, 4], n_out=1)  # past the 4 KiB space
        assert e.value.name == "ODK_E_INVALID"
        # In D3hot the function ignores register writes: the factorial is
        # not computed, the write is counted as dropped.
        assert conn.call(0, [4], n_out=1)[0] == [24]
        conn.call(11, [3])
        state_when(odkd, fn, lambda st: st.get("power") == "D3hot", "D3hot")
        assert conn.call(0, [5], n_out=1)[0] == [24]
        state_when(odkd, fn, lambda st: st.get("dropped_writes", 0) >= 1, "a dropped write")
        conn.call(11, [0])
        state_when(odkd, fn, lambda st: st.get("power") == "D0", "D0")
        assert conn.call(0, [5], n_out=1)[0] == [120]
        # A function-level reset: registers back to their defaults, MSI
        # enabled again by the family for the driver's source.
        resets = model_state(odkd, fn)["resets"]
        conn.call(12)
        state_when(odkd, fn, lambda st: st["resets"] == resets + 1 and st["msi"] and
                   st["bus_master"], "the reset, with MSI and bus mastering on again")
        assert conn.call(10, [4, 2], n_out=1)[0][0] & 0x6 == 0x6
        before = conn.call(2, n_out=4)[0][0]
        conn.call(3, [3])
        wait_until(lambda: conn.call(2, n_out=4)[0][0] == before + 3, what="3 MSIs after reset")
        assert conn.call(0, [6], n_out=1)[0] == [720]
    finally:
        conn.close()


def test_a_bar_mapping_out_of_range_gets_a_clear_status(odkd):
    fn, _ = plug(odkd)
    conn, inst = connect(odkd, fn)
    try:
        conn.call(6, [0, 1 << 20])  # the whole BAR
        for off, length in [(0, (1 << 20) + 1), (1 << 20, 4), ((1 << 20) - 2, 4),
                            (1 << 63, 1 << 63)]:
            with pytest.raises(OdkError) as e:
                conn.call(6, [off, length])
            assert e.value.name == "ODK_E_INVALID"
        log = odkd.ctl("log", "org.odk.pci-edu").stdout
        assert "outside BAR 0 (1048576 bytes)" in log
        assert conn.call(0, [5], n_out=1)[0] == [120]
    finally:
        conn.close()


@pytest.mark.parametrize("fault,why", [
    ("cap-loop", "capability list loops back to 0x40"),
    ("cap-overflow", "past the end of the 256-byte space"),
    ("bar-size", "BAR 0: size 3145728 is not a power of two"),
])
def test_a_broken_function_gets_its_node_marked_and_nothing_matches(odkd, fault, why):
    fn, r = plug(odkd, "edu", {"fault": fault}, check=False)
    assert r.returncode == 1 and why in r.stderr
    p = node(odkd, fn)["properties"]
    assert why in p["OdkPCIError"]
    listing = odkd.ctl("pci").stdout
    assert "ERROR: " in listing and why in listing
    assert not [i for i in odkd.instances() if i["provider"] == fn]
    # The bus still works.
    good, _ = plug(odkd)
    edu_service(odkd, good)
    odkd.ctl("pci", "unplug", fn)
    wait_until(lambda: gone(odkd, fn), what="the broken node gone")


def test_kill_9_mid_dma_bus_mastering_is_off_before_the_model_writes_again(odkd):
    fn, _ = plug(odkd, "edu", {"dma_delay_ms": 300})
    conn, inst = connect(odkd, fn)
    conn.call(7)  # a DMA into the driver's memory, held 300 ms in the device
    os.kill(inst["pid"], signal.SIGKILL)
    conn.close()
    # odkd turned bus mastering off and reset the function while the DMA
    # was still held: it ended unwritten.  The model checks every DMA it
    # starts: one with bus mastering still on after the driver's link ended
    # would count in unsafe_dma; an attach before the reset in
    # refused_attach.
    state = wait_until(lambda: (lambda s: s if s.get("resets", 0) >= 1 else None)(
        model_state(odkd, fn)), what="the reset")
    assert state["dma_cancelled"] == 1 and state["dmas"] == 0
    time.sleep(0.4)  # past the DMA's time: it must not happen late
    state = model_state(odkd, fn)
    assert state["unsafe_dma"] == 0 and state["refused_attach"] == 0 and state["dmas"] == 0
    # The driver restarts and works.
    new = wait_until(lambda: [i for i in odkd.instances() if i["provider"] == fn and
                              i["state"] == "running" and i["pid"] != inst["pid"]] or None,
                     what="the restarted driver")
    conn = Connection(odkd.state, new[0]["node"])
    try:
        assert conn.call(0, [10], n_out=1)[0] == [3628800]
        state_when(odkd, fn, lambda st: st["bus_master"], "bus mastering on again")
    finally:
        conn.close()


def test_stopping_the_driver_resets_the_function(odkd):
    fn, _ = plug(odkd)
    _, inst = edu_service(odkd, fn)
    wait_until(lambda: model_state(odkd, fn).get("bus_master"), what="bus mastering on")
    odkd.ctl("uninstall", "org.odk.pci-edu")
    state = wait_until(lambda: (lambda s: s if s.get("resets", 0) >= 1 and not s["attached"]
                                else None)(model_state(odkd, fn)), what="the reset")
    assert not state["bus_master"] and not state["memory"] and not state["msi"]
    assert state["unsafe_dma"] == 0


def test_plug_unplug_cycles_with_dma_in_flight_leak_nothing(odkd):
    odkd_pid = odkd.proc.pid
    plug(odkd)  # one plug first: odkd's lazily made descriptors exist now
    first = odkd.json("pci")[0]["node"]
    edu_service(odkd, first)
    odkd.ctl("pci", "unplug", first)
    wait_until(lambda: gone(odkd, first), what="first unplug")
    base_fds = odkd_fds(odkd)
    for i in range(PLUG_CYCLES):
        fn, _ = plug(odkd, "edu", {"dma_delay_ms": 5})
        conn, _ = connect(odkd, fn)
        try:
            conn.call(7)
        except OdkError:
            pass
        conn.close()
        odkd.ctl("pci", "unplug", *(["--surprise"] if i % 2 else []), fn)
        wait_until(lambda: gone(odkd, fn), what=f"unplug {i}")
    wait_until(lambda: not [i for i in odkd.instances() if i["bundle"] == "org.odk.pci-edu"],
               what="every edu driver gone")
    assert odkd.proc.poll() is None
    wait_until(lambda: odkd_fds_back(odkd, base_fds), what="odkd's descriptors back")
    models = [p for p in children_pids(odkd_pid)
              if "odk-pci-model" in open(f"/proc/{p}/cmdline").read()]
    assert models == []


def test_a_removed_edu_function_reads_all_ones_in_config_and_bar(odkd):
    """Surprise removal with the driver running: the driver, stopped after
    the function vanished, reads its configuration space, its identification
    register through MemoryRead32 and the same register through its direct
    BAR mapping: all ones each time, as a read of a missing function gives on
    hardware (not the model's last register values)."""
    fn, _ = plug(odkd)
    conn, inst = connect(odkd, fn)
    try:
        assert conn.call(8, [1], n_out=1)[0][0] & 0xFF == 0xED  # mapped read works first
        conn.call(7, [], n_out=1)  # a DMA in flight when the function goes
        odkd.ctl("pci", "unplug", "--surprise", fn)
        wait_until(lambda: gone(odkd, fn), what="the node withdrawn")
    finally:
        conn.close()
    log = wait_until(lambda: (lambda l: l if "the function is gone" in l else None)(
        odkd.ctl("log", "org.odk.pci-edu").stdout), what="the driver's stop")
    line = next(l for l in log.splitlines() if "the function is gone" in l)
    assert ("configuration 0xffffffff, identification register 0xffffffff through calls "
            "(ODK_E_GONE), 0xffffffff through the mapping") in line, line
    assert isinstance(odkd.json("list"), list)  # odkd answers
