/* SPDX-License-Identifier: MIT */
/* sim_iommu.h — the host's side of a sim PCI function model's view of the
 * driver's IOMMU (pci_wire.h, struct pci_iommu_table): a mirror of the
 * driver's simulated IOMMU (iommu_set_mirror) that gives the model each
 * chunk the IOMMU maps, with its memfd, and takes it back on unmap before
 * the unmap returns.  The model then reads and writes mapped memory itself;
 * the host still serves (and faults) whatever the model's view does not
 * admit. */
#ifndef ODK_PCI_SIM_IOMMU_H
#define ODK_PCI_SIM_IOMMU_H

#include "odk/dma.h"

struct sim_iommu;

/* Makes the view, mirrors io into it (what io maps already too), and sends
 * it to the model over link (PCIW_IOMMU).  ODK_E_BUSY: io is mirrored
 * elsewhere already (a driver with two functions: the second one's DMA all
 * goes through its host); ODK_E_NOMEM, ODK_E_IO.  Nothing is left on error. */
int sim_iommu_open(int link, odk_iommu *io, struct sim_iommu **out);
/* Stops mirroring and takes every chunk back from the model (waits while
 * it is inside an access, never once it is gone).  NULL: nothing. */
void sim_iommu_close(struct sim_iommu *s);

#endif
