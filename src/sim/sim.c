/* The sim bus: simulated devices as registry nodes under "OdkSimBus",
 * declared in a file (--sim FILE), built in (the demo), or plugged and
 * unplugged at run time (odkctl sim plug|unplug).
 *
 * A device is {"class": "OdkSimDevice", "properties": {...}}; "class" is
 * optional (default OdkSimDevice) and may name any known class, or a new
 * one with "super".  A file holds {"devices": [device, ...]}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "odk/log.h"
#include "odk/status.h"

/* The demo's devices, so `make demo` needs no configuration. */
static const char default_devices[] =
    "{\"devices\": ["
    " {\"class\": \"OdkSimDevice\", \"properties\": {\"model\": \"echo\", \"serial\": \"ECHO-1\"}},"
    " {\"class\": \"OdkSimDevice\", \"properties\": {\"model\": \"serial-loopback\"}}"
    "]}";

int sim_init(struct odkd *d)
{
    odk_value *props = odk_value_new_dict();
    odk_dict_set_string(props, "IOName", "sim");
    int st = registry_add(d->reg, registry_root(d->reg), "OdkSimBus", props, &d->sim_bus);
    if (st == ODK_OK)
        d->sim_bus->state = REG_REGISTERED;
    return st;
}

int sim_plug(struct odkd *d, const odk_value *desc, uint64_t *id, char *err, size_t err_len)
{
    const char *cls = odk_dict_get_string(desc, "class", "OdkSimDevice");
    const char *super = odk_dict_get_string(desc, "super", NULL);
    const odk_value *props = odk_dict_get(desc, "properties");
    if (odk_value_type(desc) != ODK_TYPE_DICT) {
        snprintf(err, err_len, "a device must be a dictionary");
        return ODK_E_INVALID;
    }
    if (props && odk_value_type(props) != ODK_TYPE_DICT) {
        snprintf(err, err_len, "device 'properties' must be a dictionary, not %s",
                 odk_type_name(odk_value_type(props)));
        return ODK_E_INVALID;
    }
    if (!*cls) {
        snprintf(err, err_len, "device 'class' must not be empty");
        return ODK_E_INVALID;
    }
    if (super) {
        int st = registry_define_class(d->reg, cls, super);
        if (st < 0) {
            snprintf(err, err_len, "cannot declare class %s with superclass %s: %s", cls, super,
                     odk_strerror(st));
            return st;
        }
    } else if (!registry_class_is_a(d->reg, cls, "IOService")) {
        registry_define_class(d->reg, cls, "OdkSimDevice");
    }
    reg_node *n;
    int st = registry_add(d->reg, d->sim_bus, cls, props ? odk_value_copy(props) : NULL, &n);
    if (st < 0) {
        snprintf(err, err_len, "cannot add the node: %s", odk_strerror(st));
        return st;
    }
    odk_info("sim: plugged node %llu (%s)", (unsigned long long)n->id, cls);
    *id = n->id;
    matcher_register(d, n);
    return ODK_OK;
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
        if (sim_plug(d, odk_array_get(devs, i), &id, err, sizeof err) < 0) {
            odk_error("%s: devices[%zu]: %s", source, i, err);
            st = ODK_E_INVALID;
        }
    }
    odk_value_free(v);
    return st;
}

int sim_load_default(struct odkd *d)
{
    return plug_all(d, default_devices, "built-in sim devices");
}

int sim_load_file(struct odkd *d, const char *path)
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
