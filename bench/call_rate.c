/* SPDX-License-Identifier: MIT */
/* call_rate: user-client calls paced at a fixed rate, against a socketpair
 * ping-pong paced the same way.  Apps mostly call now and then, not back to
 * back: this is where a call path that spins for nothing, or hands a
 * request from thread to thread, costs CPU or a wake-up.
 *
 * At each rate (10, 100, 1 000, 8 000 and 30 000 calls/s, then back to
 * back) rounds alternate ours and the peer (bench.h); each round makes its
 * calls on a fixed schedule (sleeping until the next call is due; a late
 * call goes at once and the schedule restarts from it, never a burst) and
 * reports:
 *   median, p99  of the round's calls, timed around the call alone
 *   cpu          CPU time of both processes over the round, as a percentage
 *                of one CPU (the round's wall time, sleeps included): ours
 *                is this process plus the driver hosts HOST_PIDS, the peer
 *                this process plus its child; all from the run time of each
 *                thread (/proc/PID/task/TID/schedstat, to the nanosecond)
 *   cpu/call     the same CPU time per call (the fair measure back to back,
 *                and wherever a side cannot keep the pace)
 *
 *   ours        odk_connection_call of the echo driver's ECHO_ECHO: 64 bytes
 *               in, the same 64 bytes out
 *   socketpair  a 64-byte write to a forked child that writes it back
 *               (SOCK_STREAM), the floor for any call that sleeps
 *
 * One connection and one child serve the whole run.  Buffers: the request
 * and reply buffers are on the stack, the sample array is written in full
 * before the first round; each round starts with a few unmeasured calls at
 * its own pace (they also fault in the call mailbox and teach both sides
 * the round's rhythm).  The timer slack of this process is set to 1 ns so
 * sleeps end when due: both sides are paced alike.
 *
 * Verification: every call's input is stamped with side, rate, round and
 * call number, the reply buffer is poisoned before the call and compared
 * with the input after it (bench.h); a wrong reply fails the benchmark and
 * no number is printed.
 *
 * usage: call_rate STATE_DIR NODE HOST_PIDS [SECONDS [RATES]]
 *   HOST_PIDS  the pids of the driver hosts serving NODE, comma-separated
 *   SECONDS    how long one round of one side lasts at a paced rate
 *              (default 0.5), stretched to MIN_CALLS = 1000 calls (10 s a
 *              round at 100 calls/s) but to no more than MAX_ROUND_S = 30 s
 *              (300 calls at 10 calls/s).  A p99 needs calls: of 100, it
 *              was the second-highest call, and at 100/s it swung 35x
 *              between rounds; of 1000 it is the tenth-highest, of 300
 *              the third or fourth
 *   RATES      the rates to run instead of all, comma-separated (0: back to
 *              back), e.g. 1000,0 while tuning */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "odk/client.h"

#include "bench.h"
#include "echo_selectors.h"

#define MSG 64          /* bytes in and out of every call */
#define ROUNDS 5        /* alternating rounds of each side, at each rate */
#define MIN_CALLS 1000  /* measured calls in a paced round, at the least (p99: the 10th highest) */
#define MAX_ROUND_S 30  /* ... unless that takes longer than this many seconds */
#define B2B_CALLS 20000 /* measured calls in a back-to-back round */

#define MAX_RATES 16
static unsigned rates[MAX_RATES] = {10, 100, 1000, 8000, 30000, 0}; /* 0: back to back */
static size_t N_RATES = 6;

enum side { OURS, SOCKETPAIR, N_SIDES };
static const char *const side_name[N_SIDES] = {"ours", "socketpair"};

struct result {
    double median_us, p99_us, cpu_pct, cpu_per_call_us;
};

/* One call of a side: in -> out, 0 or -1 (with a message). */
struct side_ctx {
    odk_connection *conn; /* ours */
    int sock;             /* socketpair: our end */
    pid_t child;          /* socketpair: the echoing child */
    struct bench_pids serving;
};

static int call_once(struct side_ctx *s, enum side side, uint64_t i, const uint8_t *in,
                     uint8_t *out, size_t *out_len)
{
    if (side == OURS) {
        *out_len = MSG;
        int st =
            odk_connection_call(s->conn, ECHO_ECHO, NULL, 0, in, MSG, NULL, NULL, out, out_len);
        if (st < 0)
            fprintf(stderr, "call_rate: ours: call %llu failed: %s\n", (unsigned long long)i,
                    odk_strerror(st));
        return st < 0 ? -1 : 0;
    }
    *out_len = MSG;
    if (write(s->sock, in, MSG) != MSG || bench_read_full(s->sock, out, MSG) < 0) {
        fprintf(stderr, "call_rate: socketpair: call %llu: %s\n", (unsigned long long)i,
                strerror(errno));
        return -1;
    }
    return 0;
}

static void sleep_until(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* One round of one side at rate (0: back to back): n measured calls after
 * warm unmeasured ones. */
static int run_round(struct side_ctx *s, enum side side, unsigned rate, uint32_t round, size_t n,
                     size_t warm, uint64_t *samples, struct result *res)
{
    uint8_t in[MSG], out[MSG];
    uint64_t period = rate ? 1000000000ull / rate : 0;
    uint64_t next = bench_now_ns();
    uint64_t wall0 = 0, cpu0 = 0;
    int64_t serving0 = 0;
    for (size_t k = 0; k < warm + n; k++) {
        if (k == warm) {
            /* Ours last (and first at the end): reading the other side's
             * /proc files is not counted as our CPU. */
            serving0 = bench_pids_run_ns("call_rate", &s->serving);
            if (serving0 < 0)
                return -1;
            wall0 = bench_now_ns();
            cpu0 = (uint64_t)bench_proc_run_ns(getpid());
        }
        if (period) {
            next += period;
            uint64_t now = bench_now_ns();
            if (next < now)
                next = now; /* late: go now, and keep the pace from here */
            else
                sleep_until(next);
        }
        uint64_t id = (uint64_t)rate << 24 ^ k;
        bench_stamp(in, MSG, side, round, id);
        bench_poison(out, in, MSG);
        size_t out_len;
        uint64_t t0 = bench_now_ns();
        if (call_once(s, side, k, in, out, &out_len) < 0)
            return -1;
        uint64_t t1 = bench_now_ns();
        if (k >= warm)
            samples[k - warm] = t1 - t0;
        if (bench_check_echo("call_rate", side_name[side], k, in, MSG, out, out_len) < 0)
            return -1;
    }
    uint64_t wall = bench_now_ns() - wall0;
    uint64_t cpu = (uint64_t)bench_proc_run_ns(getpid()) - cpu0;
    int64_t serving1 = bench_pids_run_ns("call_rate", &s->serving);
    if (serving1 < 0)
        return -1;
    uint64_t both = cpu + (uint64_t)(serving1 - serving0);
    res->cpu_pct = 100.0 * (double)both / (double)wall;
    res->cpu_per_call_us = (double)both / 1e3 / (double)n;
    res->median_us = bench_quantile_us(samples, n, 0.5);
    res->p99_us = bench_quantile_us(samples, n, 0.99);
    return 0;
}

/* The socketpair peer's child: echoes 64-byte messages until end of file. */
static int start_child(struct side_ctx *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t buf[MSG];
        close(sv[0]);
        while (bench_read_full(sv[1], buf, sizeof buf) == 0)
            if (write(sv[1], buf, sizeof buf) != sizeof buf)
                _exit(1);
        _exit(0);
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return -1;
    }
    s->sock = sv[0];
    s->child = pid;
    return 0;
}

static int stop_child(struct side_ctx *s)
{
    close(s->sock);
    int status;
    if (waitpid(s->child, &status, 0) != s->child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "call_rate: socketpair: the child did not exit cleanly\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct side_ctx sides[N_SIDES] = {0};
    if (argc < 4 || bench_parse_pids(argv[3], &sides[OURS].serving) < 0) {
        fprintf(stderr, "usage: call_rate STATE_DIR NODE HOST_PIDS [SECONDS [RATES]]\n"
                        "  HOST_PIDS: the driver hosts serving NODE, comma-separated\n");
        return 2;
    }
    uint64_t node = strtoull(argv[2], NULL, 0);
    double secs = argc > 4 ? strtod(argv[4], NULL) : 0.5;
    if (!(secs > 0)) {
        fprintf(stderr, "call_rate: SECONDS must be positive\n");
        return 2;
    }
    if (argc > 5) {
        N_RATES = 0;
        for (char *p = argv[5]; *p && N_RATES < MAX_RATES;) {
            char *end;
            rates[N_RATES++] = (unsigned)strtoul(p, &end, 10);
            if (end == p || (*end && *end != ',')) {
                fprintf(stderr, "call_rate: bad RATES %s\n", argv[5]);
                return 2;
            }
            p = *end ? end + 1 : end;
        }
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    size_t max_calls = B2B_CALLS > MIN_CALLS ? B2B_CALLS : MIN_CALLS;
    for (size_t r = 0; r < N_RATES; r++)
        if (rates[r] && (size_t)(rates[r] * secs) > max_calls)
            max_calls = (size_t)(rates[r] * secs);
    uint64_t *samples = malloc(max_calls * sizeof *samples);
    if (!samples)
        return 1;
    memset(samples, 0, max_calls * sizeof *samples); /* prefault */

    odk_client *c;
    if (odk_client_open(argv[1], &c) < 0 ||
        odk_connection_open(c, node, 0, &sides[OURS].conn) < 0) {
        fprintf(stderr, "call_rate: cannot open node %llu\n", (unsigned long long)node);
        return 1;
    }
    if (start_child(&sides[SOCKETPAIR]) < 0) {
        fprintf(stderr, "call_rate: cannot start the socketpair child: %s\n", strerror(errno));
        return 1;
    }
    sides[SOCKETPAIR].serving = (struct bench_pids){.pid = {sides[SOCKETPAIR].child}, .n = 1};

    static struct result res[MAX_RATES][N_SIDES][ROUNDS];
    int ok = 1;
    for (size_t r = 0; ok && r < N_RATES; r++) {
        size_t n = rates[r] ? (size_t)(rates[r] * secs) : B2B_CALLS;
        if (n < MIN_CALLS)
            n = rates[r] && MIN_CALLS > rates[r] * MAX_ROUND_S ? rates[r] * MAX_ROUND_S : MIN_CALLS;
        size_t warm = n / 20 < 3 ? 3 : n / 20;
        for (uint32_t round = 0; ok && round < ROUNDS; round++)
            for (int s = 0; ok && s < N_SIDES; s++)
                ok = run_round(&sides[s], (enum side)s, rates[r], round, n, warm, samples,
                               &res[r][s][round]) == 0;
    }
    odk_connection_close(sides[OURS].conn);
    odk_client_close(c);
    ok &= stop_child(&sides[SOCKETPAIR]) == 0;
    free(samples);
    if (!ok) {
        fprintf(stderr, "call_rate: FAILED: no numbers reported\n");
        return 1;
    }
    for (size_t r = 0; r < N_RATES; r++) {
        double med[N_SIDES][ROUNDS], p99[N_SIDES][ROUNDS], cpu[N_SIDES][ROUNDS],
            per_call[N_SIDES][ROUNDS];
        for (int s = 0; s < N_SIDES; s++)
            for (int k = 0; k < ROUNDS; k++) {
                med[s][k] = res[r][s][k].median_us;
                p99[s][k] = res[r][s][k].p99_us;
                cpu[s][k] = res[r][s][k].cpu_pct;
                per_call[s][k] = res[r][s][k].cpu_per_call_us;
            }
        char name[64];
        if (rates[r])
            snprintf(name, sizeof name, "call_rate %u/s", rates[r]);
        else
            snprintf(name, sizeof name, "call_rate back-to-back");
        printf("%s vs socketpair:", name);
        bench_report_part("median", "%.2f", "us", BENCH_LOWER_IS_BETTER, "speedup", med[OURS],
                          med[SOCKETPAIR], ROUNDS);
        printf(";");
        bench_report_part("p99", "%.2f", "us", BENCH_LOWER_IS_BETTER, "speedup", p99[OURS],
                          p99[SOCKETPAIR], ROUNDS);
        printf(";");
        /* CPU of both processes; peer/ours above 1: ours spends less. */
        bench_report_part("cpu", "%.1f", "%", BENCH_LOWER_IS_BETTER, "peer/ours", cpu[OURS],
                          cpu[SOCKETPAIR], ROUNDS);
        printf(";");
        bench_report_part("cpu/call", "%.2f", "us", BENCH_LOWER_IS_BETTER, "peer/ours",
                          per_call[OURS], per_call[SOCKETPAIR], ROUNDS);
        printf(" over %d rounds\n", ROUNDS);
        fflush(stdout);
    }
    return 0;
}
