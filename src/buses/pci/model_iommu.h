/* SPDX-License-Identifier: MIT */
/* model_iommu.h — a device model's view of its driver's IOMMU
 * (pci_wire.h, struct pci_iommu_table): the chunks the host mirrored to
 * the model, mapped in the model's process, so a bus-master access within
 * them is a copy here, not a round trip to the host.  The host stays the
 * authority: what this view does not admit (not mapped, not yet told,
 * revoked, read-only) the runner sends to the host, which performs it or
 * reports an IOMMU fault.
 *
 * Single-threaded, like the model.  Nothing here blocks. */
#ifndef ODK_PCI_MODEL_IOMMU_H
#define ODK_PCI_MODEL_IOMMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct model_iommu;

/* Takes chan (the channel) and table_fd (the table's memfd; closed here
 * once mapped).  ODK_E_INVALID (bad descriptors: both are closed),
 * ODK_E_NOMEM. */
int model_iommu_open(int chan, int table_fd, struct model_iommu **out);
/* Unmaps every chunk and closes the channel.  NULL: nothing. */
void model_iommu_close(struct model_iommu *mi);
/* The channel, to poll for POLLIN; then model_iommu_drain. */
int model_iommu_fd(const struct model_iommu *mi);
/* Takes every message waiting on the channel (maps new chunks, drops
 * revoked ones); malformed ones are dropped and counted.  ODK_E_GONE when
 * the host closed the channel (the view is then empty). */
int model_iommu_drain(struct model_iommu *mi);

/* Called for each piece of an access, in order: p is the piece's bytes,
 * off its offset in the access. */
typedef void (*model_iommu_fn)(void *ctx, uint8_t *p, size_t off, size_t n);
/* An access of len bytes at IOVA addr (write: the device writes memory).
 * ODK_OK: every byte lies in chunks that stand (with write access when
 * write) and fn ran for each piece while no unmap could complete.
 * ODK_E_ACCESS: some byte does not (fn did not run; the runner asks the
 * host, which knows better or faults).  fn must not call back here. */
int model_iommu_access(struct model_iommu *mi, uint64_t addr, size_t len, bool write,
                       model_iommu_fn fn, void *ctx);

/* Chunks mapped now, and messages refused since open. */
size_t model_iommu_chunks(const struct model_iommu *mi);
uint64_t model_iommu_refused(const struct model_iommu *mi);

#endif
