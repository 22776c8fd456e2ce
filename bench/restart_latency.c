/* SPDX-License-Identifier: MIT */
/* restart_latency: from kill -9 of a driver host to its service answering
 * again, without the deliberate backoff: run odkd with --restart-backoff 0
 * (bench/run does), so the first restart is immediate and every number is
 * noticing the death, reaping, respawning, starting and registering.
 *
 * A cycle of ours: read the echo device's host pid from odkd's "list";
 * kill -9 it; wait for the "registered" event of the new EchoDriver service
 * (this device's serial); open the device and echo one stamped message.
 * Verified: the new host has another pid, the instance's restarts counter
 * moved by one, the echo returns this cycle's bytes.  odkd marks an
 * instance failed after 5 crashes within 60 s, so each device is killed
 * KILLS_PER_DEVICE times, then unplugged and a fresh one plugged (outside
 * the timed part).
 *
 * Peer: a supervisor restarting a process-per-driver child: kill -9 of a
 * running child (fork + exec of this program, echo.so dlopened), reap it,
 * fork + exec a new one, one verified round trip (plug_latency.h).
 *
 * usage: restart_latency STATE_DIR ECHO_SO [KILLS]   (per round, 40) */
#include <signal.h>
#include <stdlib.h>

#include "plug_latency.h"

#define ROUNDS 5
#define KILLS_PER_DEVICE 4

struct host {
    pid_t pid;
    int64_t restarts;
    const char *state;
};

/* The host of the instance on device dev, from odkd's "list". */
static int host_of(odk_client *c, uint64_t dev, struct host *h, odk_value **keep)
{
    odk_value *reply = NULL;
    int st = odk_client_request(c, "list", NULL, &reply);
    if (st < 0)
        return st;
    const odk_value *a = odk_dict_get(reply, "instances");
    for (size_t i = 0; a && i < odk_array_count(a); i++) {
        const odk_value *e = odk_array_get(a, i);
        if ((uint64_t)odk_dict_get_int(e, "provider", -1) == dev) {
            h->pid = (pid_t)odk_dict_get_int(e, "pid", 0);
            h->restarts = odk_dict_get_int(e, "restarts", -1);
            h->state = odk_dict_get_string(e, "state", "");
            *keep = reply;
            return ODK_OK;
        }
    }
    odk_value_free(reply);
    return ODK_E_NOT_FOUND;
}

static int ours(odk_client *c, struct lc_watch *w, uint32_t round, size_t kills,
                double *median_ms, double *p99_ms)
{
    uint64_t *lat = calloc(kills, 8);
    int ok = lat != NULL;
    uint64_t dev = 0;
    for (size_t i = 0; ok && i < kills; i++) {
        if (i % KILLS_PER_DEVICE == 0) {
            if (dev && lc_unplug(c, dev) < 0)
                ok = 0;
            *w = (struct lc_watch){0};
            snprintf(w->serial, sizeof w->serial, "restart-%d-%u-%zu", (int)getpid(), round, i);
            if (!ok || lc_plug(c, w->serial, &dev) < 0 || (w->dev = dev, 0) ||
                lc_wait(c, w, lc_ready, 10000) < 0) {
                fprintf(stderr, "restart_latency: plugging a fresh echo device failed\n");
                ok = 0;
                break;
            }
        }
        struct host before, after;
        odk_value *k1 = NULL, *k2 = NULL;
        if (host_of(c, dev, &before, &k1) < 0 || strcmp(before.state, "running") != 0 ||
            before.pid <= 0) {
            fprintf(stderr, "restart_latency: device %llu has no running host\n",
                    (unsigned long long)dev);
            odk_value_free(k1);
            ok = 0;
            break;
        }
        char serial[64];
        memcpy(serial, w->serial, sizeof serial);
        *w = (struct lc_watch){.dev = dev};
        memcpy(w->serial, serial, sizeof serial);
        uint64_t t0 = bench_now_ns();
        kill(before.pid, SIGKILL);
        int s = lc_wait(c, w, lc_ready, 10000);
        if (s == ODK_OK)
            s = lc_first_call(c, dev, 7000 + round, i, "restart_latency");
        lat[i] = bench_now_ns() - t0;
        if (s < 0) {
            fprintf(stderr, "restart_latency: device %llu never answered after kill -9 of %d\n",
                    (unsigned long long)dev, (int)before.pid);
            ok = 0;
        } else if (host_of(c, dev, &after, &k2) < 0 || after.pid == before.pid ||
                   after.restarts != before.restarts + 1) {
            fprintf(stderr,
                    "restart_latency: device %llu: after kill -9 of %d the host is %d with "
                    "restarts %lld (was %lld)\n",
                    (unsigned long long)dev, (int)before.pid, (int)after.pid,
                    (long long)after.restarts, (long long)before.restarts);
            ok = 0;
        }
        odk_value_free(k1);
        odk_value_free(k2);
    }
    if (dev && lc_unplug(c, dev) < 0)
        ok = 0;
    if (ok) {
        *p99_ms = lc_quantile_ms(lat, kills, 0.99);
        *median_ms = lc_quantile_ms(lat, kills, 0.5);
    }
    free(lat);
    return ok ? 0 : -1;
}

/* A running peer child (ready, waiting for its round trip). */
static pid_t peer_spawn(const char *self, const char *so, int *fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(sv[1], 3);
        execl(self, self, "--peer-child", so, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    char r = 0;
    if (pid < 0 || read(sv[0], &r, 1) != 1 || r != 'R') {
        close(sv[0]);
        return -1;
    }
    *fd = sv[0];
    return pid;
}

static int peer(const char *self, const char *so, uint32_t round, size_t kills,
                double *median_ms, double *p99_ms)
{
    uint64_t *lat = calloc(kills, 8);
    int ok = lat != NULL, fd = -1;
    pid_t pid = ok ? peer_spawn(self, so, &fd) : -1;
    ok = ok && pid > 0;
    for (size_t i = 0; ok && i < kills; i++) {
        uint64_t t0 = bench_now_ns(), ready, answered;
        kill(pid, SIGKILL);
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status))
            ok = 0;
        close(fd);
        if (ok && lc_peer_cycle(self, so, 9000 + round, i, &ready, &answered) < 0)
            ok = 0;
        lat[i] = bench_now_ns() - t0;
        /* The next victim, outside the timed part. */
        if (ok && (pid = peer_spawn(self, so, &fd)) <= 0)
            ok = 0;
    }
    if (pid > 0 && ok) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(fd);
    }
    if (ok) {
        *p99_ms = lc_quantile_ms(lat, kills, 0.99);
        *median_ms = lc_quantile_ms(lat, kills, 0.5);
    } else {
        fprintf(stderr, "restart_latency: the peer failed\n");
    }
    free(lat);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--peer-child") == 0)
        return lc_peer_child(argv[2]);
    if (argc < 3) {
        fprintf(stderr, "usage: restart_latency STATE_DIR ECHO_SO [KILLS]\n");
        return 2;
    }
    size_t kills = argc > 3 ? strtoul(argv[3], NULL, 10) : 40;
    if (kills < 2)
        kills = 2;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = 0;
    odk_client *c;
    if (odk_client_open(argv[1], &c) < 0) {
        fprintf(stderr, "restart_latency: no odkd at %s\n", argv[1]);
        return 1;
    }
    static struct lc_watch w;
    if (lc_watch_start(c, &w) < 0)
        return 1;
    double om[ROUNDS], op[ROUNDS], pm[ROUNDS], pp[ROUNDS], warm1, warm2;
    if (ours(c, &w, 99, 2, &warm1, &warm2) < 0 || peer(self, argv[2], 99, 2, &warm1, &warm2) < 0)
        return 1;
    for (uint32_t r = 0; r < ROUNDS; r++)
        if (ours(c, &w, r, kills, &om[r], &op[r]) < 0 ||
            peer(self, argv[2], r, kills, &pm[r], &pp[r]) < 0)
            return 1;
    printf("restart_latency: %zu kill -9 per round, odkd's backoff at 0 (--restart-backoff 0); "
           "peer: kill -9, reap, fork+exec+dlopen+1 round trip\n",
           kills);
    bench_report("restart_latency kill to answer (median)", "peer", "%.3f", "ms",
                 BENCH_LOWER_IS_BETTER, "speedup", om, pm, ROUNDS);
    bench_report("restart_latency kill to answer (p99)", "peer", "%.3f", "ms",
                 BENCH_LOWER_IS_BETTER, "speedup", op, pp, ROUNDS);
    odk_client_close(c);
    return 0;
}
