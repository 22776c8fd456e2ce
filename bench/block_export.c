/* SPDX-License-Identifier: MIT */
/* block_export: the storage family's NBD export of a RAID-0 volume on the
 * simulated HBA (scsi-raid; every block a CDB, DMA into the driver's
 * memory) against nbdkit's memory plugin, measured by the same NBD client
 * (this file's) in the same run, alternating rounds:
 *
 *   seq write  1 MiB WRITEs over the whole export, 4 in flight  (MiB/s)
 *   seq read   1 MiB READs over the whole export, 4 in flight   (MiB/s)
 *   rand read  4 KiB READs at random 4 KiB offsets, 32 in flight (IOPS)
 *
 *   block_export OUR_SOCKET PEER_SOCKET [ROUNDS] [RAND_OPS]
 *   block_export --one SOCKET write|read|rand PASSES
 *
 * --one drives one export alone, PASSES times over the whole export (rand:
 * PASSES times RAND_OPS reads), and prints nothing but errors: the load a
 * `perf stat` of the serving processes counts (bench/block_export_counts).
 *
 * Every write carries its offset in each 4 KiB block, and every read is
 * checked against it: a run that moved wrong data prints no number. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

#define SEQ_BS (1u << 20)
#define SEQ_QD 4
#define RAND_BS 4096u
#define RAND_QD 32
#define MAX_QD 64

struct conn {
    int fd;
    uint64_t size;
    uint32_t len[MAX_QD]; /* per cookie slot: the READ's length, 0 for a WRITE */
    uint64_t off[MAX_QD];
    uint8_t *buf; /* SEQ_BS */
};

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static int write_full(int fd, const void *b, size_t n)
{
    const uint8_t *p = b;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int nbd_open(const char *path, struct conn *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return -1;
    int sz = 4 << 20;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    uint8_t b[64];
    if (bench_read_full(c->fd, b, 18) < 0 || get64(b) != 0x4e42444d41474943ull)
        return -1;
    put32(b, 3); /* fixed newstyle, no zeroes */
    /* NBD_OPT_GO, default export, no info requests */
    put64(b + 4, 0x49484156454f5054ull);
    put32(b + 12, 7);
    put32(b + 16, 6);
    put32(b + 20, 0);
    b[24] = b[25] = 0;
    if (write_full(c->fd, b, 26) < 0)
        return -1;
    for (;;) {
        if (bench_read_full(c->fd, b, 20) < 0)
            return -1;
        uint32_t type = get32(b + 12), len = get32(b + 16);
        uint8_t body[256];
        if (len > sizeof body || bench_read_full(c->fd, body, len) < 0)
            return -1;
        if (type == 3 && len >= 12 && body[0] == 0 && body[1] == 0)
            c->size = get64(body + 2);
        if (type == 1)
            break;
        if (type != 3)
            return -1;
    }
    c->buf = malloc(SEQ_BS);
    return c->buf && c->size ? 0 : -1;
}

static void stamp(uint8_t *b, uint64_t off, uint32_t len)
{
    for (uint32_t i = 0; i < len; i += 4096) {
        memset(b + i, (int)(off >> 12), 4096);
        memcpy(b + i, &off, sizeof off);
        off += 4096;
    }
}

static bool stamped(const uint8_t *b, uint64_t off, uint32_t len)
{
    for (uint32_t i = 0; i < len; i += 4096, off += 4096) {
        uint64_t got;
        memcpy(&got, b + i, sizeof got);
        if (got != off || b[i + 4095] != (uint8_t)(off >> 12))
            return false;
    }
    return true;
}

static int send_req(struct conn *c, unsigned slot, uint16_t type, uint64_t off, uint32_t len)
{
    uint8_t h[28];
    put32(h, 0x25609513u);
    h[4] = h[5] = 0;
    h[6] = 0;
    h[7] = (uint8_t)type;
    put64(h + 8, slot);
    put64(h + 16, off);
    put32(h + 24, len);
    c->len[slot] = type == 0 ? len : 0;
    c->off[slot] = off;
    if (write_full(c->fd, h, sizeof h) < 0)
        return -1;
    if (type == 1) {
        stamp(c->buf, off, len);
        return write_full(c->fd, c->buf, len);
    }
    return 0;
}

/* Reads one reply; returns its slot, or -1 on error or bad data. */
static int recv_reply(struct conn *c)
{
    uint8_t h[16];
    if (bench_read_full(c->fd, h, sizeof h) < 0 || get32(h) != 0x67446698u || get32(h + 4)) {
        fprintf(stderr, "block_export: error reply %u\n", get32(h + 4));
        return -1;
    }
    uint64_t slot = get64(h + 8);
    if (slot >= MAX_QD)
        return -1;
    if (c->len[slot]) {
        if (bench_read_full(c->fd, c->buf, c->len[slot]) < 0)
            return -1;
        if (!stamped(c->buf, c->off[slot], c->len[slot])) {
            fprintf(stderr, "block_export: wrong data at %" PRIu64 "\n", c->off[slot]);
            return -1;
        }
    }
    return (int)slot;
}

/* Moves the whole export in bs requests, qd in flight; returns seconds. */
static double seq(struct conn *c, uint16_t type)
{
    uint64_t n = c->size / SEQ_BS, sent = 0, done = 0;
    double t0 = bench_now_s();
    for (; sent < n && sent < SEQ_QD; sent++)
        if (send_req(c, (unsigned)sent, type, sent * SEQ_BS, SEQ_BS) < 0)
            return -1;
    while (done < n) {
        int slot = recv_reply(c);
        if (slot < 0)
            return -1;
        done++;
        if (sent < n && send_req(c, (unsigned)slot, type, sent++ * SEQ_BS, SEQ_BS) < 0)
            return -1;
    }
    return bench_now_s() - t0;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double randread(struct conn *c, uint64_t ops)
{
    uint64_t blocks = c->size / RAND_BS, sent = 0, done = 0;
    double t0 = bench_now_s();
    for (; sent < ops && sent < RAND_QD; sent++)
        if (send_req(c, (unsigned)sent, 0, (next_rand() % blocks) * RAND_BS, RAND_BS) < 0)
            return -1;
    while (done < ops) {
        int slot = recv_reply(c);
        if (slot < 0)
            return -1;
        done++;
        if (sent < ops) {
            sent++;
            if (send_req(c, (unsigned)slot, 0, (next_rand() % blocks) * RAND_BS, RAND_BS) < 0)
                return -1;
        }
    }
    return bench_now_s() - t0;
}

static int one(int argc, char **argv)
{
    struct conn c;
    int passes = argc > 4 ? atoi(argv[4]) : 1;
    if (argc < 4 || passes < 1) {
        fprintf(stderr, "usage: block_export --one SOCKET write|read|rand PASSES\n");
        return 2;
    }
    if (nbd_open(argv[2], &c) < 0) {
        fprintf(stderr, "block_export: cannot open %s\n", argv[2]);
        return 1;
    }
    bool w = !strcmp(argv[3], "write"), r = !strcmp(argv[3], "read");
    if (!w && !r && strcmp(argv[3], "rand")) {
        fprintf(stderr, "block_export: --one: no mode named %s\n", argv[3]);
        return 2;
    }
    for (int i = 0; i < passes; i++)
        if ((w || r ? seq(&c, w ? 1 : 0) : randread(&c, 50000)) <= 0) {
            fprintf(stderr, "block_export: %s failed\n", argv[3]);
            return 1;
        }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--one"))
        return one(argc, argv);
    if (argc < 3) {
        fprintf(stderr, "usage: block_export OUR_SOCKET PEER_SOCKET [ROUNDS] [RAND_OPS]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    uint64_t ops = argc > 4 ? strtoull(argv[4], NULL, 10) : 50000;
    if (rounds < 1 || rounds > BENCH_MAX_ROUNDS)
        rounds = 5;
    struct conn side[2];
    for (int s = 0; s < 2; s++)
        if (nbd_open(argv[1 + s], &side[s]) < 0) {
            fprintf(stderr, "block_export: cannot open %s\n", argv[1 + s]);
            return 1;
        }
    if (side[0].size != side[1].size) {
        fprintf(stderr, "block_export: sizes differ (%" PRIu64 " and %" PRIu64 ")\n", side[0].size,
                side[1].size);
        return 1;
    }
    double w[2][BENCH_MAX_ROUNDS], r[2][BENCH_MAX_ROUNDS], q[2][BENCH_MAX_ROUNDS];
    double mib = (double)side[0].size / (1 << 20);
    for (int i = 0; i < rounds; i++)
        for (int k = 0; k < 2; k++) {
            int s = (i + k) % 2; /* alternate who goes first */
            double tw = seq(&side[s], 1), tr = seq(&side[s], 0), tq = randread(&side[s], ops);
            if (tw <= 0 || tr <= 0 || tq <= 0) {
                fprintf(stderr, "block_export: the %s side failed\n", s ? "peer" : "odk");
                return 1;
            }
            w[s][i] = mib / tw;
            r[s][i] = mib / tr;
            q[s][i] = (double)ops / tq;
        }
    printf("block_export vs nbdkit-memory:");
    bench_report_part("seq-write", "%.0f", "MiB/s", BENCH_HIGHER_IS_BETTER, "ratio", w[0], w[1],
                      rounds);
    bench_report_part("seq-read", "%.0f", "MiB/s", BENCH_HIGHER_IS_BETTER, "ratio", r[0], r[1],
                      rounds);
    bench_report_part("rand-read-4k-qd32", "%.0f", "IOPS", BENCH_HIGHER_IS_BETTER, "ratio", q[0],
                      q[1], rounds);
    printf(" over %d rounds (%.0f MiB export)\n", rounds, mib);
    return 0;
}
