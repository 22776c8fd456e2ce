/* SPDX-License-Identifier: MIT */
/* bundle_manifest.c — the checks every manifest passes, whichever file it
 * came from, and odk.json itself.
 *
 * Manifests are untrusted input: every value is type-checked and every
 * error names the file and the key path ("personalities.Echo.IOProbeScore"),
 * so a driver author can fix it without guessing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/core/bundle_internal.h"
#include "odk/status.h"

int bundle_fail(const struct ctx *c, const char *path, const char *fmt, ...)
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

int bundle_nomem(const struct ctx *c)
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

void bundle_path_key(char *out, const char *parent, const char *key)
{
    size_t n = 0;
    out[0] = '\0';
    path_append(out, &n, parent);
    if (*parent)
        path_append(out, &n, ".");
    path_append(out, &n, key);
}

void bundle_path_index(char *out, const char *parent, size_t i)
{
    char num[32];
    size_t n = 0;
    snprintf(num, sizeof num, "[%zu]", i);
    out[0] = '\0';
    path_append(out, &n, parent);
    path_append(out, &n, num);
}

/* ---- validation ---- */

const struct keys bundle_json_keys = {"bundle",     "version",       NULL,          "build",
                                      "executable", "personalities", "entitlements"};
const struct keys bundle_plist_keys = {"CFBundleIdentifier",
                                       "CFBundleShortVersionString",
                                       "CFBundleVersion",
                                       NULL,
                                       "CFBundleExecutable",
                                       "IOKitPersonalities",
                                       NULL};

static int wrong_type(const struct ctx *c, const char *path, const char *want, const odk_value *v)
{
    return bundle_fail(c, path, "expected %s, got %s", want, odk_type_name(odk_value_type(v)));
}

/* The string at key, or NULL with an error; absent is allowed when
 * !required (then *out is NULL and ODK_OK). */
static int get_string(const struct ctx *c, const odk_value *d, const char *path_prefix,
                      const char *key, bool required, const char **out)
{
    char path[KEY_PATH_MAX];
    bundle_path_key(path, path_prefix, key);
    const odk_value *v = odk_dict_get(d, key);
    *out = NULL;
    if (!v)
        return required ? bundle_fail(c, path, "missing (required)") : ODK_OK;
    if (odk_value_type(v) != ODK_TYPE_STRING)
        return wrong_type(c, path, "string", v);
    if (!*odk_value_string(v))
        return bundle_fail(c, path, "must not be empty");
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

/* OdkUserClientAccess: "everyone", or {"users": [...], "groups": [...]}
 * whose entries are names or ids (front/access.c decides with it; names
 * are looked up at each open, so an unknown one is not an error here). */
static int check_user_client_access(const struct ctx *c, const char *path, const odk_value *p)
{
    char sub[KEY_PATH_MAX], item[KEY_PATH_MAX];
    const odk_value *v = odk_dict_get(p, "OdkUserClientAccess");
    bundle_path_key(sub, path, "OdkUserClientAccess");
    if (!v)
        return ODK_OK;
    if (odk_value_type(v) == ODK_TYPE_STRING)
        return strcmp(odk_value_string(v), "everyone") == 0
                   ? ODK_OK
                   : bundle_fail(c, sub, "must be \"everyone\" or {\"users\": [...], \"groups\": [...]}");
    if (odk_value_type(v) != ODK_TYPE_DICT)
        return wrong_type(c, sub, "\"everyone\" or a dictionary", v);
    for (size_t i = 0; i < odk_dict_count(v); i++) {
        const char *key = odk_dict_key_at(v, i);
        const odk_value *list = odk_dict_value_at(v, i);
        bundle_path_key(item, sub, key);
        if (strcmp(key, "users") != 0 && strcmp(key, "groups") != 0)
            return bundle_fail(c, item, "unknown key (expected users or groups)");
        if (odk_value_type(list) != ODK_TYPE_ARRAY)
            return wrong_type(c, item, "array of names or ids", list);
        for (size_t k = 0; k < odk_array_count(list); k++) {
            const odk_value *e = odk_array_get(list, k);
            char at[KEY_PATH_MAX];
            bundle_path_index(at, item, k);
            bool name = odk_value_type(e) == ODK_TYPE_STRING && *odk_value_string(e);
            bool id = odk_value_type(e) == ODK_TYPE_INT && odk_value_int(e) >= 0 &&
                      odk_value_int(e) < (int64_t)UINT32_MAX;
            if (!name && !id)
                return bundle_fail(c, at, "expected a name or an id from 0 to %u", UINT32_MAX - 1);
        }
    }
    return ODK_OK;
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
        bundle_path_key(sub, path, "IOUserClass");
        return bundle_fail(c, sub, "missing (IOUserClass or IOClass is required)");
    }
    if ((st = get_string(c, p, path, "IOMatchCategory", false, &s)) < 0)
        return st;
    char sub[KEY_PATH_MAX];
    const odk_value *v = odk_dict_get(p, "IOProbeScore");
    bundle_path_key(sub, path, "IOProbeScore");
    if (v && odk_value_type(v) != ODK_TYPE_INT)
        return wrong_type(c, sub, "integer", v);
    v = odk_dict_get(p, "IOPropertyMatch");
    bundle_path_key(sub, path, "IOPropertyMatch");
    if (v && odk_value_type(v) == ODK_TYPE_ARRAY) {
        for (size_t i = 0; i < odk_array_count(v); i++) {
            const odk_value *d = odk_array_get(v, i);
            if (odk_value_type(d) != ODK_TYPE_DICT) {
                char item[KEY_PATH_MAX];
                bundle_path_index(item, sub, i);
                return wrong_type(c, item, "dictionary", d);
            }
        }
    } else if (v && odk_value_type(v) != ODK_TYPE_DICT) {
        return wrong_type(c, sub, "dictionary or array of dictionaries", v);
    }
    v = odk_dict_get(p, "IONameMatch");
    bundle_path_key(sub, path, "IONameMatch");
    if (v && odk_value_type(v) == ODK_TYPE_ARRAY) {
        for (size_t i = 0; i < odk_array_count(v); i++) {
            const odk_value *n = odk_array_get(v, i);
            if (odk_value_type(n) != ODK_TYPE_STRING) {
                char item[KEY_PATH_MAX];
                bundle_path_index(item, sub, i);
                return wrong_type(c, item, "string", n);
            }
        }
    } else if (v && odk_value_type(v) != ODK_TYPE_STRING) {
        return wrong_type(c, sub, "string or array of strings", v);
    }
    return check_user_client_access(c, path, p);
}

static int dup_into(const struct ctx *c, char **dst, const char *s)
{
    if (!s)
        return ODK_OK;
    *dst = strdup(s);
    return *dst ? ODK_OK : bundle_nomem(c);
}

/* Builds a bundle from a manifest already converted to odk_values.  Leaves
 * entitlements NULL when the manifest has none (bundle_load then looks for
 * an entitlements file), dir and manifest NULL, executable as written and
 * build NULL when not given. */
int bundle_from_manifest(const struct ctx *c, odk_value *m, const struct keys *k,
                                bundle **out)
{
    *out = NULL;
    if (odk_value_type(m) != ODK_TYPE_DICT)
        return bundle_fail(c, NULL, "expected a dictionary at the top level, got %s",
                    odk_type_name(odk_value_type(m)));
    const char *id, *version = NULL, *build = NULL, *exe;
    int st = get_string(c, m, "", k->id, true, &id);
    if (st == ODK_OK && !safe_name(id))
        st = bundle_fail(c, k->id, "\"%.100s\" is not a valid bundle id (letters, digits, '.', '-', '_')",
                  id);
    if (st == ODK_OK)
        st = get_string(c, m, "", k->version, false, &version);
    if (st == ODK_OK && !version && k->alt_version)
        st = get_string(c, m, "", k->alt_version, false, &version);
    if (st == ODK_OK && k->build)
        st = get_string(c, m, "", k->build, false, &build);
    if (st == ODK_OK && build && !safe_name(build))
        st = bundle_fail(c, k->build,
                  "\"%.100s\" is not a valid build id (letters, digits, '.', '-', '_')", build);
    if (st == ODK_OK)
        st = get_string(c, m, "", k->executable, true, &exe);
    if (st == ODK_OK && !safe_relative_path(exe))
        st = bundle_fail(c, k->executable, "\"%.100s\" must name a file inside the bundle folder", exe);
    if (st < 0)
        return st;

    const odk_value *pers = odk_dict_get(m, k->personalities);
    if (!pers)
        return bundle_fail(c, k->personalities, "missing (required)");
    if (odk_value_type(pers) != ODK_TYPE_DICT)
        return wrong_type(c, k->personalities, "dictionary", pers);
    for (size_t i = 0; i < odk_dict_count(pers); i++) {
        char path[KEY_PATH_MAX];
        bundle_path_key(path, k->personalities, odk_dict_key_at(pers, i));
        if ((st = check_personality(c, path, odk_dict_value_at(pers, i))) < 0)
            return st;
    }
    const odk_value *ent = k->entitlements ? odk_dict_get(m, k->entitlements) : NULL;
    if (ent && odk_value_type(ent) != ODK_TYPE_DICT)
        return wrong_type(c, k->entitlements, "dictionary", ent);

    bundle *b = calloc(1, sizeof *b);
    if (!b)
        return bundle_nomem(c);
    st = dup_into(c, &b->id, id);
    if (st == ODK_OK)
        st = dup_into(c, &b->version, version ? version : "0");
    if (st == ODK_OK)
        st = dup_into(c, &b->build, build);
    if (st == ODK_OK)
        st = dup_into(c, &b->executable, exe);
    if (st == ODK_OK && !(b->personalities = odk_value_copy(pers)))
        st = bundle_nomem(c);
    if (st == ODK_OK && ent && !(b->entitlements = odk_value_copy(ent)))
        st = bundle_nomem(c);
    if (st != ODK_OK) {
        bundle_free(b);
        return st;
    }
    *out = b;
    return ODK_OK;
}

/* ---- odk.json ---- */

int bundle_json_value(const struct ctx *c, const char *text, size_t len, odk_value **out)
{
    *out = NULL;
    if (memchr(text, '\0', len))
        return bundle_fail(c, NULL, "holds a NUL byte");
    char *copy = strndup(text, len);
    if (!copy)
        return bundle_nomem(c);
    char why[512] = "";
    int st = odk_value_from_json(copy, out, why, sizeof why);
    free(copy);
    if (st == ODK_E_NOMEM)
        return bundle_nomem(c);
    if (st < 0) /* why is "$.key.path: problem" or "line L column C: problem" */
        return bundle_fail(c, NULL, "%s", strncmp(why, "$.", 2) == 0 ? why + 2 : why);
    return ODK_OK;
}

int bundle_parse_json_text(const char *text, size_t len, const struct ctx *c, bundle **out)
{
    odk_value *m;
    int st = bundle_json_value(c, text, len, &m);
    if (st < 0)
        return st;
    st = bundle_from_manifest(c, m, &bundle_json_keys, out);
    odk_value_free(m);
    return st;
}

/* The public parsers give a complete bundle: entitlements never NULL. */
int bundle_finish_parse(int st, bundle **out, const struct ctx *c)
{
    if (st == ODK_OK && !(*out)->entitlements && !((*out)->entitlements = odk_value_new_dict())) {
        bundle_free(*out);
        *out = NULL;
        return bundle_nomem(c);
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
        return bundle_fail(&c, NULL, "no text");
    if (len > BUNDLE_MANIFEST_MAX)
        return bundle_fail(&c, NULL, "larger than the %u byte limit", BUNDLE_MANIFEST_MAX);
    return bundle_finish_parse(bundle_parse_json_text(json_text, len, &c, out), out, &c);
}

