/* SPDX-License-Identifier: MIT */
#include "common/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "odk/log.h"
#include "odk/status.h"

#define RECV_BUF_LEN (sizeof(struct wire_hdr) + WIRE_MAX_INLINE)
#define REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

void wire_msg_init(wire_msg *m)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < WIRE_MAX_FDS; i++)
        m->fds[i] = -1;
}

static void msg_reset(wire_msg *m)
{
    for (size_t i = 0; i < m->n_fds; i++) {
        if (m->fds[i] >= 0)
            close(m->fds[i]);
        m->fds[i] = -1;
    }
    m->n_fds = 0;
    if (m->map)
        munmap(m->map, m->map_len);
    m->map = NULL;
    m->map_len = 0;
    m->body = NULL;
    m->body_len = 0;
}

void wire_msg_release(wire_msg *m)
{
    msg_reset(m);
    free(m->buf);
    m->buf = NULL;
}

int wire_msg_take_fd(wire_msg *m, size_t i)
{
    if (i >= m->n_fds)
        return -1;
    int fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

static int errno_status(int e)
{
    switch (e) {
    case EPIPE:
    case ECONNRESET:
    case ENOTCONN:
        return ODK_E_DISCONNECTED;
    case EAGAIN:
        return ODK_E_AGAIN;
    case ENOMEM:
    case ENOBUFS:
        return ODK_E_NOMEM;
    default:
        return ODK_E_IO;
    }
}

/* Puts an oversized body into a sealed memfd so the receiver can map it
 * without fearing that it changes underneath. */
static int body_to_memfd(const struct iovec *iov, int n_iov, size_t total)
{
    int fd = memfd_create("odk-wire-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)total) < 0)
        goto fail;
    off_t off = 0;
    for (int i = 0; i < n_iov; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            ssize_t w = pwrite(fd, p, left, off);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                goto fail;
            }
            p += w;
            left -= (size_t)w;
            off += w;
        }
    }
    if (fcntl(fd, F_ADD_SEALS, REQUIRED_SEALS) < 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

static int send_packet(int sock, struct iovec *iov, int n_iov,
                       const int *fds, size_t n_fds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
    if (n_fds > 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n >= 0)
            return ODK_OK;
        if (errno == EINTR)
            continue;
        return errno_status(errno);
    }
}

int wire_sendv(int sock, uint16_t type, uint32_t seq, int32_t status, const void *a, size_t a_len,
               const void *b, size_t b_len, const void *c, size_t c_len, const int *fds,
               size_t n_fds)
{
    if (n_fds > WIRE_MAX_FDS - 1)
        return ODK_E_LIMIT;
    size_t total = a_len + b_len + c_len;
    if (total > WIRE_MAX_BODY)
        return ODK_E_LIMIT;
    struct wire_hdr h = {.magic = WIRE_MAGIC,
                         .type = type,
                         .flags = 0,
                         .seq = seq,
                         .status = status,
                         .body_len = total};
    struct iovec iov[4] = {{&h, sizeof h},
                           {(void *)a, a_len},
                           {(void *)b, b_len},
                           {(void *)c, c_len}};
    if (total <= WIRE_MAX_INLINE)
        return send_packet(sock, iov, 4, fds, n_fds);

    int mfd = body_to_memfd(iov + 1, 3, total);
    if (mfd < 0)
        return errno_status(errno);
    int all[WIRE_MAX_FDS];
    all[0] = mfd;
    if (n_fds)
        memcpy(all + 1, fds, sizeof(int) * n_fds);
    h.flags = WIRE_F_BODY_IN_FD;
    int st = send_packet(sock, iov, 1, all, n_fds + 1);
    close(mfd);
    return st;
}

int wire_send(int sock, uint16_t type, uint32_t seq, int32_t status, const void *body,
              size_t body_len, const int *fds, size_t n_fds)
{
    return wire_sendv(sock, type, seq, status, body, body_len, NULL, 0, NULL, 0, fds, n_fds);
}

int wire_send_value(int sock, uint16_t type, uint32_t seq, int32_t status, const odk_value *body,
                    const int *fds, size_t n_fds)
{
    void *buf = NULL;
    size_t len = 0;
    if (body) {
        int st = odk_value_encode(body, &buf, &len);
        if (st < 0)
            return st;
    }
    int st = wire_send(sock, type, seq, status, buf, len, fds, n_fds);
    free(buf);
    return st;
}

static int map_body(wire_msg *m)
{
    if (m->n_fds < 1 || m->hdr.body_len > WIRE_MAX_BODY || m->hdr.body_len <= WIRE_MAX_INLINE)
        return ODK_E_PROTOCOL;
    int fd = m->fds[0];
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS || fstat(fd, &st) < 0 ||
        (uint64_t)st.st_size < m->hdr.body_len)
        return ODK_E_PROTOCOL;
    void *p = mmap(NULL, m->hdr.body_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return ODK_E_NOMEM;
    m->map = p;
    m->map_len = m->hdr.body_len;
    m->body = p;
    m->body_len = m->hdr.body_len;
    close(fd);
    memmove(m->fds, m->fds + 1, sizeof(int) * (m->n_fds - 1));
    m->n_fds--;
    m->fds[m->n_fds] = -1;
    return ODK_OK;
}

int wire_recv(int sock, wire_msg *m)
{
    msg_reset(m);
    if (!m->buf) {
        m->buf = malloc(RECV_BUF_LEN);
        if (!m->buf)
            return ODK_E_NOMEM;
    }
    union {
        char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {m->buf, RECV_BUF_LEN};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno_status(errno);

    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int got[WIRE_MAX_FDS];
        if (k > WIRE_MAX_FDS)
            k = WIRE_MAX_FDS; /* MSG_CTRUNC below rejects the packet */
        memcpy(got, CMSG_DATA(c), k * sizeof(int));
        for (size_t i = 0; i < k && m->n_fds < WIRE_MAX_FDS; i++)
            m->fds[m->n_fds++] = got[i];
    }
    if (n == 0 && m->n_fds == 0)
        return ODK_E_DISCONNECTED;

    int st = ODK_E_PROTOCOL;
    if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof(struct wire_hdr))
        goto bad;
    memcpy(&m->hdr, m->buf, sizeof m->hdr);
    if (m->hdr.magic != WIRE_MAGIC)
        goto bad;
    if (m->hdr.flags & WIRE_F_BODY_IN_FD) {
        if ((size_t)n != sizeof(struct wire_hdr))
            goto bad;
        if ((st = map_body(m)) < 0)
            goto bad;
        return ODK_OK;
    }
    if (m->hdr.flags != 0 || m->hdr.body_len != (size_t)n - sizeof(struct wire_hdr))
        goto bad;
    m->body = m->buf + sizeof(struct wire_hdr);
    m->body_len = m->hdr.body_len;
    return ODK_OK;
bad:
    msg_reset(m);
    return st;
}

int wire_msg_value(const wire_msg *m, odk_value **out)
{
    if (m->body_len == 0) {
        *out = odk_value_new_dict();
        return *out ? ODK_OK : ODK_E_NOMEM;
    }
    odk_value *v = NULL;
    int st = odk_value_decode(m->body, m->body_len, &v);
    if (st < 0)
        return ODK_E_PROTOCOL;
    if (odk_value_type(v) != ODK_TYPE_DICT) {
        odk_value_free(v);
        return ODK_E_PROTOCOL;
    }
    *out = v;
    return ODK_OK;
}

int wire_socketpair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return errno_status(errno);
    return ODK_OK;
}
