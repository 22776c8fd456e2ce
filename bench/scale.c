/* SPDX-License-Identifier: MIT */
/* scale: odkd with a thousand driver instances.
 *
 * Starts two odkd of its own (BUILD_DIR/bin/odkd, the echo test driver):
 * "big", where N-1 echo devices are plugged and every one answers a
 * verified echo call, and "small", with none.  Then:
 *   - plug latency: rounds alternate probe cycles (plug an echo device,
 *     wait for its service, a verified first call, unplug; plug_latency.h)
 *     on big (the N-th instance) and on small (the 1st); median of each
 *     round.  Target: at N no more than 2x at 1.
 *   - odkd's memory per instance: VmRSS and VmHWM of big before the N-1
 *     plugs (after a warm-up cycle) and after them, divided by N-1.
 *     Target: at most 10 KiB.
 *   - stop: SIGTERM to big, and time until it has exited (it stops every
 *     driver first); checked: exit status 0 and none of its hosts left.
 *     Same for small, for reference.
 *
 * usage: scale BUILD_DIR [N]   (N = 1000) */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "plug_latency.h"

#define ROUNDS 5
#define PROBES 20

struct daemon {
    char state[64];
    pid_t pid;
    odk_client *c;
    struct lc_watch w;
};

static int start_odkd(const char *build, struct daemon *dm)
{
    snprintf(dm->state, sizeof dm->state, "/tmp/odk-scale.XXXXXX");
    if (!mkdtemp(dm->state))
        return -1;
    char odkd[4096], drivers[4096], log[128], sock[128];
    snprintf(odkd, sizeof odkd, "%s/bin/odkd", build);
    snprintf(drivers, sizeof drivers, "%s/tests/drivers", build);
    snprintf(log, sizeof log, "%s/odkd.log", dm->state);
    snprintf(sock, sizeof sock, "%s/odkd.sock", dm->state);
    dm->pid = fork();
    if (dm->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(odkd, odkd, "--state-dir", dm->state, "--dev-dir", dm->state, "--drivers", drivers,
              (char *)NULL);
        _exit(127);
    }
    if (dm->pid < 0)
        return -1;
    for (int i = 0; i < 600; i++) {
        struct stat st;
        if (stat(sock, &st) == 0 && odk_client_open(dm->state, &dm->c) == ODK_OK)
            return lc_watch_start(dm->c, &dm->w);
        usleep(10000);
    }
    fprintf(stderr, "scale: odkd did not start (log: %s)\n", log);
    return -1;
}

static long status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* One probe cycle on dm: plug to first answered call, then unplug. */
static int probe(struct daemon *dm, uint32_t tag, size_t i, uint64_t *ns)
{
    dm->w = (struct lc_watch){0};
    snprintf(dm->w.serial, sizeof dm->w.serial, "probe-%u-%zu", tag, i);
    uint64_t t0 = bench_now_ns(), dev = 0;
    if (lc_plug(dm->c, dm->w.serial, &dev) < 0)
        return -1;
    dm->w.dev = dev;
    if (lc_wait(dm->c, &dm->w, lc_ready, 20000) < 0 ||
        lc_first_call(dm->c, dev, tag, i, "scale") < 0) {
        fprintf(stderr, "scale: probe device %llu was not served\n", (unsigned long long)dev);
        return -1;
    }
    *ns = bench_now_ns() - t0;
    return lc_unplug(dm->c, dev);
}

static int probe_round(struct daemon *dm, uint32_t tag, double *median_ms)
{
    uint64_t v[PROBES];
    for (size_t i = 0; i < PROBES; i++)
        if (probe(dm, tag, i, &v[i]) < 0)
            return -1;
    *median_ms = lc_quantile_ms(v, PROBES, 0.5);
    return 0;
}

/* The pids of dm's driver hosts, from "list" (running ones); n of them. */
static pid_t *host_pids(struct daemon *dm, size_t *n)
{
    odk_value *reply = NULL;
    *n = 0;
    if (odk_client_request(dm->c, "list", NULL, &reply) < 0)
        return NULL;
    const odk_value *a = odk_dict_get(reply, "instances");
    size_t cnt = a ? odk_array_count(a) : 0;
    pid_t *p = calloc(cnt + 1, sizeof *p);
    for (size_t i = 0; p && i < cnt; i++) {
        const odk_value *e = odk_array_get(a, i);
        if (strcmp(odk_dict_get_string(e, "state", ""), "running") == 0)
            p[(*n)++] = (pid_t)odk_dict_get_int(e, "pid", 0);
    }
    odk_value_free(reply);
    return p;
}

/* Plugs n echo devices on dm, waits until odkd lists n running instances
 * (events would do, but odkd drops those a client is too slow to read
 * while it is busy plugging), and calls each. */
static int fill(struct daemon *dm, size_t n)
{
    uint64_t *devs = calloc(n, sizeof *devs);
    int ok = devs != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        char serial[32];
        snprintf(serial, sizeof serial, "fill-%zu", i);
        if (lc_plug(dm->c, serial, &devs[i]) < 0)
            ok = 0;
    }
    size_t running = 0;
    uint64_t end = bench_now_ns() + 300 * 1000000000ull;
    while (ok && running < n && bench_now_ns() < end) {
        free(host_pids(dm, &running));
        if (running < n)
            usleep(20000);
    }
    if (ok && running < n) {
        fprintf(stderr, "scale: only %zu of %zu instances running\n", running, n);
        ok = 0;
    }
    for (size_t i = 0; ok && i < n; i++)
        if (lc_first_call(dm->c, devs[i], 5, i, "scale") < 0)
            ok = 0;
    free(devs);
    return ok ? 0 : -1;
}

/* SIGTERM, and the time until odkd exited; checks its status and that
 * none of its hosts outlived it. */
static int stop(struct daemon *dm, double *ms)
{
    size_t n;
    pid_t *hosts = host_pids(dm, &n);
    odk_client_close(dm->c);
    dm->c = NULL;
    uint64_t t0 = bench_now_ns();
    kill(dm->pid, SIGTERM);
    int status;
    pid_t r = waitpid(dm->pid, &status, 0);
    *ms = (double)(bench_now_ns() - t0) / 1e6;
    int ok = r == dm->pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    dm->pid = 0;
    if (!ok)
        fprintf(stderr, "scale: odkd (%s) did not exit cleanly (status 0x%x)\n", dm->state,
                status);
    size_t left = 0;
    for (size_t i = 0; hosts && i < n; i++)
        if (kill(hosts[i], 0) == 0)
            left++;
    if (left) {
        fprintf(stderr, "scale: %zu driver hosts of %s outlived odkd\n", left, dm->state);
        ok = 0;
    }
    free(hosts);
    return ok ? 0 : -1;
}

static struct daemon big, small;

/* On a failure: no odkd of ours outlives the benchmark. */
static void kill_daemons(void)
{
    if (big.pid > 0)
        kill(big.pid, SIGKILL);
    if (small.pid > 0)
        kill(small.pid, SIGKILL);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: scale BUILD_DIR [N]\n");
        return 2;
    }
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    if (n < 2)
        n = 2;
    atexit(kill_daemons);
    if (start_odkd(argv[1], &big) < 0 || start_odkd(argv[1], &small) < 0)
        return 1;
    double warm;
    uint64_t ns;
    if (probe(&big, 90, 0, &ns) < 0 || probe(&small, 91, 0, &ns) < 0)
        return 1;
    long rss0 = status_kib(big.pid, "VmRSS"), hwm0 = status_kib(big.pid, "VmHWM");
    uint64_t t0 = bench_now_ns();
    if (fill(&big, n - 1) < 0)
        return 1;
    double fill_s = (double)(bench_now_ns() - t0) / 1e9;
    long rss1 = status_kib(big.pid, "VmRSS"), hwm1 = status_kib(big.pid, "VmHWM");
    (void)warm;
    double at_n[ROUNDS], at_1[ROUNDS];
    for (uint32_t r = 0; r < ROUNDS; r++)
        if (probe_round(&big, 100 + r, &at_n[r]) < 0 || probe_round(&small, 200 + r, &at_1[r]) < 0)
            return 1;
    size_t running;
    free(host_pids(&big, &running));
    if (running != n - 1) {
        fprintf(stderr, "scale: %zu instances running on big odkd, want %zu\n", running, n - 1);
        return 1;
    }
    printf("scale: %zu echo instances (each answered a verified call) plugged in %.1f s; "
           "probe: plug to first call, %d per round\n",
           n - 1, fill_s, PROBES);
    char name[96];
    snprintf(name, sizeof name, "scale plug to first call at %zu instances", n);
    /* "speedup" here is at-1 / at-N: 0.5 is the target's 2x. */
    bench_report(name, "at 1", "%.3f", "ms", BENCH_LOWER_IS_BETTER, "ratio", at_n, at_1, ROUNDS);
    printf("scale odkd memory per instance: VmRSS %.2f KiB (%ld -> %ld KiB), VmHWM %.2f KiB "
           "(%ld -> %ld KiB) over %zu instances\n",
           (double)(rss1 - rss0) / (double)(n - 1), rss0, rss1,
           (double)(hwm1 - hwm0) / (double)(n - 1), hwm0, hwm1, n - 1);
    double stop_big, stop_small;
    if (stop(&small, &stop_small) < 0 || stop(&big, &stop_big) < 0)
        return 1;
    printf("scale stop: odkd stopped %zu instances and exited in %.1f ms (with 0: %.1f ms)\n",
           n - 1, stop_big, stop_small);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", big.state, small.state);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
