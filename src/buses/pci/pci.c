/* SPDX-License-Identifier: MIT */
/* pci.c — the PCI bus module: the match keys of IOPCIDevice nodes
 * (pci_match.h), which also match nodes other buses publish with PCI
 * properties, the simulated PCI bus (sim_pci.c) whose functions are
 * device models in processes of their own, and real functions through
 * VFIO (vfio.c, with --vfio ADDRESS).  docs/pci.md. */
#include "buses/pci/pci_match.h"
#include "buses/pci/sim_pci.h"
#include "buses/pci/vfio.h"
#include "daemon/core/module.h"

static const struct odkd_module pci_bus;

static int init(struct odkd *d)
{
    return pci_sim_init(d, module_state(d, &pci_bus));
}

static int start(struct odkd *d)
{
    struct pci_sim *s = module_state(d, &pci_bus);
    return pci_vfio_start(d, s->bridge);
}

static void node_gone(struct odkd *d, reg_node *node)
{
    pci_sim_node_gone(d, node);
    pci_vfio_node_gone(d, node);
}

static void fini(struct odkd *d)
{
    pci_sim_fini(d);
    pci_vfio_fini(d);
}

static const struct module_option options[] = {
    {"vfio", "ADDRESS", "drive the PCI function ADDRESS (bound to vfio-pci) through VFIO; "
                        "any: every function bound to vfio-pci, now or later"},
    {NULL, NULL, NULL},
};

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
    .options = options,
    .option = pci_vfio_option,
    .client_ops = pci_sim_client_ops,
    .host_ops = pci_sim_host_ops,
    .match_keys = match_keys,
    .init = init,
    .start = start,
    .node_gone = node_gone,
    .fini = fini,
};
ODKD_MODULE(pci_bus)
