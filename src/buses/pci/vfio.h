/* SPDX-License-Identifier: MIT */
/* vfio.h — real PCI functions bound to vfio-pci, as the PCI bus module
 * (pci.c) and the sim bus's requests (sim_pci.c) use them.  Off unless
 * odkd is given --vfio ADDRESS. */
#ifndef ODK_BUSES_PCI_VFIO_H
#define ODK_BUSES_PCI_VFIO_H

#include "daemon/core/module.h"

/* --vfio 0000:00:03.0 (repeatable): a function to take. */
int pci_vfio_option(struct odkd *d, const char *name, const char *value, char *err, size_t len);
/* Opens each function's container, group and device; publishes its node.
 * A function that cannot be opened gets its node with OdkPCIError. */
int pci_vfio_start(struct odkd *d, reg_node *parent);
/* pci-open for a VFIO function: the device and container descriptors.
 * ODK_E_UNSUPPORTED when node is not one. */
int pci_vfio_open(struct host_request *r);
/* Appends each VFIO function's pci-list entry to list. */
void pci_vfio_list(struct odkd *d, odk_value *list, bool verbose);
void pci_vfio_node_gone(struct odkd *d, reg_node *node);
void pci_vfio_fini(struct odkd *d);

#endif
