/* SPDX-License-Identifier: MIT */
/* odk/pci.h — the PCI family: a driver that talks to a PCI function.
 *
 * Shaped after PCIDriverKit's IOPCIDevice (docs/pci.md has the table): a
 * personality on IOPCIDevice, matched with IOPCIPrimaryMatch and friends,
 * opens its provider exclusively with odk_pci_device_open and then reads
 * and writes configuration space, BAR registers and interrupts.  Beyond
 * DriverKit, a BAR can also be mapped into the driver (odk_pci_bar_map):
 * a register read is then a load, with no call at all.
 *
 * Bus-master DMA goes through the driver's IOMMU (odk_driver_iommu): make
 * a DMA command (odk/dma.h) for the memory, prepare it, and give the
 * device its segments' addresses.  A device access outside every prepared
 * range never reaches memory: it is an IOMMU fault, counted and reported
 * to the fault handler (odk_pci_device_set_fault_handler).
 *
 * When the driver closes the function, stops or crashes, the framework
 * disables bus mastering and resets the function before another driver
 * may open it.
 *
 * Backends: the simulated PCI bus (device models in processes of their
 * own, odk-pci-model) and real functions bound to vfio-pci (odkd --vfio
 * ADDRESS); both serve the same calls.  Under VFIO an IOMMU fault is the
 * kernel's (in its log), INTx is ODK_E_UNSUPPORTED, and the BAR mapping is
 * writable.
 *
 * Threads: every function may be called from any of the driver's queues;
 * configuration accesses, memory reads and reset BLOCK until the function
 * answers (ODK_PCI_TIMEOUT_MS at most), writes are posted and never wait
 * unless the function's write queue is full.
 *
 * Statuses every call may give besides those listed: ODK_E_INVALID (a NULL
 * or out-of-range argument; the log says which), ODK_E_GONE (the function
 * was removed), ODK_E_NOMEM.
 */
#ifndef ODK_PCI_H
#define ODK_PCI_H

#include "odk/export.h"

#include <stdbool.h>
#include <stdint.h>

#include "odk/driver.h"
#include "odk/queue.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How long a call waits for the function before ODK_E_TIMEOUT. */
#define ODK_PCI_TIMEOUT_MS 5000u

typedef struct odk_pci_device odk_pci_device;
typedef struct odk_pci_interrupt odk_pci_interrupt;

/* ---- the function -------------------------------------------------------- */

/* Opens the driver's provider, which must be an IOPCIDevice node,
 * exclusively.  *out belongs to the caller until odk_pci_device_close.
 * Errors: ODK_E_UNSUPPORTED (the provider is not a PCI function this odkd
 * drives), ODK_E_BUSY (another driver holds it: the log names it),
 * ODK_E_GONE, ODK_E_PROTOCOL (the function's model misbehaved). */
ODK_PUBLIC int odk_pci_device_open(odk_driver *drv, odk_pci_device **out);
/* Cancels the function's interrupt sources, unmaps its BARs and lets it
 * go; the framework then turns bus mastering off and resets it.  NULL is
 * ignored.  Call it from stop; the interrupt handlers have stopped when it
 * returns. */
ODK_PUBLIC void odk_pci_device_close(odk_pci_device *dev);
/* "sim" (or "vfio"); borrowed, valid until close. */
ODK_PUBLIC const char *odk_pci_device_backend(const odk_pci_device *dev);

/* ---- configuration space ----------------------------------------------- */

/* Reads width 1, 2 or 4 bytes at offset (aligned to width, below 4096)
 * into *value.  A removed function reads as all ones, as on hardware:
 * *value is then 0xff.., and the status ODK_E_GONE. */
ODK_PUBLIC int odk_pci_config_read8(odk_pci_device *dev, uint16_t offset, uint8_t *value);
ODK_PUBLIC int odk_pci_config_read16(odk_pci_device *dev, uint16_t offset, uint16_t *value);
ODK_PUBLIC int odk_pci_config_read32(odk_pci_device *dev, uint16_t offset, uint32_t *value);
/* Writes; bits the function does not implement are ignored, as on
 * hardware. */
ODK_PUBLIC int odk_pci_config_write8(odk_pci_device *dev, uint16_t offset, uint8_t value);
ODK_PUBLIC int odk_pci_config_write16(odk_pci_device *dev, uint16_t offset, uint16_t value);
ODK_PUBLIC int odk_pci_config_write32(odk_pci_device *dev, uint16_t offset, uint32_t value);

/* The offset of capability id (0x01 PM, 0x05 MSI, 0x11 MSI-X...) in *offset,
 * or ODK_E_NOT_FOUND. */
ODK_PUBLIC int odk_pci_find_capability(odk_pci_device *dev, uint8_t id, uint16_t *offset);

/* Memory space decoding (command bit 1) and bus mastering (bit 2): on or
 * off.  A function with memory space off ignores BAR writes; one with bus
 * mastering off starts no DMA. */
ODK_PUBLIC int odk_pci_set_memory_enable(odk_pci_device *dev, bool on);
ODK_PUBLIC int odk_pci_set_bus_master(odk_pci_device *dev, bool on);

/* Function-level reset: registers to their defaults, bus mastering,
 * memory space and MSI off, D0; writes still queued are dropped.  Blocks. */
ODK_PUBLIC int odk_pci_reset(odk_pci_device *dev);

typedef enum odk_pci_power { ODK_PCI_D0 = 0, ODK_PCI_D3HOT = 3 } odk_pci_power;
/* Moves the function to D0 or D3hot through its PM capability (in D3hot it
 * ignores BAR writes).  Errors: ODK_E_UNSUPPORTED (no PM capability). */
ODK_PUBLIC int odk_pci_set_power(odk_pci_device *dev, odk_pci_power state);

/* ---- BARs ---------------------------------------------------------------- */

#define ODK_PCI_BAR_64BIT 0x1u
#define ODK_PCI_BAR_PREFETCHABLE 0x2u

typedef struct odk_pci_bar_info {
    uint64_t size;  /* 0: the function has no such BAR */
    uint32_t flags; /* ODK_PCI_BAR_* */
} odk_pci_bar_info;

/* What BAR bar (0..5) is.  Errors: ODK_E_NOT_FOUND (no such BAR). */
ODK_PUBLIC int odk_pci_bar_get_info(odk_pci_device *dev, uint8_t bar, odk_pci_bar_info *info);

/* IOPCIDevice::MemoryRead/Write: width 1, 2, 4 or 8 bytes at offset
 * (aligned to width) of BAR bar.  A read first waits until the function has
 * taken every write posted before it (a PCI read flushes posted writes); a
 * write is posted and returns at once.  Errors: ODK_E_INVALID (outside the
 * BAR, misaligned: logged with the BAR's size), ODK_E_NOT_FOUND (no such
 * BAR), ODK_E_TIMEOUT (the function did not take the writes). */
ODK_PUBLIC int odk_pci_memory_read8(odk_pci_device *dev, uint8_t bar, uint64_t offset,
                                    uint8_t *value);
ODK_PUBLIC int odk_pci_memory_read16(odk_pci_device *dev, uint8_t bar, uint64_t offset,
                                     uint16_t *value);
ODK_PUBLIC int odk_pci_memory_read32(odk_pci_device *dev, uint8_t bar, uint64_t offset,
                                     uint32_t *value);
ODK_PUBLIC int odk_pci_memory_read64(odk_pci_device *dev, uint8_t bar, uint64_t offset,
                                     uint64_t *value);
ODK_PUBLIC int odk_pci_memory_write8(odk_pci_device *dev, uint8_t bar, uint64_t offset,
                                     uint8_t value);
ODK_PUBLIC int odk_pci_memory_write16(odk_pci_device *dev, uint8_t bar, uint64_t offset,
                                      uint16_t value);
ODK_PUBLIC int odk_pci_memory_write32(odk_pci_device *dev, uint8_t bar, uint64_t offset,
                                      uint32_t value);
ODK_PUBLIC int odk_pci_memory_write64(odk_pci_device *dev, uint8_t bar, uint64_t offset,
                                      uint64_t value);

/* Maps [offset, offset + length) of BAR bar into the driver: *out points
 * at the register at offset (borrowed until close).  Loads through it read
 * the registers directly, with no call; they do not flush posted writes
 * (odk_pci_flush does).  On the simulated bus the mapping is read-only:
 * writes go through odk_pci_memory_write*.  Errors: ODK_E_INVALID (the
 * range is not inside the BAR: the log gives the BAR's size),
 * ODK_E_NOT_FOUND (no such BAR). */
ODK_PUBLIC int odk_pci_bar_map(odk_pci_device *dev, uint8_t bar, uint64_t offset, uint64_t length,
                               const volatile void **out);
/* Waits until the function has taken every posted write.  Errors:
 * ODK_E_TIMEOUT. */
ODK_PUBLIC int odk_pci_flush(odk_pci_device *dev);

/* ---- interrupts ---------------------------------------------------------- */

typedef enum odk_pci_interrupt_type {
    ODK_PCI_INTX = 0,
    ODK_PCI_MSI = 1,
    ODK_PCI_MSIX = 2,
} odk_pci_interrupt_type;

/* Runs on the source's queue for interrupts of vector: count is how many
 * arrived since the last call (at least 1), timestamp_ns the
 * CLOCK_MONOTONIC time the function raised the latest. */
typedef void (*odk_pci_interrupt_handler)(void *ctx, uint32_t vector, uint64_t count,
                                          uint64_t timestamp_ns);

/* How many vectors of type the function offers (INTx: 1 when it has an
 * interrupt pin). */
ODK_PUBLIC uint32_t odk_pci_interrupt_vectors(odk_pci_device *dev, odk_pci_interrupt_type type);

/* An interrupt source for vector of type, delivering on q (NULL: the
 * driver's default queue); creating the first MSI or MSI-X source enables
 * that mode in the function.  An MSI-X source also unmasks its entry of the
 * function's table (which lives in a BAR: the write needs memory decoding
 * on; odk_pci_set_memory_enable(dev, true) unmasks the entries of every
 * source again, e.g. after odk_pci_reset masked them).  *out belongs to the caller until
 * odk_pci_interrupt_destroy (or close).  Errors: ODK_E_NOT_FOUND (no such
 * vector), ODK_E_BUSY (a source for it exists), ODK_E_STATE (another
 * interrupt mode is in use). */
ODK_PUBLIC int odk_pci_interrupt_create(odk_pci_device *dev, odk_pci_interrupt_type type,
                                        uint32_t vector, odk_queue *q,
                                        odk_pci_interrupt_handler fn, void *ctx,
                                        odk_pci_interrupt **out);
/* Stops the source: fn does not run once this returns (do not call it from
 * fn itself).  NULL is ignored. */
ODK_PUBLIC void odk_pci_interrupt_destroy(odk_pci_interrupt *irq);

/* ---- IOMMU faults -------------------------------------------------------- */

/* Runs on the driver's default queue after the function's DMA touched an
 * address no prepared command maps (the access did not happen). */
typedef void (*odk_pci_fault_handler)(void *ctx, uint64_t address, uint64_t length, bool write);

/* Sets (or with fn NULL clears) the fault handler. */
ODK_PUBLIC int odk_pci_device_set_fault_handler(odk_pci_device *dev, odk_pci_fault_handler fn,
                                                void *ctx);
/* IOMMU faults so far, and the last one's address (may be NULL). */
ODK_PUBLIC uint64_t odk_pci_device_fault_count(odk_pci_device *dev, uint64_t *last_address);

#ifdef __cplusplus
}
#endif

#endif
