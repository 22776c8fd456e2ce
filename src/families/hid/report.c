/* SPDX-License-Identifier: MIT */
/* report.c — reading and building reports with a parsed descriptor
 * (odk/hid_descriptor.h): fields, usages, values.
 *
 * Fields are little-endian bit strings (HID 1.11 5.8 and 6.2.2.7): bit n
 * of the report is bit n % 8 of byte n / 8. */
#include <stdlib.h>
#include <string.h>

#include "families/hid/descriptor_internal.h"
#include "odk/status.h"

/* ---- usages --------------------------------------------------------------- */

/* The pos-th usage of el's list expanded, or 0 past its end. */
static uint32_t nth_usage(const odk_hid_element *el, uint64_t pos)
{
    for (uint32_t i = 0; i < el->n_usages; i++) {
        uint64_t span = (uint64_t)el->usages[i].max - el->usages[i].min + 1;
        if (pos < span)
            return el->usages[i].min + (uint32_t)pos;
        pos -= span;
    }
    return 0;
}

/* The position of usage in el's list expanded (its first occurrence). */
static bool usage_position(const odk_hid_element *el, uint32_t usage, uint64_t *pos)
{
    uint64_t base = 0;
    for (uint32_t i = 0; i < el->n_usages; i++) {
        const odk_hid_usage_span *s = &el->usages[i];
        if (usage >= s->min && usage <= s->max) {
            *pos = base + (usage - s->min);
            return true;
        }
        base += (uint64_t)s->max - s->min + 1;
    }
    return false;
}

uint32_t odk_hid_element_usage(const odk_hid_element *el, uint32_t index, int64_t value)
{
    if (!el->n_usages)
        return 0;
    if (el->flags & ODK_HID_VARIABLE) {
        uint32_t u = nth_usage(el, index);
        return u ? u : el->usages[el->n_usages - 1].max; /* the last usage repeats */
    }
    if (value < el->logical_min || value > el->logical_max)
        return 0;
    return nth_usage(el, (uint64_t)(value - el->logical_min));
}

bool odk_hid_element_has_usage(const odk_hid_element *el, uint32_t usage, uint32_t *index)
{
    uint64_t pos;
    if (!usage_position(el, usage, &pos))
        return false;
    if (el->flags & ODK_HID_VARIABLE) {
        if (pos >= el->count)
            return false;
        if (index)
            *index = (uint32_t)pos;
        return true;
    }
    return (int64_t)pos <= el->logical_max - el->logical_min;
}

const odk_hid_element *odk_hid_descriptor_find(const odk_hid_descriptor *desc,
                                               odk_hid_report_type type, uint32_t usage,
                                               uint32_t *index)
{
    for (size_t i = 0; i < desc->n_elements; i++) {
        const odk_hid_element *el = &desc->elements[i];
        if (el->type == type && !(el->flags & ODK_HID_CONSTANT) &&
            odk_hid_element_has_usage(el, usage, index))
            return el;
    }
    return NULL;
}

/* ---- fields --------------------------------------------------------------- */

static bool field_fits(const odk_hid_element *el, uint32_t index, size_t len, uint64_t *bit)
{
    *bit = el->bit_offset + (uint64_t)index * el->size;
    return *bit + el->size <= (uint64_t)len * 8;
}

static uint32_t read_bits(const uint8_t *b, uint64_t bit, uint32_t size)
{
    uint64_t v = 0;
    size_t first = (size_t)(bit / 8), last = (size_t)((bit + size - 1) / 8);
    for (size_t i = last + 1; i-- > first;)
        v = v << 8 | b[i];
    v >>= bit % 8;
    return (uint32_t)(size >= 32 ? v : v & ((1ull << size) - 1));
}

static void write_bits(uint8_t *b, uint64_t bit, uint32_t size, uint32_t value)
{
    for (uint32_t i = 0; i < size; i++, bit++) {
        uint8_t mask = (uint8_t)(1u << (bit % 8));
        if (value >> i & 1)
            b[bit / 8] |= mask;
        else
            b[bit / 8] &= (uint8_t)~mask;
    }
}

static int64_t field_value(const odk_hid_element *el, uint32_t raw)
{
    if (el->logical_min < 0 && el->size < 32 && (raw >> (el->size - 1) & 1))
        return (int64_t)raw - ((int64_t)1 << el->size);
    if (el->logical_min < 0 && el->size == 32)
        return (int32_t)raw;
    return raw;
}

int odk_hid_field_get(const odk_hid_element *el, uint32_t index, const void *report, size_t len,
                      int64_t *value)
{
    if (index >= el->count)
        return ODK_E_INVALID;
    const uint8_t *b = report;
    uint64_t bit;
    if (!field_fits(el, index, len, &bit))
        return ODK_E_PROTOCOL;
    if (el->report_id && b[0] != el->report_id)
        return ODK_E_PROTOCOL;
    *value = field_value(el, read_bits(b, bit, el->size));
    return ODK_OK;
}

int odk_hid_field_set(const odk_hid_element *el, uint32_t index, void *report, size_t len,
                      int64_t value)
{
    uint64_t bit;
    if (index >= el->count || !field_fits(el, index, len, &bit))
        return ODK_E_INVALID;
    write_bits(report, bit, el->size, (uint32_t)(uint64_t)value);
    return ODK_OK;
}

/* ---- values --------------------------------------------------------------- */

/* The report id of a report as it arrived, after checking it is one of
 * type that desc knows and long enough. */
static int report_id_of(const odk_hid_descriptor *desc, odk_hid_report_type type, const uint8_t *b,
                        size_t len, uint8_t *id)
{
    *id = 0;
    if (desc->uses_ids) {
        if (len < 1)
            return ODK_E_PROTOCOL;
        *id = b[0];
    }
    size_t need = odk_hid_descriptor_report_length(desc, type, *id);
    if (need == 0 || len < need)
        return ODK_E_PROTOCOL;
    return ODK_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The usages an array element selects, ascending, into sel (el->count
 * entries), each as usage << 32 | the field that holds it; usage id 0 (the
 * "no event" of every page) and repeats are dropped.  Returns how many. */
static uint32_t array_usages(const odk_hid_element *el, const uint8_t *b, uint64_t *sel)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < el->count; i++) {
        uint64_t bit = el->bit_offset + (uint64_t)i * el->size;
        uint32_t u = odk_hid_element_usage(el, i, field_value(el, read_bits(b, bit, el->size)));
        if (ODK_HID_USAGE_ID(u))
            sel[n++] = (uint64_t)u << 32 | i;
    }
    qsort(sel, n, sizeof *sel, cmp_u64);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (k == 0 || sel[i] >> 32 != sel[k - 1] >> 32)
            sel[k++] = sel[i];
    return k;
}

/* Scratch room for array_usages over any array element of desc. */
static uint64_t *array_scratch(const odk_hid_descriptor *desc)
{
    uint32_t n = 1;
    for (size_t i = 0; i < desc->n_elements; i++)
        if (!(desc->elements[i].flags & ODK_HID_VARIABLE) && desc->elements[i].count > n)
            n = desc->elements[i].count;
    return malloc(n * sizeof(uint64_t));
}

struct decode_ctx {
    odk_hid_value *out;
    size_t cap, n;
};

static void decode_add(struct decode_ctx *c, uint32_t usage, int64_t value,
                       const odk_hid_element *el, uint32_t index)
{
    if (c->n < c->cap)
        c->out[c->n] = (odk_hid_value){usage, value, el, index};
    c->n++;
}

int odk_hid_report_decode(const odk_hid_descriptor *desc, odk_hid_report_type type,
                          const void *report, size_t len, odk_hid_value *out, size_t cap, size_t *n)
{
    if (!desc || !report || !n || (!out && cap))
        return ODK_E_INVALID;
    const uint8_t *b = report;
    uint8_t id;
    int r = report_id_of(desc, type, b, len, &id);
    if (r)
        return r;
    uint64_t *sel = array_scratch(desc);
    if (!sel)
        return ODK_E_NOMEM;
    struct decode_ctx c = {out, cap, 0};
    for (size_t i = 0; i < desc->n_elements; i++) {
        const odk_hid_element *el = &desc->elements[i];
        if (el->type != type || el->report_id != id || (el->flags & ODK_HID_CONSTANT))
            continue;
        if (!(el->flags & ODK_HID_VARIABLE)) {
            uint32_t k = array_usages(el, b, sel);
            for (uint32_t j = 0; j < k; j++)
                decode_add(&c, (uint32_t)(sel[j] >> 32), 1, el, (uint32_t)sel[j]);
            continue;
        }
        for (uint32_t f = 0; f < el->count; f++) {
            uint64_t bit = el->bit_offset + (uint64_t)f * el->size;
            decode_add(&c, odk_hid_element_usage(el, f, 0),
                       field_value(el, read_bits(b, bit, el->size)), el, f);
        }
    }
    free(sel);
    *n = c.n;
    return c.n > cap ? ODK_E_LIMIT : ODK_OK;
}

int odk_hid_report_encode(const odk_hid_descriptor *desc, odk_hid_report_type type, uint8_t id,
                          const odk_hid_value *values, size_t n, void *out, size_t cap, size_t *len)
{
    if (!desc || (!values && n) || !len || (!out && cap))
        return ODK_E_INVALID;
    if (desc->uses_ids != (id != 0))
        return ODK_E_NOT_FOUND;
    size_t need = odk_hid_descriptor_report_length(desc, type, id);
    if (need == 0)
        return ODK_E_NOT_FOUND;
    *len = need;
    if (cap < need)
        return ODK_E_LIMIT;
    uint8_t *b = out;
    memset(b, 0, need);
    if (id)
        b[0] = id;
    /* Fields filled so far in each array element of this report. */
    uint32_t *filled = calloc(desc->n_elements ? desc->n_elements : 1, sizeof *filled);
    if (!filled)
        return ODK_E_NOMEM;
    int r = ODK_OK;
    for (size_t v = 0; v < n && r == ODK_OK; v++) {
        const odk_hid_element *el = NULL;
        size_t e;
        uint32_t index = 0;
        for (e = 0; e < desc->n_elements; e++) {
            const odk_hid_element *c = &desc->elements[e];
            if (c->type == type && c->report_id == id && !(c->flags & ODK_HID_CONSTANT) &&
                odk_hid_element_has_usage(c, values[v].usage, &index)) {
                el = c;
                break;
            }
        }
        if (!el) {
            r = ODK_E_NOT_FOUND;
        } else if (el->flags & ODK_HID_VARIABLE) {
            int64_t x = values[v].value;
            if (x < el->logical_min || x > el->logical_max)
                r = ODK_E_INVALID;
            else
                write_bits(b, el->bit_offset + (uint64_t)index * el->size, el->size,
                           (uint32_t)(uint64_t)x);
        } else if (values[v].value) {
            uint64_t pos = 0;
            usage_position(el, values[v].usage, &pos);
            if (filled[e] >= el->count)
                r = ODK_E_LIMIT;
            else
                write_bits(b, el->bit_offset + (uint64_t)filled[e]++ * el->size, el->size,
                           (uint32_t)(uint64_t)(el->logical_min + (int64_t)pos));
        }
    }
    free(filled);
    return r;
}

/* ---- events --------------------------------------------------------------- */

/* Per element: its fields' last values (variables), or the usages it
 * last reported down (arrays, up to count of them, 0 for a free slot). */
struct element_state {
    int64_t *values;
    uint32_t *down;
    bool known; /* a report of this element has been seen */
};

struct odk_hid_event_state {
    const odk_hid_descriptor *desc;
    struct element_state *elements;
};

static odk_hid_event_kind on_off_kind(uint32_t usage)
{
    switch (ODK_HID_USAGE_PAGE(usage)) {
    case ODK_HID_PAGE_KEYBOARD:
        return ODK_HID_EVENT_KEY;
    case ODK_HID_PAGE_CONSUMER:
        return ODK_HID_EVENT_CONSUMER;
    default:
        return ODK_HID_EVENT_BUTTON;
    }
}

/* A variable field that is a key, button or consumer control: down or up. */
static bool is_on_off(const odk_hid_element *el, uint32_t usage)
{
    uint16_t page = ODK_HID_USAGE_PAGE(usage);
    bool switch_page = page == ODK_HID_PAGE_KEYBOARD || page == ODK_HID_PAGE_BUTTON ||
                       page == ODK_HID_PAGE_CONSUMER;
    return switch_page && el->logical_min == 0 && el->logical_max == 1;
}

static bool is_scroll(uint32_t usage)
{
    return usage == ODK_HID_USAGE(ODK_HID_PAGE_GENERIC_DESKTOP, ODK_HID_GD_WHEEL) ||
           usage == ODK_HID_USAGE(ODK_HID_PAGE_CONSUMER, ODK_HID_CONSUMER_AC_PAN);
}

int odk_hid_event_state_create(const odk_hid_descriptor *desc, odk_hid_event_state **out)
{
    if (out)
        *out = NULL;
    if (!desc || !out)
        return ODK_E_INVALID;
    odk_hid_event_state *s = calloc(1, sizeof *s);
    if (!s)
        return ODK_E_NOMEM;
    s->desc = desc;
    s->elements = calloc(desc->n_elements ? desc->n_elements : 1, sizeof *s->elements);
    if (!s->elements) {
        free(s);
        return ODK_E_NOMEM;
    }
    for (size_t i = 0; i < desc->n_elements; i++) {
        const odk_hid_element *el = &desc->elements[i];
        struct element_state *es = &s->elements[i];
        if (el->type != ODK_HID_REPORT_INPUT || (el->flags & ODK_HID_CONSTANT))
            continue;
        if (el->flags & ODK_HID_VARIABLE)
            es->values = calloc(el->count, sizeof *es->values);
        else
            es->down = calloc(el->count, sizeof *es->down);
        if (!es->values && !es->down) {
            odk_hid_event_state_free(s);
            return ODK_E_NOMEM;
        }
    }
    *out = s;
    return ODK_OK;
}

void odk_hid_event_state_free(odk_hid_event_state *state)
{
    if (!state)
        return;
    for (size_t i = 0; i < state->desc->n_elements; i++) {
        free(state->elements[i].values);
        free(state->elements[i].down);
    }
    free(state->elements);
    free(state);
}

static void emit(odk_hid_event_fn fn, void *ctx, odk_hid_event_kind kind, uint32_t usage,
                 int64_t value, const odk_hid_element *el)
{
    if (!fn)
        return;
    odk_hid_event ev = {
        .kind = kind,
        .usage = usage,
        .value = value,
        .min = el->logical_min,
        .max = el->logical_max,
        .report_id = el->report_id,
        .element = el,
    };
    fn(&ev, ctx);
}

static bool is_rollover_error(uint32_t usage)
{
    return ODK_HID_USAGE_PAGE(usage) == ODK_HID_PAGE_KEYBOARD &&
           ODK_HID_USAGE_ID(usage) >= ODK_HID_KEY_ERROR_ROLLOVER &&
           ODK_HID_USAGE_ID(usage) <= ODK_HID_KEY_ERROR_UNDEFINED;
}

/* Whether the ascending u[0..n) holds usage. */
static bool sorted_has(const uint32_t *u, uint32_t n, uint32_t usage)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (u[mid] == usage)
            return true;
        if (u[mid] < usage)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Whether the ascending selection sel[0..n) holds usage. */
static bool selected(const uint64_t *sel, uint32_t n, uint32_t usage)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t u = (uint32_t)(sel[mid] >> 32);
        if (u == usage)
            return true;
        if (u < usage)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static void feed_array(struct element_state *es, const odk_hid_element *el, const uint8_t *b,
                       uint64_t *sel, odk_hid_event_fn fn, void *ctx)
{
    uint32_t n = array_usages(el, b, sel);
    for (uint32_t i = 0; i < n; i++)
        if (is_rollover_error((uint32_t)(sel[i] >> 32)))
            return; /* the keyboard cannot tell: keep what was down */
    uint32_t n_old = 0;
    while (n_old < el->count && es->down[n_old])
        n_old++;
    /* Both sets are ascending, so releases and presses come out ascending. */
    for (uint32_t i = 0; i < n_old; i++)
        if (!selected(sel, n, es->down[i]))
            emit(fn, ctx, on_off_kind(es->down[i]), es->down[i], 0, el);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)(sel[i] >> 32);
        if (!sorted_has(es->down, n_old, u))
            emit(fn, ctx, on_off_kind(u), u, 1, el);
    }
    memset(es->down, 0, el->count * sizeof *es->down);
    for (uint32_t i = 0; i < n; i++)
        es->down[i] = (uint32_t)(sel[i] >> 32);
}

static void feed_variable(struct element_state *es, const odk_hid_element *el, const uint8_t *b,
                          odk_hid_event_fn fn, void *ctx)
{
    for (uint32_t f = 0; f < el->count; f++) {
        uint32_t usage = odk_hid_element_usage(el, f, 0);
        uint64_t bit = el->bit_offset + (uint64_t)f * el->size;
        int64_t v = field_value(el, read_bits(b, bit, el->size));
        if (!usage)
            continue;
        if (el->flags & ODK_HID_RELATIVE) {
            if (v)
                emit(fn, ctx, is_scroll(usage) ? ODK_HID_EVENT_SCROLL : ODK_HID_EVENT_RELATIVE,
                     usage, v, el);
            continue;
        }
        if (is_on_off(el, usage)) {
            v = v != 0;
            if (v != es->values[f])
                emit(fn, ctx, on_off_kind(usage), usage, v, el);
        } else if (!es->known || v != es->values[f]) {
            emit(fn, ctx, ODK_HID_EVENT_ABSOLUTE, usage, v, el);
        }
        es->values[f] = v;
    }
    es->known = true;
}

int odk_hid_event_state_feed(odk_hid_event_state *state, const void *report, size_t len,
                             odk_hid_event_fn fn, void *context)
{
    if (!state || !report)
        return ODK_E_INVALID;
    const odk_hid_descriptor *desc = state->desc;
    const uint8_t *b = report;
    uint8_t id;
    int r = report_id_of(desc, ODK_HID_REPORT_INPUT, b, len, &id);
    if (r)
        return r;
    uint64_t *scratch = array_scratch(desc);
    if (!scratch)
        return ODK_E_NOMEM;
    for (size_t i = 0; i < desc->n_elements; i++) {
        const odk_hid_element *el = &desc->elements[i];
        struct element_state *es = &state->elements[i];
        if (el->report_id != id || (!es->values && !es->down))
            continue;
        if (es->down)
            feed_array(es, el, b, scratch, fn, context);
        else
            feed_variable(es, el, b, fn, context);
    }
    free(scratch);
    return ODK_OK;
}

void odk_hid_event_state_reset(odk_hid_event_state *state, odk_hid_event_fn fn, void *context)
{
    const odk_hid_descriptor *desc = state->desc;
    for (size_t i = 0; i < desc->n_elements; i++) {
        const odk_hid_element *el = &desc->elements[i];
        struct element_state *es = &state->elements[i];
        if (es->down) {
            for (uint32_t k = 0; k < el->count && es->down[k]; k++)
                emit(fn, context, on_off_kind(es->down[k]), es->down[k], 0, el);
            memset(es->down, 0, el->count * sizeof *es->down);
        } else if (es->values) {
            for (uint32_t f = 0; f < el->count; f++) {
                uint32_t usage = odk_hid_element_usage(el, f, 0);
                if (usage && !(el->flags & ODK_HID_RELATIVE) && is_on_off(el, usage) &&
                    es->values[f])
                    emit(fn, context, on_off_kind(usage), usage, 0, el);
            }
            memset(es->values, 0, el->count * sizeof *es->values);
            es->known = false;
        }
    }
}

bool odk_hid_event_state_is_down(const odk_hid_event_state *state, uint32_t usage)
{
    const odk_hid_descriptor *desc = state->desc;
    for (size_t i = 0; i < desc->n_elements; i++) {
        const odk_hid_element *el = &desc->elements[i];
        const struct element_state *es = &state->elements[i];
        if (es->down) {
            uint32_t n = 0;
            while (n < el->count && es->down[n])
                n++;
            if (sorted_has(es->down, n, usage))
                return true;
        }
        if (es->values && !(el->flags & ODK_HID_RELATIVE)) {
            for (uint32_t f = 0; f < el->count; f++)
                if (es->values[f] && odk_hid_element_usage(el, f, 0) == usage &&
                    is_on_off(el, usage))
                    return true;
        }
    }
    return false;
}
