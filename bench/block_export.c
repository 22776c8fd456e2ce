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
 *   block_export OUR_SOCKET PEER_SOCKET [ROUNDS] [RAND_OPS] [SECONDS]
 *   block_export --one SOCKET write|read|rand PASSES
 *
 * Before the rounds, each side gets one uncounted write pass and one read
 * pass over the whole export: the disks' pages (the model's memfds,
 * nbdkit's sparse array) exist before anything is timed.  In a round each
 * measure runs for at least SECONDS (default 1; and at least one pass over
 * the export, or RAND_OPS random reads), the sequential ones pass after
 * pass without draining in between, so a stall of a loaded machine is a
 * small part of a round.
 *
 * --one drives one export alone, PASSES times over the whole export (rand:
 * PASSES times 50 000 reads), and prints nothing but errors: the load a
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

/* Keeps issuing requests from first() until at least min requests are done
 * and secs seconds have passed (secs 0: exactly min), qd in flight, and
 * drains the rest; the pipeline never empties between passes.  Returns
 * the requests done a second, or -1 on an error or wrong data. */
typedef uint64_t (*next_off_fn)(const struct conn *c, uint64_t k, uint32_t bs);

static uint64_t seq_off(const struct conn *c, uint64_t k, uint32_t bs)
{
    return k % (c->size / bs) * bs; /* pass after pass over the whole export */
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t rand_off(const struct conn *c, uint64_t k, uint32_t bs)
{
    (void)k;
    return next_rand() % (c->size / bs) * bs;
}

static double drive(struct conn *c, uint16_t type, uint32_t bs, unsigned qd, next_off_fn next,
                    uint64_t min, double secs)
{
    uint64_t sent = 0, done = 0;
    double t0 = bench_now_s();
    bool more = true;
    for (; sent < qd && sent < min; sent++)
        if (send_req(c, (unsigned)sent, type, next(c, sent, bs), bs) < 0)
            return -1;
    while (done < sent) {
        int slot = recv_reply(c);
        if (slot < 0)
            return -1;
        done++;
        if (more && sent >= min)
            more = secs > 0 && bench_now_s() - t0 < secs;
        if (!more)
            continue;
        if (send_req(c, (unsigned)slot, type, next(c, sent, bs), bs) < 0)
            return -1;
        sent++;
    }
    double t = bench_now_s() - t0;
    return t > 0 ? (double)done / t : -1;
}

/* 1 MiB requests, SEQ_QD in flight, whole passes over the export: at least
 * one pass and secs seconds; MiB/s. */
static double seq(struct conn *c, uint16_t type, uint64_t passes, double secs)
{
    return drive(c, type, SEQ_BS, SEQ_QD, seq_off, passes * (c->size / SEQ_BS), secs) *
           (SEQ_BS / (1 << 20));
}
/* 4 KiB READs at random offsets, RAND_QD in flight: at least ops of them
 * and secs seconds; IOPS. */
static double randread(struct conn *c, uint64_t ops, double secs)
{
    return drive(c, 0, RAND_BS, RAND_QD, rand_off, ops, secs);
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
    if ((w || r ? seq(&c, w ? 1 : 0, (uint64_t)passes, 0)
                : randread(&c, 50000u * (uint64_t)passes, 0)) <= 0) {
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
        fprintf(stderr,
                "usage: block_export OUR_SOCKET PEER_SOCKET [ROUNDS] [RAND_OPS] [SECONDS]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 5;
    uint64_t ops = argc > 4 ? strtoull(argv[4], NULL, 10) : 50000;
    double secs = argc > 5 ? atof(argv[5]) : 1.0;
    if (rounds < 1 || rounds > BENCH_MAX_ROUNDS)
        rounds = 5;
    if (!(secs >= 0 && secs <= 600)) {
        fprintf(stderr, "block_export: SECONDS must be 0-600, not %s\n", argv[5]);
        return 2;
    }
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
    /* Uncounted: one write pass and one read pass over each side, so every
     * page of the disks (the model's memfds, nbdkit's sparse array) and of
     * both processes' buffers exists before anything is timed. */
    for (int s = 0; s < 2; s++)
        if (seq(&side[s], 1, 1, 0) <= 0 || seq(&side[s], 0, 1, 0) <= 0) {
            fprintf(stderr, "block_export: the %s side failed its first pass\n",
                    s ? "peer" : "odk");
            return 1;
        }
    double w[2][BENCH_MAX_ROUNDS], r[2][BENCH_MAX_ROUNDS], q[2][BENCH_MAX_ROUNDS];
    double mib = (double)side[0].size / (1 << 20);
    for (int i = 0; i < rounds; i++)
        for (int k = 0; k < 2; k++) {
            int s = (i + k) % 2; /* alternate who goes first */
            w[s][i] = seq(&side[s], 1, 1, secs);
            r[s][i] = seq(&side[s], 0, 1, secs);
            q[s][i] = randread(&side[s], ops, secs);
            if (w[s][i] <= 0 || r[s][i] <= 0 || q[s][i] <= 0) {
                fprintf(stderr, "block_export: the %s side failed\n", s ? "peer" : "odk");
                return 1;
            }
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
