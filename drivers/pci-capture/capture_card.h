/* SPDX-License-Identifier: MIT */
/* capture_card.h — the simulated video capture card's "datasheet": its
 * register map, its descriptor and scatter-gather formats, and the frames it
 * produces.  The model (src/buses/pci/models/capture.c), the pci-capture
 * driver, the odk-capture app and the pci_capture benchmark all follow it.
 *
 * The card (1234:0c4e, class 0x0400 multimedia video) has one 16 KiB BAR:
 * registers at 0, its MSI-X table at CAP_MSIX_TABLE and the pending bits at
 * CAP_MSIX_PBA; two MSI-X vectors: 0 a frame was delivered, 1 an error.
 *
 * The driver gives the card a ring of descriptors (one IOVA-contiguous
 * segment: RING_BASE, RING_SIZE entries) and moves RING_HEAD past the ones
 * it filled; the card fills them in order from RING_TAIL.  Each descriptor
 * names a scatter-gather list (entries of address and length) for one frame
 * buffer.  Per frame the card reads the descriptor, then the list, writes
 * the frame through it, writes the descriptor's second half back (sequence,
 * bytes, status), advances RING_TAIL and raises vector 0.  A DMA that fails
 * (an IOMMU fault) stops the card with STATUS_DMA_ERROR, the address in
 * FAULT_ADDR and vector 1.
 *
 * Frames come one per 1/FPS second while running and wait on the card (up to
 * CAP_FIFO_FRAMES of them) for a free descriptor and for the frame before
 * to be written; one that falls due with the card's memory full is dropped,
 * counted in DROPS, and takes no sequence number.  FPS 0: back to back, as fast as
 * descriptors come.  Registers are little-endian, 32 bits unless noted. */
#ifndef ODK_CAPTURE_CARD_H
#define ODK_CAPTURE_CARD_H

#include <stdint.h>
#include <string.h>

#define CAP_VENDOR 0x1234u
#define CAP_DEVICE 0x0c4eu
#define CAP_BAR_SIZE 0x4000u
#define CAP_ID_VALUE 0x0c4e0100u /* device id, major 1, minor 0 */

#define CAP_ID 0x00         /* RO */
#define CAP_CONTROL 0x04    /* RW: CAP_CONTROL_RUN */
#define CAP_STATUS 0x08     /* RO: CAP_STATUS_* */
#define CAP_WIDTH 0x0c      /* RW, pixels (1..8192), ignored while running */
#define CAP_HEIGHT 0x10     /* RW, lines (1..8192) */
#define CAP_FORMAT 0x14     /* RW: only CAP_FORMAT_BGRA (4 bytes a pixel) */
#define CAP_FPS 0x18        /* RW: frames a second (0: back to back, max 1000) */
#define CAP_FRAME_SIZE 0x1c /* RO: WIDTH * HEIGHT * 4 */
#define CAP_RING_BASE 0x20  /* RW, 64 bits: IOVA of the descriptor ring */
#define CAP_RING_SIZE 0x28  /* RW: entries, a power of two 1..65536 */
#define CAP_RING_HEAD 0x2c  /* RW: free-running index past the driver's last descriptor */
#define CAP_RING_TAIL 0x30  /* RO: free-running index of the next one the card fills */
#define CAP_FRAMES 0x34     /* RO: frames delivered */
#define CAP_DROPS 0x38      /* RO: frames dropped */
#define CAP_IRQ_CAUSE 0x3c  /* RO: CAP_IRQ_* that happened */
#define CAP_IRQ_ACK 0x40    /* WO: write 1s to clear cause bits */
#define CAP_IRQ_MASK 0x44   /* RW: 1 = the cause raises its vector */
#define CAP_FAULT_ADDR 0x48 /* RO, 64 bits: where the failed DMA pointed */
#define CAP_SEQUENCE 0x50   /* RO, 64 bits: the next frame's sequence number */
/* The card's EDID (VESA E-EDID 1.4, one 128-byte base block, no
 * extension): a read-only window of BAR 0, as a capture card's ROM shadow
 * of what it tells a video source.  Detailed timings for 1920x1080 at 60 Hz
 * (preferred) and 3840x2160 at 30 Hz; manufacturer "ODK", product 0x0c4e,
 * name "ODK Capture".  Loaded at every reset. */
#define CAP_EDID 0x1000u
#define CAP_EDID_SIZE 128u
#define CAP_MSIX_TABLE 0x2000u
#define CAP_MSIX_PBA 0x3000u

#define CAP_CONTROL_RUN 0x1u
#define CAP_STATUS_RUNNING 0x1u
#define CAP_STATUS_DMA_ERROR 0x2u
#define CAP_STATUS_BAD_DESC 0x4u /* a descriptor or list the card could not use */
#define CAP_FORMAT_BGRA 0x41524742u /* 'BGRA' */
#define CAP_IRQ_FRAME 0x1u
#define CAP_IRQ_ERROR 0x2u
#define CAP_VECTOR_FRAME 0u
#define CAP_VECTOR_ERROR 1u
#define CAP_MAX_DIM 8192u
#define CAP_MAX_FPS 1000u
#define CAP_MAX_RING 65536u
#define CAP_FIFO_FRAMES 8u

/* A descriptor: 32 bytes in the ring.  The driver writes the first half,
 * the card the second. */
struct cap_desc {
    uint64_t sg_addr;  /* IOVA of the list */
    uint32_t sg_count; /* entries in it */
    uint32_t reserved;
    uint64_t sequence; /* card: the frame's sequence number */
    uint32_t bytes;    /* card: bytes written */
    uint32_t status;   /* card: CAP_DESC_* */
};
#define CAP_DESC_DONE 0x1u
#define CAP_DESC_ERROR 0x2u /* the list held fewer bytes than the frame */

/* One entry of a scatter-gather list: 16 bytes.  The card's engine counts
 * an entry's bytes in 32 bits: an entry is at most CAP_MAX_SG_LEN long. */
#define CAP_MAX_SG_LEN 0xfffff000ull
struct cap_sg {
    uint64_t addr;
    uint64_t len;
};

/* A frame: a 32-byte header, then the pattern: 32-bit word i of the frame
 * (i >= 8) is cap_pattern(sequence, i). */
struct cap_frame_header {
    uint32_t magic; /* CAP_FRAME_MAGIC */
    uint32_t width, height, format;
    uint64_t sequence;
    uint64_t timestamp_ns; /* CLOCK_MONOTONIC when the card began it */
};
#define CAP_FRAME_MAGIC 0x464b444fu /* 'ODKF' */
#define CAP_HEADER_WORDS 8u

#define CAP_PATTERN_STEP 0x9e3779b1u /* word i + 1 is word i plus this */

static inline uint32_t cap_pattern(uint64_t sequence, uint64_t word)
{
    return (uint32_t)(word * CAP_PATTERN_STEP + sequence * 0x85ebca77u + 0x27d4eb2fu);
}

/* The pattern is an arithmetic sequence, so 16 words at a time are four
 * vectors of 4 that each step by 16 * CAP_PATTERN_STEP: the card's fill runs
 * at store speed and the check at load speed (a word at a time, the fill
 * took 4 times a memcpy of the frame: bench/pci_capture's bottleneck).  GCC
 * and clang lower the vectors to what the target has (two SSE2 registers
 * at least on x86-64); other compilers take the word loop alone. */
#if defined(__GNUC__)
#define CAP_VECTORS 1
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
typedef uint32_t cap_v4 __attribute__((vector_size(16)));

/* The 16 pattern words from v, as four vectors (a holds v's four). */
static inline void cap_v16_start(uint32_t v, cap_v4 *a, cap_v4 *b, cap_v4 *c, cap_v4 *d)
{
    const uint32_t s = CAP_PATTERN_STEP;
    *a = (cap_v4){v, v + s, v + 2 * s, v + 3 * s};
    *b = *a + 4 * s;
    *c = *a + 8 * s;
    *d = *a + 12 * s;
}

/* The next 16 words' four vectors. */
static inline void cap_v16_step(cap_v4 *a, cap_v4 *b, cap_v4 *c, cap_v4 *d)
{
    const uint32_t s16 = 16 * CAP_PATTERN_STEP;
    *a += s16;
    *b += s16;
    *c += s16;
    *d += s16;
}
#endif

/* Fills words [first, first + n) of frame `sequence` into out (the header's
 * words come from hdr).  Shared by the card and its peer in the benchmark. */
static inline void cap_fill(uint32_t *out, uint64_t first, uint64_t n, uint64_t sequence,
                            const struct cap_frame_header *hdr)
{
    uint64_t k = 0;
    for (; k < n && first + k < CAP_HEADER_WORDS; k++)
        memcpy(&out[k], (const uint8_t *)hdr + 4 * (first + k), 4);
    uint32_t v = cap_pattern(sequence, first + k);
#ifdef CAP_VECTORS
    if (k + 16 <= n) {
        cap_v4 a, b, c, d;
        cap_v16_start(v, &a, &b, &c, &d);
        for (; k + 16 <= n; k += 16) {
            memcpy(&out[k], &a, sizeof a);
            memcpy(&out[k + 4], &b, sizeof b);
            memcpy(&out[k + 8], &c, sizeof c);
            memcpy(&out[k + 12], &d, sizeof d);
            cap_v16_step(&a, &b, &c, &d);
        }
        v = a[0];
    }
#endif
    for (; k < n; k++, v += CAP_PATTERN_STEP)
        out[k] = v;
}

/* cap_fill as the card's DMA engine writes: a device's writes land in
 * memory, not in some CPU's cache, so the pattern goes out with streaming
 * (non-temporal) stores where the target has them.  Written through the
 * cache instead, every line of the frame sat modified in the card's CPU
 * and crossed to the reader's CPU one line at a time: the reader's check
 * ran at a third of the speed (bench/pci_capture, docs/pci.md).  Ends with
 * a store fence, so the frame is in memory before whatever the caller
 * writes next (the descriptor's DONE, the interrupt). */
static inline void cap_fill_dma(uint32_t *out, uint64_t first, uint64_t n, uint64_t sequence,
                                const struct cap_frame_header *hdr)
{
#if defined(CAP_VECTORS) && defined(__SSE2__)
    uint64_t k = 0;
    while (k < n && (first + k < CAP_HEADER_WORDS || (uintptr_t)&out[k] % 16 != 0))
        k++;
    cap_fill(out, first, k, sequence, hdr);
    if (k + 16 <= n) {
        cap_v4 a, b, c, d;
        cap_v16_start(cap_pattern(sequence, first + k), &a, &b, &c, &d);
        for (; k + 16 <= n; k += 16) {
            _mm_stream_si128((__m128i *)(void *)&out[k], (__m128i)a);
            _mm_stream_si128((__m128i *)(void *)&out[k + 4], (__m128i)b);
            _mm_stream_si128((__m128i *)(void *)&out[k + 8], (__m128i)c);
            _mm_stream_si128((__m128i *)(void *)&out[k + 12], (__m128i)d);
            cap_v16_step(&a, &b, &c, &d);
        }
        _mm_sfence();
    }
    cap_fill(out + k, first + k, n - k, sequence, hdr);
#else
    cap_fill(out, first, n, sequence, hdr);
#endif
}

/* Index of the first word of [first, first + n) that differs from frame
 * `sequence`'s pattern, or UINT64_MAX when all match (the header is not
 * checked here).  Every word is compared: 16 at a time while all match,
 * then one by one from the 16 that hold a difference. */
static inline uint64_t cap_check(const uint32_t *in, uint64_t first, uint64_t n,
                                 uint64_t sequence)
{
    uint64_t k = first < CAP_HEADER_WORDS ? CAP_HEADER_WORDS - first : 0;
    uint32_t v = cap_pattern(sequence, first + k);
#ifdef CAP_VECTORS
    if (k + 16 <= n) {
        cap_v4 a, b, c, d;
        cap_v16_start(v, &a, &b, &c, &d);
        for (; k + 16 <= n; k += 16) {
            cap_v4 w0, w1, w2, w3;
            memcpy(&w0, &in[k], sizeof w0);
            memcpy(&w1, &in[k + 4], sizeof w1);
            memcpy(&w2, &in[k + 8], sizeof w2);
            memcpy(&w3, &in[k + 12], sizeof w3);
            cap_v4 diff = (w0 ^ a) | (w1 ^ b) | (w2 ^ c) | (w3 ^ d);
            if ((diff[0] | diff[1]) | (diff[2] | diff[3]))
                break; /* the word loop below finds which */
            cap_v16_step(&a, &b, &c, &d);
        }
        v = a[0];
    }
#endif
    for (; k < n; k++, v += CAP_PATTERN_STEP)
        if (in[k] != v)
            return first + k;
    return UINT64_MAX;
}

#endif
