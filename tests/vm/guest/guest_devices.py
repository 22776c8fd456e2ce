# SPDX-License-Identifier: MIT
"""QEMU arguments the guest tests ask for through vm(devices=...).  Tests
that share one list share one boot, so most use MACHINE."""

# An emulated IOMMU (VT-d) with QEMU's educational PCI device behind it,
# and a USB 3 controller with a keyboard.  intel-iommu comes first: it
# must precede the PCI devices it translates for.  edu sits behind a PCIe
# root port (rp1), where QEMU's device_del can hot-unplug it and
# device_add plug it back (test_plug_campaign.py); on the root complex it
# could not be removed.
MACHINE = [
    "-device", "intel-iommu,intremap=on",
    "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
    "-device", "edu,bus=rp1,id=edu",
    "-device", "qemu-xhci,id=xhci",
    "-device", "usb-kbd,bus=xhci.0,id=kbd",
    # QEMU's FTDI adapter (test_usb_libusb.py); its line is looped to a
    # virtio serial port the guest reads (org.odk.ftdi-peer).
    "-chardev", "socket,id=ftdiline,path={rundir}/ftdi.sock,server=on,wait=off",
    "-chardev", "socket,id=ftdipeer,path={rundir}/ftdi.sock",
    "-device", "usb-serial,bus=xhci.0,chardev=ftdiline,id=ftdi,serial=ODKFTDI1",
    "-device", "virtio-serial-pci,id=peervs",
    "-device", "virtserialport,bus=peervs.0,chardev=ftdipeer,name=org.odk.ftdi-peer",
    # QEMU's user networking, kept to the guest (restrict=on), for the
    # usb-net adapter test_usb_net.py plugs with device_add (and removes).
    "-netdev", "user,id=odknet,restrict=on",
]
