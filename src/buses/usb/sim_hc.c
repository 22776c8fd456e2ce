/* SPDX-License-Identifier: MIT */
/* sim_hc.c — the simulated USB host controller inside odkd: a source of
 * devices (usb_dev.h) whose devices are model processes.
 *
 * `odkctl usb plug MODEL` starts the model's process (odk-usb-model) with
 * a connection on its fd 3 and enumerates it as a host controller would:
 * the device descriptor, every configuration (first 9 bytes, then
 * wTotalLength), the strings.  Each is checked (odk/usb_descriptors.h);
 * devices.c makes the nodes from them, an IOUSBHostDevice node carrying
 * the reason in OdkUSBError when a check failed.
 *
 * odkd never waits on a model: every request is answered through the loop,
 * and a model that leaves one unanswered for MODEL_DEADLINE_MS is killed
 * and its device unplugged, as is a model that crashes or reports that
 * its device dropped off the bus.  Drivers reach the model directly: a
 * host's usb-open gets one end of a fresh socket whose other end odkd
 * hands the model (USBW_ATTACH); odkd is never on the data path. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buses/usb/sim_hc.h"
#include "buses/usb/sim_wire.h"
#include "buses/usb/usb_dev.h"
#include "daemon/core/loop.h"
#include "daemon/core/msg.h"
#include "daemon/front/requests.h"
#include "daemon/front/server.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"
#include "odk/usb_descriptors.h"

#define MODEL_DEADLINE_MS 2000

struct usb_pending {
    uint32_t id;
    void (*fn)(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w, const uint8_t *body,
               size_t len);
    /* or: the odkctl request waiting for the model's status */
    bool for_client;
    uint64_t conn_id;
    uint32_t seq;
    struct usb_pending *next;
};

static const struct usb_source sim_source;

static void dev_fail(struct odkd *d, struct usb_dev *dev, const char *why);
static void enumerate_next(struct odkd *d, struct usb_dev *dev);

/* ---- talking to the model ------------------------------------------------ */

static int dev_send(struct usb_dev *dev, const struct usb_wire *w, const void *body, size_t len,
                    int fd)
{
    /* Never waits: a model that does not read is a hung model. */
    return usb_wire_send(dev->fd, w, body, len, fd, MSG_DONTWAIT) < 0 ? ODK_E_IO : ODK_OK;
}

static void deadline_passed(struct odkd *d, void *ptr)
{
    struct usb_dev *dev = ptr;
    dev->deadline_timer = 0;
    char why[160];
    snprintf(why, sizeof why, "the device model %s did not answer within %d ms", dev->model,
             MODEL_DEADLINE_MS);
    dev_fail(d, dev, why);
}

/* Sends a request whose reply fn handles; the model must answer in time. */
static int dev_request(struct odkd *d, struct usb_dev *dev, struct usb_wire *w, const void *body,
                       size_t len, int fd,
                       void (*fn)(struct odkd *, struct usb_dev *, const struct usb_wire *,
                                  const uint8_t *, size_t))
{
    struct usb_pending *p = calloc(1, sizeof *p);
    if (!p)
        return ODK_E_NOMEM;
    w->id = p->id = ++dev->next_id ? dev->next_id : ++dev->next_id;
    p->fn = fn;
    int st = dev_send(dev, w, body, len, fd);
    if (st < 0) {
        free(p);
        return st;
    }
    p->next = dev->pending;
    dev->pending = p;
    if (!dev->deadline_timer)
        dev->deadline_timer = loop_timer(d, MODEL_DEADLINE_MS, deadline_passed, dev);
    return ODK_OK;
}

/* A request an odkctl request waits on: the model's status is its reply. */
static int client_request(struct client_request *r, struct usb_dev *dev, struct usb_wire *w,
                          const void *body, size_t len)
{
    int st = dev_request(r->d, dev, w, body, len, -1, NULL);
    if (st < 0)
        return st;
    dev->pending->for_client = true; /* dev_request put it first */
    dev->pending->conn_id = r->conn_id;
    dev->pending->seq = r->seq;
    r->later = true;
    return ODK_OK;
}

static int control_in(struct odkd *d, struct usb_dev *dev, uint8_t req, uint16_t value,
                      uint16_t index, uint16_t len,
                      void (*fn)(struct odkd *, struct usb_dev *, const struct usb_wire *,
                                 const uint8_t *, size_t))
{
    struct usb_wire w = {.op = USBW_CONTROL,
                         .setup = {0x80, req, (uint8_t)value, (uint8_t)(value >> 8),
                                   (uint8_t)index, (uint8_t)(index >> 8), (uint8_t)len,
                                   (uint8_t)(len >> 8)}};
    return dev_request(d, dev, &w, NULL, 0, -1, fn);
}

static void on_report(struct odkd *d, struct usb_dev *dev, const uint8_t *body, size_t len)
{
    char *json = strndup((const char *)body, len);
    odk_value *v = NULL;
    if (json && odk_value_from_json(json, &v, NULL, 0) == ODK_OK) {
        if (dev->node) {
            usb_dev_set_property(d, dev, "OdkUSBModelState", v);
        } else {
            odk_value_free(dev->report);
            dev->report = v;
        }
    }
    free(json);
}

static void on_reply(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                     const uint8_t *body, size_t len)
{
    for (struct usb_pending **pp = &dev->pending; *pp; pp = &(*pp)->next) {
        struct usb_pending *p = *pp;
        if (p->id != w->id)
            continue;
        *pp = p->next;
        if (!dev->pending && dev->deadline_timer) {
            loop_timer_cancel(d, dev->deadline_timer);
            dev->deadline_timer = 0;
        }
        if (p->for_client)
            server_reply_later(d, p->conn_id, p->seq, w->status, NULL);
        else if (p->fn)
            p->fn(d, dev, w, body, len);
        free(p);
        return;
    }
    /* A reply nobody waits for (an attach's): nothing to do. */
}

static void on_readable(struct odkd *d, void *ptr, uint32_t events)
{
    struct usb_dev *dev = ptr;
    static uint8_t buf[USBW_MAX_PACKET];
    for (int i = 0; i < 64 && !dev->dying; i++) {
        ssize_t n = recv(dev->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            char why[200];
            snprintf(why, sizeof why, "the device model %s %s (its reason is in odkd's log)",
                     dev->model, dev->step || dev->node ? "exited or crashed" : "did not start");
            dev_fail(d, dev, why);
            return;
        }
        if ((size_t)n < sizeof(struct usb_wire) || (size_t)n > sizeof buf) {
            dev_fail(d, dev, "the device model sent a malformed message");
            return;
        }
        struct usb_wire w;
        memcpy(&w, buf, sizeof w);
        const uint8_t *body = buf + sizeof w;
        size_t len = (size_t)n - sizeof w;
        switch (w.op) {
        case USBW_HELLO:
            dev->speed = (odk_usb_speed)w.length;
            dev->step = 0;
            enumerate_next(d, dev);
            break;
        case USBW_CONFIGURED:
        {
            uint8_t alts[256] = {0};
            memcpy(alts, body, len < sizeof alts ? len : sizeof alts);
            usb_dev_configured(d, dev, (uint8_t)w.length, alts);
        }
            break;
        case USBW_REPORT:
            on_report(d, dev, body, len);
            break;
        case USBW_GONE:
            dev_fail(d, dev, "the device dropped off the bus");
            return;
        default:
            on_reply(d, dev, &w, body, len);
            break;
        }
    }
    (void)events;
}

/* ---- enumeration --------------------------------------------------------- */

static void finish_plug(struct odkd *d, struct usb_dev *dev, int status, const char *error)
{
    if (!dev->plug_waiting)
        return;
    dev->plug_waiting = false;
    struct msg m = msg_begin();
    if (dev->node)
        msg_int(&m, "node", (int64_t)dev->node);
    if (error)
        msg_str(&m, "error", error);
    odk_value *out = NULL;
    msg_finish(&m, &out);
    server_reply_later(d, dev->plug_conn, dev->plug_seq, status, out);
}

/* Adds the device node (devices.c): registered when its descriptors
 * passed, or inactive with the reason; then the plug request's answer. */
static void add_device_node(struct odkd *d, struct usb_dev *dev, const char *error)
{
    if (usb_dev_add_node(d, dev, usb_bus_state->hc, error) < 0)
        return;
    finish_plug(d, dev, ODK_OK, error);
}

static void configured_reply(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                             const uint8_t *body, size_t len)
{
    (void)body, (void)len;
    if (w->status < 0)
        odk_warn("usb: %s: SET_CONFIGURATION refused: %s", dev->model, odk_strerror(w->status));
    (void)d;
}

/* The composite rule's SET_CONFIGURATION; the model's USBW_CONFIGURED
 * notice brings the interfaces. */
static int sim_configure(struct odkd *d, struct usb_dev *dev, uint8_t value)
{
    struct usb_wire w = {.op = USBW_CONTROL, .setup = {0, 9, value, 0}};
    return dev_request(d, dev, &w, NULL, 0, -1, configured_reply);
}

static int sim_set_configuration(struct odkd *d, struct usb_dev *dev, uint8_t value, char *err,
                                 size_t err_len)
{
    int st = sim_configure(d, dev, value);
    if (st < 0)
        snprintf(err, err_len, "the model does not answer: %s", odk_strerror(st));
    return st;
}

static void got_descriptor(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                           const uint8_t *body, size_t len);

/* The steps: 0 device descriptor; 1 + 2i configuration i's head, 2 + 2i
 * all of it; then the three strings; then the node. */
static void enumerate_next(struct odkd *d, struct usb_dev *dev)
{
    const odk_usb_device_descriptor *dd = usb_dev_desc(dev);
    unsigned step = dev->step, nc = dev->step ? dd->bNumConfigurations : 0;
    int st;
    if (step == 0) {
        st = control_in(d, dev, 6, ODK_USB_DT_DEVICE << 8, 0, 18, got_descriptor);
    } else if (step <= 2 * nc) {
        unsigned i = (step - 1) / 2;
        uint16_t len = (step % 2) ? 9 : (uint16_t)(dev->configs[i][2] | dev->configs[i][3] << 8);
        st = control_in(d, dev, 6, (uint16_t)(ODK_USB_DT_CONFIG << 8 | i), 0, len, got_descriptor);
    } else if (step <= 2 * nc + 3) {
        const uint8_t idx[3] = {dd->iManufacturer, dd->iProduct, dd->iSerialNumber};
        uint8_t i = idx[step - 2 * nc - 1];
        if (!i) {
            dev->step++;
            enumerate_next(d, dev);
            return;
        }
        st = control_in(d, dev, 6, (uint16_t)(ODK_USB_DT_STRING << 8 | i), 0x0409, 255,
                        got_descriptor);
    } else {
        add_device_node(d, dev, NULL);
        return;
    }
    if (st < 0)
        dev_fail(d, dev, "cannot talk to the device model");
}

static void got_descriptor(struct odkd *d, struct usb_dev *dev, const struct usb_wire *w,
                           const uint8_t *body, size_t len)
{
    char why[300];
    const odk_usb_device_descriptor *dd = usb_dev_desc(dev);
    unsigned step = dev->step, nc = step ? dd->bNumConfigurations : 0;
    if (w->status < 0 && step <= 2 * nc) {
        snprintf(why, sizeof why, "GET_DESCRIPTOR (step %u) failed: %s", step,
                 odk_strerror(w->status));
        add_device_node(d, dev, why);
        return;
    }
    if (step == 0) {
        memset(dev->desc, 0, sizeof dev->desc);
        memcpy(dev->desc, body, len < sizeof dev->desc ? len : sizeof dev->desc);
        if (odk_usb_device_check(body, len, dev->speed, why, sizeof why) < 0) {
            add_device_node(d, dev, why);
            return;
        }
        if (dd->bNumConfigurations > USB_MAX_CONFIGS) {
            snprintf(why, sizeof why, "%u configurations; odk handles up to %d",
                     dd->bNumConfigurations, USB_MAX_CONFIGS);
            add_device_node(d, dev, why);
            return;
        }
    } else if (step <= 2 * nc) {
        unsigned i = (step - 1) / 2;
        if (step % 2) {
            if (len < 9) {
                snprintf(why, sizeof why, "configuration %u: %zu bytes read; its descriptor has 9",
                         i, len);
                add_device_node(d, dev, why);
                return;
            }
            free(dev->configs[i]);
            dev->configs[i] = malloc(9);
            if (!dev->configs[i]) {
                dev_fail(d, dev, "out of memory");
                return;
            }
            memcpy(dev->configs[i], body, 9);
            dev->config_len[i] = 9;
        } else {
            if (odk_usb_config_check(body, len, dev->speed, why, sizeof why) < 0) {
                add_device_node(d, dev, why);
                return;
            }
            uint8_t *c = malloc(len);
            if (!c) {
                dev_fail(d, dev, "out of memory");
                return;
            }
            memcpy(c, body, len);
            free(dev->configs[i]);
            dev->configs[i] = c;
            dev->config_len[i] = len;
            dev->n_configs = i + 1;
        }
    } else if (w->status == ODK_OK) {
        char *dst = dev->strings[step - 2 * nc - 1];
        if (odk_usb_string_to_utf8(body, len, dst, sizeof dev->strings[0]) < 0)
            dst[0] = '\0'; /* a bad string is left out, not fatal */
    }
    dev->step++;
    enumerate_next(d, dev);
}

/* ---- odkctl usb ... ------------------------------------------------------ */

static int spawn(struct odkd *d, const char *model, const char *args_json, struct usb_dev **out,
                 char *err, size_t err_len)
{
    char *path = host_sibling_path(d, "ODK_USB_MODEL", "odk-usb-model");
    if (!path) {
        snprintf(err, err_len, "cannot start a device model: out of memory");
        return ODK_E_NOMEM;
    }
    char *argv[] = {path, (char *)model, (char *)args_json, NULL};
    int fd = -1;
    pid_t pid = host_spawn_with_channel(path, argv, -1, &fd, err, err_len);
    free(path);
    if (pid < 0)
        return ODK_E_IO;
    struct usb_dev *dev = usb_dev_new(&sim_source, model);
    if (!dev) {
        close(fd);
        kill(pid, SIGKILL);
        return ODK_E_NOMEM;
    }
    dev->pid = pid;
    dev->fd = fd;
    dev->port = ++usb_bus_state->ports;
    dev->location = 0x01000000u | dev->port << 20;
    if (loop_add(d, &dev->w, dev->fd, EPOLLIN, on_readable, dev) < 0) {
        usb_dev_destroy(d, dev);
        return ODK_E_IO;
    }
    /* The model must say hello in time too. */
    dev->deadline_timer = loop_timer(d, MODEL_DEADLINE_MS, deadline_passed, dev);
    *out = dev;
    return ODK_OK;
}

static int op_plug(struct client_request *r)
{
    const char *model = odk_dict_get_string(r->args, "model", NULL);
    if (!model || !*model || strchr(model, '/')) {
        snprintf(r->err, sizeof r->err, "usb-plug needs a model name (see odkctl usb models)");
        return ODK_E_INVALID;
    }
    const odk_value *args = odk_dict_get(r->args, "args");
    if (args && odk_value_type(args) != ODK_TYPE_DICT) {
        snprintf(r->err, sizeof r->err, "'args' must be a dictionary");
        return ODK_E_INVALID;
    }
    char *json = args ? odk_value_to_json(args, 0) : strdup("{}");
    if (!json)
        return ODK_E_NOMEM;
    struct usb_dev *dev = NULL;
    int st = spawn(r->d, model, json, &dev, r->err, sizeof r->err);
    free(json);
    if (st < 0)
        return st;
    dev->plug_conn = r->conn_id;
    dev->plug_seq = r->seq;
    dev->plug_waiting = true;
    r->later = true;
    return ODK_OK;
}

static int op_unplug(struct client_request *r)
{
    reg_node *n = request_node(r);
    struct usb_iface *iface;
    struct usb_dev *dev = n ? usb_dev_by_node(n->id, &iface) : NULL;
    if (!dev || iface || dev->src != &sim_source) {
        snprintf(r->err, sizeof r->err, "node %lld is not a simulated USB device",
                 (long long)odk_dict_get_int(r->args, "node", 0));
        return ODK_E_NOT_FOUND;
    }
    if (n->state == REG_TERMINATING || dev->dying) {
        snprintf(r->err, sizeof r->err, "node %llu is already being unplugged",
                 (unsigned long long)n->id);
        return ODK_E_STATE;
    }
    loop_del(r->d, &dev->w);
    usb_dev_unplug(r->d, dev);
    return ODK_OK;
}

static int op_fault(struct client_request *r)
{
    static const char *const names[] = {"", "stall", "short", "babble", "disconnect"};
    const char *fault = odk_dict_get_string(r->args, "fault", "");
    uint32_t kind = 0;
    for (uint32_t i = 1; i < 5; i++)
        if (strcmp(fault, names[i]) == 0)
            kind = i;
    reg_node *n = request_node(r);
    struct usb_dev *dev = n ? usb_dev_by_node(n->id, NULL) : NULL;
    if (!dev || !kind || dev->src != &sim_source) {
        snprintf(r->err, sizeof r->err,
                 "usb-fault needs a simulated USB device's node and a fault (stall, short, "
                 "babble, disconnect)");
        return ODK_E_INVALID;
    }
    struct usb_wire w = {.op = USBW_FAULT, .length = kind,
                         .endpoint = (uint8_t)odk_dict_get_int(r->args, "endpoint", 0)};
    return client_request(r, dev, &w, NULL, 0);
}

/* usb-input {"node", "data": "HEX", "delay_us": N}: bytes for the model (a
 * HID report), applied N microseconds later (at most a second; default 0:
 * at once). */
static int op_input(struct client_request *r)
{
    reg_node *n = request_node(r);
    struct usb_iface *iface;
    struct usb_dev *dev = n ? usb_dev_by_node(n->id, &iface) : NULL;
    if (dev && dev->src != &sim_source)
        dev = NULL;
    const char *hex = odk_dict_get_string(r->args, "data", "");
    size_t len = strlen(hex);
    uint8_t bytes[256];
    bool ok = len % 2 == 0 && len / 2 <= sizeof bytes;
    for (size_t i = 0; ok && i < len / 2; i++) {
        unsigned v;
        ok = sscanf(hex + 2 * i, "%2x", &v) == 1;
        bytes[i] = (uint8_t)v;
    }
    if (!dev || !ok) {
        snprintf(r->err, sizeof r->err,
                 "usb-input needs a simulated USB device's node and 'data' as hex bytes (at most "
                 "%zu)",
                 sizeof bytes);
        return ODK_E_INVALID;
    }
    int64_t delay = odk_dict_get_int(r->args, "delay_us", 0);
    if (delay < 0 || delay > 1000000) {
        snprintf(r->err, sizeof r->err, "usb-input: delay_us is 0 to 1000000");
        return ODK_E_INVALID;
    }
    if (dev->dying || !dev->ready)
        return ODK_E_GONE;
    struct usb_wire w = {.op = USBW_INPUT, .offset = (uint64_t)delay};
    return client_request(r, dev, &w, bytes, len / 2);
}


/* ---- the source ---------------------------------------------------------- */

/* The device is unusable (its model crashed, hung, or the device left the
 * bus): unplug it. */
static void dev_fail(struct odkd *d, struct usb_dev *dev, const char *why)
{
    if (dev->dying)
        return;
    finish_plug(d, dev, ODK_E_IO, why);
    loop_del(d, &dev->w); /* a closed connection stays readable */
    usb_dev_fail(d, dev, why);
}

/* A driver host's connection: one end of a fresh socket, the other handed
 * to the model. */
static int sim_open(struct odkd *d, struct usb_dev *dev, struct usb_iface *iface, int *fd,
                    char *err, size_t err_len)
{
    (void)iface, (void)err, (void)err_len;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return ODK_E_IO;
    struct usb_wire w = {.op = USBW_ATTACH};
    int st = dev_request(d, dev, &w, NULL, 0, sv[1], NULL);
    close(sv[1]);
    if (st < 0) {
        close(sv[0]);
        return ODK_E_GONE;
    }
    *fd = sv[0];
    return ODK_OK;
}

static void sim_describe(struct usb_dev *dev, struct msg *m)
{
    msg_str(m, "OdkUSBModel", dev->model);
    msg_int(m, "OdkUSBModelPid", dev->pid);
}

/* Stops the model. */
static void sim_destroy(struct odkd *d, struct usb_dev *dev)
{
    while (dev->pending) {
        struct usb_pending *p = dev->pending;
        dev->pending = p->next;
        free(p);
    }
    if (dev->deadline_timer)
        loop_timer_cancel(d, dev->deadline_timer);
    dev->deadline_timer = 0;
    finish_plug(d, dev, ODK_E_GONE, "the device went away");
    loop_del(d, &dev->w);
    if (dev->fd >= 0)
        close(dev->fd);
    dev->fd = -1;
    if (dev->pid > 0)
        kill(dev->pid, SIGKILL); /* reaped by odkd's SIGCHLD handler */
}

static const struct usb_source sim_source = {
    .name = "sim",
    .open = sim_open,
    .configure = sim_configure,
    .set_configuration = sim_set_configuration,
    .describe = sim_describe,
    .destroy = sim_destroy,
};

int usb_sim_init(struct odkd *d, struct usb_bus *bus)
{
    struct msg m = msg_begin();
    msg_str(&m, "IOName", "usb-sim");
    odk_value *props;
    int st = msg_finish(&m, &props);
    if (st == ODK_OK)
        st = registry_add(d->reg, registry_root(d->reg), "OdkSimUSBHostController", props,
                          &bus->hc);
    if (st == ODK_OK)
        bus->hc->state = REG_REGISTERED;
    return st;
}

const struct client_op usb_sim_client_ops[] = {
    {"usb-plug", op_plug, true},
    {"usb-unplug", op_unplug, true},
    {"usb-fault", op_fault, true},
    {"usb-input", op_input, true},
    {"usb-list", usb_dev_op_list, false},
    {NULL, NULL, false},
};
