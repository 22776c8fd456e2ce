/* SPDX-License-Identifier: MIT */
/* usb_match.c — USB match keys and IOKit's USB matching rules
 * (usb_match.h). */
#include "buses/usb/usb_match.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int no(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int no(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return 0;
}

static bool device_level(const char *key)
{
    return strcmp(key, "idVendor") == 0 || strcmp(key, "idProduct") == 0 ||
           strcmp(key, "bcdDevice") == 0;
}

/* The node's integer property key; device-level keys come from the parent
 * when the node lacks them. */
static const odk_value *node_value(const reg_node *node, const char *key)
{
    const odk_value *v = node->props ? odk_dict_get(node->props, key) : NULL;
    if (!v && device_level(key) && node->parent && node->parent->props)
        v = odk_dict_get(node->parent->props, key);
    return v;
}

static int node_int(const reg_node *node, const char *key, int64_t *out, char *why, size_t why_len)
{
    const odk_value *v = node_value(node, key);
    if (!v)
        return no(why, why_len, "%s: node has no property %s", key, key);
    if (odk_value_type(v) != ODK_TYPE_INT)
        return no(why, why_len, "%s: node's %s is a %s, not an integer", key, key,
                  odk_type_name(odk_value_type(v)));
    *out = odk_value_int(v);
    return 1;
}

static int compare_int(const reg_node *node, const odk_value *personality, const char *key,
                       const odk_value *want, char *why, size_t why_len)
{
    (void)personality;
    if (odk_value_type(want) != ODK_TYPE_INT)
        return no(why, why_len, "%s: expected integer, got %s", key,
                  odk_type_name(odk_value_type(want)));
    int64_t have;
    if (!node_int(node, key, &have, why, why_len))
        return 0;
    if (have != odk_value_int(want))
        return no(why, why_len, "%s: node has %" PRId64 ", personality wants %" PRId64, key, have,
                  odk_value_int(want));
    return 1;
}

/* idProductMask, or all ones; a wrong type is reported by idProductMask's
 * own compare. */
static int64_t product_mask(const odk_value *personality)
{
    const odk_value *m = odk_dict_get(personality, "idProductMask");
    return m && odk_value_type(m) == ODK_TYPE_INT ? odk_value_int(m) : -1;
}

static int compare_product(const reg_node *node, const odk_value *personality, const char *key,
                           const odk_value *want, char *why, size_t why_len)
{
    bool array = strcmp(key, "idProductArray") == 0;
    if (!array && odk_value_type(want) != ODK_TYPE_INT)
        return no(why, why_len, "%s: expected integer, got %s", key,
                  odk_type_name(odk_value_type(want)));
    if (array && odk_value_type(want) != ODK_TYPE_ARRAY)
        return no(why, why_len, "%s: expected array of integers, got %s", key,
                  odk_type_name(odk_value_type(want)));
    int64_t have, mask = product_mask(personality);
    if (!node_int(node, "idProduct", &have, why, why_len))
        return 0;
    if (!array) {
        if ((have & mask) == (odk_value_int(want) & mask))
            return 1;
        return no(why, why_len, "%s: node has %" PRId64 ", personality wants %" PRId64 "%s", key,
                  have, odk_value_int(want), mask == -1 ? "" : " under idProductMask");
    }
    for (size_t i = 0; i < odk_array_count(want); i++) {
        const odk_value *v = odk_array_get(want, i);
        if (odk_value_type(v) != ODK_TYPE_INT)
            return no(why, why_len, "%s: item %zu is not an integer", key, i);
        if ((have & mask) == (odk_value_int(v) & mask))
            return 1;
    }
    return no(why, why_len, "%s: node's idProduct %" PRId64 " is not in the list", key, have);
}

static int compare_mask(const reg_node *node, const odk_value *personality, const char *key,
                        const odk_value *want, char *why, size_t why_len)
{
    (void)node;
    (void)personality;
    /* It narrows idProduct and idProductArray; alone it compares nothing. */
    if (odk_value_type(want) != ODK_TYPE_INT)
        return no(why, why_len, "%s: expected integer, got %s", key,
                  odk_type_name(odk_value_type(want)));
    return 1;
}

/* ---- the rules ---- */

struct rule {
    int precedence;
    const char *keys[6]; /* NULL ends */
};

static const struct rule device_rules[] = {
    {6, {"idVendor", "idProduct", "bcdDevice"}},
    {5, {"idVendor", "idProduct"}},
    {4, {"idVendor", "bDeviceSubClass", "bDeviceProtocol"}},
    {3, {"idVendor", "bDeviceSubClass"}},
    {2, {"bDeviceClass", "bDeviceSubClass", "bDeviceProtocol"}},
    {1, {"bDeviceClass", "bDeviceSubClass"}},
    {0, {NULL}},
};

static const struct rule interface_rules[] = {
    {6, {"idVendor", "idProduct", "bcdDevice", "bConfigurationValue", "bInterfaceNumber"}},
    {5, {"idVendor", "idProduct", "bConfigurationValue", "bInterfaceNumber"}},
    {4, {"idVendor", "bInterfaceSubClass", "bInterfaceProtocol"}},
    {3, {"idVendor", "bInterfaceSubClass"}},
    {2, {"bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol"}},
    {1, {"bInterfaceClass", "bInterfaceSubClass"}},
    {0, {NULL}},
};

static bool uses(const odk_value *personality, const char *key)
{
    if (odk_dict_get(personality, key))
        return true;
    return strcmp(key, "idProduct") == 0 && odk_dict_get(personality, "idProductArray");
}

static int apply_rules(const struct match_keys *table, const struct rule *rules,
                       const odk_value *personality, int *precedence, char *why, size_t why_len)
{
    *precedence = 0;
    char used[256] = "";
    size_t at = 0;
    for (const struct match_key *k = table->keys; k->name; k++)
        if (odk_dict_get(personality, k->name) && at < sizeof used)
            at += (size_t)snprintf(used + at, sizeof used - at, "%s%s", at ? "+" : "", k->name);
    if (!at)
        return 1; /* no USB key: other keys decide */
    for (const struct rule *r = rules; r->precedence; r++) {
        bool all = true;
        for (size_t i = 0; r->keys[i] && all; i++)
            all = uses(personality, r->keys[i]);
        if (all) {
            *precedence = r->precedence;
            return 1;
        }
    }
    return no(why, why_len,
              "%s: these USB keys form none of IOKit's %s matching rules (idVendor+idProduct%s, "
              "idVendor+%sSubClass, %sClass+%sSubClass, each optionally +%sProtocol)",
              used, rules == device_rules ? "device" : "interface",
              rules == device_rules ? "" : "+bConfigurationValue+bInterfaceNumber",
              rules == device_rules ? "bDevice" : "bInterface",
              rules == device_rules ? "bDevice" : "bInterface",
              rules == device_rules ? "bDevice" : "bInterface",
              rules == device_rules ? "bDevice" : "bInterface");
}

static int device_rule(const odk_value *personality, int *precedence, char *why, size_t why_len)
{
    return apply_rules(&usb_device_match_keys, device_rules, personality, precedence, why, why_len);
}

static int interface_rule(const odk_value *personality, int *precedence, char *why, size_t why_len)
{
    return apply_rules(&usb_interface_match_keys, interface_rules, personality, precedence, why,
                       why_len);
}

static const struct match_key device_keys[] = {
    {"idVendor", compare_int},
    {"idProduct", compare_product},
    {"idProductArray", compare_product},
    {"idProductMask", compare_mask},
    {"bcdDevice", compare_int},
    {"bDeviceClass", compare_int},
    {"bDeviceSubClass", compare_int},
    {"bDeviceProtocol", compare_int},
    {"bConfigurationValue", compare_int},
    {NULL, NULL},
};

static const struct match_key interface_keys[] = {
    {"idVendor", compare_int},
    {"idProduct", compare_product},
    {"idProductArray", compare_product},
    {"idProductMask", compare_mask},
    {"bcdDevice", compare_int},
    {"bConfigurationValue", compare_int},
    {"bInterfaceNumber", compare_int},
    {"bInterfaceClass", compare_int},
    {"bInterfaceSubClass", compare_int},
    {"bInterfaceProtocol", compare_int},
    {NULL, NULL},
};

/* The keys compared with compare_int: plain equality with node_value. */
static const char *const equality_keys[] = {
    "idVendor",        "bcdDevice",          "bDeviceClass",       "bDeviceSubClass",
    "bDeviceProtocol", "bConfigurationValue", "bInterfaceNumber",   "bInterfaceClass",
    "bInterfaceSubClass", "bInterfaceProtocol", NULL,
};

const struct match_keys usb_device_match_keys = {
    .provider_class = "IOUSBHostDevice",
    .keys = device_keys,
    .rule = device_rule,
    .equality_keys = equality_keys,
    .node_value = node_value,
};

const struct match_keys usb_interface_match_keys = {
    .provider_class = "IOUSBHostInterface",
    .keys = interface_keys,
    .rule = interface_rule,
    .equality_keys = equality_keys,
    .node_value = node_value,
};
