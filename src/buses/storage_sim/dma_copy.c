/* SPDX-License-Identifier: MIT */
/* dma_copy.c — the HBA model's copy from its disks into the driver's memory
 * (dma_copy.h).
 *
 * Why streaming stores: a READ's bytes, copied from a disk into the
 * driver's memory, are sent on by another process (the NBD export), often
 * on the other CPU.  Written through the cache, every line would sit
 * modified in the model's CPU, whence the export's send fetches it across
 * CPUs one line at a time (the capture card's finding, docs/pci.md); and
 * each destination line is first read for ownership.  A device's DMA does
 * neither, nor does this copy.  WRITEs into the disks use memcpy
 * (docs/storage.md: the model's CPU a MiB before and after). */
#include "buses/storage_sim/dma_copy.h"

#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>

void dma_copy(void *dst, const void *src, size_t len)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    size_t head = (size_t)(-(uintptr_t)d & 63);
    if (len < head + 64) {
        memcpy(d, s, len);
        return;
    }
    memcpy(d, s, head);
    d += head, s += head, len -= head;
    for (; len >= 64; d += 64, s += 64, len -= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)s);
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(s + 32));
        __m128i e = _mm_loadu_si128((const __m128i *)(const void *)(s + 48));
        _mm_stream_si128((__m128i *)(void *)d, a);
        _mm_stream_si128((__m128i *)(void *)(d + 16), b);
        _mm_stream_si128((__m128i *)(void *)(d + 32), c);
        _mm_stream_si128((__m128i *)(void *)(d + 48), e);
    }
    _mm_sfence();
    memcpy(d, s, len);
}

#else

void dma_copy(void *dst, const void *src, size_t len)
{
    memcpy(dst, src, len);
}

#endif
