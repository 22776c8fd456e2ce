/* call_latency: median round trip of a user-client call with a 64-byte
 * structure in and out (the echo driver's selector 0), against a raw
 * socketpair ping-pong of 64 bytes between two processes.
 *
 * usage: call_latency STATE_DIR NODE [ITERATIONS] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "odk/client.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_us(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    return (double)v[n / 2] / 1000.0;
}

static double peer_socketpair(size_t iters, uint64_t *samples)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char buf[64];
        close(sv[0]);
        for (;;) {
            size_t got = 0;
            while (got < sizeof buf) {
                ssize_t r = read(sv[1], buf + got, sizeof buf - got);
                if (r <= 0)
                    _exit(0);
                got += (size_t)r;
            }
            if (write(sv[1], buf, sizeof buf) != sizeof buf)
                _exit(1);
        }
    }
    close(sv[1]);
    char buf[64] = {1};
    for (size_t i = 0; i < iters; i++) {
        uint64_t t0 = now_ns();
        if (write(sv[0], buf, sizeof buf) != sizeof buf)
            return -1;
        size_t got = 0;
        while (got < sizeof buf) {
            ssize_t r = read(sv[0], buf + got, sizeof buf - got);
            if (r <= 0)
                return -1;
            got += (size_t)r;
        }
        samples[i] = now_ns() - t0;
    }
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return median_us(samples, iters);
}

static double ours(const char *state, uint64_t node, size_t iters, uint64_t *samples)
{
    odk_client *c;
    odk_connection *conn;
    if (odk_client_open(state, &c) < 0 || odk_connection_open(c, node, 0, &conn) < 0) {
        fprintf(stderr, "call_latency: cannot open node %llu\n", (unsigned long long)node);
        return -1;
    }
    uint8_t in[64], out[64];
    memset(in, 0xab, sizeof in);
    for (size_t i = 0; i < iters; i++) {
        size_t out_len = sizeof out;
        uint64_t t0 = now_ns();
        int st = odk_connection_call(conn, 0, NULL, 0, in, sizeof in, NULL, NULL, out, &out_len);
        samples[i] = now_ns() - t0;
        if (st < 0 || out_len != sizeof out || memcmp(in, out, sizeof in) != 0) {
            fprintf(stderr, "call_latency: call failed: %s\n", odk_strerror(st));
            return -1;
        }
    }
    odk_connection_close(conn);
    odk_client_close(c);
    return median_us(samples, iters);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: call_latency STATE_DIR NODE [ITERATIONS]\n");
        return 2;
    }
    size_t iters = argc > 3 ? strtoul(argv[3], NULL, 0) : 20000;
    uint64_t *samples = calloc(iters, sizeof *samples);
    /* Interleave rounds so drift in machine load hits both sides alike;
     * report the median round of each. */
    enum { ROUNDS = 3 };
    double o[ROUNDS], p[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        o[r] = ours(argv[1], strtoull(argv[2], NULL, 0), iters, samples);
        p[r] = peer_socketpair(iters, samples);
        if (o[r] < 0 || p[r] < 0)
            return 1;
    }
    qsort(o, ROUNDS, sizeof(double), cmp_double);
    qsort(p, ROUNDS, sizeof(double), cmp_double);
    printf("call_latency vs socketpair: ours=%.2f us peer=%.2f us speedup=%.2f\n",
           o[ROUNDS / 2], p[ROUNDS / 2], p[ROUNDS / 2] / o[ROUNDS / 2]);
    free(samples);
    return 0;
}
