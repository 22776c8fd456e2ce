/* SPDX-License-Identifier: MIT */
/* Install checks in a throwaway driver host: odkd never dlopens a driver
 * (a constructor in the shared object would run inside odkd); the host it
 * spawns here does, exactly as it would to start the driver, answers one
 * "check" request and is killed. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/wire.h"
#include "daemon/bookkeeping/check.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/core/msg.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

struct check {
    pid_t pid;
    int ctl_fd;
    struct watch watch;
    uint64_t timer;
    check_done_fn done;
    void *ctx;
    char *bundle_id;
    bool finished;
};

static void check_free(void *ptr)
{
    struct check *c = ptr;
    free(c->bundle_id);
    free(c);
}

static void finish(struct odkd *d, struct check *c, int status, const char *why)
{
    if (c->finished)
        return;
    c->finished = true;
    loop_del(d, &c->watch);
    loop_timer_cancel(d, c->timer);
    close(c->ctl_fd);
    /* Whatever the shared object started (threads, children of its own)
     * ends with the host; odkd's SIGCHLD handler reaps it. */
    kill(c->pid, SIGKILL);
    if (status < 0)
        odk_warn("install check of %s: %s", c->bundle_id, why);
    c->done(d, c->ctx, status, why);
    loop_defer_free(d, check_free, c);
}

static void on_reply(struct odkd *d, void *ptr, uint32_t events)
{
    (void)events;
    struct check *c = ptr;
    wire_msg m;
    wire_msg_init(&m);
    int st = wire_recv(c->ctl_fd, &m);
    if (st == ODK_E_AGAIN) {
        wire_msg_release(&m);
        return;
    }
    if (st < 0) {
        /* The host died before answering: most likely a constructor in the
         * shared object crashed (or called exit). */
        finish(d, c, ODK_E_LOAD,
               "the driver host died while loading the shared object (a constructor in it "
               "crashed or exited?); `odkd`'s log has its last words");
    } else if (m.hdr.type == WIRE_REPLY && m.hdr.seq == 1) {
        odk_value *body = NULL;
        if (wire_msg_value(&m, &body) < 0)
            body = NULL;
        const char *why = odk_dict_get_string(body, "error", NULL);
        finish(d, c, m.hdr.status, why ? why : odk_strerror(m.hdr.status));
        odk_value_free(body);
    }
    /* Anything else (a request from a constructor calling into odkd) gets
     * no answer: the check is only about loading. */
    wire_msg_release(&m);
}

static void on_deadline(struct odkd *d, void *ptr)
{
    struct check *c = ptr;
    c->timer = 0;
    char why[160];
    snprintf(why, sizeof why,
             "loading the shared object took more than %d ms (a constructor in it hangs?)",
             CHECK_DEADLINE_MS);
    finish(d, c, ODK_E_TIMEOUT, why);
}

/* {"op": "check", "executable", "classes": [IOUserClass, ...], "personalities"} */
static odk_value *check_args(const bundle *b)
{
    odk_value *classes = odk_value_new_array();
    for (size_t i = 0; classes && i < odk_dict_count(b->personalities); i++) {
        const odk_value *p = odk_dict_value_at(b->personalities, i);
        const char *cls = odk_dict_get_string(p, "IOUserClass", NULL);
        bool seen = false;
        for (size_t k = 0; cls && k < odk_array_count(classes); k++)
            seen |= strcmp(odk_value_string(odk_array_get(classes, k)), cls) == 0;
        if (cls && !seen && odk_array_append(classes, odk_value_new_string(cls)) < 0) {
            odk_value_free(classes);
            classes = NULL;
        }
    }
    struct msg m = msg_begin();
    msg_str(&m, "op", "check");
    msg_str(&m, "bundle", b->id);
    msg_str(&m, "executable", b->executable);
    msg_take(&m, "classes", classes);
    return msg_done(&m);
}

int check_bundle(struct odkd *d, const bundle *b, check_done_fn done, void *ctx)
{
    int so = open(b->executable, O_RDONLY | O_CLOEXEC);
    if (so < 0)
        return ODK_E_LOAD;
    odk_value *args = check_args(b);
    odk_value *sandbox = NULL; /* the check host runs the bundle's constructors */
    if (args && host_sandbox_args(d, b, &sandbox) == ODK_OK)
        odk_dict_set(args, "sandbox", sandbox);
    struct check *c = calloc(1, sizeof *c);
    char *id = strdup(b->id);
    if (!args || !c || !id) {
        close(so);
        odk_value_free(args);
        free(c);
        free(id);
        return ODK_E_NOMEM;
    }
    struct host_proc hp;
    int st = host_spawn(d, &hp);
    if (st < 0) {
        close(so);
        odk_value_free(args);
        free(c);
        free(id);
        return st;
    }
    /* The host's words while loading (a constructor's printf) go nowhere:
     * the reply says what matters. */
    close(hp.log_fd);
    *c = (struct check){.pid = hp.pid, .ctl_fd = hp.ctl_fd, .watch = {.fd = -1}, .done = done,
                        .ctx = ctx, .bundle_id = id};
    st = wire_send_value(c->ctl_fd, WIRE_REQUEST, 1, 0, args, &so, 1);
    odk_value_free(args);
    close(so);
    if (st == ODK_OK)
        st = loop_add(d, &c->watch, c->ctl_fd, EPOLLIN, on_reply, c);
    if (st == ODK_OK) {
        c->timer = loop_timer(d, CHECK_DEADLINE_MS, on_deadline, c);
        return ODK_OK;
    }
    loop_del(d, &c->watch);
    close(c->ctl_fd);
    kill(c->pid, SIGKILL);
    check_free(c);
    return ODK_E_IO;
}
