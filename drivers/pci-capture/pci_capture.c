/* SPDX-License-Identifier: MIT */
/* pci-capture: a driver for the simulated video capture card (1234:0c4e,
 * capture_card.h), and the sample to read for DMA into a big buffer an app
 * shares without a copy.
 *
 * The app configures a frame buffer (CAPTURE_CONFIGURE): the driver makes
 * it one memory descriptor of `slots` slots, prepares one DMA command over
 * all of it (one segment if the app asks: story 6; past 2 GiB in all works
 * like any size: story 14), and writes, in a second descriptor that must be
 * one IOVA-contiguous segment, the card's descriptor ring and a
 * scatter-gather list per slot.  The app maps the frame buffer itself
 * (memory type 0) and takes one event per frame from a data queue (type 0):
 * what the card's DMA wrote is in the app's pages when the event arrives
 * (story 11).  Selectors and events: pci_capture.h. */
#include <stdlib.h>
#include <string.h>

#include "capture_card.h"
#include "odk/dma.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/pci.h"
#include "pci_capture.h"

#define EVENTS_BYTES (256u * 1024) /* holds far more than CAPTURE_MAX_SLOTS events */

struct capture {
    odk_driver *drv;
    odk_pci_device *dev;
    const volatile uint8_t *regs; /* BAR 0, mapped: reads are loads */
    odk_pci_interrupt *irq_frame, *irq_error;
    odk_data_queue *events;

    /* The configuration. */
    uint32_t slots, ring_size;
    uint64_t frame_bytes, stride;
    odk_memory *frames;       /* the frame buffer, shared with apps */
    odk_dma_command *frames_dma;
    odk_memory *ctrl;         /* ring, then the lists */
    odk_dma_command *ctrl_dma;
    uint64_t ctrl_iova;
    uint8_t *ctrl_map;
    uint64_t *sg_off;         /* per slot: its list's offset in ctrl */
    uint32_t *sg_count;       /* and its entries */
    odk_memory *rel_mem;      /* the release page (pci_capture.h), shared with apps */
    struct capture_release_page *rel;
    uint64_t rel_taken;       /* the page's count already taken */
    bool rel_warned;

    /* Positions in the stream (free-running): the card has [tail, given),
     * the app [app_from, seen). */
    uint32_t given, seen, app_from;
    bool running;
    uint64_t sent, interrupts, errors, released;
};

static uint32_t reg(struct capture *c, uint32_t off)
{
    return __atomic_load_n((const uint32_t *)(const void *)(c->regs + off), __ATOMIC_ACQUIRE);
}

/* ---- the frame buffer and the ring -------------------------------------- */

static void unconfigure(struct capture *c)
{
    if (c->frames_dma)
        odk_release(c->frames_dma); /* completes it: the card's addresses go */
    if (c->ctrl_dma)
        odk_release(c->ctrl_dma);
    odk_release(c->frames);
    odk_release(c->ctrl);
    odk_release(c->rel_mem);
    c->rel_mem = NULL;
    c->rel = NULL;
    free(c->sg_off);
    free(c->sg_count);
    c->frames_dma = c->ctrl_dma = NULL;
    c->frames = c->ctrl = NULL;
    c->sg_off = NULL;
    c->sg_count = NULL;
    c->ctrl_map = NULL;
    c->slots = 0;
}

/* Walks the frame buffer's segments and cuts them into the slots' lists:
 * counts entries per slot (fill false) or writes them (fill true). */
static int walk_segments(struct capture *c, bool fill, uint64_t *total)
{
    odk_dma_segment seg[256];
    uint64_t first = 0, got = 0, off = 0;
    *total = 0;
    do {
        int st = odk_dma_command_segments(c->frames_dma, first, seg, 256, &got);
        if (st < 0)
            return st;
        for (uint64_t i = 0; i < got; i++) {
            uint64_t at = off, end = off + seg[i].length;
            while (at < end) {
                uint64_t k = at / c->stride, in = at - k * c->stride;
                if (in >= c->frame_bytes) { /* the slot's tail: no frame bytes */
                    at = end < (k + 1) * c->stride ? end : (k + 1) * c->stride;
                    continue;
                }
                uint64_t stop = k * c->stride + c->frame_bytes;
                uint64_t n = (end < stop ? end : stop) - at;
                if (fill) {
                    struct cap_sg e = {seg[i].address + (at - off), n};
                    memcpy(c->ctrl_map + c->sg_off[k] + 16ull * c->sg_count[k], &e, sizeof e);
                }
                c->sg_count[k]++;
                (*total)++;
                at += n;
            }
            off = end;
        }
        first += got;
    } while (got);
    return ODK_OK;
}

/* Hands the card the descriptor for stream position p. */
static void give(struct capture *c, uint32_t p)
{
    uint32_t slot = p % c->slots;
    struct cap_desc d = {.sg_addr = c->ctrl_iova + c->sg_off[slot],
                         .sg_count = c->sg_count[slot]};
    memcpy(c->ctrl_map + (uint64_t)(p & (c->ring_size - 1)) * sizeof d, &d, sizeof d);
}

/* Gives the card every slot the app does not hold. */
static int refill(struct capture *c)
{
    bool any = false;
    while (c->given - c->app_from < c->slots) {
        give(c, c->given++);
        any = true;
    }
    return any ? odk_pci_memory_write32(c->dev, 0, CAP_RING_HEAD, c->given) : ODK_OK;
}

/* Frames the app gave back through the release page since the last look.
 * The count is the app's to write: one that goes back, or past what the
 * app holds, is ignored (and logged once). */
static void take_page(struct capture *c)
{
    if (!c->rel)
        return;
    uint64_t r = __atomic_load_n(&c->rel->released, __ATOMIC_ACQUIRE);
    if (r == c->rel_taken)
        return;
    uint32_t held = c->seen - c->app_from;
    if (r < c->rel_taken || r - c->rel_taken > held) {
        if (!c->rel_warned)
            odk_warn("release page: the app says %llu frames given back; %llu were, and it "
                     "holds %u: ignored", (unsigned long long)r, (unsigned long long)c->rel_taken,
                     held);
        c->rel_warned = true;
        return;
    }
    c->app_from += (uint32_t)(r - c->rel_taken);
    c->released += r - c->rel_taken;
    c->rel_taken = r;
}

/* Takes what the release page gives back and refills the card.  A card
 * left with no descriptor raises no interrupt, so the page says it is
 * starved (the app then calls), and the page is read once more after the
 * flag: an app's store that came before it is not missed. */
static int give_back(struct capture *c)
{
    take_page(c);
    int st = refill(c);
    if (st < 0 || !c->rel)
        return st;
    bool starved = c->given == reg(c, CAP_RING_TAIL);
    __atomic_store_n(&c->rel->starved, starved ? 1u : 0u, __ATOMIC_RELAXED);
    if (starved) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        take_page(c);
        st = refill(c);
        if (c->given != reg(c, CAP_RING_TAIL))
            __atomic_store_n(&c->rel->starved, 0u, __ATOMIC_RELAXED);
    }
    return st;
}

/* Tells the card the frame format and where its ring is. */
static int program(struct capture *c, uint32_t width, uint32_t height, uint32_t fps)
{
    int st;
    if ((st = odk_pci_memory_write32(c->dev, 0, CAP_WIDTH, width)) < 0 ||
        (st = odk_pci_memory_write32(c->dev, 0, CAP_HEIGHT, height)) < 0 ||
        (st = odk_pci_memory_write32(c->dev, 0, CAP_FPS, fps)) < 0 ||
        (st = odk_pci_memory_write64(c->dev, 0, CAP_RING_BASE, c->ctrl_iova)) < 0 ||
        (st = odk_pci_memory_write32(c->dev, 0, CAP_RING_SIZE, c->ring_size)) < 0)
        return st;
    return odk_pci_memory_write32(c->dev, 0, CAP_RING_HEAD, 0);
}

static int configure(struct capture *c, const uint64_t *in, uint64_t *out)
{
    uint64_t width = in[0], height = in[1], fps = in[2], slots = in[3], stride = in[4];
    uint64_t flags = in[5];
    if (!width || width > CAP_MAX_DIM || !height || height > CAP_MAX_DIM || fps > CAP_MAX_FPS ||
        !slots || slots > CAPTURE_MAX_SLOTS || (flags & ~(uint64_t)CAPTURE_CONTIGUOUS)) {
        odk_warn("configure: %llux%llu at %llu fps in %llu slots (flags 0x%llx): out of range "
                 "(1..%u pixels a side, 0..%u fps, 1..%u slots)",
                 (unsigned long long)width, (unsigned long long)height, (unsigned long long)fps,
                 (unsigned long long)slots, (unsigned long long)flags, CAP_MAX_DIM, CAP_MAX_FPS,
                 CAPTURE_MAX_SLOTS);
        return ODK_E_INVALID;
    }
    uint64_t frame = width * height * 4;
    if (!stride)
        stride = (frame + ODK_DMA_PAGE_SIZE - 1) / ODK_DMA_PAGE_SIZE * ODK_DMA_PAGE_SIZE;
    if (stride < frame || stride % ODK_DMA_PAGE_SIZE || stride > (1ull << 40)) {
        odk_warn("configure: a slot of %llu bytes cannot hold a %llu-byte frame on page "
                 "boundaries (at most 1 TiB)", (unsigned long long)stride,
                 (unsigned long long)frame);
        return ODK_E_INVALID;
    }
    unconfigure(c);
    /* A fresh event queue too: no event of the old stream reaches an app
     * of the new one (an app still holding the old queue keeps its pages). */
    odk_data_queue_free(c->events);
    c->events = NULL;
    int st = odk_data_queue_create(EVENTS_BYTES, &c->events);
    if (st < 0)
        return st;
    c->slots = (uint32_t)slots;
    c->frame_bytes = frame;
    c->stride = stride;
    c->ring_size = 1;
    while (c->ring_size < c->slots)
        c->ring_size <<= 1;
    c->sg_off = calloc(slots, sizeof *c->sg_off);
    c->sg_count = calloc(slots, sizeof *c->sg_count);
    if (!c->sg_off || !c->sg_count) {
        unconfigure(c);
        return ODK_E_NOMEM;
    }
    /* The frame buffer: sparse, so only what the card writes costs memory. */
    odk_dma_constraints fc = {.max_segment_size = CAP_MAX_SG_LEN,
                              .flags = (flags & CAPTURE_CONTIGUOUS) ? ODK_DMA_CONTIGUOUS : 0};
    uint64_t segments = 0, total = 0;
    st = odk_memory_create(slots * stride, ODK_MEM_IN, &c->frames);
    if (st == ODK_OK)
        st = odk_dma_command_create(odk_driver_iommu(c->drv), &fc, &c->frames_dma);
    if (st == ODK_OK)
        st = odk_dma_command_prepare(c->frames_dma, c->frames, 0, slots * stride, &segments);
    if (st == ODK_OK)
        st = walk_segments(c, false, &total);
    if (st < 0) {
        odk_warn("configure: cannot map %llu bytes of frame buffer%s: %s",
                 (unsigned long long)(slots * stride),
                 (flags & CAPTURE_CONTIGUOUS) ? " as one segment" : "", odk_strerror(st));
        unconfigure(c);
        return st;
    }
    /* Ring and lists in one segment: the card takes one base address. */
    uint64_t at = (uint64_t)c->ring_size * sizeof(struct cap_desc);
    for (uint32_t k = 0; k < c->slots; k++) {
        c->sg_off[k] = at;
        at += 16ull * c->sg_count[k];
        c->sg_count[k] = 0;
    }
    odk_dma_constraints cc = {.flags = ODK_DMA_CONTIGUOUS};
    uint64_t ctrl_segments = 0;
    void *map = NULL;
    if ((st = odk_memory_create(at, ODK_MEM_INOUT, &c->ctrl)) == ODK_OK &&
        (st = odk_memory_map(c->ctrl, ODK_MAP_READ | ODK_MAP_WRITE, &map)) == ODK_OK &&
        (st = odk_dma_command_create(odk_driver_iommu(c->drv), &cc, &c->ctrl_dma)) == ODK_OK &&
        (st = odk_dma_command_prepare(c->ctrl_dma, c->ctrl, 0, at, &ctrl_segments)) == ODK_OK) {
        odk_dma_segment s;
        uint64_t got = 0;
        st = odk_dma_command_segments(c->ctrl_dma, 0, &s, 1, &got);
        c->ctrl_iova = s.address;
    }
    c->ctrl_map = map;
    if (st == ODK_OK)
        st = walk_segments(c, true, &total);
    void *rel = NULL;
    if (st == ODK_OK && (st = odk_memory_create(ODK_DMA_PAGE_SIZE, ODK_MEM_INOUT, &c->rel_mem)) ==
                            ODK_OK)
        st = odk_memory_map(c->rel_mem, ODK_MAP_READ | ODK_MAP_WRITE, &rel);
    c->rel = rel;
    c->rel_taken = 0;
    c->rel_warned = false;
    c->given = c->seen = c->app_from = 0;
    /* The card starts its ring at the tail it has: a reset puts it at 0. */
    if (st == ODK_OK && reg(c, CAP_RING_TAIL) != 0) {
        odk_warn("configure: the card's ring is at %u, not 0: reset it first", reg(c, CAP_RING_TAIL));
        st = ODK_E_STATE;
    }
    if (st == ODK_OK)
        st = program(c, (uint32_t)width, (uint32_t)height, (uint32_t)fps);
    if (st < 0) {
        unconfigure(c);
        return st;
    }
    odk_info("configured %llux%llu BGRA at %llu fps: %u slots of %llu bytes (%llu in all, "
             "%llu segments), ring at IOVA 0x%llx",
             (unsigned long long)width, (unsigned long long)height, (unsigned long long)fps,
             c->slots, (unsigned long long)stride, (unsigned long long)(slots * stride),
             (unsigned long long)segments, (unsigned long long)c->ctrl_iova);
    out[0] = frame;
    out[1] = stride;
    out[2] = slots * stride;
    out[3] = segments;
    out[4] = c->ctrl_iova;
    out[5] = total;
    return ODK_OK;
}

/* ---- interrupts --------------------------------------------------------- */

static void on_frame(void *ctx, uint32_t vector, uint64_t count, uint64_t ts)
{
    struct capture *c = ctx;
    (void)vector, (void)ts;
    c->interrupts += count;
    uint32_t cause = reg(c, CAP_IRQ_CAUSE);
    if (cause & CAP_IRQ_FRAME)
        odk_pci_memory_write32(c->dev, 0, CAP_IRQ_ACK, CAP_IRQ_FRAME);
    if (!c->slots)
        return;
    /* The card wrote each descriptor back before it moved its tail; a
     * tail past what the card was given is not believed. */
    uint32_t tail = reg(c, CAP_RING_TAIL);
    while (c->seen != tail && c->seen != c->given) {
        struct cap_desc d;
        memcpy(&d, c->ctrl_map + (uint64_t)(c->seen & (c->ring_size - 1)) * sizeof d, sizeof d);
        struct capture_event e = {
            .sequence = d.sequence,
            .slot = c->seen % c->slots,
            .bytes = d.bytes,
            .status = (d.status & CAP_DESC_ERROR) ? CAPTURE_EVENT_SHORT : CAPTURE_EVENT_FRAME};
        struct cap_frame_header h;
        if (odk_memory_read(c->frames, (uint64_t)e.slot * c->stride, &h, sizeof h) == ODK_OK)
            e.timestamp_ns = h.timestamp_ns;
        c->seen++;
        if (odk_data_queue_enqueue(c->events, &e, sizeof e) == ODK_OK)
            c->sent++;
        else
            odk_warn("frame %llu: the event queue is full; the app misses it",
                     (unsigned long long)e.sequence);
    }
    if (c->running)
        give_back(c);
}

static void on_error(void *ctx, uint32_t vector, uint64_t count, uint64_t ts)
{
    struct capture *c = ctx;
    (void)vector, (void)count, (void)ts;
    uint32_t cause = reg(c, CAP_IRQ_CAUSE);
    if (!(cause & CAP_IRQ_ERROR))
        return;
    odk_pci_memory_write32(c->dev, 0, CAP_IRQ_ACK, CAP_IRQ_ERROR);
    uint64_t addr = 0;
    uint32_t status = 0;
    odk_pci_memory_read64(c->dev, 0, CAP_FAULT_ADDR, &addr);
    odk_pci_memory_read32(c->dev, 0, CAP_STATUS, &status);
    c->errors++;
    c->running = false;
    odk_error("the card stopped (status 0x%x): %s at 0x%llx", status,
              (status & CAP_STATUS_DMA_ERROR) ? "DMA failed" : "unusable descriptor",
              (unsigned long long)addr);
    struct capture_event e = {.sequence = addr, .status = CAPTURE_EVENT_ERROR};
    if (odk_data_queue_enqueue(c->events, &e, sizeof e) == ODK_OK)
        c->sent++;
}

/* ---- lifecycle ---------------------------------------------------------- */

static int capture_start(odk_driver *drv)
{
    struct capture *c = odk_driver_state(drv);
    c->drv = drv;
    int st = odk_pci_device_open(drv, &c->dev);
    if (st < 0)
        return st;
    uint32_t id = 0;
    if ((st = odk_pci_bar_map(c->dev, 0, 0, CAP_BAR_SIZE, (const volatile void **)&c->regs)) <
            0 ||
        (st = odk_pci_set_memory_enable(c->dev, true)) < 0 ||
        (st = odk_pci_set_bus_master(c->dev, true)) < 0 ||
        (st = odk_pci_memory_read32(c->dev, 0, CAP_ID, &id)) < 0)
        return st;
    if (id != CAP_ID_VALUE) {
        odk_error("identification register 0x%08x is not the capture card's", id);
        return ODK_E_UNSUPPORTED;
    }
    if ((st = odk_pci_interrupt_create(c->dev, ODK_PCI_MSIX, CAP_VECTOR_FRAME, NULL, on_frame, c,
                                       &c->irq_frame)) < 0 ||
        (st = odk_pci_interrupt_create(c->dev, ODK_PCI_MSIX, CAP_VECTOR_ERROR, NULL, on_error, c,
                                       &c->irq_error)) < 0 ||
        (st = odk_pci_memory_write32(c->dev, 0, CAP_IRQ_MASK, CAP_IRQ_FRAME | CAP_IRQ_ERROR)) < 0)
        return st;
    odk_info("capture card %u.%u, MSI-X (2 vectors), on the %s bus", (id >> 8) & 0xff, id & 0xff,
             odk_pci_device_backend(c->dev));
    return odk_driver_register_service(drv);
}

static void capture_stop(odk_driver *drv)
{
    struct capture *c = odk_driver_state(drv);
    if (c->dev) {
        uint32_t ids = 0;
        if (odk_pci_config_read32(c->dev, 0, &ids) == ODK_E_GONE)
            odk_info("the card is gone: its configuration space reads 0x%08x", ids);
        else
            odk_pci_memory_write32(c->dev, 0, CAP_CONTROL, 0);
    }
    odk_pci_interrupt_destroy(c->irq_frame);
    odk_pci_interrupt_destroy(c->irq_error);
    c->irq_frame = c->irq_error = NULL;
    odk_pci_device_close(c->dev); /* the framework turns bus mastering off and resets it */
    c->dev = NULL;
    unconfigure(c); /* only now: the card can no longer reach the pages */
    odk_data_queue_free(c->events);
    c->events = NULL;
}

/* ---- what apps call ----------------------------------------------------- */

static int m_configure(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc;
    if (c->running)
        return ODK_E_BUSY;
    /* A new ring starts at 0, and the old buffers must be out of the
     * card's reach before they go: reset the card (a frame it may still be
     * writing ends there), then turn it back on. */
    if (c->slots || reg(c, CAP_RING_TAIL) != 0) {
        int st;
        if ((st = odk_pci_reset(c->dev)) < 0 || (st = odk_pci_set_memory_enable(c->dev, true)) < 0 ||
            (st = odk_pci_set_bus_master(c->dev, true)) < 0 ||
            (st = odk_pci_memory_write32(c->dev, 0, CAP_IRQ_MASK, CAP_IRQ_FRAME | CAP_IRQ_ERROR)) <
                0 ||
            (st = odk_pci_flush(c->dev)) < 0)
            return st;
    }
    return configure(c, call->scalar_in, call->scalar_out);
}

static int m_start(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc, (void)call;
    if (!c->slots)
        return ODK_E_STATE;
    int st = refill(c);
    if (st == ODK_OK)
        st = odk_pci_memory_write32(c->dev, 0, CAP_CONTROL, CAP_CONTROL_RUN);
    if (st == ODK_OK)
        st = odk_pci_flush(c->dev);
    if (st == ODK_OK && !(reg(c, CAP_STATUS) & CAP_STATUS_RUNNING))
        st = ODK_E_IO; /* the card refused the ring */
    c->running = st == ODK_OK;
    return st;
}

static int m_stop(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc, (void)call;
    c->running = false;
    int st = odk_pci_memory_write32(c->dev, 0, CAP_CONTROL, 0);
    return st < 0 ? st : odk_pci_flush(c->dev);
}

static int m_release(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc;
    if (call->scalar_in[0] > (uint32_t)(c->seen - c->app_from))
        return ODK_E_INVALID; /* more than the app holds */
    c->app_from += (uint32_t)call->scalar_in[0];
    c->released += call->scalar_in[0];
    return c->slots ? give_back(c) : ODK_OK;
}

static int m_counters(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc;
    uint64_t *o = call->scalar_out;
    o[0] = c->sent;
    o[1] = reg(c, CAP_FRAMES);
    o[2] = reg(c, CAP_DROPS);
    o[3] = c->interrupts;
    o[4] = c->errors;
    o[5] = odk_pci_device_fault_count(c->dev, NULL);
    o[6] = c->released;
    o[7] = reg(c, CAP_STATUS);
    return ODK_OK;
}

static int m_poke(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc;
    uint64_t v = call->scalar_in[1];
    if (!c->frames)
        return ODK_E_STATE;
    return odk_memory_write(c->frames, call->scalar_in[0], &v, sizeof v);
}

static int m_config_read(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc;
    uint64_t off = call->scalar_in[0], width = call->scalar_in[1];
    if (off > 0xffff || (width != 1 && width != 2 && width != 4))
        return ODK_E_INVALID;
    uint32_t v = 0;
    int st;
    if (width == 4) {
        st = odk_pci_config_read32(c->dev, (uint16_t)off, &v);
    } else if (width == 2) {
        uint16_t h = 0;
        st = odk_pci_config_read16(c->dev, (uint16_t)off, &h);
        v = h;
    } else {
        uint8_t b = 0;
        st = odk_pci_config_read8(c->dev, (uint16_t)off, &b);
        v = b;
    }
    call->scalar_out[0] = v;
    return st;
}

/* The EDID from the card's BAR window into the app's OUT buffer: the
 * driver writes the app's own pages (odk_memory_write on the range the
 * call passed), and they are in the app's buffer when the call returns. */
static int m_edid(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc;
    const odk_memory_range *out = &call->memory[0];
    call->scalar_out[0] = 0;
    if (out->length < CAP_EDID_SIZE)
        return ODK_E_INVALID;
    uint8_t edid[CAP_EDID_SIZE];
    for (unsigned i = 0; i < CAP_EDID_SIZE; i += 4) {
        uint32_t w = reg(c, CAP_EDID + i);
        memcpy(edid + i, &w, 4);
    }
    static const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    uint8_t sum = 0;
    for (unsigned i = 0; i < CAP_EDID_SIZE; i++)
        sum = (uint8_t)(sum + edid[i]);
    if (memcmp(edid, header, sizeof header) || sum) {
        odk_error("the card's EDID is not valid (header %s, checksum off by 0x%02x): not passed on",
                  memcmp(edid, header, sizeof header) ? "wrong" : "right", sum);
        return ODK_E_IO;
    }
    int st = odk_memory_write(out->memory, out->offset, edid, sizeof edid);
    if (st == ODK_OK)
        call->scalar_out[0] = sizeof edid;
    return st;
}

static int capture_memory(odk_driver *drv, odk_user_client *uc, uint32_t type, odk_memory **mem)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc;
    if (type > 1)
        return ODK_E_NOT_FOUND;
    if (!c->frames)
        return ODK_E_STATE; /* configure first */
    *mem = odk_retain(type == 0 ? c->frames : c->rel_mem);
    return ODK_OK;
}

static int capture_queue(odk_driver *drv, odk_user_client *uc, uint32_t type, odk_data_queue **q)
{
    struct capture *c = odk_driver_state(drv);
    (void)uc;
    if (type != 0)
        return ODK_E_NOT_FOUND;
    if (!c->events)
        return ODK_E_STATE; /* configure first */
    *q = c->events;
    return ODK_OK;
}

static const odk_method capture_methods[] = {
    [CAPTURE_CONFIGURE] = {m_configure, .scalar_in = 6, .scalar_out = 6},
    [CAPTURE_START] = {m_start, .scalar_in = 0},
    [CAPTURE_STOP] = {m_stop, .scalar_in = 0},
    [CAPTURE_RELEASE] = {m_release, .scalar_in = 1},
    [CAPTURE_COUNTERS] = {m_counters, .scalar_out = 8},
    [CAPTURE_POKE] = {m_poke, .scalar_in = 2},
    [CAPTURE_CONFIG_READ] = {m_config_read, .scalar_in = 2, .scalar_out = 1},
    [CAPTURE_EDID] = {m_edid, .scalar_out = 1, .memory = 1},
};

static const odk_driver_class capture_class = {
    .name = "PciCapture",
    .state_size = sizeof(struct capture),
    .start = capture_start,
    .stop = capture_stop,
    .methods = capture_methods,
    .n_methods = sizeof capture_methods / sizeof capture_methods[0],
    .copy_client_memory = capture_memory,
    .copy_client_data_queue = capture_queue,
};
ODK_DRIVER_CLASS(capture_class);
