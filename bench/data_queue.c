/* SPDX-License-Identifier: MIT */
/* data_queue: events per second from a driver to an app through a data
 * queue (shared-memory ring, wake-ups only when a side sleeps), against a
 * pipe carrying the same events between two processes (one write per
 * event, reads of up to 64 KiB).
 *
 * Both streams carry the echo driver's records (ECHO_PRODUCE): record i is
 * SIZE bytes, i as 8 bytes then zeros.  The echo driver numbers its records
 * from 0 for the life of the device, so round r of ours carries records
 * r*EVENTS to (r+1)*EVENTS-1; the device must be fresh (bench/run plugs
 * one).  Each pipe round numbers from 0.
 *
 * Verification, of every record as it arrives: its length, its sequence
 * number against the one expected next, and its zero tail.  Ours dequeues
 * into a buffer poisoned (0xff) before each record, so a dequeue that
 * reports a record without copying it fails too.  A lost, repeated,
 * reordered or damaged record fails, naming the side, round and record,
 * and no number is printed.  The checks cost a few ns a record on both
 * sides.
 *
 * usage: data_queue STATE_DIR NODE [EVENTS] [SIZE] */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "odk/client.h"

#include "bench.h"
#include "echo_selectors.h"

#define ROUNDS 5
#define MAX_RECORD 4096 /* the echo driver's largest record */

static const uint8_t zeros[MAX_RECORD];

/* 0 when rec (len bytes) is record seq of size bytes; else says why not. */
static int check_record(const char *side, int round, uint64_t k, const uint8_t *rec, uint32_t len,
                        uint32_t size, uint64_t want)
{
    uint64_t seq;
    memcpy(&seq, rec, sizeof seq);
    if (len == size && seq == want && memcmp(rec + 8, zeros, size - 8) == 0)
        return 0;
    fprintf(stderr, "data_queue: %s: round %d: record %llu: ", side, round,
            (unsigned long long)k);
    if (len != size)
        fprintf(stderr, "%u bytes, want %u\n", len, size);
    else if (seq != want)
        fprintf(stderr, "sequence number %llu, want %llu (%s)\n", (unsigned long long)seq,
                (unsigned long long)want,
                seq > want ? "records were lost" : "a record came twice or out of order");
    else
        fprintf(stderr, "the bytes after the sequence number are not the driver's zeros\n");
    return -1;
}

/* Events per second of one round, or -1.  *next is the sequence number the
 * driver gives its next record; it advances by the records received. */
static double ours(const char *state, uint64_t node, int round, uint64_t events, uint32_t size,
                   uint64_t *next)
{
    odk_client *c;
    odk_connection *conn;
    odk_data_queue *q;
    if (odk_client_open(state, &c) < 0 || odk_connection_open(c, node, 0, &conn) < 0 ||
        odk_connection_map_data_queue(conn, 0, &q) < 0) {
        fprintf(stderr, "data_queue: cannot open node %llu's data queue\n",
                (unsigned long long)node);
        return -1;
    }
    uint64_t args[2] = {events, size};
    uint8_t rec[MAX_RECORD];
    double rate = -1;
    double t0 = bench_now_s();
    int st = odk_connection_call(conn, ECHO_PRODUCE, args, 2, NULL, 0, NULL, NULL, NULL, NULL);
    if (st < 0) {
        fprintf(stderr, "data_queue: ours: ECHO_PRODUCE failed: %s\n", odk_strerror(st));
        goto out;
    }
    memset(rec, 0xff, size);
    for (uint64_t i = 0; i < events;) {
        uint32_t len = 0;
        st = odk_data_queue_dequeue(q, rec, sizeof rec, &len);
        if (st == ODK_E_AGAIN) {
            if (odk_data_queue_wait(q, 5000) < 0) {
                fprintf(stderr, "data_queue: ours: round %d: stalled after %llu of %llu records\n",
                        round, (unsigned long long)i, (unsigned long long)events);
                goto out;
            }
            continue;
        }
        if (st < 0) {
            fprintf(stderr, "data_queue: ours: round %d: record %llu: %s\n", round,
                    (unsigned long long)i, odk_strerror(st));
            goto out;
        }
        if (check_record("ours", round, i, rec, len, size, *next + i) < 0)
            goto out;
        memset(rec, 0xff, size);
        i++;
    }
    rate = (double)events / (bench_now_s() - t0);
    *next += events;
out:
    odk_data_queue_free(q);
    odk_connection_close(conn);
    odk_client_close(c);
    return rate;
}

/* The pipe's reader: checks the byte stream record by record, wherever the
 * reads split it. */
struct stream {
    uint8_t rec[MAX_RECORD]; /* a record split across reads */
    uint32_t have;
    uint64_t records;
};

static int stream_take(struct stream *s, int round, const uint8_t *p, size_t n, uint32_t size)
{
    while (n) {
        if (s->have == 0 && n >= size) { /* whole records, in place */
            if (check_record("pipe", round, s->records, p, size, size, s->records) < 0)
                return -1;
            s->records++;
            p += size;
            n -= size;
            continue;
        }
        size_t k = size - s->have < n ? size - s->have : n;
        memcpy(s->rec + s->have, p, k);
        s->have += (uint32_t)k;
        p += k;
        n -= k;
        if (s->have == size) {
            if (check_record("pipe", round, s->records, s->rec, size, size, s->records) < 0)
                return -1;
            s->records++;
            s->have = 0;
        }
    }
    return 0;
}

static double peer_pipe(int round, uint64_t events, uint32_t size)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    double t0 = bench_now_s();
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t rec[MAX_RECORD] = {0};
        close(p[0]);
        for (uint64_t i = 0; i < events; i++) {
            memcpy(rec, &i, sizeof i);
            if (write(p[1], rec, size) != (ssize_t)size)
                _exit(1);
        }
        _exit(0);
    }
    close(p[1]);
    static uint8_t buf[65536];
    static struct stream s;
    s = (struct stream){.have = 0};
    uint64_t bytes = 0, want = events * size;
    int ok = 1;
    while (ok && bytes < want) {
        ssize_t r = read(p[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        bytes += (uint64_t)r;
        ok = stream_take(&s, round, buf, (size_t)r, size) == 0;
    }
    double dt = bench_now_s() - t0;
    close(p[0]);
    waitpid(pid, NULL, 0);
    if (ok && (bytes != want || s.records != events)) {
        fprintf(stderr, "data_queue: pipe: round %d: %llu of %llu records came\n", round,
                (unsigned long long)s.records, (unsigned long long)events);
        ok = 0;
    }
    return ok ? (double)events / dt : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: data_queue STATE_DIR NODE [EVENTS] [SIZE]\n");
        return 2;
    }
    uint64_t node = strtoull(argv[2], NULL, 0);
    uint64_t events = argc > 3 ? strtoull(argv[3], NULL, 0) : 500000;
    uint32_t size = argc > 4 ? (uint32_t)atoi(argv[4]) : 32;
    if (events == 0 || size < 8 || size > MAX_RECORD) {
        fprintf(stderr, "data_queue: EVENTS must be at least 1 and SIZE 8 to %d\n", MAX_RECORD);
        return 2;
    }
    double o[ROUNDS], p[ROUNDS];
    uint64_t next = 0; /* a fresh device numbers from 0 */
    for (int r = 0; r < ROUNDS; r++) {
        o[r] = ours(argv[1], node, r, events, size, &next);
        p[r] = o[r] < 0 ? -1 : peer_pipe(r, events, size);
        if (o[r] < 0 || p[r] < 0) {
            fprintf(stderr, "data_queue: FAILED: no numbers reported\n");
            return 1;
        }
        o[r] /= 1e6;
        p[r] /= 1e6;
    }
    bench_report("data_queue", "pipe", "%.2f", "Mevents/s", BENCH_HIGHER_IS_BETTER, "speedup", o, p,
                 ROUNDS);
    return 0;
}
