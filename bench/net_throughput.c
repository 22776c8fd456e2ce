/* SPDX-License-Identifier: MIT */
/* net_throughput: TCP throughput (iperf3) and 64-byte frames per second
 * through the net-sim NIC pair (TAP -> family -> net-sim -> cable ->
 * net-sim -> family -> TAP) against net_forwarder (TAP -> one read, one
 * write -> TAP), in alternating rounds (bench.h); a veth pair is measured
 * in the same rounds and printed for scale.
 *
 * Each path's two interfaces go into two network namespaces of the
 * benchmark's own, with addresses in 10.215.N.0/24; nothing leaves the
 * machine.
 *
 * Verification: iperf3 must report received bytes for every run.  The
 * 64-byte frames carry this run's cookie and a sequence number; the
 * receiver counts only frames with the cookie and fails the benchmark on a
 * duplicate or on zero frames.  (Frames the sender outruns are dropped by
 * the kernel's queues on every path alike: frames per second counts what
 * arrived.)
 *
 * usage: net_throughput IF_A IF_B FORWARDER
 * NET_ROUNDS (5), NET_SECONDS (3: each iperf3 run; the pps runs take 2 s)
 * shrink or grow it. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "bench.h"

#define ETH_TYPE 0x88b6
#define FRAME 60 /* 64 on the wire with the FCS */
#define BATCH 64
#define PPS_SECONDS 2

struct path {
    const char *label;
    char if_a[IFNAMSIZ], if_b[IFNAMSIZ];
    char ns_a[32], ns_b[32];
    char addr_b[32];
    double tcp[BENCH_MAX_ROUNDS], pps[BENCH_MAX_ROUNDS];
};

static int run(const char *cmd)
{
    int st = system(cmd);
    if (st != 0)
        fprintf(stderr, "net_throughput: '%s' failed (%d)\n", cmd, st);
    return st == 0 ? 0 : -1;
}

static int setup(struct path *p, int n)
{
    char cmd[512];
    snprintf(p->ns_a, sizeof p->ns_a, "odkbench%d%da", (int)getpid() % 1000, n);
    snprintf(p->ns_b, sizeof p->ns_b, "odkbench%d%db", (int)getpid() % 1000, n);
    snprintf(p->addr_b, sizeof p->addr_b, "10.215.%d.2", n);
    snprintf(
        cmd, sizeof cmd,
        "ip netns add %s && ip netns add %s && ip link set %s netns %s && "
        "ip link set %s netns %s && "
        "ip -n %s addr add 10.215.%d.1/24 dev %s && ip -n %s addr add 10.215.%d.2/24 dev %s && "
        "ip -n %s link set %s up && ip -n %s link set %s up && "
        "ip -n %s link set lo up && ip -n %s link set lo up",
        p->ns_a, p->ns_b, p->if_a, p->ns_a, p->if_b, p->ns_b, p->ns_a, n, p->if_a, p->ns_b, n,
        p->if_b, p->ns_a, p->if_a, p->ns_b, p->if_b, p->ns_a, p->ns_b);
    if (run(cmd) < 0)
        return -1;
    /* Wait for the carrier and for ARP: one ping that must answer. */
    snprintf(cmd, sizeof cmd, "ip netns exec %s ping -q -c 1 -w 10 %s >/dev/null", p->ns_a,
             p->addr_b);
    return run(cmd);
}

static void teardown(struct path *p)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", p->ns_a,
             p->ns_b);
    if (system(cmd) != 0) {
    }
}

/* iperf3 TCP for `seconds`, in bits per second received, or -1. */
static double tcp_round(struct path *p, int seconds)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ip netns exec %s iperf3 -s -1 -D -I /tmp/%s.pid >/dev/null 2>&1",
             p->ns_b, p->ns_b);
    if (run(cmd) < 0)
        return -1;
    usleep(300000);
    snprintf(cmd, sizeof cmd, "ip netns exec %s iperf3 -J -c %s -t %d 2>&1", p->ns_a, p->addr_b,
             seconds);
    FILE *f = popen(cmd, "r");
    static char out[1 << 20];
    size_t len = f ? fread(out, 1, sizeof out - 1, f) : 0;
    if (f)
        pclose(f);
    out[len] = 0;
    snprintf(cmd, sizeof cmd, "/tmp/%s.pid", p->ns_b);
    unlink(cmd);
    const char *s = strstr(out, "\"sum_received\"");
    const char *b = s ? strstr(s, "\"bits_per_second\":") : NULL;
    const char *bytes = s ? strstr(s, "\"bytes\":") : NULL;
    double bps = b ? atof(b + 18) : -1;
    if (!b || !bytes || atof(bytes + 8) <= 0 || bps <= 0) {
        fprintf(stderr, "net_throughput: %s: iperf3 received nothing:\n%.2000s\n", p->label, out);
        return -1;
    }
    return bps;
}

static int enter_ns(const char *ns)
{
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
        return -1;
    close(fd);
    return 0;
}

static int packet_socket(const char *ns, const char *ifname)
{
    if (enter_ns(ns) < 0)
        return -1;
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_TYPE));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_protocol = htons(ETH_TYPE),
                              .sll_ifindex = (int)if_nametoindex(ifname)};
    if (s < 0 || sll.sll_ifindex == 0 || bind(s, (struct sockaddr *)&sll, sizeof sll) < 0)
        return -1;
    return s;
}

/* The receiver: counts this run's frames until told to stop (SIGTERM),
 * then writes "COUNT DUPLICATES" to fd out. */
static volatile sig_atomic_t stop_rx;
static void on_term(int sig)
{
    (void)sig;
    stop_rx = 1;
}

static void receiver(struct path *p, uint64_t cookie, int out)
{
    signal(SIGTERM, on_term);
    int s = packet_socket(p->ns_b, p->if_b);
    if (s < 0)
        _exit(1);
    int big = 16 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    struct timeval tv = {0, 100000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (write(out, "r", 1) != 1)
        _exit(1);
    static uint8_t bufs[BATCH][128];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    uint64_t count = 0, dups = 0, last = 0;
    while (!stop_rx) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){bufs[i], sizeof bufs[i]};
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(s, msgs, BATCH, 0, NULL);
        for (int i = 0; i < n; i++) {
            uint64_t c, seq;
            if (msgs[i].msg_len != FRAME)
                continue;
            memcpy(&c, bufs[i] + 14, 8);
            memcpy(&seq, bufs[i] + 22, 8);
            if (c != cookie)
                continue;
            if (count && seq <= last)
                dups++;
            last = seq;
            count++;
        }
    }
    char line[64];
    int len = snprintf(line, sizeof line, "%llu %llu", (unsigned long long)count,
                       (unsigned long long)dups);
    if (write(out, line, (size_t)len) != len)
        _exit(1);
    _exit(0);
}

static void sender(struct path *p, uint64_t cookie)
{
    int s = packet_socket(p->ns_a, p->if_a);
    if (s < 0)
        _exit(1);
    /* The destination: the other interface's MAC, read from its namespace. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ip -n %s -br link show %s", p->ns_b, p->if_b);
    FILE *f = popen(cmd, "r");
    char line[256] = "";
    if (!f || !fgets(line, sizeof line, f))
        _exit(1);
    pclose(f);
    unsigned m[6];
    char *mac = strchr(line, ':') ? line : NULL;
    for (char *t = strtok(line, " \t\n"); t; t = strtok(NULL, " \t\n"))
        if (sscanf(t, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 &&
            strlen(t) == 17) {
            mac = t;
            break;
        }
    if (!mac)
        _exit(1);
    static uint8_t frames[BATCH][FRAME];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    for (int i = 0; i < BATCH; i++) {
        for (int k = 0; k < 6; k++)
            frames[i][k] = (uint8_t)m[k];
        memset(frames[i] + 6, 0x02, 6);
        frames[i][12] = ETH_TYPE >> 8;
        frames[i][13] = ETH_TYPE & 0xff;
        memcpy(frames[i] + 14, &cookie, 8);
    }
    uint64_t seq = 0;
    double end = bench_now_s() + PPS_SECONDS;
    while (bench_now_s() < end) {
        for (int i = 0; i < BATCH; i++) {
            seq++;
            memcpy(frames[i] + 22, &seq, 8);
            iov[i] = (struct iovec){frames[i], FRAME};
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        if (sendmmsg(s, msgs, BATCH, 0) < 0 && errno != ENOBUFS && errno != EAGAIN)
            _exit(1);
    }
    _exit(0);
}

/* 64-byte frames per second from a to b, or -1. */
static double pps_round(struct path *p)
{
    uint64_t cookie = bench_now_ns() ^ ((uint64_t)getpid() << 32);
    int pipefd[2];
    if (pipe(pipefd) < 0)
        return -1;
    pid_t rx = fork();
    if (rx == 0) {
        close(pipefd[0]);
        receiver(p, cookie, pipefd[1]);
    }
    close(pipefd[1]);
    char c;
    if (read(pipefd[0], &c, 1) != 1) {
        fprintf(stderr, "net_throughput: %s: the receiver did not start\n", p->label);
        close(pipefd[0]);
        waitpid(rx, NULL, 0);
        return -1;
    }
    double t0 = bench_now_s();
    pid_t tx = fork();
    if (tx == 0)
        sender(p, cookie);
    int st = 0;
    waitpid(tx, &st, 0);
    double t1 = bench_now_s();
    usleep(300000); /* what is still in the queues */
    kill(rx, SIGTERM);
    char line[64] = "";
    ssize_t n = read(pipefd[0], line, sizeof line - 1);
    close(pipefd[0]);
    waitpid(rx, NULL, 0);
    unsigned long long count = 0, dups = 0;
    if (n <= 0 || sscanf(line, "%llu %llu", &count, &dups) != 2 || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0 || count == 0 || dups) {
        fprintf(stderr,
                "net_throughput: %s: 64-byte frames: sender status %d, %llu received, "
                "%llu out of order or repeated\n",
                p->label, st, count, dups);
        return -1;
    }
    return (double)count / (t1 - t0);
}

static int measure(struct path *p, int r, int seconds)
{
    p->tcp[r] = tcp_round(p, seconds) / 1e9;
    p->pps[r] = pps_round(p) / 1e6;
    return p->tcp[r] > 0 && p->pps[r] > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: net_throughput IF_A IF_B FORWARDER\n");
        return 2;
    }
    int rounds = getenv("NET_ROUNDS") ? atoi(getenv("NET_ROUNDS")) : 5;
    int seconds = getenv("NET_SECONDS") ? atoi(getenv("NET_SECONDS")) : 3;
    if (rounds < 1 || rounds > BENCH_MAX_ROUNDS || seconds < 1)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct path ours = {.label = "net-sim pair"}, fwd = {.label = "tap forwarder"},
                veth = {.label = "veth"};
    snprintf(ours.if_a, IFNAMSIZ, "%s", argv[1]);
    snprintf(ours.if_b, IFNAMSIZ, "%s", argv[2]);
    snprintf(fwd.if_a, IFNAMSIZ, "odkfw%da", (int)getpid() % 1000);
    snprintf(fwd.if_b, IFNAMSIZ, "odkfw%db", (int)getpid() % 1000);
    snprintf(veth.if_a, IFNAMSIZ, "odkve%da", (int)getpid() % 1000);
    snprintf(veth.if_b, IFNAMSIZ, "odkve%db", (int)getpid() % 1000);

    int out[2];
    if (pipe(out) < 0)
        return 1;
    pid_t fw = fork();
    if (fw == 0) {
        dup2(out[1], 1);
        execl(argv[3], argv[3], fwd.if_a, fwd.if_b, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char ready[16] = "";
    if (read(out[0], ready, sizeof ready - 1) <= 0 || strncmp(ready, "ready", 5) != 0) {
        fprintf(stderr, "net_throughput: the forwarder did not start\n");
        return 1;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ip link add %s type veth peer name %s", veth.if_a, veth.if_b);
    int rc = 1;
    if (run(cmd) < 0 || setup(&ours, 1) < 0 || setup(&fwd, 2) < 0 || setup(&veth, 3) < 0)
        goto out;
    for (int r = 0; r < rounds; r++) {
        /* Alternate who goes first, so drift in the machine's load hits both. */
        struct path *first = r % 2 ? &fwd : &ours, *second = r % 2 ? &ours : &fwd;
        if (measure(first, r, seconds) < 0 || measure(second, r, seconds) < 0 ||
            measure(&veth, r, seconds) < 0)
            goto out;
    }
    printf("net_throughput:");
    bench_report_part("tcp vs tap-forwarder", "%.2f", "Gbit/s", BENCH_HIGHER_IS_BETTER, "speedup",
                      ours.tcp, fwd.tcp, rounds);
    printf(" over %d rounds\n", rounds);
    printf("net_throughput:");
    bench_report_part("64-byte frames vs tap-forwarder", "%.3f", "Mpps", BENCH_HIGHER_IS_BETTER,
                      "speedup", ours.pps, fwd.pps, rounds);
    printf(" over %d rounds\n", rounds);
    printf("net_throughput: for scale, veth:");
    bench_print_range("tcp", "%.2f", "Gbit/s", veth.tcp, rounds);
    bench_print_range("64-byte", "%.3f", "Mpps", veth.pps, rounds);
    printf("\n");
    rc = 0;
out:
    teardown(&ours);
    teardown(&fwd);
    teardown(&veth);
    kill(fw, SIGTERM);
    waitpid(fw, NULL, 0);
    return rc;
}
