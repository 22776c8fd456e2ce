/* SPDX-License-Identifier: MIT */
/* net_forwarder: the peer of net_throughput, the least a user-space
 * Ethernet path can be: two TAP interfaces, and one thread that reads a
 * frame from either and writes it to the other.  No rings, no pool, no
 * driver: what the network family adds to this is what the benchmark
 * measures.
 *
 * usage: net_forwarder NAME_A NAME_B
 * Creates both interfaces, prints "ready" and forwards until killed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define BURST 64 /* frames moved per wake-up before polling again */

static int open_tap(const char *name)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: net_forwarder NAME_A NAME_B\n");
        return 2;
    }
    int fd[2] = {open_tap(argv[1]), open_tap(argv[2])};
    if (fd[0] < 0 || fd[1] < 0) {
        fprintf(stderr, "net_forwarder: cannot create %s and %s: %s\n", argv[1], argv[2],
                strerror(errno));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    static unsigned char frame[65536];
    struct pollfd p[2] = {{fd[0], POLLIN, 0}, {fd[1], POLLIN, 0}};
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            for (int n = 0; n < BURST; n++) {
                ssize_t r = read(fd[i], frame, sizeof frame);
                if (r <= 0)
                    break;
                if (write(fd[!i], frame, (size_t)r) < 0 && errno != EAGAIN && errno != EIO)
                    return 1;
            }
        }
    }
}
