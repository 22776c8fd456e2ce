/* SPDX-License-Identifier: MIT */
/* The sim bus: simulated devices as registry nodes under "OdkSimBus",
 * declared in a file (odkd --sim FILE), built in (odkd --demo), or plugged
 * and unplugged at run time (odkctl sim plug|unplug).  The bus owns both:
 * plugging registers the node with the manager, unplugging waits for the
 * drivers on it to stop before the node goes.
 *
 * A device is {"class": "OdkSimDevice", "properties": {...},
 * "children": [device, ...]}; "class" is optional (default OdkSimDevice)
 * and may name any known class (IOUSBHostDevice, IOUSBHostInterface,
 * IOPCIDevice: the USB and PCI buses' match keys then apply), or a new one
 * with "super" (a class chain: "OdkSimXhciDevice" under
 * "IOUSBHostDevice").  Children hang below their device, as USB interfaces
 * below theirs, and leave with it.  A file holds {"devices": [device, ...]}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"
#include "daemon/core/msg.h"
#include "daemon/front/requests.h"
#include "daemon/front/server.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"

/* The demo's devices, so `make demo` needs no configuration. */
static const char demo_devices[] =
    "{\"devices\": ["
    " {\"class\": \"OdkSimDevice\", \"properties\": {\"model\": \"hello\"}},"
    " {\"class\": \"OdkSimDevice\", \"properties\": {\"model\": \"serial-loopback\"}}"
    "]}";

struct sim {
    reg_node *bus;
    char *file; /* --sim FILE */
    bool demo;  /* --demo */
};

static const struct odkd_module sim_bus;

static struct sim *sim_of(struct odkd *d)
{
    return module_state(d, &sim_bus);
}

/* Checks a device and its children before any is added, declaring the
 * classes they name, so a bad child leaves nothing half plugged. */
static int check_device(struct odkd *d, const odk_value *desc, char *err, size_t err_len)
{
    if (odk_value_type(desc) != ODK_TYPE_DICT) {
        snprintf(err, err_len, "a device must be a dictionary");
        return ODK_E_INVALID;
    }
    const char *cls = odk_dict_get_string(desc, "class", "OdkSimDevice");
    const char *super = odk_dict_get_string(desc, "super", NULL);
    const odk_value *props = odk_dict_get(desc, "properties");
    const odk_value *children = odk_dict_get(desc, "children");
    if (props && odk_value_type(props) != ODK_TYPE_DICT) {
        snprintf(err, err_len, "device 'properties' must be a dictionary, not %s",
                 odk_type_name(odk_value_type(props)));
        return ODK_E_INVALID;
    }
    if (children && odk_value_type(children) != ODK_TYPE_ARRAY) {
        snprintf(err, err_len, "device 'children' must be an array, not %s",
                 odk_type_name(odk_value_type(children)));
        return ODK_E_INVALID;
    }
    if (!*cls) {
        snprintf(err, err_len, "device 'class' must not be empty");
        return ODK_E_INVALID;
    }
    int st = ODK_OK;
    if (super)
        st = registry_define_class(d->reg, cls, super);
    else if (!registry_class_is_a(d->reg, cls, "IOService"))
        st = registry_define_class(d->reg, cls, "OdkSimDevice");
    if (st < 0) {
        snprintf(err, err_len, "cannot declare class %s with superclass %s: %s", cls,
                 super ? super : "OdkSimDevice", odk_strerror(st));
        return st;
    }
    for (size_t i = 0; i < odk_array_count(children); i++) {
        char sub[MODULE_ERR_MAX / 2];
        st = check_device(d, odk_array_get(children, i), sub, sizeof sub);
        if (st < 0) {
            snprintf(err, err_len, "children[%zu]: %s", i, sub);
            return st;
        }
    }
    return ODK_OK;
}

/* Adds a checked device under parent, registers it, then its children
 * under it (so matching an interface sees its device); ids get each
 * child's id, depth first. */
static int add_device(struct odkd *d, reg_node *parent, const odk_value *desc, uint64_t *id,
                      odk_value *ids, char *err, size_t err_len)
{
    const char *cls = odk_dict_get_string(desc, "class", "OdkSimDevice");
    const odk_value *props = odk_dict_get(desc, "properties");
    const odk_value *children = odk_dict_get(desc, "children");
    odk_value *copy = props ? odk_value_copy(props) : NULL;
    reg_node *n = NULL;
    int st = props && !copy ? ODK_E_NOMEM : registry_add(d->reg, parent, cls, copy, &n);
    if (st < 0) {
        snprintf(err, err_len, "cannot add the node: %s", odk_strerror(st));
        return st;
    }
    odk_info("sim: plugged node %llu (%s)", (unsigned long long)n->id, cls);
    *id = n->id;
    manager_register(d, n);
    for (size_t i = 0; i < odk_array_count(children); i++) {
        uint64_t child;
        st = add_device(d, n, odk_array_get(children, i), &child, ids, err, err_len);
        if (st < 0)
            return st;
        if (ids && (st = odk_array_append(ids, odk_value_new_int((int64_t)child))) < 0)
            return st;
    }
    return ODK_OK;
}

/* A device (with its children) on the bus; ids, when not NULL, gets the
 * children's ids. */
static int plug(struct odkd *d, const odk_value *desc, uint64_t *id, odk_value *ids, char *err,
                size_t err_len)
{
    int st = check_device(d, desc, err, err_len);
    return st < 0 ? st : add_device(d, sim_of(d)->bus, desc, id, ids, err, err_len);
}

static int plug_all(struct odkd *d, const char *text, const char *source)
{
    odk_value *v = NULL;
    char err[512];
    int st = odk_value_from_json(text, &v, err, sizeof err);
    if (st < 0) {
        odk_error("%s: %s", source, err);
        return st;
    }
    const odk_value *devs = odk_dict_get(v, "devices");
    if (!devs || odk_value_type(devs) != ODK_TYPE_ARRAY) {
        odk_error("%s: devices: expected an array", source);
        odk_value_free(v);
        return ODK_E_INVALID;
    }
    for (size_t i = 0; i < odk_array_count(devs); i++) {
        uint64_t id;
        if (plug(d, odk_array_get(devs, i), &id, NULL, err, sizeof err) < 0) {
            odk_error("%s: devices[%zu]: %s", source, i, err);
            st = ODK_E_INVALID;
        }
    }
    odk_value_free(v);
    return st;
}

static int plug_file(struct odkd *d, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        odk_error("cannot open sim file %s: %m", path);
        return ODK_E_IO;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char buf[4096];
    size_t n;
    while (mem && (n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, mem);
    fclose(f);
    if (!mem)
        return ODK_E_NOMEM;
    fclose(mem);
    int st = plug_all(d, text, path);
    free(text);
    return st;
}

/* ---- odkctl sim plug | unplug ------------------------------------------- */

static int op_plug(struct client_request *r)
{
    const odk_value *dev = odk_dict_get(r->args, "device");
    if (!dev || odk_value_type(dev) != ODK_TYPE_DICT) {
        snprintf(r->err, sizeof r->err, "'device' must be a dictionary");
        return ODK_E_INVALID;
    }
    uint64_t id = 0;
    odk_value *children = odk_value_new_array();
    if (!children)
        return ODK_E_NOMEM;
    int st = plug(r->d, dev, &id, children, r->err, sizeof r->err);
    if (st < 0) {
        odk_value_free(children);
        return st;
    }
    struct msg m = msg_begin();
    msg_int(&m, "node", (int64_t)id);
    msg_take(&m, "children", children);
    return msg_finish(&m, &r->out);
}

struct unplug {
    uint64_t conn_id;
    uint32_t seq;
    uint64_t node_id;
};

static void unplugged(struct odkd *d, void *ctx)
{
    struct unplug *u = ctx;
    trace_mark("odkd unplugged node %llu", (unsigned long long)u->node_id);
    odk_info("unplugged node %llu", (unsigned long long)u->node_id);
    server_reply_later(d, u->conn_id, u->seq, ODK_OK, NULL);
    free(u);
}

static int op_unplug(struct client_request *r)
{
    reg_node *n = request_node(r);
    if (!n)
        return ODK_E_NOT_FOUND;
    if (n->parent != sim_of(r->d)->bus) {
        snprintf(r->err, sizeof r->err, "node %llu is not a device on the sim bus",
                 (unsigned long long)n->id);
        return ODK_E_INVALID;
    }
    if (n->state == REG_TERMINATING) {
        snprintf(r->err, sizeof r->err, "node %llu is already being unplugged",
                 (unsigned long long)n->id);
        return ODK_E_STATE;
    }
    struct unplug *u = malloc(sizeof *u);
    if (!u)
        return ODK_E_NOMEM;
    *u = (struct unplug){r->conn_id, r->seq, n->id};
    r->later = true;
    manager_remove_tree(r->d, n, unplugged, u);
    return ODK_OK;
}

/* ---- the module ----------------------------------------------------------- */

static int option(struct odkd *d, const char *name, const char *value, char *err, size_t len)
{
    (void)err;
    (void)len;
    struct sim *s = sim_of(d);
    if (strcmp(name, "demo") == 0) {
        s->demo = true;
        return ODK_OK;
    }
    free(s->file);
    s->file = strdup(value);
    return s->file ? ODK_OK : ODK_E_NOMEM;
}

static int init(struct odkd *d)
{
    struct sim *s = sim_of(d);
    struct msg m = msg_begin();
    msg_str(&m, "IOName", "sim");
    odk_value *props;
    int st = msg_finish(&m, &props);
    if (st == ODK_OK)
        st = registry_add(d->reg, registry_root(d->reg), "OdkSimBus", props, &s->bus);
    if (st == ODK_OK)
        s->bus->state = REG_REGISTERED;
    return st;
}

/* Devices named on the command line; a bad one is logged, the rest plug. */
static int start(struct odkd *d)
{
    struct sim *s = sim_of(d);
    if (s->demo)
        plug_all(d, demo_devices, "built-in sim devices");
    if (s->file)
        plug_file(d, s->file);
    return ODK_OK;
}

static void fini(struct odkd *d)
{
    free(sim_of(d)->file);
}

static const struct class_def classes[] = {
    {"OdkSimBus", "IOService"},
    {"OdkSimDevice", "IOService"},
    {NULL, NULL},
};
static const struct module_option options[] = {
    {"sim", "FILE", "plug the simulated devices listed in FILE"},
    {"demo", NULL, "plug the demo devices (a hello device and a serial loopback)"},
    {NULL, NULL, NULL},
};
static const struct client_op client_ops[] = {
    {"sim-plug", op_plug, true},
    {"sim-unplug", op_unplug, true},
    {NULL, NULL, false},
};

static const struct odkd_module sim_bus = {
    .name = "sim",
    .kind = "bus",
    .state_size = sizeof(struct sim),
    .classes = classes,
    .options = options,
    .client_ops = client_ops,
    .option = option,
    .init = init,
    .start = start,
    .fini = fini,
};
ODKD_MODULE(sim_bus)
