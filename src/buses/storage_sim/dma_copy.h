/* SPDX-License-Identifier: MIT */
/* dma_copy.h — the simulated HBA's DMA engine: a copy whose writes go to
 * memory, not to the copying CPU's cache, as a device's DMA does. */
#ifndef ODK_STORAGE_SIM_DMA_COPY_H
#define ODK_STORAGE_SIM_DMA_COPY_H

#include <stddef.h>

/* Copies len bytes from src to dst (which must not overlap) and writes
 * nothing else.  Whole 64-byte lines of dst go out with streaming
 * (non-temporal) stores where the CPU has them (x86's SSE2), the unaligned
 * head and tail with memcpy; ends with a store fence, so the bytes are in
 * memory before whatever the caller writes next (a completion).  Any
 * thread; never fails, never blocks. */
void dma_copy(void *dst, const void *src, size_t len);

#endif
