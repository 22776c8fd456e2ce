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

/* A real IOMMU behind a simulated one (the PCI family's VFIO backend):
 * from now on every chunk iommu_map places is also given to map (host: the
 * chunk's bytes in this process; a failure fails the prepare), and every
 * chunk removed to unmap.  Set it before the first mapping; NULLs clear it. */
void iommu_set_mirror(odk_iommu *io,
                      int (*map)(void *ctx, uint64_t iova, void *host, uint64_t len,
                                 bool writable),
                      void (*unmap)(void *ctx, uint64_t iova, uint64_t len), void *ctx);

#endif
