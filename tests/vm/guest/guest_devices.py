# SPDX-License-Identifier: MIT
"""QEMU arguments the guest tests ask for through vm(devices=...).  Tests
that share one list share one boot, so most use MACHINE."""

# An emulated IOMMU (VT-d) with QEMU's educational PCI device behind it,
# and a USB 3 controller with a keyboard.  intel-iommu comes first: it
# must precede the PCI devices it translates for.
MACHINE = [
    "-device", "intel-iommu,intremap=on",
    "-device", "edu",
    "-device", "qemu-xhci,id=xhci",
    "-device", "usb-kbd,bus=xhci.0,id=kbd",
]
