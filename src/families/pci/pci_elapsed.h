/* SPDX-License-Identifier: MIT */
/* pci_elapsed.h — milliseconds between two readings of CLOCK_MONOTONIC,
 * for the sim PCI link's bounded waits (device.c, sim_iommu.c).
 *
 * The nanoseconds are subtracted signed: a wait that crosses a second
 * boundary (from 10.9 s to 11.1 s) has a later tv_nsec below the earlier
 * one, and that difference, taken unsigned, was 18 446 744 073 709 ms: a
 * flush that had to sleep once across a second boundary reported
 * ODK_E_TIMEOUT at once (the capture cycles' START failing now and then
 * under load). */
#ifndef ODK_FAMILIES_PCI_ELAPSED_H
#define ODK_FAMILIES_PCI_ELAPSED_H

#include <stdint.h>
#include <time.h>

/* to - from in whole milliseconds; 0 when to is not after from. */
static inline uint64_t pci_elapsed_ms(const struct timespec *from, const struct timespec *to)
{
    int64_t ns = ((int64_t)to->tv_sec - (int64_t)from->tv_sec) * 1000000000 +
                 ((int64_t)to->tv_nsec - (int64_t)from->tv_nsec);
    return ns > 0 ? (uint64_t)ns / 1000000u : 0;
}

#endif
