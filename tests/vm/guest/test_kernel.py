# SPDX-License-Identifier: MIT
"""The guest has what the families need: Debian's stock kernel, whose
modules for CUSE, NBD, uhid, uinput, VFIO and the USB gadget stack load,
and whose device nodes appear in /dev."""
import os
import platform
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm


def modprobe(*names):
    r = subprocess.run(["modprobe", "-a", *names], capture_output=True, text=True)
    assert r.returncode == 0, f"modprobe {' '.join(names)}: {r.stderr}"


def test_runs_debians_kernel():
    assert platform.release().endswith("-amd64"), platform.release()
    assert os.environ.get("ODK_IN_VM") == "1"
    # The root is the overlay over the host's file system, not the host's kernel.
    mounts = Path("/proc/mounts").read_text()
    assert any(l.split()[1] == "/" and l.split()[0] == "overlay" for l in mounts.splitlines()), mounts


@pytest.mark.parametrize("module,node", [
    ("cuse", "/dev/cuse"),
    ("nbd", "/dev/nbd0"),
    ("uhid", "/dev/uhid"),
    ("uinput", "/dev/uinput"),
    ("vfio-pci", "/dev/vfio/vfio"),
])
def test_module_loads_and_node_appears(module, node):
    modprobe(module)
    assert Path(f"/sys/module/{module.replace('-', '_')}").is_dir()
    assert Path(node).is_char_device() or Path(node).is_block_device(), f"{node} missing"


def test_usb_gadget_stack_on_dummy_hcd():
    modprobe("dummy_hcd", "libcomposite", "usb_f_acm")
    # dummy_hcd's gadget-side controller is what a configfs gadget binds to.
    assert any(Path("/sys/class/udc").iterdir()), "no UDC after loading dummy_hcd"
    if not Path("/sys/kernel/config/usb_gadget").is_dir():
        subprocess.run(["mount", "-t", "configfs", "none", "/sys/kernel/config"], check=False)
    assert Path("/sys/kernel/config/usb_gadget").is_dir()
