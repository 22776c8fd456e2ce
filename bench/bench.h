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
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
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

/* Prints the report line of one benchmark against one peer, from n rounds
 * of ours[] and peer[] (same round, same index); ratio_label names the
 * ratio ("speedup" unless it is not one). */
static inline void bench_report(const char *name, const char *peer_name, const char *fmt,
                                const char *unit, enum bench_better better,
                                const char *ratio_label, const double *ours, const double *peer,
                                int n)
{
    double ratio[BENCH_MAX_ROUNDS];
    for (int i = 0; i < n; i++)
        ratio[i] = better == BENCH_LOWER_IS_BETTER ? peer[i] / ours[i] : ours[i] / peer[i];
    printf("%s vs %s:", name, peer_name);
    bench_print_range("ours", fmt, unit, ours, n);
    bench_print_range("peer", fmt, unit, peer, n);
    bench_print_range(ratio_label, "%.2f", "", ratio, n);
    printf(" over %d rounds\n", n);
    fflush(stdout);
}

#endif
