/* SPDX-License-Identifier: MIT */
/* entitlements.c — checking a bundle's entitlements (entitlements.h) and
 * whether they cover a registry node or a family resource.
 *
 * Transports are told apart by the node's class: the node classes of the
 * buses that expose hardware (USB, PCI, evdev) and of the simulated ones.
 * The table below is the one place that names them. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/core/entitlements.h"
#include "odk/status.h"

#define DK_USB "com.apple.developer.driverkit.transport.usb"

static const char *const resource_kinds[] = {"serial", "network", "block", "block-tcp", "audio", "hid", NULL};

enum transport { T_NONE, T_USB, T_PCI, T_SIM, T_EVDEV };

static const struct {
    const char *cls;
    enum transport t;
} transports[] = {
    {"IOUSBHostDevice", T_USB}, {"IOUSBHostInterface", T_USB}, {"IOPCIDevice", T_PCI},
    {"OdkEvdevDevice", T_EVDEV}, {"OdkSimDevice", T_SIM},      {"OdkStorageHBA", T_SIM},
};

static int say(char *buf, size_t len, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int say(char *buf, size_t len, int ret, const char *fmt, ...)
{
    if (buf && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return ret;
}

static bool is_star(const odk_value *v)
{
    return v && odk_value_type(v) == ODK_TYPE_STRING && strcmp(odk_value_string(v), "*") == 0;
}

/* "0x12348086&0xffffffff" (mask optional) into value and mask. */
static bool parse_pci(const char *s, uint32_t *value, uint32_t *mask)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 16);
    if (end == s || v > UINT32_MAX)
        return false;
    *value = (uint32_t)v;
    *mask = UINT32_MAX;
    if (*end == '&') {
        const char *m = end + 1;
        v = strtoull(m, &end, 16);
        if (end == m || v > UINT32_MAX)
            return false;
        *mask = (uint32_t)v;
    }
    return *end == '\0' && !isspace((unsigned char)*s) && *s != '-';
}

/* An id in a USB entry: an integer 0..0xffff or "*". */
static int check_usb_id(const odk_value *v, bool dev, const char *path, char *err, size_t err_len)
{
    if (is_star(v))
        return dev ? ODK_OK
                   : say(err, err_len, ODK_E_ACCESS,
                         "entitlements.%s: \"*\" is a development wildcard, accepted only under "
                         "odkd --dev",
                         path);
    if (odk_value_type(v) != ODK_TYPE_INT || odk_value_int(v) < 0 || odk_value_int(v) > 0xffff)
        return say(err, err_len, ODK_E_MANIFEST,
                   "entitlements.%s: expected a 16-bit id or \"*\"", path);
    return ODK_OK;
}

static int check_usb(const char *key, const odk_value *v, bool dev, char *err, size_t err_len)
{
    if (is_star(v))
        return check_usb_id(v, dev, key, err, err_len);
    if (odk_value_type(v) != ODK_TYPE_ARRAY)
        return say(err, err_len, ODK_E_MANIFEST,
                   "entitlements.%s: expected an array of {\"vendor\", \"product\"} or \"*\"", key);
    bool dk = strcmp(key, DK_USB) == 0;
    for (size_t i = 0; i < odk_array_count(v); i++) {
        const odk_value *e = odk_array_get(v, i);
        char path[160];
        if (odk_value_type(e) != ODK_TYPE_DICT)
            return say(err, err_len, ODK_E_MANIFEST, "entitlements.%s[%zu]: expected a dictionary",
                       key, i);
        const char *vk = dk ? "idVendor" : "vendor", *pk = dk ? "idProduct" : "product";
        const odk_value *vendor = odk_dict_get(e, vk), *product = odk_dict_get(e, pk);
        snprintf(path, sizeof path, "%s[%zu].%s", key, i, vk);
        if (!vendor)
            return say(err, err_len, ODK_E_MANIFEST, "entitlements.%s: missing (required)", path);
        int st = check_usb_id(vendor, dev, path, err, err_len);
        snprintf(path, sizeof path, "%s[%zu].%s", key, i, pk);
        if (st == ODK_OK && product)
            st = check_usb_id(product, dev, path, err, err_len);
        if (st < 0)
            return st;
    }
    return ODK_OK;
}

int entitlements_check(const odk_value *ent, bool dev, char *err, size_t err_len)
{
    if (!ent)
        return ODK_OK;
    if (odk_value_type(ent) != ODK_TYPE_DICT)
        return say(err, err_len, ODK_E_MANIFEST, "entitlements: expected a dictionary");
    int st = ODK_OK;
    const odk_value *v;
    if ((v = odk_dict_get(ent, "usb")))
        st = check_usb("usb", v, dev, err, err_len);
    if (st == ODK_OK && (v = odk_dict_get(ent, DK_USB)))
        st = check_usb(DK_USB, v, dev, err, err_len);
    if (st == ODK_OK && (v = odk_dict_get(ent, "pci"))) {
        if (is_star(v)) {
            if (!dev)
                st = say(err, err_len, ODK_E_ACCESS,
                         "entitlements.pci: \"*\" is a development wildcard, accepted only under "
                         "odkd --dev");
        } else if (odk_value_type(v) != ODK_TYPE_ARRAY) {
            st = say(err, err_len, ODK_E_MANIFEST,
                     "entitlements.pci: expected an array of \"0xDDDDVVVV&0xMASK\" or \"*\"");
        } else {
            for (size_t i = 0; st == ODK_OK && i < odk_array_count(v); i++) {
                const odk_value *e = odk_array_get(v, i);
                uint32_t a, m;
                if (odk_value_type(e) != ODK_TYPE_STRING || !parse_pci(odk_value_string(e), &a, &m))
                    st = say(err, err_len, ODK_E_MANIFEST,
                             "entitlements.pci[%zu]: expected \"0xDDDDVVVV&0xMASK\" (device id "
                             "<< 16 | vendor id, & mask optional)",
                             i);
                else if ((m & 0xffff) != 0xffff && !dev)
                    /* A mask that leaves the vendor open grants every
                     * vendor's devices: a wildcard in all but name. */
                    st = say(err, err_len, ODK_E_ACCESS,
                             "entitlements.pci[%zu]: a mask that does not fix the vendor id is a "
                             "development wildcard, accepted only under odkd --dev",
                             i);
            }
        }
    }
    const char *bools[] = {"sim", "evdev", "network-client"};
    for (size_t i = 0; st == ODK_OK && i < sizeof bools / sizeof bools[0]; i++)
        if ((v = odk_dict_get(ent, bools[i])) && odk_value_type(v) != ODK_TYPE_BOOL)
            st = say(err, err_len, ODK_E_MANIFEST, "entitlements.%s: expected true or false",
                     bools[i]);
    if (st == ODK_OK && (v = odk_dict_get(ent, "resources"))) {
        if (is_star(v)) {
            if (!dev)
                st = say(err, err_len, ODK_E_ACCESS,
                         "entitlements.resources: \"*\" is a development wildcard, accepted only "
                         "under odkd --dev");
        } else if (odk_value_type(v) != ODK_TYPE_ARRAY) {
            st = say(err, err_len, ODK_E_MANIFEST,
                     "entitlements.resources: expected an array of kinds or \"*\"");
        } else {
            for (size_t i = 0; st == ODK_OK && i < odk_array_count(v); i++) {
                const odk_value *e = odk_array_get(v, i);
                bool known = false;
                for (size_t k = 0; resource_kinds[k] && odk_value_type(e) == ODK_TYPE_STRING; k++)
                    known |= strcmp(odk_value_string(e), resource_kinds[k]) == 0;
                if (!known)
                    st = say(err, err_len, ODK_E_MANIFEST,
                             "entitlements.resources[%zu]: expected one of serial, network, "
                             "block, block-tcp, audio, hid",
                             i);
            }
        }
    }
    return st;
}

/* ---- coverage ---- */

static bool node_int(const reg_node *n, const char *key, int64_t *out)
{
    const odk_value *v = n ? odk_dict_get(n->props, key) : NULL;
    if (!v || odk_value_type(v) != ODK_TYPE_INT)
        return false;
    *out = odk_value_int(v);
    return true;
}

static bool id_covers(const odk_value *want, int64_t have)
{
    return !want || is_star(want) ||
           (odk_value_type(want) == ODK_TYPE_INT && odk_value_int(want) == have);
}

static bool usb_list_covers(const odk_value *list, bool dk, int64_t vendor, int64_t product)
{
    if (!list)
        return false;
    if (is_star(list))
        return true;
    for (size_t i = 0; i < odk_array_count(list); i++) {
        const odk_value *e = odk_array_get(list, i);
        const odk_value *v = odk_dict_get(e, dk ? "idVendor" : "vendor");
        const odk_value *p = odk_dict_get(e, dk ? "idProduct" : "product");
        if (v && id_covers(v, vendor) && id_covers(p, product))
            return true;
    }
    return false;
}

static int cover_usb(const reg_node *node, const odk_value *ent, char *why, size_t why_len)
{
    int64_t vendor = -1, product = -1;
    /* An interface carries its device's ids; look up the tree if not. */
    for (const reg_node *n = node; n && vendor < 0; n = n->parent)
        if (node_int(n, "idVendor", &vendor))
            node_int(n, "idProduct", &product);
    if (usb_list_covers(odk_dict_get(ent, "usb"), false, vendor, product) ||
        usb_list_covers(odk_dict_get(ent, DK_USB), true, vendor, product))
        return 1;
    return say(why, why_len, 0,
               "entitlement: the bundle's entitlements do not cover USB vendor 0x%04" PRIx64
               " product 0x%04" PRIx64 " (add {\"vendor\": %" PRId64 ", \"product\": %" PRId64
               "} to entitlements.usb)",
               vendor & 0xffff, product & 0xffff, vendor, product);
}

static int cover_pci(const reg_node *node, const odk_value *ent, char *why, size_t why_len)
{
    int64_t vendor = -1, device = -1;
    node_int(node, "vendor-id", &vendor);
    node_int(node, "device-id", &device);
    uint32_t have = (uint32_t)((device & 0xffff) << 16 | (vendor & 0xffff));
    const odk_value *list = odk_dict_get(ent, "pci");
    if (is_star(list))
        return 1;
    for (size_t i = 0; list && i < odk_array_count(list); i++) {
        const odk_value *e = odk_array_get(list, i);
        uint32_t a, m;
        if (odk_value_type(e) == ODK_TYPE_STRING && parse_pci(odk_value_string(e), &a, &m) &&
            (have & m) == (a & m))
            return 1;
    }
    return say(why, why_len, 0,
               "entitlement: the bundle's entitlements do not cover PCI 0x%08" PRIx32
               " (vendor 0x%04" PRIx64 ", device 0x%04" PRIx64 "; add \"0x%08" PRIx32
               "&0xffffffff\" to entitlements.pci)",
               have, vendor & 0xffff, device & 0xffff, have);
}

static int cover_flag(const odk_value *ent, const char *key, const char *what, char *why,
                      size_t why_len)
{
    const odk_value *v = odk_dict_get(ent, key);
    if (v && odk_value_type(v) == ODK_TYPE_BOOL && odk_value_bool(v))
        return 1;
    return say(why, why_len, 0,
               "entitlement: the bundle's entitlements do not cover %s (add \"%s\": true to its "
               "entitlements)",
               what, key);
}

int entitlements_cover_node(const registry *reg, const reg_node *node, const odk_value *ent,
                            char *why, size_t why_len)
{
    if (!node || node->owner)
        return 1;
    enum transport t = T_NONE;
    for (size_t i = 0; t == T_NONE && i < sizeof transports / sizeof transports[0]; i++)
        if (registry_class_is_a(reg, node->class_name, transports[i].cls))
            t = transports[i].t;
    switch (t) {
    case T_USB:
        return cover_usb(node, ent, why, why_len);
    case T_PCI:
        return cover_pci(node, ent, why, why_len);
    case T_SIM:
        return cover_flag(ent, "sim", "simulated devices", why, why_len);
    case T_EVDEV:
        return cover_flag(ent, "evdev", "evdev input devices", why, why_len);
    case T_NONE:
        break;
    }
    return 1;
}

int entitlements_allow_resource(const odk_value *ent, const char *kind, char *why, size_t why_len)
{
    const odk_value *v = odk_dict_get(ent, "resources");
    if (is_star(v))
        return 1;
    for (size_t i = 0; v && i < odk_array_count(v); i++) {
        const odk_value *e = odk_array_get(v, i);
        if (odk_value_type(e) == ODK_TYPE_STRING && strcmp(odk_value_string(e), kind) == 0)
            return 1;
    }
    return say(why, why_len, 0,
               "entitlement: the bundle is not entitled to create a %s resource (add \"%s\" to "
               "entitlements.resources)",
               kind, kind);
}
