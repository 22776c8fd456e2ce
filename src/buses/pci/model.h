/* SPDX-License-Identifier: MIT */
/* model.h — simulated PCI functions ("device models") for the sim PCI bus.
 *
 * A model plays one PCI function in a process of its own (odk-pci-model):
 * its configuration space, its BARs' register semantics, its interrupts
 * and its bus-master DMA.  The runner (model_main.c) owns the generic
 * parts: the writable bits of the command register, MSI/MSI-X enables,
 * the PM state, function-level reset, the MMIO ring, the links; a model
 * fills its config space and BAR sizes in create and reacts to MMIO
 * writes.  A model's registers live in its BAR memory (m->bar[i]), which
 * the driver reads directly: a model keeps them current.
 *
 * Single-threaded: the model process runs one loop.
 */
#ifndef ODK_PCI_MODEL_H
#define ODK_PCI_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buses/pci/pci_wire.h"
#include "odk/value.h"

struct pci_model;

struct pci_model_ops {
    const char *name;
    /* Fills m->config, m->bar_size, m->n_msi / n_msix and m->priv from the
     * JSON arguments (a dictionary, may be empty).  Negative: refuse. */
    int (*create)(struct pci_model *m, const odk_value *args);
    /* BAR memory exists now (and again after each reset): set registers. */
    void (*reset)(struct pci_model *m);
    /* A posted write reached the function (memory space enabled, D0). */
    void (*mmio_write)(struct pci_model *m, unsigned bar, uint32_t offset, unsigned width,
                       uint64_t value);
    /* The DMA started with pci_model_dma ended; for a device-bound DMA
     * (memory read), data holds len bytes. */
    void (*dma_done)(struct pci_model *m, int status, const void *data, size_t len);
    /* Optional: the host took a write sent with pci_model_dma_post, at
     * addr (status ODK_OK), or refused it (ODK_E_ACCESS: an IOMMU fault). */
    void (*posted_done)(struct pci_model *m, int status, uint64_t addr);
    /* The timer armed with pci_model_timer fired. */
    void (*timer)(struct pci_model *m);
    /* Adds the model's own fields to its report. */
    void (*report)(struct pci_model *m, odk_value *dict);
};

struct pci_model {
    const struct pci_model_ops *ops;
    uint8_t config[PCI_CONFIG_SIZE];
    uint64_t bar_size[PCI_BARS];
    uint8_t *bar[PCI_BARS]; /* shared with the driver: registers */
    uint32_t n_msi, n_msix;
    void *priv;
};

/* ---- what the runner offers models -------------------------------------- */

/* True while bus mastering is enabled (command register bit 2). */
bool pci_model_bus_master(const struct pci_model *m);
/* Starts a bus-master access of len (<= PCIW_MAX_DMA) bytes at IOVA addr:
 * to_device reads memory (ops->dma_done gets the bytes), else writes data.
 * One at a time.  Returns ODK_E_STATE when bus mastering is off (the
 * access never leaves the function), ODK_E_GONE without a driver's link,
 * ODK_E_BUSY while one is pending; otherwise dma_done runs later (from the
 * runner's loop, also when the access was performed at once through the
 * model's view of the IOMMU). */
int pci_model_dma(struct pci_model *m, uint64_t addr, void *data, size_t len, bool to_device);
/* Posted writes a model may have in flight (PCIe's flow-control credits). */
#define PCI_POSTED_WINDOW 8u
/* A bus-master write of len (<= PCIW_MAX_DMA) bytes of data (copied) at
 * IOVA addr that does not wait for the host, as PCIe memory writes are
 * posted: up to PCI_POSTED_WINDOW in flight, each answered in order by
 * ops->posted_done.  Writes reach memory in the order they were posted;
 * an interrupt does not wait for them, so raise it after the answers.
 * Errors as pci_model_dma, ODK_E_BUSY when the window is full. */
int pci_model_dma_post(struct pci_model *m, uint64_t addr, const void *data, size_t len);
/* Produces n bytes of a write at dst: bytes [off, off + n) of it. */
typedef void (*pci_model_fill_fn)(void *ctx, uint8_t *dst, size_t off, size_t n);
/* pci_model_dma_post for a device that makes its data as it writes (a
 * frame grabber's pixels): fn is called, before this returns, to make the
 * len bytes straight into the driver's memory when the model's view of the
 * IOMMU admits the write, else into a buffer that goes to the host.  fn
 * must not call the runner. */
int pci_model_dma_post_fill(struct pci_model *m, uint64_t addr, size_t len, pci_model_fill_fn fn,
                            void *ctx);
/* Posted writes not answered yet. */
unsigned pci_model_dma_posted(const struct pci_model *m);
/* Signals an interrupt: MSI vector `vector` when MSI is enabled, MSI-X
 * entry `vector` when MSI-X is (a masked entry sets its pending bit instead
 * and fires when unmasked), else INTx (unless disabled). */
void pci_model_irq(struct pci_model *m, unsigned vector);
/* Arms (ms > 0) or disarms (0) the model's one timer. */
void pci_model_timer(struct pci_model *m, unsigned ms);
/* Sends the model's report to odkd again (its state changed). */
void pci_model_changed(struct pci_model *m);

extern const struct pci_model_ops pci_model_edu;
extern const struct pci_model_ops pci_model_capture;

#endif
