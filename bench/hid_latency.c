/* SPDX-License-Identifier: MIT */
/* hid_latency: a key report in -> the remapped key event out.
 *
 * Ours: the simulated USB keyboard (its device model, a process of its own)
 * sends a report on its interrupt endpoint; hid-remap's host reads it,
 * remaps a -> b, types it on its virtual keyboard, and this app reads the
 * event from the libodk stream.  The event carries the time the report
 * came in (the interrupt transfer's completion), so "report in -> event
 * out" is what the app measures when it reads it.  The reports are sent
 * by asking odkd (usb-input), which is not on the data path and not
 * timed: a second thread of the app sends them, one at a time, a report
 * only after the last event was read, while the main thread already waits
 * on the stream, as the peer's reader waits on its pipe.  (Sending from
 * the reading thread itself would time odkd's round trip too: the thread
 * could look at the stream only once odkd had answered, long after the
 * event was there.)  The model types each report DELAY_US after the
 * request (usb-input's delay_us), when odkd's answer and the sending
 * thread are done with: the timed stretch has the device, the driver and
 * the app in it, as the peer's has its two processes, and nothing of the
 * test's own request running beside them on the two CPUs.
 *
 * Peer: the plain pipe passthrough a remapper of the interception-tools
 * kind is (reader | remapper | writer): a child process reads each 8-byte
 * report from one pipe and writes it to another; timed from the write into
 * the first pipe to the read from the second.
 *
 * The peer runs three ways, each printed as a line of its own against
 * ours (the first line is the one the target was set against):
 *  - back to back: each report written as soon as the last came back, so
 *    its two processes never leave the CPU they share;
 *  - paced: PACE_US of sleep before each report, as ours has between its
 *    reports (odkd's answer, then the model's delay, which its poll rounds
 *    up to a millisecond): keystrokes come paced, and the CPUs are idle
 *    when one comes;
 *  - a chain shaped as ours is: a device process that sleeps PACE_US and
 *    writes the report with its time stamp, the forwarder, and this
 *    process reading, three processes as the model, the driver host and
 *    the app are (the writer is no longer the reader, asleep on its pipe
 *    and its CPU kept warm by its own write).
 *
 * Both check their work: ours, that each event is the remapped key, down
 * then up, in order; the peer, that the bytes come back unchanged.
 * Prints the median and p99 of each, over rounds that alternate them.
 * HID_N sets the reports per round (default 2000).
 *
 * usage: hid_latency STATE_DIR USB_DEVICE_NODE HID_DEVICE_NODE */
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/wait.h>

#include "bench.h"
#include "odk/hid_client.h"

#define ROUNDS 5
#define KEY_A 0x04
#define KEY_B 0x05
#define DELAY_US 300 /* the model types the key this long after odkd's request */
#define PACE_US 1000 /* the paced peer's sleep before each report */

/* The sending thread: on each post of go, sends report down (a pressed)
 * or up, then posts sent. */
struct sender {
    odk_client *c;
    uint64_t dev;
    sem_t go, sent;
    bool down, quit;
    int status;
};

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    for (;;) {
        while (sem_wait(&s->go) < 0)
            ;
        if (s->quit)
            return NULL;
        odk_value *args = odk_value_new_dict();
        odk_dict_set_int(args, "node", (int64_t)s->dev);
        odk_dict_set_string(args, "data", s->down ? "0000040000000000" : "0000000000000000");
        odk_dict_set_int(args, "delay_us", DELAY_US);
        odk_value *reply = NULL;
        s->status = odk_client_request(s->c, "usb-input", args, &reply);
        odk_value_free(reply);
        sem_post(&s->sent);
    }
}

static int ours(struct sender *snd, odk_hid *h, size_t n, uint64_t *lat)
{
    for (size_t i = 0; i < n; i++) {
        bool down = (i % 2) == 0;
        snd->down = down;
        sem_post(&snd->go);
        odk_hid_input_event ev;
        int st;
        do
            st = odk_hid_read(h, &ev, 5000);
        while (st == ODK_OK && ev.type != ODK_HID_INPUT_KEYBOARD);
        uint64_t now = bench_now_ns();
        while (sem_wait(&snd->sent) < 0)
            ;
        if (snd->status < 0) {
            fprintf(stderr, "hid_latency: usb-input: %s\n", odk_strerror(snd->status));
            return -1;
        }
        if (st < 0) {
            fprintf(stderr, "hid_latency: report %zu: no event: %s\n", i, odk_strerror(st));
            return -1;
        }
        if (ev.usage != KEY_B || ev.value != (down ? 1 : 0)) {
            fprintf(stderr, "hid_latency: report %zu: event 0x%x=%d, want 0x%x=%d (a remapped)\n",
                    i, ev.usage, ev.value, KEY_B, down);
            return -1;
        }
        lat[i] = now - ev.timestamp_ns;
    }
    return 0;
}

static int peer(int to_child, int from_child, size_t n, uint64_t *lat, bool paced)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t r[8] = {0, 0, (uint8_t)(i % 2 ? 0 : KEY_A), 0, 0, 0, 0, (uint8_t)i}, back[8];
        if (paced) {
            struct timespec pace = {0, PACE_US * 1000};
            while (nanosleep(&pace, &pace) < 0)
                ;
        }
        uint64_t t0 = bench_now_ns();
        if (write(to_child, r, sizeof r) != (ssize_t)sizeof r ||
            read(from_child, back, sizeof back) != (ssize_t)sizeof back ||
            memcmp(r, back, sizeof r) != 0) {
            fprintf(stderr, "hid_latency: passthrough: report %zu did not come back\n", i);
            return -1;
        }
        lat[i] = bench_now_ns() - t0;
    }
    return 0;
}

/* The chain peer: a device process writes {time stamp, report} into
 * dev[1] PACE_US after each "go" on go[0]; the forwarder (the back-to-back
 * peer's child) passes it on; read here from fwd. */
struct chain_msg {
    uint64_t t;
    uint8_t r[8];
};

static void chain_device(int go, int out)
{
    uint8_t seq;
    while (read(go, &seq, 1) == 1) {
        struct timespec pace = {0, PACE_US * 1000};
        while (nanosleep(&pace, &pace) < 0)
            ;
        struct chain_msg m = {.r = {0, 0, (uint8_t)(seq % 2 ? 0 : KEY_A), 0, 0, 0, 0, seq}};
        m.t = bench_now_ns();
        if (write(out, &m, sizeof m) != (ssize_t)sizeof m)
            break;
    }
    _exit(0);
}

static int chain(int go, int from_fwd, size_t n, uint64_t *lat)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t seq = (uint8_t)i;
        struct chain_msg m;
        if (write(go, &seq, 1) != 1 || read(from_fwd, &m, sizeof m) != (ssize_t)sizeof m ||
            m.r[7] != seq || m.r[2] != (i % 2 ? 0 : KEY_A)) {
            fprintf(stderr, "hid_latency: chain: report %zu did not come back\n", i);
            return -1;
        }
        lat[i] = bench_now_ns() - m.t;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: hid_latency STATE_DIR USB_DEVICE_NODE HID_DEVICE_NODE\n");
        return 2;
    }
    size_t n = getenv("HID_N") ? strtoul(getenv("HID_N"), NULL, 0) : 2000;
    if (n < 2 || n % 2)
        n = 2000;
    uint64_t dev = strtoull(argv[2], NULL, 0), node = strtoull(argv[3], NULL, 0);
    odk_client *c;
    odk_hid *h;
    int st = odk_client_open(argv[1], &c);
    if (st == ODK_OK && (st = odk_hid_open(c, node, &h)) < 0)
        odk_client_close(c);
    if (st < 0) {
        fprintf(stderr, "hid_latency: %s\n", odk_strerror(st));
        return 1;
    }
    int a[2], b[2];
    if (pipe(a) < 0 || pipe(b) < 0)
        return 1;
    pid_t child = fork();
    if (child == 0) { /* the passthrough */
        close(a[1]);
        close(b[0]);
        uint8_t r[8];
        while (read(a[0], r, sizeof r) == (ssize_t)sizeof r)
            if (write(b[1], r, sizeof r) != (ssize_t)sizeof r)
                break;
        _exit(0);
    }
    close(a[0]);
    close(b[1]);
    int go[2], dv[2], fw[2];
    if (pipe(go) < 0 || pipe(dv) < 0 || pipe(fw) < 0)
        return 1;
    pid_t device = fork();
    if (device == 0) {
        close(a[1]), close(b[0]); /* or the passthrough never sees its EOF */
        close(go[1]), close(dv[0]), close(fw[0]), close(fw[1]);
        chain_device(go[0], dv[1]);
    }
    pid_t forwarder = fork();
    if (forwarder == 0) {
        close(a[1]), close(b[0]);
        close(go[0]), close(go[1]), close(dv[1]), close(fw[0]);
        struct chain_msg m;
        while (read(dv[0], &m, sizeof m) == (ssize_t)sizeof m)
            if (write(fw[1], &m, sizeof m) != (ssize_t)sizeof m)
                break;
        _exit(0);
    }
    close(go[0]), close(dv[0]), close(dv[1]), close(fw[1]);
    struct sender snd = {.c = c, .dev = dev};
    pthread_t sender;
    sem_init(&snd.go, 0, 0);
    sem_init(&snd.sent, 0, 0);
    if (pthread_create(&sender, NULL, sender_main, &snd) != 0)
        return 1;
    uint64_t *lo = calloc(n * ROUNDS, sizeof *lo), *lp = calloc(n * ROUNDS, sizeof *lp),
             *lq = calloc(n * ROUNDS, sizeof *lq), *lc = calloc(n * ROUNDS, sizeof *lc);
    double om[ROUNDS], pm[ROUNDS], qm[ROUNDS], cm[ROUNDS];
    int rc = lo && lp && lq && lc ? 0 : 1;
    for (int r = 0; r < ROUNDS && rc == 0; r++) {
        if (ours(&snd, h, n, lo + r * n) < 0 || peer(a[1], b[0], n, lp + r * n, false) < 0 ||
            peer(a[1], b[0], n, lq + r * n, true) < 0 || chain(go[1], fw[0], n, lc + r * n) < 0) {
            rc = 1;
            break;
        }
        uint64_t *tmp = malloc(n * sizeof *tmp);
        if (!tmp) {
            rc = 1;
            break;
        }
        memcpy(tmp, lo + r * n, n * sizeof *lo);
        om[r] = bench_quantile_us(tmp, n, 0.5);
        memcpy(tmp, lp + r * n, n * sizeof *lp);
        pm[r] = bench_quantile_us(tmp, n, 0.5);
        memcpy(tmp, lq + r * n, n * sizeof *lq);
        qm[r] = bench_quantile_us(tmp, n, 0.5);
        memcpy(tmp, lc + r * n, n * sizeof *lc);
        cm[r] = bench_quantile_us(tmp, n, 0.5);
        free(tmp);
    }
    if (rc == 0) {
        bench_report("hid_latency median", "pipe passthrough", "%.1f", "us", BENCH_LOWER_IS_BETTER,
                     "speedup", om, pm, ROUNDS);
        bench_report("hid_latency median", "pipe passthrough paced 1 ms", "%.1f", "us",
                     BENCH_LOWER_IS_BETTER, "speedup", om, qm, ROUNDS);
        bench_report("hid_latency median", "pipe chain device|forwarder|reader paced 1 ms", "%.1f",
                     "us", BENCH_LOWER_IS_BETTER, "speedup", om, cm, ROUNDS);
        printf("hid_latency all %zu reports: ours median=%.1f us p99=%.1f us, "
               "peer median=%.1f us p99=%.1f us, paced peer median=%.1f us p99=%.1f us, "
               "chain median=%.1f us p99=%.1f us\n",
               n * ROUNDS, bench_quantile_us(lo, n * ROUNDS, 0.5),
               bench_quantile_us(lo, n * ROUNDS, 0.99), bench_quantile_us(lp, n * ROUNDS, 0.5),
               bench_quantile_us(lp, n * ROUNDS, 0.99), bench_quantile_us(lq, n * ROUNDS, 0.5),
               bench_quantile_us(lq, n * ROUNDS, 0.99), bench_quantile_us(lc, n * ROUNDS, 0.5),
               bench_quantile_us(lc, n * ROUNDS, 0.99));
        fflush(stdout);
    }
    snd.quit = true;
    sem_post(&snd.go);
    pthread_join(sender, NULL);
    close(a[1]);
    close(b[0]);
    waitpid(child, NULL, 0);
    close(go[1]);
    close(fw[0]);
    waitpid(device, NULL, 0);
    waitpid(forwarder, NULL, 0);
    free(lo);
    free(lp);
    free(lq);
    free(lc);
    odk_hid_close(h);
    odk_client_close(c);
    return rc;
}
