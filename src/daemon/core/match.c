/* SPDX-License-Identifier: MIT */
/* match.c — IOKit matching of personalities against registry nodes. */
#include "daemon/core/match.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/status.h"

#define DEFAULT_CATEGORY "IODefaultMatchCategory"

/* Keys that describe the driver rather than the device: never compared with
 * node properties.  Keys starting with "Odk" or "IOKit" are informational
 * too, so new odk extensions and IOKit debug keys never break matching. */
static const char *const informational_keys[] = {
    "IOClass",
    "IOUserClass",
    "IOUserServerName",
    "IOProbeScore",
    "IOMatchCategory",
    "IOProviderClass",
    "CFBundleIdentifier",
    "CFBundleIdentifierKernel",
    "IOUserServerCDHash",
    "IOTTYBaseName",
    "IOTTYSuffix",
    "UserClientProperties",
    "IOUserClientClass",
    "IOKitDebug",
    "IOMatchDefer",
    "OdkDeadlines",
    "OdkDebug",
};

static bool is_informational(const char *key)
{
    if (strncmp(key, "Odk", 3) == 0 || strncmp(key, "IOKit", 5) == 0)
        return true;
    for (size_t i = 0; i < sizeof informational_keys / sizeof informational_keys[0]; i++)
        if (strcmp(key, informational_keys[i]) == 0)
            return true;
    return false;
}

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

/* A short rendering of a value for reasons: scalars in full (strings
 * cut at 60 bytes), containers by type. */
static const char *show(const odk_value *v, char *buf, size_t len)
{
    switch (odk_value_type(v)) {
    case ODK_TYPE_STRING:
        snprintf(buf, len, "\"%.60s\"", odk_value_string(v));
        break;
    case ODK_TYPE_INT:
        snprintf(buf, len, "%" PRId64, odk_value_int(v));
        break;
    case ODK_TYPE_BOOL:
        snprintf(buf, len, "%s", odk_value_bool(v) ? "true" : "false");
        break;
    default:
        snprintf(buf, len, "a %s", odk_type_name(odk_value_type(v)));
        break;
    }
    return buf;
}

/* ---- PCI match strings ---- */

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

static int match_pci(const reg_node *node, const char *key, const odk_value *want, char *why,
                     size_t why_len)
{
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

/* ---- the other keys ---- */

static const char *node_name(const reg_node *node)
{
    const char *s = node->props ? odk_dict_get_string(node->props, "IOName", NULL) : NULL;
    if (!s && node->props)
        s = odk_dict_get_string(node->props, "name", NULL);
    return s ? s : node->class_name;
}

static int match_name(const reg_node *node, const odk_value *want, char *why, size_t why_len)
{
    const char *name = node_name(node);
    if (odk_value_type(want) == ODK_TYPE_STRING)
        return strcmp(odk_value_string(want), name) == 0
                   ? 1
                   : no(why, why_len, "IONameMatch: node name \"%s\" is not \"%s\"", name,
                        odk_value_string(want));
    if (odk_value_type(want) != ODK_TYPE_ARRAY)
        return no(why, why_len, "IONameMatch: expected string or array of strings, got %s",
                  odk_type_name(odk_value_type(want)));
    for (size_t i = 0; i < odk_array_count(want); i++) {
        const char *s = odk_value_string(odk_array_get(want, i));
        if (s && strcmp(s, name) == 0)
            return 1;
    }
    return no(why, why_len, "IONameMatch: node name \"%s\" is not in the list", name);
}

/* Every key of dict equals the node's property; the key of the first
 * difference goes into *bad. */
static bool props_contain(const reg_node *node, const odk_value *dict, const char **bad)
{
    for (size_t i = 0; i < odk_dict_count(dict); i++) {
        const char *k = odk_dict_key_at(dict, i);
        const odk_value *have = node->props ? odk_dict_get(node->props, k) : NULL;
        if (!have || !odk_value_equal(have, odk_dict_value_at(dict, i))) {
            *bad = k;
            return false;
        }
    }
    return true;
}

static int match_property(const reg_node *node, const odk_value *want, char *why, size_t why_len)
{
    const char *bad = "";
    if (odk_value_type(want) == ODK_TYPE_DICT) {
        if (props_contain(node, want, &bad))
            return 1;
        return no(why, why_len, "IOPropertyMatch: node property %s differs or is missing", bad);
    }
    if (odk_value_type(want) != ODK_TYPE_ARRAY)
        return no(why, why_len, "IOPropertyMatch: expected dictionary or array, got %s",
                  odk_type_name(odk_value_type(want)));
    for (size_t i = 0; i < odk_array_count(want); i++) {
        const odk_value *d = odk_array_get(want, i);
        if (odk_value_type(d) == ODK_TYPE_DICT && props_contain(node, d, &bad))
            return 1;
    }
    return no(why, why_len, "IOPropertyMatch: none of the %zu dictionaries matches",
              odk_array_count(want));
}

static int match_resource(const registry *reg, const reg_node *node, const odk_value *want,
                          char *why, size_t why_len)
{
    const char *res = odk_value_string(want);
    if (!res)
        return no(why, why_len, "IOResourceMatch: expected string, got %s",
                  odk_type_name(odk_value_type(want)));
    if (!registry_class_is_a(reg, node->class_name, "IOUserResources"))
        return no(why, why_len, "IOResourceMatch: node class %s is not IOUserResources",
                  node->class_name);
    if (strcmp(res, "IOKit") != 0 && !(node->props && odk_dict_get(node->props, res)))
        return no(why, why_len, "IOResourceMatch: resource %s is not published", res);
    return 1;
}

static int match_plain(const reg_node *node, const char *key, const odk_value *want, char *why,
                       size_t why_len)
{
    const odk_value *have = node->props ? odk_dict_get(node->props, key) : NULL;
    char a[80], b[80];
    if (!have)
        return no(why, why_len, "%s: node has no property %s", key, key);
    if (!odk_value_equal(have, want))
        return no(why, why_len, "%s: node has %s, personality wants %s", key,
                  show(have, a, sizeof a), show(want, b, sizeof b));
    return 1;
}

int match_personality(const registry *reg, const reg_node *node, const odk_value *personality,
                      char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!reg || !node)
        return no(why, why_len, "no node");
    if (!personality || odk_value_type(personality) != ODK_TYPE_DICT)
        return no(why, why_len, "personality is not a dictionary");
    const odk_value *prov = odk_dict_get(personality, "IOProviderClass");
    if (!prov)
        return no(why, why_len, "IOProviderClass: missing");
    if (odk_value_type(prov) != ODK_TYPE_STRING)
        return no(why, why_len, "IOProviderClass: expected string, got %s",
                  odk_type_name(odk_value_type(prov)));
    if (!registry_class_is_a(reg, node->class_name, odk_value_string(prov)))
        return no(why, why_len, "IOProviderClass: node class %s is not a %s", node->class_name,
                  odk_value_string(prov));

    for (size_t i = 0; i < odk_dict_count(personality); i++) {
        const char *key = odk_dict_key_at(personality, i);
        const odk_value *want = odk_dict_value_at(personality, i);
        int r;
        if (is_informational(key))
            continue;
        if (strcmp(key, "IONameMatch") == 0)
            r = match_name(node, want, why, why_len);
        else if (strcmp(key, "IOPropertyMatch") == 0)
            r = match_property(node, want, why, why_len);
        else if (strcmp(key, "IOResourceMatch") == 0)
            r = match_resource(reg, node, want, why, why_len);
        else if (strcmp(key, "IOPCIPrimaryMatch") == 0 || strcmp(key, "IOPCISecondaryMatch") == 0 ||
                 strcmp(key, "IOPCIMatch") == 0 || strcmp(key, "IOPCIClassMatch") == 0)
            r = match_pci(node, key, want, why, why_len);
        else
            r = match_plain(node, key, want, why, why_len);
        if (r != 1)
            return 0;
    }
    return 1;
}

int64_t match_probe_score(const odk_value *personality)
{
    return odk_dict_get_int(personality, "IOProbeScore", 0);
}

const char *match_category(const odk_value *personality)
{
    return odk_dict_get_string(personality, "IOMatchCategory", DEFAULT_CATEGORY);
}

/* ---- ranking ---- */

/* < 0 when a should win over b. */
static int candidate_cmp(const match_candidate *a, const match_candidate *b)
{
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    int c = strcmp(a->bundle->id ? a->bundle->id : "", b->bundle->id ? b->bundle->id : "");
    return c ? c : strcmp(a->name, b->name);
}

static int candidate_qsort_cmp(const void *a, const void *b)
{
    return candidate_cmp(a, b);
}

static bool is_taken(const char *cat, const char *const *taken, size_t n_taken)
{
    for (size_t i = 0; i < n_taken; i++)
        if (taken[i] && strcmp(taken[i], cat) == 0)
            return true;
    return false;
}

int match_rank(const registry *reg, const reg_node *node, bundle *const *bundles,
               size_t n_bundles, const char *const *taken, size_t n_taken,
               match_candidate **winners, size_t *n_winners)
{
    if (!winners || !n_winners)
        return ODK_E_INVALID;
    *winners = NULL;
    *n_winners = 0;
    if (!reg || !node || (n_bundles && !bundles))
        return ODK_E_INVALID;
    match_candidate *w = NULL;
    size_t n = 0, cap = 0;
    for (size_t bi = 0; bi < n_bundles; bi++) {
        const bundle *b = bundles[bi];
        if (!b || !b->personalities)
            continue;
        for (size_t pi = 0; pi < odk_dict_count(b->personalities); pi++) {
            const odk_value *p = odk_dict_value_at(b->personalities, pi);
            match_candidate c = {b, odk_dict_key_at(b->personalities, pi), p, match_probe_score(p),
                                 match_category(p)};
            if (is_taken(c.category, taken, n_taken) || !match_personality(reg, node, p, NULL, 0))
                continue;
            size_t k = 0;
            while (k < n && strcmp(w[k].category, c.category) != 0)
                k++;
            if (k < n) {
                if (candidate_cmp(&c, &w[k]) < 0)
                    w[k] = c;
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                match_candidate *nw = realloc(w, cap * sizeof *nw);
                if (!nw) {
                    free(w);
                    return ODK_E_NOMEM;
                }
                w = nw;
            }
            w[n++] = c;
        }
    }
    if (n > 1)
        qsort(w, n, sizeof *w, candidate_qsort_cmp);
    *winners = w;
    *n_winners = n;
    return ODK_OK;
}

odk_value *match_explain(const registry *reg, const reg_node *node, bundle *const *bundles,
                         size_t n_bundles, const char *const *taken, size_t n_taken)
{
    match_candidate *w = NULL;
    size_t nw = 0;
    if (match_rank(reg, node, bundles, n_bundles, taken, n_taken, &w, &nw) < 0)
        return NULL;
    odk_value *list = odk_value_new_array();
    if (!list)
        goto fail;
    for (size_t bi = 0; bi < n_bundles; bi++) {
        const bundle *b = bundles[bi];
        if (!b || !b->personalities)
            continue;
        for (size_t pi = 0; pi < odk_dict_count(b->personalities); pi++) {
            const char *name = odk_dict_key_at(b->personalities, pi);
            const odk_value *p = odk_dict_value_at(b->personalities, pi);
            const char *cat = match_category(p);
            char why[512];
            int matched = match_personality(reg, node, p, why, sizeof why);
            bool winner = false;
            const match_candidate *best = NULL;
            for (size_t k = 0; k < nw; k++) {
                if (strcmp(w[k].category, cat) == 0)
                    best = &w[k];
                if (w[k].personality == p)
                    winner = true;
            }
            odk_value *e = odk_value_new_dict();
            int st = e ? ODK_OK : ODK_E_NOMEM;
            if (st == ODK_OK)
                st = odk_dict_set_string(e, "bundle", b->id ? b->id : "");
            if (st == ODK_OK)
                st = odk_dict_set_string(e, "personality", name);
            if (st == ODK_OK)
                st = odk_dict_set_bool(e, "matched", matched == 1);
            if (st == ODK_OK && matched != 1)
                st = odk_dict_set_string(e, "reason", why);
            if (st == ODK_OK)
                st = odk_dict_set_int(e, "score", match_probe_score(p));
            if (st == ODK_OK)
                st = odk_dict_set_string(e, "category", cat);
            if (st == ODK_OK)
                st = odk_dict_set_bool(e, "winner", winner);
            /* Why a matching personality does not run: its category already
             * has a driver, or another personality outranks it. */
            if (st == ODK_OK && matched == 1 && is_taken(cat, taken, n_taken))
                st = odk_dict_set_bool(e, "taken", true);
            if (st == ODK_OK && matched == 1 && !winner && best) {
                char by[512];
                snprintf(by, sizeof by, "%s/%s", best->bundle->id ? best->bundle->id : "",
                         best->name);
                st = odk_dict_set_string(e, "outranked_by", by);
            }
            if (st == ODK_OK)
                st = odk_array_append(list, e);
            else
                odk_value_free(e);
            if (st != ODK_OK)
                goto fail;
        }
    }
    free(w);
    return list;
fail:
    free(w);
    odk_value_free(list);
    return NULL;
}
