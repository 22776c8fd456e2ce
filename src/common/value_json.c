/* SPDX-License-Identifier: MIT */
/* value_json.c — odk_value to and from JSON text, through jansson.
 *
 * JSON has no bytes type, so data travels as an object with the single key
 * "$data" holding lowercase hex.  JSON null and reals have no odk type and
 * are rejected with the path of the offending value, e.g.
 * "$.personalities.Echo.IOProbeScore: real numbers are not supported".
 */
#include "odk/value.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/status.h"

#define DATA_KEY "$data"

/* One step of the path from the root to the value being converted; the
 * chain lives on the C stack and is only rendered when there is an error. */
struct path {
    const struct path *up;
    const char *key; /* NULL for an array element */
    size_t index;
};

struct conv {
    char *err;
    size_t err_len;
};

static size_t path_render(const struct path *p, char *buf, size_t len)
{
    size_t n = p->up ? path_render(p->up, buf, len) : 0;
    char *at = n < len ? buf + n : NULL;
    size_t room = n < len ? len - n : 0;
    int w;
    if (!p->up)
        w = snprintf(at, room, "$");
    else if (p->key)
        w = snprintf(at, room, ".%s", p->key);
    else
        w = snprintf(at, room, "[%zu]", p->index);
    return n + (w > 0 ? (size_t)w : 0);
}

static int fail(struct conv *c, const struct path *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct conv *c, const struct path *p, const char *fmt, ...)
{
    if (!c->err || !c->err_len)
        return ODK_E_INVALID;
    size_t n = path_render(p, c->err, c->err_len);
    if (n + 2 < c->err_len) {
        memcpy(c->err + n, ": ", 2);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n + 2, c->err_len - n - 2, fmt, ap);
        va_end(ap);
    }
    return ODK_E_INVALID;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static int from_hex(struct conv *c, const struct path *p, json_t *j, odk_value **out)
{
    if (!json_is_string(j))
        return fail(c, p, "\"" DATA_KEY "\" must be a hex string");
    const char *s = json_string_value(j);
    size_t len = json_string_length(j);
    if (len % 2)
        return fail(c, p, "\"" DATA_KEY "\" has an odd number of hex digits");
    unsigned char *bytes = malloc(len / 2 + 1);
    if (!bytes)
        return ODK_E_NOMEM;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(bytes);
            return fail(c, p, "\"" DATA_KEY "\" holds a character that is not a hex digit");
        }
        bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    *out = odk_value_new_data(bytes, len / 2);
    free(bytes);
    return *out ? ODK_OK : ODK_E_NOMEM;
}

static int from_json(struct conv *c, const struct path *p, int depth, json_t *j, odk_value **out)
{
    int rc;
    *out = NULL;
    switch (json_typeof(j)) {
    case JSON_STRING:
        *out = odk_value_new_stringn(json_string_value(j), json_string_length(j));
        return *out ? ODK_OK : ODK_E_NOMEM;
    case JSON_INTEGER:
        *out = odk_value_new_int((int64_t)json_integer_value(j));
        return *out ? ODK_OK : ODK_E_NOMEM;
    case JSON_TRUE:
    case JSON_FALSE:
        *out = odk_value_new_bool(json_is_true(j));
        return *out ? ODK_OK : ODK_E_NOMEM;
    case JSON_NULL:
        return fail(c, p, "null is not supported");
    case JSON_REAL:
        return fail(c, p, "real numbers are not supported");
    case JSON_ARRAY:
    case JSON_OBJECT:
        break;
    }
    if (json_object_size(j) == 1 && json_object_get(j, DATA_KEY)) {
        struct path sub = {p, DATA_KEY, 0};
        return from_hex(c, &sub, json_object_get(j, DATA_KEY), out);
    }
    /* Same limit as the binary encoding, so anything read here can be sent. */
    if (depth >= ODK_VALUE_MAX_DEPTH)
        return fail(c, p, "nested deeper than %d levels", ODK_VALUE_MAX_DEPTH);

    if (json_is_array(j)) {
        odk_value *a = odk_value_new_array();
        if (!a)
            return ODK_E_NOMEM;
        size_t i;
        json_t *item;
        json_array_foreach(j, i, item)
        {
            struct path sub = {p, NULL, i};
            odk_value *v;
            rc = from_json(c, &sub, depth + 1, item, &v);
            if (rc == ODK_OK)
                rc = odk_array_append(a, v);
            if (rc != ODK_OK) {
                odk_value_free(a);
                return rc;
            }
        }
        *out = a;
        return ODK_OK;
    }

    odk_value *d = odk_value_new_dict();
    if (!d)
        return ODK_E_NOMEM;
    const char *key;
    json_t *item;
    json_object_foreach(j, key, item)
    {
        struct path sub = {p, key, 0};
        odk_value *v;
        rc = from_json(c, &sub, depth + 1, item, &v);
        if (rc == ODK_OK)
            rc = odk_dict_set(d, key, v);
        if (rc != ODK_OK) {
            odk_value_free(d);
            return rc;
        }
    }
    *out = d;
    return ODK_OK;
}

int odk_value_from_json(const char *text, odk_value **out, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!text) {
        if (err && err_len)
            snprintf(err, err_len, "no JSON text");
        return ODK_E_INVALID;
    }
    /* jansson rejects \u0000 in strings and keys by default, which keeps
     * odk strings NUL-free; duplicate keys are rejected rather than letting
     * the last one silently win. */
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (err && err_len)
            snprintf(err, err_len, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return ODK_E_INVALID;
    }
    struct conv c = {err, err_len};
    struct path top = {NULL, NULL, 0};
    int rc = from_json(&c, &top, 0, root, out);
    json_decref(root);
    if (rc == ODK_E_NOMEM && err && err_len)
        snprintf(err, err_len, "%s", odk_strerror(rc));
    return rc;
}

static json_t *to_json(const odk_value *v)
{
    switch (odk_value_type(v)) {
    case ODK_TYPE_STRING:
        /* NULL when the string is not valid UTF-8: JSON cannot carry it. */
        return json_string(odk_value_string(v));
    case ODK_TYPE_INT:
        return json_integer((json_int_t)odk_value_int(v));
    case ODK_TYPE_BOOL:
        return json_boolean(odk_value_bool(v));
    case ODK_TYPE_DATA: {
        static const char digits[] = "0123456789abcdef";
        size_t len;
        const unsigned char *b = odk_value_data(v, &len);
        if (len > (SIZE_MAX - 1) / 2)
            return NULL;
        char *hex = malloc(2 * len + 1);
        if (!hex)
            return NULL;
        for (size_t i = 0; i < len; i++) {
            hex[2 * i] = digits[b[i] >> 4];
            hex[2 * i + 1] = digits[b[i] & 15];
        }
        hex[2 * len] = '\0';
        json_t *o = json_object();
        if (o && json_object_set_new(o, DATA_KEY, json_stringn(hex, 2 * len)) != 0) {
            json_decref(o);
            o = NULL;
        }
        free(hex);
        return o;
    }
    case ODK_TYPE_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < odk_array_count(v); i++) {
            json_t *item = to_json(odk_array_get(v, i));
            if (!item || json_array_append_new(a, item) != 0) {
                json_decref(a);
                a = NULL;
            }
        }
        return a;
    }
    case ODK_TYPE_DICT: {
        json_t *o = json_object();
        for (size_t i = 0; o && i < odk_dict_count(v); i++) {
            json_t *item = to_json(odk_dict_value_at(v, i));
            if (!item || json_object_set_new(o, odk_dict_key_at(v, i), item) != 0) {
                json_decref(o);
                o = NULL;
            }
        }
        return o;
    }
    }
    return NULL;
}

char *odk_value_to_json(const odk_value *v, int flags)
{
    json_t *j = to_json(v);
    if (!j)
        return NULL;
    size_t fmt = JSON_ENCODE_ANY | JSON_PRESERVE_ORDER;
    fmt |= (flags & ODK_JSON_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT;
    char *s = json_dumps(j, fmt);
    json_decref(j);
    return s;
}
