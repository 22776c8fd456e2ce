/* SPDX-License-Identifier: MIT */
/* Unit tests for HID report descriptors (parse.c, report.c, usage_names.c,
 * descriptor_format.c) against the descriptors of real kinds of device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "families/hid/descriptor_samples.h"
#include "odk/hid_descriptor.h"
#include "odk/status.h"

#define KEY(id) ODK_HID_USAGE(ODK_HID_PAGE_KEYBOARD, id)
#define GD(id) ODK_HID_USAGE(ODK_HID_PAGE_GENERIC_DESKTOP, id)
#define BUTTON(id) ODK_HID_USAGE(ODK_HID_PAGE_BUTTON, id)
#define CONSUMER(id) ODK_HID_USAGE(ODK_HID_PAGE_CONSUMER, id)
#define LED(id) ODK_HID_USAGE(ODK_HID_PAGE_LED, id)
#define DIG(id) ODK_HID_USAGE(ODK_HID_PAGE_DIGITIZER, id)
#define V(u, v)                                                                                    \
    {                                                                                              \
        .usage = (u), .value = (v)                                                                 \
    }

static odk_hid_descriptor *parse_ok(const uint8_t *b, size_t n)
{
    odk_hid_descriptor *d = NULL;
    odk_hid_parse_error err;
    int r = odk_hid_descriptor_parse(b, n, &d, &err);
    if (r != ODK_OK)
        fail_msg("parse failed (%d): %s", r, err.message);
    assert_int_equal(err.fault, ODK_HID_FAULT_NONE);
    return d;
}

#define PARSE(a) parse_ok(a, sizeof a)

/* ---- events, collected ----------------------------------------------------- */

struct events {
    odk_hid_event e[64];
    size_t n;
};

static void collect(const odk_hid_event *ev, void *ctx)
{
    struct events *es = ctx;
    assert_true(es->n < 64);
    es->e[es->n++] = *ev;
}

static void assert_event(const struct events *es, size_t i, odk_hid_event_kind kind, uint32_t usage,
                         int64_t value)
{
    if (i >= es->n)
        fail_msg("event %zu missing (%zu events)", i, es->n);
    if (es->e[i].kind != kind || es->e[i].usage != usage || es->e[i].value != value)
        fail_msg("event %zu is kind %d usage 0x%08x value %lld; expected kind %d usage 0x%08x "
                 "value %lld",
                 i, es->e[i].kind, es->e[i].usage, (long long)es->e[i].value, kind, usage,
                 (long long)value);
}

static struct events feed(odk_hid_event_state *s, const uint8_t *report, size_t n)
{
    struct events es = {.n = 0};
    assert_int_equal(odk_hid_event_state_feed(s, report, n, collect, &es), ODK_OK);
    return es;
}

#define FEED(s, ...)                                                                               \
    ({                                                                                             \
        const uint8_t r_[] = {__VA_ARGS__};                                                        \
        feed(s, r_, sizeof r_);                                                                    \
    })

/* ---- real descriptors ------------------------------------------------------ */

static void boot_keyboard_elements(void **state)
{
    (void)state;
    odk_hid_descriptor *d = PARSE(boot_keyboard);
    assert_false(odk_hid_descriptor_uses_report_ids(d));
    assert_int_equal(odk_hid_descriptor_primary_usage(d), GD(ODK_HID_GD_KEYBOARD));
    assert_int_equal(odk_hid_descriptor_collection_count(d), 1);
    assert_int_equal(odk_hid_descriptor_element_count(d), 5);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 0), 8);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_OUTPUT, 0), 1);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_FEATURE, 0), 0);
    assert_int_equal(odk_hid_descriptor_report_count(d), 1);

    const odk_hid_element *mods = odk_hid_descriptor_element(d, 0);
    assert_int_equal(mods->type, ODK_HID_REPORT_INPUT);
    assert_int_equal(mods->bit_offset, 0);
    assert_int_equal(mods->size, 1);
    assert_int_equal(mods->count, 8);
    assert_int_equal(mods->flags, ODK_HID_VARIABLE);
    assert_int_equal(mods->n_usages, 1);
    assert_int_equal(mods->usages[0].min, KEY(0xe0));
    assert_int_equal(mods->usages[0].max, KEY(0xe7));
    assert_int_equal(mods->collection, 0);
    assert_int_equal(mods->item_offset, 20);
    assert_int_equal(odk_hid_element_usage(mods, 1, 0), KEY(0xe1));

    const odk_hid_element *reserved = odk_hid_descriptor_element(d, 1);
    assert_int_equal(reserved->flags & ODK_HID_CONSTANT, ODK_HID_CONSTANT);
    assert_int_equal(reserved->bit_offset, 8);
    assert_int_equal(reserved->n_usages, 0);

    const odk_hid_element *leds = odk_hid_descriptor_element(d, 2);
    assert_int_equal(leds->type, ODK_HID_REPORT_OUTPUT);
    assert_int_equal(leds->bit_offset, 0);
    assert_int_equal(leds->count, 5);
    assert_int_equal(leds->usages[0].min, LED(1));
    const odk_hid_element *pad = odk_hid_descriptor_element(d, 3);
    assert_int_equal(pad->bit_offset, 5);
    assert_int_equal(pad->size, 3);

    const odk_hid_element *keys = odk_hid_descriptor_element(d, 4);
    assert_int_equal(keys->bit_offset, 16);
    assert_int_equal(keys->size, 8);
    assert_int_equal(keys->count, 6);
    assert_int_equal(keys->flags & ODK_HID_VARIABLE, 0);
    assert_int_equal(keys->logical_min, 0);
    assert_int_equal(keys->logical_max, 101);
    assert_int_equal(odk_hid_element_usage(keys, 0, 4), KEY(4));
    assert_int_equal(odk_hid_element_usage(keys, 3, 102), 0); /* outside the logical range */
    assert_true(odk_hid_element_has_usage(keys, KEY(0x39), NULL));
    assert_false(odk_hid_element_has_usage(keys, KEY(0xe0), NULL));

    uint32_t index = 99;
    assert_ptr_equal(odk_hid_descriptor_find(d, ODK_HID_REPORT_INPUT, KEY(0xe2), &index), mods);
    assert_int_equal(index, 2);
    assert_ptr_equal(odk_hid_descriptor_find(d, ODK_HID_REPORT_OUTPUT, LED(2), &index), leds);
    assert_int_equal(index, 1);
    assert_null(odk_hid_descriptor_find(d, ODK_HID_REPORT_FEATURE, LED(2), NULL));

    size_t len;
    assert_ptr_not_equal(odk_hid_descriptor_bytes(d, &len), boot_keyboard);
    assert_int_equal(len, sizeof boot_keyboard);
    assert_memory_equal(odk_hid_descriptor_bytes(d, &len), boot_keyboard, len);
    odk_hid_descriptor_free(d);
}

static void boot_keyboard_decode_and_encode(void **state)
{
    (void)state;
    odk_hid_descriptor *d = PARSE(boot_keyboard);
    /* Left Shift with a and b down. */
    const uint8_t report[8] = {0x02, 0x00, 0x04, 0x05, 0, 0, 0, 0};
    odk_hid_value v[16];
    size_t n = 0;
    assert_int_equal(odk_hid_report_decode(d, ODK_HID_REPORT_INPUT, report, 8, v, 16, &n), ODK_OK);
    assert_int_equal(n, 10);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(v[i].usage, KEY(0xe0 + i));
        assert_int_equal(v[i].value, i == 1);
    }
    assert_int_equal(v[8].usage, KEY(4));
    assert_int_equal(v[8].value, 1);
    assert_int_equal(v[8].index, 0);
    assert_int_equal(v[9].usage, KEY(5));
    assert_int_equal(v[9].index, 1);

    /* Too small an array says how many are needed. */
    assert_int_equal(odk_hid_report_decode(d, ODK_HID_REPORT_INPUT, report, 8, v, 4, &n),
                     ODK_E_LIMIT);
    assert_int_equal(n, 10);
    /* A short report is refused; a longer one is read up to its length. */
    assert_int_equal(odk_hid_report_decode(d, ODK_HID_REPORT_INPUT, report, 7, v, 16, &n),
                     ODK_E_PROTOCOL);

    /* Encoding the values back gives the same bytes. */
    const odk_hid_value keys[] = {V(KEY(0xe1), 1), V(KEY(4), 1), V(KEY(5), 1), V(KEY(6), 0)};
    uint8_t out[8];
    size_t len = 0;
    assert_int_equal(
        odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, keys, 4, out, sizeof out, &len), ODK_OK);
    assert_int_equal(len, 8);
    assert_memory_equal(out, report, 8);

    /* The whole decoded value list round-trips too. */
    assert_int_equal(odk_hid_report_decode(d, ODK_HID_REPORT_INPUT, report, 8, v, 16, &n), ODK_OK);
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, v, n, out, 8, &len), ODK_OK);
    assert_memory_equal(out, report, 8);

    /* Seven keys do not fit six slots; a usage the report lacks is not found. */
    const odk_hid_value seven[] = {V(KEY(4), 1), V(KEY(5), 1), V(KEY(6), 1), V(KEY(7), 1),
                                   V(KEY(8), 1), V(KEY(9), 1), V(KEY(10), 1)};
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, seven, 7, out, 8, &len),
                     ODK_E_LIMIT);
    const odk_hid_value f13[] = {V(KEY(0x68), 1)}; /* past the array's 0..101 */
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, f13, 1, out, 8, &len),
                     ODK_E_NOT_FOUND);
    const odk_hid_value two[] = {V(KEY(0xe0), 2)}; /* a modifier is 0..1 */
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, two, 1, out, 8, &len),
                     ODK_E_INVALID);
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, keys, 1, out, 4, &len),
                     ODK_E_LIMIT);
    assert_int_equal(len, 8);
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 1, keys, 1, out, 8, &len),
                     ODK_E_NOT_FOUND);

    /* The LED output report, both ways. */
    const odk_hid_value leds[] = {V(LED(1), 1), V(LED(2), 0), V(LED(3), 1)};
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_OUTPUT, 0, leds, 3, out, 8, &len),
                     ODK_OK);
    assert_int_equal(len, 1);
    assert_int_equal(out[0], 0x05);
    out[0] = 0x02; /* Caps Lock */
    assert_int_equal(odk_hid_report_decode(d, ODK_HID_REPORT_OUTPUT, out, 1, v, 16, &n), ODK_OK);
    assert_int_equal(n, 5);
    assert_int_equal(v[1].usage, LED(2));
    assert_int_equal(v[1].value, 1);
    assert_int_equal(v[0].value + v[2].value + v[3].value + v[4].value, 0);
    odk_hid_descriptor_free(d);
}

static void boot_keyboard_events(void **state)
{
    (void)state;
    odk_hid_descriptor *d = PARSE(boot_keyboard);
    odk_hid_event_state *s;
    assert_int_equal(odk_hid_event_state_create(d, &s), ODK_OK);

    struct events e = FEED(s, 0, 0, 0, 0, 0, 0, 0, 0);
    assert_int_equal(e.n, 0);
    e = FEED(s, 0, 0, 0x04, 0, 0, 0, 0, 0); /* a down */
    assert_int_equal(e.n, 1);
    assert_event(&e, 0, ODK_HID_EVENT_KEY, KEY(4), 1);
    e = FEED(s, 0x02, 0, 0x04, 0x05, 0, 0, 0, 0); /* Left Shift, b down */
    assert_int_equal(e.n, 2);
    assert_event(&e, 0, ODK_HID_EVENT_KEY, KEY(0xe1), 1);
    assert_event(&e, 1, ODK_HID_EVENT_KEY, KEY(5), 1);
    assert_true(odk_hid_event_state_is_down(s, KEY(0xe1)));
    assert_true(odk_hid_event_state_is_down(s, KEY(4)));
    /* Rollover: a moves out of slot 0, c comes in, in a different slot order. */
    e = FEED(s, 0x02, 0, 0x06, 0x05, 0, 0, 0, 0);
    assert_int_equal(e.n, 2);
    assert_event(&e, 0, ODK_HID_EVENT_KEY, KEY(4), 0);
    assert_event(&e, 1, ODK_HID_EVENT_KEY, KEY(6), 1);
    /* ErrorRollOver in every slot: the keys stay as they were. */
    e = FEED(s, 0x02, 0, 1, 1, 1, 1, 1, 1);
    assert_int_equal(e.n, 0);
    assert_true(odk_hid_event_state_is_down(s, KEY(6)));
    /* The same key twice counts once; Right Control with it. */
    e = FEED(s, 0x12, 0, 0x05, 0x05, 0x06, 0, 0, 0);
    assert_int_equal(e.n, 1);
    assert_event(&e, 0, ODK_HID_EVENT_KEY, KEY(0xe4), 1);
    /* A report of another length is refused and changes nothing. */
    const uint8_t short_report[] = {0, 0, 0};
    assert_int_equal(odk_hid_event_state_feed(s, short_report, 3, collect, &e), ODK_E_PROTOCOL);
    assert_true(odk_hid_event_state_is_down(s, KEY(5)));

    /* Reset releases everything still down: modifiers, then keys. */
    e.n = 0;
    odk_hid_event_state_reset(s, collect, &e);
    assert_int_equal(e.n, 4);
    assert_event(&e, 0, ODK_HID_EVENT_KEY, KEY(0xe1), 0);
    assert_event(&e, 1, ODK_HID_EVENT_KEY, KEY(0xe4), 0);
    assert_event(&e, 2, ODK_HID_EVENT_KEY, KEY(5), 0);
    assert_event(&e, 3, ODK_HID_EVENT_KEY, KEY(6), 0);
    assert_false(odk_hid_event_state_is_down(s, KEY(5)));
    /* After the reset, the same report presses them again. */
    e = FEED(s, 0x02, 0, 0x05, 0, 0, 0, 0, 0);
    assert_int_equal(e.n, 2);
    odk_hid_event_state_free(s);
    odk_hid_descriptor_free(d);
}

/* An n-key-rollover keyboard reports every key as a bit (a variable item
 * over the whole page); a boot keyboard can send selectors past its range. */
static void bitmap_keyboard_and_stray_selectors(void **state)
{
    (void)state;
    const uint8_t nkro[] = {0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07, 0x19, 0x00, 0x29, 0xe7,
                            0x15, 0x00, 0x25, 0x01, 0x75, 0x01, 0x96, 0xe8, 0x00, 0x81, 0x02, 0xc0};
    odk_hid_descriptor *d = parse_ok(nkro, sizeof nkro);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 0), 29);
    odk_hid_event_state *s;
    assert_int_equal(odk_hid_event_state_create(d, &s), ODK_OK);
    uint8_t r[29] = {0};
    r[0x04 / 8] |= 1 << (0x04 % 8); /* a */
    r[0xe1 / 8] |= 1 << (0xe1 % 8); /* Left Shift */
    struct events e = feed(s, r, sizeof r);
    assert_int_equal(e.n, 2);
    assert_event(&e, 0, ODK_HID_EVENT_KEY, KEY(0x04), 1);
    assert_event(&e, 1, ODK_HID_EVENT_KEY, KEY(0xe1), 1);
    r[0x04 / 8] = 0;
    e = feed(s, r, sizeof r);
    assert_int_equal(e.n, 1);
    assert_event(&e, 0, ODK_HID_EVENT_KEY, KEY(0x04), 0);
    /* Encoding sets the bits. */
    const odk_hid_value v[] = {V(KEY(0x39), 1), V(KEY(0xe7), 1)};
    uint8_t out[29];
    size_t len;
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, v, 2, out, 29, &len),
                     ODK_OK);
    assert_int_equal(out[0x39 / 8], 1 << (0x39 % 8));
    assert_int_equal(out[0xe7 / 8], 1 << (0xe7 % 8));
    odk_hid_event_state_free(s);
    odk_hid_descriptor_free(d);

    d = PARSE(boot_keyboard);
    const uint8_t stray[8] = {0, 0, 0xff, 0x66, 0x04, 0, 0, 0}; /* 255 and 102 > 101 */
    odk_hid_value vals[16];
    size_t n;
    assert_int_equal(odk_hid_report_decode(d, ODK_HID_REPORT_INPUT, stray, 8, vals, 16, &n),
                     ODK_OK);
    assert_int_equal(n, 9);
    assert_int_equal(vals[8].usage, KEY(4));
    assert_int_equal(vals[8].index, 2);
    odk_hid_descriptor_free(d);
}

static void boot_mouse_buttons_and_motion(void **state)
{
    (void)state;
    odk_hid_descriptor *d = PARSE(boot_mouse);
    assert_int_equal(odk_hid_descriptor_primary_usage(d), GD(ODK_HID_GD_MOUSE));
    assert_int_equal(odk_hid_descriptor_collection_count(d), 2);
    const odk_hid_collection *pointer = odk_hid_descriptor_collection(d, 1);
    assert_int_equal(pointer->type, ODK_HID_COLLECTION_PHYSICAL);
    assert_int_equal(pointer->usage, GD(ODK_HID_GD_POINTER));
    assert_int_equal(pointer->parent, 0);
    assert_int_equal(pointer->depth, 1);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 0), 3);
    const odk_hid_element *xy = odk_hid_descriptor_element(d, 2);
    assert_int_equal(xy->flags, ODK_HID_VARIABLE | ODK_HID_RELATIVE);
    assert_int_equal(xy->logical_min, -127);
    assert_int_equal(xy->logical_max, 127);
    assert_int_equal(xy->physical_min, -127); /* no physical range: the logical one */
    assert_int_equal(xy->collection, 1);
    assert_int_equal(odk_hid_element_usage(xy, 1, 0), GD(ODK_HID_GD_Y));

    const uint8_t report[] = {0x01, 0xff, 0x05};
    int64_t x;
    assert_int_equal(odk_hid_field_get(xy, 0, report, 3, &x), ODK_OK);
    assert_int_equal(x, -1);
    assert_int_equal(odk_hid_field_get(xy, 2, report, 3, &x), ODK_E_INVALID);
    assert_int_equal(odk_hid_field_get(xy, 1, report, 2, &x), ODK_E_PROTOCOL);

    odk_hid_event_state *s;
    assert_int_equal(odk_hid_event_state_create(d, &s), ODK_OK);
    struct events e = feed(s, report, 3);
    assert_int_equal(e.n, 3);
    assert_event(&e, 0, ODK_HID_EVENT_BUTTON, BUTTON(1), 1);
    assert_event(&e, 1, ODK_HID_EVENT_RELATIVE, GD(ODK_HID_GD_X), -1);
    assert_event(&e, 2, ODK_HID_EVENT_RELATIVE, GD(ODK_HID_GD_Y), 5);
    /* The same motion again is motion again; the button is not pressed twice. */
    e = feed(s, report, 3);
    assert_int_equal(e.n, 2);
    assert_event(&e, 0, ODK_HID_EVENT_RELATIVE, GD(ODK_HID_GD_X), -1);
    e = FEED(s, 0x04, 0, 0);
    assert_int_equal(e.n, 2);
    assert_event(&e, 0, ODK_HID_EVENT_BUTTON, BUTTON(1), 0);
    assert_event(&e, 1, ODK_HID_EVENT_BUTTON, BUTTON(3), 1);
    odk_hid_event_state_free(s);

    /* A mouse report from values, motion negative. */
    const odk_hid_value vals[] = {V(BUTTON(2), 1), V(GD(ODK_HID_GD_X), -127),
                                  V(GD(ODK_HID_GD_Y), 3)};
    uint8_t out[3];
    size_t len;
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, vals, 3, out, 3, &len),
                     ODK_OK);
    const uint8_t want[] = {0x02, 0x81, 0x03};
    assert_memory_equal(out, want, 3);
    const odk_hid_value far[] = {V(GD(ODK_HID_GD_X), -128)};
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, far, 1, out, 3, &len),
                     ODK_E_INVALID);
    odk_hid_descriptor_free(d);
}

static void multi_report_keyboard(void **state)
{
    (void)state;
    odk_hid_descriptor *d = PARSE(multi_keyboard);
    assert_true(odk_hid_descriptor_uses_report_ids(d));
    assert_int_equal(odk_hid_descriptor_report_count(d), 3);
    odk_hid_report_info ri;
    assert_int_equal(odk_hid_descriptor_report(d, 0, &ri), ODK_OK);
    assert_int_equal(ri.id, 1);
    assert_int_equal(ri.input_bytes, 9);
    assert_int_equal(ri.output_bytes, 2);
    assert_int_equal(ri.feature_bytes, 0);
    assert_int_equal(odk_hid_descriptor_report(d, 1, &ri), ODK_OK);
    assert_int_equal(ri.id, 2);
    assert_int_equal(ri.input_bytes, 5);
    assert_int_equal(odk_hid_descriptor_report(d, 2, &ri), ODK_OK);
    assert_int_equal(ri.id, 3);
    assert_int_equal(ri.input_bytes, 8);
    assert_int_equal(odk_hid_descriptor_report(d, 3, &ri), ODK_E_NOT_FOUND);
    assert_int_equal(odk_hid_descriptor_max_report_length(d, ODK_HID_REPORT_INPUT), 9);
    assert_int_equal(odk_hid_descriptor_max_report_length(d, ODK_HID_REPORT_FEATURE), 0);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 4), 0);

    /* The key array reads 0..255 unsigned from 0x26 0xff 0x00. */
    const odk_hid_element *keys = odk_hid_descriptor_find(d, ODK_HID_REPORT_INPUT, KEY(0xe8), NULL);
    assert_non_null(keys);
    assert_int_equal(keys->logical_max, 255);
    assert_int_equal(keys->report_id, 1);
    assert_int_equal(keys->bit_offset, 24); /* after the id byte, modifiers, reserved */

    odk_hid_event_state *s;
    assert_int_equal(odk_hid_event_state_create(d, &s), ODK_OK);
    struct events e = FEED(s, 0x02, 0xe9, 0x00, 0x00, 0x00); /* Volume Increment */
    assert_int_equal(e.n, 1);
    assert_event(&e, 0, ODK_HID_EVENT_CONSUMER, CONSUMER(0xe9), 1);
    assert_int_equal(e.e[0].report_id, 2);
    e = FEED(s, 0x01, 0x00, 0x00, 0x39, 0, 0, 0, 0, 0); /* Caps Lock: report 1 */
    assert_int_equal(e.n, 1);
    assert_event(&e, 0, ODK_HID_EVENT_KEY, KEY(0x39), 1);
    assert_true(odk_hid_event_state_is_down(s, CONSUMER(0xe9))); /* untouched by report 1 */
    e = FEED(s, 0x02, 0xcd, 0x00, 0xe9, 0x00);                   /* Play/Pause joins */
    assert_int_equal(e.n, 1);
    assert_event(&e, 0, ODK_HID_EVENT_CONSUMER, CONSUMER(0xcd), 1);
    e = FEED(s, 0x02, 0, 0, 0, 0);
    assert_int_equal(e.n, 2);
    assert_event(&e, 0, ODK_HID_EVENT_CONSUMER, CONSUMER(0xcd), 0);
    assert_event(&e, 1, ODK_HID_EVENT_CONSUMER, CONSUMER(0xe9), 0);
    /* The mouse: X -300 (16-bit), wheel -1, AC Pan 2. */
    e = FEED(s, 0x03, 0x00, 0xd4, 0xfe, 0x00, 0x00, 0xff, 0x02);
    assert_int_equal(e.n, 3);
    assert_event(&e, 0, ODK_HID_EVENT_RELATIVE, GD(ODK_HID_GD_X), -300);
    assert_event(&e, 1, ODK_HID_EVENT_SCROLL, GD(ODK_HID_GD_WHEEL), -1);
    assert_event(&e, 2, ODK_HID_EVENT_SCROLL, CONSUMER(ODK_HID_CONSUMER_AC_PAN), 2);
    /* An unknown report id and a short report are refused. */
    const uint8_t unknown[] = {0x09, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(odk_hid_event_state_feed(s, unknown, sizeof unknown, collect, &e),
                     ODK_E_PROTOCOL);
    const uint8_t short3[] = {0x03, 0, 0};
    assert_int_equal(odk_hid_event_state_feed(s, short3, 3, collect, &e), ODK_E_PROTOCOL);
    odk_hid_event_state_free(s);

    /* Reports built with their id: keyboard, consumer, LEDs. */
    uint8_t out[16];
    size_t len;
    const odk_hid_value k[] = {V(KEY(0xe0), 1), V(KEY(0x29), 1)};
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 1, k, 2, out, 16, &len),
                     ODK_OK);
    const uint8_t want_k[] = {0x01, 0x01, 0x00, 0x29, 0, 0, 0, 0, 0};
    assert_int_equal(len, 9);
    assert_memory_equal(out, want_k, 9);
    const odk_hid_value c[] = {V(CONSUMER(0xea), 1)};
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 2, c, 1, out, 16, &len),
                     ODK_OK);
    const uint8_t want_c[] = {0x02, 0xea, 0x00, 0x00, 0x00};
    assert_int_equal(len, 5);
    assert_memory_equal(out, want_c, 5);
    const odk_hid_value l[] = {V(LED(2), 1)};
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_OUTPUT, 1, l, 1, out, 16, &len),
                     ODK_OK);
    assert_int_equal(len, 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 0x02);
    /* A consumer usage is not in the keyboard report; id 0 is no report here. */
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 1, c, 1, out, 16, &len),
                     ODK_E_NOT_FOUND);
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_INPUT, 0, c, 1, out, 16, &len),
                     ODK_E_NOT_FOUND);

    /* A field read checks the report id byte. */
    int64_t v;
    const uint8_t wrong_id[] = {0x02, 0, 0x04, 0, 0, 0, 0, 0, 0};
    assert_int_equal(odk_hid_field_get(keys, 0, wrong_id, 9, &v), ODK_E_PROTOCOL);
    odk_hid_descriptor_free(d);
}

static void gamepad_push_pop_and_hat(void **state)
{
    (void)state;
    odk_hid_descriptor *d = PARSE(gamepad);
    assert_int_equal(odk_hid_descriptor_primary_usage(d), GD(ODK_HID_GD_GAMEPAD));
    assert_int_equal(odk_hid_descriptor_element_count(d), 3);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 0), 6);
    const odk_hid_element *axes = odk_hid_descriptor_element(d, 0);
    assert_int_equal(axes->count, 4);
    assert_int_equal(axes->n_usages, 4);
    assert_int_equal(odk_hid_element_usage(axes, 3, 0), GD(ODK_HID_GD_RZ));
    assert_int_equal(axes->logical_max, 255);
    const odk_hid_element *hat = odk_hid_descriptor_element(d, 1);
    assert_int_equal(hat->flags, ODK_HID_VARIABLE | ODK_HID_NULL_STATE);
    assert_int_equal(hat->bit_offset, 32);
    assert_int_equal(hat->size, 4);
    assert_int_equal(hat->logical_max, 7);
    assert_int_equal(hat->physical_min, 0);
    assert_int_equal(hat->physical_max, 315);
    assert_int_equal(hat->unit, 0x14); /* English Rotation, degrees */
    assert_int_equal(hat->unit_exponent, 0);
    /* Pop brought back the axes' globals: the buttons' own are 0..1, 1 bit,
     * and the physical range 0..255 and no unit come back from the Push. */
    const odk_hid_element *buttons = odk_hid_descriptor_element(d, 2);
    assert_int_equal(buttons->bit_offset, 36);
    assert_int_equal(buttons->count, 12);
    assert_int_equal(buttons->unit, 0);
    assert_int_equal(buttons->physical_max, 255);
    assert_int_equal(odk_hid_element_usage(buttons, 11, 0), BUTTON(12));

    odk_hid_event_state *s;
    assert_int_equal(odk_hid_event_state_create(d, &s), ODK_OK);
    /* The first report tells every axis; hat 8 is its null state, sent as is. */
    struct events e = FEED(s, 0x80, 0x80, 0x80, 0x80, 0x18, 0x00);
    assert_int_equal(e.n, 6);
    assert_event(&e, 0, ODK_HID_EVENT_ABSOLUTE, GD(ODK_HID_GD_X), 128);
    assert_event(&e, 3, ODK_HID_EVENT_ABSOLUTE, GD(ODK_HID_GD_RZ), 128);
    assert_event(&e, 4, ODK_HID_EVENT_ABSOLUTE, GD(ODK_HID_GD_HAT_SWITCH), 8);
    assert_event(&e, 5, ODK_HID_EVENT_BUTTON, BUTTON(1), 1);
    assert_int_equal(e.e[0].min, 0);
    assert_int_equal(e.e[0].max, 255);
    /* Then only what changed: Y, the hat to 2 (east), button 12. */
    e = FEED(s, 0x80, 0x00, 0x80, 0x80, 0x12, 0x80);
    assert_int_equal(e.n, 3);
    assert_event(&e, 0, ODK_HID_EVENT_ABSOLUTE, GD(ODK_HID_GD_Y), 0);
    assert_event(&e, 1, ODK_HID_EVENT_ABSOLUTE, GD(ODK_HID_GD_HAT_SWITCH), 2);
    assert_event(&e, 2, ODK_HID_EVENT_BUTTON, BUTTON(12), 1);
    odk_hid_event_state_free(s);
    odk_hid_descriptor_free(d);
}

static void touchscreen_collections_units(void **state)
{
    (void)state;
    odk_hid_descriptor *d = PARSE(touchscreen);
    assert_int_equal(odk_hid_descriptor_primary_usage(d), DIG(0x04));
    assert_int_equal(odk_hid_descriptor_collection_count(d), 3);
    for (size_t i = 1; i < 3; i++) {
        const odk_hid_collection *f = odk_hid_descriptor_collection(d, i);
        assert_int_equal(f->type, ODK_HID_COLLECTION_LOGICAL);
        assert_int_equal(f->usage, DIG(0x22));
        assert_int_equal(f->parent, 0);
    }
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 1), 14);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_FEATURE, 2), 2);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 2), 0);

    const odk_hid_element *x = odk_hid_descriptor_find(d, ODK_HID_REPORT_INPUT, GD(0x30), NULL);
    assert_non_null(x);
    assert_int_equal(x->collection, 1);
    assert_int_equal(x->bit_offset, 8 + 16);
    assert_int_equal(x->logical_max, 32767);
    assert_int_equal(x->physical_max, 1205);
    assert_int_equal(x->unit, 0x11); /* SI Linear, cm */
    assert_int_equal(x->unit_exponent, -2);
    const odk_hid_element *count =
        odk_hid_descriptor_find(d, ODK_HID_REPORT_INPUT, DIG(0x54), NULL);
    assert_non_null(count);
    assert_int_equal(count->bit_offset, 8 + 96);
    assert_int_equal(count->collection, 0);
    assert_int_equal(count->unit, 0);
    assert_int_equal(count->physical_max, 2);
    const odk_hid_element *max =
        odk_hid_descriptor_find(d, ODK_HID_REPORT_FEATURE, DIG(0x55), NULL);
    assert_non_null(max);
    assert_int_equal(max->report_id, 2);

    /* One finger down at (1000, 2000), contact 5; the second finger not. */
    const uint8_t report[14] = {0x01, 0x03, 0x05, 0xe8, 0x03, 0xd0, 0x07, 0, 0, 0, 0, 0, 0, 1};
    odk_hid_value v[32];
    size_t n;
    assert_int_equal(odk_hid_report_decode(d, ODK_HID_REPORT_INPUT, report, 14, v, 32, &n), ODK_OK);
    assert_int_equal(n, 11); /* 5 per finger, padding skipped, and the count */
    assert_int_equal(v[0].usage, DIG(0x42));
    assert_int_equal(v[0].value, 1);
    assert_int_equal(v[2].usage, DIG(0x51));
    assert_int_equal(v[2].value, 5);
    assert_int_equal(v[3].value, 1000);
    assert_int_equal(v[4].value, 2000);
    assert_int_equal(v[10].usage, DIG(0x54));
    assert_int_equal(v[10].value, 1);

    /* The feature report from a value. */
    uint8_t out[2];
    size_t len;
    const odk_hid_value m[] = {V(DIG(0x55), 2)};
    assert_int_equal(odk_hid_report_encode(d, ODK_HID_REPORT_FEATURE, 2, m, 1, out, 2, &len),
                     ODK_OK);
    assert_int_equal(out[0], 2);
    assert_int_equal(out[1], 2);
    odk_hid_descriptor_free(d);
}

/* ---- the parser's details -------------------------------------------------- */

static void long_items_are_skipped_and_counted(void **state)
{
    (void)state;
    uint8_t b[sizeof boot_mouse + 5];
    const uint8_t long_item[] = {0xfe, 0x02, 0x10, 0xaa, 0xbb};
    memcpy(b, long_item, 5);
    memcpy(b + 5, boot_mouse, sizeof boot_mouse);
    odk_hid_descriptor *d = parse_ok(b, sizeof b);
    assert_int_equal(odk_hid_descriptor_long_items(d), 1);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 0), 3);
    odk_hid_descriptor_free(d);
}

static void extended_usages_delimiters_and_late_pages(void **state)
{
    (void)state;
    /* A 4-byte usage carries its page; a Usage before any Usage Page takes
     * the page at the main item; of a delimited set only the first counts;
     * the unit exponent as a nibble (0x0f = -1). */
    const uint8_t b[] = {
        0x09, 0x02, 0x05, 0x01, 0xa1, 0x01,             /* Mouse, page given after it */
        0x0b, 0x38, 0x02, 0x0c, 0x00,                   /* Usage (Consumer AC Pan) */
        0xa9, 0x01, 0x09, 0x30, 0x09, 0x31, 0xa9, 0x00, /* Delimiter {X, Y} */
        0x55, 0x0f, 0x15, 0x81, 0x25, 0x7f, 0x75, 0x08, 0x95, 0x02, 0x81,
        0x06, 0x05, 0x09, 0x1b, 0x01, 0x00, 0x09, 0x00, 0x29, 0x03, /* Button 1..3, min extended */
        0x15, 0x00, 0x25, 0x01, 0x75, 0x01, 0x95, 0x03, 0x81, 0x02, 0x75,
        0x05, 0x95, 0x01, 0x81, 0x03, /* padding, Cnst,Var */
        0xc0,
    };
    odk_hid_descriptor *d = parse_ok(b, sizeof b);
    assert_int_equal(odk_hid_descriptor_primary_usage(d), GD(ODK_HID_GD_MOUSE));
    const odk_hid_element *el = odk_hid_descriptor_element(d, 0);
    assert_int_equal(el->n_usages, 2);
    assert_int_equal(el->usages[0].min, CONSUMER(0x238));
    assert_int_equal(el->usages[1].min, GD(0x30));
    assert_int_equal(el->unit_exponent, -1);
    const odk_hid_element *buttons = odk_hid_descriptor_element(d, 1);
    assert_int_equal(buttons->usages[0].min, BUTTON(1));
    assert_int_equal(buttons->usages[0].max, BUTTON(3));
    assert_int_equal(buttons->bit_offset, 16);
    odk_hid_descriptor_free(d);

    /* A signed-byte exponent (0xfe) reads -2 too; 0x26 0xff 0x00 after a
     * negative minimum is still 255, and a 1-byte 0xff after one is -1. */
    const uint8_t c[] = {0x05, 0x01, 0x09, 0x30, 0x55, 0xfe, 0x15, 0x80, 0x25, 0xff, 0x75, 0x08,
                         0x95, 0x01, 0x81, 0x02, 0x09, 0x31, 0x15, 0x00, 0x25, 0xff, 0x81, 0x02};
    d = parse_ok(c, sizeof c);
    el = odk_hid_descriptor_element(d, 0);
    assert_int_equal(el->unit_exponent, -2);
    assert_int_equal(el->logical_min, -128);
    assert_int_equal(el->logical_max, -1);
    el = odk_hid_descriptor_element(d, 1);
    assert_int_equal(el->logical_min, 0);
    assert_int_equal(el->logical_max, 255);
    assert_int_equal(el->collection, -1);
    odk_hid_descriptor_free(d);
}

static void fields_at_odd_offsets(void **state)
{
    (void)state;
    /* 3 bits of padding, a 12-bit signed field, a 32-bit unsigned one. */
    const uint8_t b[] = {0x05, 0x01, 0x75, 0x03, 0x95, 0x01, 0x81, 0x03, 0x09, 0x30, 0x16,
                         0x00, 0xf8, 0x26, 0xff, 0x07, 0x75, 0x0c, 0x81, 0x02, 0x09, 0x31,
                         0x15, 0x00, 0x27, 0xff, 0xff, 0xff, 0xff, 0x75, 0x20, 0x81, 0x02};
    odk_hid_descriptor *d = parse_ok(b, sizeof b);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 0), 6);
    const odk_hid_element *x = odk_hid_descriptor_element(d, 1),
                          *y = odk_hid_descriptor_element(d, 2);
    assert_int_equal(x->bit_offset, 3);
    assert_int_equal(x->logical_min, -2048);
    assert_int_equal(y->bit_offset, 15);
    assert_int_equal(y->logical_max, 4294967295);
    uint8_t r[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(odk_hid_field_set(x, 0, r, 6, -2048), ODK_OK);
    assert_int_equal(odk_hid_field_set(y, 0, r, 6, 0x80000001), ODK_OK);
    int64_t v;
    assert_int_equal(odk_hid_field_get(x, 0, r, 6, &v), ODK_OK);
    assert_int_equal(v, -2048);
    assert_int_equal(odk_hid_field_get(y, 0, r, 6, &v), ODK_OK);
    assert_int_equal(v, 0x80000001);
    assert_int_equal(r[0] & 0x07, 0x07); /* the padding bits untouched */
    assert_int_equal(r[5] & 0x80, 0x80); /* and the bit past the last field */
    assert_int_equal(odk_hid_field_set(x, 0, r, 6, 2047), ODK_OK);
    assert_int_equal(odk_hid_field_get(x, 0, r, 6, &v), ODK_OK);
    assert_int_equal(v, 2047);
    assert_int_equal(odk_hid_field_get(y, 0, r, 6, &v), ODK_OK);
    assert_int_equal(v, 0x80000001);
    assert_int_equal(odk_hid_field_set(y, 0, r, 5, 1), ODK_E_INVALID);
    odk_hid_descriptor_free(d);
}

/* ---- every fault ----------------------------------------------------------- */

static void assert_fault(const uint8_t *b, size_t n, odk_hid_fault fault, size_t offset,
                         const char *words)
{
    odk_hid_descriptor *d = (odk_hid_descriptor *)1;
    odk_hid_parse_error err;
    int r = odk_hid_descriptor_parse(b, n, &d, &err);
    if (r != ODK_E_PROTOCOL)
        fail_msg("parse gave %d, not a fault %d (%s)", r, fault, words);
    assert_null(d);
    if (err.fault != fault || err.offset != offset)
        fail_msg("fault %d (%s) at %zu: \"%s\"; expected %d (%s) at %zu", err.fault,
                 odk_hid_fault_name(err.fault), err.offset, err.message, fault,
                 odk_hid_fault_name(fault), offset);
    if (!strstr(err.message, words))
        fail_msg("message \"%s\" does not say \"%s\"", err.message, words);
}

#define FAULT(fault, offset, words, ...)                                                           \
    do {                                                                                           \
        const uint8_t b_[] = {__VA_ARGS__};                                                        \
        assert_fault(b_, sizeof b_, fault, offset, words);                                         \
    } while (0)

/* Usage Page (Generic Desktop), Usage (X), 8 bits x 1, 0..1: before a main item. */
#define X8 0x05, 0x01, 0x09, 0x30, 0x15, 0x00, 0x25, 0x01, 0x75, 0x08, 0x95, 0x01

static void faults_in_items(void **state)
{
    (void)state;
    assert_fault(NULL, 0, ODK_HID_FAULT_EMPTY, 0, "empty");
    FAULT(ODK_HID_FAULT_EMPTY, 0, "no main items", 0x05, 0x01, 0x09, 0x02);
    uint8_t *big = calloc(ODK_HID_MAX_DESCRIPTOR_BYTES + 1, 1);
    assert_fault(big, ODK_HID_MAX_DESCRIPTOR_BYTES + 1, ODK_HID_FAULT_TOO_LONG, 0, "4097 bytes");
    free(big);
    FAULT(ODK_HID_FAULT_TRUNCATED, 6, "needs more bytes", 0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x26,
          0xff);
    FAULT(ODK_HID_FAULT_TRUNCATED, 2, "needs more bytes", 0x05, 0x01, 0xfe, 0x05, 0x00, 0x01);
    FAULT(ODK_HID_FAULT_RESERVED_ITEM, 2, "reserved item type", 0x05, 0x01, 0x0c);
    FAULT(ODK_HID_FAULT_RESERVED_ITEM, 2, "global item tag 0xc", 0x05, 0x01, 0xc4, 0x00);
    FAULT(ODK_HID_FAULT_RESERVED_ITEM, 2, "local item tag 0x6", 0x05, 0x01, 0x68, 0x00);
    FAULT(ODK_HID_FAULT_RESERVED_ITEM, 2, "main item tag 0x0", 0x05, 0x01, 0x00);
    FAULT(ODK_HID_FAULT_BAD_ITEM_SIZE, 6, "End Collection with 1 data bytes", 0x05, 0x01, 0x09,
          0x02, 0xa1, 0x01, 0xc1, 0x00);
    FAULT(ODK_HID_FAULT_BAD_ITEM_SIZE, 0, "more than 16 bits", 0x07, 0x00, 0x00, 0x01, 0x00);
    FAULT(ODK_HID_FAULT_BAD_ITEM_SIZE, 0, "Push with 1", 0xa5, 0x00);
    FAULT(ODK_HID_FAULT_BAD_COLLECTION_TYPE, 4, "0x07", 0x05, 0x01, 0x09, 0x02, 0xa1, 0x07, 0xc0);
}

static void faults_in_structure(void **state)
{
    (void)state;
    FAULT(ODK_HID_FAULT_END_WITHOUT_COLLECTION, 2, "no open Collection", 0x05, 0x01, 0xc0);
    /* The innermost collection left open is named. */
    FAULT(ODK_HID_FAULT_UNCLOSED_COLLECTION, 8, "2 open", 0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09,
          0x01, 0xa1, 0x00, 0xa1, 0x00, 0xc0);
    uint8_t deep[2 + 2 * (ODK_HID_MAX_COLLECTION_DEPTH + 1)] = {0x05, 0x01};
    for (size_t i = 0; i <= ODK_HID_MAX_COLLECTION_DEPTH; i++)
        deep[2 + 2 * i] = 0xa1, deep[3 + 2 * i] = 0x00;
    assert_fault(deep, sizeof deep, ODK_HID_FAULT_COLLECTION_TOO_DEEP,
                 2 + 2 * ODK_HID_MAX_COLLECTION_DEPTH, "deeper than 32");
    uint8_t pushes[ODK_HID_MAX_PUSH_DEPTH + 1];
    memset(pushes, 0xa4, sizeof pushes);
    assert_fault(pushes, sizeof pushes, ODK_HID_FAULT_PUSH_TOO_DEEP, ODK_HID_MAX_PUSH_DEPTH,
                 "limit of 16");
    FAULT(ODK_HID_FAULT_POP_WITHOUT_PUSH, 4, "Pop without a Push", 0x05, 0x01, 0xa4, 0xb4, 0xb4);
    /* An open Delimiter: nested, closed twice, never closed, bad value. */
    FAULT(ODK_HID_FAULT_DELIMITER, 2, "inside another", 0xa9, 0x01, 0xa9, 0x01);
    FAULT(ODK_HID_FAULT_DELIMITER, 0, "none open", 0xa9, 0x00);
    FAULT(ODK_HID_FAULT_DELIMITER, 2, "still open at the Input item at byte 14", 0x05, 0x01, 0xa9,
          0x01, 0x09, 0x30, 0x15, 0x00, 0x25, 0x01, 0x75, 0x08, 0x95, 0x01, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_DELIMITER, 0, "Delimiter 2", 0xa9, 0x02);
    FAULT(ODK_HID_FAULT_DELIMITER, 2, "still open at the Collection item at byte 6", 0x05, 0x01,
          0xa9, 0x01, 0x09, 0x30, 0xa1, 0x01, 0xc0);
    FAULT(ODK_HID_FAULT_DELIMITER, 7, "not closed by the end", 0x05, 0x01, 0x09, 0x02, 0xa1, 0x01,
          0xc0, 0xa9, 0x01, 0x09, 0x30);
}

static void faults_in_fields(void **state)
{
    (void)state;
    FAULT(ODK_HID_FAULT_REPORT_SIZE_ZERO, 10, "Report Size 0 on an Input item", 0x05, 0x01, 0x09,
          0x30, 0x15, 0x00, 0x25, 0x01, 0x95, 0x01, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_REPORT_SIZE_TOO_BIG, 14, "Report Size 33 on an Output item", X8, 0x75, 0x21,
          0x91, 0x02);
    FAULT(ODK_HID_FAULT_REPORT_COUNT_ZERO, 14, "Report Count 0 on a", X8, 0x95, 0x00, 0xb1, 0x02);
    FAULT(ODK_HID_FAULT_REPORT_COUNT_TOO_BIG, 15, "Report Count 4097", X8, 0x96, 0x01, 0x10, 0x81,
          0x02);
    /* 32 bits x 1025 fields is past 4096 bytes with nothing else. */
    FAULT(ODK_HID_FAULT_REPORT_TOO_BIG, 17, "grows to 32800 bits", X8, 0x75, 0x20, 0x96, 0x01, 0x04,
          0x81, 0x02);
    /* 4095 bytes of input and an id byte fit exactly; one more bit does not. */
    FAULT(ODK_HID_FAULT_REPORT_TOO_BIG, 23, "grows to 32769 bits", 0x85, 0x01, X8, 0x96, 0xff, 0x0f,
          0x81, 0x02, 0x75, 0x01, 0x95, 0x01, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_REPORT_ID_ZERO, 12, "Report ID 0", X8, 0x85, 0x00, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_REPORT_ID_TOO_BIG, 12, "256", X8, 0x86, 0x00, 0x01, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_REPORT_ID_MIXED, 14, "after a main item with no report id (byte 12)", X8,
          0x81, 0x02, 0x85, 0x01, 0x81, 0x02);
    /* Pop back to before any Report ID, then a field: mixed too. */
    FAULT(ODK_HID_FAULT_REPORT_ID_MIXED, 18, "no report id in a descriptor that uses", X8, 0xa4,
          0x85, 0x01, 0x81, 0x02, 0xb4, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_LOGICAL_RANGE, 14, "Logical Minimum 5 is above Logical Maximum 1", X8, 0x15,
          0x05, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_LOGICAL_RANGE, 16, "Minimum -1 is above Logical Maximum -128", X8, 0x15,
          0xff, 0x25, 0x80, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_PHYSICAL_RANGE, 16, "Physical Minimum 10 is above Physical Maximum 5", X8,
          0x35, 0x0a, 0x45, 0x05, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_USAGE_RANGE, 4, "not a range", 0x05, 0x09, 0x19, 0x05, 0x29, 0x01);
    FAULT(ODK_HID_FAULT_USAGE_RANGE, 7, "not a range", 0x05, 0x01, 0x1b, 0x01, 0x00, 0x07, 0x00,
          0x29, 0x05);
    FAULT(ODK_HID_FAULT_USAGE_RANGE_UNPAIRED, 12, "Usage Minimum without a Usage Maximum", X8, 0x19,
          0x01, 0x81, 0x02);
    FAULT(ODK_HID_FAULT_USAGE_RANGE_UNPAIRED, 12, "Usage Maximum without", X8, 0x29, 0x01, 0xa1,
          0x00, 0xc0);
    FAULT(ODK_HID_FAULT_NO_USAGE_PAGE, 2, "Collection item with usage 0x0006", 0x09, 0x06, 0xa1,
          0x01, 0xc0);
    FAULT(ODK_HID_FAULT_NO_USAGE_PAGE, 8, "Input item with no Usage Page", 0x15, 0x00, 0x25, 0x01,
          0x75, 0x01, 0x95, 0x01, 0x81, 0x02);
}

static void faults_past_counts(void **state)
{
    (void)state;
    /* ODK_HID_MAX_USAGES usages and one more before one main item. */
    size_t n = 2 + 2 * (ODK_HID_MAX_USAGES + 1);
    uint8_t *b = calloc(n, 1);
    b[0] = 0x05, b[1] = 0x01;
    for (size_t i = 0; i <= ODK_HID_MAX_USAGES; i++)
        b[2 + 2 * i] = 0x09, b[3 + 2 * i] = 0x30;
    assert_fault(b, n, ODK_HID_FAULT_TOO_MANY_USAGES, 2 + 2 * ODK_HID_MAX_USAGES,
                 "more than 1024 usages");
    free(b);
    /* ODK_HID_MAX_ELEMENTS one-bit inputs fit; one more does not. */
    n = 12 + 2 * (ODK_HID_MAX_ELEMENTS + 1);
    b = calloc(n, 1);
    const uint8_t head[] = {0x05, 0x01, 0x15, 0x00, 0x25, 0x01, 0x75, 0x01, 0x95, 0x01};
    memcpy(b, head, sizeof head);
    for (size_t i = 0; i <= ODK_HID_MAX_ELEMENTS; i++)
        b[10 + 2 * i] = 0x81, b[11 + 2 * i] = 0x03;
    assert_fault(b, 10 + 2 * (ODK_HID_MAX_ELEMENTS + 1), ODK_HID_FAULT_TOO_MANY_ELEMENTS,
                 10 + 2 * ODK_HID_MAX_ELEMENTS, "more than 1024");
    odk_hid_descriptor *d = parse_ok(b, 10 + 2 * ODK_HID_MAX_ELEMENTS);
    assert_int_equal(odk_hid_descriptor_element_count(d), ODK_HID_MAX_ELEMENTS);
    assert_int_equal(odk_hid_descriptor_report_length(d, ODK_HID_REPORT_INPUT, 0), 128);
    odk_hid_descriptor_free(d);
    free(b);
}

static void bad_arguments(void **state)
{
    (void)state;
    odk_hid_descriptor *d = (odk_hid_descriptor *)1;
    assert_int_equal(odk_hid_descriptor_parse(NULL, 4, &d, NULL), ODK_E_INVALID);
    assert_null(d);
    assert_int_equal(odk_hid_descriptor_parse(boot_mouse, sizeof boot_mouse, NULL, NULL),
                     ODK_E_INVALID);
    /* error may be NULL. */
    assert_int_equal(odk_hid_descriptor_parse(boot_mouse, 3, &d, NULL), ODK_E_PROTOCOL);
    odk_hid_event_state *s = (odk_hid_event_state *)1;
    assert_int_equal(odk_hid_event_state_create(NULL, &s), ODK_E_INVALID);
    assert_null(s);
    char *text = (char *)1;
    assert_int_equal(odk_hid_descriptor_format(NULL, 3, &text), ODK_E_INVALID);
    assert_null(text);
    odk_hid_descriptor_free(NULL);
    odk_hid_event_state_free(NULL);
    assert_string_equal(odk_hid_fault_name(ODK_HID_FAULT_TRUNCATED), "truncated item");
    assert_string_equal(odk_hid_fault_name((odk_hid_fault)999), "unknown fault");
}

/* ---- names and printing ---------------------------------------------------- */

static void usage_names(void **state)
{
    (void)state;
    char buf[64];
    assert_true(odk_hid_usage_name(KEY(0x04), buf, sizeof buf));
    assert_string_equal(buf, "Keyboard a and A");
    assert_true(odk_hid_usage_name(KEY(0x27), buf, sizeof buf));
    assert_string_equal(buf, "Keyboard 0 and )");
    assert_true(odk_hid_usage_name(KEY(0x45), buf, sizeof buf));
    assert_string_equal(buf, "Keyboard F12");
    assert_true(odk_hid_usage_name(KEY(0xe0), buf, sizeof buf));
    assert_string_equal(buf, "Keyboard LeftControl");
    assert_true(odk_hid_usage_name(BUTTON(3), buf, sizeof buf));
    assert_string_equal(buf, "Button 3");
    assert_true(odk_hid_usage_name(CONSUMER(0xe9), buf, sizeof buf));
    assert_string_equal(buf, "Volume Increment");
    assert_true(odk_hid_usage_name(DIG(0x42), buf, sizeof buf));
    assert_string_equal(buf, "Tip Switch");
    assert_true(odk_hid_usage_name(LED(2), buf, sizeof buf));
    assert_string_equal(buf, "Caps Lock");
    assert_false(odk_hid_usage_name(KEY(0xe8), buf, sizeof buf));
    assert_string_equal(buf, "0x0007:0x00e8");
    assert_false(odk_hid_usage_name(ODK_HID_USAGE(0xff00, 1), buf, sizeof buf));
    assert_string_equal(buf, "Vendor 0xff00:0x0001");
    odk_hid_usage_name(KEY(0x04), buf, 6);
    assert_string_equal(buf, "Keybo");
    assert_string_equal(odk_hid_usage_page_name(ODK_HID_PAGE_KEYBOARD), "Keyboard/Keypad");
    assert_string_equal(odk_hid_usage_page_name(0xff42), "Vendor Defined");
    assert_null(odk_hid_usage_page_name(0x7777));

    uint32_t u;
    assert_int_equal(odk_hid_usage_lookup("keyboard caps lock", &u), ODK_OK);
    assert_int_equal(u, KEY(0x39));
    assert_int_equal(odk_hid_usage_lookup("Button 12", &u), ODK_OK);
    assert_int_equal(u, BUTTON(12));
    assert_int_equal(odk_hid_usage_lookup("Volume Decrement", &u), ODK_OK);
    assert_int_equal(u, CONSUMER(0xea));
    assert_int_equal(odk_hid_usage_lookup("Vendor 0xff00:0x0001", &u), ODK_OK);
    assert_int_equal(u, ODK_HID_USAGE(0xff00, 1));
    assert_int_equal(odk_hid_usage_lookup("Keyboard Hyper", &u), ODK_E_NOT_FOUND);
    assert_int_equal(odk_hid_usage_lookup("Button x", &u), ODK_E_NOT_FOUND);
    assert_int_equal(odk_hid_usage_lookup(NULL, &u), ODK_E_INVALID);
    /* Every key's name reads back as that key. */
    for (uint32_t id = 0; id <= 0xff; id++) {
        odk_hid_usage_name(KEY(id), buf, sizeof buf);
        assert_int_equal(odk_hid_usage_lookup(buf, &u), ODK_OK);
        if (u != KEY(id))
            fail_msg("\"%s\" reads back as 0x%08x, not 0x%08x", buf, u, KEY(id));
    }
}

static void format_text(void **state)
{
    (void)state;
    char *text;
    assert_int_equal(odk_hid_descriptor_format(boot_keyboard, sizeof boot_keyboard, &text), ODK_OK);
    const char *want[] = {
        "0x05, 0x01,                     // Usage Page (Generic Desktop)\n",
        "0x09, 0x06,                     // Usage (Keyboard)\n",
        "0xa1, 0x01,                     // Collection (Application)\n",
        "0x05, 0x07,                     //   Usage Page (Keyboard/Keypad)\n",
        "0x19, 0xe0,                     //   Usage Minimum (Keyboard LeftControl)\n",
        "0x25, 0x01,                     //   Logical Maximum (1)\n",
        "0x81, 0x02,                     //   Input (Data,Var,Abs)\n",
        "0x81, 0x01,                     //   Input (Cnst,Arr,Abs)\n",
        "0x29, 0x05,                     //   Usage Maximum (Kana)\n",
        "0x29, 0x65,                     //   Usage Maximum (Keyboard Application)\n",
        "0xc0,                           // End Collection\n",
        "// report 0: input 8 bytes output 1 bytes\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(text, want[i]))
            fail_msg("no line \"%s\" in:\n%s", want[i], text);
    free(text);

    /* Units, signed values and Push/Pop in the game pad and touch screen. */
    assert_int_equal(odk_hid_descriptor_format(touchscreen, sizeof touchscreen, &text), ODK_OK);
    assert_non_null(strstr(text, "//     Unit (SI Linear: cm)\n"));
    assert_non_null(strstr(text, "//     Unit Exponent (-2)\n"));
    assert_non_null(strstr(text, "//     Usage (Contact Identifier)\n"));
    assert_non_null(strstr(text, "//   End Collection\n"));
    free(text);
    assert_int_equal(odk_hid_descriptor_format(multi_keyboard, sizeof multi_keyboard, &text),
                     ODK_OK);
    assert_non_null(
        strstr(text, "0x16, 0x01, 0x80,               //     Logical Minimum (-32767)"));
    assert_non_null(strstr(text, "0x26, 0xff, 0x7f,               //     Logical Maximum (32767)"));
    assert_non_null(strstr(text, "//     Usage (AC Pan)\n"));
    assert_non_null(strstr(text, "// report 2: input 5 bytes\n"));
    free(text);

    /* A broken descriptor prints up to the break, then why. */
    const uint8_t broken[] = {0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x26, 0xff};
    assert_int_equal(odk_hid_descriptor_format(broken, sizeof broken, &text), ODK_OK);
    assert_non_null(strstr(text, "// Collection (Application)\n"));
    assert_non_null(strstr(text, "error at byte 6: byte 6: item 0x26 needs more bytes"));
    free(text);
}

static void format_json(void **state)
{
    (void)state;
    char *text;
    assert_int_equal(odk_hid_descriptor_format_json(multi_keyboard, sizeof multi_keyboard, &text),
                     ODK_OK);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s at line %d): %s", jerr.text, jerr.line, text);
    free(text);
    assert_true(json_is_null(json_object_get(j, "error")));
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 82);
    json_t *first = json_array_get(items, 0);
    assert_string_equal(json_string_value(json_object_get(first, "bytes")), "05 01");
    assert_string_equal(json_string_value(json_object_get(first, "tag")), "Usage Page");
    assert_string_equal(json_string_value(json_object_get(first, "name")), "Generic Desktop");
    assert_int_equal(json_integer_value(json_object_get(first, "value")), 1);
    assert_true(json_is_true(json_object_get(j, "report_ids")));
    json_t *elements = json_object_get(j, "elements");
    assert_int_equal(json_array_size(elements), 11);
    json_t *keys = json_array_get(elements, 4);
    assert_string_equal(json_string_value(json_object_get(keys, "flags")), "Data,Arr,Abs");
    assert_int_equal(json_integer_value(json_object_get(keys, "bit_offset")), 24);
    json_t *reports = json_object_get(j, "reports");
    assert_int_equal(json_array_size(reports), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(reports, 2), "input_bytes")),
                     8);
    json_decref(j);

    const uint8_t broken[] = {0x05, 0x01, 0xc0};
    assert_int_equal(odk_hid_descriptor_format_json(broken, sizeof broken, &text), ODK_OK);
    j = json_loads(text, 0, &jerr);
    assert_non_null(j);
    free(text);
    json_t *e = json_object_get(j, "error");
    assert_int_equal(json_integer_value(json_object_get(e, "offset")), 2);
    assert_string_equal(json_string_value(json_object_get(e, "fault")),
                        "End Collection without Collection");
    assert_null(json_object_get(j, "elements"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(boot_keyboard_elements),
        cmocka_unit_test(boot_keyboard_decode_and_encode),
        cmocka_unit_test(boot_keyboard_events),
        cmocka_unit_test(bitmap_keyboard_and_stray_selectors),
        cmocka_unit_test(boot_mouse_buttons_and_motion),
        cmocka_unit_test(multi_report_keyboard),
        cmocka_unit_test(gamepad_push_pop_and_hat),
        cmocka_unit_test(touchscreen_collections_units),
        cmocka_unit_test(long_items_are_skipped_and_counted),
        cmocka_unit_test(extended_usages_delimiters_and_late_pages),
        cmocka_unit_test(fields_at_odd_offsets),
        cmocka_unit_test(faults_in_items),
        cmocka_unit_test(faults_in_structure),
        cmocka_unit_test(faults_in_fields),
        cmocka_unit_test(faults_past_counts),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(usage_names),
        cmocka_unit_test(format_text),
        cmocka_unit_test(format_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
