/* bundle.c — reading a driver bundle: odk.json or Info.plist, the shared
 * object it names, and its entitlements.
 *
 * Manifests are untrusted input: every value is type-checked and every
 * error names the file and the key path ("personalities.Echo.IOProbeScore"),
 * so a driver author can fix it without guessing.
 */
#include "daemon/core/bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <plist/plist.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "odk/status.h"

/* Largest manifest or entitlements file read; bigger ones are refused with
 * ODK_E_LIMIT (a real manifest is a few kilobytes). */
#define BUNDLE_MANIFEST_MAX (4u << 20)
/* Key paths longer than this are cut in error messages. */
#define KEY_PATH_MAX 512

struct ctx {
    const char *source; /* file named in errors */
    char *err;
    size_t err_len;
};

static int fail(const struct ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const struct ctx *c, const char *path, const char *fmt, ...)
{
    if (c->err && c->err_len) {
        int n = snprintf(c->err, c->err_len, "%s: ", c->source ? c->source : "manifest");
        if (n >= 0 && (size_t)n < c->err_len && path && *path) {
            int m = snprintf(c->err + n, c->err_len - (size_t)n, "%s: ", path);
            n = m < 0 ? n : n + m;
        }
        if (n >= 0 && (size_t)n < c->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return ODK_E_MANIFEST;
}

static int nomem(const struct ctx *c)
{
    if (c->err && c->err_len)
        snprintf(c->err, c->err_len, "%s: out of memory", c->source ? c->source : "manifest");
    return ODK_E_NOMEM;
}

/* Key paths are cut at KEY_PATH_MAX: they only ever appear in messages. */
static void path_append(char *out, size_t *n, const char *s)
{
    size_t len = strlen(s);
    if (len > KEY_PATH_MAX - 1 - *n)
        len = KEY_PATH_MAX - 1 - *n;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
}

static void path_key(char *out, const char *parent, const char *key)
{
    size_t n = 0;
    out[0] = '\0';
    path_append(out, &n, parent);
    if (*parent)
        path_append(out, &n, ".");
    path_append(out, &n, key);
}

static void path_index(char *out, const char *parent, size_t i)
{
    char num[32];
    size_t n = 0;
    snprintf(num, sizeof num, "[%zu]", i);
    out[0] = '\0';
    path_append(out, &n, parent);
    path_append(out, &n, num);
}

void bundle_free(bundle *b)
{
    if (!b)
        return;
    free(b->id);
    free(b->version);
    free(b->build);
    free(b->dir);
    free(b->executable);
    free(b->manifest);
    odk_value_free(b->personalities);
    odk_value_free(b->entitlements);
    free(b);
}

/* ---- JSON → odk_value ---- */

static int from_json(const struct ctx *c, const json_t *j, const char *path, int depth,
                     odk_value **out)
{
    *out = NULL;
    if (depth > ODK_VALUE_MAX_DEPTH)
        return fail(c, path, "nested deeper than %d levels", ODK_VALUE_MAX_DEPTH);
    odk_value *v = NULL;
    switch (json_typeof(j)) {
    case JSON_STRING:
        v = odk_value_new_stringn(json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        v = odk_value_new_int((int64_t)json_integer_value(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v = odk_value_new_bool(json_is_true(j));
        break;
    case JSON_REAL:
        return fail(c, path, "real numbers are not supported, use an integer");
    case JSON_NULL:
        return fail(c, path, "null is not supported");
    case JSON_ARRAY: {
        v = odk_value_new_array();
        if (!v)
            return nomem(c);
        for (size_t i = 0; i < json_array_size(j); i++) {
            char sub[KEY_PATH_MAX];
            odk_value *item;
            path_index(sub, path, i);
            int st = from_json(c, json_array_get(j, i), sub, depth + 1, &item);
            if (st == ODK_OK && odk_array_append(v, item) < 0)
                st = nomem(c);
            if (st != ODK_OK) {
                odk_value_free(v);
                return st;
            }
        }
        break;
    }
    case JSON_OBJECT: {
        /* A "$data" object is bytes, as odk_value_to_json writes them. */
        const json_t *hex = json_object_get(j, "$data");
        if (hex && json_object_size(j) == 1 && json_is_string(hex)) {
            size_t n = json_string_length(hex);
            unsigned char *buf = malloc(n / 2 + 1);
            size_t bin_len = 0;
            if (!buf)
                return nomem(c);
            if (n % 2 || sodium_hex2bin(buf, n / 2 + 1, json_string_value(hex), n, NULL, &bin_len,
                                        NULL) != 0) {
                free(buf);
                char sub[KEY_PATH_MAX];
                path_key(sub, path, "$data");
                return fail(c, sub, "expected hexadecimal bytes");
            }
            v = odk_value_new_data(buf, bin_len);
            free(buf);
            break;
        }
        v = odk_value_new_dict();
        if (!v)
            return nomem(c);
        const char *key;
        json_t *item_j;
        json_object_foreach((json_t *)j, key, item_j)
        {
            char sub[KEY_PATH_MAX];
            odk_value *item;
            path_key(sub, path, key);
            int st = from_json(c, item_j, sub, depth + 1, &item);
            if (st == ODK_OK && odk_dict_set(v, key, item) < 0)
                st = nomem(c);
            if (st != ODK_OK) {
                odk_value_free(v);
                return st;
            }
        }
        break;
    }
    }
    if (!v)
        return nomem(c);
    *out = v;
    return ODK_OK;
}

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

static int from_plist(const struct ctx *c, plist_t p, const char *path, int depth, odk_value **out)
{
    *out = NULL;
    if (depth > ODK_VALUE_MAX_DEPTH)
        return fail(c, path, "nested deeper than %d levels", ODK_VALUE_MAX_DEPTH);
    odk_value *v = NULL;
    switch (plist_get_node_type(p)) {
    case PLIST_STRING: {
        uint64_t n = 0;
        const char *s = plist_get_string_ptr(p, &n);
        if (!s)
            s = "";
        if (memchr(s, '\0', (size_t)n))
            return fail(c, path, "string holds a NUL character");
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
            return nomem(c);
        uint32_t n = plist_array_get_size(p);
        for (uint32_t i = 0; i < n; i++) {
            char sub[KEY_PATH_MAX];
            odk_value *item;
            path_index(sub, path, i);
            int st = from_plist(c, plist_array_get_item(p, i), sub, depth + 1, &item);
            if (st == ODK_OK && odk_array_append(v, item) < 0)
                st = nomem(c);
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
            return nomem(c);
        plist_dict_iter it = NULL;
        plist_dict_new_iter(p, &it);
        if (!it) {
            odk_value_free(v);
            return nomem(c);
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
            path_key(sub, path, key ? key : "");
            st = from_plist(c, item_p, sub, depth + 1, &item);
            if (st == ODK_OK && odk_dict_set(v, key ? key : "", item) < 0)
                st = nomem(c);
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
        return fail(c, path, "%s values are not supported", plist_kind(p));
    }
    if (!v)
        return nomem(c);
    *out = v;
    return ODK_OK;
}

/* ---- validation ---- */

/* The manifest keys that hold each field: odk.json and Info.plist differ. */
struct keys {
    const char *id, *version, *alt_version, *build, *executable, *personalities, *entitlements;
};

static const struct keys json_keys = {"bundle",     "version",       NULL,          "build",
                                      "executable", "personalities", "entitlements"};
static const struct keys plist_keys = {"CFBundleIdentifier",
                                       "CFBundleShortVersionString",
                                       "CFBundleVersion",
                                       NULL,
                                       "CFBundleExecutable",
                                       "IOKitPersonalities",
                                       NULL};

static int wrong_type(const struct ctx *c, const char *path, const char *want, const odk_value *v)
{
    return fail(c, path, "expected %s, got %s", want, odk_type_name(odk_value_type(v)));
}

/* The string at key, or NULL with an error; absent is allowed when
 * !required (then *out is NULL and ODK_OK). */
static int get_string(const struct ctx *c, const odk_value *d, const char *path_prefix,
                      const char *key, bool required, const char **out)
{
    char path[KEY_PATH_MAX];
    path_key(path, path_prefix, key);
    const odk_value *v = odk_dict_get(d, key);
    *out = NULL;
    if (!v)
        return required ? fail(c, path, "missing (required)") : ODK_OK;
    if (odk_value_type(v) != ODK_TYPE_STRING)
        return wrong_type(c, path, "string", v);
    if (!*odk_value_string(v))
        return fail(c, path, "must not be empty");
    *out = odk_value_string(v);
    return ODK_OK;
}

/* Bundle and build ids end up in file names (STATE/bundles/ID, logs), so
 * they are restricted to a safe alphabet. */
static bool safe_name(const char *s)
{
    if (!*s || *s == '.')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == '_' || *s == '+'))
            return false;
    return true;
}

/* The executable must name a file inside the bundle folder. */
static bool safe_relative_path(const char *s)
{
    if (!*s || *s == '/')
        return false;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.') || (n == 1 && p[0] == '.'))
            return false;
        p += n + (e ? 1 : 0);
        if (e && !*p)
            return false;
    }
    return true;
}

static int check_personality(const struct ctx *c, const char *path, const odk_value *p)
{
    if (odk_value_type(p) != ODK_TYPE_DICT)
        return wrong_type(c, path, "dictionary", p);
    const char *s;
    int st = get_string(c, p, path, "IOProviderClass", true, &s);
    if (st < 0)
        return st;
    const char *user_class, *io_class;
    if ((st = get_string(c, p, path, "IOUserClass", false, &user_class)) < 0 ||
        (st = get_string(c, p, path, "IOClass", false, &io_class)) < 0)
        return st;
    if (!user_class && !io_class) {
        char sub[KEY_PATH_MAX];
        path_key(sub, path, "IOUserClass");
        return fail(c, sub, "missing (IOUserClass or IOClass is required)");
    }
    if ((st = get_string(c, p, path, "IOMatchCategory", false, &s)) < 0)
        return st;
    char sub[KEY_PATH_MAX];
    const odk_value *v = odk_dict_get(p, "IOProbeScore");
    path_key(sub, path, "IOProbeScore");
    if (v && odk_value_type(v) != ODK_TYPE_INT)
        return wrong_type(c, sub, "integer", v);
    v = odk_dict_get(p, "IOPropertyMatch");
    path_key(sub, path, "IOPropertyMatch");
    if (v && odk_value_type(v) == ODK_TYPE_ARRAY) {
        for (size_t i = 0; i < odk_array_count(v); i++) {
            const odk_value *d = odk_array_get(v, i);
            if (odk_value_type(d) != ODK_TYPE_DICT) {
                char item[KEY_PATH_MAX];
                path_index(item, sub, i);
                return wrong_type(c, item, "dictionary", d);
            }
        }
    } else if (v && odk_value_type(v) != ODK_TYPE_DICT) {
        return wrong_type(c, sub, "dictionary or array of dictionaries", v);
    }
    v = odk_dict_get(p, "IONameMatch");
    path_key(sub, path, "IONameMatch");
    if (v && odk_value_type(v) == ODK_TYPE_ARRAY) {
        for (size_t i = 0; i < odk_array_count(v); i++) {
            const odk_value *n = odk_array_get(v, i);
            if (odk_value_type(n) != ODK_TYPE_STRING) {
                char item[KEY_PATH_MAX];
                path_index(item, sub, i);
                return wrong_type(c, item, "string", n);
            }
        }
    } else if (v && odk_value_type(v) != ODK_TYPE_STRING) {
        return wrong_type(c, sub, "string or array of strings", v);
    }
    return ODK_OK;
}

static int dup_into(const struct ctx *c, char **dst, const char *s)
{
    if (!s)
        return ODK_OK;
    *dst = strdup(s);
    return *dst ? ODK_OK : nomem(c);
}

/* Builds a bundle from a manifest already converted to odk_values.  Leaves
 * entitlements NULL when the manifest has none (bundle_load then looks for
 * an entitlements file), dir and manifest NULL, executable as written and
 * build NULL when not given. */
static int bundle_from_manifest(const struct ctx *c, odk_value *m, const struct keys *k,
                                bundle **out)
{
    *out = NULL;
    if (odk_value_type(m) != ODK_TYPE_DICT)
        return fail(c, NULL, "expected a dictionary at the top level, got %s",
                    odk_type_name(odk_value_type(m)));
    const char *id, *version = NULL, *build = NULL, *exe;
    int st = get_string(c, m, "", k->id, true, &id);
    if (st == ODK_OK && !safe_name(id))
        st = fail(c, k->id, "\"%.100s\" is not a valid bundle id (letters, digits, '.', '-', '_')",
                  id);
    if (st == ODK_OK)
        st = get_string(c, m, "", k->version, false, &version);
    if (st == ODK_OK && !version && k->alt_version)
        st = get_string(c, m, "", k->alt_version, false, &version);
    if (st == ODK_OK && k->build)
        st = get_string(c, m, "", k->build, false, &build);
    if (st == ODK_OK && build && !safe_name(build))
        st = fail(c, k->build,
                  "\"%.100s\" is not a valid build id (letters, digits, '.', '-', '_')", build);
    if (st == ODK_OK)
        st = get_string(c, m, "", k->executable, true, &exe);
    if (st == ODK_OK && !safe_relative_path(exe))
        st = fail(c, k->executable, "\"%.100s\" must name a file inside the bundle folder", exe);
    if (st < 0)
        return st;

    const odk_value *pers = odk_dict_get(m, k->personalities);
    if (!pers)
        return fail(c, k->personalities, "missing (required)");
    if (odk_value_type(pers) != ODK_TYPE_DICT)
        return wrong_type(c, k->personalities, "dictionary", pers);
    for (size_t i = 0; i < odk_dict_count(pers); i++) {
        char path[KEY_PATH_MAX];
        path_key(path, k->personalities, odk_dict_key_at(pers, i));
        if ((st = check_personality(c, path, odk_dict_value_at(pers, i))) < 0)
            return st;
    }
    const odk_value *ent = k->entitlements ? odk_dict_get(m, k->entitlements) : NULL;
    if (ent && odk_value_type(ent) != ODK_TYPE_DICT)
        return wrong_type(c, k->entitlements, "dictionary", ent);

    bundle *b = calloc(1, sizeof *b);
    if (!b)
        return nomem(c);
    st = dup_into(c, &b->id, id);
    if (st == ODK_OK)
        st = dup_into(c, &b->version, version ? version : "0");
    if (st == ODK_OK)
        st = dup_into(c, &b->build, build);
    if (st == ODK_OK)
        st = dup_into(c, &b->executable, exe);
    if (st == ODK_OK && !(b->personalities = odk_value_copy(pers)))
        st = nomem(c);
    if (st == ODK_OK && ent && !(b->entitlements = odk_value_copy(ent)))
        st = nomem(c);
    if (st != ODK_OK) {
        bundle_free(b);
        return st;
    }
    *out = b;
    return ODK_OK;
}

/* ---- parsing ---- */

static int parse_json_value(const struct ctx *c, const char *text, size_t len, odk_value **out)
{
    json_error_t je;
    *out = NULL;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j)
        return fail(c, NULL, "line %d, column %d: %s", je.line, je.column, je.text);
    int st = from_json(c, j, "", 0, out);
    json_decref(j);
    return st;
}

static int parse_json(const char *text, size_t len, const struct ctx *c, bundle **out)
{
    odk_value *m;
    int st = parse_json_value(c, text, len, &m);
    if (st < 0)
        return st;
    st = bundle_from_manifest(c, m, &json_keys, out);
    odk_value_free(m);
    return st;
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

static int plist_root(const struct ctx *c, const char *bytes, size_t len, plist_t *out)
{
    *out = NULL;
    if (len > BUNDLE_MANIFEST_MAX)
        return fail(c, NULL, "larger than the %u byte limit", BUNDLE_MANIFEST_MAX);
    if (len >= 8 && memcmp(bytes, "bplist00", 8) == 0 &&
        !bplist_strings_ok((const unsigned char *)bytes, len))
        return fail(c, NULL, "malformed binary property list (bad offsets or a NUL in a string)");
    if (plist_containers((const unsigned char *)bytes, len) > BUNDLE_PLIST_MAX_CONTAINERS)
        return fail(c, NULL, "holds more than %d arrays and dictionaries (the limit)",
                    BUNDLE_PLIST_MAX_CONTAINERS);
    if (len >= 8 && memcmp(bytes, "bplist00", 8) == 0 &&
        !bplist_size_ok((const unsigned char *)bytes, len))
        return fail(c, NULL,
                    "expands to more than %d objects through shared references, or has a "
                    "reference cycle (the limit)",
                    BUNDLE_PLIST_MAX_NODES);
    plist_t root = NULL;
    if (len > 0)
        plist_from_memory(bytes, (uint32_t)len, &root);
    if (!root)
        return fail(c, NULL, "not a property list (XML or binary)");
    *out = root;
    return ODK_OK;
}

static int parse_plist(const char *bytes, size_t len, const struct ctx *c, bundle **out)
{
    plist_t root;
    int st = plist_root(c, bytes, len, &root);
    if (st < 0)
        return st;
    if (plist_get_node_type(root) != PLIST_DICT) {
        st = fail(c, NULL, "expected a dictionary at the top level, got %s", plist_kind(root));
        plist_free(root);
        return st;
    }
    /* Only the keys odk reads are converted: the rest of an Info.plist may
     * hold types odk has no use for (dates, reals). */
    const char *wanted[] = {plist_keys.id, plist_keys.version, plist_keys.alt_version,
                            plist_keys.executable, plist_keys.personalities};
    odk_value *m = odk_value_new_dict();
    st = m ? ODK_OK : nomem(c);
    for (size_t i = 0; st == ODK_OK && i < sizeof wanted / sizeof wanted[0]; i++) {
        plist_t item = plist_dict_get_item(root, wanted[i]);
        odk_value *v;
        if (!item)
            continue;
        st = from_plist(c, item, wanted[i], 1, &v);
        if (st == ODK_OK && odk_dict_set(m, wanted[i], v) < 0)
            st = nomem(c);
    }
    plist_free(root);
    if (st == ODK_OK)
        st = bundle_from_manifest(c, m, &plist_keys, out);
    odk_value_free(m);
    return st;
}

/* The public parsers give a complete bundle: entitlements never NULL. */
static int finish_parse(int st, bundle **out, const struct ctx *c)
{
    if (st == ODK_OK && !(*out)->entitlements && !((*out)->entitlements = odk_value_new_dict())) {
        bundle_free(*out);
        *out = NULL;
        return nomem(c);
    }
    return st;
}

int bundle_parse_json(const char *json_text, size_t len, const char *source, bundle **out,
                      char *err, size_t err_len)
{
    struct ctx c = {source, err, err_len};
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!json_text)
        return fail(&c, NULL, "no text");
    if (len > BUNDLE_MANIFEST_MAX)
        return fail(&c, NULL, "larger than the %u byte limit", BUNDLE_MANIFEST_MAX);
    return finish_parse(parse_json(json_text, len, &c, out), out, &c);
}

int bundle_parse_plist(const char *plist_bytes, size_t len, const char *source, bundle **out,
                       char *err, size_t err_len)
{
    struct ctx c = {source, err, err_len};
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!plist_bytes)
        return fail(&c, NULL, "no bytes");
    return finish_parse(parse_plist(plist_bytes, len, &c, out), out, &c);
}

/* ---- files ---- */

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads a whole file (NUL-terminated for text parsers). */
static int read_file(const struct ctx *c, const char *path, char **out, size_t *out_len)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (c->err && c->err_len)
            snprintf(c->err, c->err_len, "%s: cannot open: %s", path, strerror(e));
        return e == ENOENT ? ODK_E_NOT_FOUND : ODK_E_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        if (c->err && c->err_len)
            snprintf(c->err, c->err_len, "%s: not a regular file", path);
        return ODK_E_IO;
    }
    if ((uint64_t)sb.st_size > BUNDLE_MANIFEST_MAX) {
        close(fd);
        if (c->err && c->err_len)
            snprintf(c->err, c->err_len, "%s: larger than the %u byte limit", path,
                     BUNDLE_MANIFEST_MAX);
        return ODK_E_LIMIT;
    }
    size_t cap = (size_t)sb.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return nomem(c);
    }
    for (;;) {
        if (len + 1 == cap) {
            /* The file grew while we read it. */
            if (cap > BUNDLE_MANIFEST_MAX) {
                free(buf);
                close(fd);
                if (c->err && c->err_len)
                    snprintf(c->err, c->err_len, "%s: larger than the %u byte limit", path,
                             BUNDLE_MANIFEST_MAX);
                return ODK_E_LIMIT;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return nomem(c);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            if (c->err && c->err_len)
                snprintf(c->err, c->err_len, "%s: cannot read: %s", path, strerror(e));
            return ODK_E_IO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return ODK_OK;
}

/* First 16 hex characters of the BLAKE2b hash of the file's bytes. */
static int hash_file(const struct ctx *c, const char *path, char **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (c->err && c->err_len)
            snprintf(c->err, c->err_len, "%s: cannot open: %s", path, strerror(errno));
        return ODK_E_IO;
    }
    if (sodium_init() < 0) {
        close(fd);
        return nomem(c);
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, crypto_generichash_BYTES);
    unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            if (c->err && c->err_len)
                snprintf(c->err, c->err_len, "%s: cannot read: %s", path, strerror(e));
            return ODK_E_IO;
        }
        if (n == 0)
            break;
        crypto_generichash_update(&h, buf, (unsigned long long)n);
    }
    close(fd);
    unsigned char digest[crypto_generichash_BYTES];
    crypto_generichash_final(&h, digest, sizeof digest);
    char hex[2 * crypto_generichash_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    hex[16] = '\0';
    *out = strdup(hex);
    return *out ? ODK_OK : nomem(c);
}

/* Entitlements from entitlements.json or Entitlements.plist in dir; an
 * empty dictionary when neither exists. */
static int load_entitlements(const char *dir, odk_value **out, char *err, size_t err_len)
{
    *out = NULL;
    char *json_path = join(dir, "entitlements.json");
    char *plist_path = join(dir, "Entitlements.plist");
    struct ctx c = {NULL, err, err_len};
    int st = ODK_OK;
    if (!json_path || !plist_path) {
        st = nomem(&c);
    } else if (is_file(json_path) || is_file(plist_path)) {
        bool is_json = is_file(json_path);
        c.source = is_json ? json_path : plist_path;
        char *text = NULL;
        size_t len = 0;
        st = read_file(&c, c.source, &text, &len);
        if (st == ODK_OK && is_json) {
            st = parse_json_value(&c, text, len, out);
        } else if (st == ODK_OK) {
            plist_t root;
            st = plist_root(&c, text, len, &root);
            if (st == ODK_OK) {
                st = from_plist(&c, root, "", 0, out);
                plist_free(root);
            }
        }
        if (st == ODK_OK && odk_value_type(*out) != ODK_TYPE_DICT) {
            st = fail(&c, NULL, "expected a dictionary at the top level, got %s",
                      odk_type_name(odk_value_type(*out)));
            odk_value_free(*out);
            *out = NULL;
        }
        free(text);
    } else if (!(*out = odk_value_new_dict())) {
        st = nomem(&c);
    }
    free(json_path);
    free(plist_path);
    return st;
}

int bundle_load(const char *dir, bundle **out, char *err, size_t err_len)
{
    struct ctx c = {dir, err, err_len};
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!dir || !*dir)
        return fail(&c, NULL, "no bundle folder given");
    char *abs = realpath(dir, NULL);
    if (!abs) {
        int e = errno;
        if (err && err_len)
            snprintf(err, err_len, "%s: %s", dir, strerror(e));
        return e == ENOENT || e == ENOTDIR ? ODK_E_NOT_FOUND : ODK_E_IO;
    }
    struct stat sb;
    if (stat(abs, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        if (err && err_len)
            snprintf(err, err_len, "%s: not a folder", abs);
        free(abs);
        return ODK_E_NOT_FOUND;
    }

    bundle *b = NULL;
    char *manifest = join(abs, "odk.json");
    char *text = NULL, *exe = NULL;
    size_t len = 0;
    int st = manifest ? ODK_OK : nomem(&c);
    bool is_json = true;
    if (st == ODK_OK && !is_file(manifest)) {
        free(manifest);
        manifest = join(abs, "Info.plist");
        is_json = false;
        if (!manifest)
            st = nomem(&c);
        else if (!is_file(manifest)) {
            if (err && err_len)
                snprintf(err, err_len, "%s: no odk.json or Info.plist in the folder", abs);
            st = ODK_E_NOT_FOUND;
        }
    }
    c.source = manifest;
    if (st == ODK_OK)
        st = read_file(&c, manifest, &text, &len);
    if (st == ODK_OK)
        st = is_json ? parse_json(text, len, &c, &b) : parse_plist(text, len, &c, &b);
    free(text);

    if (st == ODK_OK) {
        exe = join(abs, b->executable);
        if (!exe) {
            st = nomem(&c);
        } else if (!is_file(exe)) {
            /* Xcode names the executable without a suffix; an odk build of
             * the same driver is NAME.so. */
            char *so = NULL;
            if (asprintf(&so, "%s.so", exe) < 0)
                st = nomem(&c);
            else if (is_file(so)) {
                free(exe);
                exe = so;
                so = NULL;
            } else {
                st = fail(&c, is_json ? json_keys.executable : plist_keys.executable,
                          "file %s does not exist", exe);
            }
            free(so);
        }
    }
    if (st == ODK_OK) {
        free(b->executable);
        b->executable = exe;
        exe = NULL;
        b->dir = abs;
        abs = NULL;
        b->manifest = manifest;
        manifest = NULL;
        if (!b->build)
            st = hash_file(&c, b->executable, &b->build);
    }
    if (st == ODK_OK && !b->entitlements)
        st = load_entitlements(b->dir, &b->entitlements, err, err_len);

    free(exe);
    free(abs);
    free(manifest);
    if (st != ODK_OK) {
        bundle_free(b);
        return st;
    }
    *out = b;
    return ODK_OK;
}
