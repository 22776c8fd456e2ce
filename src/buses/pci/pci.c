/* SPDX-License-Identifier: MIT */
/* pci.c — the PCI bus module: the match keys of IOPCIDevice nodes
 * (pci_match.h), which also match nodes other buses publish with PCI
 * properties, and the simulated PCI bus (sim_pci.c) whose functions are
 * device models in processes of their own.  docs/pci.md. */
#include "buses/pci/pci_match.h"
#include "buses/pci/sim_pci.h"
#include "daemon/core/module.h"

static const struct odkd_module pci_bus;

static int init(struct odkd *d)
{
    return pci_sim_init(d, module_state(d, &pci_bus));
}

static const struct class_def classes[] = {
    {"OdkSimPCIBridge", "IOService"},
    {NULL, NULL},
};

static const struct match_keys *const match_keys[] = {&pci_match_keys, NULL};

static const struct odkd_module pci_bus = {
    .name = "pci",
    .kind = "bus",
    .state_size = sizeof(struct pci_sim),
    .classes = classes,
    .client_ops = pci_sim_client_ops,
    .host_ops = pci_sim_host_ops,
    .match_keys = match_keys,
    .init = init,
    .node_gone = pci_sim_node_gone,
    .fini = pci_sim_fini,
};
ODKD_MODULE(pci_bus)
