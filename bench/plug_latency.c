/* SPDX-License-Identifier: MIT */
/* plug_latency: how long a plugged device takes to be served, and how many
 * plug/unplug cycles odkd sustains.
 *
 * A cycle of ours, on one client watching every node: sim-plug an echo
 * device (a serial of its own); wait for the "started" event of the driver
 * on the device and for the "registered" event of the EchoDriver service carrying that
 * serial; open the device, echo one stamped 64-byte message and check it;
 * close; sim-unplug (which returns when the driver host has stopped).
 * Times from the sim-plug request: started, registered, first call
 * answered; cycles per second over the whole round.
 *
 * The peer is the floor of any process-per-driver design: fork + exec of
 * this program, which dlopens the same echo.so, says it is ready, and
 * answers one 64-byte round trip over a socketpair; then it is reaped.
 * Times from the fork: ready (for started and registered), answered.
 *
 * Rounds alternate ours and the peer (bench.h).  Every cycle is verified
 * (both events seen for this device, the echo returns this cycle's bytes,
 * the unplug completes, the peer child exits 0); a failure prints no
 * number.
 *
 * Then each round also times SPACED_CYCLES cycles with SPACED_GAP_MS of
 * nothing between one cycle's unplug (the peer's reap) and the next plug,
 * on both sides: a device plugged into a machine at rest, as devices
 * are, where the back-to-back cycles above time each plug behind the
 * previous cycle's leftovers (its host's exit, the next spare's fork and
 * preparation).  Printed as "spaced" lines of their own; the
 * back-to-back lines stay the sustained-rate measure.
 *
 * PLUG_LATENCY_OURS_ONLY=1 runs no peer and prints ours' medians only: for
 * counting the work of a cycle (perf stat or strace -c on odkd and on this
 * program; docs/testing.md, "Where a plug's time goes").
 *
 * usage: plug_latency STATE_DIR ECHO_SO [CYCLES]   (CYCLES per round, 100) */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "plug_latency.h"

#define ROUNDS 5
#define SPACED_CYCLES 30
#define SPACED_GAP_MS 20

struct round {
    double started_ms, registered_ms, answered_ms, answered_p99_ms, cycles_per_s;
};

static void gap(unsigned ms)
{
    if (ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
}

static int ours(odk_client *c, struct lc_watch *w, uint32_t round, size_t cycles,
                unsigned gap_ms, struct round *res)
{
    uint64_t *st = calloc(cycles, 8), *rg = calloc(cycles, 8), *an = calloc(cycles, 8);
    int ok = st && rg && an;
    uint64_t t_begin = bench_now_ns();
    for (size_t i = 0; ok && i < cycles; i++) {
        *w = (struct lc_watch){0};
        snprintf(w->serial, sizeof w->serial, "plug-%d-%u-%zu", (int)getpid(), round, i);
        uint64_t t0 = bench_now_ns(), dev = 0;
        if (lc_plug(c, w->serial, &dev) < 0) {
            ok = 0;
            break;
        }
        w->dev = dev;
        /* Events of this device may have arrived with the plug's reply;
         * those carry the serial, or the id now known. */
        int s = lc_wait(c, w, lc_ready, 10000);
        if (s < 0) {
            fprintf(stderr, "plug_latency: device %llu: %s waiting for started/registered\n",
                    (unsigned long long)dev, odk_strerror(s));
            ok = 0;
            break;
        }
        if (lc_first_call(c, dev, round, i, "plug_latency") < 0) {
            ok = 0;
            break;
        }
        uint64_t t1 = bench_now_ns();
        st[i] = w->started_ns - t0;
        rg[i] = w->registered_ns - t0;
        an[i] = t1 - t0;
        if (lc_unplug(c, dev) < 0)
            ok = 0;
        gap(gap_ms);
    }
    if (ok) {
        double secs = (double)(bench_now_ns() - t_begin) / 1e9;
        res->cycles_per_s = (double)cycles / secs;
        res->started_ms = lc_quantile_ms(st, cycles, 0.5);
        res->registered_ms = lc_quantile_ms(rg, cycles, 0.5);
        res->answered_p99_ms = lc_quantile_ms(an, cycles, 0.99);
        res->answered_ms = lc_quantile_ms(an, cycles, 0.5);
    }
    free(st);
    free(rg);
    free(an);
    return ok ? 0 : -1;
}

static int peer(const char *self, const char *so, uint32_t round, size_t cycles,
                unsigned gap_ms, struct round *res)
{
    uint64_t *rd = calloc(cycles, 8), *an = calloc(cycles, 8);
    int ok = rd && an;
    uint64_t t_begin = bench_now_ns();
    for (size_t i = 0; ok && i < cycles; i++) {
        if (lc_peer_cycle(self, so, 1000 + round, i, &rd[i], &an[i]) < 0)
            ok = 0;
        gap(gap_ms);
    }
    if (ok) {
        double secs = (double)(bench_now_ns() - t_begin) / 1e9;
        res->cycles_per_s = (double)cycles / secs;
        res->started_ms = res->registered_ms = lc_quantile_ms(rd, cycles, 0.5);
        res->answered_p99_ms = lc_quantile_ms(an, cycles, 0.99);
        res->answered_ms = lc_quantile_ms(an, cycles, 0.5);
    }
    free(rd);
    free(an);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--peer-child") == 0)
        return lc_peer_child(argv[2]);
    if (argc < 3) {
        fprintf(stderr, "usage: plug_latency STATE_DIR ECHO_SO [CYCLES]\n");
        return 2;
    }
    size_t cycles = argc > 3 ? strtoul(argv[3], NULL, 10) : 100;
    if (cycles < 2)
        cycles = 2;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = 0;
    odk_client *c;
    if (odk_client_open(argv[1], &c) < 0) {
        fprintf(stderr, "plug_latency: no odkd at %s\n", argv[1]);
        return 1;
    }
    static struct lc_watch w;
    if (lc_watch_start(c, &w) < 0) {
        fprintf(stderr, "plug_latency: cannot watch\n");
        return 1;
    }
    const char *only = getenv("PLUG_LATENCY_OURS_ONLY");
    bool ours_only = only && *only && strcmp(only, "0") != 0;
    /* Warm-up: one cycle of each (page cache, the catalog's first load). */
    struct round warm;
    if (ours(c, &w, 99, 2, 0, &warm) < 0 ||
        (!ours_only && peer(self, argv[2], 99, 2, 0, &warm) < 0))
        return 1;
    if (ours_only) {
        for (uint32_t r = 0; r < ROUNDS; r++) {
            struct round a, sp;
            if (ours(c, &w, r, cycles, 0, &a) < 0 ||
                ours(c, &w, 100 + r, SPACED_CYCLES, SPACED_GAP_MS, &sp) < 0)
                return 1;
            printf("plug_latency round %u (ours only): started %.3f ms, registered %.3f ms, "
                   "first call %.3f ms (p99 %.3f), %.0f cycles/s; spaced %d ms: started %.3f "
                   "ms, first call %.3f ms\n",
                   r, a.started_ms, a.registered_ms, a.answered_ms, a.answered_p99_ms,
                   a.cycles_per_s, SPACED_GAP_MS, sp.started_ms, sp.answered_ms);
        }
        odk_client_close(c);
        return 0;
    }
    double o[7][ROUNDS], p[7][ROUNDS];
    for (uint32_t r = 0; r < ROUNDS; r++) {
        struct round a, b, sa, sb;
        if (ours(c, &w, r, cycles, 0, &a) < 0 || peer(self, argv[2], r, cycles, 0, &b) < 0 ||
            ours(c, &w, 100 + r, SPACED_CYCLES, SPACED_GAP_MS, &sa) < 0 ||
            peer(self, argv[2], 100 + r, SPACED_CYCLES, SPACED_GAP_MS, &sb) < 0)
            return 1;
        o[5][r] = sa.started_ms, o[6][r] = sa.answered_ms;
        p[5][r] = sb.started_ms, p[6][r] = sb.answered_ms;
        o[0][r] = a.started_ms, o[1][r] = a.registered_ms, o[2][r] = a.answered_ms;
        o[3][r] = a.answered_p99_ms, o[4][r] = a.cycles_per_s;
        p[0][r] = b.started_ms, p[1][r] = b.registered_ms, p[2][r] = b.answered_ms;
        p[3][r] = b.answered_p99_ms, p[4][r] = b.cycles_per_s;
    }
    const char *peer_name = "fork+exec+dlopen+1 round trip";
    printf("plug_latency: %zu plug/unplug cycles per round; peer: %s (ready for "
           "started/registered)\n",
           cycles, peer_name);
    bench_report("plug_latency started (median)", "peer ready", "%.3f", "ms",
                 BENCH_LOWER_IS_BETTER, "speedup", o[0], p[0], ROUNDS);
    bench_report("plug_latency registered (median)", "peer ready", "%.3f", "ms",
                 BENCH_LOWER_IS_BETTER, "speedup", o[1], p[1], ROUNDS);
    bench_report("plug_latency first call (median)", "peer answered", "%.3f", "ms",
                 BENCH_LOWER_IS_BETTER, "speedup", o[2], p[2], ROUNDS);
    bench_report("plug_latency first call (p99)", "peer answered", "%.3f", "ms",
                 BENCH_LOWER_IS_BETTER, "speedup", o[3], p[3], ROUNDS);
    bench_report("plug_latency cycles", "peer cycles", "%.0f", "/s", BENCH_HIGHER_IS_BETTER,
                 "speedup", o[4], p[4], ROUNDS);
    printf("plug_latency spaced: %d cycles per round, %d ms of rest after each unplug (the "
           "peer's reap)\n",
           SPACED_CYCLES, SPACED_GAP_MS);
    bench_report("plug_latency spaced started (median)", "peer ready", "%.3f", "ms",
                 BENCH_LOWER_IS_BETTER, "speedup", o[5], p[5], ROUNDS);
    bench_report("plug_latency spaced first call (median)", "peer answered", "%.3f", "ms",
                 BENCH_LOWER_IS_BETTER, "speedup", o[6], p[6], ROUNDS);
    odk_client_close(c);
    return 0;
}
