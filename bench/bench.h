/* SPDX-License-Identifier: MIT */
/* What every benchmark shares: clocks, CPU time of this process and of
 * another, and the one report format bench/run prints.
 *
 * A benchmark alternates ours and its peer over several rounds (so drift in
 * machine load hits both alike) and reports, for each, the median round and
 * the range, then the ratio of each round's pair with its median and range:
 *
 *   NAME vs PEER: ours=M UNIT (min A, max B) peer=M UNIT (min A, max B)
 *       speedup=R (min A, max B) over N rounds
 *
 * (on one line).  "speedup" is how many times better ours is: peer/ours for
 * times, ours/peer for rates.  A benchmark whose check failed prints no such
 * line for that case, says what was wrong on stderr and exits non-zero. */
#ifndef ODK_BENCH_H
#define ODK_BENCH_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_ROUNDS 16

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline double bench_now_s(void)
{
    return (double)bench_now_ns() / 1e9;
}

/* User + system CPU time of this process (every thread), in ns. */
static inline uint64_t bench_self_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

/* utime + stime of process pid (every thread) from /proc/PID/stat, in ns,
 * or -1 when it cannot be read.  The kernel counts it in clock ticks
 * (10 ms with CLK_TCK 100): measure over long enough a stretch. */
static inline int64_t bench_proc_cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces and parentheses: count fields from
     * the last ')'.  utime and stime are fields 14 and 15, that is the 12th
     * and 13th after the name. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
        2)
        return -1;
    long tck = sysconf(_SC_CLK_TCK);
    return (int64_t)((utime + stime) * (1000000000ull / (unsigned long long)(tck > 0 ? tck : 100)));
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median, min and max of v[0..n) (n >= 1); v is left as it was. */
struct bench_range {
    double median, min, max;
};

static inline struct bench_range bench_range_of(const double *v, int n)
{
    double s[BENCH_MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    return (struct bench_range){s[n / 2], s[0], s[n - 1]};
}

/* Prints " LABEL=M UNIT (min A, max B)" with printf format fmt for numbers. */
static inline void bench_print_range(const char *label, const char *fmt, const char *unit,
                                     const double *v, int n)
{
    struct bench_range r = bench_range_of(v, n);
    char m[32], lo[32], hi[32];
    snprintf(m, sizeof m, fmt, r.median);
    snprintf(lo, sizeof lo, fmt, r.min);
    snprintf(hi, sizeof hi, fmt, r.max);
    printf(" %s=%s%s%s (min %s, max %s)", label, m, *unit ? " " : "", unit, lo, hi);
}

enum bench_better { BENCH_LOWER_IS_BETTER, BENCH_HIGHER_IS_BETTER };

/* Prints " [what] ours=.. peer=.. RATIO=.." for n rounds of ours[] and
 * peer[] (same round, same index), with no newline: one part of a report
 * line that holds several measures (what may be NULL). */
static inline void bench_report_part(const char *what, const char *fmt, const char *unit,
                                     enum bench_better better, const char *ratio_label,
                                     const double *ours, const double *peer, int n)
{
    double ratio[BENCH_MAX_ROUNDS];
    for (int i = 0; i < n; i++)
        ratio[i] = better == BENCH_LOWER_IS_BETTER ? peer[i] / ours[i] : ours[i] / peer[i];
    if (what)
        printf(" %s", what);
    bench_print_range("ours", fmt, unit, ours, n);
    bench_print_range("peer", fmt, unit, peer, n);
    bench_print_range(ratio_label, "%.2f", "", ratio, n);
}

/* Prints the report line of one benchmark against one peer, from n rounds
 * of ours[] and peer[] (same round, same index); ratio_label names the
 * ratio ("speedup" unless it is not one). */
static inline void bench_report(const char *name, const char *peer_name, const char *fmt,
                                const char *unit, enum bench_better better, const char *ratio_label,
                                const double *ours, const double *peer, int n)
{
    printf("%s vs %s:", name, peer_name);
    bench_report_part(NULL, fmt, unit, better, ratio_label, ours, peer, n);
    printf(" over %d rounds\n", n);
    fflush(stdout);
}

/* ---- latency samples ----------------------------------------------------- */

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1, nearest rank) of n samples in ns, in us; sorts v. */
static inline double bench_quantile_us(uint64_t *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, bench_cmp_u64);
    size_t k = (size_t)(q * (double)n);
    return (double)v[k < n ? k : n - 1] / 1000.0;
}

/* ---- echo checks ---------------------------------------------------------- */

/* The len-byte (multiple of 8) input of call i of side in round: different
 * for every call, and no word zero (memory nobody wrote often is). */
static inline void bench_stamp(uint8_t *in, size_t len, unsigned side, uint32_t round, uint64_t i)
{
    for (uint64_t j = 0; j < len / 8; j++) {
        uint64_t w = (((uint64_t)side << 60 ^ (uint64_t)round << 52 ^ i << 3 ^ j) + 1) *
                     0x9e3779b97f4a7c15ull;
        memcpy(in + j * 8, &w, 8);
    }
}

/* Fills a reply buffer with what no correct reply to in holds. */
static inline void bench_poison(uint8_t *out, const uint8_t *in, size_t len)
{
    for (size_t k = 0; k < len; k++)
        out[k] = (uint8_t)~in[k];
}

/* 0 when the reply out (out_len bytes) echoes the len bytes of in; else
 * says on stderr what came back, as "BENCH: SIDE: call I: ...". */
static inline int bench_check_echo(const char *bench, const char *side, uint64_t i,
                                   const uint8_t *in, size_t len, const void *out, size_t out_len)
{
    if (out_len == len && memcmp(in, out, len) == 0)
        return 0;
    if (out_len != len) {
        fprintf(stderr, "%s: %s: call %llu: the reply holds %zu bytes, not %zu\n", bench, side,
                (unsigned long long)i, out_len, len);
        return -1;
    }
    const uint8_t *o = out;
    size_t k = 0;
    while (o[k] == in[k])
        k++;
    uint8_t poisoned = (uint8_t)~in[k];
    fprintf(stderr,
            "%s: %s: call %llu: the reply does not echo this call's input "
            "(byte %zu is 0x%02x, want 0x%02x%s)\n",
            bench, side, (unsigned long long)i, k, o[k], in[k],
            o[k] == poisoned ? ": the poison, never written" : "");
    return -1;
}

/* Reads exactly len bytes; 0, or -1 at end of file or on error. */
static inline int bench_read_full(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* ---- other processes' CPU ------------------------------------------------ */

#define BENCH_MAX_PIDS 8

struct bench_pids {
    pid_t pid[BENCH_MAX_PIDS];
    int n;
};

/* Parses "PID[,PID...]" (at most BENCH_MAX_PIDS).  0, or -1. */
static inline int bench_parse_pids(const char *arg, struct bench_pids *h)
{
    h->n = 0;
    for (const char *p = arg; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || h->n == BENCH_MAX_PIDS)
            return -1;
        h->pid[h->n++] = (pid_t)v;
        if (*end && *end != ',')
            return -1;
        p = *end == ',' ? end + 1 : end;
    }
    return h->n ? 0 : -1;
}

/* CPU time of process pid in ns, to the nanosecond: the sum of the run
 * time of each of its threads (/proc/PID/task/TID/schedstat, first field),
 * falling back to bench_proc_cpu_ns (clock ticks) without schedstat.  A
 * thread that exited meanwhile is no longer counted: use it for processes
 * whose threads live as long as the measure.  -1 if pid is gone. */
static inline int64_t bench_proc_run_ns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char f[128];
        snprintf(f, sizeof f, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *fp = fopen(f, "r");
        unsigned long long run = 0;
        int ok = fp && fscanf(fp, "%llu", &run) == 1;
        if (fp)
            fclose(fp);
        if (!ok) {
            closedir(d);
            return bench_proc_cpu_ns(pid);
        }
        sum += (int64_t)run;
    }
    closedir(d);
    return sum;
}

/* The summed bench_proc_run_ns of every pid in h, or -1 (with a message
 * naming bench) if one cannot be read. */
static inline int64_t bench_pids_run_ns(const char *bench, const struct bench_pids *h)
{
    int64_t sum = 0;
    for (int k = 0; k < h->n; k++) {
        int64_t v = bench_proc_run_ns(h->pid[k]);
        if (v < 0) {
            fprintf(stderr, "%s: cannot read the CPU time of pid %d\n", bench, (int)h->pid[k]);
            return -1;
        }
        sum += v;
    }
    return sum;
}

#endif
