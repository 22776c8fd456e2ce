# SPDX-License-Identifier: MIT
"""The HID family through the guest kernel's real input paths: a
virtual keyboard made by odk appears through uinput and through uhid with
the identity its driver gave it, and python3-evdev reads the remapped
keys from it; the evdev bus takes QEMU's usb-kbd exclusively (EVIOCGRAB)
and keys typed through QEMU's monitor come out remapped.  The keyboard
behind hid-remap is the simulated USB one (the libusb backend is not
part of this tree yet) or, for the evdev test, QEMU's usb-kbd."""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from guest_devices import MACHINE
from guest_util import qmp, wait_until

pytestmark = pytest.mark.vm(devices=MACHINE)

ROOT = Path(__file__).resolve().parents[3]
BUILD = Path(os.environ.get("ODK_BUILD", ROOT / "build"))
BIN = BUILD / "bin"


class Odkd:
    def __init__(self, *extra):
        self.tmp = Path(tempfile.mkdtemp(prefix="odk-hid-vm."))
        (self.tmp / "dev").mkdir()
        self.state = self.tmp / "state"
        self.log = open(self.tmp / "odkd.log", "w")
        self.proc = subprocess.Popen(
            [str(BIN / "odkd"), "--state-dir", str(self.state), "--dev-dir", str(self.tmp / "dev"),
             "--drivers", str(BUILD / "drivers"), *extra], stdout=self.log, stderr=self.log)
        wait_until(lambda: (self.state / "odkd.sock").exists() or self.proc.poll() is not None,
                   "odkd's socket")
        assert self.proc.poll() is None, self.log_text()

    def log_text(self):
        return (self.tmp / "odkd.log").read_text(errors="replace")

    def ctl(self, *args):
        r = subprocess.run([str(BIN / "odkctl"), "--state-dir", str(self.state), *map(str, args)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"odkctl {args}: {r.stderr}\n{self.log_text()[-3000:]}"
        return r.stdout

    def json(self, *args):
        return json.loads(self.ctl("--json", *args))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.log_text()[-3000:]
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def input_devices():
    """/proc/bus/input/devices as a list of dicts: name, phys, uniq, bus,
    vendor, product, handlers."""
    out = []
    for block in Path("/proc/bus/input/devices").read_text().split("\n\n"):
        d = {}
        for line in block.splitlines():
            if line.startswith("I:"):
                d.update({k.lower(): int(v, 16) for k, v in re.findall(r"(\w+)=([0-9a-f]+)", line)})
            elif line.startswith("N: Name="):
                d["name"] = line[len("N: Name="):].strip('"')
            elif line.startswith("P: Phys="):
                d["phys"] = line[len("P: Phys="):]
            elif line.startswith("H: Handlers="):
                d["handlers"] = line[len("H: Handlers="):].split()
        if d:
            out.append(d)
    return out


def remap_device(odkd):
    """hid-remap's virtual keyboard node, once it is published whole (its
    backend property is set when the kernel device exists)."""
    for n in odkd.json("tree"):
        if n["class"] == "IOUserHIDDevice" and "OdkHIDBackend" in n.get("properties", {}):
            return n
    return None


def event_node(pred):
    for d in input_devices():
        if pred(d):
            ev = [h for h in d.get("handlers", []) if h.startswith("event")]
            if ev and Path("/dev/input", ev[0]).exists():
                return Path("/dev/input", ev[0])
    return None


def read_keys(dev, n, timeout=30):
    """The next n key events (code, value) of an evdev device, repeats left out."""
    import evdev
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {got} came"
        if not select.select([dev.fd], [], [], left)[0]:
            continue
        for e in dev.read():
            if e.type == evdev.ecodes.EV_KEY and e.value != 2:
                got.append((e.code, e.value))
    return got[:n]


@pytest.mark.parametrize("backend", ["uinput", "uhid"])
def test_the_remapped_keyboard_is_a_real_input_device_with_the_drivers_identity(backend):
    import evdev
    from evdev import ecodes as e
    subprocess.run(["modprobe", backend], check=True)
    wait_until(Path("/dev", backend).exists, f"/dev/{backend}")
    odkd = Odkd("--hid-backend", backend)
    try:
        kbd = int(odkd.ctl("usb", "plug", "hid-keyboard"))
        vk = wait_until(lambda: remap_device(odkd), "hid-remap's virtual keyboard")
        assert vk["properties"]["OdkHIDBackend"] == backend  # the kernel path was used
        node = wait_until(lambda: event_node(lambda d: d.get("name") == "odk Simulated keyboard"
                                             and d.get("vendor") == 0x1209),
                          "the virtual keyboard in /proc/bus/input/devices")
        mine = next(d for d in input_devices() if d.get("name") == "odk Simulated keyboard")
        assert (mine["bus"], mine["vendor"], mine["product"]) == (0x03, 0x1209, 0x0010)
        if backend == "uhid":  # the kernel's own HID parser: hidraw too
            wait_until(lambda: list(Path("/sys/class/hidraw").iterdir()), "a hidraw node")
        dev = evdev.InputDevice(str(node))
        assert e.KEY_B in dev.capabilities()[e.EV_KEY]
        # a -> b, Caps Lock tapped -> Escape
        for r in ("0000040000000000", "0000000000000000", "0000390000000000", "0000000000000000"):
            odkd.ctl("usb", "input", kbd, r)
        assert read_keys(dev, 4) == [(e.KEY_B, 1), (e.KEY_B, 0), (e.KEY_ESC, 1), (e.KEY_ESC, 0)]
        # The LEDs the system sets on the virtual keyboard reach the device.
        dev.set_led(e.LED_CAPSL, 1)
        wait_until(lambda: next(n for n in odkd.json("tree") if n["id"] == kbd)
                   ["properties"]["OdkUSBModelState"]["leds"] == 2, "Caps Lock on the device")
        dev.close()
        odkd.ctl("usb", "unplug", kbd)
        wait_until(lambda: event_node(lambda d: d.get("name") == "odk Simulated keyboard") is None,
                   "the virtual keyboard to leave")
    finally:
        odkd.stop()


def test_the_evdev_bus_takes_qemus_keyboard_exclusively_and_remaps_it():
    import evdev
    from evdev import ecodes as e
    subprocess.run(["modprobe", "uinput"], check=True)
    wait_until(Path("/dev/uinput").exists, "/dev/uinput")
    qemu_kbd = wait_until(lambda: event_node(lambda d: d.get("vendor") == 0x0627
                                             and d.get("product") == 0x0001),
                          "QEMU's usb-kbd as an input device")
    odkd = Odkd("--evdev", "--hid-backend", "uinput")
    try:
        node = wait_until(lambda: next((n for n in odkd.json("tree")
                                        if n["class"] == "OdkEvdevDevice"
                                        and n["properties"]["OdkEvdevPath"] == str(qemu_kbd)),
                                       None), "the usb-kbd's evdev node in the registry")
        assert node["properties"]["OdkEvdevKeyboard"] is True
        assert node["properties"]["OdkEvdevVendor"] == 0x0627
        inst = wait_until(lambda: next((i for i in odkd.json("list")
                                        if i["provider"] == node["id"]
                                        and i["state"] == "running"), None), "hid-remap on it")
        vk = wait_until(lambda: next((n for n in odkd.json("tree")
                                      if n["class"] == "IOUserHIDDevice"
                                      and n.get("parent") == inst["node"]), None),
                        "its virtual keyboard")
        assert vk["properties"]["Product"] == node["properties"]["OdkEvdevName"]
        # Taken exclusively: nobody else can grab it now.
        src = evdev.InputDevice(str(qemu_kbd))
        with pytest.raises(OSError):
            src.grab()
        src.close()
        out = wait_until(lambda: event_node(lambda d: d.get("phys", "").endswith("/odk")
                                            and d.get("vendor") == 0x0627),
                         "the remapped keyboard")
        dev = evdev.InputDevice(str(out))
        for down in (True, False):
            qmp("input-send-event", events=[{"type": "key", "data": {
                "down": down, "key": {"type": "qcode", "data": "a"}}}])
        assert read_keys(dev, 2) == [(e.KEY_B, 1), (e.KEY_B, 0)]
        dev.close()
    finally:
        odkd.stop()
    # The grab went with the driver.
    src = evdev.InputDevice(str(qemu_kbd))
    src.grab()
    src.ungrab()
    src.close()


def test_an_absolute_pointer_gets_absolute_axes_through_uinput():
    """hid-usb on the simulated tablet, with the uinput backend: the input
    device has ABS_X and ABS_Y with the descriptor's logical range (and no
    relative X or Y), and a report moves them."""
    import evdev
    from evdev import ecodes as e
    subprocess.run(["modprobe", "uinput"], check=True)
    wait_until(Path("/dev/uinput").exists, "/dev/uinput")
    odkd = Odkd("--hid-backend", "uinput")
    try:
        tablet = int(odkd.ctl("usb", "plug", "hid-tablet"))
        node = wait_until(lambda: event_node(lambda d: d.get("name") == "odk Simulated tablet"),
                          "the tablet in /proc/bus/input/devices")
        dev = evdev.InputDevice(str(node))
        caps = dev.capabilities(absinfo=True)
        absinfo = dict(caps[e.EV_ABS])
        assert (absinfo[e.ABS_X].min, absinfo[e.ABS_X].max) == (0, 32767)
        assert (absinfo[e.ABS_Y].min, absinfo[e.ABS_Y].max) == (0, 32767)
        assert e.REL_WHEEL in caps[e.EV_REL]
        assert e.REL_X not in caps[e.EV_REL] and e.REL_Y not in caps[e.EV_REL]
        assert e.BTN_LEFT in caps[e.EV_KEY]
        odkd.ctl("usb", "input", tablet, "01e803307500")  # button 1 at (1000, 30000)
        got = {}
        deadline = time.monotonic() + 30
        while len(got) < 3:
            assert time.monotonic() < deadline, f"only {got}"
            if not select.select([dev.fd], [], [], 1)[0]:
                continue
            for ev in dev.read():
                if ev.type in (e.EV_ABS, e.EV_KEY):
                    got[(ev.type, ev.code)] = ev.value
        assert got == {(e.EV_KEY, e.BTN_LEFT): 1, (e.EV_ABS, e.ABS_X): 1000,
                       (e.EV_ABS, e.ABS_Y): 30000}
        dev.close()
    finally:
        odkd.stop()


def test_qemus_usb_keyboard_through_libusb_and_hid_usb_types_on_the_system():
    """A real (emulated) USB HID device through the libusb source: hid-usb
    takes QEMU's usb-kbd from the kernel's usbhid, and the keys typed
    through QEMU's monitor come out of odk's uinput device unchanged; when
    odkd ends, usbhid has the keyboard back."""
    import evdev
    from evdev import ecodes as e
    subprocess.run(["modprobe", "uinput"], check=True)
    wait_until(Path("/dev/uinput").exists, "/dev/uinput")
    by_odk = lambda d: d.get("phys", "").startswith("odk/")  # hid-usb's default phys
    kernel_kbd = lambda d: (d.get("vendor") == 0x0627 and d.get("product") == 0x0001
                            and not by_odk(d))
    wait_until(lambda: event_node(kernel_kbd), "usbhid's keyboard before odkd")
    odkd = Odkd("--usb", "libusb", "--hid-backend", "uinput")
    try:
        usb = wait_until(lambda: next((n for n in odkd.json("tree")
                                       if n["class"] == "IOUSBHostDevice"
                                       and n["properties"].get("idVendor") == 0x0627), None),
                         "QEMU's keyboard as an IOUSBHostDevice")
        assert usb["properties"]["OdkUSBSource"] == "libusb"
        inst = wait_until(lambda: next((i for i in odkd.json("list")
                                        if i["bundle"] == "org.odk.hid-usb"
                                        and i["state"] == "running"), None), "hid-usb on it")
        hid = wait_until(lambda: next((n for n in odkd.json("tree")
                                       if n["class"] == "IOUserHIDDevice"
                                       and n.get("parent") == inst["node"]
                                       and "OdkHIDBackend" in n["properties"]), None),
                         "hid-usb's HID device")
        assert hid["properties"]["VendorID"] == 0x0627
        # usbhid let go: only odk's device has the keyboard's ids now.
        wait_until(lambda: not event_node(kernel_kbd), "usbhid to let go of the keyboard")
        out = wait_until(lambda: event_node(lambda d: d.get("vendor") == 0x0627 and by_odk(d)),
                         "odk's keyboard through uinput")
        dev = evdev.InputDevice(str(out))
        for down in (True, False):
            qmp("input-send-event", events=[{"type": "key", "data": {
                "down": down, "key": {"type": "qcode", "data": "a"}}}])
        assert read_keys(dev, 2) == [(e.KEY_A, 1), (e.KEY_A, 0)]
        dev.close()
    finally:
        odkd.stop()
    wait_until(lambda: event_node(kernel_kbd), "usbhid to have the keyboard back")


def test_the_evdev_bus_sees_input_devices_come_and_go_after_start():
    """Hotplug on the evdev bus: a keyboard made after odkd started (here
    with python3-evdev's UInput) becomes an OdkEvdevDevice that hid-remap
    takes, and its removal takes the node and the driver along."""
    import evdev
    from evdev import ecodes as e
    subprocess.run(["modprobe", "uinput"], check=True)
    wait_until(Path("/dev/uinput").exists, "/dev/uinput")
    odkd = Odkd("--evdev", "--hid-backend", "uinput")
    try:
        name = "odk hotplug test keyboard"
        ui = evdev.UInput({e.EV_KEY: list(range(e.KEY_ESC, e.KEY_KPDOT + 1))}, name=name,
                          vendor=0x1d6b, product=0x0104)
        try:
            node = wait_until(lambda: next((n for n in odkd.json("tree")
                                            if n["class"] == "OdkEvdevDevice"
                                            and n["properties"]["OdkEvdevName"] == name), None),
                              "the new keyboard's node")
            assert node["properties"]["OdkEvdevKeyboard"] is True
            inst = wait_until(lambda: next((i for i in odkd.json("list")
                                            if i["provider"] == node["id"]
                                            and i["state"] == "running"), None),
                              "a driver on it")
        finally:
            ui.close()
        wait_until(lambda: all(n["id"] != node["id"] for n in odkd.json("tree")),
                   "the node to go with the device")
        wait_until(lambda: all(i["node"] != inst["node"] for i in odkd.json("list")),
                   "its driver to go")
    finally:
        odkd.stop()
