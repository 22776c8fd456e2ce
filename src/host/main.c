/* odk-driver-host: one process per matched driver instance.
 *
 * Everything it needs arrives from odkd over fd 3 (a SOCK_SEQPACKET
 * channel): the start message with the personality and provider, the
 * driver's shared object as a file descriptor, and later one channel per
 * app that opens a user client.  The main thread only reads that channel;
 * driver code runs on the driver's queues.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wire.h"
#include "odk/driver.h"
#include "runtime/driver_internal.h"
#include "runtime/host_link.h"

#define CONTROL_FD 3

/* Requests from driver queues to odkd wait here for their replies, which
 * the main thread reads. */
struct pending {
    uint32_t seq;
    bool done;
    int status;
    odk_value *reply;
    int fds[WIRE_MAX_FDS];
    size_t n_fds;
    struct pending *next;
};

struct host {
    int ctl;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t next_seq;
    struct pending *pending;
    bool odkd_gone;
    odk_driver *drv;
    uint32_t start_seq;
    bool stopping;
};

static int host_request(void *ctx, const char *op, odk_value *args, odk_value **reply, int *fds,
                        size_t *n_fds)
{
    struct host *h = ctx;
    if (!args)
        args = odk_value_new_dict();
    if (!args || odk_dict_set_string(args, "op", op) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    struct pending p = {0};
    pthread_mutex_lock(&h->lock);
    if (h->odkd_gone) {
        pthread_mutex_unlock(&h->lock);
        odk_value_free(args);
        return ODK_E_DISCONNECTED;
    }
    p.seq = ++h->next_seq | 0x80000000u; /* high bit: requests from the host */
    p.next = h->pending;
    h->pending = &p;
    int st = wire_send_value(h->ctl, WIRE_REQUEST, p.seq, 0, args, NULL, 0);
    odk_value_free(args);
    while (st == ODK_OK && !p.done && !h->odkd_gone)
        pthread_cond_wait(&h->cond, &h->lock);
    for (struct pending **pp = &h->pending; *pp; pp = &(*pp)->next) {
        if (*pp == &p) {
            *pp = p.next;
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (st == ODK_OK)
        st = p.done ? p.status : ODK_E_DISCONNECTED;
    if (reply)
        *reply = p.reply;
    else
        odk_value_free(p.reply);
    size_t room = n_fds ? *n_fds : 0;
    for (size_t i = 0; i < p.n_fds; i++) {
        if (i < room && fds)
            fds[i] = p.fds[i];
        else
            close(p.fds[i]);
    }
    if (n_fds)
        *n_fds = p.n_fds < room ? p.n_fds : room;
    return st;
}

static void complete_pending(struct host *h, wire_msg *m)
{
    odk_value *v = NULL;
    if (wire_msg_value(m, &v) < 0)
        v = NULL;
    pthread_mutex_lock(&h->lock);
    for (struct pending *p = h->pending; p; p = p->next) {
        if (p->seq == m->hdr.seq) {
            p->done = true;
            p->status = m->hdr.status;
            p->reply = v;
            v = NULL;
            for (size_t i = 0; i < m->n_fds; i++) {
                int fd = wire_msg_take_fd(m, i);
                if (fd >= 0)
                    p->fds[p->n_fds++] = fd;
            }
            break;
        }
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    odk_value_free(v);
}

static void reply(struct host *h, uint32_t seq, int status)
{
    wire_send(h->ctl, WIRE_REPLY, seq, status, NULL, 0, NULL, 0);
}

static void start_done(void *ctx, int status)
{
    struct host *h = ctx;
    if (status < 0)
        odk_error("start failed: %s", odk_strerror(status));
    else
        odk_info("started");
    reply(h, h->start_seq, status);
    if (status < 0)
        _exit(1);
}

static int load_driver(struct host *h, wire_msg *m, odk_value *args)
{
    const char *bundle = odk_dict_get_string(args, "bundle", "?");
    uint32_t instance = (uint32_t)odk_dict_get_int(args, "instance", 0);
    char tag[256];
    snprintf(tag, sizeof tag, "%s#%u", bundle, instance);
    odk_log_set_tag(tag);

    int so_fd = wire_msg_take_fd(m, 0);
    if (so_fd < 0) {
        odk_error("start message carries no shared object");
        return ODK_E_PROTOCOL;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", so_fd);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    close(so_fd);
    if (!dl) {
        odk_error("cannot load %s: %s", odk_dict_get_string(args, "executable", "?"), dlerror());
        return ODK_E_LOAD;
    }
    const char *cls_name = odk_dict_get_string(args, "class", "");
    const odk_driver_class *cls = odk_driver_class_find(cls_name);
    if (!cls) {
        odk_error("the shared object declares no class named '%s' (IOUserClass)", cls_name);
        return ODK_E_LOAD;
    }
    const odk_value *pers = odk_dict_get(args, "personality");
    const odk_value *props = odk_dict_get(args, "provider_properties");
    odk_driver_info info = {
        .bundle_id = bundle,
        .instance = instance,
        .personality = pers ? odk_value_copy(pers) : NULL,
        .provider_props = props ? odk_value_copy(props) : NULL,
        .provider_id = (uint64_t)odk_dict_get_int(args, "provider", 0),
        .service_id = (uint64_t)odk_dict_get_int(args, "node", 0),
    };
    int st = odk_driver_create(cls, &info, &h->drv);
    if (st < 0)
        return st;
    h->start_seq = m->hdr.seq;
    return odk_driver_start_async(h->drv, start_done, h);
}

static void stop_done(void *ctx)
{
    struct host *h = ctx;
    odk_info("stopped");
    reply(h, h->start_seq, ODK_OK);
    /* The queue is still running this callback: leave through the main
     * thread, which sees odkd close the channel. */
}

static void handle_request(struct host *h, wire_msg *m)
{
    odk_value *args = NULL;
    if (wire_msg_value(m, &args) < 0) {
        reply(h, m->hdr.seq, ODK_E_PROTOCOL);
        return;
    }
    const char *op = odk_dict_get_string(args, "op", "");
    int st = ODK_OK;
    if (strcmp(op, "start") == 0) {
        st = h->drv ? ODK_E_STATE : load_driver(h, m, args);
        if (st < 0) {
            reply(h, m->hdr.seq, st);
            odk_value_free(args);
            _exit(1);
        }
    } else if (strcmp(op, "open-client") == 0) {
        int fd = wire_msg_take_fd(m, 0);
        if (!h->drv || fd < 0) {
            if (fd >= 0)
                close(fd);
        } else {
            odk_driver_add_client(h->drv, fd, (uint64_t)odk_dict_get_int(args, "node", 0),
                                  (uint32_t)odk_dict_get_int(args, "type", 0),
                                  (uint32_t)odk_dict_get_int(args, "uid", 0),
                                  (int32_t)odk_dict_get_int(args, "pid", 0));
        }
    } else if (strcmp(op, "stop") == 0) {
        if (!h->drv || h->stopping) {
            reply(h, m->hdr.seq, h->drv ? ODK_E_STATE : ODK_OK);
        } else {
            h->stopping = true;
            h->start_seq = m->hdr.seq;
            odk_driver_stop_async(h->drv, stop_done, h);
        }
    } else {
        reply(h, m->hdr.seq, ODK_E_UNSUPPORTED);
    }
    odk_value_free(args);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    odk_log_set_tag("odk-driver-host");
    if (getenv("ODK_LOG_DEBUG"))
        odk_log_set_level(ODK_LOG_DEBUG);
    struct host h = {.ctl = CONTROL_FD};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    odk_runtime_set_host_link(host_request, &h);

    wire_msg m;
    wire_msg_init(&m);
    for (;;) {
        int st = wire_recv(h.ctl, &m);
        if (st == ODK_E_PROTOCOL) {
            odk_warn("malformed message from odkd; ignored");
            continue;
        }
        if (st < 0)
            break;
        if (m.hdr.type == WIRE_REPLY)
            complete_pending(&h, &m);
        else if (m.hdr.type == WIRE_REQUEST)
            handle_request(&h, &m);
    }
    /* odkd closed the channel (after a stop, or because it went away). */
    pthread_mutex_lock(&h.lock);
    h.odkd_gone = true;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    wire_msg_release(&m);
    if (h.drv && !h.stopping)
        odk_warn("odkd went away; exiting");
    /* Exit without running driver teardown on a possibly hung queue:
     * odkd already took what it needed; the kernel reclaims the rest. */
    _exit(0);
}
