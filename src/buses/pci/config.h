/* SPDX-License-Identifier: MIT */
/* config.h — PCI configuration space: register offsets, the capability
 * list, and the checks odkd applies to a function before publishing it.
 * Used by odkd, the model runner and the driver host. */
#ifndef ODK_PCI_CONFIG_H
#define ODK_PCI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO 0x1u
#define PCI_COMMAND_MEMORY 0x2u
#define PCI_COMMAND_MASTER 0x4u
#define PCI_COMMAND_INTX_DISABLE 0x400u
#define PCI_STATUS_CAP_LIST 0x10u

#define PCI_BAR_IO 0x1u
#define PCI_BAR_MEM_64 0x4u
#define PCI_BAR_PREFETCH 0x8u

#define PCI_CAP_ID_PM 0x01
#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_MSIX 0x11

#define PCI_PM_CTRL 4           /* PMCSR, from the PM capability */
#define PCI_PM_STATE_MASK 0x3u
#define PCI_MSI_FLAGS 2          /* Message Control, from the MSI capability */
#define PCI_MSI_ENABLE 0x1u
#define PCI_MSIX_FLAGS 2
#define PCI_MSIX_ENABLE 0x8000u
#define PCI_MSIX_TABLE 4

/* The capability list holds at most this many entries (the 192 bytes
 * after the header hold 48 of the smallest). */
#define PCI_MAX_CAPS 48
/* The largest BAR a simulated function may declare. */
#define PCI_SIM_MAX_BAR (1ull << 30)

static inline uint32_t pci_cfg_get(const uint8_t *c, unsigned off, unsigned width)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < width; i++)
        v |= (uint32_t)c[off + i] << (8 * i);
    return v;
}

static inline void pci_cfg_put(uint8_t *c, unsigned off, unsigned width, uint32_t v)
{
    for (unsigned i = 0; i < width; i++)
        c[off + i] = (uint8_t)(v >> (8 * i));
}

/* The offset of the first capability with id in config (256 bytes or
 * more), or 0.  Stops at a malformed list (see pci_config_check). */
unsigned pci_cap_find(const uint8_t *config, uint8_t id);

/* Checks a function's header and capability list, and that each declared
 * BAR size (bar_size[6], 0 = none) is a power of two from 16 bytes to
 * PCI_SIM_MAX_BAR agreeing with its register's type bits, and that an
 * MSI-X table lies inside its BAR.  Returns 0, or -1 with a sentence in
 * why. */
int pci_config_check(const uint8_t *config, const uint64_t *bar_size, char *why, size_t why_len);

#endif
