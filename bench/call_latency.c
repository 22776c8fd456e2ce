/* SPDX-License-Identifier: MIT */
/* call_latency: round trip and CPU time of a user-client call with a
 * 64-byte structure in and out (the echo driver's selector 0), against
 * three peers doing the same echo between two processes:
 *   spin-shm    both processes spin on a flag in shared memory (the
 *               physical limit: no sleep, no system call; costs two CPUs)
 *   socketpair  a raw 64-byte ping-pong (the floor for any call that
 *               sleeps between request and reply)
 *   dbus        a D-Bus method call (sd-bus) taking and returning a 64-byte
 *               array (ay), through a private dbus-daemon this program
 *               starts for the run and stops at the end
 *
 * Rounds alternate ours and the peers (bench.h); each round reports the
 * median call of ITERATIONS, and the CPU time per call of both sides:
 *   app      this process (getrusage) over the calls
 *   serving  ours: the driver hosts HOST_PIDS (the run time of their
 *            threads, /proc/PID/task/TID/schedstat); spin-shm and
 *            socketpair: the child, measured by itself (getrusage) from its
 *            first request to its last; dbus: the server and dbus-daemon
 *            (/proc/PID/stat)
 * ours spins a while for a reply before it sleeps; the CPU lines show what
 * that costs next to the peers.
 *
 * Verification: every call carries its own 64 bytes (a stamp of side,
 * round and call number), the reply buffer is poisoned with the complement
 * of that input before the call, and the reply is compared with the input
 * after the call, outside the timed region.  A path that answers without
 * echoing (or echoes an earlier call) fails, naming the side and call, and
 * no number is printed.
 *
 * usage: call_latency STATE_DIR NODE HOST_PIDS [ITERATIONS]
 *   HOST_PIDS: the pids of the driver hosts serving NODE, comma-separated */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "odk/client.h"

#include "bench.h"
#include "echo_selectors.h"

#define BUS_NAME "org.odk.Bench"
#define BUS_PATH "/org/odk/Bench"
#define BUS_IFACE "org.odk.Bench"

#define MSG 64         /* bytes in and out of every call */
#define ROUNDS 5       /* alternating rounds of every side */
#define SPIN_YIELD 256 /* spin-shm polls this many times, then yields at each poll */

enum side { OURS, SPIN, SOCKETPAIR, DBUS, N_SIDES };
static const char *const side_name[N_SIDES] = {"ours", "spin-shm", "socketpair", "dbus"};

/* One round of one side: per call. */
struct result {
    double latency_us; /* median */
    double app_cpu_us, serving_cpu_us;
};

static double median_us(uint64_t *v, size_t n)
{
    return bench_quantile_us(v, n, 0.5);
}

/* Every call carries its own stamp (bench.h). */
static void stamp(uint8_t *in, enum side side, uint32_t round, uint64_t i)
{
    bench_stamp(in, MSG, side, round, i);
}

static void poison(uint8_t *out, const uint8_t *in)
{
    bench_poison(out, in, MSG);
}

static int check_echo(enum side side, uint64_t i, const uint8_t *in, const void *out,
                      size_t out_len)
{
    return bench_check_echo("call_latency", side_name[side], i, in, MSG, out, out_len);
}

/* ---- ours ---------------------------------------------------------------- */

static int ours(const char *state, uint64_t node, const struct bench_pids *h, uint32_t round,
                size_t iters, uint64_t *samples, struct result *res)
{
    odk_client *c;
    odk_connection *conn;
    if (odk_client_open(state, &c) < 0 || odk_connection_open(c, node, 0, &conn) < 0) {
        fprintf(stderr, "call_latency: cannot open node %llu\n", (unsigned long long)node);
        return -1;
    }
    uint8_t in[MSG], out[MSG];
    int ok = 0;
    uint64_t app0 = bench_self_cpu_ns(), app1;
    int64_t host0 = bench_pids_run_ns("call_latency", h), host1;
    for (size_t i = 0; host0 >= 0 && i < iters; i++) {
        stamp(in, OURS, round, i);
        poison(out, in);
        size_t out_len = sizeof out;
        uint64_t t0 = bench_now_ns();
        int st =
            odk_connection_call(conn, ECHO_ECHO, NULL, 0, in, sizeof in, NULL, NULL, out, &out_len);
        samples[i] = bench_now_ns() - t0;
        if (st < 0) {
            fprintf(stderr, "call_latency: ours: call %zu failed: %s\n", i, odk_strerror(st));
            goto out;
        }
        if (check_echo(OURS, i, in, out, out_len) < 0)
            goto out;
    }
    app1 = bench_self_cpu_ns();
    host1 = bench_pids_run_ns("call_latency", h);
    if (host0 < 0 || host1 < 0)
        goto out;
    res->latency_us = median_us(samples, iters);
    res->app_cpu_us = (double)(app1 - app0) / 1e3 / (double)iters;
    res->serving_cpu_us = (double)(host1 - host0) / 1e3 / (double)iters;
    ok = 1;
out:
    odk_connection_close(conn);
    odk_client_close(c);
    return ok ? 0 : -1;
}

/* ---- spin-shm peer ------------------------------------------------------- */

/* One page shared by the caller and the child; flags on their own lines. */
struct spin_page {
    _Alignas(64) _Atomic uint64_t request; /* number of the last call posted */
    _Alignas(64) _Atomic uint64_t reply;   /* number of the last call answered */
    _Alignas(64) _Atomic int stop;
    _Alignas(64) uint8_t in[MSG];
    _Alignas(64) uint8_t out[MSG];
    uint64_t child_cpu_ns; /* written by the child before it exits */
};

/* A partner on another CPU answers within a few polls.  Past SPIN_YIELD
 * polls the partner is likely waiting for this very CPU (2 CPUs, shared
 * with other work): yield it at every poll from then on, still never
 * sleeping. */
static inline void spin_pause(unsigned *spins)
{
    if (++*spins < SPIN_YIELD)
        __builtin_ia32_pause();
    else
        sched_yield();
}

static void spin_child(struct spin_page *p)
{
    uint64_t seen = 0, cpu0 = 0;
    for (;;) {
        uint64_t r;
        unsigned spins = 0;
        while ((r = atomic_load_explicit(&p->request, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
                p->child_cpu_ns = bench_self_cpu_ns() - cpu0;
                _exit(0);
            }
            spin_pause(&spins);
        }
        if (seen == 0)
            cpu0 = bench_self_cpu_ns();
        memcpy(p->out, p->in, MSG);
        seen = r;
        atomic_store_explicit(&p->reply, r, memory_order_release);
    }
}

static int peer_spin(uint32_t round, size_t iters, uint64_t *samples, struct result *res)
{
    struct spin_page *p =
        mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    pid_t pid = fork();
    if (pid == 0)
        spin_child(p);
    if (pid < 0) {
        munmap(p, sizeof *p);
        return -1;
    }
    uint8_t in[MSG], out[MSG];
    int ok = 1;
    uint64_t app0 = bench_self_cpu_ns();
    for (size_t i = 0; i < iters; i++) {
        stamp(in, SPIN, round, i);
        poison(p->out, in);
        unsigned spins = 0;
        uint64_t t0 = bench_now_ns();
        memcpy(p->in, in, MSG);
        atomic_store_explicit(&p->request, i + 1, memory_order_release);
        while (atomic_load_explicit(&p->reply, memory_order_acquire) != i + 1)
            spin_pause(&spins);
        memcpy(out, p->out, MSG);
        samples[i] = bench_now_ns() - t0;
        if (check_echo(SPIN, i, in, out, MSG) < 0) {
            ok = 0;
            break;
        }
    }
    uint64_t app1 = bench_self_cpu_ns();
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "call_latency: spin-shm: the child did not exit cleanly\n");
        ok = 0;
    }
    res->latency_us = median_us(samples, iters);
    res->app_cpu_us = (double)(app1 - app0) / 1e3 / (double)iters;
    res->serving_cpu_us = (double)p->child_cpu_ns / 1e3 / (double)iters;
    munmap(p, sizeof *p);
    return ok ? 0 : -1;
}

/* ---- socketpair peer ----------------------------------------------------- */

static int peer_socketpair(uint32_t round, size_t iters, uint64_t *samples, struct result *res)
{
    int sv[2];
    uint64_t *child_cpu =
        mmap(NULL, sizeof *child_cpu, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (child_cpu == MAP_FAILED)
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        munmap(child_cpu, sizeof *child_cpu);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t buf[MSG];
        uint64_t cpu0 = 0;
        close(sv[0]);
        for (size_t n = 0;; n++) {
            if (bench_read_full(sv[1], buf, sizeof buf) < 0) {
                *child_cpu = bench_self_cpu_ns() - cpu0;
                _exit(0);
            }
            if (n == 0)
                cpu0 = bench_self_cpu_ns();
            if (write(sv[1], buf, sizeof buf) != sizeof buf)
                _exit(1);
        }
    }
    close(sv[1]);
    uint8_t in[MSG], out[MSG];
    int ok = 1;
    uint64_t app0 = bench_self_cpu_ns();
    for (size_t i = 0; ok && i < iters; i++) {
        stamp(in, SOCKETPAIR, round, i);
        poison(out, in);
        uint64_t t0 = bench_now_ns();
        if (write(sv[0], in, sizeof in) != sizeof in || bench_read_full(sv[0], out, sizeof out) < 0) {
            fprintf(stderr, "call_latency: socketpair: call %zu: %s\n", i, strerror(errno));
            ok = 0;
            break;
        }
        samples[i] = bench_now_ns() - t0;
        ok = check_echo(SOCKETPAIR, i, in, out, MSG) == 0;
    }
    uint64_t app1 = bench_self_cpu_ns();
    close(sv[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "call_latency: socketpair: the child did not exit cleanly\n");
        ok = 0;
    }
    res->latency_us = median_us(samples, iters);
    res->app_cpu_us = (double)(app1 - app0) / 1e3 / (double)iters;
    res->serving_cpu_us = (double)*child_cpu / 1e3 / (double)iters;
    munmap(child_cpu, sizeof *child_cpu);
    return ok ? 0 : -1;
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

static int peer_dbus(struct dbus_peer *d, uint32_t round, size_t iters, uint64_t *samples,
                     struct result *res)
{
    uint8_t in[MSG];
    uint64_t app0 = bench_self_cpu_ns();
    int64_t srv0 = bench_proc_cpu_ns(d->server), dmn0 = bench_proc_cpu_ns(d->daemon);
    for (size_t i = 0; i < iters; i++) {
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error err = SD_BUS_ERROR_NULL;
        const void *p = NULL;
        size_t n = 0;
        stamp(in, DBUS, round, i);
        uint64_t t0 = bench_now_ns();
        int r = sd_bus_message_new_method_call(d->bus, &m, BUS_NAME, BUS_PATH, BUS_IFACE, "Echo");
        if (r >= 0)
            r = sd_bus_message_append_array(m, 'y', in, sizeof in);
        if (r >= 0)
            r = sd_bus_call(d->bus, m, 0, &err, &reply);
        if (r >= 0)
            r = sd_bus_message_read_array(reply, 'y', &p, &n);
        samples[i] = bench_now_ns() - t0;
        if (r < 0)
            fprintf(stderr, "call_latency: dbus: call %zu failed: %s\n", i,
                    err.message ? err.message : strerror(-r));
        int bad = r < 0 || check_echo(DBUS, i, in, p, n) < 0;
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&err);
        if (bad)
            return -1;
    }
    uint64_t app1 = bench_self_cpu_ns();
    int64_t srv1 = bench_proc_cpu_ns(d->server), dmn1 = bench_proc_cpu_ns(d->daemon);
    if (srv0 < 0 || dmn0 < 0 || srv1 < 0 || dmn1 < 0) {
        fprintf(stderr, "call_latency: dbus: cannot read the CPU time of the server or daemon\n");
        return -1;
    }
    res->latency_us = median_us(samples, iters);
    res->app_cpu_us = (double)(app1 - app0) / 1e3 / (double)iters;
    res->serving_cpu_us = (double)((srv1 - srv0) + (dmn1 - dmn0)) / 1e3 / (double)iters;
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_pids hosts;
    if (argc < 4 || bench_parse_pids(argv[3], &hosts) < 0) {
        fprintf(stderr, "usage: call_latency STATE_DIR NODE HOST_PIDS [ITERATIONS]\n"
                        "  HOST_PIDS: the driver hosts serving NODE, comma-separated\n");
        return 2;
    }
    uint64_t node = strtoull(argv[2], NULL, 0);
    size_t iters = argc > 4 ? strtoul(argv[4], NULL, 0) : 10000;
    uint64_t *samples = calloc(iters ? iters : 1, sizeof *samples);
    struct dbus_peer bus;
    if (!samples || iters == 0 || dbus_start(&bus) < 0)
        return 1;
    /* Interleave the sides round by round so that drift in machine load
     * hits all alike. */
    struct result res[N_SIDES][ROUNDS];
    int ok = 1;
    for (uint32_t r = 0; r < ROUNDS && ok; r++) {
        ok = ours(argv[1], node, &hosts, r, iters, samples, &res[OURS][r]) == 0 &&
             peer_spin(r, iters, samples, &res[SPIN][r]) == 0 &&
             peer_socketpair(r, iters, samples, &res[SOCKETPAIR][r]) == 0 &&
             peer_dbus(&bus, r, iters, samples, &res[DBUS][r]) == 0;
    }
    dbus_stop(&bus);
    free(samples);
    if (!ok) {
        fprintf(stderr, "call_latency: FAILED: no numbers reported\n");
        return 1;
    }
    double lat[N_SIDES][ROUNDS], cpu[N_SIDES][ROUNDS], app[N_SIDES][ROUNDS],
        serving[N_SIDES][ROUNDS];
    for (int s = 0; s < N_SIDES; s++)
        for (int r = 0; r < ROUNDS; r++) {
            lat[s][r] = res[s][r].latency_us;
            app[s][r] = res[s][r].app_cpu_us;
            serving[s][r] = res[s][r].serving_cpu_us;
            cpu[s][r] = app[s][r] + serving[s][r];
        }
    for (int s = SPIN; s < N_SIDES; s++)
        bench_report("call_latency", side_name[s], "%.2f", "us", BENCH_LOWER_IS_BETTER, "speedup",
                     lat[OURS], lat[s], ROUNDS);
    /* CPU per call of both processes; peer/ours above 1: ours spends less. */
    for (int s = SPIN; s < N_SIDES; s++)
        bench_report("call_latency cpu/call", side_name[s], "%.2f", "us", BENCH_LOWER_IS_BETTER,
                     "peer/ours", cpu[OURS], cpu[s], ROUNDS);
    for (int s = 0; s < N_SIDES; s++) {
        printf("call_latency cpu/call of %s:", side_name[s]);
        bench_print_range("app", "%.2f", "us", app[s], ROUNDS);
        bench_print_range(s == OURS ? "host" : s == DBUS ? "server+daemon" : "child", "%.2f", "us",
                          serving[s], ROUNDS);
        printf("\n");
    }
    return 0;
}
