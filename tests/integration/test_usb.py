# SPDX-License-Identifier: MIT
"""The USB family end to end: simulated devices on odkd's USB host
controller (device models in processes of their own), the usb-vendor-echo
sample driver, and apps calling it through libodk with their own buffers."""
import json
import os
import shutil
import signal
import subprocess

import pytest

from conftest import BIN, CHILD_ENV, DRIVERS, pid_alive, sign_bundle, wait_until
from libodk import MEM_OUT, MEM_IN, Buffer, Connection, OdkError, odkd_fds, odkd_fds_back

VENDOR, ECHO_PRODUCT = 0x1209, 0x0002


def plug(odkd, model, args=None, check=True):
    cmd = ["usb", "plug", model] + ([json.dumps(args)] if args is not None else [])
    r = odkd.ctl(*cmd, check=check)
    return int(r.stdout.strip()) if r.stdout.strip() else None, r


def node(odkd, node_id):
    return next(n for n in odkd.json("tree") if n["id"] == node_id)


def gone(odkd, node_id):
    return all(n["id"] != node_id for n in odkd.json("tree"))


def children(odkd, node_id):
    return sorted((n for n in odkd.json("tree") if n.get("parent") == node_id),
                  key=lambda n: n["id"])


def interface_0(odkd, dev):
    """The id of the device's first interface node, once odkd published it."""
    return wait_until(lambda: children(odkd, dev)[0]["id"] if children(odkd, dev) else None,
                      what="interface 0")


def echo_service(odkd, iface):
    inst = odkd.running(provider=iface)[0]
    return inst["node"], inst


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_vendor_device_lists_every_interface_and_the_driver_takes_interface_0(odkd):
    dev, _ = plug(odkd, "vendor-echo")
    n = node(odkd, dev)
    assert n["class"] == "IOUSBHostDevice"
    p = n["properties"]
    assert (p["idVendor"], p["idProduct"]) == (VENDOR, ECHO_PRODUCT)
    assert p["USB Product Name"] == "Simulated vendor echo"
    assert p["bConfigurationValue"] == 1
    # Story 18: both vendor-class interfaces are there, in the device's order.
    ifaces = wait_until(lambda: children(odkd, dev) if len(children(odkd, dev)) == 2 else None,
                        what="the device's two interfaces")
    assert [c["class"] for c in ifaces] == ["IOUSBHostInterface"] * 2
    assert [c["properties"]["bInterfaceNumber"] for c in ifaces] == [0, 1]
    assert all(c["properties"]["bInterfaceClass"] == 0xFF for c in ifaces)
    _, inst = echo_service(odkd, ifaces[0]["id"])
    assert inst["bundle"] == "org.odk.usb-vendor-echo"
    listing = odkd.ctl("usb", "-v").stdout
    assert "ID 1209:0002 odk Simulated vendor echo (high speed, model vendor-echo)" in listing
    assert "Endpoint 0x82 IN  interrupt" in listing
    assert "Interface 1 alternate 1" in listing and "isochronous" in listing


def test_bulk_echo_of_1_byte_to_1_mib_through_the_apps_own_buffers(odkd):
    dev, _ = plug(odkd, "vendor-echo")
    iface = interface_0(odkd, dev)
    svc, _ = echo_service(odkd, iface)
    conn = Connection(odkd.state, svc)
    size = 1 << 20
    out, back = Buffer(size), Buffer(size)
    try:
        src = conn.register(out, MEM_OUT)   # the driver reads it
        dst = conn.register(back, MEM_IN)  # the driver writes it
        total = 0
        # Sizes around the 512-byte packet: an exact multiple ends with a
        # zero-length packet on the bus, a short one ends the transfer.
        sizes = [1, 63, 64, 511, 512, 513, 1024, 4096, 65536, size]
        for i, n in enumerate(sizes):
            data = bytes((i * 37 + k * 11) & 0xFF for k in range(min(n, 4096))) * (n // 4096 + 1)
            out.write(0, data[:n])
            outs, _ = conn.call_memory(0, [n], [(src, 0, size), (dst, 0, size)], n_out=1)
            assert outs[0] == n, f"{n} bytes out, {outs[0]} back"
            assert back.read(0, n) == data[:n], f"{n}-byte echo differs"
            total += n
        # The device saw every transfer: its counters and its interrupt records.
        counters, _ = conn.call(1, n_out=4)
        assert counters == [len(sizes), total, len(sizes), total]
        for i, n in enumerate(sizes):
            seq, length = conn.call(2, [2000], n_out=2)[0]
            assert (seq, length) == (i, n)
        with pytest.raises(OdkError) as e:
            conn.call(2, [50], n_out=2)  # no more records: the wait times out
        assert e.value.name == "ODK_E_TIMEOUT"
    finally:
        conn.close()
        out.free()
        back.free()


def test_a_held_interface_names_its_holder(odkd, tmp_path):
    dev, _ = plug(odkd, "vendor-echo")
    iface = interface_0(odkd, dev)
    _, holder = echo_service(odkd, iface)
    # A second driver for the same interface, in a match category of its own.
    bundle = tmp_path / "grabber"
    bundle.mkdir()
    shutil.copy(DRIVERS / "usb-vendor-echo" / "usb-vendor-echo.so", bundle)
    manifest = json.loads((DRIVERS / "usb-vendor-echo" / "odk.json").read_text())
    manifest["bundle"] = "org.odk.test.grabber"
    pers = manifest["personalities"]["UsbVendorEcho"]
    pers["IOMatchCategory"] = "Grabber"
    pers["IOUserServerName"] = "org.odk.test.grabber"
    (bundle / "odk.json").write_text(json.dumps(manifest))
    sign_bundle(bundle)
    odkd.ctl("install", bundle)
    want = f"interface is held by org.odk.usb-vendor-echo#{holder['instance']} (pid {holder['pid']})"
    wait_until(lambda: want in odkd.ctl("log", "org.odk.test.grabber").stdout,
               what="the grabber's log naming the holder")
    # The holder is untouched.
    assert pid_alive(holder["pid"])


def test_a_stall_is_reported_and_cleared(odkd):
    dev, _ = plug(odkd, "vendor-echo")
    iface = interface_0(odkd, dev)
    svc, _ = echo_service(odkd, iface)
    conn = Connection(odkd.state, svc)
    out, back = Buffer(4096), Buffer(4096)
    try:
        src, dst = conn.register(out, MEM_OUT), conn.register(back, MEM_IN)
        out.write(0, b"before")
        assert conn.call_memory(0, [6], [(src, 0, 4096), (dst, 0, 4096)], n_out=1)[0] == [6]
        odkd.ctl("usb", "fault", dev, "stall", "0x81")
        with pytest.raises(OdkError) as e:
            conn.call_memory(0, [6], [(src, 0, 4096), (dst, 0, 4096)], n_out=1)
        assert e.value.name == "ODK_E_STALL"
        conn.call(3)  # clear the halt
        # The echo the stall interrupted is still in the device: read it,
        # then a fresh one goes through.
        out.write(0, b"after!")
        outs, _ = conn.call_memory(0, [6], [(src, 0, 4096), (dst, 0, 4096)], n_out=1)
        assert outs == [6] and back.read(0, 6) in (b"before", b"after!")
    finally:
        conn.close()
        out.free()
        back.free()


def test_unplug_mid_transfer_ends_pending_io_and_leaves_nothing_behind(odkd):
    baseline = odkd_fds(odkd)
    dev, _ = plug(odkd, "vendor-echo")
    model_pid = node(odkd, dev)["properties"]["OdkUSBModelPid"]
    iface = interface_0(odkd, dev)
    svc, inst = echo_service(odkd, iface)
    conn = Connection(odkd.state, svc)
    results = []
    try:
        # A read of the interrupt endpoint that would wait 30 s.
        conn.call_async(2, [30000], lambda st, outs: results.append(st), n_out=2)
        odkd.ctl("usb", "unplug", dev)
        wait_until(lambda: conn.dispatch(100) is not None and results, what="the call's end")
        assert results[0] != 0, "the pending transfer must end with an error"
    finally:
        conn.close()
    wait_until(lambda: not pid_alive(inst["pid"]), what="the driver's host to exit")
    wait_until(lambda: not pid_alive(model_pid), what="the device model to exit")
    assert gone(odkd, dev)
    wait_until(lambda: odkd_fds_back(odkd, baseline), what="odkd's descriptors back")


def test_unplug_with_a_stream_in_flight_leaves_no_completion_on_freed_pipes(odkd):
    """A stream keeps 16 transfers in flight each way, and each completion
    submits the next: the completions that were queued behind the stop run
    after the close freed the pipes.  They come with ODK_E_CANCELLED, so
    the driver submits no more (the fault campaign found a use after free
    in 1 stream unplug of 5 under ASan)."""
    for k in range(12):
        dev, _ = plug(odkd, "vendor-echo")
        iface = interface_0(odkd, dev)
        svc, inst = echo_service(odkd, iface)
        conn = Connection(odkd.state, svc)
        results = []
        try:
            conn.call_async(4, [64 << 20, 4096, 16], lambda st, outs: results.append(st), n_out=2)
            conn.call(1, n_out=4)  # the stream runs
            odkd.ctl("usb", "unplug", dev)
            wait_until(lambda: conn.dispatch(100) is not None and results, what="the stream's end")
            assert results[0] != 0, "a stream cut by the unplug must end with an error"
        finally:
            conn.close()
        wait_until(lambda: not pid_alive(inst["pid"]), what="the driver's host to exit")
    log = odkd.ctl("log", "org.odk.usb-vendor-echo").stdout
    assert "crashed" not in log and "ERROR: AddressSanitizer" not in log, log[-3000:]


@pytest.mark.parametrize("fault,words", [
    ("total-length", "wTotalLength 4096 is past the 32 bytes read"),
    ("zero-length", "bLength 0"),
    ("endpoints", "declares 3 endpoints but has 2"),
    ("interfaces", "bNumInterfaces is 2 but the configuration has 1 interface"),
    ("device", "bMaxPacketSize0 is 12"),
])
def test_bad_descriptors_mark_the_node_and_match_nothing(odkd, fault, words):
    dev, r = plug(odkd, "broken", {"fault": fault}, check=False)
    assert r.returncode == 1 and words in r.stderr
    n = node(odkd, dev)
    assert n["state"] == "inactive"
    assert words in n["properties"]["OdkUSBError"]
    assert not children(odkd, dev)
    assert odkd.instances() == []
    assert f"ERROR: " in odkd.ctl("usb").stdout
    # odkd goes on: a good device plugs after it.
    good, _ = plug(odkd, "cdc-acm")
    assert node(odkd, good)["state"] == "registered"


def test_a_crashing_device_model_unplugs_its_device(odkd):
    dev, _ = plug(odkd, "vendor-echo")
    iface = interface_0(odkd, dev)
    _, inst = echo_service(odkd, iface)
    os.kill(node(odkd, dev)["properties"]["OdkUSBModelPid"], signal.SIGKILL)
    wait_until(lambda: gone(odkd, dev), what="the device to leave the registry")
    wait_until(lambda: not pid_alive(inst["pid"]), what="its driver to stop")
    assert "the device model vendor-echo exited or crashed" in odkd.log_text()


def test_a_device_leaving_the_bus_unplugs_it(odkd):
    dev, _ = plug(odkd, "cdc-acm")
    odkd.ctl("usb", "fault", dev, "disconnect")
    wait_until(lambda: gone(odkd, dev), what="the device to leave the registry")
    assert "the device dropped off the bus" in odkd.log_text()


def test_serial_adapters_enumerate_with_their_state(odkd):
    acm, _ = plug(odkd, "cdc-acm", {"serial": "T-1"})
    ftdi, _ = plug(odkd, "ftdi")
    a, f = node(odkd, acm), node(odkd, ftdi)
    assert a["properties"]["USB Serial Number"] == "T-1"
    assert a["properties"]["OdkUSBModelState"]["baud"] == 9600
    assert [c["properties"]["bInterfaceClass"] for c in children(odkd, acm)] == [0x02, 0x0A]
    assert (f["properties"]["idVendor"], f["properties"]["idProduct"]) == (0x0403, 0x6001)
    assert [c["properties"]["bInterfaceClass"] for c in children(odkd, ftdi)] == [0xFF]
    r = odkd.ctl("usb", "plug", "no-such-model", check=False)
    assert r.returncode == 1 and "did not start" in r.stderr


def test_hid_models_enumerate_and_take_input(odkd):
    kbd, _ = plug(odkd, "hid-keyboard")
    mouse, _ = plug(odkd, "hid-mouse")
    for dev, protocol in ((kbd, 1), (mouse, 2)):
        (iface,) = wait_until(lambda: children(odkd, dev), what="the HID interface")
        p = iface["properties"]
        assert (p["bInterfaceClass"], p["bInterfaceSubClass"], p["bInterfaceProtocol"]) == \
            (3, 1, protocol)
    odkd.ctl("usb", "input", kbd, "0000040000000000")  # 'a' down
    r = odkd.ctl("usb", "input", kbd, "0400", check=False)
    assert r.returncode == 1 and "ODK_E_INVALID" in r.stderr
    odkd.ctl("usb", "input", mouse, "01050000")
    acm, _ = plug(odkd, "cdc-acm")
    r = odkd.ctl("usb", "input", acm, "00", check=False)
    assert r.returncode == 1 and "ODK_E_UNSUPPORTED" in r.stderr


def test_a_transfer_the_buffer_cannot_take_is_refused(odkd):
    """An IN transfer into a buffer of direction OUT (the app's data going
    out: read-only to the driver) gets ODK_E_ACCESS before anything moves."""
    dev, _ = plug(odkd, "vendor-echo")
    iface = interface_0(odkd, dev)
    svc, _ = echo_service(odkd, iface)
    conn = Connection(odkd.state, svc)
    out, back = Buffer(4096), Buffer(4096)
    try:
        src = conn.register(out, MEM_OUT)
        wrong = conn.register(back, MEM_OUT)  # the driver may only read it
        with pytest.raises(OdkError) as e:
            conn.call_memory(0, [16], [(src, 0, 4096), (wrong, 0, 4096)], n_out=1)
        assert e.value.name == "ODK_E_ACCESS"
        # The OUT half went to the device; a good buffer reads it back.
        right = conn.register(back, MEM_IN)
        outs, _ = conn.call_memory(0, [0], [(src, 0, 4096), (right, 0, 4096)], n_out=1)
        assert outs == [16]
    finally:
        conn.close()
        out.free()
        back.free()


def test_libusb_source_only_when_asked_and_its_host_controller(make_odkd):
    """--usb libusb adds the machine's own devices beside the simulator's
    (none on a machine without USB: odkd says so and runs); without it odkd
    has only the simulated host controller."""
    plain = make_odkd("plain")
    assert not [n for n in plain.json("tree") if n["class"] == "OdkUSBHostController"]
    both = make_odkd("both", extra_args=["--usb", "sim,libusb"])
    classes = [n["class"] for n in both.json("tree")]
    assert "OdkUSBHostController" in classes and "OdkSimUSBHostController" in classes
    dev, _ = plug(both, "cdc-acm")  # the simulator is still there
    assert node(both, dev)["properties"]["OdkUSBSource"] == "sim"
    if not os.path.isdir("/sys/bus/usb/devices"):
        assert "no real USB devices" in both.log_text()


def test_usb_option_names_the_sources_it_knows(tmp_path):
    r = subprocess.run([str(BIN / "odkd"), "--state-dir", str(tmp_path / "s"), "--usb",
                        "sim,floppy"], capture_output=True, text=True, timeout=30, env=CHILD_ENV)
    assert r.returncode != 0
    assert "unknown USB source 'floppy' (sim, libusb)" in r.stderr + r.stdout
