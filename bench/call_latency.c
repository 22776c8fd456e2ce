/* SPDX-License-Identifier: MIT */
/* call_latency: median round trip of a user-client call with a 64-byte
 * structure in and out (the echo driver's selector 0), against two peers:
 *   socketpair  a raw 64-byte ping-pong between two processes (the floor
 *               for any call that sleeps between request and reply)
 *   dbus        a D-Bus method call (sd-bus) taking and returning a 64-byte
 *               array (ay), through a private dbus-daemon this program
 *               starts for the run and stops at the end
 *
 * usage: call_latency STATE_DIR NODE [ITERATIONS] */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "odk/client.h"

#include "echo_selectors.h"

#define BUS_NAME "org.odk.Bench"
#define BUS_PATH "/org/odk/Bench"
#define BUS_IFACE "org.odk.Bench"

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

/* ---- D-Bus peer ---------------------------------------------------------- */

struct dbus_peer {
    char dir[64]; /* holds bus.conf and the bus socket */
    pid_t daemon, server;
    sd_bus *bus; /* the client's connection */
};

/* A session-type bus that lets anyone own and call anything, listening only
 * inside dir: nothing outside this run can reach it. */
static int write_bus_config(const char *dir, char *conf, size_t len)
{
    snprintf(conf, len, "%s/bus.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
            " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
            "<busconfig>\n"
            "  <type>session</type>\n"
            "  <listen>unix:path=%s/bus</listen>\n"
            "  <auth>EXTERNAL</auth>\n"
            "  <policy context=\"default\">\n"
            "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
            "    <allow eavesdrop=\"true\"/>\n"
            "    <allow own=\"*\"/>\n"
            "  </policy>\n"
            "</busconfig>\n",
            dir);
    return fclose(f);
}

static int bus_connect(const char *address, sd_bus **out)
{
    sd_bus *b = NULL;
    int r = sd_bus_new(&b);
    if (r >= 0)
        r = sd_bus_set_address(b, address);
    if (r >= 0)
        r = sd_bus_set_bus_client(b, 1);
    if (r >= 0)
        r = sd_bus_start(b);
    if (r < 0) {
        sd_bus_unref(b);
        return r;
    }
    *out = b;
    return 0;
}

static int dbus_echo(sd_bus_message *m, void *userdata, sd_bus_error *err)
{
    const void *p;
    size_t n;
    sd_bus_message *reply = NULL;
    int r = sd_bus_message_read_array(m, 'y', &p, &n);
    if (r >= 0)
        r = sd_bus_message_new_method_return(m, &reply);
    if (r >= 0)
        r = sd_bus_message_append_array(reply, 'y', p, n);
    if (r >= 0)
        r = sd_bus_send(NULL, reply, NULL);
    sd_bus_message_unref(reply);
    return r;
}

static const sd_bus_vtable dbus_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Echo", "ay", "ay", dbus_echo, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

/* The server process: owns BUS_NAME, exports Echo, and serves until the bus
 * goes away.  Writes one byte to ready_fd once callers can reach it. */
static void dbus_server(const char *address, int ready_fd)
{
    sd_bus *b;
    if (bus_connect(address, &b) < 0 ||
        sd_bus_add_object_vtable(b, NULL, BUS_PATH, BUS_IFACE, dbus_vtable, NULL) < 0 ||
        sd_bus_request_name(b, BUS_NAME, 0) < 0)
        _exit(1);
    if (write(ready_fd, "1", 1) != 1)
        _exit(1);
    close(ready_fd);
    for (;;) {
        int r = sd_bus_process(b, NULL);
        if (r < 0)
            _exit(0);
        if (r == 0 && sd_bus_wait(b, UINT64_MAX) < 0)
            _exit(0);
    }
}

static void dbus_stop(struct dbus_peer *d)
{
    if (d->bus)
        sd_bus_flush_close_unref(d->bus);
    d->bus = NULL;
    if (d->server > 0) {
        kill(d->server, SIGTERM);
        waitpid(d->server, NULL, 0);
    }
    if (d->daemon > 0) {
        kill(d->daemon, SIGTERM);
        waitpid(d->daemon, NULL, 0);
    }
    d->server = d->daemon = 0;
    if (d->dir[0]) {
        char path[128];
        snprintf(path, sizeof path, "%s/bus.conf", d->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/bus", d->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/daemon.log", d->dir);
        unlink(path);
        rmdir(d->dir);
        d->dir[0] = 0;
    }
}

/* Starts dbus-daemon with its own config, the Echo server, and connects the
 * client.  0, or -1 with a message (and everything started stopped). */
static int dbus_start(struct dbus_peer *d)
{
    *d = (struct dbus_peer){0};
    char conf[128], cfg_arg[160], fd_arg[32], address[512];
    int addr_pipe[2], ready_pipe[2];
    snprintf(d->dir, sizeof d->dir, "/tmp/odk-dbus-bench.XXXXXX");
    if (!mkdtemp(d->dir)) {
        d->dir[0] = 0;
        goto fail;
    }
    if (write_bus_config(d->dir, conf, sizeof conf) < 0 || pipe(addr_pipe) < 0)
        goto fail;
    snprintf(cfg_arg, sizeof cfg_arg, "--config-file=%s", conf);
    snprintf(fd_arg, sizeof fd_arg, "--print-address=%d", addr_pipe[1]);
    d->daemon = fork();
    if (d->daemon == 0) {
        /* Its complaints (e.g. that it may not raise the fd limit) go to
         * a log that is shown only if the peer cannot start. */
        char log[128];
        snprintf(log, sizeof log, "%s/daemon.log", d->dir);
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        close(addr_pipe[0]);
        execlp("dbus-daemon", "dbus-daemon", "--nofork", "--nopidfile", cfg_arg, fd_arg,
               (char *)NULL);
        _exit(127);
    }
    close(addr_pipe[1]);
    size_t got = 0;
    ssize_t r;
    while (got < sizeof address - 1 &&
           (r = read(addr_pipe[0], address + got, sizeof address - 1 - got)) > 0) {
        got += (size_t)r;
        if (memchr(address, '\n', got))
            break;
    }
    close(addr_pipe[0]);
    address[got] = 0;
    char *nl = strchr(address, '\n');
    if (d->daemon < 0 || !nl)
        goto fail;
    *nl = 0;

    if (pipe(ready_pipe) < 0)
        goto fail;
    d->server = fork();
    if (d->server == 0) {
        close(ready_pipe[0]);
        dbus_server(address, ready_pipe[1]);
    }
    close(ready_pipe[1]);
    char c;
    r = read(ready_pipe[0], &c, 1);
    close(ready_pipe[0]);
    if (d->server < 0 || r != 1 || bus_connect(address, &d->bus) < 0)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "call_latency: cannot start the D-Bus peer (%s)\n", strerror(errno));
    if (d->dir[0]) {
        char log[128], line[512];
        snprintf(log, sizeof log, "%s/daemon.log", d->dir);
        FILE *f = fopen(log, "r");
        while (f && fgets(line, sizeof line, f))
            fputs(line, stderr);
        if (f)
            fclose(f);
    }
    dbus_stop(d);
    return -1;
}

static double peer_dbus(struct dbus_peer *d, size_t iters, uint64_t *samples)
{
    uint8_t in[64];
    memset(in, 0xcd, sizeof in);
    for (size_t i = 0; i < iters; i++) {
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error err = SD_BUS_ERROR_NULL;
        const void *p = NULL;
        size_t n = 0;
        uint64_t t0 = now_ns();
        int r = sd_bus_message_new_method_call(d->bus, &m, BUS_NAME, BUS_PATH, BUS_IFACE, "Echo");
        if (r >= 0)
            r = sd_bus_message_append_array(m, 'y', in, sizeof in);
        if (r >= 0)
            r = sd_bus_call(d->bus, m, 0, &err, &reply);
        if (r >= 0)
            r = sd_bus_message_read_array(reply, 'y', &p, &n);
        samples[i] = now_ns() - t0;
        int same = r >= 0 && n == sizeof in && memcmp(p, in, sizeof in) == 0;
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        if (!same) {
            fprintf(stderr, "call_latency: D-Bus call failed: %s\n",
                    r < 0 ? (err.message ? err.message : strerror(-r)) : "wrong reply");
            sd_bus_error_free(&err);
            return -1;
        }
        sd_bus_error_free(&err);
    }
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
        int st =
            odk_connection_call(conn, ECHO_ECHO, NULL, 0, in, sizeof in, NULL, NULL, out, &out_len);
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
    struct dbus_peer bus;
    if (!samples || dbus_start(&bus) < 0)
        return 1;
    /* Interleave rounds so drift in machine load hits all sides alike;
     * report the median round of each. */
    enum { ROUNDS = 3 };
    double o[ROUNDS], p[ROUNDS], db[ROUNDS];
    int ok = 1;
    for (int r = 0; r < ROUNDS && ok; r++) {
        o[r] = ours(argv[1], strtoull(argv[2], NULL, 0), iters, samples);
        p[r] = peer_socketpair(iters, samples);
        db[r] = peer_dbus(&bus, iters, samples);
        ok = o[r] >= 0 && p[r] >= 0 && db[r] >= 0;
    }
    dbus_stop(&bus);
    free(samples);
    if (!ok)
        return 1;
    qsort(o, ROUNDS, sizeof(double), cmp_double);
    qsort(p, ROUNDS, sizeof(double), cmp_double);
    qsort(db, ROUNDS, sizeof(double), cmp_double);
    double mo = o[ROUNDS / 2], mp = p[ROUNDS / 2], mdb = db[ROUNDS / 2];
    printf("call_latency vs socketpair: ours=%.2f us peer=%.2f us speedup=%.2f\n", mo, mp, mp / mo);
    printf("call_latency vs dbus: ours=%.2f us peer=%.2f us speedup=%.2f\n", mo, mdb, mdb / mo);
    return 0;
}
