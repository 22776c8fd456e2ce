/* SPDX-License-Identifier: MIT */
/* sim_pci.h — the simulated PCI bus inside odkd, as the PCI bus module
 * (pci.c) uses it. */
#ifndef ODK_BUSES_PCI_SIM_PCI_H
#define ODK_BUSES_PCI_SIM_PCI_H

#include "daemon/core/module.h"

struct pci_fn;

struct pci_sim {
    reg_node *bridge; /* the OdkSimPCIBridge node */
    struct pci_fn *fns;
    unsigned slots; /* slots handed out so far (never reused) */
};

/* Adds the bridge node. */
int pci_sim_init(struct odkd *d, struct pci_sim *s);
/* A function's node left the registry: its model stops. */
void pci_sim_node_gone(struct odkd *d, reg_node *node);
/* Stops every model. */
void pci_sim_fini(struct odkd *d);

/* pci-plug, pci-unplug, pci-list */
extern const struct client_op pci_sim_client_ops[];
/* pci-open */
extern const struct host_op pci_sim_host_ops[];

#endif
