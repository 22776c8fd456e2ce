/* SPDX-License-Identifier: MIT */
/* usb_bulk — bulk throughput through the USB sim stack: the usb-vendor-echo
 * driver streams 1 MiB transfers out to the vendor-echo device model and
 * back in (selector 4), eight of each direction in flight; the model moves
 * each OUT transfer's bytes straight into the waiting IN transfer's buffer
 * (one memcpy per MiB, in another process, through shared memory).  The
 * peer is a memcpy of the same bytes in the same block size in this
 * process, through buffers of the same total size.  Both sides' buffers
 * are touched before the first round (no page faults while timed).
 *
 * The driver checks every transfer came back whole with its own sequence
 * number at both ends, and reports the bytes moved; a short count or an
 * error fails the benchmark.  The peer checks its copies the same way.
 *
 *   usb_bulk STATE-DIR SERVICE-NODE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "odk/client.h"

#define ROUNDS 5
#define BLOCK (1u << 20)
#define IN_FLIGHT 8
#define PER_ROUND (256ull << 20)
#define STREAM 4 /* usb-vendor-echo's stream selector */

static double ours(odk_connection *conn, uint64_t total)
{
    uint64_t in[3] = {total, BLOCK, IN_FLIGHT}, out[2] = {0, 0};
    uint32_t n_out = 2;
    size_t len = 0;
    double t0 = bench_now_s();
    int st = odk_connection_call(conn, STREAM, in, 3, NULL, 0, out, &n_out, NULL, &len);
    double dt = bench_now_s() - t0;
    if (st < 0 || n_out != 2 || out[0] < total) {
        fprintf(stderr, "usb_bulk: the stream failed: %s, %llu of %llu bytes\n",
                odk_status_name(st), (unsigned long long)out[0], (unsigned long long)total);
        return -1;
    }
    return (double)out[0] / dt / 1e9;
}

static double peer(uint8_t *src, uint8_t *dst, uint64_t total)
{
    double t0 = bench_now_s();
    uint64_t blocks = total / BLOCK;
    for (uint64_t b = 0; b < blocks; b++) {
        unsigned slot = (unsigned)(b % IN_FLIGHT);
        uint8_t *s = src + (size_t)slot * BLOCK, *d = dst + (size_t)slot * BLOCK;
        memcpy(s, &b, sizeof b);
        memcpy(s + BLOCK - sizeof b, &b, sizeof b);
        memcpy(d, s, BLOCK);
        if (memcmp(d, &b, sizeof b) != 0 || memcmp(d + BLOCK - sizeof b, &b, sizeof b) != 0) {
            fprintf(stderr, "usb_bulk: memcpy's block %llu differs\n", (unsigned long long)b);
            return -1;
        }
    }
    return (double)total / (bench_now_s() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: usb_bulk STATE-DIR SERVICE-NODE\n");
        return 2;
    }
    odk_client *c = NULL;
    odk_connection *conn = NULL;
    int st = odk_client_open(argv[1], &c);
    if (st == ODK_OK)
        st = odk_connection_open(c, strtoull(argv[2], NULL, 0), 0, &conn);
    if (st < 0) {
        fprintf(stderr, "usb_bulk: cannot open the driver: %s\n", odk_strerror(st));
        return 1;
    }
    uint8_t *src = malloc((size_t)IN_FLIGHT * BLOCK), *dst = malloc((size_t)IN_FLIGHT * BLOCK);
    if (!src || !dst)
        return 1;
    memset(src, 0x5a, (size_t)IN_FLIGHT * BLOCK);
    memset(dst, 0, (size_t)IN_FLIGHT * BLOCK);

    /* An untimed lap each (the driver allocates and touches its buffers,
     * the model maps them), then interleaved timed rounds. */
    if (ours(conn, 16 * BLOCK) < 0 || peer(src, dst, 16 * BLOCK) < 0)
        goto fail;
    double bw[2][ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        if ((bw[0][r] = ours(conn, PER_ROUND)) < 0 || (bw[1][r] = peer(src, dst, PER_ROUND)) < 0)
            goto fail;
    }
    printf("usb_bulk: %d rounds of %llu MiB in 1 MiB transfers, %d in flight each way; "
           "buffers touched before timing\n",
           ROUNDS, PER_ROUND >> 20, IN_FLIGHT);
    bench_report("usb_bulk", "memcpy", "%.2f", "GB/s", BENCH_HIGHER_IS_BETTER, "speedup", bw[0],
                 bw[1], ROUNDS);
    odk_connection_close(conn);
    odk_client_close(c);
    free(src);
    free(dst);
    return 0;
fail:
    fprintf(stderr, "usb_bulk: FAILED: no numbers reported\n");
    return 1;
}
