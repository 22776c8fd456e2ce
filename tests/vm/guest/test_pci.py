# SPDX-License-Identifier: MIT
"""QEMU's edu PCI device behind the emulated IOMMU: visible in sysfs, in
an IOMMU group, bound to vfio-pci, and driven through the VFIO device
file (identification, liveness and factorial registers of BAR 0)."""
import ctypes
import fcntl
import os
import struct
import subprocess
from pathlib import Path

import pytest

from guest_devices import MACHINE
from guest_util import read, wait_until

pytestmark = pytest.mark.vm(devices=MACHINE)

EDU_VENDOR, EDU_DEVICE = "0x1234", "0x11e8"

# <linux/vfio.h>: _IO(VFIO_TYPE, VFIO_BASE + n), VFIO_TYPE ';', base 100.
VFIO_GET_API_VERSION = 0x3B64
VFIO_CHECK_EXTENSION = 0x3B65
VFIO_SET_IOMMU = 0x3B66
VFIO_GROUP_GET_STATUS = 0x3B67
VFIO_GROUP_SET_CONTAINER = 0x3B68
VFIO_GROUP_GET_DEVICE_FD = 0x3B6A
VFIO_DEVICE_GET_REGION_INFO = 0x3B6C
VFIO_API_VERSION = 0
VFIO_TYPE1_IOMMU = 1
VFIO_GROUP_FLAGS_VIABLE = 1


def edu():
    for d in Path("/sys/bus/pci/devices").iterdir():
        if read(d / "vendor") == EDU_VENDOR and read(d / "device") == EDU_DEVICE:
            return d
    return None


def test_edu_is_on_the_pci_bus_in_an_iommu_group():
    d = edu()
    assert d is not None, "no PCI device 1234:11e8 in /sys/bus/pci/devices"
    assert (d / "iommu_group").is_symlink(), "edu is in no IOMMU group: is the IOMMU on?"
    assert any(Path("/sys/class/iommu").iterdir()), "no IOMMU in /sys/class/iommu"


@pytest.fixture
def vfio_edu():
    """edu bound to vfio-pci; afterwards unbound again."""
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    d = edu()
    addr = d.name
    (d / "driver_override").write_text("vfio-pci")
    if (d / "driver").exists():
        (d / "driver" / "unbind").write_text(addr)
    Path("/sys/bus/pci/drivers_probe").write_text(addr)
    wait_until(lambda: (d / "driver").exists(), "edu bound to a driver")
    yield d
    (d / "driver" / "unbind").write_text(addr)
    (d / "driver_override").write_text("\n")


def test_edu_binds_to_vfio_pci_and_answers_through_the_vfio_device(vfio_edu):
    d = vfio_edu
    assert os.readlink(d / "driver").endswith("/vfio-pci")
    group = os.readlink(d / "iommu_group").rsplit("/", 1)[1]
    container = os.open("/dev/vfio/vfio", os.O_RDWR)
    group_fd = os.open(f"/dev/vfio/{group}", os.O_RDWR)
    dev = -1
    try:
        assert fcntl.ioctl(container, VFIO_GET_API_VERSION) == VFIO_API_VERSION
        assert fcntl.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) == 1
        status = bytearray(struct.pack("II", 8, 0))
        fcntl.ioctl(group_fd, VFIO_GROUP_GET_STATUS, status)
        assert struct.unpack("II", status)[1] & VFIO_GROUP_FLAGS_VIABLE, "group not viable"
        fcntl.ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, struct.pack("i", container))
        fcntl.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU)
        # GET_DEVICE_FD takes the address as a string and returns the
        # device's descriptor: fcntl.ioctl would return the buffer instead.
        libc = ctypes.CDLL(None, use_errno=True)
        dev = libc.ioctl(group_fd, ctypes.c_ulong(VFIO_GROUP_GET_DEVICE_FD),
                         ctypes.c_char_p(d.name.encode()))
        assert dev >= 0, os.strerror(ctypes.get_errno())
        info = bytearray(struct.pack("IIIIQQ", 32, 0, 0, 0, 0, 0))  # struct vfio_region_info, BAR 0
        fcntl.ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, info)
        _, flags, _, _, size, offset = struct.unpack("IIIIQQ", info)
        assert size >= 0x100, f"BAR 0 is {size} bytes"

        def rd(reg):
            return struct.unpack("<I", os.pread(dev, 4, offset + reg))[0]

        def wr(reg, v):
            os.pwrite(dev, struct.pack("<I", v), offset + reg)
        # edu's registers (QEMU docs/specs/edu.rst): 0x00 identification
        # 0xRRrr00edh, 0x04 liveness (reads back the inverse), 0x08
        # factorial (computes in the device, busy bit 0 of 0x20).
        assert rd(0x00) & 0xFFFF == 0x00ED, hex(rd(0x00))
        wr(0x04, 0x12345678)
        assert rd(0x04) == (~0x12345678) & 0xFFFFFFFF
        wr(0x08, 10)
        wait_until(lambda: not rd(0x20) & 1, "the factorial to be computed")
        assert rd(0x08) == 3628800
    finally:
        if dev >= 0:
            os.close(dev)
        os.close(group_fd)
        os.close(container)
