/* SPDX-License-Identifier: MIT */
/* bulk_throughput: bytes per second an app moves through a driver with
 * shared descriptors, against a single-threaded memcpy in the same process.
 *
 * ours:  two buffers registered on one connection of the echo driver, a
 *        64 MiB source (ODK_MEM_IN) and a 64 MiB destination (ODK_MEM_OUT);
 *        each call is ECHO_COPY (copy range 0 into range 1), 1 MiB at a
 *        time, walking through the buffers and wrapping around.  The driver
 *        host does the copy between its own mappings of the same memfds.
 * peer:  memcpy of the same 1 MiB blocks, same walk, between two malloc'd
 *        64 MiB buffers, in this process, on one thread.
 *
 * Both sides move the same total (8 GiB; BULK_GIB=N for a quicker run) in
 * interleaved rounds, so drift in machine load hits both alike; the median
 * round of each is reported.
 *
 * Page faults: every buffer is pre-faulted by writing it once before any
 * timing (the source with its pattern, the destination with zeros), and one
 * untimed lap over the whole buffers runs first on each side, so the
 * driver host's own mappings are faulted in too.  Timings therefore cover
 * copying and the call path, not first touch.
 *
 * Verification: before each round, the first 8 bytes of every source block
 * get a stamp unique to that round and block; after the round, every
 * destination block's stamp and a few sampled words of it are compared with
 * the source, and one whole block is compared.  A path that skipped or
 * misplaced copies fails instead of reporting a number.
 *
 * usage: bulk_throughput STATE_DIR NODE */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "odk/client.h"
#include "odk/memory.h"

#include "echo_selectors.h"

#define BUF_LEN (64ull << 20)
#define BLOCK (1ull << 20)
#define BLOCKS (BUF_LEN / BLOCK)
#define ROUNDS 5

typedef int (*copy_fn)(void *ctx, uint64_t offset);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the two sides ------------------------------------------------------ */

struct side {
    const char *name;
    uint8_t *src, *dst; /* the app's view of both buffers */
    copy_fn copy;
    void *ctx;
};

struct odk_ctx {
    odk_connection *conn;
    uint32_t in_id, out_id;
};

static int copy_odk(void *ctx, uint64_t offset)
{
    struct odk_ctx *o = ctx;
    odk_memory_ref mem[2] = {{o->in_id, offset, BLOCK}, {o->out_id, offset, BLOCK}};
    return odk_connection_call_memory(o->conn, ECHO_COPY, NULL, 0, NULL, 0, mem, 2, NULL, NULL,
                                      NULL, NULL);
}

static int copy_memcpy(void *ctx, uint64_t offset)
{
    struct side *s = ctx;
    memcpy(s->dst + offset, s->src + offset, BLOCK);
    return 0;
}

/* ---- rounds ------------------------------------------------------------- */

static uint64_t stamp_of(uint32_t round, uint64_t block)
{
    return 0x6f646b0000000000ull ^ ((uint64_t)round << 32) ^ block;
}

static void fill_pattern(uint8_t *p, uint64_t len)
{
    uint64_t *w = (uint64_t *)p;
    for (uint64_t i = 0; i < len / 8; i++)
        w[i] = i * 0x9e3779b97f4a7c15ull;
}

/* Compares what a round should have written; 0 when it is all there. */
static int verify(const struct side *s, uint32_t round, uint64_t blocks)
{
    uint64_t lap = blocks < BLOCKS ? blocks : BLOCKS;
    for (uint64_t b = 0; b < lap; b++) {
        const uint8_t *src = s->src + b * BLOCK, *dst = s->dst + b * BLOCK;
        uint64_t stamp;
        memcpy(&stamp, dst, 8);
        if (stamp != stamp_of(round, b))
            return -1;
        /* A few words spread through the block, different per round. */
        for (uint64_t k = 1; k <= 7; k++) {
            uint64_t off = ((k * BLOCK / 8 + round * 4099ull + b * 131ull) % (BLOCK / 8)) * 8;
            if (memcmp(src + off, dst + off, 8) != 0)
                return -1;
        }
    }
    uint64_t whole = round % lap;
    return memcmp(s->src + whole * BLOCK, s->dst + whole * BLOCK, BLOCK) == 0 ? 0 : -1;
}

/* Copies `blocks` blocks walking through the buffers; seconds, or -1. */
static double run_round(struct side *s, uint32_t round, uint64_t blocks)
{
    for (uint64_t b = 0; b < BLOCKS; b++) {
        uint64_t stamp = stamp_of(round, b);
        memcpy(s->src + b * BLOCK, &stamp, 8);
        memset(s->dst + b * BLOCK, 0, 8);
    }
    double t0 = now_s();
    for (uint64_t i = 0; i < blocks; i++) {
        int st = s->copy(s->ctx, (i % BLOCKS) * BLOCK);
        if (st < 0) {
            fprintf(stderr, "bulk_throughput: %s: copy failed: %s\n", s->name, odk_strerror(st));
            return -1;
        }
    }
    double dt = now_s() - t0;
    if (verify(s, round, blocks) < 0) {
        fprintf(stderr, "bulk_throughput: %s: round %u: destination does not match source\n",
                s->name, round);
        return -1;
    }
    return dt;
}

/* ---- setup -------------------------------------------------------------- */

static int open_ours(const char *state, uint64_t node, odk_client **c, struct odk_ctx *o,
                     odk_buffer **in, odk_buffer **out)
{
    int st = odk_client_open(state, c);
    if (st == ODK_OK)
        st = odk_connection_open(*c, node, 0, &o->conn);
    if (st == ODK_OK)
        st = odk_buffer_create(BUF_LEN, in);
    if (st == ODK_OK)
        st = odk_buffer_create(BUF_LEN, out);
    if (st == ODK_OK) {
        /* Pre-fault (memfds are sparse): write every page once. */
        fill_pattern(odk_buffer_data(*in), BUF_LEN);
        memset(odk_buffer_data(*out), 0, BUF_LEN);
        st = odk_connection_register_buffer(o->conn, *in, ODK_MEM_IN, &o->in_id);
    }
    if (st == ODK_OK)
        st = odk_connection_register_buffer(o->conn, *out, ODK_MEM_OUT, &o->out_id);
    if (st < 0)
        fprintf(stderr, "bulk_throughput: cannot set up node %llu: %s\n", (unsigned long long)node,
                odk_strerror(st));
    return st;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bulk_throughput STATE_DIR NODE\n");
        return 2;
    }
    const char *gib_env = getenv("BULK_GIB");
    double gib = gib_env && *gib_env ? strtod(gib_env, NULL) : 8.0;
    uint64_t total_blocks = (uint64_t)(gib * 1024.0);
    uint64_t per_round = total_blocks / ROUNDS;
    if (per_round == 0) {
        fprintf(stderr, "bulk_throughput: BULK_GIB=%s is less than %d MiB\n", gib_env, ROUNDS);
        return 2;
    }

    odk_client *c = NULL;
    struct odk_ctx o = {0};
    odk_buffer *in = NULL, *out = NULL;
    if (open_ours(argv[1], strtoull(argv[2], NULL, 0), &c, &o, &in, &out) < 0)
        return 1;
    struct side sides[2] = {
        {"ours", odk_buffer_data(in), odk_buffer_data(out), copy_odk, &o},
        {"memcpy", malloc(BUF_LEN), malloc(BUF_LEN), copy_memcpy, NULL},
    };
    sides[1].ctx = &sides[1];
    if (!sides[1].src || !sides[1].dst)
        return 1;
    /* Pre-fault the peer's buffers the same way. */
    fill_pattern(sides[1].src, BUF_LEN);
    memset(sides[1].dst, 0, BUF_LEN);

    /* The untimed warm-up lap (round 0), then interleaved timed rounds. */
    double bw[2][ROUNDS];
    for (int i = 0; i < 2; i++)
        if (run_round(&sides[i], 0, BLOCKS) < 0)
            return 1;
    for (uint32_t r = 0; r < ROUNDS; r++)
        for (int i = 0; i < 2; i++) {
            double dt = run_round(&sides[i], r + 1, per_round);
            if (dt <= 0)
                return 1;
            bw[i][r] = (double)(per_round * BLOCK) / dt / 1e9;
        }
    qsort(bw[0], ROUNDS, sizeof(double), cmp_double);
    qsort(bw[1], ROUNDS, sizeof(double), cmp_double);
    double ours = bw[0][ROUNDS / 2], peer = bw[1][ROUNDS / 2];
    printf("bulk_throughput vs memcpy: ours=%.2f GB/s peer=%.2f GB/s speedup=%.2f\n", ours, peer,
           ours / peer);

    free(sides[1].src);
    free(sides[1].dst);
    odk_connection_close(o.conn);
    odk_buffer_free(in);
    odk_buffer_free(out);
    odk_client_close(c);
    return 0;
}
