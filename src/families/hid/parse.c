/* SPDX-License-Identifier: MIT */
/* parse.c — HID report descriptors into elements (odk/hid_descriptor.h).
 *
 * Follows HID 1.11 6.2.2: a stream of short items (main, global, local)
 * and long items.  Global items persist (Push/Pop save and restore them),
 * local items apply to the next main item only.  Each Input, Output and
 * Feature item becomes one element laid out after the previous one of its
 * report id and type.
 *
 * Two things real descriptors rely on that the spec leaves open, settled
 * the way the Linux HID core settles them: a Logical (Physical) Maximum is
 * read unsigned unless its Minimum is negative, so 0x26 0xff 0x00 after a
 * Minimum of 0 is 255; and a Usage of 1 or 2 bytes takes the Usage Page in
 * force when it appears, or, when none has been given yet, the one in
 * force at the main item. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "families/hid/descriptor_internal.h"
#include "odk/status.h"

int hid_item_next(const uint8_t *b, size_t len, size_t *pos, struct hid_item *it)
{
    size_t p = *pos;
    if (p >= len)
        return 0;
    memset(it, 0, sizeof *it);
    it->offset = p;
    uint8_t prefix = b[p];
    if (prefix == 0xfe) { /* long item: prefix, bDataSize, bLongItemTag, data */
        if (len - p < 3)
            return -1;
        it->is_long = true;
        it->type = HID_ITEM_RESERVED;
        it->size = b[p + 1];
        it->tag = b[p + 2];
        if (len - p - 3 < it->size)
            return -1;
        it->length = 3u + it->size;
        *pos = p + it->length;
        return 1;
    }
    static const uint8_t sizes[4] = {0, 1, 2, 4};
    it->size = sizes[prefix & 3];
    it->type = (prefix >> 2) & 3;
    it->tag = prefix >> 4;
    if (len - p - 1 < it->size)
        return -1;
    const uint8_t *d = b + p + 1;
    switch (it->size) {
    case 1:
        it->udata = d[0];
        it->sdata = (int8_t)d[0];
        break;
    case 2:
        it->udata = (uint32_t)d[0] | (uint32_t)d[1] << 8;
        it->sdata = (int16_t)it->udata;
        break;
    case 4:
        it->udata =
            (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
        it->sdata = (int32_t)it->udata;
        break;
    }
    it->length = 1u + it->size;
    *pos = p + it->length;
    return 1;
}

/* ---- parser state --------------------------------------------------------- */

/* A signed-or-unsigned number as an item gave it; read at the main item,
 * once the Minimum's sign is known. */
struct raw {
    uint32_t u;
    int32_t s;
    bool given;
};

struct globals {
    uint16_t usage_page;
    bool page_given;
    struct raw logical_min, logical_max, physical_min, physical_max;
    int8_t unit_exponent;
    uint32_t unit;
    uint32_t report_size;
    uint32_t report_id; /* 0: none */
    uint32_t report_count;
};

/* A usage as a Usage (Minimum/Maximum) item gave it: extended when it had
 * 4 bytes or a page was in force, else resolved at the main item. */
struct pending_usage {
    uint32_t value;
    bool resolved;
};

struct pending_span {
    struct pending_usage min, max;
};

struct locals {
    struct pending_span *spans;
    size_t n_spans;
    struct pending_usage range_min, range_max;
    bool have_min, have_max;
    size_t min_offset, max_offset;
    uint32_t designator_min, designator_max, string_min, string_max;
    bool designator_given, string_given;
    int delimiter;         /* 0 outside, 1 inside an open set */
    bool delimiter_taken;  /* the set's first usage was kept */
    size_t delimiter_open; /* offset of the open Delimiter */
};

struct parser {
    const uint8_t *b;
    size_t len;
    odk_hid_parse_error *error;
    struct globals g;
    struct globals stack[ODK_HID_MAX_PUSH_DEPTH];
    size_t depth_pushed;
    struct locals l;
    int32_t open[ODK_HID_MAX_COLLECTION_DEPTH]; /* collection indexes */
    size_t depth;
    bool no_id_fields;  /* a main item came before any Report ID */
    size_t first_no_id; /* its offset */
    /* bits used so far per [type][report id], report id byte included */
    uint32_t bits[3][256];
    bool present[3][256];
    odk_hid_descriptor *d;
    size_t cap_elements, cap_collections, cap_usages, cap_spans;
};

static int fault(struct parser *p, odk_hid_fault f, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fault(struct parser *p, odk_hid_fault f, size_t offset, const char *fmt, ...)
{
    if (p->error) {
        p->error->fault = f;
        p->error->offset = offset;
        int n = snprintf(p->error->message, sizeof p->error->message, "byte %zu: ", offset);
        if (n < 0 || (size_t)n >= sizeof p->error->message)
            n = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->error->message + n, sizeof p->error->message - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return ODK_E_PROTOCOL;
}

static const char *const main_names[16] = {
    [0x8] = "Input",   [0x9] = "Output",         [0xa] = "Collection",
    [0xb] = "Feature", [0xc] = "End Collection",
};

static int grow(void **array, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return ODK_OK;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *a = realloc(*array, n * size);
    if (!a)
        return ODK_E_NOMEM;
    *array = a;
    *cap = n;
    return ODK_OK;
}

static void locals_reset(struct locals *l)
{
    struct pending_span *spans = l->spans;
    memset(l, 0, sizeof *l);
    l->spans = spans;
}

static int64_t raw_min(struct raw r)
{
    return r.s;
}

/* A Maximum is unsigned unless its Minimum is negative. */
static int64_t raw_max(struct raw r, int64_t min)
{
    return min < 0 ? (int64_t)r.s : (int64_t)r.u;
}

static int add_span(struct parser *p, const struct hid_item *it, struct pending_usage min,
                    struct pending_usage max)
{
    struct locals *l = &p->l;
    if (l->delimiter) {
        /* Of a delimited set of alternative usages, the first is the
         * preferred one (HID 1.11 6.2.2.8); the others are left out. */
        if (l->delimiter_taken)
            return ODK_OK;
        l->delimiter_taken = true;
    }
    if (l->n_spans >= ODK_HID_MAX_USAGES)
        return fault(p, ODK_HID_FAULT_TOO_MANY_USAGES, it->offset,
                     "more than %u usages before one main item", ODK_HID_MAX_USAGES);
    int r = grow((void **)&l->spans, &p->cap_spans, l->n_spans + 1, sizeof *l->spans);
    if (r)
        return r;
    l->spans[l->n_spans++] = (struct pending_span){min, max};
    return ODK_OK;
}

static struct pending_usage local_usage(const struct parser *p, const struct hid_item *it)
{
    if (it->size == 4)
        return (struct pending_usage){it->udata, true};
    if (p->g.page_given)
        return (struct pending_usage){ODK_HID_USAGE(p->g.usage_page, it->udata & 0xffff), true};
    return (struct pending_usage){it->udata & 0xffff, false};
}

static int resolve(struct parser *p, struct pending_usage *u, size_t offset, const char *item)
{
    if (u->resolved)
        return ODK_OK;
    if (!p->g.page_given)
        return fault(p, ODK_HID_FAULT_NO_USAGE_PAGE, offset,
                     "%s item with usage 0x%04" PRIx32 " and no Usage Page before it", item,
                     u->value);
    u->value = ODK_HID_USAGE(p->g.usage_page, u->value);
    u->resolved = true;
    return ODK_OK;
}

/* ---- items ---------------------------------------------------------------- */

static int global_item(struct parser *p, const struct hid_item *it)
{
    struct globals *g = &p->g;
    struct raw r = {it->udata, it->sdata, true};
    switch (it->tag) {
    case 0x0:
        if (it->udata > 0xffff)
            return fault(p, ODK_HID_FAULT_BAD_ITEM_SIZE, it->offset,
                         "Usage Page 0x%" PRIx32 " is more than 16 bits", it->udata);
        g->usage_page = (uint16_t)it->udata;
        g->page_given = true;
        return ODK_OK;
    case 0x1:
        g->logical_min = r;
        return ODK_OK;
    case 0x2:
        g->logical_max = r;
        return ODK_OK;
    case 0x3:
        g->physical_min = r;
        return ODK_OK;
    case 0x4:
        g->physical_max = r;
        return ODK_OK;
    case 0x5:
        /* A 4-bit signed nibble in the spec; many devices write a signed
         * byte (0xfe for -2) instead.  Both read the same. */
        if (it->sdata >= -8 && it->sdata <= 7)
            g->unit_exponent = (int8_t)it->sdata;
        else
            g->unit_exponent =
                (int8_t)((it->udata & 0x8) ? (int)(it->udata & 0xf) - 16 : (int)(it->udata & 0xf));
        return ODK_OK;
    case 0x6:
        g->unit = it->udata;
        return ODK_OK;
    case 0x7:
        g->report_size = it->udata;
        return ODK_OK;
    case 0x8:
        if (it->size == 0 || it->udata == 0)
            return fault(p, ODK_HID_FAULT_REPORT_ID_ZERO, it->offset, "Report ID 0 is reserved");
        if (it->udata > 255)
            return fault(p, ODK_HID_FAULT_REPORT_ID_TOO_BIG, it->offset,
                         "Report ID %" PRIu32 " is above 255", it->udata);
        if (p->no_id_fields)
            return fault(p, ODK_HID_FAULT_REPORT_ID_MIXED, it->offset,
                         "Report ID %" PRIu32 " after a main item with no report id (byte %zu)",
                         it->udata, p->first_no_id);
        g->report_id = it->udata;
        p->d->uses_ids = true;
        return ODK_OK;
    case 0x9:
        g->report_count = it->udata;
        return ODK_OK;
    case 0xa:
        if (it->size)
            return fault(p, ODK_HID_FAULT_BAD_ITEM_SIZE, it->offset, "Push with %u data bytes",
                         it->size);
        if (p->depth_pushed >= ODK_HID_MAX_PUSH_DEPTH)
            return fault(p, ODK_HID_FAULT_PUSH_TOO_DEEP, it->offset,
                         "Push past the limit of %u saved states", ODK_HID_MAX_PUSH_DEPTH);
        p->stack[p->depth_pushed++] = *g;
        return ODK_OK;
    case 0xb:
        if (it->size)
            return fault(p, ODK_HID_FAULT_BAD_ITEM_SIZE, it->offset, "Pop with %u data bytes",
                         it->size);
        if (!p->depth_pushed)
            return fault(p, ODK_HID_FAULT_POP_WITHOUT_PUSH, it->offset, "Pop without a Push");
        *g = p->stack[--p->depth_pushed];
        return ODK_OK;
    default:
        return fault(p, ODK_HID_FAULT_RESERVED_ITEM, it->offset, "reserved global item tag 0x%x",
                     it->tag);
    }
}

static int local_item(struct parser *p, const struct hid_item *it)
{
    struct locals *l = &p->l;
    switch (it->tag) {
    case 0x0: {
        struct pending_usage u = local_usage(p, it);
        return add_span(p, it, u, u);
    }
    case 0x1:
    case 0x2: {
        bool is_min = it->tag == 0x1;
        if (is_min) {
            l->range_min = local_usage(p, it);
            l->have_min = true;
            l->min_offset = it->offset;
        } else {
            l->range_max = local_usage(p, it);
            l->have_max = true;
            l->max_offset = it->offset;
        }
        if (!(l->have_min && l->have_max))
            return ODK_OK;
        l->have_min = l->have_max = false;
        /* Both ends resolved: check here, at the item; otherwise at the
         * main item, once the page is known. */
        struct pending_usage a = l->range_min, b = l->range_max;
        if (a.resolved && b.resolved &&
            (ODK_HID_USAGE_PAGE(a.value) != ODK_HID_USAGE_PAGE(b.value) || a.value > b.value))
            return fault(p, ODK_HID_FAULT_USAGE_RANGE, it->offset,
                         "Usage Minimum 0x%08" PRIx32 " and Maximum 0x%08" PRIx32
                         " are not a range",
                         a.value, b.value);
        return add_span(p, it, a, b);
    }
    case 0x3:
    case 0x4:
    case 0x5:
        if (it->tag != 0x5)
            l->designator_min = it->udata;
        if (it->tag != 0x4)
            l->designator_max = it->udata;
        l->designator_given = true;
        return ODK_OK;
    case 0x7:
    case 0x8:
    case 0x9:
        if (it->tag != 0x9)
            l->string_min = it->udata;
        if (it->tag != 0x8)
            l->string_max = it->udata;
        l->string_given = true;
        return ODK_OK;
    case 0xa:
        if (it->udata == 1) {
            if (l->delimiter)
                return fault(p, ODK_HID_FAULT_DELIMITER, it->offset,
                             "Delimiter opened inside another (opened at byte %zu)",
                             l->delimiter_open);
            l->delimiter = 1;
            l->delimiter_taken = false;
            l->delimiter_open = it->offset;
            return ODK_OK;
        }
        if (it->udata == 0) {
            if (!l->delimiter)
                return fault(p, ODK_HID_FAULT_DELIMITER, it->offset,
                             "Delimiter closed with none open");
            l->delimiter = 0;
            return ODK_OK;
        }
        return fault(p, ODK_HID_FAULT_DELIMITER, it->offset,
                     "Delimiter %" PRIu32 " (1 opens a set, 0 closes it)", it->udata);
    default:
        return fault(p, ODK_HID_FAULT_RESERVED_ITEM, it->offset, "reserved local item tag 0x%x",
                     it->tag);
    }
}

/* The local usages, resolved against the page in force at main item it,
 * appended to the descriptor's usage array; *first gets their index. */
static int take_usages(struct parser *p, const struct hid_item *it, size_t *first, size_t *n)
{
    struct locals *l = &p->l;
    const char *name = main_names[it->tag];
    if (l->delimiter)
        return fault(p, ODK_HID_FAULT_DELIMITER, l->delimiter_open,
                     "Delimiter opened here is still open at the %s item at byte %zu", name,
                     it->offset);
    if (l->have_min != l->have_max)
        return fault(
            p, ODK_HID_FAULT_USAGE_RANGE_UNPAIRED, l->have_min ? l->min_offset : l->max_offset,
            "Usage %s without a Usage %s before the %s item", l->have_min ? "Minimum" : "Maximum",
            l->have_min ? "Maximum" : "Minimum", name);
    odk_hid_descriptor *d = p->d;
    int r = grow((void **)&d->usages, &p->cap_usages, d->n_usages + l->n_spans, sizeof *d->usages);
    if (r)
        return r;
    *first = d->n_usages;
    *n = l->n_spans;
    for (size_t i = 0; i < l->n_spans; i++) {
        struct pending_span *s = &l->spans[i];
        if ((r = resolve(p, &s->min, it->offset, name)) ||
            (r = resolve(p, &s->max, it->offset, name)))
            return r;
        if (ODK_HID_USAGE_PAGE(s->min.value) != ODK_HID_USAGE_PAGE(s->max.value) ||
            s->min.value > s->max.value)
            return fault(p, ODK_HID_FAULT_USAGE_RANGE, it->offset,
                         "Usage Minimum 0x%08" PRIx32 " and Maximum 0x%08" PRIx32
                         " are not a range",
                         s->min.value, s->max.value);
        d->usages[d->n_usages++] = (odk_hid_usage_span){s->min.value, s->max.value};
    }
    return ODK_OK;
}

static int collection_item(struct parser *p, const struct hid_item *it)
{
    odk_hid_descriptor *d = p->d;
    uint32_t type = it->udata;
    if (type >= 0x07 && type <= 0x7f)
        return fault(p, ODK_HID_FAULT_BAD_COLLECTION_TYPE, it->offset,
                     "reserved collection type 0x%02" PRIx32, type);
    if (type > 0xff)
        return fault(p, ODK_HID_FAULT_BAD_ITEM_SIZE, it->offset,
                     "collection type 0x%" PRIx32 " is more than a byte", type);
    if (p->depth >= ODK_HID_MAX_COLLECTION_DEPTH)
        return fault(p, ODK_HID_FAULT_COLLECTION_TOO_DEEP, it->offset,
                     "collections nested deeper than %u", ODK_HID_MAX_COLLECTION_DEPTH);
    size_t first, n;
    int r = take_usages(p, it, &first, &n);
    if (r)
        return r;
    /* The collection's usage is the first local usage; the rest are not
         the collection's (a usage list is unusual there). */
    uint32_t usage = n ? d->usages[first].min : 0;
    d->n_usages = first;
    if ((r = grow((void **)&d->collections, &p->cap_collections, d->n_collections + 1,
                  sizeof *d->collections)))
        return r;
    int32_t index = (int32_t)d->n_collections++;
    d->collections[index] = (odk_hid_collection){
        .type = (odk_hid_collection_type)type,
        .usage = usage,
        .parent = p->depth ? p->open[p->depth - 1] : -1,
        .depth = (uint32_t)p->depth,
        .item_offset = it->offset,
    };
    p->open[p->depth++] = index;
    return ODK_OK;
}

static int data_item(struct parser *p, const struct hid_item *it, odk_hid_report_type type)
{
    odk_hid_descriptor *d = p->d;
    struct globals *g = &p->g;
    const char *name = main_names[it->tag];
    uint32_t flags = it->udata & 0x1ff;
    if (g->report_size == 0)
        return fault(p, ODK_HID_FAULT_REPORT_SIZE_ZERO, it->offset, "Report Size 0 on an %s item",
                     name);
    if (g->report_size > ODK_HID_MAX_REPORT_SIZE)
        return fault(p, ODK_HID_FAULT_REPORT_SIZE_TOO_BIG, it->offset,
                     "Report Size %" PRIu32 " on an %s item is past the limit of %u bits",
                     g->report_size, name, ODK_HID_MAX_REPORT_SIZE);
    if (g->report_count == 0)
        return fault(p, ODK_HID_FAULT_REPORT_COUNT_ZERO, it->offset, "Report Count 0 on an %s item",
                     name);
    if (g->report_count > ODK_HID_MAX_REPORT_COUNT)
        return fault(p, ODK_HID_FAULT_REPORT_COUNT_TOO_BIG, it->offset,
                     "Report Count %" PRIu32 " on an %s item is past the limit of %u",
                     g->report_count, name, ODK_HID_MAX_REPORT_COUNT);
    int64_t lmin = raw_min(g->logical_min), lmax = raw_max(g->logical_max, lmin);
    if (lmin > lmax)
        return fault(p, ODK_HID_FAULT_LOGICAL_RANGE, it->offset,
                     "Logical Minimum %" PRId64 " is above Logical Maximum %" PRId64
                     " at the %s item",
                     lmin, lmax, name);
    int64_t pmin = raw_min(g->physical_min), pmax = raw_max(g->physical_max, pmin);
    if (pmin == 0 && pmax == 0) {
        pmin = lmin;
        pmax = lmax;
    } else if (pmin > pmax) {
        return fault(p, ODK_HID_FAULT_PHYSICAL_RANGE, it->offset,
                     "Physical Minimum %" PRId64 " is above Physical Maximum %" PRId64
                     " at the %s item",
                     pmin, pmax, name);
    }
    if (!(flags & ODK_HID_CONSTANT) && !g->page_given) {
        bool all_extended = p->l.n_spans > 0;
        for (size_t i = 0; i < p->l.n_spans; i++)
            all_extended = all_extended && p->l.spans[i].min.resolved;
        if (!all_extended)
            return fault(p, ODK_HID_FAULT_NO_USAGE_PAGE, it->offset,
                         "%s item with no Usage Page before it", name);
    }
    uint32_t id = g->report_id;
    if (id == 0 && d->uses_ids)
        return fault(p, ODK_HID_FAULT_REPORT_ID_MIXED, it->offset,
                     "%s item with no report id in a descriptor that uses report ids", name);
    if (id == 0 && !p->no_id_fields) {
        p->no_id_fields = true;
        p->first_no_id = it->offset;
    }
    if (d->n_elements >= ODK_HID_MAX_ELEMENTS)
        return fault(p, ODK_HID_FAULT_TOO_MANY_ELEMENTS, it->offset,
                     "more than %u Input, Output and Feature items", ODK_HID_MAX_ELEMENTS);
    uint32_t *bits = &p->bits[type][id];
    if (!p->present[type][id]) {
        p->present[type][id] = true;
        *bits = id ? 8 : 0;
    }
    uint64_t end = (uint64_t)*bits + (uint64_t)g->report_size * g->report_count;
    if (end > (uint64_t)ODK_HID_MAX_REPORT_BYTES * 8)
        return fault(p, ODK_HID_FAULT_REPORT_TOO_BIG, it->offset,
                     "%s report %" PRIu32 " grows to %" PRIu64 " bits, past the limit of %u bytes",
                     name, id, end, ODK_HID_MAX_REPORT_BYTES);
    size_t first, n;
    int r = take_usages(p, it, &first, &n);
    if (r)
        return r;
    if ((r = grow((void **)&d->elements, &p->cap_elements, d->n_elements + 1, sizeof *d->elements)))
        return r;
    odk_hid_element *el = &d->elements[d->n_elements++];
    *el = (odk_hid_element){
        .type = type,
        .report_id = (uint8_t)id,
        .flags = flags,
        .bit_offset = *bits,
        .size = g->report_size,
        .count = g->report_count,
        /* an index for now; made a pointer once the array stops moving */
        .usages = (const odk_hid_usage_span *)(uintptr_t)first,
        .n_usages = (uint32_t)n,
        .usage_page = g->usage_page,
        .logical_min = lmin,
        .logical_max = lmax,
        .physical_min = pmin,
        .physical_max = pmax,
        .unit = g->unit,
        .unit_exponent = g->unit_exponent,
        .designator_min = p->l.designator_min,
        .designator_max = p->l.designator_max,
        .string_min = p->l.string_min,
        .string_max = p->l.string_max,
        .collection = p->depth ? p->open[p->depth - 1] : -1,
        .item_offset = it->offset,
    };
    *bits = (uint32_t)end;
    return ODK_OK;
}

static int main_item(struct parser *p, const struct hid_item *it)
{
    int r;
    switch (it->tag) {
    case 0x8:
        r = data_item(p, it, ODK_HID_REPORT_INPUT);
        break;
    case 0x9:
        r = data_item(p, it, ODK_HID_REPORT_OUTPUT);
        break;
    case 0xb:
        r = data_item(p, it, ODK_HID_REPORT_FEATURE);
        break;
    case 0xa:
        r = collection_item(p, it);
        break;
    case 0xc:
        if (it->size)
            return fault(p, ODK_HID_FAULT_BAD_ITEM_SIZE, it->offset,
                         "End Collection with %u data bytes", it->size);
        if (!p->depth)
            return fault(p, ODK_HID_FAULT_END_WITHOUT_COLLECTION, it->offset,
                         "End Collection with no open Collection");
        if (p->l.delimiter)
            return fault(p, ODK_HID_FAULT_DELIMITER, p->l.delimiter_open,
                         "Delimiter opened here is still open at the End Collection at byte %zu",
                         it->offset);
        p->depth--;
        r = ODK_OK;
        break;
    default:
        return fault(p, ODK_HID_FAULT_RESERVED_ITEM, it->offset, "reserved main item tag 0x%x",
                     it->tag);
    }
    locals_reset(&p->l);
    return r;
}

static int build_reports(struct parser *p)
{
    odk_hid_descriptor *d = p->d;
    size_t n = 0;
    for (unsigned id = 0; id < 256; id++)
        if (p->present[0][id] || p->present[1][id] || p->present[2][id])
            n++;
    d->reports = calloc(n ? n : 1, sizeof *d->reports);
    if (!d->reports)
        return ODK_E_NOMEM;
    for (unsigned id = 0; id < 256; id++) {
        if (!(p->present[0][id] || p->present[1][id] || p->present[2][id]))
            continue;
        odk_hid_report_info *r = &d->reports[d->n_reports++];
        r->id = (uint8_t)id;
        r->input_bytes = p->present[0][id] ? (p->bits[0][id] + 7) / 8 : 0;
        r->output_bytes = p->present[1][id] ? (p->bits[1][id] + 7) / 8 : 0;
        r->feature_bytes = p->present[2][id] ? (p->bits[2][id] + 7) / 8 : 0;
    }
    return ODK_OK;
}

static int parse(struct parser *p)
{
    if (p->len == 0)
        return fault(p, ODK_HID_FAULT_EMPTY, 0, "the descriptor is empty");
    if (p->len > ODK_HID_MAX_DESCRIPTOR_BYTES)
        return fault(p, ODK_HID_FAULT_TOO_LONG, 0, "%zu bytes, past the limit of %u", p->len,
                     ODK_HID_MAX_DESCRIPTOR_BYTES);
    size_t pos = 0;
    struct hid_item it;
    int more, r;
    while ((more = hid_item_next(p->b, p->len, &pos, &it)) > 0) {
        if (it.is_long) {
            p->d->long_items++;
            continue;
        }
        switch (it.type) {
        case HID_ITEM_MAIN:
            r = main_item(p, &it);
            break;
        case HID_ITEM_GLOBAL:
            r = global_item(p, &it);
            break;
        case HID_ITEM_LOCAL:
            r = local_item(p, &it);
            break;
        default:
            r = fault(p, ODK_HID_FAULT_RESERVED_ITEM, it.offset,
                      "reserved item type 3 (prefix 0x%02x)", p->b[it.offset]);
        }
        if (r)
            return r;
    }
    if (more < 0)
        return fault(p, ODK_HID_FAULT_TRUNCATED, it.offset,
                     "item 0x%02x needs more bytes than the %zu left", p->b[it.offset],
                     p->len - it.offset - 1);
    if (p->depth)
        return fault(p, ODK_HID_FAULT_UNCLOSED_COLLECTION,
                     p->d->collections[p->open[p->depth - 1]].item_offset,
                     "Collection not closed by the end of the descriptor (%zu open)", p->depth);
    if (p->l.delimiter)
        return fault(p, ODK_HID_FAULT_DELIMITER, p->l.delimiter_open,
                     "Delimiter not closed by the end of the descriptor");
    if (p->d->n_elements == 0 && p->d->n_collections == 0)
        return fault(p, ODK_HID_FAULT_EMPTY, 0, "the descriptor has no main items");
    return build_reports(p);
}

int odk_hid_descriptor_parse(const void *bytes, size_t len, odk_hid_descriptor **out,
                             odk_hid_parse_error *error)
{
    if (out)
        *out = NULL;
    if (error)
        memset(error, 0, sizeof *error);
    if (!out || (!bytes && len))
        return ODK_E_INVALID;
    struct parser *p = calloc(1, sizeof *p);
    odk_hid_descriptor *d = calloc(1, sizeof *d);
    if (!p || !d) {
        free(p);
        free(d);
        return ODK_E_NOMEM;
    }
    p->b = bytes;
    p->len = len;
    p->error = error;
    p->d = d;
    int r = parse(p);
    if (r == ODK_OK && len) {
        d->bytes = malloc(len);
        if (!d->bytes)
            r = ODK_E_NOMEM;
        else
            memcpy(d->bytes, bytes, len);
        d->len = len;
    }
    free(p->l.spans);
    free(p);
    if (r) {
        odk_hid_descriptor_free(d);
        return r;
    }
    for (size_t i = 0; i < d->n_elements; i++)
        d->elements[i].usages =
            d->usages ? d->usages + (uintptr_t)d->elements[i].usages : NULL; /* none at all */
    *out = d;
    return ODK_OK;
}

void odk_hid_descriptor_free(odk_hid_descriptor *desc)
{
    if (!desc)
        return;
    free(desc->bytes);
    free(desc->elements);
    free(desc->collections);
    free(desc->usages);
    free(desc->reports);
    free(desc);
}

/* ---- accessors ------------------------------------------------------------ */

const uint8_t *odk_hid_descriptor_bytes(const odk_hid_descriptor *desc, size_t *len)
{
    if (len)
        *len = desc->len;
    return desc->bytes;
}

size_t odk_hid_descriptor_element_count(const odk_hid_descriptor *desc)
{
    return desc->n_elements;
}

const odk_hid_element *odk_hid_descriptor_element(const odk_hid_descriptor *desc, size_t i)
{
    return i < desc->n_elements ? &desc->elements[i] : NULL;
}

size_t odk_hid_descriptor_collection_count(const odk_hid_descriptor *desc)
{
    return desc->n_collections;
}

const odk_hid_collection *odk_hid_descriptor_collection(const odk_hid_descriptor *desc, size_t i)
{
    return i < desc->n_collections ? &desc->collections[i] : NULL;
}

uint32_t odk_hid_descriptor_primary_usage(const odk_hid_descriptor *desc)
{
    for (size_t i = 0; i < desc->n_collections; i++) {
        const odk_hid_collection *c = &desc->collections[i];
        if (c->depth == 0 && c->type == ODK_HID_COLLECTION_APPLICATION)
            return c->usage;
    }
    return 0;
}

bool odk_hid_descriptor_uses_report_ids(const odk_hid_descriptor *desc)
{
    return desc->uses_ids;
}

size_t odk_hid_descriptor_long_items(const odk_hid_descriptor *desc)
{
    return desc->long_items;
}

size_t odk_hid_descriptor_report_count(const odk_hid_descriptor *desc)
{
    return desc->n_reports;
}

int odk_hid_descriptor_report(const odk_hid_descriptor *desc, size_t i, odk_hid_report_info *info)
{
    if (i >= desc->n_reports)
        return ODK_E_NOT_FOUND;
    *info = desc->reports[i];
    return ODK_OK;
}

static uint32_t report_bytes(const odk_hid_report_info *r, odk_hid_report_type type)
{
    switch (type) {
    case ODK_HID_REPORT_INPUT:
        return r->input_bytes;
    case ODK_HID_REPORT_OUTPUT:
        return r->output_bytes;
    case ODK_HID_REPORT_FEATURE:
        return r->feature_bytes;
    }
    return 0;
}

size_t odk_hid_descriptor_report_length(const odk_hid_descriptor *desc, odk_hid_report_type type,
                                        uint8_t id)
{
    for (size_t i = 0; i < desc->n_reports; i++)
        if (desc->reports[i].id == id)
            return report_bytes(&desc->reports[i], type);
    return 0;
}

size_t odk_hid_descriptor_max_report_length(const odk_hid_descriptor *desc,
                                            odk_hid_report_type type)
{
    size_t max = 0;
    for (size_t i = 0; i < desc->n_reports; i++) {
        size_t n = report_bytes(&desc->reports[i], type);
        if (n > max)
            max = n;
    }
    return max;
}

const char *odk_hid_fault_name(odk_hid_fault fault)
{
    static const char *const names[] = {
        [ODK_HID_FAULT_NONE] = "no fault",
        [ODK_HID_FAULT_EMPTY] = "empty descriptor",
        [ODK_HID_FAULT_TOO_LONG] = "descriptor too long",
        [ODK_HID_FAULT_TRUNCATED] = "truncated item",
        [ODK_HID_FAULT_RESERVED_ITEM] = "reserved item",
        [ODK_HID_FAULT_BAD_ITEM_SIZE] = "bad item size",
        [ODK_HID_FAULT_END_WITHOUT_COLLECTION] = "End Collection without Collection",
        [ODK_HID_FAULT_UNCLOSED_COLLECTION] = "unclosed collection",
        [ODK_HID_FAULT_COLLECTION_TOO_DEEP] = "collections nested too deep",
        [ODK_HID_FAULT_PUSH_TOO_DEEP] = "Push too deep",
        [ODK_HID_FAULT_POP_WITHOUT_PUSH] = "Pop without Push",
        [ODK_HID_FAULT_REPORT_SIZE_ZERO] = "Report Size 0",
        [ODK_HID_FAULT_REPORT_SIZE_TOO_BIG] = "Report Size too big",
        [ODK_HID_FAULT_REPORT_COUNT_ZERO] = "Report Count 0",
        [ODK_HID_FAULT_REPORT_COUNT_TOO_BIG] = "Report Count too big",
        [ODK_HID_FAULT_REPORT_TOO_BIG] = "report too big",
        [ODK_HID_FAULT_REPORT_ID_ZERO] = "Report ID 0",
        [ODK_HID_FAULT_REPORT_ID_TOO_BIG] = "Report ID too big",
        [ODK_HID_FAULT_REPORT_ID_MIXED] = "report ids mixed with no-id reports",
        [ODK_HID_FAULT_LOGICAL_RANGE] = "Logical Minimum above Maximum",
        [ODK_HID_FAULT_PHYSICAL_RANGE] = "Physical Minimum above Maximum",
        [ODK_HID_FAULT_USAGE_RANGE] = "Usage Minimum above Maximum",
        [ODK_HID_FAULT_USAGE_RANGE_UNPAIRED] = "unpaired Usage Minimum or Maximum",
        [ODK_HID_FAULT_NO_USAGE_PAGE] = "no Usage Page",
        [ODK_HID_FAULT_TOO_MANY_USAGES] = "too many usages",
        [ODK_HID_FAULT_TOO_MANY_ELEMENTS] = "too many elements",
        [ODK_HID_FAULT_DELIMITER] = "unbalanced Delimiter",
        [ODK_HID_FAULT_BAD_COLLECTION_TYPE] = "reserved collection type",
    };
    if ((unsigned)fault < sizeof names / sizeof names[0] && names[fault])
        return names[fault];
    return "unknown fault";
}
