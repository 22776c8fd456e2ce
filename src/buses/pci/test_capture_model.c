/* SPDX-License-Identifier: MIT */
/* Unit tests for the capture card's model (models/capture.c) against a
 * fake runner: its registers, a frame written through a scatter-gather
 * list of odd-sized entries, a list shorter than the frame, an IOMMU fault,
 * the on-board FIFO and its drops.  The fake plays the host: DMAs queue up
 * in order and pump() performs them on a flat IOVA window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buses/pci/model.h"
#include "capture_card.h"
#include "odk/status.h"

#define IOVA 0x10000u
#define WINDOW (1u << 20)

static uint8_t memory[WINDOW];
static struct op {
    bool read, posted;
    uint64_t addr;
    size_t len;
    uint8_t data[PCIW_MAX_DMA];
} ops[64];
static unsigned n_ops, posted_n, irqs[2];
static unsigned timer_ms;

bool pci_model_bus_master(const struct pci_model *m)
{
    (void)m;
    return true;
}

int pci_model_dma(struct pci_model *m, uint64_t addr, void *data, size_t len, bool to_device)
{
    (void)m;
    assert_true(n_ops < 64 && len <= PCIW_MAX_DMA);
    ops[n_ops] = (struct op){.read = to_device, .addr = addr, .len = len};
    if (!to_device)
        memcpy(ops[n_ops].data, data, len);
    n_ops++;
    return ODK_OK;
}

int pci_model_dma_post_fill(struct pci_model *m, uint64_t addr, size_t len, pci_model_fill_fn fn,
                            void *ctx)
{
    (void)m;
    if (posted_n == PCI_POSTED_WINDOW)
        return ODK_E_BUSY;
    assert_true(n_ops < 64 && len <= PCIW_MAX_DMA);
    ops[n_ops] = (struct op){.posted = true, .addr = addr, .len = len};
    /* in two pieces, as a write across two chunks of the IOMMU is made */
    fn(ctx, ops[n_ops].data, 0, len / 3);
    fn(ctx, ops[n_ops].data + len / 3, len / 3, len - len / 3);
    n_ops++;
    posted_n++;
    return ODK_OK;
}

unsigned pci_model_dma_posted(const struct pci_model *m)
{
    (void)m;
    return posted_n;
}

void pci_model_irq(struct pci_model *m, unsigned vector)
{
    (void)m;
    assert_true(vector < 2);
    irqs[vector]++;
}

void pci_model_timer(struct pci_model *m, unsigned ms)
{
    (void)m;
    timer_ms = ms;
}

void pci_model_changed(struct pci_model *m)
{
    (void)m;
}

static bool in_window(uint64_t addr, size_t len)
{
    return addr >= IOVA && addr - IOVA <= WINDOW && len <= WINDOW - (addr - IOVA);
}

/* Performs every queued DMA, oldest first, answering the model. */
static void pump(struct pci_model *m)
{
    while (n_ops) {
        struct op o = ops[0];
        memmove(ops, ops + 1, --n_ops * sizeof ops[0]);
        int st = in_window(o.addr, o.len) ? ODK_OK : ODK_E_ACCESS;
        if (st == ODK_OK && !o.read)
            memcpy(memory + (o.addr - IOVA), o.data, o.len);
        if (o.posted) {
            posted_n--;
            m->ops->posted_done(m, st, o.addr);
        } else {
            m->ops->dma_done(m, st, st == ODK_OK && o.read ? memory + (o.addr - IOVA) : NULL,
                             st == ODK_OK ? o.len : 0);
        }
    }
}

static uint32_t r32(struct pci_model *m, uint32_t off)
{
    uint32_t v;
    memcpy(&v, m->bar[0] + off, 4);
    return v;
}

static uint64_t r64(struct pci_model *m, uint32_t off)
{
    uint64_t v;
    memcpy(&v, m->bar[0] + off, 8);
    return v;
}

static void w32(struct pci_model *m, uint32_t off, uint32_t v)
{
    m->ops->mmio_write(m, 0, off, 4, v);
}

static int setup(void **state)
{
    struct pci_model *m = calloc(1, sizeof *m);
    odk_value *args = odk_value_new_dict();
    if (!m || !args)
        return -1;
    m->ops = &pci_model_capture;
    if (m->ops->create(m, args) != ODK_OK || m->bar_size[0] != CAP_BAR_SIZE || m->n_msix != 2)
        return -1;
    odk_value_free(args);
    m->bar[0] = calloc(1, CAP_BAR_SIZE);
    m->ops->reset(m);
    memset(memory, 0, sizeof memory);
    n_ops = posted_n = irqs[0] = irqs[1] = timer_ms = 0;
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    struct pci_model *m = *state;
    free(m->bar[0]);
    free(m->priv);
    free(m);
    return 0;
}

/* A one-entry ring at IOVA and a list at IOVA + 0x100 of n entries. */
static void ring(struct pci_model *m, const struct cap_sg *sg, uint32_t n)
{
    struct cap_desc d = {.sg_addr = IOVA + 0x100, .sg_count = n};
    memcpy(memory, &d, sizeof d);
    memcpy(memory + 0x100, sg, n * sizeof *sg);
    m->ops->mmio_write(m, 0, CAP_RING_BASE, 8, IOVA);
    w32(m, CAP_RING_SIZE, 1);
    w32(m, CAP_IRQ_MASK, CAP_IRQ_FRAME | CAP_IRQ_ERROR);
}

static void test_registers(void **state)
{
    struct pci_model *m = *state;
    assert_int_equal(r32(m, CAP_ID), CAP_ID_VALUE);
    assert_int_equal(r32(m, CAP_FRAME_SIZE), 640 * 480 * 4);
    assert_int_equal(r32(m, CAP_FPS), 30);
    w32(m, CAP_WIDTH, 8);
    w32(m, CAP_HEIGHT, 3);
    assert_int_equal(r32(m, CAP_FRAME_SIZE), 96);
    w32(m, CAP_WIDTH, 0);    /* out of range: ignored */
    w32(m, CAP_HEIGHT, 9000);
    w32(m, CAP_FPS, 1001);
    assert_int_equal(r32(m, CAP_FRAME_SIZE), 96);
    assert_int_equal(r32(m, CAP_FPS), 30);
    w32(m, CAP_IRQ_MASK, 0xff);
    assert_int_equal(r32(m, CAP_IRQ_MASK), CAP_IRQ_FRAME | CAP_IRQ_ERROR);
    /* Starting without a usable ring is an error, not a run. */
    w32(m, CAP_RING_SIZE, 3);
    w32(m, CAP_CONTROL, CAP_CONTROL_RUN);
    assert_false(r32(m, CAP_STATUS) & CAP_STATUS_RUNNING);
    assert_true(r32(m, CAP_STATUS) & CAP_STATUS_BAD_DESC);
    assert_int_equal(irqs[1], 1);
}

/* The EDID window: an E-EDID 1.4 base block with a right checksum, read
 * only, there again after a write to it. */
static void test_the_edid_window(void **state)
{
    struct pci_model *m = *state;
    static const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    const uint8_t *e = m->bar[0] + CAP_EDID;
    assert_memory_equal(e, header, sizeof header);
    uint8_t sum = 0;
    for (unsigned i = 0; i < CAP_EDID_SIZE; i++)
        sum = (uint8_t)(sum + e[i]);
    assert_int_equal(sum, 0);
    assert_int_equal(e[18], 1);
    assert_int_equal(e[19], 4);
    /* the preferred timing: 1920x1080 */
    assert_int_equal(e[56] | (e[58] >> 4) << 8, 1920);
    assert_int_equal(e[59] | (e[61] >> 4) << 8, 1080);
    uint32_t first = r32(m, CAP_EDID);
    w32(m, CAP_EDID, 0x12345678);
    assert_int_equal(r32(m, CAP_EDID), first);
}

static void test_a_frame_through_odd_sized_entries(void **state)
{
    struct pci_model *m = *state;
    w32(m, CAP_WIDTH, 8);
    w32(m, CAP_HEIGHT, 3);
    w32(m, CAP_FPS, 0);
    /* 96 bytes in pieces of 5, 7, 13 and 71, scattered and out of order. */
    const struct cap_sg sg[] = {{IOVA + 0x9000, 5}, {IOVA + 0x2003, 7}, {IOVA + 0x5001, 13},
                                {IOVA + 0x7000, 71}};
    ring(m, sg, 4);
    w32(m, CAP_RING_HEAD, 1);
    w32(m, CAP_CONTROL, CAP_CONTROL_RUN);
    assert_true(r32(m, CAP_STATUS) & CAP_STATUS_RUNNING);
    pump(m);
    uint8_t want[96], got[96];
    struct cap_frame_header h;
    size_t at = 0;
    for (unsigned i = 0; i < 4; i++) {
        memcpy(got + at, memory + (sg[i].addr - IOVA), sg[i].len);
        at += sg[i].len;
    }
    memcpy(&h, got, sizeof h);
    assert_int_equal(h.magic, CAP_FRAME_MAGIC);
    assert_int_equal(h.sequence, 0);
    assert_int_equal(h.width, 8);
    cap_fill((uint32_t *)(void *)want, 0, 24, 0, &h);
    assert_memory_equal(got, want, 96);
    struct cap_desc d;
    memcpy(&d, memory, sizeof d);
    assert_int_equal(d.status, CAP_DESC_DONE);
    assert_int_equal(d.bytes, 96);
    assert_int_equal(d.sequence, 0);
    assert_int_equal(r32(m, CAP_RING_TAIL), 1);
    assert_int_equal(r32(m, CAP_FRAMES), 1);
    assert_int_equal(r64(m, CAP_SEQUENCE), 1);
    assert_int_equal(irqs[0], 1);
    assert_int_equal(r32(m, CAP_IRQ_CAUSE), CAP_IRQ_FRAME);
    w32(m, CAP_IRQ_ACK, CAP_IRQ_FRAME);
    assert_int_equal(r32(m, CAP_IRQ_CAUSE), 0);
    /* The ring base cannot move under a running card. */
    m->ops->mmio_write(m, 0, CAP_RING_BASE, 8, IOVA + 0x1000);
    assert_int_equal(r64(m, CAP_RING_BASE), IOVA);
    /* The next descriptor (the same slot again) makes frame 1. */
    w32(m, CAP_RING_HEAD, 2);
    pump(m);
    assert_int_equal(r32(m, CAP_RING_TAIL), 2);
    memcpy(&d, memory, sizeof d);
    assert_int_equal(d.sequence, 1);
}

static void test_a_short_list_marks_the_descriptor(void **state)
{
    struct pci_model *m = *state;
    w32(m, CAP_WIDTH, 8);
    w32(m, CAP_HEIGHT, 3);
    w32(m, CAP_FPS, 0);
    const struct cap_sg sg[] = {{IOVA + 0x4000, 40}};
    ring(m, sg, 1);
    w32(m, CAP_RING_HEAD, 1);
    w32(m, CAP_CONTROL, CAP_CONTROL_RUN);
    pump(m);
    struct cap_desc d;
    memcpy(&d, memory, sizeof d);
    assert_int_equal(d.status, CAP_DESC_DONE | CAP_DESC_ERROR);
    assert_int_equal(d.bytes, 40);
    assert_true(r32(m, CAP_STATUS) & CAP_STATUS_RUNNING); /* the card goes on */
}

static void test_an_iommu_fault_stops_the_card(void **state)
{
    struct pci_model *m = *state;
    w32(m, CAP_WIDTH, 8);
    w32(m, CAP_HEIGHT, 3);
    w32(m, CAP_FPS, 0);
    const struct cap_sg sg[] = {{IOVA + 0x1000, 16}, {0xdead0000, 80}}; /* unmapped */
    ring(m, sg, 2);
    w32(m, CAP_RING_HEAD, 1);
    w32(m, CAP_CONTROL, CAP_CONTROL_RUN);
    pump(m);
    assert_false(r32(m, CAP_STATUS) & CAP_STATUS_RUNNING);
    assert_true(r32(m, CAP_STATUS) & CAP_STATUS_DMA_ERROR);
    assert_int_equal(r64(m, CAP_FAULT_ADDR), 0xdead0000);
    assert_int_equal(irqs[1], 1);
    assert_int_equal(irqs[0], 0);
    assert_int_equal(r32(m, CAP_RING_TAIL), 0);
}

static void test_frames_wait_on_the_card_then_drop(void **state)
{
    struct pci_model *m = *state;
    w32(m, CAP_WIDTH, 8);
    w32(m, CAP_HEIGHT, 3);
    const struct cap_sg small[] = {{IOVA + 0x1000, 96}};
    ring(m, small, 1);
    w32(m, CAP_CONTROL, CAP_CONTROL_RUN); /* 30 fps, no descriptor given yet */
    assert_int_equal(timer_ms, 33);
    for (unsigned i = 0; i < CAP_FIFO_FRAMES + 3; i++)
        m->ops->timer(m);
    assert_int_equal(r32(m, CAP_DROPS), 3);
    assert_int_equal(n_ops, 0);
    /* A descriptor: the oldest waiting frame goes out, numbered 0. */
    w32(m, CAP_RING_HEAD, 1);
    pump(m);
    assert_int_equal(r32(m, CAP_FRAMES), 1);
    assert_int_equal(r64(m, CAP_SEQUENCE), 1);
    w32(m, CAP_CONTROL, 0);
    assert_false(r32(m, CAP_STATUS) & CAP_STATUS_RUNNING);
    assert_int_equal(timer_ms, 0);
}

/* The pattern word by word, as capture_card.h defines it. */
static uint32_t pattern_word(uint64_t sequence, uint64_t word, const struct cap_frame_header *h)
{
    uint32_t v;
    if (word < CAP_HEADER_WORDS)
        memcpy(&v, (const uint8_t *)h + 4 * word, 4);
    else
        v = (uint32_t)(word * 0x9e3779b1u + sequence * 0x85ebca77u + 0x27d4eb2fu);
    return v;
}

/* cap_fill, the card's streaming cap_fill_dma and cap_check go 16 words at
 * a time: every start, length and misalignment makes exactly the pattern,
 * writes nothing outside its range, and the check finds the first wrong
 * word wherever it is (in a block of 16, in the tail, the last word),
 * never a header word. */
static void test_the_pattern_fill_and_check(void **state)
{
    (void)state;
    struct cap_frame_header h = {CAP_FRAME_MAGIC, 1920, 1080, CAP_FORMAT_BGRA, 77, 123456789};
    _Alignas(16) uint32_t buf[4 + 160];
    for (unsigned dma = 0; dma < 2; dma++) {
        for (uint64_t first = 0; first < 40; first++) {
            for (uint64_t n = 0; n <= 150; n++) {
                for (unsigned skew = 0; skew < 4; skew++) {
                    uint32_t *out = buf + 1 + skew; /* every 4-byte offset from 16 */
                    memset(buf, 0xa5, sizeof buf);
                    (dma ? cap_fill_dma : cap_fill)(out, first, n, 77, &h);
                    assert_int_equal(buf[0], 0xa5a5a5a5u);
                    assert_int_equal(out[n], 0xa5a5a5a5u);
                    for (uint64_t k = 0; k < n; k++)
                        assert_int_equal(out[k], pattern_word(77, first + k, &h));
                    assert_true(cap_check(out, first, n, 77) == UINT64_MAX);
                    if (n && first < 8)
                        assert_true(cap_check(out, first, n, 78) ==
                                    (first + n > CAP_HEADER_WORDS ? CAP_HEADER_WORDS : UINT64_MAX));
                    for (uint64_t k = 0; k < n; k++) {
                        out[k] ^= 1u << (k % 32);
                        uint64_t want = first + k < CAP_HEADER_WORDS ? UINT64_MAX : first + k;
                        assert_true(cap_check(out, first, n, 77) == want);
                        out[k] ^= 1u << (k % 32);
                    }
                }
            }
        }
    }
    /* Two wrong words: the first is reported. */
    cap_fill(buf, 0, 150, 5, &h);
    buf[100] = 0;
    buf[37] = 0;
    assert_true(cap_check(buf, 0, 150, 5) == 37);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_edid_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_frame_through_odd_sized_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_short_list_marks_the_descriptor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_iommu_fault_stops_the_card, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_wait_on_the_card_then_drop, setup, teardown),
        cmocka_unit_test(test_the_pattern_fill_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
