/* SPDX-License-Identifier: MIT */
/* descriptor_format.c — report descriptors printed item by item, the way
 * hid-decode and the USB-IF's HID Descriptor Tool show them, and as JSON
 * (odk/hid_descriptor.h).
 *
 * The printer reads the raw items itself, keeping just enough state to
 * name usages (the Usage Page, through Push and Pop) and to indent by
 * collection, so it prints a malformed descriptor up to where it breaks;
 * the parser then says why. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "families/hid/descriptor_internal.h"
#include "odk/status.h"

/* ---- a growing string ----------------------------------------------------- */

struct out {
    char *s;
    size_t n, cap;
    bool failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(o->s ? o->s + o->n : NULL, o->s ? o->cap - o->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            o->failed = true;
            return;
        }
        if (o->s && o->n + (size_t)k < o->cap) {
            o->n += (size_t)k;
            return;
        }
        size_t cap = o->cap ? o->cap : 1024;
        while (cap <= o->n + (size_t)k)
            cap *= 2;
        char *s = realloc(o->s, cap);
        if (!s) {
            o->failed = true;
            return;
        }
        o->s = s;
        o->cap = cap;
    }
}

/* A JSON string (names here are ASCII; control characters escaped anyway). */
static void put_json_string(struct out *o, const char *s)
{
    put(o, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(o, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            put(o, "\\u%04x", c);
        else
            put(o, "%c", c);
    }
    put(o, "\"");
}

static int finish(struct out *o, char **result)
{
    put(o, "%s", "");
    if (o->failed) {
        free(o->s);
        return ODK_E_NOMEM;
    }
    *result = o->s;
    return ODK_OK;
}

/* ---- naming items --------------------------------------------------------- */

static const char *const global_tags[16] = {
    "Usage Page",
    "Logical Minimum",
    "Logical Maximum",
    "Physical Minimum",
    "Physical Maximum",
    "Unit Exponent",
    "Unit",
    "Report Size",
    "Report ID",
    "Report Count",
    "Push",
    "Pop",
};
static const char *const local_tags[16] = {
    "Usage",
    "Usage Minimum",
    "Usage Maximum",
    "Designator Index",
    "Designator Minimum",
    "Designator Maximum",
    NULL,
    "String Index",
    "String Minimum",
    "String Maximum",
    "Delimiter",
};
static const char *const main_tags[16] = {
    [0x8] = "Input",   [0x9] = "Output",         [0xa] = "Collection",
    [0xb] = "Feature", [0xc] = "End Collection",
};

static const char *collection_type_name(uint32_t t)
{
    static const char *const names[] = {"Physical",    "Application",  "Logical",       "Report",
                                        "Named Array", "Usage Switch", "Usage Modifier"};
    if (t < sizeof names / sizeof names[0])
        return names[t];
    return t >= 0x80 && t <= 0xff ? "Vendor Defined" : "Reserved";
}

/* "Data,Var,Abs" and the non-default bits after. */
static void flags_text(uint32_t f, bool input, char *buf, size_t len)
{
    snprintf(buf, len, "%s,%s,%s%s%s%s%s%s%s", f & ODK_HID_CONSTANT ? "Cnst" : "Data",
             f & ODK_HID_VARIABLE ? "Var" : "Arr", f & ODK_HID_RELATIVE ? "Rel" : "Abs",
             f & ODK_HID_WRAP ? ",Wrap" : "", f & ODK_HID_NONLINEAR ? ",NonLin" : "",
             f & ODK_HID_NO_PREFERRED ? ",NoPref" : "", f & ODK_HID_NULL_STATE ? ",Null" : "",
             !input && (f & ODK_HID_VOLATILE) ? ",Vol" : "",
             f & ODK_HID_BUFFERED_BYTES ? ",Buff" : "");
}

/* The unit as "SI Linear: cm s^-2" (HID 1.11 6.2.2.7). */
static void unit_text(uint32_t unit, char *buf, size_t len)
{
    static const char *const systems[] = {"None", "SI Linear", "SI Rotation", "English Linear",
                                          "English Rotation"};
    static const char *const bases[4][6] = {
        {"cm", "g", "s", "K", "A", "cd"},
        {"rad", "g", "s", "K", "A", "cd"},
        {"in", "slug", "s", "F", "A", "cd"},
        {"deg", "slug", "s", "F", "A", "cd"},
    };
    uint32_t system = unit & 0xf;
    if (unit == 0) {
        snprintf(buf, len, "None");
        return;
    }
    if (system == 0 || system > 4) {
        snprintf(buf, len, "0x%" PRIx32, unit);
        return;
    }
    size_t n = (size_t)snprintf(buf, len, "%s:", systems[system]);
    for (int i = 0; i < 6 && n < len; i++) {
        int e = (int)((unit >> (4 * (i + 1))) & 0xf);
        if (!e)
            continue;
        if (e >= 8)
            e -= 16;
        if (e == 1)
            n += (size_t)snprintf(buf + n, len - n, " %s", bases[system - 1][i]);
        else
            n += (size_t)snprintf(buf + n, len - n, " %s^%d", bases[system - 1][i], e);
    }
}

/* What the printer remembers between items. */
struct fmt_state {
    uint16_t page;
    bool min_negative[2]; /* Logical, Physical Minimum < 0 */
    struct {
        uint16_t page;
        bool min_negative[2];
    } stack[ODK_HID_MAX_PUSH_DEPTH];
    size_t pushed;
    int depth;
};

/* One item's tag name, value and (for usages, pages, collections and
 * data items) text name. */
struct item_text {
    const char *type;
    const char *tag;
    bool has_value;
    int64_t value;
    char name[96];
};

static void usage_text(const struct fmt_state *st, const struct hid_item *it, char *buf, size_t len)
{
    if (it->size == 4)
        odk_hid_usage_name(it->udata, buf, len);
    else if (!st->page)
        snprintf(buf, len, "0x%04" PRIx32, it->udata & 0xffff);
    else
        odk_hid_usage_name(ODK_HID_USAGE(st->page, it->udata & 0xffff), buf, len);
}

static void describe(struct fmt_state *st, const struct hid_item *it, struct item_text *t)
{
    memset(t, 0, sizeof *t);
    if (it->is_long) {
        t->type = "long";
        t->tag = "Long Item";
        t->has_value = true;
        t->value = it->tag;
        snprintf(t->name, sizeof t->name, "tag 0x%02x, %u bytes", it->tag, it->size);
        return;
    }
    switch (it->type) {
    case HID_ITEM_MAIN:
        t->type = "main";
        t->tag = main_tags[it->tag] ? main_tags[it->tag] : "Reserved";
        t->has_value = it->size > 0;
        t->value = it->udata;
        if (it->tag == 0xa)
            snprintf(t->name, sizeof t->name, "%s", collection_type_name(it->udata));
        else if (it->tag == 0x8 || it->tag == 0x9 || it->tag == 0xb)
            flags_text(it->udata, it->tag == 0x8, t->name, sizeof t->name);
        if (it->tag == 0xc && st->depth > 0)
            st->depth--;
        break;
    case HID_ITEM_GLOBAL:
        t->type = "global";
        t->tag = global_tags[it->tag] ? global_tags[it->tag] : "Reserved";
        t->has_value = it->tag != 0xa && it->tag != 0xb;
        t->value = it->sdata;
        switch (it->tag) {
        case 0x0: {
            const char *n = odk_hid_usage_page_name((uint16_t)it->udata);
            t->value = it->udata;
            if (n && it->udata <= 0xffff)
                snprintf(t->name, sizeof t->name, "%s", n);
            else
                snprintf(t->name, sizeof t->name, "0x%04" PRIx32, it->udata);
            st->page = (uint16_t)it->udata;
            break;
        }
        case 0x1:
        case 0x3:
            st->min_negative[it->tag == 0x3] = it->sdata < 0;
            break;
        case 0x2:
        case 0x4:
            t->value = st->min_negative[it->tag == 0x4] ? (int64_t)it->sdata : (int64_t)it->udata;
            break;
        case 0x5:
            t->value =
                it->sdata >= -8 && it->sdata <= 7
                    ? it->sdata
                    : ((it->udata & 8) ? (int)(it->udata & 0xf) - 16 : (int)(it->udata & 0xf));
            break;
        case 0x6:
            t->value = it->udata;
            unit_text(it->udata, t->name, sizeof t->name);
            break;
        case 0x7:
        case 0x8:
        case 0x9:
            t->value = it->udata;
            break;
        case 0xa:
            if (st->pushed < ODK_HID_MAX_PUSH_DEPTH) {
                st->stack[st->pushed].page = st->page;
                memcpy(st->stack[st->pushed].min_negative, st->min_negative,
                       sizeof st->min_negative);
                st->pushed++;
            }
            break;
        case 0xb:
            if (st->pushed) {
                st->pushed--;
                st->page = st->stack[st->pushed].page;
                memcpy(st->min_negative, st->stack[st->pushed].min_negative,
                       sizeof st->min_negative);
            }
            break;
        }
        break;
    case HID_ITEM_LOCAL:
        t->type = "local";
        t->tag = local_tags[it->tag] ? local_tags[it->tag] : "Reserved";
        t->has_value = true;
        t->value = it->udata;
        if (it->tag <= 0x2)
            usage_text(st, it, t->name, sizeof t->name);
        else if (it->tag == 0xa)
            snprintf(t->name, sizeof t->name, "%s",
                     it->udata == 1   ? "Open"
                     : it->udata == 0 ? "Close"
                                      : "Invalid");
        break;
    default:
        t->type = "reserved";
        t->tag = "Reserved";
        t->has_value = it->size > 0;
        t->value = it->udata;
        break;
    }
}

/* ---- text ----------------------------------------------------------------- */

int odk_hid_descriptor_format(const void *bytes, size_t len, char **out)
{
    if (out)
        *out = NULL;
    if (!out || (!bytes && len))
        return ODK_E_INVALID;
    const uint8_t *b = bytes;
    struct out o = {0};
    struct fmt_state st = {0};
    size_t pos = 0;
    struct hid_item it;
    while (hid_item_next(b, len, &pos, &it) > 0) {
        struct item_text t;
        int depth = st.depth;
        describe(&st, &it, &t);
        if (!it.is_long && it.type == HID_ITEM_MAIN && it.tag == 0xc)
            depth = st.depth;
        char hex[64];
        size_t h = 0;
        size_t shown = it.length > 8 ? 8 : it.length;
        for (size_t i = 0; i < shown; i++)
            h += (size_t)snprintf(hex + h, sizeof hex - h, "0x%02x, ", b[it.offset + i]);
        if (shown < it.length)
            snprintf(hex + h, sizeof hex - h, "... ");
        put(&o, "%-32s// %*s%s", hex, 2 * depth, "", t.tag);
        if (t.name[0])
            put(&o, " (%s)", t.name);
        else if (t.has_value)
            put(&o, " (%" PRId64 ")", t.value);
        put(&o, "\n");
        if (!it.is_long && it.type == HID_ITEM_MAIN && it.tag == 0xa)
            st.depth++;
    }
    odk_hid_descriptor *d = NULL;
    odk_hid_parse_error err;
    int r = odk_hid_descriptor_parse(bytes, len, &d, &err);
    if (r == ODK_E_PROTOCOL) {
        put(&o, "error at byte %zu: %s (%s)\n", err.offset, err.message,
            odk_hid_fault_name(err.fault));
    } else if (r == ODK_OK) {
        for (size_t i = 0; i < d->n_reports; i++) {
            const odk_hid_report_info *ri = &d->reports[i];
            put(&o, "// report %u:", ri->id);
            if (ri->input_bytes)
                put(&o, " input %" PRIu32 " bytes", ri->input_bytes);
            if (ri->output_bytes)
                put(&o, " output %" PRIu32 " bytes", ri->output_bytes);
            if (ri->feature_bytes)
                put(&o, " feature %" PRIu32 " bytes", ri->feature_bytes);
            put(&o, "\n");
        }
        odk_hid_descriptor_free(d);
    } else {
        o.failed = true;
    }
    return finish(&o, out);
}

/* ---- JSON ----------------------------------------------------------------- */

static void put_usage_json(struct out *o, uint32_t u)
{
    char name[96];
    odk_hid_usage_name(u, name, sizeof name);
    put(o, "{\"page\": %u, \"id\": %u, \"name\": ", ODK_HID_USAGE_PAGE(u), ODK_HID_USAGE_ID(u));
    put_json_string(o, name);
    put(o, "}");
}

static void put_parsed_json(struct out *o, const odk_hid_descriptor *d)
{
    static const char *const types[] = {"input", "output", "feature"};
    put(o, ", \"report_ids\": %s, \"long_items\": %zu, \"primary_usage\": ",
        d->uses_ids ? "true" : "false", d->long_items);
    put_usage_json(o, odk_hid_descriptor_primary_usage(d));
    put(o, ",\n \"collections\": [");
    for (size_t i = 0; i < d->n_collections; i++) {
        const odk_hid_collection *c = &d->collections[i];
        put(o, "%s\n  {\"type\": ", i ? "," : "");
        put_json_string(o, collection_type_name(c->type));
        put(o, ", \"usage\": ");
        put_usage_json(o, c->usage);
        put(o, ", \"parent\": %" PRId32 ", \"depth\": %" PRIu32 ", \"offset\": %zu}", c->parent,
            c->depth, c->item_offset);
    }
    put(o, "],\n \"elements\": [");
    for (size_t i = 0; i < d->n_elements; i++) {
        const odk_hid_element *el = &d->elements[i];
        char flags[64], unit[96];
        flags_text(el->flags, el->type == ODK_HID_REPORT_INPUT, flags, sizeof flags);
        unit_text(el->unit, unit, sizeof unit);
        put(o,
            "%s\n  {\"type\": \"%s\", \"report_id\": %u, \"bit_offset\": %" PRIu32
            ", \"size\": %" PRIu32 ", \"count\": %" PRIu32 ", \"flags\": \"%s\", \"usages\": [",
            i ? "," : "", types[el->type], el->report_id, el->bit_offset, el->size, el->count,
            flags);
        for (uint32_t k = 0; k < el->n_usages; k++) {
            put(o, "%s{\"min\": ", k ? ", " : "");
            put_usage_json(o, el->usages[k].min);
            put(o, ", \"max\": ");
            put_usage_json(o, el->usages[k].max);
            put(o, "}");
        }
        put(o,
            "], \"logical\": [%" PRId64 ", %" PRId64 "], \"physical\": [%" PRId64 ", %" PRId64
            "], \"unit\": %" PRIu32 ", \"unit_name\": ",
            el->logical_min, el->logical_max, el->physical_min, el->physical_max, el->unit);
        put_json_string(o, unit);
        put(o, ", \"unit_exponent\": %d, \"collection\": %" PRId32 ", \"offset\": %zu}",
            el->unit_exponent, el->collection, el->item_offset);
    }
    put(o, "],\n \"reports\": [");
    for (size_t i = 0; i < d->n_reports; i++) {
        const odk_hid_report_info *ri = &d->reports[i];
        put(o,
            "%s\n  {\"id\": %u, \"input_bytes\": %" PRIu32 ", \"output_bytes\": %" PRIu32
            ", \"feature_bytes\": %" PRIu32 "}",
            i ? "," : "", ri->id, ri->input_bytes, ri->output_bytes, ri->feature_bytes);
    }
    put(o, "]");
}

int odk_hid_descriptor_format_json(const void *bytes, size_t len, char **out)
{
    if (out)
        *out = NULL;
    if (!out || (!bytes && len))
        return ODK_E_INVALID;
    const uint8_t *b = bytes;
    struct out o = {0};
    struct fmt_state st = {0};
    size_t pos = 0;
    struct hid_item it;
    put(&o, "{\"items\": [");
    for (bool first = true; hid_item_next(b, len, &pos, &it) > 0; first = false) {
        struct item_text t;
        int depth = st.depth;
        describe(&st, &it, &t);
        if (!it.is_long && it.type == HID_ITEM_MAIN && it.tag == 0xc)
            depth = st.depth;
        put(&o, "%s\n  {\"offset\": %zu, \"bytes\": \"", first ? "" : ",", it.offset);
        for (size_t i = 0; i < it.length; i++)
            put(&o, "%s%02x", i ? " " : "", b[it.offset + i]);
        put(&o, "\", \"type\": \"%s\", \"tag\": ", t.type);
        put_json_string(&o, t.tag);
        if (t.has_value)
            put(&o, ", \"value\": %" PRId64, t.value);
        if (t.name[0]) {
            put(&o, ", \"name\": ");
            put_json_string(&o, t.name);
        }
        put(&o, ", \"depth\": %d}", depth);
        if (!it.is_long && it.type == HID_ITEM_MAIN && it.tag == 0xa)
            st.depth++;
    }
    put(&o, "],\n \"error\": ");
    odk_hid_descriptor *d = NULL;
    odk_hid_parse_error err;
    int r = odk_hid_descriptor_parse(bytes, len, &d, &err);
    if (r == ODK_E_PROTOCOL) {
        put(&o, "{\"offset\": %zu, \"fault\": ", err.offset);
        put_json_string(&o, odk_hid_fault_name(err.fault));
        put(&o, ", \"message\": ");
        put_json_string(&o, err.message);
        put(&o, "}");
    } else if (r == ODK_OK) {
        put(&o, "null");
        put_parsed_json(&o, d);
        odk_hid_descriptor_free(d);
    } else {
        o.failed = true;
    }
    put(&o, "}\n");
    return finish(&o, out);
}
