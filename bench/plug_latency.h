/* SPDX-License-Identifier: MIT */
/* What the lifecycle benchmarks (plug_latency, restart_latency, scale)
 * share: plugging and unplugging an echo device through odkd's wire
 * requests, waiting for its events, a first verified echo call, and the
 * process-per-driver peer (fork + exec of this program, which dlopens the
 * echo driver and answers one round trip). */
#ifndef ODK_BENCH_PLUG_LATENCY_H
#define ODK_BENCH_PLUG_LATENCY_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "odk/client.h"
#include "odk/driver.h"
#include "odk/status.h"
#include "odk/value.h"

#include "bench.h"
#include "echo_selectors.h"

#define LC_MSG 64

/* ODK_TRACE=FILE: the benchmark's steps join odkd's and the hosts' lines
 * (src/common/trace.h: "MICROSECONDS PID WHAT", CLOCK_MONOTONIC). */
static int lc_trace_fd = -2;

__attribute__((format(printf, 1, 2))) static void lc_trace(const char *fmt, ...)
{
    if (lc_trace_fd == -2) {
        const char *path = getenv("ODK_TRACE");
        lc_trace_fd = path && *path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
                                    : -1;
    }
    if (lc_trace_fd < 0)
        return;
    char line[256];
    int n = snprintf(line, sizeof line, "%llu %d ", (unsigned long long)(bench_now_ns() / 1000),
                     (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(lc_trace_fd, line, (size_t)n) < 0) {
        /* a lost line is not reported */
    }
}

/* What the watch saw of the device being timed. */
struct lc_watch {
    uint64_t dev;          /* the device node (0: not plugged yet) */
    char serial[64];       /* its "serial", which the echo service copies */
    uint64_t started_ns;   /* "started" of the driver on dev */
    uint64_t registered_ns; /* "registered" of an EchoDriver node with serial */
    uint64_t service;      /* that node */
};

static void lc_on_event(void *ctx, const char *event, const odk_value *node)
{
    struct lc_watch *w = ctx;
    uint64_t id = (uint64_t)odk_dict_get_int(node, "id", -1);
    uint64_t parent = (uint64_t)odk_dict_get_int(node, "parent", -1);
    /* "started" names the driver's node (its provider: the device). */
    if (strcmp(event, "started") == 0 && w->dev && parent == w->dev && !w->started_ns) {
        w->started_ns = bench_now_ns();
        lc_trace("app event started");
    }
    if (strcmp(event, "registered") == 0 && !w->registered_ns &&
        strcmp(odk_dict_get_string(node, "class", ""), "EchoDriver") == 0) {
        const odk_value *p = odk_dict_get(node, "properties");
        if (p && strcmp(odk_dict_get_string(p, "EchoSerial", ""), w->serial) == 0) {
            w->registered_ns = bench_now_ns();
            w->service = id;
            lc_trace("app event registered");
        }
    }
}

/* Watches every node of c (events go to w). */
static inline int lc_watch_start(odk_client *c, struct lc_watch *w)
{
    odk_value *m = odk_value_new_dict();
    if (!m)
        return ODK_E_NOMEM;
    uint32_t id;
    int st = odk_watch_services(c, m, lc_on_event, w, &id);
    odk_value_free(m);
    return st;
}

/* Plugs an echo device with this serial; *dev is its node. */
static inline int lc_plug(odk_client *c, const char *serial, uint64_t *dev)
{
    odk_value *props = odk_value_new_dict(), *device = odk_value_new_dict(),
              *args = odk_value_new_dict();
    if (!props || !device || !args) {
        odk_value_free(props);
        odk_value_free(device);
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    odk_dict_set_string(props, "model", "echo");
    odk_dict_set_string(props, "serial", serial);
    odk_dict_set(device, "properties", props);
    odk_dict_set(args, "device", device);
    odk_value *reply = NULL;
    lc_trace("app plug");
    int st = odk_client_request(c, "sim-plug", args, &reply);
    lc_trace("app plugged");
    if (st == ODK_OK)
        *dev = (uint64_t)odk_dict_get_int(reply, "node", 0);
    else
        fprintf(stderr, "sim-plug: %s: %s\n", odk_strerror(st),
                reply ? odk_dict_get_string(reply, "error", "") : "");
    odk_value_free(reply);
    return st;
}

/* Unplugs node dev; returns when its drivers have stopped. */
static inline int lc_unplug(odk_client *c, uint64_t dev)
{
    odk_value *args = odk_value_new_dict();
    if (!args)
        return ODK_E_NOMEM;
    odk_dict_set_int(args, "node", (int64_t)dev);
    lc_trace("app unplug");
    int st = odk_client_request(c, "sim-unplug", args, NULL);
    lc_trace("app unplugged");
    if (st < 0)
        fprintf(stderr, "sim-unplug %llu: %s\n", (unsigned long long)dev, odk_strerror(st));
    return st;
}

/* Delivers events until cond(w) holds; ODK_E_TIMEOUT after timeout_ms. */
static inline int lc_wait(odk_client *c, struct lc_watch *w, bool (*cond)(const struct lc_watch *),
                          int timeout_ms)
{
    uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (!cond(w)) {
        if (bench_now_ns() > end)
            return ODK_E_TIMEOUT;
        int st = odk_client_dispatch(c, 100);
        if (st < 0)
            return st;
    }
    return ODK_OK;
}

static inline bool lc_ready(const struct lc_watch *w)
{
    return w->started_ns && w->registered_ns;
}

/* The input of call (tag, i): different for every call, no zero byte. */
static inline void lc_stamp(uint8_t *in, uint64_t tag, uint64_t i)
{
    for (int k = 0; k < LC_MSG; k++)
        in[k] = (uint8_t)(((tag * 131 + i) * 2654435761u >> (k % 24)) + (uint64_t)k) | 1;
}

/* Opens node, echoes one stamped message and checks the reply. */
static inline int lc_first_call(odk_client *c, uint64_t node, uint64_t tag, uint64_t i,
                                const char *who)
{
    odk_connection *conn;
    lc_trace("app open");
    int st = odk_connection_open(c, node, 0, &conn);
    lc_trace("app opened");
    if (st < 0) {
        fprintf(stderr, "%s: open of node %llu: %s\n", who, (unsigned long long)node,
                odk_strerror(st));
        return st;
    }
    uint8_t in[LC_MSG], out[LC_MSG];
    lc_stamp(in, tag, i);
    for (int k = 0; k < LC_MSG; k++)
        out[k] = (uint8_t)~in[k];
    size_t out_len = sizeof out;
    st = odk_connection_call(conn, ECHO_ECHO, NULL, 0, in, sizeof in, NULL, NULL, out, &out_len);
    lc_trace("app answered");
    odk_connection_close(conn);
    if (st < 0) {
        fprintf(stderr, "%s: echo call on node %llu: %s\n", who, (unsigned long long)node,
                odk_strerror(st));
        return st;
    }
    if (out_len != LC_MSG || memcmp(in, out, LC_MSG) != 0) {
        fprintf(stderr, "%s: the echo on node %llu did not return this call's input\n", who,
                (unsigned long long)node);
        return ODK_E_IO;
    }
    return ODK_OK;
}

/* ---- the process-per-driver peer --------------------------------------- */

/* The driver's constructor registers its class with the host's runtime;
 * in the peer this program stands in for it (built with export_dynamic),
 * so the dlopen runs the driver's own initialisation. */
static const odk_driver_class *lc_peer_class;

int odk_driver_class_register(const odk_driver_class *cls, size_t class_size,
                              uint32_t api_version)
{
    (void)api_version;
    if (!cls || class_size == 0)
        return ODK_E_INVALID;
    lc_peer_class = cls;
    return ODK_OK;
}

/* In the exec'd child (argv: SELF --peer-child SO): dlopen the driver, say
 * "ready" (one byte), echo one message, exit. */
static inline int lc_peer_child(const char *so)
{
    void *h = dlopen(so, RTLD_LAZY | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "peer: dlopen %s: %s\n", so, dlerror());
        return 1;
    }
    if (!lc_peer_class) {
        fprintf(stderr, "peer: %s registered no driver class\n", so);
        return 1;
    }
    char r = 'R';
    if (write(3, &r, 1) != 1)
        return 1;
    uint8_t buf[LC_MSG];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = read(3, buf + got, sizeof buf - got);
        if (n <= 0)
            return 1;
        got += (size_t)n;
    }
    return write(3, buf, sizeof buf) == (ssize_t)sizeof buf ? 0 : 1;
}

/* One peer cycle: fork + exec self as the child, wait for "ready", one
 * verified round trip, reap.  Times from the fork, in ns. */
static inline int lc_peer_cycle(const char *self, const char *so, uint64_t tag, uint64_t i,
                                uint64_t *ready_ns, uint64_t *answered_ns)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    uint64_t t0 = bench_now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(sv[1], 3);
        execl(self, self, "--peer-child", so, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    int ok = pid > 0;
    char r = 0;
    if (ok && (read(sv[0], &r, 1) != 1 || r != 'R'))
        ok = 0;
    *ready_ns = bench_now_ns() - t0;
    uint8_t in[LC_MSG], out[LC_MSG];
    lc_stamp(in, tag, i);
    memset(out, 0, sizeof out);
    if (ok && write(sv[0], in, sizeof in) != (ssize_t)sizeof in)
        ok = 0;
    size_t got = 0;
    while (ok && got < sizeof out) {
        ssize_t n = read(sv[0], out + got, sizeof out - got);
        if (n <= 0)
            ok = 0;
        else
            got += (size_t)n;
    }
    *answered_ns = bench_now_ns() - t0;
    close(sv[0]);
    int status = 0;
    if (pid > 0 && (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
                    WEXITSTATUS(status) != 0))
        ok = 0;
    if (ok && memcmp(in, out, sizeof in) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "peer: cycle %llu failed (child status 0x%x)\n", (unsigned long long)i,
                status);
    return ok ? 0 : -1;
}

static inline int lc_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of v[0..n), in ms; sorts v. */
static inline double lc_quantile_ms(uint64_t *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, lc_cmp_u64);
    size_t k = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[k] / 1e6;
}

#endif
