/* SPDX-License-Identifier: MIT */
/* capture — a video capture card (drivers/pci-capture/capture_card.h has
 * its register map, descriptors and frame format).  It produces numbered
 * frames of a test pattern and writes each, by bus-master DMA through the
 * driver's IOMMU, into the buffer the next descriptor of the driver's ring
 * names; one MSI-X interrupt per frame.
 *
 * One frame is in flight at a time, as a chain of DMAs (pci_model_dma does
 * one at a time, at most PCIW_MAX_DMA bytes): read the descriptor, read its
 * scatter-gather list in batches, write the frame entry by entry, write the
 * descriptor back.  Each step starts in dma_done of the one before.  The
 * frame's pixels are made where they land (pci_model_dma_post_fill): in
 * the driver's memory itself when the runner's view of the IOMMU admits
 * the write, so a frame is written once, by the card, and never copied.
 *
 * Arguments: {"fps": N} sets the rate the card starts with (default 30);
 * {"edid": "bad-checksum"} gives it an EDID whose checksum is wrong (a
 * driver must refuse to pass it on). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buses/pci/config.h"
#include "buses/pci/model.h"
#include "capture_card.h"
#include "odk/status.h"

#define SG_BATCH (PCIW_MAX_DMA / sizeof(struct cap_sg))

enum step { IDLE, READ_DESC, READ_SG, WRITE_DATA, WRITE_BACK };

struct capture {
    enum step step;
    bool timer_armed;
    uint64_t desc_addr; /* the descriptor in flight */
    uint64_t dma_at;    /* where the last DMA pointed */
    struct cap_desc desc;
    struct cap_frame_header hdr;
    uint64_t frame_bytes, done; /* the frame's size and what is written */
    uint32_t sg_next;           /* list entries read so far */
    struct cap_sg sg[SG_BATCH]; /* the batch being used */
    uint32_t sg_have, sg_at;    /* entries in the batch, the one in use */
    uint64_t sg_used;           /* bytes of sg[sg_at] already written */
    uint32_t chunk[PCIW_MAX_DMA / 4];
    uint64_t fifo_ts[CAP_FIFO_FRAMES]; /* frames due, waiting on board */
    unsigned fifo_n, fifo_at;
    uint64_t frames, drops, dma_errors, bad_desc;
    unsigned initial_fps;
    bool edid_bad_checksum;
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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One 18-byte detailed timing descriptor (E-EDID 1.4, 3.10.2): pixel
 * clock in 10 kHz, active and blanking pixels and lines, sync offset and
 * width, image size in mm; digital separate sync, both polarities +. */
static void edid_timing(uint8_t *d, unsigned clock_10khz, unsigned ha, unsigned hb, unsigned va,
                        unsigned vb, unsigned hso, unsigned hsw, unsigned vso, unsigned vsw,
                        unsigned hmm, unsigned vmm)
{
    d[0] = (uint8_t)clock_10khz;
    d[1] = (uint8_t)(clock_10khz >> 8);
    d[2] = (uint8_t)ha;
    d[3] = (uint8_t)hb;
    d[4] = (uint8_t)(((ha >> 8) & 0xf) << 4 | ((hb >> 8) & 0xf));
    d[5] = (uint8_t)va;
    d[6] = (uint8_t)vb;
    d[7] = (uint8_t)(((va >> 8) & 0xf) << 4 | ((vb >> 8) & 0xf));
    d[8] = (uint8_t)hso;
    d[9] = (uint8_t)hsw;
    d[10] = (uint8_t)((vso & 0xf) << 4 | (vsw & 0xf));
    d[11] = (uint8_t)(((hso >> 8) & 3) << 6 | ((hsw >> 8) & 3) << 4 | ((vso >> 4) & 3) << 2 |
                      ((vsw >> 4) & 3));
    d[12] = (uint8_t)hmm;
    d[13] = (uint8_t)vmm;
    d[14] = (uint8_t)(((hmm >> 8) & 0xf) << 4 | ((vmm >> 8) & 0xf));
    d[15] = d[16] = 0;   /* no border */
    d[17] = 0x18 | 0x06; /* digital separate sync, +vsync, +hsync */
}

/* The card's EDID base block (capture_card.h, CAP_EDID). */
static void edid_build(uint8_t e[CAP_EDID_SIZE], bool bad_checksum)
{
    static const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    static const uint8_t srgb[10] = {0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54};
    memset(e, 0, CAP_EDID_SIZE);
    memcpy(e, header, 8);
    /* "ODK": three letters of 5 bits ('A' = 1), big-endian */
    uint16_t mfg = (uint16_t)(('O' - '@') << 10 | ('D' - '@') << 5 | ('K' - '@'));
    e[8] = (uint8_t)(mfg >> 8);
    e[9] = (uint8_t)mfg;
    e[10] = (uint8_t)CAP_DEVICE; /* product code, little-endian */
    e[11] = (uint8_t)(CAP_DEVICE >> 8);
    e[12] = 1; /* serial number 1 */
    e[16] = 48;              /* week 48 */
    e[17] = 2026 - 1990;     /* of 2026 */
    e[18] = 1;               /* EDID 1.4 */
    e[19] = 4;
    e[20] = 0x80 | 0x20 | 0x02; /* digital, 8 bits a colour, HDMI-a */
    e[21] = 60;                 /* 60 x 34 cm */
    e[22] = 34;
    e[23] = 120;  /* gamma 2.2 */
    e[24] = 0x06; /* RGB 4:4:4, sRGB, the preferred timing is native */
    memcpy(e + 25, srgb, sizeof srgb);
    e[35] = 0x20; /* established: 640x480 at 60 Hz (the card's default) */
    /* standard timings: 1280x720 and 1920x1080, 16:9 at 60 Hz; the rest unused */
    static const uint8_t std[16] = {0x81, 0xc0, 0xd1, 0xc0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    memcpy(e + 38, std, sizeof std);
    /* CTA-861's 1080p60 (148.5 MHz) and 2160p30 (297 MHz) */
    edid_timing(e + 54, 14850, 1920, 280, 1080, 45, 88, 44, 4, 5, 600, 340);
    edid_timing(e + 72, 29700, 3840, 560, 2160, 90, 176, 88, 8, 10, 600, 340);
    /* range limits: 24-60 Hz, 30-135 kHz, 300 MHz, no timing formula */
    static const uint8_t range[18] = {0, 0, 0, 0xfd, 0, 24, 60, 30, 135, 30, 0x01,
                                      0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20};
    memcpy(e + 90, range, sizeof range);
    static const uint8_t name[18] = {0, 0, 0, 0xfc, 0, 'O', 'D', 'K', ' ', 'C', 'a', 'p',
                                     't', 'u', 'r', 'e', '\n', 0x20};
    memcpy(e + 108, name, sizeof name);
    e[126] = 0; /* no extension block */
    uint8_t sum = 0;
    for (unsigned i = 0; i < CAP_EDID_SIZE - 1; i++)
        sum = (uint8_t)(sum + e[i]);
    e[127] = (uint8_t)(0x100 - sum);
    if (bad_checksum)
        e[127] ^= 0x5a;
}

static int capture_create(struct pci_model *m, const odk_value *args)
{
    struct capture *c = calloc(1, sizeof *c);
    if (!c)
        return ODK_E_NOMEM;
    m->priv = c;
    int64_t fps = odk_dict_get_int(args, "fps", 30);
    if (fps < 0 || fps > CAP_MAX_FPS)
        return ODK_E_INVALID;
    c->initial_fps = (unsigned)fps;
    const char *edid = odk_dict_get_string(args, "edid", NULL);
    if (edid && strcmp(edid, "bad-checksum"))
        return ODK_E_INVALID;
    c->edid_bad_checksum = edid != NULL;
    uint8_t *cfg = m->config;
    pci_cfg_put(cfg, PCI_VENDOR_ID, 2, CAP_VENDOR);
    pci_cfg_put(cfg, PCI_DEVICE_ID, 2, CAP_DEVICE);
    cfg[PCI_REVISION_ID] = 0x01;
    pci_cfg_put(cfg, PCI_CLASS_PROG, 3, 0x040000); /* multimedia video controller */
    pci_cfg_put(cfg, PCI_SUBSYSTEM_VENDOR_ID, 2, 0x1af4);
    pci_cfg_put(cfg, PCI_SUBSYSTEM_ID, 2, 0x1100);
    pci_cfg_put(cfg, PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
    cfg[PCI_INTERRUPT_PIN] = 1;
    pci_cfg_put(cfg, PCI_BAR0, 4, 0); /* 32-bit, non-prefetchable memory */
    m->bar_size[0] = CAP_BAR_SIZE;
    /* 0x40: PM, 0x50: MSI-X with two vectors, table and PBA in BAR 0 */
    cfg[PCI_CAPABILITY_LIST] = 0x40;
    cfg[0x40] = PCI_CAP_ID_PM;
    cfg[0x41] = 0x50;
    pci_cfg_put(cfg, 0x42, 2, 0x0003);
    cfg[0x50] = PCI_CAP_ID_MSIX;
    cfg[0x51] = 0;
    pci_cfg_put(cfg, 0x52, 2, 2 - 1);                /* table size - 1 */
    pci_cfg_put(cfg, 0x54, 4, CAP_MSIX_TABLE | 0); /* offset | BIR */
    pci_cfg_put(cfg, 0x58, 4, CAP_MSIX_PBA | 0);
    m->n_msix = 2;
    return ODK_OK;
}

static void capture_reset(struct pci_model *m)
{
    struct capture *c = m->priv;
    c->step = IDLE;
    c->timer_armed = false;
    c->fifo_n = 0;
    set32(m, CAP_ID, CAP_ID_VALUE);
    set32(m, CAP_WIDTH, 640);
    set32(m, CAP_HEIGHT, 480);
    set32(m, CAP_FORMAT, CAP_FORMAT_BGRA);
    set32(m, CAP_FPS, c->initial_fps);
    set32(m, CAP_FRAME_SIZE, 640 * 480 * 4);
    set32(m, CAP_RING_SIZE, 1);
    uint8_t edid[CAP_EDID_SIZE];
    edid_build(edid, c->edid_bad_checksum);
    memcpy(m->bar[0] + CAP_EDID, edid, sizeof edid);
}

static bool running(struct pci_model *m)
{
    return reg32(m, CAP_STATUS) & CAP_STATUS_RUNNING;
}

static void cause(struct pci_model *m, uint32_t bits)
{
    set32(m, CAP_IRQ_CAUSE, reg32(m, CAP_IRQ_CAUSE) | bits);
    if (reg32(m, CAP_IRQ_MASK) & bits)
        pci_model_irq(m, bits & CAP_IRQ_ERROR ? CAP_VECTOR_ERROR : CAP_VECTOR_FRAME);
}

/* The card stops on an error it cannot go past. */
static void fail(struct pci_model *m, uint32_t status_bit, uint64_t addr)
{
    struct capture *c = m->priv;
    c->step = IDLE;
    if (status_bit == CAP_STATUS_DMA_ERROR)
        c->dma_errors++;
    else
        c->bad_desc++;
    set64(m, CAP_FAULT_ADDR, addr);
    set32(m, CAP_STATUS, (reg32(m, CAP_STATUS) & ~CAP_STATUS_RUNNING) | status_bit);
    set32(m, CAP_CONTROL, 0);
    pci_model_timer(m, 0);
    c->timer_armed = false;
    cause(m, CAP_IRQ_ERROR);
    pci_model_changed(m);
}

static void dma(struct pci_model *m, uint64_t addr, void *data, size_t len, bool to_device)
{
    ((struct capture *)m->priv)->dma_at = addr;
    int st = pci_model_dma(m, addr, data, len, to_device);
    if (st == ODK_E_GONE) { /* the driver's link ended: the reset follows */
        ((struct capture *)m->priv)->step = IDLE;
        return;
    }
    if (st < 0)
        fail(m, CAP_STATUS_DMA_ERROR, addr);
}

static void arm(struct pci_model *m)
{
    struct capture *c = m->priv;
    unsigned fps = reg32(m, CAP_FPS);
    if (!fps || !running(m))
        return;
    pci_model_timer(m, (1000 + fps / 2) / fps ? (1000 + fps / 2) / fps : 1);
    c->timer_armed = true;
}

/* Starts the next frame, taken at ts, if a descriptor is free; false when
 * none is. */
static bool frame_begin(struct pci_model *m, uint64_t ts)
{
    struct capture *c = m->priv;
    uint32_t head = reg32(m, CAP_RING_HEAD), tail = reg32(m, CAP_RING_TAIL);
    uint32_t size = reg32(m, CAP_RING_SIZE);
    if (head == tail || head - tail > size)
        return false;
    c->desc_addr = reg64(m, CAP_RING_BASE) + (uint64_t)(tail & (size - 1)) * sizeof c->desc;
    c->frame_bytes = (uint64_t)reg32(m, CAP_WIDTH) * reg32(m, CAP_HEIGHT) * 4;
    c->hdr = (struct cap_frame_header){.magic = CAP_FRAME_MAGIC,
                                       .width = reg32(m, CAP_WIDTH),
                                       .height = reg32(m, CAP_HEIGHT),
                                       .format = CAP_FORMAT_BGRA,
                                       .sequence = reg64(m, CAP_SEQUENCE),
                                       .timestamp_ns = ts};
    c->done = 0;
    c->step = READ_DESC;
    dma(m, c->desc_addr, NULL, sizeof c->desc, true);
    return true;
}

/* Starts a frame when the card is idle, one is due (always, at FPS 0) and
 * a descriptor is free. */
static void pump(struct pci_model *m)
{
    struct capture *c = m->priv;
    if (c->step != IDLE || !running(m))
        return;
    if (!reg32(m, CAP_FPS)) {
        frame_begin(m, now_ns());
    } else if (c->fifo_n && frame_begin(m, c->fifo_ts[c->fifo_at])) {
        c->fifo_at = (c->fifo_at + 1) % CAP_FIFO_FRAMES;
        c->fifo_n--;
    }
}

static void read_sg_batch(struct pci_model *m)
{
    struct capture *c = m->priv;
    uint32_t n = c->desc.sg_count - c->sg_next;
    if (n > SG_BATCH)
        n = SG_BATCH;
    c->step = READ_SG;
    c->sg_have = n;
    dma(m, c->desc.sg_addr + (uint64_t)c->sg_next * sizeof(struct cap_sg), NULL,
        n * sizeof(struct cap_sg), true);
}

static void write_back(struct pci_model *m, bool short_list)
{
    struct capture *c = m->priv;
    c->desc.sequence = c->hdr.sequence;
    c->desc.bytes = (uint32_t)c->done;
    c->desc.status = CAP_DESC_DONE | (short_list ? CAP_DESC_ERROR : 0);
    c->step = WRITE_BACK;
    dma(m, c->desc_addr + 16, &c->desc.sequence, 16, false);
}

/* Makes bytes [pos + off, pos + off + n) of the frame in flight at dst:
 * the pattern's words straight into place when both are word-aligned
 * (the usual case: the frame straight into the driver's memory), the rest
 * cut from words made in c->chunk. */
struct frame_fill {
    struct capture *c;
    uint64_t pos;
};

static void frame_fill(void *ctx, uint8_t *dst, size_t off, size_t n)
{
    struct frame_fill *f = ctx;
    struct capture *c = f->c;
    uint64_t pos = f->pos + off;
    if (pos % 4 == 0 && (uintptr_t)dst % 4 == 0 && n >= 4) {
        cap_fill_dma((uint32_t *)(void *)dst, pos / 4, n / 4, c->hdr.sequence, &c->hdr);
        pos += n & ~(size_t)3;
        dst += n & ~(size_t)3;
        n &= 3;
    }
    while (n) {
        size_t k = sizeof c->chunk - pos % 4;
        if (k > n)
            k = n;
        uint64_t w0 = pos / 4, w1 = (pos + k + 3) / 4;
        cap_fill(c->chunk, w0, w1 - w0, c->hdr.sequence, &c->hdr);
        memcpy(dst, (uint8_t *)c->chunk + pos % 4, k);
        pos += k;
        dst += k;
        n -= k;
    }
}

/* Posts the frame's next pieces while the window has room, reads the next
 * batch of the list when this one is used up, and writes the descriptor
 * back once every piece is written. */
static void write_next(struct pci_model *m)
{
    struct capture *c = m->priv;
    c->step = WRITE_DATA;
    for (;;) {
        while (c->sg_at < c->sg_have && c->sg_used == c->sg[c->sg_at].len) {
            c->sg_at++;
            c->sg_used = 0;
        }
        bool list_done = c->sg_at == c->sg_have && c->sg_next == c->desc.sg_count;
        if (c->done == c->frame_bytes || list_done) {
            if (!pci_model_dma_posted(m)) /* every piece is in memory */
                write_back(m, c->done != c->frame_bytes);
            return;
        }
        if (c->sg_at == c->sg_have) {
            read_sg_batch(m);
            return;
        }
        if (pci_model_dma_posted(m) == PCI_POSTED_WINDOW)
            return; /* posted_done comes back here */
        const struct cap_sg *e = &c->sg[c->sg_at];
        uint64_t n = e->len - c->sg_used;
        if (n > c->frame_bytes - c->done)
            n = c->frame_bytes - c->done;
        if (n > PCIW_MAX_DMA)
            n = PCIW_MAX_DMA;
        uint64_t at = e->addr + c->sg_used;
        c->dma_at = at;
        struct frame_fill f = {c, c->done};
        int st = pci_model_dma_post_fill(m, at, n, frame_fill, &f);
        if (st == ODK_E_GONE) {
            c->step = IDLE;
            return;
        }
        if (st < 0) {
            fail(m, CAP_STATUS_DMA_ERROR, at);
            return;
        }
        c->sg_used += n;
        c->done += n;
    }
}

static void capture_posted_done(struct pci_model *m, int status, uint64_t addr)
{
    struct capture *c = m->priv;
    if (c->step == IDLE)
        return;
    if (status < 0) {
        fail(m, CAP_STATUS_DMA_ERROR, addr);
        return;
    }
    if (c->step == WRITE_DATA)
        write_next(m);
}

static void frame_end(struct pci_model *m)
{
    struct capture *c = m->priv;
    c->step = IDLE;
    c->frames++;
    set64(m, CAP_SEQUENCE, c->hdr.sequence + 1);
    set32(m, CAP_FRAMES, (uint32_t)c->frames);
    set32(m, CAP_RING_TAIL, reg32(m, CAP_RING_TAIL) + 1);
    cause(m, CAP_IRQ_FRAME);
    /* Reported now and then while running, and always for the frame that
     * ends after a stop (the last word on the card's count). */
    if (c->frames % 64 == 1 || !(reg32(m, CAP_STATUS) & CAP_STATUS_RUNNING))
        pci_model_changed(m);
    pump(m);
}

static void capture_dma_done(struct pci_model *m, int status, const void *data, size_t len)
{
    struct capture *c = m->priv;
    if (c->step == IDLE)
        return;
    if (status == ODK_E_GONE) {
        c->step = IDLE;
        return;
    }
    if (status < 0) {
        fail(m, CAP_STATUS_DMA_ERROR, c->dma_at);
        return;
    }
    switch (c->step) {
    case READ_DESC:
        if (len != sizeof c->desc) {
            fail(m, CAP_STATUS_BAD_DESC, c->desc_addr);
            return;
        }
        memcpy(&c->desc, data, sizeof c->desc);
        if (c->desc.sg_count == 0) {
            fail(m, CAP_STATUS_BAD_DESC, c->desc_addr);
            return;
        }
        c->sg_next = 0;
        read_sg_batch(m);
        return;
    case READ_SG:
        if (len != c->sg_have * sizeof(struct cap_sg)) {
            fail(m, CAP_STATUS_BAD_DESC, c->desc.sg_addr);
            return;
        }
        memcpy(c->sg, data, len);
        for (uint32_t i = 0; i < c->sg_have; i++)
            if (c->sg[i].len == 0 || c->sg[i].len > CAP_MAX_SG_LEN || c->sg[i].addr + c->sg[i].len < c->sg[i].addr) {
                fail(m, CAP_STATUS_BAD_DESC, c->desc.sg_addr);
                return;
            }
        c->sg_next += c->sg_have;
        c->sg_at = 0;
        c->sg_used = 0;
        write_next(m);
        return;
    case WRITE_DATA: /* its writes are posted: see capture_posted_done */
        return;
    case WRITE_BACK:
        frame_end(m);
        return;
    case IDLE:
        return;
    }
}

static void capture_timer(struct pci_model *m)
{
    struct capture *c = m->priv;
    c->timer_armed = false;
    if (!running(m))
        return;
    arm(m);
    if (c->fifo_n == CAP_FIFO_FRAMES) {
        c->drops++;
        set32(m, CAP_DROPS, (uint32_t)c->drops);
    } else {
        c->fifo_ts[(c->fifo_at + c->fifo_n++) % CAP_FIFO_FRAMES] = now_ns();
    }
    pump(m);
}

static void start(struct pci_model *m)
{
    uint32_t size = reg32(m, CAP_RING_SIZE);
    if (!size || (size & (size - 1)) || size > CAP_MAX_RING || !reg64(m, CAP_RING_BASE)) {
        fail(m, CAP_STATUS_BAD_DESC, reg64(m, CAP_RING_BASE));
        return;
    }
    set32(m, CAP_STATUS, CAP_STATUS_RUNNING);
    set32(m, CAP_CONTROL, CAP_CONTROL_RUN);
    pci_model_changed(m);
    if (reg32(m, CAP_FPS))
        arm(m);
    pump(m);
}

static void stop(struct pci_model *m)
{
    struct capture *c = m->priv;
    set32(m, CAP_STATUS, reg32(m, CAP_STATUS) & ~CAP_STATUS_RUNNING);
    set32(m, CAP_CONTROL, 0);
    pci_model_timer(m, 0);
    c->timer_armed = false;
    c->fifo_n = 0;
    pci_model_changed(m); /* a frame being written finishes */
}

static void capture_mmio_write(struct pci_model *m, unsigned bar, uint32_t off, unsigned width,
                               uint64_t value)
{
    struct capture *c = m->priv;
    if (bar != 0 || off >= 0x100)
        return;
    if (width == 8 && (off == CAP_RING_BASE)) {
        if (!running(m))
            set64(m, off, value);
        return;
    }
    if (width != 4)
        return;
    uint32_t v = (uint32_t)value;
    switch (off) {
    case CAP_CONTROL:
        if ((v & CAP_CONTROL_RUN) && !running(m))
            start(m);
        else if (!(v & CAP_CONTROL_RUN) && running(m))
            stop(m);
        break;
    case CAP_WIDTH:
    case CAP_HEIGHT:
        if (!running(m) && v >= 1 && v <= CAP_MAX_DIM) {
            set32(m, off, v);
            set32(m, CAP_FRAME_SIZE, reg32(m, CAP_WIDTH) * reg32(m, CAP_HEIGHT) * 4);
        }
        break;
    case CAP_FORMAT:
        break; /* BGRA is the only one */
    case CAP_FPS:
        if (v <= CAP_MAX_FPS) {
            set32(m, CAP_FPS, v);
            if (running(m) && !c->timer_armed)
                arm(m);
            pump(m);
        }
        break;
    case CAP_RING_BASE:
    case CAP_RING_BASE + 4:
        if (!running(m)) {
            uint64_t b = reg64(m, CAP_RING_BASE);
            b = off == CAP_RING_BASE ? (b & ~0xffffffffull) | v
                                     : (b & 0xffffffffull) | (uint64_t)v << 32;
            set64(m, CAP_RING_BASE, b);
        }
        break;
    case CAP_RING_SIZE:
        if (!running(m))
            set32(m, CAP_RING_SIZE, v);
        break;
    case CAP_RING_HEAD:
        set32(m, CAP_RING_HEAD, v);
        pump(m);
        break;
    case CAP_IRQ_ACK:
        set32(m, CAP_IRQ_CAUSE, reg32(m, CAP_IRQ_CAUSE) & ~v);
        break;
    case CAP_IRQ_MASK:
        set32(m, CAP_IRQ_MASK, v & (CAP_IRQ_FRAME | CAP_IRQ_ERROR));
        break;
    default:
        break;
    }
}

static void capture_report(struct pci_model *m, odk_value *d)
{
    struct capture *c = m->priv;
    odk_dict_set_int(d, "frames", (int64_t)c->frames);
    odk_dict_set_int(d, "drops", (int64_t)c->drops);
    odk_dict_set_int(d, "waiting", (int64_t)c->fifo_n);
    odk_dict_set_int(d, "dma_errors", (int64_t)c->dma_errors);
    odk_dict_set_int(d, "bad_descriptors", (int64_t)c->bad_desc);
    odk_dict_set_bool(d, "running", running(m));
}

const struct pci_model_ops pci_model_capture = {
    .name = "capture",
    .create = capture_create,
    .reset = capture_reset,
    .mmio_write = capture_mmio_write,
    .dma_done = capture_dma_done,
    .posted_done = capture_posted_done,
    .timer = capture_timer,
    .report = capture_report,
};
