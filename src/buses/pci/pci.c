/* SPDX-License-Identifier: MIT */
/* The PCI bus.  For now it only registers the match keys of IOPCIDevice
 * nodes (pci_match.h), so PCI personalities match nodes that another bus
 * (the sim bus) publishes with PCI properties.  A later issue adds
 * simulated host controllers here that publish IOPCIDevice nodes
 * themselves. */
#include "buses/pci/pci_match.h"
#include "daemon/core/module.h"

static const struct match_keys *const match_keys[] = {&pci_match_keys, NULL};

static const struct odkd_module pci_bus = {
    .name = "pci",
    .kind = "bus",
    .match_keys = match_keys,
};
ODKD_MODULE(pci_bus)
