# SPDX-License-Identifier: MIT
"""A CDC-ACM device made by the kernel's USB gadget stack on dummy_hcd
(configfs, the acm function): a real USB device on a real host controller
driver, for odk's libusb source.  Only where the kernel has the modules and
we are root: the test guest (make vm-test)."""
import os
import subprocess
import threading
from pathlib import Path

import serial

VENDOR, PRODUCT = 0x1D6B, 0x0104  # Linux Foundation, multifunction composite gadget
CONFIGFS = Path("/sys/kernel/config")


def load_modules():
    """The gadget stack and dummy_hcd (which brings the kernel's USB core)."""
    for m in ("dummy_hcd", "libcomposite", "usb_f_acm"):
        subprocess.run(["modprobe", m], check=True)
    if not (CONFIGFS / "usb_gadget").exists():
        subprocess.run(["mount", "-t", "configfs", "configfs", str(CONFIGFS)], check=True)


class AcmGadget:
    VENDOR, PRODUCT = VENDOR, PRODUCT

    def __init__(self, name="odk"):
        load_modules()
        self.dir = g = CONFIGFS / "usb_gadget" / name
        g.mkdir()
        (g / "idVendor").write_text(f"{VENDOR:#06x}")
        (g / "idProduct").write_text(f"{PRODUCT:#06x}")
        (g / "bcdDevice").write_text("0x0100")
        (g / "strings/0x409").mkdir()
        (g / "strings/0x409/manufacturer").write_text("odk")
        (g / "strings/0x409/product").write_text("odk ACM gadget")
        (g / "strings/0x409/serialnumber").write_text("ODK0001")
        (g / "configs/c.1").mkdir()
        (g / "functions/acm.usb0").mkdir()
        (g / "configs/c.1/acm.usb0").symlink_to(g / "functions/acm.usb0")
        self.plug()
        self.loop = None

    @property
    def tty(self):
        """The gadget's end of the line, /dev/ttyGS<port_num>."""
        n = (self.dir / "functions/acm.usb0/port_num").read_text().strip()
        return Path(f"/dev/ttyGS{n}")

    def plug(self):
        udc = sorted(os.listdir("/sys/class/udc"))[0]
        (self.dir / "UDC").write_text(udc)

    def unplug(self):
        """The device leaves the bus (the UDC lets go of the gadget)."""
        if (self.dir / "UDC").read_text().strip():
            (self.dir / "UDC").write_text("\n")

    def loop_back(self):
        """Echoes what the host sends, as the sim's cdc-acm model does, until
        remove()."""
        stop = threading.Event()
        port = serial.Serial(str(self.tty), 115200, timeout=0.2)

        def run():
            while not stop.is_set():
                try:
                    data = port.read(65536)
                    if data:
                        port.write(data)
                except Exception:
                    return  # the gadget went
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.loop = (stop, t, port)

    def remove(self):
        if self.loop:
            stop, t, port = self.loop
            stop.set()
            t.join(timeout=10)
            port.close()
        self.unplug()
        g = self.dir
        (g / "configs/c.1/acm.usb0").unlink()
        (g / "functions/acm.usb0").rmdir()
        (g / "configs/c.1").rmdir()
        (g / "strings/0x409").rmdir()
        g.rmdir()
