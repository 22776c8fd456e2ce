/* SPDX-License-Identifier: MIT */
/* edu — QEMU's educational PCI device (docs/specs/edu.rst in QEMU), with
 * the same register map, so a driver written against it also drives the
 * real one through VFIO:
 *
 *   0x00 RO  identification 0x010000ed (major 1, minor 0)
 *   0x04 RW  liveness check: reads back the inverse of what was written
 *   0x08 RW  factorial: writing n computes n! (32 bits, wraps)
 *   0x20 RW  status: 0x01 computing (RO), 0x80 raise interrupt 0x001 after
 *            a factorial
 *   0x24 RO  interrupt status;  0x60 WO raise (status |= v);  0x64 WO ack
 *   0x80 RW  DMA source (64 bits), 0x88 destination, 0x90 count
 *   0x98 RW  DMA command: 0x1 start (clears when done), 0x2 direction
 *            (0: RAM to device, 1: device to RAM), 0x4 raise interrupt
 *            0x100 when done.  odk adds 0x8: the DMA failed (IOMMU fault or
 *            a range outside the device's buffer), as edu has no way to say
 *            so.
 *   The DMA buffer is 4096 bytes at device address 0x40000.  DMA addresses
 *   are masked to 28 bits, as edu's are.
 *
 * The sim's edu also has a power-management capability (QEMU's has none)
 * beside its MSI capability.  Arguments: {"dma_delay_ms": N} holds each DMA
 * for N ms before it reaches memory (tests kill a driver mid-DMA);
 * {"fault": "cap-loop" | "cap-overflow" | "bar-size"} declares a broken
 * function odkd must refuse. */
#include <stdlib.h>
#include <string.h>

#include "buses/pci/config.h"
#include "buses/pci/model.h"
#include "odk/status.h"

#define EDU_BAR_SIZE (1u << 20)
#define EDU_DMA_BASE 0x40000u
#define EDU_DMA_SIZE 4096u
#define EDU_DMA_MASK ((1ull << 28) - 1)

#define DMA_START 0x1u
#define DMA_TO_RAM 0x2u
#define DMA_IRQ 0x4u
#define DMA_ERROR 0x8u

struct edu {
    uint8_t buffer[EDU_DMA_SIZE];
    unsigned dma_delay_ms;
    uint64_t dmas;
};

static uint32_t reg32(struct pci_model *m, uint32_t off)
{
    uint32_t v;
    memcpy(&v, m->bar[0] + off, 4);
    return v;
}

static void set32(struct pci_model *m, uint32_t off, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)(m->bar[0] + off), v, __ATOMIC_RELEASE);
}

static uint64_t reg64(struct pci_model *m, uint32_t off)
{
    uint64_t v;
    memcpy(&v, m->bar[0] + off, 8);
    return v;
}

static void set64(struct pci_model *m, uint32_t off, uint64_t v)
{
    __atomic_store_n((uint64_t *)(void *)(m->bar[0] + off), v, __ATOMIC_RELEASE);
}

static int edu_create(struct pci_model *m, const odk_value *args)
{
    struct edu *e = calloc(1, sizeof *e);
    if (!e)
        return ODK_E_NOMEM;
    m->priv = e;
    int64_t delay = odk_dict_get_int(args, "dma_delay_ms", 0);
    e->dma_delay_ms = delay > 0 && delay < 60000 ? (unsigned)delay : 0;
    uint8_t *c = m->config;
    pci_cfg_put(c, PCI_VENDOR_ID, 2, 0x1234);
    pci_cfg_put(c, PCI_DEVICE_ID, 2, 0x11e8);
    c[PCI_REVISION_ID] = 0x10;
    pci_cfg_put(c, PCI_CLASS_PROG, 3, 0x00ff00); /* class 0x00ff: unclassified */
    pci_cfg_put(c, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1af4);
    pci_cfg_put(c, PCI_SUBSYSTEM_ID, 2, 0x1100);
    pci_cfg_put(c, PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
    c[PCI_INTERRUPT_PIN] = 1;
    pci_cfg_put(c, PCI_BAR0, 4, 0); /* 32-bit, non-prefetchable memory */
    m->bar_size[0] = EDU_BAR_SIZE;
    /* 0x40: PM, 0x50: MSI (64-bit address, one vector) */
    c[PCI_CAPABILITY_LIST] = 0x40;
    c[0x40] = PCI_CAP_ID_PM;
    c[0x41] = 0x50;
    pci_cfg_put(c, 0x42, 2, 0x0003); /* PM spec 1.2, no D1/D2 */
    c[0x50] = PCI_CAP_ID_MSI;
    c[0x51] = 0;
    pci_cfg_put(c, 0x52, 2, 0x0080);
    m->n_msi = 1;
    const char *fault = odk_dict_get_string(args, "fault", "");
    if (strcmp(fault, "cap-loop") == 0) {
        c[0x51] = 0x40;
    } else if (strcmp(fault, "cap-overflow") == 0) {
        c[0x41] = 0xf8;
        c[0xf8] = PCI_CAP_ID_MSI;
        pci_cfg_put(c, 0xfa, 2, 0x0180); /* 64-bit + masking: 24 bytes at 0xf8 */
    } else if (strcmp(fault, "bar-size") == 0) {
        m->bar_size[0] = 3u << 20;
    } else if (*fault) {
        return ODK_E_INVALID;
    }
    return ODK_OK;
}

static void edu_reset(struct pci_model *m)
{
    struct edu *e = m->priv;
    memset(e->buffer, 0, sizeof e->buffer);
    set32(m, 0x00, 0x010000ed);
}

static void raise(struct pci_model *m, uint32_t bits)
{
    set32(m, 0x24, reg32(m, 0x24) | bits);
    pci_model_irq(m, 0);
}

static void dma_finish(struct pci_model *m, bool ok)
{
    struct edu *e = m->priv;
    uint32_t cmd = (uint32_t)reg64(m, 0x98);
    e->dmas++;
    set64(m, 0x98, (cmd & ~DMA_START & ~DMA_ERROR) | (ok ? 0 : DMA_ERROR));
    if (cmd & DMA_IRQ)
        raise(m, 0x100);
    pci_model_changed(m);
}

/* The device-side range of the DMA, or false when outside its buffer. */
static bool dev_range(uint64_t addr, uint64_t count, uint32_t *off)
{
    if (addr < EDU_DMA_BASE || count > EDU_DMA_SIZE || addr - EDU_DMA_BASE > EDU_DMA_SIZE - count)
        return false;
    *off = (uint32_t)(addr - EDU_DMA_BASE);
    return true;
}

static void dma_go(struct pci_model *m)
{
    struct edu *e = m->priv;
    uint64_t src = reg64(m, 0x80), dst = reg64(m, 0x88), count = reg64(m, 0x90);
    bool to_ram = reg64(m, 0x98) & DMA_TO_RAM;
    uint32_t off;
    if (count == 0 || !dev_range(to_ram ? src : dst, count, &off)) {
        dma_finish(m, false);
        return;
    }
    int st = to_ram ? pci_model_dma(m, dst & EDU_DMA_MASK, e->buffer + off, count, false)
                    : pci_model_dma(m, src & EDU_DMA_MASK, NULL, count, true);
    if (st < 0)
        dma_finish(m, false);
}

static void edu_dma_done(struct pci_model *m, int status, const void *data, size_t len)
{
    struct edu *e = m->priv;
    if (!(reg64(m, 0x98) & DMA_START))
        return;
    bool to_ram = reg64(m, 0x98) & DMA_TO_RAM;
    uint32_t off;
    if (status == ODK_OK && !to_ram) {
        if (!dev_range(reg64(m, 0x88), len, &off) || len != reg64(m, 0x90))
            status = ODK_E_PROTOCOL;
        else
            memcpy(e->buffer + off, data, len);
    }
    dma_finish(m, status == ODK_OK);
}

static void edu_timer(struct pci_model *m)
{
    if (reg64(m, 0x98) & DMA_START)
        dma_go(m);
}

static void edu_mmio_write(struct pci_model *m, unsigned bar, uint32_t off, unsigned width,
                           uint64_t value)
{
    struct edu *e = m->priv;
    if (bar != 0)
        return;
    if (off >= 0x80 && off < 0xa0 && (width == 4 || width == 8) && off % width == 0) {
        if (reg64(m, 0x98) & DMA_START)
            return; /* edu ignores DMA registers while a DMA runs */
        uint64_t v = reg64(m, off & ~7u);
        if (width == 4)
            v = off & 4 ? (v & 0xffffffffu) | value << 32 : (v & ~0xffffffffull) | (uint32_t)value;
        else
            v = value;
        set64(m, off & ~7u, v);
        if ((off & ~7u) == 0x98 && (v & DMA_START)) {
            if (e->dma_delay_ms)
                pci_model_timer(m, e->dma_delay_ms);
            else
                dma_go(m);
        }
        return;
    }
    if (width != 4)
        return;
    uint32_t v = (uint32_t)value;
    switch (off) {
    case 0x04:
        set32(m, 0x04, ~v);
        break;
    case 0x08: {
        set32(m, 0x20, reg32(m, 0x20) | 0x01);
        uint32_t f = 1;
        for (uint32_t i = 2; i <= v; i++)
            f *= i;
        set32(m, 0x08, f);
        set32(m, 0x20, reg32(m, 0x20) & ~0x01u);
        if (reg32(m, 0x20) & 0x80)
            raise(m, 0x01);
        break;
    }
    case 0x20:
        set32(m, 0x20, (reg32(m, 0x20) & 0x01) | (v & 0x80));
        break;
    case 0x60:
        raise(m, v);
        break;
    case 0x64:
        set32(m, 0x24, reg32(m, 0x24) & ~v);
        break;
    default:
        break;
    }
}

static void edu_report(struct pci_model *m, odk_value *d)
{
    struct edu *e = m->priv;
    odk_dict_set_int(d, "dmas", (int64_t)e->dmas);
}

const struct pci_model_ops pci_model_edu = {
    .name = "edu",
    .create = edu_create,
    .reset = edu_reset,
    .mmio_write = edu_mmio_write,
    .dma_done = edu_dma_done,
    .timer = edu_timer,
    .report = edu_report,
};
