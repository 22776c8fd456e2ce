/* SPDX-License-Identifier: MIT */
/* pci_match.c — IOKit's PCI match strings (pci_match.h). */
#include "buses/pci/pci_match.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Parses hex digits ("0x" optional) at *p; at most 8 digits (32 bits).
 * *digits gets how many hex digits were read. */
static bool parse_hex32(const char **p, uint32_t *out, int *digits)
{
    const char *s = *p;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    uint32_t v = 0;
    int n = 0;
    while (isxdigit((unsigned char)*s)) {
        if (n == 8)
            return false;
        int d = isdigit((unsigned char)*s) ? *s - '0' : (tolower((unsigned char)*s) - 'a' + 10);
        v = v << 4 | (uint32_t)d;
        n++;
        s++;
    }
    if (n == 0)
        return false;
    *out = v;
    *digits = n;
    *p = s;
    return true;
}

enum pci_form { PCI_PLAIN, PCI_CLASS };

/* Matches a match string against a node value.  For PCI_PLAIN, value32 is
 * the 32-bit register value.  For PCI_CLASS, IOKit compares against the
 * config dword at 0x08 (class-code << 8 | revision) with a default mask of
 * 0xffffff00; odk also accepts the 24-bit class code itself: a value
 * written with at most 6 hex digits is compared against class-code with a
 * default mask of 0xffffff.  Returns 1 match, 0 no match, -1 malformed. */
static int pci_match_string(const char *str, uint32_t value32, uint32_t class24, enum pci_form form)
{
    const char *p = str;
    bool any = false;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        uint32_t v, mask;
        int vdigits, mdigits;
        if (!parse_hex32(&p, &v, &vdigits))
            return -1;
        bool has_mask = false;
        if (*p == '&') {
            p++;
            if (!parse_hex32(&p, &mask, &mdigits))
                return -1;
            has_mask = true;
        }
        if (*p && !isspace((unsigned char)*p))
            return -1;
        any = true;
        uint32_t node = value32;
        if (form == PCI_CLASS) {
            bool short_form = vdigits <= 6 && (!has_mask || mdigits <= 6);
            node = short_form ? class24 : value32;
            if (!has_mask)
                mask = short_form ? 0xffffffu : 0xffffff00u;
        } else if (!has_mask) {
            mask = 0xffffffffu;
        }
        if ((node & mask) == (v & mask))
            return 1;
    }
    return any ? 0 : -1;
}

static bool node_int(const reg_node *node, const char *key, uint32_t *out)
{
    const odk_value *v = node->props ? odk_dict_get(node->props, key) : NULL;
    if (!v || odk_value_type(v) != ODK_TYPE_INT)
        return false;
    *out = (uint32_t)odk_value_int(v);
    return true;
}

static int match_pci(const reg_node *node, const odk_value *personality, const char *key,
                     const odk_value *want, char *why, size_t why_len)
{
    (void)personality;
    if (odk_value_type(want) != ODK_TYPE_STRING)
        return no(why, why_len, "%s: expected string, got %s", key,
                  odk_type_name(odk_value_type(want)));
    const char *str = odk_value_string(want);
    bool primary = strcmp(key, "IOPCIPrimaryMatch") == 0 || strcmp(key, "IOPCIMatch") == 0;
    bool secondary = strcmp(key, "IOPCISecondaryMatch") == 0 || strcmp(key, "IOPCIMatch") == 0;
    uint32_t a, b;
    int r = 0;
    bool have = false;
    if (strcmp(key, "IOPCIClassMatch") == 0) {
        uint32_t cls, rev = 0;
        if (!node_int(node, "class-code", &cls))
            return no(why, why_len, "%s: node has no integer class-code", key);
        node_int(node, "revision-id", &rev);
        cls &= 0xffffffu;
        r = pci_match_string(str, cls << 8 | (rev & 0xffu), cls, PCI_CLASS);
        have = true;
    }
    if (primary && node_int(node, "vendor-id", &a) && node_int(node, "device-id", &b)) {
        have = true;
        r = pci_match_string(str, (b & 0xffffu) << 16 | (a & 0xffffu), 0, PCI_PLAIN);
    }
    if (secondary && r == 0 && node_int(node, "subsystem-vendor-id", &a) &&
        node_int(node, "subsystem-id", &b)) {
        have = true;
        r = pci_match_string(str, (b & 0xffffu) << 16 | (a & 0xffffu), 0, PCI_PLAIN);
    }
    if (r < 0)
        return no(why, why_len, "%s: malformed match string \"%.80s\"", key, str);
    if (!have)
        return no(why, why_len, "%s: node has no integer %s", key,
                  primary ? "vendor-id and device-id" : "subsystem-vendor-id and subsystem-id");
    if (r == 0)
        return no(why, why_len, "%s: \"%.80s\" does not match the node", key, str);
    return 1;
}

static const struct match_key keys[] = {
    {"IOPCIPrimaryMatch", match_pci},
    {"IOPCISecondaryMatch", match_pci},
    {"IOPCIMatch", match_pci},
    {"IOPCIClassMatch", match_pci},
    {NULL, NULL},
};

const struct match_keys pci_match_keys = {
    .provider_class = "IOPCIDevice",
    .keys = keys,
};
