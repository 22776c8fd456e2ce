/* SPDX-License-Identifier: MIT */
/* vfio_scan.h — what odkd's --vfio any reads to find functions bound to
 * vfio-pci (vfio.c): the driver's folder in sysfs, and the kernel's bind
 * uevents.  Apart from odkd so that they are tested against a fake tree
 * and made-up messages (test_vfio_scan.c). */
#ifndef ODK_PCI_VFIO_SCAN_H
#define ODK_PCI_VFIO_SCAN_H

#include <stdbool.h>
#include <stddef.h>

/* Is s a PCI address (0000:00:03.0) that fits a function's name? */
bool vfio_is_pci_address(const char *s);
/* Calls fn for each function bound in dir (a driver's sysfs folder, such
 * as /sys/bus/pci/drivers/vfio-pci: its entries named by PCI address; bind,
 * new_id, module and the rest are skipped).  Returns how many, or -1 when
 * dir cannot be read (vfio-pci not loaded). */
int vfio_scan_bound(const char *dir, void (*fn)(void *ctx, const char *addr), void *ctx);
/* Is msg (n bytes, one kernel uevent: "ACTION@DEVPATH" then KEY=VALUE
 * strings, each ended by a NUL) a PCI function being bound to vfio-pci?
 * Such a bind makes no file in /dev/vfio when the function's IOMMU group
 * has one already. */
bool vfio_uevent_binds(const char *msg, size_t n);

#endif
