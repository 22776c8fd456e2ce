/* SPDX-License-Identifier: MIT */
/* fuzz_hid_descriptor — the HID report-descriptor parser, the report
 * decoder and encoder, the event differ and the printers on bytes a device
 * (or a driver) could send.
 *
 * Input: two bytes of descriptor length (little-endian, taken modulo what
 * is left), the descriptor, then reports, each as a length byte and its
 * bytes.  Every piece sits in a buffer of exactly its length, so ASan sees
 * any read past it.
 *
 * A descriptor the parser accepts must be consistent: every element lies
 * inside its report's length and within the documented limits, and a
 * field written with its logical minimum reads it back; a decoded report
 * re-encodes (when its values are all in range) to a report that decodes.
 * A refused one must name an offset inside the descriptor.  Otherwise the
 * harness aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/hid_descriptor.h"
#include "odk/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
    fprintf(stderr, "fuzz_hid_descriptor: %s\n", what);
    abort();
}

static void count_event(const odk_hid_event *ev, void *ctx)
{
    if (!ev->element)
        die("an event without its element");
    ++*(size_t *)ctx;
}

static void check_elements(const odk_hid_descriptor *d)
{
    for (size_t i = 0; i < odk_hid_descriptor_element_count(d); i++) {
        const odk_hid_element *el = odk_hid_descriptor_element(d, i);
        size_t len = odk_hid_descriptor_report_length(d, el->type, el->report_id);
        uint64_t end = el->bit_offset + (uint64_t)el->size * el->count;
        if (len == 0 || end > (uint64_t)len * 8 || len > ODK_HID_MAX_REPORT_BYTES)
            die("an element outside its report");
        if (el->size == 0 || el->size > ODK_HID_MAX_REPORT_SIZE || el->count == 0 ||
            el->count > ODK_HID_MAX_REPORT_COUNT || el->logical_min > el->logical_max)
            die("an element past the limits");
        if (odk_hid_descriptor_uses_report_ids(d) != (el->report_id != 0))
            die("report ids mixed");
        if (el->report_id && el->bit_offset < 8)
            die("a field over the report id byte");
        if (el->collection >= (int32_t)odk_hid_descriptor_collection_count(d))
            die("an element in no collection");
        if (i >= 64)
            continue; /* the field checks on the first elements keep the fuzzer fast */
        uint8_t *r = calloc(len, 1);
        if (!r)
            abort();
        r[0] = el->report_id ? el->report_id : r[0];
        int64_t v = el->logical_min, back;
        bool fits = el->logical_min < 0 ? el->size == 32 || v >= -((int64_t)1 << (el->size - 1))
                                        : el->size == 32 || v < ((int64_t)1 << el->size);
        if (odk_hid_field_set(el, el->count - 1, r, len, v) != ODK_OK ||
            odk_hid_field_get(el, el->count - 1, r, len, &back) != ODK_OK)
            die("a field that cannot be written or read");
        if (fits && back != v)
            die("a field does not read back what was written");
        free(r);
        for (uint32_t k = 0; k < el->n_usages; k++)
            if (el->usages[k].min > el->usages[k].max)
                die("a usage range upside down");
    }
}

static void use_report(const odk_hid_descriptor *d, odk_hid_event_state *s, const uint8_t *r,
                       size_t n)
{
    for (int t = ODK_HID_REPORT_INPUT; t <= ODK_HID_REPORT_FEATURE; t++) {
        odk_hid_value v[64];
        size_t count = 0;
        int rc = odk_hid_report_decode(d, (odk_hid_report_type)t, r, n, v, 64, &count);
        if (rc != ODK_OK)
            continue;
        uint8_t id = odk_hid_descriptor_uses_report_ids(d) ? r[0] : 0;
        size_t len = odk_hid_descriptor_report_length(d, (odk_hid_report_type)t, id);
        uint8_t *out = malloc(len);
        if (!out)
            abort();
        size_t got = 0;
        rc = odk_hid_report_encode(d, (odk_hid_report_type)t, id, v, count, out, len, &got);
        if (rc == ODK_OK) {
            size_t again = 0;
            if (got != len)
                die("an encoded report of the wrong length");
            rc = odk_hid_report_decode(d, (odk_hid_report_type)t, out, got, NULL, 0, &again);
            if (rc != ODK_OK && rc != ODK_E_LIMIT)
                die("an encoded report does not decode");
        }
        free(out);
    }
    size_t events = 0;
    (void)odk_hid_event_state_feed(s, r, n, count_event, &events);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t left = size - 2;
    size_t dlen = ((size_t)data[0] | (size_t)data[1] << 8) % (left + 1);
    uint8_t *desc = malloc(dlen ? dlen : 1);
    if (!desc)
        abort();
    memcpy(desc, data + 2, dlen);

    char *text = NULL;
    if (odk_hid_descriptor_format(desc, dlen, &text) != ODK_OK || !text)
        die("the printer failed");
    free(text);
    if (odk_hid_descriptor_format_json(desc, dlen, &text) != ODK_OK || !text)
        die("the JSON printer failed");
    free(text);

    odk_hid_descriptor *d = NULL;
    odk_hid_parse_error err;
    int rc = odk_hid_descriptor_parse(desc, dlen, &d, &err);
    if (rc != ODK_OK) {
        if (rc != ODK_E_PROTOCOL || d || err.fault == ODK_HID_FAULT_NONE || !err.message[0] ||
            (dlen && err.offset >= dlen))
            die("a refusal without its fault and offset");
        free(desc);
        return 0;
    }
    check_elements(d);
    odk_hid_event_state *s = NULL;
    if (odk_hid_event_state_create(d, &s) != ODK_OK)
        abort();
    const uint8_t *p = data + 2 + dlen, *end = data + size;
    while (p < end) {
        size_t n = *p++;
        if (n > (size_t)(end - p))
            n = (size_t)(end - p);
        uint8_t *r = malloc(n ? n : 1);
        if (!r)
            abort();
        memcpy(r, p, n);
        use_report(d, s, r, n);
        free(r);
        p += n;
    }
    size_t events = 0;
    odk_hid_event_state_reset(s, count_event, &events);
    for (size_t i = 0; i < odk_hid_descriptor_element_count(d); i++) {
        const odk_hid_element *el = odk_hid_descriptor_element(d, i);
        for (uint32_t k = 0; k < el->n_usages && k < 4; k++)
            if (odk_hid_event_state_is_down(s, el->usages[k].min))
                die("a usage still down after a reset");
    }
    odk_hid_event_state_free(s);
    odk_hid_descriptor_free(d);
    free(desc);
    return 0;
}
