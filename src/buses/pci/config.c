/* SPDX-License-Identifier: MIT */
/* config.c — walking and checking a PCI function's configuration space
 * (config.h).  The configuration space comes from a device model, which
 * may lie: every pointer is checked before it is followed. */
#include "buses/pci/config.h"

#include <stdarg.h>
#include <stdio.h>

static int fail(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t len, const char *fmt, ...)
{
    if (why && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

unsigned pci_cap_find(const uint8_t *config, uint8_t id)
{
    if (!(pci_cfg_get(config, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
        return 0;
    unsigned p = config[PCI_CAPABILITY_LIST] & 0xfcu;
    for (unsigned n = 0; p && n < PCI_MAX_CAPS; n++) {
        if (p < 0x40 || p > 0xfc)
            return 0;
        if (config[p] == id)
            return p;
        p = config[p + 1] & 0xfcu;
    }
    return 0;
}

/* The bytes each known capability needs. */
static unsigned cap_length(const uint8_t *config, unsigned p)
{
    switch (config[p]) {
    case PCI_CAP_ID_PM:
        return 8;
    case PCI_CAP_ID_MSI: {
        uint16_t flags = (uint16_t)pci_cfg_get(config, p + PCI_MSI_FLAGS, 2);
        return 10u + ((flags & 0x80u) ? 4u : 0u) + ((flags & 0x100u) ? 10u : 0u);
    }
    case PCI_CAP_ID_MSIX:
        return 12;
    default:
        return 2;
    }
}

static int check_caps(const uint8_t *config, const uint64_t *bar_size, char *why, size_t len)
{
    if (!(pci_cfg_get(config, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
        return 0;
    uint8_t seen[256] = {0};
    unsigned p = config[PCI_CAPABILITY_LIST];
    for (unsigned n = 0; p; n++) {
        if (n == PCI_MAX_CAPS)
            return fail(why, len, "capability list longer than %d entries", PCI_MAX_CAPS);
        if (p & 3u)
            return fail(why, len, "capability pointer 0x%02x is not dword aligned", p);
        if (p < 0x40)
            return fail(why, len, "capability pointer 0x%02x points into the header", p);
        if (seen[p])
            return fail(why, len, "capability list loops back to 0x%02x", p);
        seen[p] = 1;
        unsigned need = cap_length(config, p);
        if (p + need > 0x100)
            return fail(why, len, "capability 0x%02x at 0x%02x needs %u bytes past the end of "
                        "the 256-byte space", config[p], p, need);
        if (config[p] == PCI_CAP_ID_MSIX) {
            uint32_t table = pci_cfg_get(config, p + PCI_MSIX_TABLE, 4);
            unsigned bir = table & 7u, entries = (pci_cfg_get(config, p + 2, 2) & 0x7ffu) + 1;
            uint64_t end = (uint64_t)(table & ~7u) + 16ull * entries;
            if (bir >= 6 || !bar_size[bir] || end > bar_size[bir])
                return fail(why, len, "MSI-X table (%u entries at 0x%x in BAR %u) is outside "
                            "the BAR", entries, table & ~7u, bir);
        }
        p = config[p + 1];
    }
    return 0;
}

int pci_config_check(const uint8_t *config, const uint64_t *bar_size, char *why, size_t len)
{
    uint16_t vendor = (uint16_t)pci_cfg_get(config, PCI_VENDOR_ID, 2);
    if (vendor == 0xffff || vendor == 0)
        return fail(why, len, "vendor id 0x%04x is not a device's", vendor);
    if ((config[PCI_HEADER_TYPE] & 0x7f) != 0)
        return fail(why, len, "header type %u: only type 0 (an endpoint) is supported",
                    config[PCI_HEADER_TYPE] & 0x7f);
    for (unsigned i = 0; i < 6; i++) {
        uint64_t s = bar_size[i];
        uint32_t reg = pci_cfg_get(config, PCI_BAR0 + 4 * i, 4);
        if (!s)
            continue;
        if (s & (s - 1))
            return fail(why, len, "BAR %u: size %llu is not a power of two", i,
                        (unsigned long long)s);
        if (s < 16 || s > PCI_SIM_MAX_BAR)
            return fail(why, len, "BAR %u: size %llu is outside 16 bytes .. %llu", i,
                        (unsigned long long)s, (unsigned long long)PCI_SIM_MAX_BAR);
        if (reg & PCI_BAR_IO)
            return fail(why, len, "BAR %u: I/O space BARs are not supported", i);
        if ((reg & PCI_BAR_MEM_64) && (i == 5 || bar_size[i + 1]))
            return fail(why, len, "BAR %u: a 64-bit BAR needs BAR %u free for its upper half",
                        i, i + 1);
        if (reg & PCI_BAR_MEM_64)
            i++;
    }
    return check_caps(config, bar_size, why, len);
}
