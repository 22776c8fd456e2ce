/* SPDX-License-Identifier: MIT */
/* serial_throughput: bytes per second written to one terminal and read
 * back, through serial-loopback (write and read the same port) against a
 * socat pty pair (write one end, read the other), same sizes, in
 * alternating rounds (bench.h).
 *
 * Verification: every round of every side sends its own bytes (8-byte
 * words mixing the round, the side and the offset), and the reader compares
 * every byte it receives, in order, with what was sent (memcmp as it
 * reads, a small fraction of the time of a tty).  After the round it waits
 * STRAY_MS for bytes that should not be there.  Lost, repeated, stale,
 * damaged or extra bytes, or no progress for STALL_MS, fail the benchmark,
 * naming the side, round and offset, and no number is printed.
 *
 * usage: serial_throughput TTY [MIB [NAME]]
 * It starts the socat peer itself.  NAME (default serial_throughput) names
 * the report line: bench/run runs it once on a pty port and, where
 * /dev/cuse exists, once more on a CUSE port (serial_throughput_cuse). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "bench.h"

#define CHUNK (64 * 1024)
#define ROUNDS 5
#define STALL_MS 10000 /* no byte for this long: the round failed */
#define STRAY_MS 50    /* how long the reader listens for extra bytes */

struct job {
    int fd;
    const uint8_t *data;
    size_t len;
    int ok;
};

static int open_raw(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct termios t;
    tcgetattr(fd, &t);
    cfmakeraw(&t);
    cfsetspeed(&t, B115200);
    tcsetattr(fd, TCSANOW, &t);
    return fd;
}

static void *writer(void *arg)
{
    struct job *j = arg;
    size_t off = 0;
    while (off < j->len) {
        size_t n = j->len - off < CHUNK ? j->len - off : CHUNK;
        ssize_t w = write(j->fd, j->data + off, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        off += (size_t)w;
    }
    j->ok = 1;
    return NULL;
}

/* The bytes of one round of one side: no two rounds or sides alike, and
 * no two words of a round alike. */
static void fill(uint8_t *data, size_t len, uint32_t tag)
{
    uint64_t *w = (uint64_t *)data;
    for (size_t i = 0; i < len / 8; i++)
        w[i] = (i << 3 ^ (uint64_t)tag << 40) * 0x9e3779b97f4a7c15ull;
}

/* Writes len bytes to wfd while reading them back from rfd and comparing
 * them with what was written; returns the seconds it took, or -1 (with a
 * message) if the bytes did not come back intact.  On failure the writer
 * thread may be left blocked: the caller exits. */
static double run(const char *side, int round, int wfd, int rfd, const uint8_t *data, size_t len)
{
    static uint8_t buf[CHUNK];
    static struct job j; /* outlives a failed round's blocked writer */
    j = (struct job){wfd, data, len, 0};
    pthread_t t;
    double t0 = bench_now_s();
    pthread_create(&t, NULL, writer, &j);
    size_t got = 0;
    struct pollfd pfd = {.fd = rfd, .events = POLLIN};
    while (got < len) {
        int n = poll(&pfd, 1, STALL_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                fprintf(stderr,
                        "serial_throughput: %s: round %d: stalled after %zu of %zu bytes "
                        "(no byte for %d ms)\n",
                        side, round, got, len, STALL_MS);
            else
                fprintf(stderr, "serial_throughput: %s: round %d: poll: %s\n", side, round,
                        strerror(errno));
            return -1;
        }
        size_t want = len - got < CHUNK ? len - got : CHUNK;
        ssize_t r = read(rfd, buf, want);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0) {
            fprintf(stderr, "serial_throughput: %s: round %d: read failed after %zu bytes: %s\n",
                    side, round, got, r < 0 ? strerror(errno) : "end of file");
            return -1;
        }
        if (memcmp(buf, data + got, (size_t)r) != 0) {
            size_t k = 0;
            while (buf[k] == data[got + k])
                k++;
            fprintf(stderr,
                    "serial_throughput: %s: round %d: byte %zu of %zu is 0x%02x, want 0x%02x "
                    "(lost, repeated, stale or damaged bytes)\n",
                    side, round, got + k, len, buf[k], data[got + k]);
            return -1;
        }
        got += (size_t)r;
    }
    double dt = bench_now_s() - t0;
    pthread_join(t, NULL);
    if (!j.ok) {
        fprintf(stderr, "serial_throughput: %s: round %d: write failed\n", side, round);
        return -1;
    }
    int n = poll(&pfd, 1, STRAY_MS);
    if (n > 0) {
        ssize_t r = read(rfd, buf, sizeof buf);
        fprintf(stderr, "serial_throughput: %s: round %d: %zd bytes more than were written\n",
                side, round, r);
        return -1;
    }
    return dt;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: serial_throughput TTY [MIB [NAME]]\n");
        return 2;
    }
    size_t len = (size_t)(argc > 2 ? atoi(argv[2]) : 64) << 20;
    uint8_t *data = malloc(len);
    if (!data || len == 0)
        return 1;

    char dir[] = "/tmp/odk-serial-bench.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char a[64], b[64], la[96], lb[96];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(la, sizeof la, "pty,raw,echo=0,link=%s", a);
    snprintf(lb, sizeof lb, "pty,raw,echo=0,link=%s", b);
    pid_t socat = fork();
    if (socat == 0) {
        execlp("socat", "socat", la, lb, (char *)NULL);
        _exit(127);
    }
    struct stat st;
    for (int i = 0; i < 200 && (stat(a, &st) < 0 || stat(b, &st) < 0); i++)
        usleep(10000);

    int port = open_raw(argv[1]);
    int pa = open_raw(a), pb = open_raw(b);
    if (port < 0 || pa < 0 || pb < 0) {
        fprintf(stderr, "serial_throughput: cannot open %s or the socat ptys\n", argv[1]);
        kill(socat, SIGTERM);
        return 1;
    }
    double o[ROUNDS], p[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        fill(data, len, (uint32_t)(2 * r + 1));
        double to = run("odk", r, port, port, data, len);
        double tp = -1;
        if (to > 0) {
            fill(data, len, (uint32_t)(2 * r + 2));
            tp = run("socat", r, pa, pb, data, len);
        }
        if (to <= 0 || tp <= 0) {
            fprintf(stderr, "serial_throughput: FAILED: no numbers reported\n");
            kill(socat, SIGTERM);
            waitpid(socat, NULL, 0);
            unlink(a);
            unlink(b);
            rmdir(dir);
            _exit(1); /* a writer thread may still be blocked */
        }
        o[r] = (double)len / to / 1e6;
        p[r] = (double)len / tp / 1e6;
    }
    close(port);
    close(pa);
    close(pb);
    kill(socat, SIGTERM);
    waitpid(socat, NULL, 0);
    rmdir(dir);
    bench_report(argc > 3 ? argv[3] : "serial_throughput", "socat-pty-pair", "%.1f", "MB/s", BENCH_HIGHER_IS_BETTER,
                 "speedup", o, p, ROUNDS);
    free(data);
    return 0;
}
