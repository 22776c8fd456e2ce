/* SPDX-License-Identifier: MIT */
/* odk/dma.h — DMA commands: a memory descriptor made visible to a device.
 *
 * A device sees memory through its IOMMU (odk_iommu): a DMA address space in
 * which a prepared odk_dma_command maps the pages of an odk_memory range and
 * describes them as a list of segments (address, length) the driver hands to
 * the hardware.  On the sim bus a driver's device has a simulated IOMMU
 * (odk_driver_iommu); whatever plays the device — a sim PCI function's
 * model (its DMA served by the PCI family), the driver itself or a test —
 * reads and writes the driver's pages through it (odk_iommu_translate,
 * odk_iommu_dma_read / _write).  The PCI family's VFIO backend mirrors every
 * mapping into the real IOMMU (docs/pci.md).
 *
 * No total size cap: lengths, offsets and segment counts are 64-bit, a
 * segment list of any length is walked in batches with
 * odk_dma_command_segments, and a range fails only when the device's address
 * space cannot hold it (ODK_E_LIMIT, with a log line saying why).
 *
 * Pages of the IOMMU map pages of the buffer, so an address's low 12 bits
 * equal those of the buffer offset it stands for (page size 4096).
 *
 * Both types are odk_objects (odk_retain / odk_release).  Every function may
 * be called from any thread; none blocks (each takes its object's short
 * lock; the IOMMU's is held while a device model copies).
 */
#ifndef ODK_DMA_H
#define ODK_DMA_H

#include "odk/export.h"

#include <stdint.h>

#include "odk/memory.h"
#include "odk/object.h"
#include "odk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The page size of every odk IOMMU. */
#define ODK_DMA_PAGE_SIZE 4096u

/* odk_dma_constraints.flags: the range must be one segment, or prepare fails
 * with ODK_E_LIMIT (story 6: physically contiguous DMA memory). */
#define ODK_DMA_CONTIGUOUS 1u

/* What a device can address.  All-zero means "no constraints". */
typedef struct odk_dma_constraints {
    uint32_t address_bits;     /* 12..64, 0 = 64: every byte's address is below 2^bits */
    uint64_t max_segment_size; /* 0 = unlimited; otherwise >= alignment */
    uint64_t alignment;        /* of each segment's address: power of two, 0 or 1 = none */
    uint32_t flags;            /* ODK_DMA_CONTIGUOUS */
} odk_dma_constraints;

typedef struct odk_dma_segment {
    uint64_t address; /* device (IO virtual) address, never 0 */
    uint64_t length;  /* > 0 */
} odk_dma_segment;

typedef struct odk_iommu odk_iommu;
typedef struct odk_dma_command odk_dma_command;

/* ---- the device's address space ---------------------------------------- */

/* A new simulated IOMMU whose addresses lie below 2^address_bits (12..64,
 * 0 = 64).  The first and the last page are never handed out, so 0 is never
 * a valid DMA address and address + length never wraps.  Mappings that need
 * not be contiguous are placed as several chunks of pseudo-random sizes
 * (multiples of the page size and of the alignment) with holes between them,
 * as scattered physical memory would be; the layout is a function of seed and
 * the sequence of calls, so a failing run can be replayed.  Freed ranges are
 * reused.  *out is a new reference.  Errors: ODK_E_INVALID (bad bits, out
 * NULL), ODK_E_NOMEM. */
ODK_PUBLIC int odk_iommu_create_sim(uint32_t address_bits, uint64_t seed, odk_iommu **out);

/* The IOMMU's address width as created (0 became 64); 0 for NULL.  Never
 * fails. */
ODK_PUBLIC uint32_t odk_iommu_address_bits(const odk_iommu *iommu);

/* For device models.  Sets *host to the bytes behind [address,
 * address + length), which must lie inside ONE mapped chunk (every segment of
 * a prepared command does).  access is ODK_MAP_READ and/or ODK_MAP_WRITE
 * (device reads, device writes).  The pointer is borrowed: valid until the
 * command that mapped it completes.  Errors: ODK_E_ACCESS (unmapped address,
 * range crossing a chunk's end, or a write into an ODK_MEM_OUT descriptor's
 * mapping; logged), ODK_E_INVALID (iommu or host NULL, length 0, bad access
 * bits), ODK_E_NOMEM (mapping the descriptor failed, see odk_memory_map). */
ODK_PUBLIC int odk_iommu_translate(odk_iommu *iommu, uint64_t address, uint64_t length,
                                   uint32_t access, void **host);

/* For device models: copy len bytes into / out of DMA address space, as a
 * DMA engine does for one segment.  The range may span several chunks only
 * where they are adjacent in IOVA (one segment always lies in one chunk); it
 * is checked whole before any byte moves, so a failure copies nothing.
 * len 0 is a no-op; src / dst are borrowed for the call.  Errors:
 * ODK_E_ACCESS (some byte unmapped, or (dma_write) a byte of an ODK_MEM_OUT
 * descriptor; logged), ODK_E_INVALID (iommu NULL, NULL buffer with len > 0),
 * ODK_E_NOMEM (mapping a descriptor failed). */
ODK_PUBLIC int odk_iommu_dma_write(odk_iommu *iommu, uint64_t address, const void *src,
                                   uint64_t len);
ODK_PUBLIC int odk_iommu_dma_read(odk_iommu *iommu, uint64_t address, void *dst, uint64_t len);

/* ---- DMA commands ------------------------------------------------------ */

/* A new, unprepared command for a device behind iommu (retained until the
 * command is freed) with constraints c (copied; NULL = none).  *out is a new
 * reference.  ODK_E_INVALID, with a log line, when: address_bits is not 0 or
 * 12..64; alignment is not 0 or a power of two; flags has unknown bits;
 * max_segment_size is nonzero and smaller than the alignment (a segment
 * could then not both start aligned and end where the next aligned one
 * begins).  A max_segment_size below the page size is allowed: segments are
 * then split inside pages.  ODK_E_INVALID also for iommu or out NULL (not
 * logged).  ODK_E_NOMEM. */
ODK_PUBLIC int odk_dma_command_create(odk_iommu *iommu, const odk_dma_constraints *c,
                                      odk_dma_command **out);

/* Maps [offset, offset + length) of m into the IOMMU and computes its
 * segments; *n_segments (may be NULL) receives their count.  m is retained
 * until odk_dma_command_complete.  The mapping honours m's direction: the
 * device may not write an ODK_MEM_OUT descriptor.  Segments cover the range
 * exactly and in order; each starts at a multiple of the alignment, is at most
 * max_segment_size long and ends below 2^address_bits (the smaller of the
 * device's and the IOMMU's).
 * Errors: ODK_E_STATE when already prepared; ODK_E_INVALID when cmd or m is
 * NULL, length is 0,
 * the range is not inside m, or offset is not a multiple of
 * min(alignment, 4096) (the low 12 bits of an address are the offset's);
 * ODK_E_LIMIT when the address space has no room for the range or, with
 * ODK_DMA_CONTIGUOUS, the length exceeds max_segment_size or no contiguous
 * free range is large enough; ODK_E_NOMEM.  Every error but ODK_E_STATE and
 * NULL arguments logs one line saying what could not be satisfied; on error
 * nothing stays mapped and *n_segments is untouched. */
ODK_PUBLIC int odk_dma_command_prepare(odk_dma_command *cmd, odk_memory *m, uint64_t offset,
                                       uint64_t length, uint64_t *n_segments);

/* Copies segments [first, first + max) of the prepared command into out
 * (caller-owned, room for max) and sets *got to how many were copied (fewer
 * at the end of the list; 0 when first == count).  Segments are computed on
 * demand, so lists of any length cost no memory per segment.  ODK_E_STATE when
 * not prepared; ODK_E_INVALID when cmd or got is NULL, first > count, or out
 * is NULL with max > 0. */
ODK_PUBLIC int odk_dma_command_segments(odk_dma_command *cmd, uint64_t first, odk_dma_segment *out,
                                        uint64_t max, uint64_t *got);

/* Unmaps the prepared range and releases the descriptor; the device's
 * addresses become invalid (ODK_E_ACCESS in translate).  Idempotent: a
 * command that is not prepared returns ODK_OK.  The last odk_release of a
 * prepared command completes it.  Errors: ODK_E_INVALID (cmd NULL). */
ODK_PUBLIC int odk_dma_command_complete(odk_dma_command *cmd);

#ifdef __cplusplus
}
#endif
#endif
