/* SPDX-License-Identifier: MIT */
/* bulk_throughput: bytes per second an app moves through a driver with
 * shared descriptors, against a single-threaded memcpy in the same process.
 *
 * ours:  two buffers registered on one connection of the echo driver, a
 *        64 MiB source (ODK_MEM_OUT) and a 64 MiB destination (ODK_MEM_IN);
 *        each call is ECHO_COPY (copy range 0 into range 1), 1 MiB at a
 *        time, walking through the buffers and wrapping around.  The driver
 *        host does the copy between its own mappings of the same memfds.
 * peer:  memcpy of the same 1 MiB blocks, same walk, between two malloc'd
 *        64 MiB buffers, in this process, on one thread.
 *
 * Both sides move the same total (8 GiB; BULK_GIB=N for a quicker run) in
 * interleaved rounds, so drift in machine load hits both alike; the median
 * round of each, the range and the ratio are reported (bench.h).
 *
 * Page faults: every buffer is pre-faulted by writing it once before any
 * timing (with zeros; each round then stamps both again), and one
 * untimed lap over the whole buffers runs first on each side, so the
 * driver host's own mappings are faulted in too.  Timings therefore cover
 * copying and the call path, not first touch.
 *
 * Verification, outside the timed region but covering every byte: before
 * each round, every 8-byte word of each source block the round copies gets
 * a value mixing the round and the word's offset, and the same word of the
 * destination gets its complement (the poison); after the round, every
 * word of every destination block is compared with what the source held.
 * A path that skips a copy, copies only part of a block (one page, say),
 * misplaces it or leaves an earlier round's data fails, naming the side,
 * round, block and offset, and no number is printed.
 *
 * usage: bulk_throughput STATE_DIR NODE */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/client.h"
#include "odk/memory.h"

#include "bench.h"
#include "echo_selectors.h"

#define BUF_LEN (64ull << 20)
#define BLOCK (1ull << 20)
#define BLOCKS (BUF_LEN / BLOCK)
#define ROUNDS 5

typedef int (*copy_fn)(void *ctx, uint64_t offset);

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

/* The word at byte offset off (a multiple of 8) of the source in a round:
 * distinct for every offset of the buffer and every round (multiplying by
 * an odd constant is a bijection), and never zero. */
static inline uint64_t word_of(uint32_t round, uint64_t off)
{
    return ((off ^ (uint64_t)round << 40) + 1) * 0x9e3779b97f4a7c15ull;
}

/* Stamps the first `lap` blocks for a round: the source with the round's
 * words, the destination with their complement. */
static void stamp(struct side *s, uint32_t round, uint64_t lap)
{
    uint64_t *src = (uint64_t *)s->src, *dst = (uint64_t *)s->dst;
    for (uint64_t i = 0; i < lap * BLOCK / 8; i++) {
        uint64_t w = word_of(round, i * 8);
        src[i] = w;
        dst[i] = ~w;
    }
}

/* Compares every word of the first `lap` destination blocks with what the
 * round put in the source; 0 when all is there, else says where not. */
static int verify(const struct side *s, uint32_t round, uint64_t lap)
{
    const uint64_t *dst = (const uint64_t *)s->dst;
    for (uint64_t i = 0; i < lap * BLOCK / 8; i++) {
        uint64_t want = word_of(round, i * 8);
        if (dst[i] == want)
            continue;
        uint64_t off = i * 8;
        fprintf(stderr,
                "bulk_throughput: %s: round %u: block %llu (of %llu copied) differs from the "
                "source at byte %llu of the block (0x%016llx, want 0x%016llx%s)\n",
                s->name, round, (unsigned long long)(off / BLOCK), (unsigned long long)lap,
                (unsigned long long)(off % BLOCK), (unsigned long long)dst[i],
                (unsigned long long)want, dst[i] == ~want ? ": the poison, never written" : "");
        return -1;
    }
    return 0;
}

/* Copies `blocks` blocks walking through the buffers; seconds, or -1. */
static double run_round(struct side *s, uint32_t round, uint64_t blocks)
{
    uint64_t lap = blocks < BLOCKS ? blocks : BLOCKS;
    stamp(s, round, lap);
    double t0 = bench_now_s();
    for (uint64_t i = 0; i < blocks; i++) {
        int st = s->copy(s->ctx, (i % BLOCKS) * BLOCK);
        if (st < 0) {
            fprintf(stderr, "bulk_throughput: %s: round %u: copy of block %llu failed: %s\n",
                    s->name, round, (unsigned long long)(i % BLOCKS), odk_strerror(st));
            return -1;
        }
    }
    double dt = bench_now_s() - t0;
    return verify(s, round, lap) < 0 ? -1 : dt;
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
        memset(odk_buffer_data(*in), 0, BUF_LEN);
        memset(odk_buffer_data(*out), 0, BUF_LEN);
        st = odk_connection_register_buffer(o->conn, *in, ODK_MEM_OUT, &o->in_id);
    }
    if (st == ODK_OK)
        st = odk_connection_register_buffer(o->conn, *out, ODK_MEM_IN, &o->out_id);
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
    memset(sides[1].src, 0, BUF_LEN);
    memset(sides[1].dst, 0, BUF_LEN);

    /* The untimed warm-up lap (round 0), then interleaved timed rounds. */
    double bw[2][ROUNDS];
    for (int i = 0; i < 2; i++)
        if (run_round(&sides[i], 0, BLOCKS) < 0)
            goto fail;
    for (uint32_t r = 0; r < ROUNDS; r++)
        for (int i = 0; i < 2; i++) {
            double dt = run_round(&sides[i], r + 1, per_round);
            if (dt <= 0)
                goto fail;
            bw[i][r] = (double)(per_round * BLOCK) / dt / 1e9;
        }
    bench_report("bulk_throughput", "memcpy", "%.2f", "GB/s", BENCH_HIGHER_IS_BETTER, "speedup",
                 bw[0], bw[1], ROUNDS);

    free(sides[1].src);
    free(sides[1].dst);
    odk_connection_close(o.conn);
    odk_buffer_free(in);
    odk_buffer_free(out);
    odk_client_close(c);
    return 0;
fail:
    fprintf(stderr, "bulk_throughput: FAILED: no numbers reported\n");
    return 1;
}
