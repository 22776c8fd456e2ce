/* SPDX-License-Identifier: MIT */
/* pci_capture.h — what an app sees of the pci-capture driver: its
 * selectors, its memory and its events (odk-capture and the tests use it).
 *
 * Memory type 0 (odk_connection_map_memory): the frame buffer, `slots`
 * slots of `stride` bytes; frame k of the stream lands in slot k % slots at
 * offset (k % slots) * stride.  The app maps the driver's own pages (the
 * card writes them by DMA): nothing is copied.
 * Data queue type 0 (odk_connection_map_data_queue): one struct
 * capture_event per frame delivered, in order, and one when the card stops
 * on an error.  The app gives a slot back with CAPTURE_RELEASE once it has
 * read the frame; until then the card does not write it again.
 * Memory type 1: the release page (struct capture_release_page), a way to
 * give frames back without a call per frame: the app stores in `released`
 * how many frames it is done with in all (capture_release_store), and the
 * driver takes them at each frame's interrupt.  When the card is left with
 * no descriptor no interrupt comes: the driver then sets `starved`, and an
 * app whose store finds it set calls CAPTURE_RELEASE with 0.
 * CAPTURE_CONFIGURE resets the card and makes a new buffer, a new event
 * queue and a new release page (sequence numbers and `released` start at 0
 * again): map them after it. */
#ifndef ODK_PCI_CAPTURE_H
#define ODK_PCI_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

enum capture_selector {
    /* in: width, height, fps, slots, slot bytes (0: the frame's size
     * rounded up to a page), flags (CAPTURE_CONTIGUOUS);
     * out: frame bytes, stride, total bytes, segments of the frame buffer,
     * the ring's IOVA, scatter-gather entries in all.  ODK_E_BUSY while
     * running; ODK_E_LIMIT when the IOMMU cannot map it as asked (the
     * driver's log says why). */
    CAPTURE_CONFIGURE = 0,
    CAPTURE_START = 1, /* every free slot goes to the card, which runs */
    CAPTURE_STOP = 2,
    /* in: n: the app is done with its n oldest frames. */
    CAPTURE_RELEASE = 3,
    /* out: events sent, frames the card delivered, frames it dropped,
     * interrupts, error stops, IOMMU faults, slots released, STATUS */
    CAPTURE_COUNTERS = 4,
    /* in: offset, value: the driver stores the 64-bit value at offset of the
     * frame buffer, through its own mapping. */
    CAPTURE_POKE = 5,
    /* in: offset, width (1, 2, 4): out: the configuration register. */
    CAPTURE_CONFIG_READ = 6,
    /* memory[0]: an app buffer of direction IN (ODK_MEM_IN), at least
     * 128 bytes.  The driver reads the card's EDID (E-EDID 1.4 base block,
     * capture_card.h CAP_EDID) from BAR 0, checks its header and checksum,
     * and writes it into that buffer; out: bytes written (128).  ODK_E_IO
     * when the card's EDID is not valid (nothing is written), ODK_E_ACCESS
     * when the buffer is not one the driver may write. */
    CAPTURE_EDID = 7,
};

#define CAPTURE_CONTIGUOUS 0x1u /* the frame buffer in one IOVA segment */
#define CAPTURE_MAX_SLOTS 1024u

struct capture_event {
    uint64_t sequence;     /* the frame's number (for an error: the fault address) */
    uint64_t timestamp_ns; /* CLOCK_MONOTONIC when the card began the frame */
    uint32_t slot;
    uint32_t bytes;
    uint32_t status; /* CAPTURE_EVENT_* */
    uint32_t reserved;
};

/* Memory type 1.  `released` is the app's: frames given back in all since
 * CAPTURE_CONFIGURE (a count past what the app holds is ignored, and the
 * driver logs it once); `starved` is the driver's: 1 when the card has no
 * descriptor left and the driver will look at `released` only on a call. */
struct capture_release_page {
    uint64_t released;
    uint32_t starved;
    uint32_t reserved;
};

/* Gives frames back up to `released` in all; true when the app must call
 * CAPTURE_RELEASE with 0 (the card starved).  The store, a full fence,
 * then the load: the driver sets `starved`, fences and looks at `released`
 * again, so one of the two sees the other. */
static inline bool capture_release_store(struct capture_release_page *p, uint64_t released)
{
    __atomic_store_n(&p->released, released, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(&p->starved, __ATOMIC_RELAXED) != 0;
}

#define CAPTURE_EVENT_FRAME 0u
#define CAPTURE_EVENT_SHORT 1u /* the slot's list held less than a frame */
#define CAPTURE_EVENT_ERROR 2u /* the card stopped: sequence holds FAULT_ADDR */

#endif
