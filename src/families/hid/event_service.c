/* SPDX-License-Identifier: MIT */
/* IOUserHIDEventService: a report descriptor parsed into elements (the
 * parser is hid_descriptor.h's), and each input report turned into the
 * events that changed since the last one, handed to the driver in order,
 * the last of a report flagged END_OF_REPORT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "families/hid/hid_internal.h"
#include "odk/hid.h"

struct odk_hid_event_service {
    odk_hid_descriptor *desc;
    odk_hid_event_state *state;
    odk_hid_input_fn fn;
    void *ctx;
    /* The events of the report being fed, held back by one so the last
     * can carry END_OF_REPORT. */
    odk_hid_input_event pending;
    bool have_pending;
    uint64_t ts;
};

static uint32_t input_type(const odk_hid_event *e)
{
    uint16_t page = ODK_HID_USAGE_PAGE(e->usage), id = ODK_HID_USAGE_ID(e->usage);
    switch (e->kind) {
    case ODK_HID_EVENT_KEY:
        return ODK_HID_INPUT_KEYBOARD;
    case ODK_HID_EVENT_BUTTON:
        return ODK_HID_INPUT_BUTTON;
    case ODK_HID_EVENT_CONSUMER:
        return ODK_HID_INPUT_CONSUMER;
    case ODK_HID_EVENT_RELATIVE:
        return ODK_HID_INPUT_POINTER_REL;
    case ODK_HID_EVENT_SCROLL:
        return ODK_HID_INPUT_SCROLL;
    case ODK_HID_EVENT_ABSOLUTE:
        if (page == ODK_HID_PAGE_GENERIC_DESKTOP && id >= ODK_HID_GD_X && id <= ODK_HID_GD_Z)
            return ODK_HID_INPUT_POINTER_ABS;
        return ODK_HID_INPUT_OTHER;
    }
    return ODK_HID_INPUT_OTHER;
}

static void flush(odk_hid_event_service *s, uint32_t flags)
{
    if (!s->have_pending)
        return;
    s->have_pending = false;
    s->pending.flags |= flags;
    odk_hid_input_event ev = s->pending;
    s->fn(s->ctx, &ev);
}

static void on_event(const odk_hid_event *e, void *ctx)
{
    odk_hid_event_service *s = ctx;
    flush(s, 0);
    s->pending = (odk_hid_input_event){
        .timestamp_ns = s->ts,
        .type = input_type(e),
        .usage_page = ODK_HID_USAGE_PAGE(e->usage),
        .usage = ODK_HID_USAGE_ID(e->usage),
        .value = e->value > INT32_MAX ? INT32_MAX : e->value < INT32_MIN ? INT32_MIN : (int32_t)e->value,
    };
    s->have_pending = true;
}

int odk_hid_event_service_create(const uint8_t *desc, size_t len, odk_hid_input_fn fn, void *ctx,
                                 odk_hid_event_service **out, char *err, size_t err_len)
{
    if (!desc || !len || !fn || !out)
        return ODK_E_INVALID;
    odk_hid_event_service *s = calloc(1, sizeof *s);
    if (!s)
        return ODK_E_NOMEM;
    odk_hid_parse_error pe = {0};
    int st = odk_hid_descriptor_parse(desc, len, &s->desc, &pe);
    if (st == ODK_E_PROTOCOL) {
        if (err)
            snprintf(err, err_len, "offset %zu: %s", pe.offset, pe.message);
        st = ODK_E_INVALID;
    }
    if (st == ODK_OK)
        st = odk_hid_event_state_create(s->desc, &s->state);
    if (st < 0) {
        odk_hid_event_service_destroy(s);
        return st;
    }
    s->fn = fn;
    s->ctx = ctx;
    *out = s;
    return ODK_OK;
}

int odk_hid_event_service_handle_report(odk_hid_event_service *s, uint64_t timestamp_ns,
                                        const uint8_t *report, size_t len)
{
    if (!s || !report || !len)
        return ODK_E_INVALID;
    s->ts = timestamp_ns ? timestamp_ns : hid_now_ns();
    s->have_pending = false;
    int st = odk_hid_event_state_feed(s->state, report, len, on_event, s);
    if (st < 0)
        return st == ODK_E_PROTOCOL ? ODK_E_INVALID : st;
    flush(s, ODK_HID_INPUT_END_OF_REPORT);
    return ODK_OK;
}

void odk_hid_event_service_release_all(odk_hid_event_service *s, uint64_t timestamp_ns)
{
    if (!s)
        return;
    s->ts = timestamp_ns ? timestamp_ns : hid_now_ns();
    s->have_pending = false;
    odk_hid_event_state_reset(s->state, on_event, s);
    flush(s, ODK_HID_INPUT_END_OF_REPORT);
}

int odk_hid_event_service_led_report(odk_hid_event_service *s, uint32_t leds, uint8_t *buf,
                                     size_t cap, size_t *len, uint8_t *report_id)
{
    if (!s || !buf || !len)
        return ODK_E_INVALID;
    odk_hid_value v[5];
    size_t n = 0;
    int id = -1;
    for (uint16_t u = 1; u <= 5; u++) {
        const odk_hid_element *el = odk_hid_descriptor_find(
            s->desc, ODK_HID_REPORT_OUTPUT, ODK_HID_USAGE(ODK_HID_PAGE_LED, u), NULL);
        if (!el || (id >= 0 && el->report_id != id))
            continue;
        id = el->report_id;
        v[n++] = (odk_hid_value){.usage = ODK_HID_USAGE(ODK_HID_PAGE_LED, u),
                                 .value = (leds >> (u - 1)) & 1};
    }
    if (id < 0)
        return ODK_E_UNSUPPORTED;
    int st = odk_hid_report_encode(s->desc, ODK_HID_REPORT_OUTPUT, (uint8_t)id, v, n, buf, cap, len);
    if (st == ODK_OK && report_id)
        *report_id = (uint8_t)id;
    return st;
}

/* The LED bits an output report sets (for reports that came from the
 * system as bytes: uhid's UHID_OUTPUT). */
int hid_event_service_leds_of(odk_hid_event_service *s, const uint8_t *report, size_t len,
                              uint32_t *leds)
{
    odk_hid_value v[64];
    size_t n = 0;
    int st = odk_hid_report_decode(s->desc, ODK_HID_REPORT_OUTPUT, report, len, v, 64, &n);
    if (st < 0 && st != ODK_E_LIMIT)
        return st;
    bool any = false;
    uint32_t bits = 0;
    for (size_t i = 0; i < n && i < 64; i++)
        if (ODK_HID_USAGE_PAGE(v[i].usage) == ODK_HID_PAGE_LED &&
            ODK_HID_USAGE_ID(v[i].usage) >= 1 && ODK_HID_USAGE_ID(v[i].usage) <= 5) {
            any = true;
            if (v[i].value)
                bits |= 1u << (ODK_HID_USAGE_ID(v[i].usage) - 1);
        }
    if (!any)
        return ODK_E_NOT_FOUND;
    *leds = bits;
    return ODK_OK;
}

const odk_hid_descriptor *hid_event_service_descriptor(const odk_hid_event_service *s)
{
    return s->desc;
}

void odk_hid_event_service_destroy(odk_hid_event_service *s)
{
    if (!s)
        return;
    odk_hid_event_state_free(s->state);
    odk_hid_descriptor_free(s->desc);
    free(s);
}
