/* SPDX-License-Identifier: MIT */
/* odk-usb-model — runs one simulated USB device in a process of its own.
 *
 *   odk-usb-model MODEL [ARGS-JSON]      (fd 3: the connection to odkd)
 *
 * It serves the sim wire protocol (sim_wire.h) on odkd's connection and on
 * every client connection odkd attaches, until odkd's connection closes
 * (the device was unplugged) or the device disconnects itself.  A crash
 * here is a hardware fault for the driver: odkd sees the connection drop
 * and unplugs the device. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buses/usb/model.h"
#include "buses/usb/sim_wire.h"
#include "common/trace.h"
#include "odk/status.h"

#define ODKD_FD 3

struct buffer {
    uint32_t id;
    uint8_t *base;
    size_t size;
    bool writable;
    unsigned inflight;
    struct buffer *next;
};

struct conn {
    int fd;
    bool closing;
    struct buffer *buffers;
};

/* A transfer with what its completion needs. */
struct pending {
    struct usb_xfer x;
    uint32_t wire_id;
    struct buffer *buffer;
};

/* Input odkd asked to apply later (USBW_INPUT with a delay), in order. */
struct later_input {
    uint64_t due_ns;
    size_t len;
    struct later_input *next;
    uint8_t bytes[];
};

static struct later_input *later, **later_tail = &later;

static struct conn **conns; /* conns[0] is odkd */
static size_t n_conns;
static struct usb_model *model;
static uint8_t *packet;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void send_msg(struct conn *c, const struct usb_wire *w, const void *body, size_t len)
{
    if (c->closing)
        return;
    if (usb_wire_send(c->fd, w, body, len, -1, 0) < 0)
        c->closing = true; /* the peer went away: reaped in the loop */
}

static void reply(struct conn *c, const struct usb_wire *req, int status, uint32_t actual,
                  const void *body, size_t len)
{
    struct usb_wire w = {.op = req->op, .id = req->id, .status = status, .actual = actual};
    send_msg(c, &w, body, len);
}

static void on_done(struct usb_model *m, struct usb_xfer *x, void *ctx)
{
    (void)m, (void)ctx;
    struct pending *p = (struct pending *)x;
    struct conn *c = x->owner;
    struct usb_wire w = {.op = USBW_COMPLETE,
                         .id = p->wire_id,
                         .status = x->status,
                         .actual = x->actual,
                         .endpoint = x->endpoint,
                         .timestamp_ns = now_ns()};
    if (trace_on()) /* the HID path's first step (docs/hid.md) */
        trace_mark("usb model sends completion ep 0x%02x cpu %d", x->endpoint, sched_getcpu());
    send_msg(c, &w, NULL, 0);
    p->buffer->inflight--;
    free(p);
}

static struct buffer *find_buffer(struct conn *c, uint32_t id)
{
    for (struct buffer *b = c->buffers; b; b = b->next)
        if (b->id == id)
            return b;
    return NULL;
}

/* ---- operations ---------------------------------------------------------- */

static void op_control(struct conn *c, const struct usb_wire *w, uint8_t *body, size_t len)
{
    struct usb_setup s = {w->setup[0], w->setup[1], (uint16_t)(w->setup[2] | w->setup[3] << 8),
                          (uint16_t)(w->setup[4] | w->setup[5] << 8),
                          (uint16_t)(w->setup[6] | w->setup[7] << 8)};
    bool in = s.bmRequestType & USB_DIR_IN;
    if (!in && len != s.wLength) {
        reply(c, w, ODK_E_PROTOCOL, 0, NULL, 0);
        return;
    }
    static uint8_t data[USBW_MAX_BODY];
    if (!in)
        memcpy(data, body, len);
    uint32_t actual = 0;
    int st = usb_model_control(model, &s, data, &actual);
    reply(c, w, st, actual, in && st == ODK_OK ? data : NULL, in && st == ODK_OK ? actual : 0);
}

static void op_map(struct conn *c, const struct usb_wire *w, int fd)
{
    int st = ODK_OK;
    if (fd < 0 || w->offset == 0 || w->offset > SIZE_MAX)
        st = ODK_E_PROTOCOL;
    else if (find_buffer(c, w->buffer))
        st = ODK_E_EXISTS;
    struct buffer *b = NULL;
    if (st == ODK_OK && !(b = calloc(1, sizeof *b)))
        st = ODK_E_NOMEM;
    if (st == ODK_OK) {
        bool writable = true;
        void *p = mmap(NULL, (size_t)w->offset, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) { /* a write-sealed buffer: OUT transfers only */
            writable = false;
            p = mmap(NULL, (size_t)w->offset, PROT_READ, MAP_SHARED, fd, 0);
        }
        if (p == MAP_FAILED) {
            free(b);
            st = ODK_E_IO;
        } else {
            *b = (struct buffer){.id = w->buffer, .base = p, .size = (size_t)w->offset,
                                 .writable = writable, .next = c->buffers};
            c->buffers = b;
        }
    }
    if (fd >= 0)
        close(fd);
    reply(c, w, st, 0, NULL, 0);
}

static void unmap(struct buffer *b)
{
    munmap(b->base, b->size);
    free(b);
}

static void op_unmap(struct conn *c, const struct usb_wire *w)
{
    for (struct buffer **pb = &c->buffers; *pb; pb = &(*pb)->next) {
        struct buffer *b = *pb;
        if (b->id != w->buffer)
            continue;
        if (b->inflight) {
            reply(c, w, ODK_E_BUSY, 0, NULL, 0);
            return;
        }
        *pb = b->next;
        unmap(b);
        reply(c, w, ODK_OK, 0, NULL, 0);
        return;
    }
    reply(c, w, ODK_E_NOT_FOUND, 0, NULL, 0);
}

static void op_submit(struct conn *c, const struct usb_wire *w)
{
    struct buffer *b = find_buffer(c, w->buffer);
    int st = ODK_OK;
    if (!b && w->length)
        st = ODK_E_NOT_FOUND;
    else if (b && (w->offset > b->size || w->length > b->size - w->offset))
        st = ODK_E_INVALID;
    else if (b && !b->writable && (w->endpoint & ODK_USB_ENDPOINT_IN))
        st = ODK_E_ACCESS;
    struct pending *p = NULL;
    if (st == ODK_OK && !(p = calloc(1, sizeof *p)))
        st = ODK_E_NOMEM;
    if (st == ODK_OK) {
        static struct buffer none; /* zero-length transfers need no buffer */
        p->buffer = b ? b : &none;
        p->wire_id = w->id;
        p->x.id = w->id;
        p->x.endpoint = w->endpoint;
        p->x.data = b ? b->base + w->offset : NULL;
        p->x.length = w->length;
        p->x.owner = c;
        p->buffer->inflight++;
        st = usb_model_submit(model, &p->x);
        if (st < 0) {
            p->buffer->inflight--;
            free(p);
        }
    }
    if (st < 0) {
        struct usb_wire done = {.op = USBW_COMPLETE, .id = w->id, .status = st,
                                .endpoint = w->endpoint, .timestamp_ns = now_ns()};
        send_msg(c, &done, NULL, 0);
    }
}

static int add_conn(int fd)
{
    struct conn **grown = realloc(conns, (n_conns + 1) * sizeof *conns);
    struct conn *c = calloc(1, sizeof *c);
    if (!grown || !c) {
        free(c);
        if (grown)
            conns = grown;
        return ODK_E_NOMEM;
    }
    conns = grown;
    c->fd = fd;
    conns[n_conns++] = c;
    return ODK_OK;
}

static void handle(struct conn *c, const struct usb_wire *w, uint8_t *body, size_t len, int fd)
{
    bool from_odkd = c == conns[0];
    switch (w->op) {
    case USBW_CONTROL:
        op_control(c, w, body, len);
        break;
    case USBW_MAP:
        op_map(c, w, fd);
        return; /* fd consumed */
    case USBW_UNMAP:
        op_unmap(c, w);
        break;
    case USBW_SUBMIT:
        op_submit(c, w);
        break;
    case USBW_ABORT:
        usb_model_abort(model, w->endpoint, c, w->buffer);
        reply(c, w, ODK_OK, 0, NULL, 0);
        break;
    case USBW_ATTACH:
        if (from_odkd && fd >= 0) {
            int st = add_conn(fd);
            if (st == ODK_OK)
                fd = -1;
            reply(c, w, st, 0, NULL, 0);
        } else {
            reply(c, w, ODK_E_ACCESS, 0, NULL, 0);
        }
        break;
    case USBW_INPUT:
        if (from_odkd && (w->offset || later)) {
            /* Behind what is already waiting, never before it. */
            struct later_input *in = malloc(sizeof *in + len);
            if (in) {
                uint64_t due = now_ns() + w->offset * 1000u;
                if (later) {
                    struct later_input *last = later;
                    while (last->next)
                        last = last->next;
                    if (due < last->due_ns)
                        due = last->due_ns;
                }
                *in = (struct later_input){.due_ns = due, .len = len};
                memcpy(in->bytes, body, len);
                *later_tail = in;
                later_tail = &in->next;
            }
            reply(c, w, in ? ODK_OK : ODK_E_NOMEM, 0, NULL, 0);
            break;
        }
        reply(c, w, from_odkd ? usb_model_input(model, body, len) : ODK_E_ACCESS, 0, NULL, 0);
        break;
    case USBW_FAULT:
        if (from_odkd)
            usb_model_inject(model, (enum usb_fault)w->length, w->endpoint);
        reply(c, w, from_odkd ? ODK_OK : ODK_E_ACCESS, 0, NULL, 0);
        break;
    default:
        reply(c, w, ODK_E_PROTOCOL, 0, NULL, 0);
        break;
    }
    if (fd >= 0)
        close(fd);
}

enum got { GOT_ONE, GOT_NONE, GOT_END };

/* Reads one message from c (waiting for it unless dontwait): GOT_END when
 * c is closed or sent garbage. */
static enum got receive(struct conn *c, bool dontwait)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {packet, USBW_MAX_PACKET};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
    if (n < 0 && errno == EINTR)
        return GOT_ONE;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return GOT_NONE;
    int fd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                int got;
                memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
                if (fd < 0)
                    fd = got;
                else
                    close(got);
            }
    if (n <= 0 || (size_t)n < sizeof(struct usb_wire) || (mh.msg_flags & MSG_TRUNC)) {
        if (fd >= 0)
            close(fd);
        return GOT_END;
    }
    struct usb_wire w;
    memcpy(&w, packet, sizeof w);
    handle(c, &w, packet + sizeof w, (size_t)n - sizeof w, fd);
    return GOT_ONE;
}

static void drop_conn(size_t i)
{
    struct conn *c = conns[i];
    c->closing = true;
    if (model)
        usb_model_abort(model, 0xff, c, 0);
    while (c->buffers) {
        struct buffer *b = c->buffers;
        c->buffers = b->next;
        unmap(b);
    }
    close(c->fd);
    free(c);
    conns[i] = conns[--n_conns];
}

/* Tells odkd what changed while handling a message. */
static void notify_odkd(uint8_t *last_config, uint8_t last_alts[256], bool *gone_sent)
{
    struct conn *o = conns[0];
    uint8_t alts[256];
    for (unsigned i = 0; i < 256; i++)
        alts[i] = usb_model_alt(model, (uint8_t)i);
    uint8_t cfg = usb_model_configuration(model);
    if (cfg != *last_config || memcmp(alts, last_alts, sizeof alts) != 0) {
        struct usb_wire w = {.op = USBW_CONFIGURED, .length = cfg};
        send_msg(o, &w, alts, sizeof alts);
        *last_config = cfg;
        memcpy(last_alts, alts, sizeof alts);
    }
    if (usb_model_report_changed(model)) {
        odk_value *r = usb_model_report(model);
        char *json = r ? odk_value_to_json(r, 0) : NULL;
        if (json) {
            struct usb_wire w = {.op = USBW_REPORT};
            send_msg(o, &w, json, strlen(json));
        }
        free(json);
        odk_value_free(r);
    }
    if (usb_model_disconnected(model) && !*gone_sent) {
        struct usb_wire w = {.op = USBW_GONE};
        send_msg(o, &w, NULL, 0);
        *gone_sent = true;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: odk-usb-model MODEL [ARGS-JSON]   (fd 3: odkd's connection)\n"
                        "models:");
        for (size_t i = 0; usb_models[i]; i++)
            fprintf(stderr, " %s", usb_models[i]->name);
        fprintf(stderr, "\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    trace_open();
    const struct usb_model_ops *ops = usb_model_find(argv[1]);
    if (!ops) {
        fprintf(stderr, "odk-usb-model: no model named %s\n", argv[1]);
        return 2;
    }
    odk_value *args = NULL;
    char err[256];
    if (argc == 3 && odk_value_from_json(argv[2], &args, err, sizeof err) < 0) {
        fprintf(stderr, "odk-usb-model: arguments: %s\n", err);
        return 2;
    }
    packet = malloc(USBW_MAX_PACKET);
    if (!packet || add_conn(ODKD_FD) < 0)
        return 1;
    int st = usb_model_create(ops, args, on_done, NULL, &model, err, sizeof err);
    odk_value_free(args);
    if (st < 0) {
        fprintf(stderr, "odk-usb-model: %s: %s\n", ops->name, err[0] ? err : odk_strerror(st));
        return 1;
    }
    struct usb_wire hello = {.op = USBW_HELLO, .length = (uint32_t)usb_model_speed(model)};
    send_msg(conns[0], &hello, ops->name, strlen(ops->name));

    uint8_t last_config = 0, last_alts[256] = {0};
    bool gone_sent = false;
    struct pollfd *pfd = NULL;
    while (!conns[0]->closing) {
        struct pollfd *grown = realloc(pfd, (n_conns + 1) * sizeof *pfd);
        if (!grown)
            break;
        pfd = grown;
        for (size_t i = 0; i < n_conns; i++)
            pfd[i] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN};
        size_t n = n_conns;
        /* The model's wire (a peer device's socket), after the connections. */
        short wire_events = 0;
        int wire = usb_model_watched(model, &wire_events);
        pfd[n] = (struct pollfd){.fd = wire_events ? wire : -1, .events = wire_events};
        int timeout = -1;
        if (later) {
            uint64_t now = now_ns();
            timeout = later->due_ns <= now ? 0 : (int)((later->due_ns - now + 999999) / 1000000);
        }
        if (poll(pfd, n + 1, timeout) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        /* Delayed input whose time came. */
        while (later && later->due_ns <= now_ns()) {
            struct later_input *in = later;
            if (!(later = in->next))
                later_tail = &later;
            usb_model_input(model, in->bytes, in->len);
            free(in);
        }
        if (pfd[n].revents)
            usb_model_wire_ready(model);
        /* Clients first (from the last, so dropping one keeps the indexes
         * of those not yet looked at), odkd last. */
        for (size_t i = n; i-- > 0;) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct conn *c = conns[i];
            /* Everything that is there, a batch at a time: a busy driver
             * sends many transfers per wake-up. */
            enum got g = receive(c, false);
            for (int k = 0; g == GOT_ONE && !c->closing && k < 64; k++)
                g = receive(c, true);
            if (g == GOT_END || c->closing) {
                if (i == 0) {
                    c->closing = true;
                    break;
                }
                drop_conn(i);
            }
        }
        if (!conns[0]->closing)
            notify_odkd(&last_config, last_alts, &gone_sent);
    }
    /* Unplugged: every client's pending transfers end with ODK_E_GONE. */
    usb_model_destroy(model);
    model = NULL;
    while (n_conns > 1)
        drop_conn(n_conns - 1);
    free(conns[0]);
    free(conns);
    free(pfd);
    while (later) {
        struct later_input *in = later;
        later = in->next;
        free(in);
    }
    free(packet);
    return 0;
}
