/* SPDX-License-Identifier: MIT */
/* dma_internal.h — what DMA commands (dma.c) need from the IOMMU (iommu.c). */
#ifndef ODK_RUNTIME_DMA_INTERNAL_H
#define ODK_RUNTIME_DMA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "odk/dma.h"

/* iommu_map maps [mem_offset, mem_offset + len) of m
 * (both page multiples) below 2^bits, each chunk at a multiple of unit (a
 * power of two >= the page size), as one chunk when contiguous; *chunks
 * (malloc'd, the caller frees) receives each chunk's address and length in
 * buffer order.  Logs and returns ODK_E_LIMIT when it does not fit.
 * iommu_unmap removes every chunk mapped for owner. */
int iommu_map(odk_iommu *io, odk_memory *m, uint64_t mem_offset, uint64_t len, uint64_t unit,
              uint32_t bits, bool contiguous, const void *owner, odk_dma_segment **chunks,
              uint64_t *n_chunks);
void iommu_unmap(odk_iommu *io, const void *owner);

/* Another IOMMU behind a simulated one: the PCI family's VFIO backend (a
 * real IOMMU: the container) and its sim backend (the device model's own
 * view, so its DMA needs no round trip).  The simulated IOMMU still chooses
 * the addresses and keeps the table; every chunk iommu_map places is also
 * given to map (a failure fails the prepare), and every chunk removed to
 * unmap, with the cookie map set (0 when map set none).  Both are called
 * with the IOMMU's lock held, and unmap must not return before the mirror
 * stopped using the chunk: that is what makes odk_dma_command_complete a
 * revocation.  Setting a mirror gives it the chunks already mapped (a
 * failure there unmaps what it gave and sets nothing); ODK_E_BUSY when
 * another ctx's mirror is set.  NULLs clear it (no unmap calls: the mirror
 * forgets the chunks itself). */
struct iommu_chunk {
    uint64_t iova, len;
    bool writable;       /* false: the device may only read (an ODK_MEM_OUT descriptor) */
    odk_memory *memory;  /* borrowed: its memfd is odk_memory_fd */
    uint64_t mem_offset; /* where the chunk starts in it (a page multiple) */
    void *host;          /* the chunk's bytes in this process */
};
typedef int (*iommu_mirror_map_fn)(void *ctx, const struct iommu_chunk *chunk, uint64_t *cookie);
typedef void (*iommu_mirror_unmap_fn)(void *ctx, uint64_t iova, uint64_t len, uint64_t cookie);
int iommu_set_mirror(odk_iommu *io, iommu_mirror_map_fn map, iommu_mirror_unmap_fn unmap,
                     void *ctx);

#endif
