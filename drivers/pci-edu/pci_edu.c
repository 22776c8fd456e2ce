/* SPDX-License-Identifier: MIT */
/* pci-edu: a driver for QEMU's educational PCI device "edu" (1234:11e8), on
 * odk's simulated PCI bus (odkctl pci plug edu) and, unchanged, on the real
 * one behind VFIO.  The first PCI driver to read: it opens its function,
 * turns on memory decoding and bus mastering, takes the MSI vector (INTx
 * when there is none, or when its personality says "PciEduInterrupt":
 * "INTx"), and offers apps:
 *   selector 0  factorial: scalar_in[0] = n, scalar_out[0] = n! (32 bits)
 *   selector 1  DMA round trip: memory[0] (the app's bytes, OUT) goes to the
 *               device's buffer at offset scalar_in[1], then back into
 *               memory[1] (IN); scalar_in[0] bytes (at most 4096, the
 *               buffer's size).  The device reads and writes the app's own
 *               pages through the IOMMU: no copy in the driver.
 *   selector 2  counters: interrupts taken, interrupt status bits seen (OR),
 *               IOMMU faults, the last fault's address
 *   selector 3  raise: asks the device for scalar_in[0] interrupts (each
 *               acknowledged by the handler before the next is raised)
 *   selector 4  raw DMA: the device writes (scalar_in[2] = 1) or reads its
 *               buffer to / from IOVA scalar_in[0], scalar_in[1] bytes, with
 *               no mapping made: scalar_out[0] is 1 when the device reported
 *               the DMA failed, scalar_out[1] the IOMMU faults so far
 *   selector 5  liveness: scalar_out[0] = the inverse of scalar_in[0] as the
 *               device computes it, scalar_out[1] = its identification
 *   selector 6  map: maps scalar_in[1] bytes of BAR 0 at scalar_in[0] and
 *               returns the status (the contract for a range outside it)
 *   selector 7  start a DMA from the device into the driver's own buffer
 *               and return at once (tests stop the driver mid-DMA)
 *   selector 8  read the identification register through the direct
 *               mapping, scalar_in[0] times; scalar_out[0] the last value
 *   selector 9  the same through odk_pci_memory_read32 (pci_mmio bench)
 *   selector 10 config read: scalar_in[0] offset, scalar_in[1] width (1, 2, 4)
 *   selector 11 power state: scalar_in[0] 0 (D0) or 3 (D3hot)
 *   selector 12 function-level reset, then decoding and bus mastering on
 *               again (the MSI source stays)
 *   selector 13 a DMA after its command completed: the device writes 0x5a
 *               bytes into memory[0] (IN) through a command, the command
 *               completes, then the device writes 0xee bytes at the same
 *               address; scalar_in[0] bytes.  scalar_out[0] is 1 when the
 *               device reported the second DMA failed (it must: the unmap
 *               took the address away), scalar_out[1] the IOMMU faults
 *   selector 14 pin: memory[0], all of it, stays mapped for the device
 *               until selector 15 or the driver's stop (a frame ring a
 *               capture driver prepares once); scalar_out[0] its segments.
 *               Behind VFIO every page is pinned and counted against the
 *               host's locked-memory limit (the personality's
 *               OdkDMALockLimitMB, docs/pci.md)
 *   selector 15 unpin what selector 14 pinned */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "odk/dma.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/pci.h"

#define EDU_ID 0x00
#define EDU_LIVENESS 0x04
#define EDU_FACTORIAL 0x08
#define EDU_STATUS 0x20
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_START 0x1u
#define EDU_DMA_TO_RAM 0x2u
#define EDU_DMA_IRQ 0x4u
#define EDU_DMA_ERROR 0x8u /* odk's sim reports a failed DMA here */
#define EDU_BUF 0x40000u
#define EDU_BUF_SIZE 4096u
#define EDU_DMA_BITS 28 /* edu masks DMA addresses to 28 bits */
#define RAISE_BIT 0x1000u
/* How long the driver waits for the device to finish a computation or a
 * DMA before ODK_E_TIMEOUT: a hang guard (QEMU's edu takes 100 ms of
 * virtual time per DMA; a loaded machine may take much longer). */
#define EDU_DEADLINE_S 10

struct edu {
    odk_driver *drv;
    odk_pci_device *dev;
    odk_queue *irq_q;
    odk_pci_interrupt *irq;
    const volatile uint32_t *regs; /* BAR 0, mapped */
    atomic_uint_fast64_t interrupts, status_seen;
    odk_memory *scratch; /* selector 7's target */
    odk_dma_command *scratch_dma;
    odk_dma_command *pinned; /* selector 14's */
};

static void on_interrupt(void *ctx, uint32_t vector, uint64_t count, uint64_t ts)
{
    struct edu *e = ctx;
    (void)vector, (void)ts;
    uint32_t status = 0;
    if (odk_pci_memory_read32(e->dev, 0, EDU_IRQ_STATUS, &status) == ODK_OK && status) {
        odk_pci_memory_write32(e->dev, 0, EDU_IRQ_ACK, status);
        atomic_fetch_or(&e->status_seen, status);
    }
    atomic_fetch_add(&e->interrupts, count);
}

static int edu_start(odk_driver *drv)
{
    struct edu *e = odk_driver_state(drv);
    e->drv = drv;
    int st = odk_pci_device_open(drv, &e->dev);
    if (st < 0)
        return st;
    odk_pci_bar_info bar;
    uint32_t id = 0;
    if ((st = odk_pci_bar_get_info(e->dev, 0, &bar)) < 0 ||
        (st = odk_pci_bar_map(e->dev, 0, 0, bar.size, (const volatile void **)&e->regs)) < 0 ||
        (st = odk_pci_set_memory_enable(e->dev, true)) < 0 ||
        (st = odk_pci_set_bus_master(e->dev, true)) < 0 ||
        (st = odk_pci_memory_read32(e->dev, 0, EDU_ID, &id)) < 0)
        return st;
    if ((id & 0xff) != 0xed) {
        odk_error("identification register 0x%08x is not edu's", id);
        return ODK_E_UNSUPPORTED;
    }
    /* MSI when the function offers it, unless the personality asks for
     * INTx ("PciEduInterrupt": "INTx"): the legacy, level-triggered line. */
    const char *want = odk_dict_get_string(odk_driver_personality(drv), "PciEduInterrupt", "");
    odk_pci_interrupt_type type =
        odk_pci_interrupt_vectors(e->dev, ODK_PCI_MSI) && strcmp(want, "INTx") != 0 ? ODK_PCI_MSI
                                                                                    : ODK_PCI_INTX;
    if ((st = odk_queue_create("edu-irq", &e->irq_q)) < 0 ||
        (st = odk_pci_interrupt_create(e->dev, type, 0, e->irq_q, on_interrupt, e, &e->irq)) < 0)
        return st;
    odk_info("edu %u.%u, BAR 0 %llu bytes, %s, on the %s bus", id >> 24, (id >> 16) & 0xff,
             (unsigned long long)bar.size, type == ODK_PCI_MSI ? "MSI" : "INTx",
             odk_pci_device_backend(e->dev));
    return odk_driver_register_service(drv);
}

static void edu_stop(odk_driver *drv)
{
    struct edu *e = odk_driver_state(drv);
    /* A function that vanished (surprise removal) reads all ones, in its
     * configuration space and in its BAR, through calls and through the
     * mapping alike, as on hardware: say so once. */
    uint32_t ids = 0;
    if (e->dev && odk_pci_config_read32(e->dev, 0, &ids) == ODK_E_GONE) {
        uint32_t by_call = 0, mapped = e->regs ? e->regs[EDU_ID / 4] : 0;
        int st = odk_pci_memory_read32(e->dev, 0, EDU_ID, &by_call);
        odk_info("the function is gone: configuration 0x%08x, identification register 0x%08x "
                 "through calls (%s), 0x%08x through the mapping",
                 ids, by_call, odk_status_name(st), mapped);
    }
    odk_pci_interrupt_destroy(e->irq);
    e->irq = NULL;
    if (e->pinned)
        odk_release(e->pinned);
    e->pinned = NULL;
    odk_pci_device_close(e->dev); /* the framework resets the function */
    e->dev = NULL;
    if (e->scratch_dma)
        odk_release(e->scratch_dma);
    odk_release(e->scratch);
    e->scratch_dma = NULL;
    e->scratch = NULL;
    if (e->irq_q)
        odk_release(e->irq_q);
    e->irq_q = NULL;
}

static int edu_factorial(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    uint32_t v = 0, status = 1;
    int st = odk_pci_memory_write32(e->dev, 0, EDU_FACTORIAL, (uint32_t)call->scalar_in[0]);
    /* The device computes while bit 0 of its status is set (QEMU's edu in
     * a thread of its own). */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (st == ODK_OK && (status & 1)) {
        st = odk_pci_memory_read32(e->dev, 0, EDU_STATUS, &status);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (st == ODK_OK && (status & 1) && now.tv_sec - start.tv_sec > EDU_DEADLINE_S)
            st = ODK_E_TIMEOUT;
    }
    if (st == ODK_OK)
        st = odk_pci_memory_read32(e->dev, 0, EDU_FACTORIAL, &v);
    call->scalar_out[0] = v;
    return st;
}

/* Runs one DMA and waits for the device to clear its start bit. */
static int dma_run(struct edu *e, uint64_t src, uint64_t dst, uint64_t count, bool to_ram,
                   bool *failed)
{
    int st;
    if ((st = odk_pci_memory_write64(e->dev, 0, EDU_DMA_SRC, src)) < 0 ||
        (st = odk_pci_memory_write64(e->dev, 0, EDU_DMA_DST, dst)) < 0 ||
        (st = odk_pci_memory_write64(e->dev, 0, EDU_DMA_COUNT, count)) < 0 ||
        (st = odk_pci_memory_write64(e->dev, 0, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_IRQ |
                                                                 (to_ram ? EDU_DMA_TO_RAM : 0))) <
            0)
        return st;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        uint64_t cmd = 0;
        if ((st = odk_pci_memory_read64(e->dev, 0, EDU_DMA_CMD, &cmd)) < 0)
            return st;
        if (!(cmd & EDU_DMA_START)) {
            *failed = cmd & EDU_DMA_ERROR;
            return ODK_OK;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > EDU_DEADLINE_S)
            return ODK_E_TIMEOUT;
        struct timespec nap = {0, 20000};
        nanosleep(&nap, NULL);
    }
}

/* The IOVA of [offset, offset + len) of m, mapped for the device as one
 * segment the device can address. */
static int dma_map(struct edu *e, odk_memory *m, uint64_t offset, uint64_t len,
                   odk_dma_command **cmd, uint64_t *iova)
{
    odk_dma_constraints c = {.address_bits = EDU_DMA_BITS, .flags = ODK_DMA_CONTIGUOUS};
    int st = odk_dma_command_create(odk_driver_iommu(e->drv), &c, cmd);
    if (st < 0)
        return st;
    odk_dma_segment seg;
    uint64_t got = 0;
    if ((st = odk_dma_command_prepare(*cmd, m, offset, len, NULL)) < 0 ||
        (st = odk_dma_command_segments(*cmd, 0, &seg, 1, &got)) < 0) {
        odk_release(*cmd);
        *cmd = NULL;
        return st;
    }
    *iova = seg.address;
    return ODK_OK;
}

static int edu_dma(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    const odk_memory_range *src = &call->memory[0], *dst = &call->memory[1];
    uint64_t len = call->scalar_in[0], off = call->scalar_in[1];
    if (len == 0 || len > EDU_BUF_SIZE || off > EDU_BUF_SIZE - len || len > src->length ||
        len > dst->length)
        return ODK_E_INVALID;
    odk_dma_command *in = NULL, *out = NULL;
    uint64_t in_iova = 0, out_iova = 0;
    bool failed = false;
    int st = dma_map(e, src->memory, src->offset, len, &in, &in_iova);
    if (st == ODK_OK)
        st = dma_map(e, dst->memory, dst->offset, len, &out, &out_iova);
    if (st == ODK_OK)
        st = dma_run(e, in_iova, EDU_BUF + off, len, false, &failed);
    if (st == ODK_OK && !failed)
        st = dma_run(e, EDU_BUF + off, out_iova, len, true, &failed);
    if (st == ODK_OK && failed)
        st = ODK_E_IO;
    if (in)
        odk_release(in); /* completes the command: the device's addresses go */
    if (out)
        odk_release(out);
    call->scalar_out[0] = st == ODK_OK ? len : 0;
    return st;
}

static int edu_counters(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    uint64_t last = 0;
    call->scalar_out[0] = atomic_load(&e->interrupts);
    call->scalar_out[1] = atomic_load(&e->status_seen);
    call->scalar_out[2] = odk_pci_device_fault_count(e->dev, &last);
    call->scalar_out[3] = last;
    return ODK_OK;
}

static int edu_raise(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    uint64_t n = call->scalar_in[0];
    if (n > 100000)
        return ODK_E_INVALID;
    for (uint64_t i = 0; i < n; i++) {
        /* Wait for the handler's ack of the last one: edu raises an MSI
         * per write, and a test counts them exactly. */
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (uint32_t status = RAISE_BIT; status & RAISE_BIT;) {
            int st = odk_pci_memory_read32(e->dev, 0, EDU_IRQ_STATUS, &status);
            if (st < 0)
                return st;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (i == 0 || now.tv_sec - start.tv_sec > EDU_DEADLINE_S)
                break;
        }
        int st = odk_pci_memory_write32(e->dev, 0, EDU_IRQ_RAISE, RAISE_BIT);
        if (st < 0)
            return st;
    }
    return ODK_OK;
}

static int edu_raw_dma(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    uint64_t iova = call->scalar_in[0], len = call->scalar_in[1];
    bool to_ram = call->scalar_in[2], failed = false;
    if (len == 0 || len > EDU_BUF_SIZE)
        return ODK_E_INVALID;
    int st = to_ram ? dma_run(e, EDU_BUF, iova, len, true, &failed)
                    : dma_run(e, iova, EDU_BUF, len, false, &failed);
    call->scalar_out[0] = failed;
    call->scalar_out[1] = odk_pci_device_fault_count(e->dev, NULL);
    return st;
}

static int edu_liveness(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    uint32_t inv = 0, id = 0;
    int st = odk_pci_memory_write32(e->dev, 0, EDU_LIVENESS, (uint32_t)call->scalar_in[0]);
    if (st == ODK_OK)
        st = odk_pci_memory_read32(e->dev, 0, EDU_LIVENESS, &inv);
    if (st == ODK_OK)
        st = odk_pci_memory_read32(e->dev, 0, EDU_ID, &id);
    call->scalar_out[0] = inv;
    call->scalar_out[1] = id;
    return st;
}

static int edu_map(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    const volatile void *p = NULL;
    return odk_pci_bar_map(e->dev, 0, call->scalar_in[0], call->scalar_in[1], &p);
}

static int edu_start_dma(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc, (void)call;
    uint64_t iova = 0;
    int st = ODK_OK;
    if (!e->scratch && (st = odk_memory_create(EDU_BUF_SIZE, ODK_MEM_INOUT, &e->scratch)) < 0)
        return st;
    if (!e->scratch_dma && (st = dma_map(e, e->scratch, 0, EDU_BUF_SIZE, &e->scratch_dma,
                                         &iova)) < 0)
        return st;
    if ((st = odk_pci_memory_write64(e->dev, 0, EDU_DMA_SRC, EDU_BUF)) < 0 ||
        (st = odk_pci_memory_write64(e->dev, 0, EDU_DMA_DST, iova)) < 0 ||
        (st = odk_pci_memory_write64(e->dev, 0, EDU_DMA_COUNT, EDU_BUF_SIZE)) < 0)
        return st;
    st = odk_pci_memory_write64(e->dev, 0, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM);
    return st < 0 ? st : odk_pci_flush(e->dev);
}

static int edu_read_mapped(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    uint32_t v = 0;
    for (uint64_t i = 0; i < call->scalar_in[0]; i++)
        v = e->regs[EDU_ID / 4];
    call->scalar_out[0] = v;
    return ODK_OK;
}

static int edu_read_called(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    uint32_t v = 0;
    for (uint64_t i = 0; i < call->scalar_in[0]; i++) {
        int st = odk_pci_memory_read32(e->dev, 0, EDU_ID, &v);
        if (st < 0)
            return st;
    }
    call->scalar_out[0] = v;
    return ODK_OK;
}

static int edu_config_read(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    uint16_t off = (uint16_t)call->scalar_in[0];
    int st;
    if (call->scalar_in[0] > 0xffff)
        return ODK_E_INVALID;
    switch (call->scalar_in[1]) {
    case 1: {
        uint8_t v = 0;
        st = odk_pci_config_read8(e->dev, off, &v);
        call->scalar_out[0] = v;
        return st;
    }
    case 2: {
        uint16_t v = 0;
        st = odk_pci_config_read16(e->dev, off, &v);
        call->scalar_out[0] = v;
        return st;
    }
    case 4: {
        uint32_t v = 0;
        st = odk_pci_config_read32(e->dev, off, &v);
        call->scalar_out[0] = v;
        return st;
    }
    default:
        return ODK_E_INVALID;
    }
}

static int edu_power(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    if (call->scalar_in[0] != ODK_PCI_D0 && call->scalar_in[0] != ODK_PCI_D3HOT)
        return ODK_E_INVALID;
    return odk_pci_set_power(e->dev, (odk_pci_power)call->scalar_in[0]);
}

static int edu_reset(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc, (void)call;
    int st = odk_pci_reset(e->dev);
    if (st == ODK_OK)
        st = odk_pci_set_memory_enable(e->dev, true);
    if (st == ODK_OK)
        st = odk_pci_set_bus_master(e->dev, true);
    return st;
}

/* Fills the device's buffer with len bytes of value, from driver memory. */
static int load_buffer(struct edu *e, uint8_t value, uint64_t len)
{
    odk_memory *m = NULL;
    odk_dma_command *cmd = NULL;
    uint64_t iova = 0;
    uint8_t bytes[EDU_BUF_SIZE];
    bool failed = false;
    memset(bytes, value, sizeof bytes);
    int st = odk_memory_create(EDU_BUF_SIZE, ODK_MEM_INOUT, &m);
    if (st == ODK_OK)
        st = odk_memory_write(m, 0, bytes, len);
    if (st == ODK_OK)
        st = dma_map(e, m, 0, EDU_BUF_SIZE, &cmd, &iova);
    if (st == ODK_OK)
        st = dma_run(e, iova, EDU_BUF, len, false, &failed);
    if (st == ODK_OK && failed)
        st = ODK_E_IO;
    if (cmd)
        odk_release(cmd);
    if (m)
        odk_release(m);
    return st;
}

static int edu_stale_dma(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    const odk_memory_range *dst = &call->memory[0];
    uint64_t len = call->scalar_in[0], iova = 0;
    if (len == 0 || len > EDU_BUF_SIZE || len > dst->length)
        return ODK_E_INVALID;
    odk_dma_command *cmd = NULL;
    bool failed = false;
    int st = load_buffer(e, 0x5a, len);
    if (st == ODK_OK)
        st = dma_map(e, dst->memory, dst->offset, len, &cmd, &iova);
    if (st == ODK_OK)
        st = dma_run(e, EDU_BUF, iova, len, true, &failed);
    if (st == ODK_OK && failed)
        st = ODK_E_IO;
    /* 0xee goes into the device while the command stands, so no mapping is
     * made between its completion and the stale write (it could take the
     * same address). */
    if (st == ODK_OK)
        st = load_buffer(e, 0xee, len);
    if (cmd)
        odk_release(cmd); /* completes: iova is no longer the device's */
    if (st == ODK_OK)
        st = dma_run(e, EDU_BUF, iova, len, true, &failed);
    call->scalar_out[0] = failed;
    call->scalar_out[1] = odk_pci_device_fault_count(e->dev, NULL);
    return st;
}

static int edu_pin(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc;
    const odk_memory_range *r = &call->memory[0];
    if (e->pinned)
        return ODK_E_BUSY;
    odk_dma_constraints c = {.address_bits = EDU_DMA_BITS};
    int st = odk_dma_command_create(odk_driver_iommu(drv), &c, &e->pinned);
    uint64_t n = 0;
    if (st == ODK_OK && (st = odk_dma_command_prepare(e->pinned, r->memory, r->offset, r->length,
                                                      &n)) < 0) {
        odk_release(e->pinned);
        e->pinned = NULL;
    }
    call->scalar_out[0] = n;
    return st;
}

static int edu_unpin(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct edu *e = odk_driver_state(drv);
    (void)uc, (void)call;
    if (!e->pinned)
        return ODK_E_STATE;
    odk_release(e->pinned); /* completes the command: the pages are unpinned */
    e->pinned = NULL;
    return ODK_OK;
}

static const odk_method edu_methods[] = {
    [0] = {edu_factorial, .scalar_in = 1, .scalar_out = 1},
    [1] = {edu_dma, .scalar_in = 2, .scalar_out = 1, .memory = 2},
    [2] = {edu_counters, .scalar_out = 4},
    [3] = {edu_raise, .scalar_in = 1},
    [4] = {edu_raw_dma, .scalar_in = 3, .scalar_out = 2},
    [5] = {edu_liveness, .scalar_in = 1, .scalar_out = 2},
    [6] = {edu_map, .scalar_in = 2},
    [7] = {edu_start_dma, .scalar_in = 0},
    [8] = {edu_read_mapped, .scalar_in = 1, .scalar_out = 1},
    [9] = {edu_read_called, .scalar_in = 1, .scalar_out = 1},
    [10] = {edu_config_read, .scalar_in = 2, .scalar_out = 1},
    [11] = {edu_power, .scalar_in = 1},
    [12] = {edu_reset, .scalar_in = 0},
    [13] = {edu_stale_dma, .scalar_in = 1, .scalar_out = 2, .memory = 1},
    [14] = {edu_pin, .scalar_out = 1, .memory = 1},
    [15] = {edu_unpin, .scalar_in = 0},
};

static const odk_driver_class edu_class = {
    .name = "PciEdu",
    .state_size = sizeof(struct edu),
    .start = edu_start,
    .stop = edu_stop,
    .methods = edu_methods,
    .n_methods = sizeof edu_methods / sizeof edu_methods[0],
};
ODK_DRIVER_CLASS(edu_class);
