/* SPDX-License-Identifier: MIT */
/* sim_pci.c — the simulated PCI bus inside odkd.
 *
 * `odkctl pci plug MODEL` starts the model's process (odk-pci-model) with a
 * connection on its fd 3.  The model's hello carries its configuration
 * space and BAR sizes; odkd checks them (config.h) and publishes an
 * IOPCIDevice node with IOKit's properties.  A function that fails the
 * check gets its node too, with the reason in OdkPCIError, but is never
 * registered, so nothing matches it.
 *
 * A driver's pci-open gets one end of a fresh socket whose other end odkd
 * hands the model (PCIW_ATTACH): from then on the driver host and the model
 * talk directly.  The open is exclusive.  When the link ends — the driver
 * closed it, stopped, or its host died — the model says so (PCIW_DETACHED)
 * and odkd answers with PCIW_RESET: bus mastering off, then a
 * function-level reset, before anyone else may open the function.  A new
 * open that races the notice sends the reset first itself: messages on the
 * model's connection are handled in order, so no attach can overtake it. */
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

#include "buses/pci/config.h"
#include "buses/pci/pci_wire.h"
#include "buses/pci/sim_pci.h"
#include "buses/pci/vfio.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/loop.h"
#include "daemon/core/msg.h"
#include "daemon/front/requests.h"
#include "daemon/front/server.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"

#define MODEL_DEADLINE_MS 2000

struct pci_fn {
    pid_t pid;
    int fd;
    struct watch w;
    char *model;
    unsigned slot;
    uint64_t node;
    bool ready, dying;
    struct pci_hello *hello;
    uint64_t hello_timer;
    char *error;

    uint64_t plug_conn;
    uint32_t plug_seq;
    bool plug_waiting;

    uint32_t next_id;
    uint64_t links;      /* links attached so far: the current one's generation */
    bool needs_reset;    /* a link was attached and no reset sent since */
    uint32_t holder;     /* the instance holding the open link, 0 for none */
    pid_t holder_pid;
    odk_value *report;   /* the model's state, kept until the node exists */

    struct pci_fn *next;
};

static struct pci_sim *sim;

static struct pci_fn *fn_by_node(uint64_t node)
{
    for (struct pci_fn *f = sim ? sim->fns : NULL; f; f = f->next)
        if (f->node && f->node == node)
            return f;
    return NULL;
}

static int fn_send(struct pci_fn *f, uint32_t op, int fd)
{
    struct pci_wire w = {.op = op, .id = ++f->next_id};
    return pci_wire_send(f->fd, &w, NULL, 0, fd >= 0 ? &fd : NULL, fd >= 0, MSG_DONTWAIT) < 0
               ? ODK_E_IO
               : ODK_OK;
}

static void fn_fail(struct odkd *d, struct pci_fn *f, const char *why);

/* ---- the node ----------------------------------------------------------- */

static void finish_plug(struct odkd *d, struct pci_fn *f, int status, const char *error)
{
    if (!f->plug_waiting)
        return;
    f->plug_waiting = false;
    struct msg m = msg_begin();
    if (f->node)
        msg_int(&m, "node", (int64_t)f->node);
    if (error)
        msg_str(&m, "error", error);
    odk_value *out = NULL;
    msg_finish(&m, &out);
    server_reply_later(d, f->plug_conn, f->plug_seq, status, out);
}

static void location(const struct pci_fn *f, char *buf, size_t len)
{
    snprintf(buf, len, "0000:01:%02x.0", f->slot & 0x1f);
}

static void add_node(struct odkd *d, struct pci_fn *f, const char *error)
{
    const uint8_t *c = f->hello->config;
    char name[32], loc[32];
    snprintf(name, sizeof name, "pci%x,%x", pci_cfg_get(c, PCI_VENDOR_ID, 2),
             pci_cfg_get(c, PCI_DEVICE_ID, 2));
    location(f, loc, sizeof loc);
    struct msg m = msg_begin();
    msg_str(&m, "IOName", name);
    msg_int(&m, "vendor-id", pci_cfg_get(c, PCI_VENDOR_ID, 2));
    msg_int(&m, "device-id", pci_cfg_get(c, PCI_DEVICE_ID, 2));
    msg_int(&m, "subsystem-vendor-id", pci_cfg_get(c, PCI_SUBSYSTEM_VENDOR_ID, 2));
    msg_int(&m, "subsystem-id", pci_cfg_get(c, PCI_SUBSYSTEM_ID, 2));
    msg_int(&m, "revision-id", c[PCI_REVISION_ID]);
    msg_int(&m, "class-code", pci_cfg_get(c, PCI_CLASS_PROG, 3));
    msg_str(&m, "location", loc);
    msg_str(&m, "OdkPCIBackend", "sim");
    msg_str(&m, "OdkPCIModel", f->model);
    msg_int(&m, "OdkPCIModelPid", f->pid);
    if (error)
        msg_str(&m, "OdkPCIError", error);
    if (f->report) {
        msg_take(&m, "OdkPCIModelState", f->report);
        f->report = NULL;
    }
    odk_value *props;
    reg_node *node = NULL;
    if (msg_finish(&m, &props) < 0 ||
        registry_add(d->reg, sim->bridge, "IOPCIDevice", props, &node) < 0) {
        fn_fail(d, f, "out of memory adding the function's node");
        return;
    }
    f->node = node->id;
    if (error) {
        free(f->error);
        f->error = strdup(error);
        odk_warn("pci: %s at %s: %s", f->model, loc, error);
        finish_plug(d, f, ODK_OK, error);
        return;
    }
    f->ready = true;
    odk_info("pci: %s at %s: %s, node %llu", f->model, loc, name, (unsigned long long)f->node);
    manager_register(d, node);
    finish_plug(d, f, ODK_OK, NULL);
}

static void on_hello(struct odkd *d, struct pci_fn *f, const uint8_t *body, size_t len)
{
    if (f->hello || len != sizeof(struct pci_hello)) {
        fn_fail(d, f, "the device model sent a malformed hello");
        return;
    }
    if (f->hello_timer) {
        loop_timer_cancel(d, f->hello_timer);
        f->hello_timer = 0;
    }
    f->hello = malloc(sizeof *f->hello);
    if (!f->hello) {
        fn_fail(d, f, "out of memory");
        return;
    }
    memcpy(f->hello, body, sizeof *f->hello);
    char why[256];
    if (pci_config_check(f->hello->config, f->hello->bar_size, why, sizeof why) < 0) {
        add_node(d, f, why);
        return;
    }
    if (1 + f->hello->n_msi + f->hello->n_msix > 10) {
        snprintf(why, sizeof why, "%u interrupt vectors; a simulated function has at most 10",
                 1 + f->hello->n_msi + f->hello->n_msix);
        add_node(d, f, why);
        return;
    }
    add_node(d, f, NULL);
}

static void set_property(struct odkd *d, struct pci_fn *f, const char *key, odk_value *v)
{
    reg_node *n = f->node ? registry_find(d->reg, f->node) : NULL;
    if (!n || !v || odk_dict_set(n->props, key, v) < 0) {
        odk_value_free(v);
        return;
    }
    if (n->state != REG_INACTIVE)
        manager_publish(d, "property", n);
}

static void on_report(struct odkd *d, struct pci_fn *f, const uint8_t *body, size_t len)
{
    char *json = strndup((const char *)body, len);
    odk_value *v = NULL;
    if (json && odk_value_from_json(json, &v, NULL, 0) == ODK_OK) {
        if (f->node) {
            set_property(d, f, "OdkPCIModelState", v);
        } else {
            odk_value_free(f->report);
            f->report = v;
        }
    }
    free(json);
}

/* The link ended: bus mastering off and reset before anything else. */
static void send_reset(struct odkd *d, struct pci_fn *f)
{
    (void)d;
    if (!f->needs_reset)
        return;
    f->needs_reset = false;
    if (fn_send(f, PCIW_RESET, -1) < 0)
        fn_fail(d, f, "cannot reach the device model to reset the function");
}

static void on_readable(struct odkd *d, void *ptr, uint32_t events)
{
    struct pci_fn *f = ptr;
    static uint8_t buf[sizeof(struct pci_wire) + sizeof(struct pci_hello)];
    (void)events;
    for (int i = 0; i < 64 && !f->dying; i++) {
        ssize_t n = recv(f->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            char why[200];
            snprintf(why, sizeof why, "the device model %s %s (its reason is in odkd's log)",
                     f->model, f->hello ? "exited or crashed" : "did not start");
            fn_fail(d, f, why);
            return;
        }
        if ((size_t)n < sizeof(struct pci_wire) || (size_t)n > sizeof buf) {
            fn_fail(d, f, "the device model sent a malformed message");
            return;
        }
        struct pci_wire w;
        memcpy(&w, buf, sizeof w);
        const uint8_t *body = buf + sizeof w;
        size_t len = (size_t)n - sizeof w;
        switch (w.op) {
        case PCIW_HELLO:
            on_hello(d, f, body, len);
            break;
        case PCIW_REPORT:
            on_report(d, f, body, len);
            break;
        case PCIW_DETACHED:
            if (w.value == f->links) { /* not a link an earlier reset already ended */
                f->holder = 0;
                send_reset(d, f);
            }
            break;
        case PCIW_GONE:
            fn_fail(d, f, "the function left the bus");
            return;
        case PCIW_ATTACH:
            if (w.status < 0)
                odk_warn("pci: %s: the model refused a driver's link: %s", f->model,
                         odk_strerror(w.status));
            break;
        default: /* a reset's reply */
            if (w.status < 0)
                odk_warn("pci: %s: %s", f->model, odk_strerror(w.status));
            break;
        }
    }
}

/* ---- a function's end --------------------------------------------------- */

static void fn_free(void *p)
{
    struct pci_fn *f = p;
    free(f->hello);
    free(f->model);
    free(f->error);
    odk_value_free(f->report);
    free(f);
}

static void fn_destroy(struct odkd *d, struct pci_fn *f)
{
    for (struct pci_fn **pp = &sim->fns; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->dying = true;
    if (f->hello_timer)
        loop_timer_cancel(d, f->hello_timer);
    loop_del(d, &f->w);
    close(f->fd);
    if (f->pid > 0)
        kill(f->pid, SIGKILL); /* reaped by odkd's SIGCHLD handler */
    loop_defer_free(d, fn_free, f);
}

static void fn_fail(struct odkd *d, struct pci_fn *f, const char *why)
{
    if (f->dying)
        return;
    odk_warn("pci: %s in slot %u: %s; unplugging it", f->model, f->slot, why);
    finish_plug(d, f, ODK_E_IO, why);
    reg_node *n = f->node ? registry_find(d->reg, f->node) : NULL;
    if (n && n->state != REG_TERMINATING) {
        f->dying = true; /* node_gone destroys it */
        loop_del(d, &f->w);
        manager_remove_tree(d, n, NULL, NULL);
        return;
    }
    if (!n)
        fn_destroy(d, f);
}

static void hello_late(struct odkd *d, void *ptr)
{
    struct pci_fn *f = ptr;
    f->hello_timer = 0;
    char why[160];
    snprintf(why, sizeof why, "the device model %s did not say hello within %d ms", f->model,
             MODEL_DEADLINE_MS);
    fn_fail(d, f, why);
}

/* ---- odkctl pci ... ----------------------------------------------------- */

static int spawn(struct odkd *d, const char *model, const char *args_json, struct pci_fn **out,
                 char *err, size_t err_len)
{
    char *path = host_sibling_path(d, "ODK_PCI_MODEL", "odk-pci-model");
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
    struct pci_fn *f = calloc(1, sizeof *f);
    if (!f || !(f->model = strdup(model))) {
        free(f);
        close(fd);
        kill(pid, SIGKILL);
        return ODK_E_NOMEM;
    }
    f->pid = pid;
    f->fd = fd;
    f->slot = ++sim->slots;
    if (loop_add(d, &f->w, f->fd, EPOLLIN, on_readable, f) < 0) {
        close(f->fd);
        kill(pid, SIGKILL);
        free(f->model);
        free(f);
        return ODK_E_IO;
    }
    f->next = sim->fns;
    sim->fns = f;
    f->hello_timer = loop_timer(d, MODEL_DEADLINE_MS, hello_late, f);
    *out = f;
    return ODK_OK;
}

static int op_plug(struct client_request *r)
{
    const char *model = odk_dict_get_string(r->args, "model", NULL);
    if (!model || !*model || strchr(model, '/') || strlen(model) > 31) {
        snprintf(r->err, sizeof r->err, "pci-plug needs a model name (edu)");
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
    struct pci_fn *f = NULL;
    int st = spawn(r->d, model, json, &f, r->err, sizeof r->err);
    free(json);
    if (st < 0)
        return st;
    f->plug_conn = r->conn_id;
    f->plug_seq = r->seq;
    f->plug_waiting = true;
    r->later = true;
    return ODK_OK;
}

static int op_unplug(struct client_request *r)
{
    reg_node *n = request_node(r);
    struct pci_fn *f = n ? fn_by_node(n->id) : NULL;
    if (!f) {
        snprintf(r->err, sizeof r->err, "node %lld is not a simulated PCI function",
                 (long long)odk_dict_get_int(r->args, "node", 0));
        return ODK_E_NOT_FOUND;
    }
    if (n->state == REG_TERMINATING || f->dying) {
        snprintf(r->err, sizeof r->err, "node %llu is already being unplugged",
                 (unsigned long long)n->id);
        return ODK_E_STATE;
    }
    if (odk_dict_get_bool(r->args, "surprise", false)) {
        /* The function vanishes under its driver: the model goes first. */
        kill(f->pid, SIGKILL);
    }
    f->dying = true;
    loop_del(r->d, &f->w);
    manager_remove_tree(r->d, n, NULL, NULL);
    return ODK_OK;
}

static const char *cap_name(uint8_t id)
{
    switch (id) {
    case PCI_CAP_ID_PM:
        return "Power Management";
    case PCI_CAP_ID_MSI:
        return "MSI";
    case PCI_CAP_ID_MSIX:
        return "MSI-X";
    case 0x10:
        return "Express";
    default:
        return "?";
    }
}

static odk_value *describe(struct odkd *d, struct pci_fn *f, bool verbose)
{
    const uint8_t *c = f->hello->config;
    char loc[32];
    location(f, loc, sizeof loc);
    struct msg m = msg_begin();
    msg_int(&m, "node", (int64_t)f->node);
    msg_str(&m, "location", loc);
    msg_str(&m, "model", f->model);
    msg_str(&m, "backend", "sim");
    msg_int(&m, "vendor-id", pci_cfg_get(c, PCI_VENDOR_ID, 2));
    msg_int(&m, "device-id", pci_cfg_get(c, PCI_DEVICE_ID, 2));
    msg_int(&m, "subsystem-vendor-id", pci_cfg_get(c, PCI_SUBSYSTEM_VENDOR_ID, 2));
    msg_int(&m, "subsystem-id", pci_cfg_get(c, PCI_SUBSYSTEM_ID, 2));
    msg_int(&m, "revision-id", c[PCI_REVISION_ID]);
    msg_int(&m, "class-code", pci_cfg_get(c, PCI_CLASS_PROG, 3));
    if (f->error)
        msg_str(&m, "error", f->error);
    for (struct instance *in = d->instances; in && f->holder; in = in->next)
        if (in->id == f->holder)
            msg_str(&m, "driver", in->bundle->id);
    if (verbose) {
        odk_value *bars = odk_value_new_array();
        for (unsigned i = 0; bars && i < PCI_BARS; i++) {
            if (!f->hello->bar_size[i])
                continue;
            uint32_t reg = pci_cfg_get(c, PCI_BAR0 + 4 * i, 4);
            odk_value *b = odk_value_new_dict();
            odk_dict_set_int(b, "index", i);
            odk_dict_set_int(b, "size", (int64_t)f->hello->bar_size[i]);
            odk_dict_set_bool(b, "64bit", reg & PCI_BAR_MEM_64);
            odk_dict_set_bool(b, "prefetchable", reg & PCI_BAR_PREFETCH);
            odk_array_append(bars, b);
        }
        msg_take(&m, "bars", bars);
        odk_value *caps = odk_value_new_array();
        if (!f->error && (pci_cfg_get(c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) {
            unsigned p = c[PCI_CAPABILITY_LIST];
            for (unsigned k = 0; caps && p && k < PCI_MAX_CAPS; k++, p = c[p + 1]) {
                odk_value *cap = odk_value_new_dict();
                odk_dict_set_int(cap, "offset", p);
                odk_dict_set_int(cap, "id", c[p]);
                odk_dict_set_string(cap, "name", cap_name(c[p]));
                if (c[p] == PCI_CAP_ID_MSI)
                    odk_dict_set_int(cap, "vectors", f->hello->n_msi);
                if (c[p] == PCI_CAP_ID_MSIX)
                    odk_dict_set_int(cap, "vectors", f->hello->n_msix);
                odk_array_append(caps, cap);
            }
        }
        msg_take(&m, "capabilities", caps);
        odk_value *irq = odk_value_new_dict();
        odk_dict_set_int(irq, "pin", c[PCI_INTERRUPT_PIN]);
        odk_dict_set_int(irq, "msi", f->hello->n_msi);
        odk_dict_set_int(irq, "msix", f->hello->n_msix);
        msg_take(&m, "interrupts", irq);
        reg_node *n = registry_find(d->reg, f->node);
        const odk_value *state = n ? odk_dict_get(n->props, "OdkPCIModelState") : NULL;
        if (state)
            msg_take(&m, "state", odk_value_copy(state));
    }
    odk_value *out = NULL;
    msg_finish(&m, &out);
    return out;
}

static int op_list(struct client_request *r)
{
    bool verbose = odk_dict_get_bool(r->args, "verbose", false);
    odk_value *fns = odk_value_new_array();
    if (!fns)
        return ODK_E_NOMEM;
    /* In slot order: the list is kept newest first. */
    for (unsigned slot = 1; slot <= sim->slots; slot++)
        for (struct pci_fn *f = sim->fns; f; f = f->next) {
            if (f->slot != slot || !f->node || !f->hello)
                continue;
            odk_value *v = describe(r->d, f, verbose);
            if (!v || odk_array_append(fns, v) < 0) {
                odk_value_free(fns);
                return ODK_E_NOMEM;
            }
        }
    pci_vfio_list(r->d, fns, verbose);
    struct msg m = msg_begin();
    msg_take(&m, "devices", fns);
    return msg_finish(&m, &r->out);
}

/* ---- requests from driver hosts ----------------------------------------- */

static bool holder_alive(struct odkd *d, const struct pci_fn *f)
{
    for (struct instance *in = d->instances; in; in = in->next)
        if (in->id == f->holder)
            return in->pid == f->holder_pid &&
                   (in->state == INST_STARTING || in->state == INST_RUNNING);
    return false;
}

static int op_open(struct host_request *r)
{
    uint64_t node = (uint64_t)odk_dict_get_int(r->args, "node", 0);
    if (node != r->in->provider_id) {
        snprintf(r->err, sizeof r->err, "node %llu is not this driver's provider",
                 (unsigned long long)node);
        return ODK_E_ACCESS;
    }
    struct pci_fn *f = fn_by_node(node);
    if (!f)
        return pci_vfio_open(r);
    if (f->dying || !f->ready)
        return ODK_E_GONE;
    if (f->holder && holder_alive(r->d, f)) {
        snprintf(r->err, sizeof r->err, "held by instance %u (pid %d)", f->holder,
                 (int)f->holder_pid);
        return ODK_E_BUSY;
    }
    send_reset(r->d, f); /* the last holder's end may not have been reported yet */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return ODK_E_IO;
    int st = fn_send(f, PCIW_ATTACH, sv[1]);
    close(sv[1]);
    if (st < 0) {
        close(sv[0]);
        return ODK_E_GONE;
    }
    f->links++;
    f->needs_reset = true;
    f->holder = r->in->id;
    f->holder_pid = r->in->pid;
    char loc[32];
    location(f, loc, sizeof loc);
    struct msg m = msg_begin();
    msg_str(&m, "backend", "sim");
    msg_str(&m, "location", loc);
    st = msg_finish(&m, &r->out);
    if (st < 0) {
        close(sv[0]);
        return st;
    }
    r->fds[0] = sv[0];
    r->n_fds = 1;
    return ODK_OK;
}

/* ---- the module's hooks (pci.c) ----------------------------------------- */

int pci_sim_init(struct odkd *d, struct pci_sim *s)
{
    sim = s;
    struct msg m = msg_begin();
    msg_str(&m, "IOName", "pci-sim");
    odk_value *props;
    int st = msg_finish(&m, &props);
    if (st == ODK_OK)
        st = registry_add(d->reg, registry_root(d->reg), "OdkSimPCIBridge", props, &s->bridge);
    if (st == ODK_OK)
        s->bridge->state = REG_REGISTERED;
    return st;
}

void pci_sim_node_gone(struct odkd *d, reg_node *node)
{
    struct pci_fn *f = fn_by_node(node->id);
    if (!f)
        return;
    f->node = 0;
    fn_destroy(d, f);
}

void pci_sim_fini(struct odkd *d)
{
    while (sim && sim->fns)
        fn_destroy(d, sim->fns);
    sim = NULL;
}

const struct client_op pci_sim_client_ops[] = {
    {"pci-plug", op_plug, true},
    {"pci-unplug", op_unplug, true},
    {"pci-list", op_list, false},
    {NULL, NULL, false},
};

const struct host_op pci_sim_host_ops[] = {
    {"pci-open", op_open},
    {NULL, NULL},
};
