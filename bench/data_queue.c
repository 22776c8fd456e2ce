/* SPDX-License-Identifier: MIT */
/* data_queue: events per second from a driver to an app through a data
 * queue (shared-memory ring, wake-ups only when a side sleeps), against a
 * pipe carrying the same events between two processes (one write per
 * event, reads of up to 64 KiB).
 *
 * usage: data_queue STATE_DIR NODE [EVENTS] [SIZE] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "odk/client.h"

#include "echo_selectors.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double ours(const char *state, uint64_t node, uint64_t events, uint32_t size)
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
    uint8_t rec[4096];
    double t0 = now_s();
    if (odk_connection_call(conn, ECHO_PRODUCE, args, 2, NULL, 0, NULL, NULL, NULL, NULL) < 0)
        return -1;
    for (uint64_t i = 0; i < events;) {
        uint32_t len;
        int st = odk_data_queue_dequeue(q, rec, sizeof rec, &len);
        if (st == ODK_E_AGAIN) {
            if (odk_data_queue_wait(q, 5000) < 0) {
                fprintf(stderr, "data_queue: stalled after %llu events\n", (unsigned long long)i);
                return -1;
            }
            continue;
        }
        uint64_t seq;
        memcpy(&seq, rec, sizeof seq);
        if (st < 0 || len != size) {
            fprintf(stderr, "data_queue: bad record %llu: %s\n", (unsigned long long)i,
                    odk_strerror(st));
            return -1;
        }
        i++;
    }
    double dt = now_s() - t0;
    odk_data_queue_free(q);
    odk_connection_close(conn);
    odk_client_close(c);
    return (double)events / dt;
}

static double peer_pipe(uint64_t events, uint32_t size)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t rec[4096] = {0};
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
    uint64_t bytes = 0, want = events * size;
    while (bytes < want) {
        ssize_t r = read(p[0], buf, sizeof buf);
        if (r <= 0)
            break;
        bytes += (uint64_t)r;
    }
    double dt = now_s() - t0;
    close(p[0]);
    waitpid(pid, NULL, 0);
    return bytes == want ? (double)events / dt : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: data_queue STATE_DIR NODE [EVENTS] [SIZE]\n");
        return 2;
    }
    uint64_t node = strtoull(argv[2], NULL, 0);
    uint64_t events = argc > 3 ? strtoull(argv[3], NULL, 0) : 2000000;
    uint32_t size = argc > 4 ? (uint32_t)atoi(argv[4]) : 32;
    enum { ROUNDS = 3 };
    double o[ROUNDS], p[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        o[r] = ours(argv[1], node, events, size);
        p[r] = peer_pipe(events, size);
        if (o[r] < 0 || p[r] < 0)
            return 1;
    }
    qsort(o, ROUNDS, sizeof(double), cmp_double);
    qsort(p, ROUNDS, sizeof(double), cmp_double);
    printf("data_queue vs pipe: ours=%.2f Mevents/s peer=%.2f Mevents/s speedup=%.2f\n",
           o[ROUNDS / 2] / 1e6, p[ROUNDS / 2] / 1e6, o[ROUNDS / 2] / p[ROUNDS / 2]);
    return 0;
}
