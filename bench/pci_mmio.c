/* SPDX-License-Identifier: MIT */
/* pci_mmio — a register read of the simulated edu function through the
 * BAR mapped into the driver (a load: selector 8 of pci-edu) against the
 * same read through odk_pci_memory_read32 (the call interface
 * IOPCIDevice::MemoryRead32 offers: selector 9, which first waits for
 * posted writes to drain, as a PCI read does).  Both run N reads in the
 * driver per call; the time per read is the call's time over N, so the
 * one app-to-driver call each side makes is spread over a million reads.
 * Each checks the value read is edu's identification register.
 *
 *   pci_mmio STATE-DIR SERVICE-NODE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "odk/client.h"

#define ROUNDS 5
#define READS 1000000ull
#define EDU_ID 0x010000edu

static double per_read_ns(odk_connection *conn, uint32_t selector)
{
    uint64_t in[1] = {READS}, out[1] = {0};
    uint32_t n_out = 1;
    size_t len = 0;
    double t0 = bench_now_s();
    int st = odk_connection_call(conn, selector, in, 1, NULL, 0, out, &n_out, NULL, &len);
    double dt = bench_now_s() - t0;
    if (st < 0 || n_out != 1 || out[0] != EDU_ID) {
        fprintf(stderr, "pci_mmio: selector %u failed: %s, read 0x%llx\n", selector,
                odk_status_name(st), (unsigned long long)out[0]);
        return -1;
    }
    return dt * 1e9 / (double)READS;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: pci_mmio STATE-DIR SERVICE-NODE\n");
        return 2;
    }
    odk_client *c = NULL;
    odk_connection *conn = NULL;
    int st = odk_client_open(argv[1], &c);
    if (st == ODK_OK)
        st = odk_connection_open(c, strtoull(argv[2], NULL, 0), 0, &conn);
    if (st < 0) {
        fprintf(stderr, "pci_mmio: cannot open the driver: %s\n", odk_strerror(st));
        return 1;
    }
    double ns[2][ROUNDS];
    if (per_read_ns(conn, 8) < 0 || per_read_ns(conn, 9) < 0)
        goto fail;
    for (int r = 0; r < ROUNDS; r++)
        if ((ns[0][r] = per_read_ns(conn, 8)) < 0 || (ns[1][r] = per_read_ns(conn, 9)) < 0)
            goto fail;
    printf("pci_mmio: %d rounds of %llu reads of edu's identification register in the driver\n",
           ROUNDS, READS);
    bench_report("pci_mmio", "MemoryRead32", "%.1f", "ns/read", BENCH_LOWER_IS_BETTER, "speedup",
                 ns[0], ns[1], ROUNDS);
    odk_connection_close(conn);
    odk_client_close(c);
    return 0;
fail:
    fprintf(stderr, "pci_mmio: FAILED: no numbers reported\n");
    return 1;
}
