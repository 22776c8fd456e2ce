/* SPDX-License-Identifier: MIT */
/* serial_throughput: bytes per second written to one terminal and read
 * back, through serial-loopback (write and read the same port) against a
 * socat pty pair (write one end, read the other), same bytes, same sizes.
 *
 * usage: serial_throughput TTY [MIB]
 * It starts the socat peer itself. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

struct job {
    int fd;
    const uint8_t *data;
    size_t len;
    int ok;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

/* Writes len bytes to wfd while reading them back from rfd; returns the
 * seconds it took, or -1 if the bytes did not come back intact. */
static double run(int wfd, int rfd, const uint8_t *data, size_t len)
{
    uint8_t *buf = malloc(CHUNK);
    struct job j = {wfd, data, len, 0};
    pthread_t t;
    double t0 = now_s();
    pthread_create(&t, NULL, writer, &j);
    size_t got = 0;
    int same = 1;
    while (got < len) {
        ssize_t r = read(rfd, buf, CHUNK);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        if (memcmp(buf, data + got, (size_t)r) != 0)
            same = 0;
        got += (size_t)r;
    }
    double dt = now_s() - t0;
    pthread_join(t, NULL);
    free(buf);
    return got == len && same && j.ok ? dt : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: serial_throughput TTY [MIB]\n");
        return 2;
    }
    size_t len = (size_t)(argc > 2 ? atoi(argv[2]) : 64) << 20;
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);

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
    /* Alternate rounds; report the best of each (throughput: the least
     * disturbed run is the truest). */
    double ours = 1e9, peer = 1e9;
    for (int r = 0; r < 3; r++) {
        double o = run(port, port, data, len);
        double p = run(pa, pb, data, len);
        if (o < 0 || p < 0) {
            fprintf(stderr, "serial_throughput: data did not come back intact (%s)\n",
                    o < 0 ? "odk" : "socat");
            kill(socat, SIGTERM);
            return 1;
        }
        ours = o < ours ? o : ours;
        peer = p < peer ? p : peer;
    }
    close(port);
    close(pa);
    close(pb);
    kill(socat, SIGTERM);
    waitpid(socat, NULL, 0);
    rmdir(dir);
    double mo = (double)len / ours / 1e6, mp = (double)len / peer / 1e6;
    printf("serial_throughput vs socat-pty-pair: ours=%.1f MB/s peer=%.1f MB/s speedup=%.2f\n", mo,
           mp, mo / mp);
    free(data);
    return 0;
}
