/* SPDX-License-Identifier: MIT */
/* fuzz_wire — the receive path of every odk socket.  The input is sent,
 * verbatim, as one packet on an AF_UNIX SOCK_SEQPACKET socketpair and read
 * back with wire_recv; a message that is accepted is decoded with
 * wire_msg_value and, as a user-client call body, checked by the
 * runtime's own call_check (src/runtime/call_check.c) over a fixed table,
 * its answer checked by call_checks.h (fuzz_call fuzzes call_check
 * directly, on both encodings; here it meets bodies exactly as wire_recv
 * hands them over, inline or mapped from a memfd).
 *
 * The input's own header steers the file descriptors that come with the
 * packet, so the out-of-line path (WIRE_F_BODY_IN_FD, sealed memfd) is
 * reached too:
 *   flags bit 0 (WIRE_F_BODY_IN_FD): attach a memfd holding the input,
 *       repeated, sized from body_len (seq bits 0-1: exact, one byte short,
 *       one byte long, 64 KiB) and sealed unless seq bit 2 is set;
 *   seq bits 3-5: that many more fds (/dev/null) ride along.
 * Rejected packets must not leak their fds: the lowest free fd is the
 * same after every input, else the harness aborts. */
#define FUZZ_NAME "fuzz_wire"
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "call_checks.h"
#include "common/wire.h"
#include "odk/driver.h"
#include "odk/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEMFD_MAX (256u * 1024u) /* largest out-of-line body built here */
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)


/* The app's registered buffers: every id but 0, each FAKE_BUFFER_LEN
 * bytes. */
#define FAKE_BUFFER_LEN 4096u
static uint8_t handles[256];

static odk_memory *find(void *ctx, uint32_t id, uint64_t *len)
{
    if (id == 0)
        return NULL;
    *len = FAKE_BUFFER_LEN;
    return (odk_memory *)&handles[id & 0xff];
}

static int sv[2] = {-1, -1};
static wire_msg msg;
static int lowest_free_fd = -1;

static int lowest_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open /dev/null");
    close(fd);
    return fd;
}

static void setup(void)
{
    if (sv[0] >= 0)
        return;
    if (wire_socketpair(sv) != ODK_OK)
        die("socketpair failed");
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    wire_msg_init(&msg);
    /* The harness's own long-lived fds exist now; from here on the lowest
     * free fd must not move. */
    lowest_free_fd = lowest_fd();
}

static int make_memfd(const uint8_t *data, size_t size, uint64_t body_len, uint32_t seq)
{
    uint64_t len;
    switch (seq & 3) {
    case 0:
        len = body_len;
        break;
    case 1:
        len = body_len ? body_len - 1 : 0;
        break;
    case 2:
        len = body_len + 1;
        break;
    default:
        len = 64 * 1024;
        break;
    }
    if (len > MEMFD_MAX)
        len = MEMFD_MAX;
    int fd = memfd_create("fuzz-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)len) < 0) {
        close(fd);
        return -1;
    }
    if (size > 0 && len > 0) {
        uint8_t *p = mmap(NULL, len, PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            for (uint64_t o = 0; o < len; o += size)
                memcpy(p + o, data, len - o < size ? len - o : size);
            munmap(p, len);
        }
    }
    if (!(seq & 4))
        fcntl(fd, F_ADD_SEALS, SEALS);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    /* libFuzzer itself may hold an fd between inputs; only what changes
     * during one input is this input's doing. */
    int before = lowest_fd();
    if (before != lowest_free_fd) {
        fprintf(stderr, "fuzz_wire: note: lowest free fd moved from %d to %d between inputs\n",
                lowest_free_fd, before);
        lowest_free_fd = before;
    }

    struct wire_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(&h, data, size < sizeof h ? size : sizeof h);

    int fds[8];
    size_t n_fds = 0;
    if (size >= sizeof h && (h.flags & WIRE_F_BODY_IN_FD)) {
        int fd = make_memfd(data, size, h.body_len, h.seq);
        if (fd >= 0)
            fds[n_fds++] = fd;
    }
    for (unsigned extra = (h.seq >> 3) & 7; extra > 0; extra--) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            fds[n_fds++] = fd;
    }

    union {
        char buf[CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {(void *)data, size};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n_fds) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
    }
    ssize_t sent = sendmsg(sv[0], &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    for (size_t i = 0; i < n_fds; i++)
        close(fds[i]);
    if (sent < 0)
        return 0; /* larger than the socket takes: nothing to receive */

    int st = wire_recv(sv[1], &msg);
    if (st == ODK_OK) {
        if (msg.body_len && !msg.body)
            die("accepted message with a body length but no body");
        if (msg.n_fds > WIRE_MAX_FDS)
            die("more fds than WIRE_MAX_FDS");
        odk_value *v = NULL;
        if (wire_msg_value(&msg, &v) == ODK_OK) {
            if (!v)
                die("wire_msg_value OK with no value");
            odk_value_free(v);
        }
        struct call_view view;
        run_call_check(CALL_SOCKET, msg.body, msg.body_len, table, N_TABLE, find, NULL, &view);
    } else if (st != ODK_E_PROTOCOL && st != ODK_E_DISCONNECTED && st != ODK_E_NOMEM) {
        fprintf(stderr, "fuzz_wire: wire_recv gave %d\n", st);
        die("unexpected wire_recv status");
    }
    /* The message (and its receive buffer) is reused by the next
     * wire_recv, as odkd and the hosts do; its fds are taken here so the
     * leak check below sees only fds that wire_recv lost track of. */
    for (size_t i = 0; i < msg.n_fds; i++) {
        int fd = wire_msg_take_fd(&msg, i);
        if (fd >= 0)
            close(fd);
    }
    int now = lowest_fd();
    if (fcntl(sv[0], F_GETFD) < 0 || fcntl(sv[1], F_GETFD) < 0)
        die("the socketpair was closed under the harness (a double close)");
    if (now != lowest_free_fd) {
        char link[64], target[256] = "?";
        snprintf(link, sizeof link, "/proc/self/fd/%d", lowest_free_fd);
        ssize_t tl = readlink(link, target, sizeof target - 1);
        target[tl > 0 ? tl : 1] = '\0';
        fprintf(stderr, "fuzz_wire: lowest free fd was %d, is %d after this input (%d -> %s)\n",
                lowest_free_fd, now, lowest_free_fd, target);
        die(now > lowest_free_fd ? "a file descriptor leaked (wire_recv kept one open)"
                                 : "a file descriptor was closed twice");
    }
    return 0;
}
