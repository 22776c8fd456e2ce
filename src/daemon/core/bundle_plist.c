/* SPDX-License-Identifier: MIT */
/* bundle_plist.c — DriverKit Info.plist and Entitlements.plist through
 * libplist, with guards in front of it: libplist 2.2 aborts or runs out of
 * stack or memory on some hostile plists, so those are refused first. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/core/bundle_internal.h"
#include "odk/status.h"

/* ---- plist → odk_value ---- */

static const char *plist_kind(plist_t p)
{
    switch (plist_get_node_type(p)) {
    case PLIST_BOOLEAN:
        return "boolean";
    case PLIST_UINT:
        return "integer";
    case PLIST_REAL:
        return "real";
    case PLIST_STRING:
        return "string";
    case PLIST_ARRAY:
        return "array";
    case PLIST_DICT:
        return "dictionary";
    case PLIST_DATE:
        return "date";
    case PLIST_DATA:
        return "data";
    case PLIST_KEY:
        return "key";
    case PLIST_UID:
        return "uid";
    default:
        return "unknown";
    }
}

int bundle_from_plist(const struct ctx *c, plist_t p, const char *path, int depth, odk_value **out)
{
    *out = NULL;
    if (depth > ODK_VALUE_MAX_DEPTH)
        return bundle_fail(c, path, "nested deeper than %d levels", ODK_VALUE_MAX_DEPTH);
    odk_value *v = NULL;
    switch (plist_get_node_type(p)) {
    case PLIST_STRING: {
        uint64_t n = 0;
        const char *s = plist_get_string_ptr(p, &n);
        if (!s)
            s = "";
        if (memchr(s, '\0', (size_t)n))
            return bundle_fail(c, path, "string holds a NUL character");
        v = odk_value_new_stringn(s, (size_t)n);
        break;
    }
    case PLIST_UINT: {
        /* libplist keeps integers as 64 bits; negative XML integers come
         * back in two's complement. */
        uint64_t u = 0;
        plist_get_uint_val(p, &u);
        v = odk_value_new_int((int64_t)u);
        break;
    }
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(p, &b);
        v = odk_value_new_bool(b != 0);
        break;
    }
    case PLIST_DATA: {
        uint64_t len = 0;
        const char *d = plist_get_data_ptr(p, &len);
        v = odk_value_new_data(d ? d : "", d ? (size_t)len : 0);
        break;
    }
    case PLIST_ARRAY: {
        v = odk_value_new_array();
        if (!v)
            return bundle_nomem(c);
        uint32_t n = plist_array_get_size(p);
        for (uint32_t i = 0; i < n; i++) {
            char sub[KEY_PATH_MAX];
            odk_value *item;
            bundle_path_index(sub, path, i);
            int st = bundle_from_plist(c, plist_array_get_item(p, i), sub, depth + 1, &item);
            if (st == ODK_OK && odk_array_append(v, item) < 0)
                st = bundle_nomem(c);
            if (st != ODK_OK) {
                odk_value_free(v);
                return st;
            }
        }
        break;
    }
    case PLIST_DICT: {
        v = odk_value_new_dict();
        if (!v)
            return bundle_nomem(c);
        plist_dict_iter it = NULL;
        plist_dict_new_iter(p, &it);
        if (!it) {
            odk_value_free(v);
            return bundle_nomem(c);
        }
        int st = ODK_OK;
        for (;;) {
            char *key = NULL;
            plist_t item_p = NULL;
            plist_dict_next_item(p, it, &key, &item_p);
            if (!item_p) {
                free(key);
                break;
            }
            char sub[KEY_PATH_MAX];
            odk_value *item;
            bundle_path_key(sub, path, key ? key : "");
            st = bundle_from_plist(c, item_p, sub, depth + 1, &item);
            if (st == ODK_OK && odk_dict_set(v, key ? key : "", item) < 0)
                st = bundle_nomem(c);
            free(key);
            if (st != ODK_OK)
                break;
        }
        free(it);
        if (st != ODK_OK) {
            odk_value_free(v);
            return st;
        }
        break;
    }
    default:
        return bundle_fail(c, path, "%s values are not supported", plist_kind(p));
    }
    if (!v)
        return bundle_nomem(c);
    *out = v;
    return ODK_OK;
}

static uint64_t be_uint(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* libplist 2.2 aborts (an assert) when asked for a string or dictionary
 * key holding a NUL character, which a binary plist can encode.  So
 * before handing a binary plist to libplist, every string object is
 * checked here; false means the file is refused.  Format: Apple's
 * CFBinaryPList.c (trailer, offset table, marker bytes). */
static bool bplist_strings_ok(const unsigned char *b, size_t len)
{
    if (len < 8 + 32)
        return false;
    const unsigned char *t = b + len - 32;
    size_t off_size = t[6];
    uint64_t n_objects = be_uint(t + 8, 8), table = be_uint(t + 24, 8);
    if (off_size < 1 || off_size > 8 || table >= len || n_objects > (len - table) / off_size)
        return false;
    for (uint64_t i = 0; i < n_objects; i++) {
        uint64_t o = be_uint(b + table + i * off_size, off_size);
        if (o >= len)
            return false;
        unsigned kind = b[o] >> 4, count = b[o] & 0xf;
        if (kind != 0x5 && kind != 0x6)
            continue;
        uint64_t n = count, start = o + 1;
        if (count == 0xf) {
            /* The length follows as an integer object: 0x1N, 2^N bytes. */
            if (start >= len || b[start] >> 4 != 0x1 || (b[start] & 0xf) > 3)
                return false;
            size_t w = (size_t)1 << (b[start] & 0xf);
            if (start + 1 + w > len)
                return false;
            n = be_uint(b + start + 1, w);
            start += 1 + w;
        }
        uint64_t bytes = kind == 0x6 ? n * 2 : n;
        if (n > len || bytes > len - start)
            return false;
        for (uint64_t k = 0; k < n; k++)
            if (kind == 0x5 ? b[start + k] == 0 : (b[start + 2 * k] | b[start + 2 * k + 1]) == 0)
                return false;
    }
    return true;
}

/* libplist 2.2 parses and frees arrays and dictionaries recursively with
 * no depth limit: about 87,000 nested levels of a binary plist (800 KB)
 * or 175,000 of XML overflow an 8 MB stack.  The depth is at most the
 * number of containers, which is cheap to bound before parsing. */
#define BUNDLE_PLIST_MAX_CONTAINERS 10000

/* How many arrays and dictionaries the plist can hold, at most.  A binary
 * plist must already have passed bplist_strings_ok (trailer and offsets). */
static size_t plist_containers(const unsigned char *b, size_t len)
{
    size_t n = 0;
    if (len >= 8 && memcmp(b, "bplist00", 8) == 0) {
        const unsigned char *t = b + len - 32;
        size_t off_size = t[6];
        uint64_t n_objects = be_uint(t + 8, 8), table = be_uint(t + 24, 8);
        for (uint64_t i = 0; i < n_objects; i++) {
            unsigned kind = b[be_uint(b + table + i * off_size, off_size)] >> 4;
            n += kind >= 0xa && kind <= 0xd; /* array, (ordset), set, dict */
        }
        return n;
    }
    /* XML: each array or dictionary starts with one of these tags. */
    const char *tags[] = {"<array", "<dict"};
    for (size_t k = 0; k < 2; k++) {
        size_t tl = strlen(tags[k]);
        for (const unsigned char *p = b; (p = memmem(p, len - (size_t)(p - b), tags[k], tl)); p++)
            n++;
    }
    return n;
}

/* libplist 2.2 also copies an object each time it is referenced instead of
 * sharing it, so 32 arrays that each name the next one twice expand to 2^32
 * nodes from 260 bytes.  This bounds the expanded size of a binary plist
 * (which must have passed bplist_strings_ok) before libplist sees it. */
#define BUNDLE_PLIST_MAX_NODES 1000000

struct bplist {
    const unsigned char *b;
    size_t len, off_size, ref_size;
    uint64_t n_objects, table;
    uint64_t *memo; /* expanded size + 1; 0 = not yet; UINT64_MAX = in progress */
};

static uint64_t expanded(struct bplist *p, uint64_t obj, int depth)
{
    if (obj >= p->n_objects || depth > BUNDLE_PLIST_MAX_CONTAINERS)
        return UINT64_MAX; /* a bad reference, or deeper than any valid plist here */
    if (p->memo[obj] == UINT64_MAX)
        return UINT64_MAX; /* a cycle */
    if (p->memo[obj])
        return p->memo[obj] - 1;
    uint64_t o = be_uint(p->b + p->table + obj * p->off_size, p->off_size);
    unsigned kind = p->b[o] >> 4, count = p->b[o] & 0xf;
    uint64_t size = 1;
    if (kind >= 0xa && kind <= 0xd) {
        uint64_t n = count, start = o + 1;
        if (count == 0xf) {
            if (start >= p->len || p->b[start] >> 4 != 0x1 || (p->b[start] & 0xf) > 3)
                return UINT64_MAX;
            size_t w = (size_t)1 << (p->b[start] & 0xf);
            if (start + 1 + w > p->len)
                return UINT64_MAX;
            n = be_uint(p->b + start + 1, w);
            start += 1 + w;
        }
        uint64_t refs = kind == 0xd ? n * 2 : n;
        if (n > p->len || refs * p->ref_size > p->len - start)
            return UINT64_MAX;
        p->memo[obj] = UINT64_MAX;
        for (uint64_t i = 0; i < refs && size <= BUNDLE_PLIST_MAX_NODES; i++) {
            uint64_t child = expanded(p, be_uint(p->b + start + i * p->ref_size, p->ref_size),
                                      depth + 1);
            if (child == UINT64_MAX)
                return UINT64_MAX;
            size += child;
        }
    }
    if (size > BUNDLE_PLIST_MAX_NODES)
        size = BUNDLE_PLIST_MAX_NODES + 1;
    p->memo[obj] = size + 1;
    return size;
}

/* False when the binary plist would expand past BUNDLE_PLIST_MAX_NODES. */
static bool bplist_size_ok(const unsigned char *b, size_t len)
{
    const unsigned char *t = b + len - 32;
    struct bplist p = {.b = b, .len = len, .off_size = t[6], .ref_size = t[7],
                       .n_objects = be_uint(t + 8, 8), .table = be_uint(t + 24, 8)};
    uint64_t top = be_uint(t + 16, 8);
    if (p.ref_size < 1 || p.ref_size > 8 || p.n_objects == 0)
        return false;
    p.memo = calloc(p.n_objects, sizeof *p.memo);
    if (!p.memo)
        return false;
    uint64_t n = expanded(&p, top, 0);
    free(p.memo);
    return n <= BUNDLE_PLIST_MAX_NODES;
}

int bundle_plist_root(const struct ctx *c, const char *bytes, size_t len, plist_t *out)
{
    *out = NULL;
    if (len > BUNDLE_MANIFEST_MAX)
        return bundle_fail(c, NULL, "larger than the %u byte limit", BUNDLE_MANIFEST_MAX);
    if (len >= 8 && memcmp(bytes, "bplist00", 8) == 0 &&
        !bplist_strings_ok((const unsigned char *)bytes, len))
        return bundle_fail(c, NULL, "malformed binary property list (bad offsets or a NUL in a string)");
    if (plist_containers((const unsigned char *)bytes, len) > BUNDLE_PLIST_MAX_CONTAINERS)
        return bundle_fail(c, NULL, "holds more than %d arrays and dictionaries (the limit)",
                    BUNDLE_PLIST_MAX_CONTAINERS);
    if (len >= 8 && memcmp(bytes, "bplist00", 8) == 0 &&
        !bplist_size_ok((const unsigned char *)bytes, len))
        return bundle_fail(c, NULL,
                    "expands to more than %d objects through shared references, or has a "
                    "reference cycle (the limit)",
                    BUNDLE_PLIST_MAX_NODES);
    plist_t root = NULL;
    if (len > 0)
        plist_from_memory(bytes, (uint32_t)len, &root);
    if (!root)
        return bundle_fail(c, NULL, "not a property list (XML or binary)");
    *out = root;
    return ODK_OK;
}

int bundle_parse_plist_bytes(const char *bytes, size_t len, const struct ctx *c, bundle **out)
{
    plist_t root;
    int st = bundle_plist_root(c, bytes, len, &root);
    if (st < 0)
        return st;
    if (plist_get_node_type(root) != PLIST_DICT) {
        st = bundle_fail(c, NULL, "expected a dictionary at the top level, got %s", plist_kind(root));
        plist_free(root);
        return st;
    }
    /* Only the keys odk reads are converted: the rest of an Info.plist may
     * hold types odk has no use for (dates, reals). */
    const char *wanted[] = {bundle_plist_keys.id, bundle_plist_keys.version, bundle_plist_keys.alt_version,
                            bundle_plist_keys.executable, bundle_plist_keys.personalities};
    odk_value *m = odk_value_new_dict();
    st = m ? ODK_OK : bundle_nomem(c);
    for (size_t i = 0; st == ODK_OK && i < sizeof wanted / sizeof wanted[0]; i++) {
        plist_t item = plist_dict_get_item(root, wanted[i]);
        odk_value *v;
        if (!item)
            continue;
        st = bundle_from_plist(c, item, wanted[i], 1, &v);
        if (st == ODK_OK && odk_dict_set(m, wanted[i], v) < 0)
            st = bundle_nomem(c);
    }
    plist_free(root);
    if (st == ODK_OK)
        st = bundle_from_manifest(c, m, &bundle_plist_keys, out);
    odk_value_free(m);
    return st;
}

int bundle_parse_plist(const char *plist_bytes, size_t len, const char *source, bundle **out,
                       char *err, size_t err_len)
{
    struct ctx c = {source, err, err_len};
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!plist_bytes)
        return bundle_fail(&c, NULL, "no bytes");
    return bundle_finish_parse(bundle_parse_plist_bytes(plist_bytes, len, &c, out), out, &c);
}

